package render

import (
	"regexp"
	"strconv"
	"strings"
)

// The scanner below finds tags the way osteele/liquid v1.6.0's
// parser.Scan does (see formTokenMatcher there), so that it rewrites exactly
// the output tags that liquid will see.
var (
	// objectTag matches an output tag {{ expr }} at the start of the input.
	objectTag = regexp.MustCompile(`^\{\{-?\s*(.+?)\s*-?\}\}`)
	// blockTag matches a tag {% name args %} at the start of the input.
	blockTag = regexp.MustCompile(`^\{%-?\s*(\w+)(?:\s+((?:[^%]|%[^}])+?))?\s*-?%\}`)
	// variablePath matches an expression that is only a variable and its
	// properties or indexes: customer.address.city, event.items[0],
	// customer["first name"].
	variablePath = regexp.MustCompile(`^[A-Za-z_][\w-]*\??(?:\.[A-Za-z_][\w-]*\??|\[\s*(?:-?\d+|"[^"]*"|'[^']*'|[A-Za-z_][\w.-]*)\s*\])*$`)
)

// requiredFilter is the filter that rewrite inserts after the variable of an
// output tag; its argument is the variable's path as written.
const requiredFilter = "required"

// hoistPrefix names the variables that hold string literals containing "}}",
// which liquid's scanner cannot read inside an output tag.
const hoistPrefix = "_herald_literal_"

// outputTag is an output tag {{ expr }} split into its parts.
type outputTag struct {
	trimLeft, trimRight bool
	// head is the expression before the first filter, trimmed.
	head string
	// filters are the filter calls after the head, each trimmed, without the "|".
	filters []string
}

// variable returns the variable path whose value the tag requires, or "" if
// the head is not a variable or a default filter gives a fallback.
func (t outputTag) variable() string {
	if !variablePath.MatchString(t.head) {
		return ""
	}
	switch t.head {
	case "true", "false", "nil", "empty", "blank":
		return ""
	}
	for _, f := range t.filters {
		if filterName(f) == "default" {
			return ""
		}
	}
	return t.head
}

// filterName returns the name of a filter call such as `append: "x"`.
func filterName(call string) string {
	name, _, _ := strings.Cut(call, ":")
	return strings.TrimSpace(name)
}

// scan calls text for the verbatim parts of src and output for each output
// tag, in order. It leaves the insides of {% raw %} blocks alone.
func scan(src string, text func(string), output func(outputTag)) {
	inRaw := false
	start := 0 // start of the pending verbatim text
	for p := 0; p < len(src); {
		i := strings.IndexByte(src[p:], '{')
		if i < 0 {
			break
		}
		p += i
		rest := src[p:]
		switch {
		case strings.HasPrefix(rest, "{%"):
			m := blockTag.FindStringSubmatch(rest)
			if m == nil {
				p++
				continue
			}
			switch {
			case !inRaw && m[1] == "raw":
				inRaw = true
			case inRaw && m[1] == "endraw":
				inRaw = false
			}
			p += len(m[0])
		case strings.HasPrefix(rest, "{{") && !inRaw:
			n, tag, ok := parseOutputTag(rest)
			if !ok {
				p++
				continue
			}
			text(src[start:p])
			output(tag)
			p += n
			start = p
		default:
			p++
		}
	}
	text(src[start:])
}

// parseOutputTag parses the output tag at the start of s and returns its
// length. Unlike liquid's scanner, it reads past a "}}" inside a string
// literal.
func parseOutputTag(s string) (n int, tag outputTag, ok bool) {
	m := objectTag.FindStringSubmatchIndex(s)
	if m == nil {
		return 0, outputTag{}, false
	}
	n = m[1]
	if _, closed := splitFilters(s[m[2]:m[3]]); !closed {
		// The first "}}" is inside a string literal: find the one after it.
		n = closingBraces(s)
		if n < 0 {
			return 0, outputTag{}, false
		}
	}
	inner := s[2 : n-2]
	if strings.HasPrefix(inner, "-") {
		tag.trimLeft = true
		inner = inner[1:]
	}
	if strings.HasSuffix(inner, "-") {
		tag.trimRight = true
		inner = inner[:len(inner)-1]
	}
	parts, _ := splitFilters(inner)
	tag.head = strings.TrimSpace(parts[0])
	for _, f := range parts[1:] {
		tag.filters = append(tag.filters, strings.TrimSpace(f))
	}
	return n, tag, true
}

// closingBraces returns the offset just past the first "}}" of s (which
// starts with "{{") that is outside a string literal, or -1.
func closingBraces(s string) int {
	var quote byte
	for i := 2; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i + 2
		}
	}
	return -1
}

// splitFilters splits an expression at each "|" outside a string literal.
// closed reports whether every string literal is closed.
func splitFilters(expr string) (parts []string, closed bool) {
	var quote byte
	start := 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '|':
			parts = append(parts, expr[start:i])
			start = i + 1
		}
	}
	return append(parts, expr[start:]), quote == 0
}

// quote returns s as a Liquid string literal, which has no escapes: it uses
// double quotes unless s contains one. ok is false if s contains both quotes.
func quote(s string) (lit string, ok bool) {
	switch {
	case !strings.Contains(s, `"`):
		return `"` + s + `"`, true
	case !strings.Contains(s, `'`):
		return `'` + s + `'`, true
	}
	return "", false
}

// rewrite returns src with each output tag whose head is a variable (see
// outputTag.variable) passed through the required filter right after that
// variable, so that a missing value fails the render instead of rendering as
// empty text:
//
//	{{ customer.name | upcase }}  →  {{ customer.name | required: "customer.name" | upcase }}
//
// String literals that contain "}}" are moved into {% assign %} tags placed
// before the output tag, since liquid's scanner ends an output tag at the
// first "}}". rewrite also returns the required variables, in order. With
// required false it only hoists those literals (the template as its author
// wrote it, for Check's trial render and for error messages).
func rewrite(src string, required bool) (out string, variables []string) {
	var b strings.Builder
	hoisted := 0
	scan(src, func(s string) { b.WriteString(s) }, func(t outputTag) {
		parts := []string{t.head}
		if v := t.variable(); v != "" {
			variables = append(variables, v)
			if lit, ok := quote(v); ok && required {
				parts = append(parts, requiredFilter+": "+lit)
			}
		}
		expr := strings.Join(append(parts, t.filters...), " | ")

		// Hoist string literals that contain "}}".
		var assigns []string
		var e strings.Builder
		for i := 0; i < len(expr); i++ {
			c := expr[i]
			if c != '"' && c != '\'' {
				e.WriteByte(c)
				continue
			}
			j := strings.IndexByte(expr[i+1:], c)
			if j < 0 { // unterminated: leave it for liquid to report
				e.WriteString(expr[i:])
				break
			}
			lit := expr[i : i+j+2]
			if strings.Contains(lit, "}}") {
				name := hoistPrefix + strconv.Itoa(hoisted)
				hoisted++
				assigns = append(assigns, "assign "+name+" = "+lit)
				lit = name
			}
			e.WriteString(lit)
			i += j + 1
		}

		trimLeft := t.trimLeft
		for _, a := range assigns {
			b.WriteString("{%")
			if trimLeft {
				b.WriteString("-")
				trimLeft = false
			}
			b.WriteString(" " + a + " %}")
		}
		b.WriteString("{{")
		if trimLeft {
			b.WriteString("-")
		}
		b.WriteString(" " + e.String() + " ")
		if t.trimRight {
			b.WriteString("-")
		}
		b.WriteString("}}")
	})
	return b.String(), variables
}

// TemplateVariables returns the variables that the template src requires: the
// variable at the head of each output tag without a default filter, such as
// "customer.first_name" for {{ customer.first_name | capitalize }}, in order
// of first use. Variables used only in tags ({% if customer.vip %}) or as
// filter arguments are not listed, since a missing value there is allowed.
func TemplateVariables(src string) []string {
	_, vars := rewrite(src, true)
	var out []string
	seen := map[string]bool{}
	for _, v := range vars {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// Package render renders the text fields of a push message (title, body,
// link, image, sound and the string values of custom data), each a Liquid
// template over:
//
//   - customer.*: the person's attributes;
//   - event.* and trigger.*: the send's data (both names bind the same map).
//
// Unlike plain Liquid, a variable printed by an output tag must have a value:
// {{ customer.first_name }} fails with a *MissingVariableError when the person
// has no first_name (absent or null at any level of the path), unless the
// tag's filters include default, as in {{ customer.first_name | default: "there" }}.
// Variables in tags ({% if customer.vip %}, {% for %}) and in filter
// arguments may be missing; they are then falsy or empty, as in Liquid.
//
// The rule is implemented by rewriting each output tag before parsing, so
// that a "required" filter checks the variable right after it is read (before
// other filters, which could turn a missing value into text), see rewrite.
package render

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/parser"
	"github.com/osteele/liquid/render"

	"github.com/heraldpush/herald/domain"
)

// MissingVariableError reports that an output tag printed a variable that has
// no value, and no default filter gives one.
type MissingVariableError struct {
	// Field is the message field whose template failed, such as "title".
	Field string
	// Variable is the variable's path as written, such as "customer.first_name".
	Variable string
}

// Error returns the delivery's failure reason: domain.ReasonVariableMissing,
// ": " and the variable's path, e.g.
// "Liquid error: variable is missing: customer.first_name".
func (e *MissingVariableError) Error() string {
	return domain.ReasonVariableMissing + ": " + e.Variable
}

// FieldError reports a template that cannot be parsed or rendered, with the
// field it belongs to.
type FieldError struct {
	Field string
	Err   error
}

// Error returns the field, ": " and the error, e.g.
// `title: Liquid syntax error: syntax error in "x |" in {{ x | }}`.
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// Reason returns the error as a delivery's failure reason: "Liquid error: ",
// the field and what went wrong, e.g. "Liquid error: body: division by zero
// in {{ 10 | divided_by: 0 }}".
func (e *FieldError) Reason() string {
	return domain.ReasonLiquidError + ": " + e.Field + ": " + liquidPrefix.ReplaceAllString(e.Err.Error(), "")
}

// liquidPrefix matches the "Liquid error: " (or "Liquid error (line 2): ")
// that starts osteele/liquid's messages.
var liquidPrefix = regexp.MustCompile(`^Liquid error(?: \(line \d+\))?: `)

// Engine parses and renders message templates. It is safe for concurrent
// use. Its Liquid has no file system: {% include %} and {% render %} are
// refused, and its tags are an allowlist (see tags.go). Every Render and
// Check runs under the Engine's Limits.
type Engine struct {
	cfg     render.Config
	filters map[string]bool
	limits  Limits
	// parsed caches parsed templates by source: a broadcast renders the
	// same few templates for every person (parsing was 10% of the send
	// path's CPU). Bounded: cleared when it reaches maxParsed entries.
	mu     sync.Mutex
	parsed map[string]render.Node
}

const maxParsed = 4096

// New returns an Engine with Liquid's standard filters and tags except
// {% include %} and {% render %}, bounded by limits (zero fields take
// their defaults).
func New(limits Limits) *Engine {
	limits = limits.withDefaults()
	cfg := render.NewConfig()
	names := addFilters(&cfg, limits.MaxBytes)
	addTags(&cfg)
	cfg.AddFilter(requiredFilter, func(v any, variable string) (any, error) {
		if isMissing(v) {
			return nil, &MissingVariableError{Variable: variable}
		}
		return v, nil
	})
	names[requiredFilter] = true
	return &Engine{cfg: cfg, filters: names, limits: limits, parsed: map[string]render.Node{}}
}

// Limits returns the limits every render runs under.
func (e *Engine) Limits() Limits { return e.limits }

// cached parses src once; only successful parses are kept.
func (e *Engine) cached(name, src string) (render.Node, error) {
	e.mu.Lock()
	tpl, ok := e.parsed[src]
	e.mu.Unlock()
	if ok {
		return tpl, nil
	}
	tpl, err := e.parse(name, src, true)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if len(e.parsed) >= maxParsed {
		e.parsed = map[string]render.Node{}
	}
	e.parsed[src] = tpl
	e.mu.Unlock()
	return tpl, nil
}

// isMissing reports whether a value read from the bindings is absent: nil,
// or a nil map, slice or pointer (a JSON null decodes to nil).
func isMissing(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Map, reflect.Slice, reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// Check parses every field's template and reports the first one (in field
// name order) that is not valid Liquid, as a *FieldError. It also reports
// output tags that use an undefined filter, which Liquid only finds when
// rendering, and templates that go over the Engine's Limits whatever the
// data: it renders the fields as one push with no customer and no data
// (every variable empty, none required), and a render over budget is a
// *FieldError whose Err is a *BudgetError. Other errors of that render are
// not reported, since real data may avoid them; Render reports them.
func (e *Engine) Check(fields map[string]string) error {
	runtime.LockOSThread() // the budget's clock is this thread's CPU time
	defer runtime.UnlockOSThread()
	trial := make(map[string]render.Node, len(fields))
	for _, name := range sortedKeys(fields) {
		if err := unclosedTag(fields[name]); err != nil {
			return &FieldError{Field: name, Err: err}
		}
		if _, err := e.parse(name, fields[name], true); err != nil {
			return err
		}
		if err := e.checkFilters(name, fields[name]); err != nil {
			return err
		}
		node, err := e.parse(name, fields[name], false)
		if err != nil {
			return err
		}
		trial[name] = node
	}
	b := newBudget(e.limits)
	bindings := map[string]any{"customer": map[string]any{}, "event": map[string]any{}, "trigger": map[string]any{}, budgetKey: b}
	for _, name := range sortedKeys(fields) {
		if _, err := e.renderNode(trial[name], bindings, b); err != nil {
			var over *BudgetError
			if causeAs(err, &over) {
				return &FieldError{Field: name, Err: over}
			}
		}
	}
	return nil
}

// Render renders every field with customer bound to customer.* and data to
// event.* and trigger.*, and returns the rendered text by field name. The
// first failure, in field name order, is returned as a *MissingVariableError
// or a *FieldError; a render over the Engine's Limits (counted over all the
// fields) stops there and is a *FieldError whose Err is a *BudgetError.
func (e *Engine) Render(fields map[string]string, customer map[string]any, data map[string]any) (map[string]string, error) {
	runtime.LockOSThread() // the budget's clock is this thread's CPU time
	defer runtime.UnlockOSThread()
	b := newBudget(e.limits)
	bindings := map[string]any{
		"customer": customer,
		"event":    data,
		"trigger":  data,
		budgetKey:  b,
	}
	out := make(map[string]string, len(fields))
	for _, name := range sortedKeys(fields) {
		src := fields[name]
		if static(src) {
			// Text without a tag renders as itself: skip Liquid, charge its bytes.
			if err := b.charge(len(src)); err != nil {
				return nil, &FieldError{Field: name, Err: b.err}
			}
			out[name] = src
			continue
		}
		tpl, err := e.cached(name, src)
		if err != nil {
			return nil, err
		}
		text, rerr := e.renderNode(tpl, bindings, b)
		if rerr != nil {
			var over *BudgetError
			if causeAs(rerr, &over) {
				return nil, &FieldError{Field: name, Err: over}
			}
			if m := missingVariable(rerr); m != nil {
				return nil, &MissingVariableError{Field: name, Variable: m.Variable}
			}
			return nil, &FieldError{Field: name, Err: e.renderError(src, customer, data, rerr)}
		}
		out[name] = text
	}
	return out, nil
}

// static reports whether src holds no Liquid tag or output ("{%", "{{"),
// so that it renders as itself.
func static(src string) bool {
	return !strings.Contains(src, "{{") && !strings.Contains(src, "{%")
}

// renderNode renders one parsed template into a string under b. A panic
// in osteele/liquid (it has some, and it panics when its writer fails at the
// end of a block) is the budget's error if the budget ran out, or else a
// render error.
func (e *Engine) renderNode(node render.Node, bindings map[string]any, b *budget) (text string, err error) {
	defer func() {
		if p := recover(); p != nil {
			if b.err != nil {
				text, err = "", b.err
				return
			}
			text, err = "", fmt.Errorf("Liquid error: %v", p)
		}
	}()
	w := &writer{b: b}
	if rerr := render.Render(node, w, bindings, e.cfg); rerr != nil {
		if b.err != nil {
			return "", b.err
		}
		return "", rerr
	}
	return string(w.buf), nil
}

// parse parses the template src of the field name, rewritten (see rewrite)
// with or without the required filters.
func (e *Engine) parse(name, src string, required bool) (tpl render.Node, err error) {
	// osteele/liquid v1.6.0 panics on some input (an integer literal out of
	// range, found by FuzzRender): a template that crashes the parser is a
	// syntax error of that field.
	defer func() {
		if p := recover(); p != nil {
			tpl, err = nil, &FieldError{Field: name, Err: syntaxError{fmt.Errorf("Liquid syntax error: %v", p)}}
		}
	}()
	rewritten, _ := rewrite(src, required)
	tpl, perr := e.cfg.Compile(rewritten, parser.SourceLoc{})
	if perr == nil {
		return tpl, nil
	}
	err = perr
	// Report the error as the original source shows it, not the rewrite.
	if _, orig := e.cfg.Compile(src, parser.SourceLoc{}); orig != nil {
		err = orig
	}
	return nil, &FieldError{Field: name, Err: syntaxError{err}}
}

// renderError returns the error of rendering the template src without the
// required filters, whose message shows the source as its author wrote it,
// under a budget of its own; or err if that render succeeds or fails
// otherwise (over budget, or a different error).
func (e *Engine) renderError(src string, customer, data map[string]any, err error) error {
	node, perr := e.parse("", src, false)
	if perr != nil {
		return err
	}
	b := newBudget(e.limits)
	bindings := map[string]any{"customer": customer, "event": data, "trigger": data, budgetKey: b}
	if _, orig := e.renderNode(node, bindings, b); orig != nil && b.err == nil {
		return orig
	}
	return err
}

// checkFilters reports the first filter of an output tag in src that is not
// defined.
func (e *Engine) checkFilters(name, src string) error {
	var err error
	scan(src, func(string) {}, func(t outputTag) {
		for _, f := range t.filters {
			if fn := filterName(f); err == nil && !e.filters[fn] {
				err = &FieldError{Field: name, Err: fmt.Errorf("Liquid error: undefined filter %q", fn)}
			}
		}
	})
	return err
}

// syntaxError is a parse error of osteele/liquid, whose message starts with
// "Liquid error: "; it reads "Liquid syntax error: " instead.
type syntaxError struct{ err error }

func (e syntaxError) Error() string {
	return "Liquid syntax error: " + strings.TrimPrefix(e.err.Error(), "Liquid error: ")
}

func (e syntaxError) Unwrap() error { return e.err }

// missingVariable returns the *MissingVariableError that the required filter
// returned, inside a render error, or nil.
func missingVariable(err error) *MissingVariableError {
	var m *MissingVariableError
	if causeAs(err, &m) {
		return m
	}
	return nil
}

// causeAs is errors.As for osteele/liquid's errors, which do not implement
// Unwrap: a render error holds its cause behind Cause(), and a filter's error
// is held in an expressions.FilterError value.
func causeAs[T error](err error, target *T) bool {
	for depth := 0; err != nil && depth < 16; depth++ {
		if errors.As(err, target) {
			return true
		}
		switch e := err.(type) {
		case expressions.FilterError:
			err = e.Err
		case *expressions.FilterError:
			err = e.Err
		case interface{ Cause() error }:
			err = e.Cause()
		default:
			return false
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// unclosedTag reports a "{{" or "{%" that is never closed. Liquid itself
// renders such text literally, which hides a typo in a push title.
func unclosedTag(src string) error {
	for i := 0; i < len(src)-1; i++ {
		if src[i] != '{' || (src[i+1] != '{' && src[i+1] != '%') {
			continue
		}
		closing := "}}"
		if src[i+1] == '%' {
			closing = "%}"
		}
		j := strings.Index(src[i+2:], closing)
		if j < 0 {
			return fmt.Errorf("Liquid syntax error: %q at offset %d is never closed with %q", src[i:i+2], i, closing)
		}
		i += 2 + j + 1
	}
	return nil
}

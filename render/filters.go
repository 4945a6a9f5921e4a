package render

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/osteele/liquid/filters"
	"github.com/osteele/liquid/render"
	"github.com/osteele/liquid/values"
)

// filterSet records the filters that filters.AddStandardFilters defines.
type filterSet map[string]any

func (s filterSet) AddFilter(name string, fn any) { s[name] = fn }

// addFilters registers Liquid's standard filters on c, each bounded by
// maxBytes: a filter that would make a value larger than maxBytes fails
// with a *BudgetError. The filters that can grow a value by more than a
// small factor (append, prepend, replace, replace_first, concat, join)
// are replaced by versions that check the size before they allocate;
// uniq, whose standard version is quadratic in lists of lists or maps, by
// a linear one. It returns the names of the filters it registered.
func addFilters(c *render.Config, maxBytes int) map[string]bool {
	set := filterSet{}
	filters.AddStandardFilters(set)
	over := func() error { return &BudgetError{What: fmt.Sprintf("a value of more than %d bytes", maxBytes)} }
	fit := func(n int) error {
		if n > maxBytes {
			return over()
		}
		return nil
	}
	set["append"] = func(s, suffix string) (string, error) {
		if err := fit(len(s) + len(suffix)); err != nil {
			return "", err
		}
		return s + suffix, nil
	}
	set["prepend"] = func(s, prefix string) (string, error) {
		if err := fit(len(s) + len(prefix)); err != nil {
			return "", err
		}
		return prefix + s, nil
	}
	set["replace"] = func(s, old, repl string) (string, error) {
		n := strings.Count(s, old) // an empty old matches before every rune and at the end
		if err := fit(len(s) + n*(len(repl)-len(old))); err != nil {
			return "", err
		}
		return strings.ReplaceAll(s, old, repl), nil
	}
	set["replace_first"] = func(s, old, repl string) (string, error) {
		if err := fit(len(s) + len(repl)); err != nil {
			return "", err
		}
		return strings.Replace(s, old, repl, 1), nil
	}
	set["concat"] = func(a, b []any) ([]any, error) {
		if err := fit(16 * (len(a) + len(b))); err != nil {
			return nil, err
		}
		return append(append(make([]any, 0, len(a)+len(b)), a...), b...), nil
	}
	set["join"] = func(a []any, sep func(string) string) (string, error) {
		s := sep(" ")
		var b strings.Builder
		for _, v := range a {
			if v == nil {
				continue
			}
			text := fmt.Sprint(v)
			if err := fit(b.Len() + len(s) + len(text)); err != nil {
				return "", err
			}
			if b.Len() > 0 {
				b.WriteString(s)
			}
			b.WriteString(text)
		}
		return b.String(), nil
	}
	set["uniq"] = uniq
	names := map[string]bool{}
	for name, fn := range set {
		if name == "default" {
			// It returns one of its arguments, which the budget has
			// already let through (a range stays a range until a bounded
			// filter, a loop or the output takes it): no bound needed, and
			// the most used filter in pushes skips bounded's reflection
			// (a fifth of a short render's CPU: BenchmarkRenderDefault).
			c.AddFilter(name, fn)
		} else {
			c.AddFilter(name, bounded(fn, maxBytes))
		}
		names[name] = true
	}
	return names
}

var (
	anyType   = reflect.TypeOf((*any)(nil)).Elem()
	errorType = reflect.TypeOf((*error)(nil)).Elem()
)

// bounded wraps the filter fn in a function of the same arity that takes
// its arguments unconverted, refuses a range argument (1..n) too large to
// become a list, calls fn with osteele/liquid's conversions, and refuses a
// result larger than maxBytes. Optional arguments (parameters of type
// func(T) T) keep their types, as liquid gives them defaults by type.
func bounded(fn any, maxBytes int) any {
	fv := reflect.ValueOf(fn)
	ft := fv.Type()
	in := make([]reflect.Type, ft.NumIn())
	for i := range in {
		in[i] = anyType
		if optional(ft.In(i)) {
			in[i] = ft.In(i)
		}
	}
	wt := reflect.FuncOf(in, []reflect.Type{anyType, errorType}, false)
	ret := func(v any, err error) []reflect.Value {
		out := reflect.New(anyType).Elem()
		if v != nil {
			out.Set(reflect.ValueOf(v))
		}
		e := reflect.New(errorType).Elem()
		if err != nil {
			e.Set(reflect.ValueOf(err))
		}
		return []reflect.Value{out, e}
	}
	return reflect.MakeFunc(wt, func(args []reflect.Value) []reflect.Value {
		call := make([]reflect.Value, len(args))
		for i, a := range args {
			if optional(ft.In(i)) {
				call[i] = a
				continue
			}
			v := a.Interface()
			if r, ok := v.(values.Range); ok && 16*r.Len() > maxBytes {
				return ret(nil, &BudgetError{What: fmt.Sprintf("a range of %d items", r.Len())})
			}
			if v == nil {
				call[i] = reflect.Zero(ft.In(i))
			} else {
				call[i] = reflect.ValueOf(values.MustConvert(v, ft.In(i)))
			}
		}
		res := fv.Call(call)
		if len(res) > 1 && !res[1].IsNil() {
			return ret(nil, res[1].Interface().(error))
		}
		v := res[0].Interface()
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		if sizeOf(v, maxBytes) > maxBytes {
			return ret(nil, &BudgetError{What: fmt.Sprintf("a value of more than %d bytes", maxBytes)})
		}
		return ret(v, nil)
	}).Interface()
}

// optional reports whether t is the type liquid uses for an optional
// filter argument.
func optional(t reflect.Type) bool {
	return t.Kind() == reflect.Func && t.NumIn() == 1 && t.NumOut() == 1
}

// uniq is Liquid's uniq filter in linear time: items are grouped by their
// printed form and compared only within a group.
func uniq(a []any) []any {
	var out []any
	seen := map[any]bool{}
	groups := map[string][]any{}
	for _, item := range a {
		if item != nil && reflect.TypeOf(item).Comparable() {
			if !seen[item] {
				seen[item] = true
				out = append(out, item)
			}
			continue
		}
		key := fmt.Sprint(item)
		if len(key) > 256 {
			key = key[:256]
			for !utf8.ValidString(key) {
				key = key[:len(key)-1]
			}
		}
		dup := false
		for _, other := range groups[key] {
			if reflect.DeepEqual(item, other) {
				dup = true
				break
			}
		}
		if !dup {
			groups[key] = append(groups[key], item)
			out = append(out, item)
		}
	}
	return out
}

package render

import (
	"fmt"
	"reflect"
	"time"

	"github.com/osteele/liquid/values"

	"github.com/heraldpush/herald/domain"
)

// Limits bound the rendering of one push (all of its fields together).
// osteele/liquid has none of its own: it ignores contexts, and one
// {% assign %} in a loop can double a string until the process runs out of
// memory. The zero value of a field means its default.
type Limits struct {
	// MaxBytes is the most bytes one push's templates may produce in all:
	// their output and every value they assign or capture; it also bounds
	// the result of any one filter. Default 65536 (HERALD_TEMPLATE_MAX_BYTES).
	MaxBytes int
	// MaxIterations is the most loop iterations ({% for %}, {% tablerow %})
	// one push's templates may run, nested loops counted in full.
	// Default 10000 (HERALD_TEMPLATE_MAX_ITERATIONS).
	MaxIterations int
	// CPUTime is the most CPU time one push's templates may use to render
	// (the rendering thread's, so that a render on a busy machine is not
	// failed for waiting; wall time where the OS has no thread clock).
	// Default 100ms (HERALD_TEMPLATE_CPU_TIME).
	CPUTime time.Duration
}

// Default limits.
const (
	DefaultMaxBytes      = 64 << 10
	DefaultMaxIterations = 10_000
	DefaultCPUTime       = 100 * time.Millisecond
)

// withDefaults returns l with every unset (or negative) field at its default.
func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxIterations <= 0 {
		l.MaxIterations = DefaultMaxIterations
	}
	if l.CPUTime <= 0 {
		l.CPUTime = DefaultCPUTime
	}
	return l
}

// BudgetError reports a render that went over one of its Limits. The render
// stops where it went over.
type BudgetError struct {
	// What names the limit, e.g. "more than 65536 bytes".
	What string
}

// Error returns e.g. "Liquid error: template over its budget: more than 65536 bytes".
func (e *BudgetError) Error() string {
	return domain.ReasonLiquidError + ": template over its budget: " + e.What
}

// budget is the running account of one Render call. The tags and the
// output writer charge it; the first overrun is kept in err and every later
// charge fails with it, so that a template cannot carry on past an overrun
// by catching the error (no Liquid tag can, but the rule is simple).
type budget struct {
	limits     Limits
	clock      func() time.Duration
	deadline   time.Duration // of clock
	bytes      int           // left
	iterations int           // left
	err        *BudgetError
	// checks counts checkTime's calls, and sinceClock the bytes charged
	// since it last read the clock (a system call, 25% of a typical
	// render's CPU when read on every charge).
	checks, sinceClock int
}

// clockEvery is how many checks, or bytes charged, may pass between two
// readings of the clock; a check's work is bounded, so this bounds the
// CPU time a render can use past its limit.
const clockEvery = 64

// newBudget starts a budget. Its clock is the calling thread's CPU time,
// so the caller must hold its OS thread (runtime.LockOSThread) while it
// renders; see Engine.Render.
func newBudget(l Limits) *budget {
	clock := func() time.Duration { d, _ := threadCPU(); return d }
	now, ok := threadCPU() // one system call: a third of a short render's CPU was two
	if !ok {
		start := time.Now()
		clock, now = func() time.Duration { return time.Since(start) }, 0
	}
	return &budget{limits: l, clock: clock, deadline: now + l.CPUTime, bytes: l.MaxBytes, iterations: l.MaxIterations}
}

// budgetKey is the binding that holds a render's *budget. It is not a
// Liquid identifier, so templates cannot read or assign it.
const budgetKey = "\x00herald budget"

// budgetOf returns the budget bound by Render. A render without one (which
// Engine never makes) gets an empty budget, so that it fails at its first
// loop or assignment instead of running unbounded.
func budgetOf(bindings map[string]any) *budget {
	if b, ok := bindings[budgetKey].(*budget); ok {
		return b
	}
	return &budget{err: &BudgetError{What: "no budget"}}
}

func (b *budget) fail(format string, a ...any) error {
	if b.err == nil {
		b.err = &BudgetError{What: fmt.Sprintf(format, a...)}
	}
	return b.err
}

// checkTime fails once the render has used its CPU time.
func (b *budget) checkTime() error {
	if b.err != nil {
		return b.err
	}
	if b.checks++; b.checks%clockEvery != 0 && b.sinceClock < clockEvery<<10 {
		return nil
	}
	b.sinceClock = 0
	if b.clock() > b.deadline {
		return b.fail("used more than %s of CPU", b.limits.CPUTime)
	}
	return nil
}

// charge takes n bytes from the budget.
func (b *budget) charge(n int) error {
	if err := b.checkTime(); err != nil {
		return err
	}
	b.bytes -= n
	b.sinceClock += n
	if b.bytes < 0 {
		return b.fail("more than %d bytes", b.limits.MaxBytes)
	}
	return nil
}

// iterate takes one loop iteration from the budget.
func (b *budget) iterate() error {
	if err := b.checkTime(); err != nil {
		return err
	}
	b.iterations--
	if b.iterations < 0 {
		return b.fail("more than %d loop iterations", b.limits.MaxIterations)
	}
	return nil
}

// writer charges every byte written through it to the budget.
type writer struct {
	b   *budget
	buf []byte
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.b.charge(len(p)); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// sizeOf estimates the bytes that a Liquid value holds: a string's length,
// and for a list or map 16 bytes per item plus the items' sizes. It stops
// counting once the total passes limit (the answer is then over limit), so
// that measuring a huge value costs no more than the limit. A range (1..n)
// counts as the list it becomes when a filter receives it.
func sizeOf(v any, limit int) int {
	n := 0
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if n > limit || depth > 64 {
			n += 16
			return
		}
		switch v := v.(type) {
		case nil, bool, int, int64, float64, time.Time:
			n += 8
			return
		case string:
			n += len(v)
			return
		case []byte:
			n += len(v)
			return
		case values.Range:
			n += 16 * v.Len()
			return
		case []any:
			for _, x := range v {
				n += 16
				walk(x, depth+1)
				if n > limit {
					return
				}
			}
			return
		case map[string]any:
			for k, x := range v {
				n += 16 + len(k)
				walk(x, depth+1)
				if n > limit {
					return
				}
			}
			return
		}
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.String:
			n += rv.Len()
		case reflect.Slice, reflect.Array:
			for i := 0; i < rv.Len() && n <= limit; i++ {
				n += 16
				walk(rv.Index(i).Interface(), depth+1)
			}
		case reflect.Map:
			iter := rv.MapRange()
			for iter.Next() && n <= limit {
				n += 16
				walk(iter.Key().Interface(), depth+1)
				walk(iter.Value().Interface(), depth+1)
			}
		default:
			n += 8
		}
	}
	walk(v, 0)
	return n
}

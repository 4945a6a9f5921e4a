package render

// The tags of Herald's Liquid: an allowlist, registered on an empty
// render.Config instead of osteele/liquid's standard set, so that no tag
// can reach outside the template. The standard {% include %} reads any file
// the process can read (render.Context.RenderFile → os.ReadFile); here it
// and {% render %} are refused when a template is parsed, and no tag of this
// file calls RenderFile. The loop, assign and capture tags charge the
// render's budget (see Limits), which the standard ones cannot do.
//
// The tags other than include/render behave as osteele/liquid v1.6.0's
// (tags/standard_tags.go, control_flow_tags.go, iteration_tags.go; MIT
// licence), from which they are adapted.

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"

	e "github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/render"
	"github.com/osteele/liquid/values"
)

// refusedTags are the Liquid tags that read templates from elsewhere.
var refusedTags = []string{"include", "render"}

func addTags(c *render.Config) {
	for _, name := range refusedTags {
		c.AddTag(name, func(string) (func(io.Writer, render.Context) error, error) {
			return nil, fmt.Errorf("{%% %s %%} is not supported: templates cannot include other templates or files", name)
		})
	}
	c.AddTag("assign", assignTag)
	c.AddTag("break", breakTag)
	c.AddTag("continue", continueTag)
	c.AddTag("cycle", cycleTag)
	c.AddBlock("capture").Compiler(captureTag)
	c.AddBlock("case").Clause("when").Clause("else").Compiler(caseTag)
	c.AddBlock("comment")
	c.AddBlock("for").Clause("else").Compiler(loopTag)
	c.AddBlock("if").Clause("else").Clause("elsif").Compiler(ifTag(true))
	c.AddBlock("raw")
	c.AddBlock("tablerow").Compiler(loopTag)
	c.AddBlock("unless").Clause("else").Compiler(ifTag(false))
}

// assignTag is {% assign name = expr %}; the value's size is charged.
func assignTag(source string) (func(io.Writer, render.Context) error, error) {
	stmt, err := e.ParseStatement(e.AssignStatementSelector, source)
	if err != nil {
		return nil, err
	}
	return func(_ io.Writer, ctx render.Context) error {
		value, err := ctx.Evaluate(stmt.Assignment.ValueFn)
		if err != nil {
			return err
		}
		b := budgetOf(ctx.Bindings())
		if err := b.charge(sizeOf(value, b.bytes)); err != nil {
			return err
		}
		ctx.Set(stmt.Assignment.Variable, value)
		return nil
	}, nil
}

// captureTag is {% capture name %}…{% endcapture %}; the body renders
// through the budget's writer, so its bytes are charged as they are made.
func captureTag(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	name := node.Args
	return func(_ io.Writer, ctx render.Context) error {
		w := &writer{b: budgetOf(ctx.Bindings())}
		if err := ctx.RenderChildren(w); err != nil {
			return err
		}
		ctx.Set(name, string(w.buf))
		return nil
	}, nil
}

func caseTag(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	expr, err := e.Parse(node.Args)
	if err != nil {
		return nil, err
	}
	type clause struct {
		exprs []e.Expression // nil: else
		body  *render.BlockNode
	}
	var clauses []clause
	for _, c := range node.Clauses {
		if c.Name != "when" {
			clauses = append(clauses, clause{body: c})
			continue
		}
		stmt, err := e.ParseStatement(e.WhenStatementSelector, c.Args)
		if err != nil {
			return nil, err
		}
		clauses = append(clauses, clause{exprs: stmt.When.Exprs, body: c})
	}
	return func(w io.Writer, ctx render.Context) error {
		sel, err := ctx.Evaluate(expr)
		if err != nil {
			return err
		}
		for _, c := range clauses {
			match := c.exprs == nil
			for _, x := range c.exprs {
				v, err := ctx.Evaluate(x)
				if err != nil {
					return err
				}
				if values.Equal(sel, v) {
					match = true
					break
				}
			}
			if match {
				return ctx.RenderBlock(w, c.body)
			}
		}
		return nil
	}, nil
}

func ifTag(polarity bool) render.BlockCompiler {
	return func(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
		type branch struct {
			test e.Expression
			body *render.BlockNode
		}
		expr, err := e.Parse(node.Args)
		if err != nil {
			return nil, err
		}
		if !polarity {
			expr = e.Not(expr)
		}
		branches := []branch{{expr, &node}}
		for _, c := range node.Clauses {
			test := e.Constant(true)
			if c.Name == "elsif" {
				if test, err = e.Parse(c.Args); err != nil {
					return nil, err
				}
			}
			branches = append(branches, branch{test, c})
		}
		return func(w io.Writer, ctx render.Context) error {
			for _, b := range branches {
				v, err := ctx.Evaluate(b.test)
				if err != nil {
					return err
				}
				if v != nil && v != false {
					return ctx.RenderBlock(w, b.body)
				}
			}
			return nil
		}, nil
	}
}

const forloopVar = "forloop"

var (
	errBreak    = errors.New("break outside a loop")
	errContinue = errors.New("continue outside a loop")
)

func breakTag(string) (func(io.Writer, render.Context) error, error) {
	return func(_ io.Writer, ctx render.Context) error { return ctx.WrapError(errBreak) }, nil
}

func continueTag(string) (func(io.Writer, render.Context) error, error) {
	return func(_ io.Writer, ctx render.Context) error { return ctx.WrapError(errContinue) }, nil
}

func cycleTag(args string) (func(io.Writer, render.Context) error, error) {
	stmt, err := e.ParseStatement(e.CycleStatementSelector, args)
	if err != nil {
		return nil, err
	}
	cycle := stmt.Cycle
	return func(w io.Writer, ctx render.Context) error {
		loop, _ := ctx.Get(forloopVar).(map[string]any)
		cycles, ok := loop[".cycles"].(map[string]int)
		if !ok {
			return ctx.Errorf("cycle must be within a forloop")
		}
		n := cycles[cycle.Group]
		cycles[cycle.Group] = n + 1
		_, err := io.WriteString(w, cycle.Values[n%len(cycle.Values)])
		return err
	}, nil
}

type iterable interface {
	Len() int
	Index(int) any
}

// loopTag is {% for %} and {% tablerow %}. Every iteration is charged to
// the render's budget before its body renders, so a loop of any length, or
// nested loops, stop at the budget's iteration count or deadline.
func loopTag(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	stmt, err := e.ParseStatement(e.LoopStatementSelector, node.Args)
	if err != nil {
		return nil, err
	}
	loop := stmt.Loop
	if len(node.Clauses) > 1 {
		return nil, errors.New("for loops accept at most one else clause")
	}
	return func(w io.Writer, ctx render.Context) error {
		val, err := ctx.Evaluate(loop.Expr)
		if err != nil {
			return err
		}
		iter := makeIterator(val)
		if iter == nil {
			return nil
		}
		if iter, err = loopModifiers(loop, ctx, iter); err != nil {
			return err
		}
		if iter.Len() == 0 && len(node.Clauses) == 1 && node.Clauses[0].Name == "else" {
			return ctx.RenderBlock(w, node.Clauses[0])
		}
		cols := 0
		if node.Name == "tablerow" {
			cols = math32
			if loop.Cols != nil {
				v, err := ctx.Evaluate(loop.Cols)
				if err != nil {
					return err
				}
				n, ok := v.(int)
				if !ok {
					return ctx.Errorf("loop cols must be an integer")
				}
				if n > 0 {
					cols = n
				}
			}
		}
		return renderLoop(w, ctx, loop.Variable, iter, cols)
	}, nil
}

const math32 = 1<<31 - 1

// renderLoop renders the body once per item; cols > 0 wraps each item in
// tablerow's <tr>/<td> tags.
func renderLoop(w io.Writer, ctx render.Context, variable string, iter iterable, cols int) error {
	b := budgetOf(ctx.Bindings())
	defer func(forloop, item any) {
		ctx.Set(forloopVar, forloop)
		ctx.Set(variable, item)
	}(ctx.Get(forloopVar), ctx.Get(variable))
	cycles := map[string]int{}
	for i, l := 0, iter.Len(); i < l; i++ {
		if err := b.iterate(); err != nil {
			return err
		}
		ctx.Set(variable, iter.Index(i))
		ctx.Set(forloopVar, map[string]any{
			"first": i == 0, "last": i == l-1,
			"index": i + 1, "index0": i,
			"rindex": l - i, "rindex0": l - i - 1,
			"length": l, ".cycles": cycles,
		})
		if cols > 0 {
			row, col := i/cols, i%cols
			if col == 0 {
				if _, err := fmt.Fprintf(w, `<tr class="row%d">`, row+1); err != nil {
					return err
				}
			}
			if _, err := fmt.Fprintf(w, `<td class="col%d">`, col+1); err != nil {
				return err
			}
		}
		rerr := ctx.RenderChildren(w)
		if cols > 0 {
			if _, err := io.WriteString(w, `</td>`); err != nil {
				return err
			}
			if (i+1)%cols == 0 || i+1 == l {
				if _, err := io.WriteString(w, `</tr>`); err != nil {
					return err
				}
			}
		}
		switch {
		case rerr == nil:
		case rerr.Cause() == errBreak:
			return nil
		case rerr.Cause() == errContinue:
		default:
			return rerr
		}
	}
	return nil
}

func loopModifiers(loop e.Loop, ctx render.Context, iter iterable) (iterable, error) {
	if loop.Reversed {
		iter = reversed{iter}
	}
	intArg := func(x e.Expression, what string) (int, bool, error) {
		if x == nil {
			return 0, false, nil
		}
		v, err := ctx.Evaluate(x)
		if err != nil {
			return 0, false, err
		}
		n, ok := v.(int)
		if !ok {
			return 0, false, ctx.Errorf("loop %s must be an integer", what)
		}
		return n, true, nil
	}
	if n, ok, err := intArg(loop.Offset, "offset"); err != nil {
		return nil, err
	} else if ok && n > 0 {
		iter = offset{iter, n}
	}
	if n, ok, err := intArg(loop.Limit, "limit"); err != nil {
		return nil, err
	} else if ok && n >= 0 {
		iter = limit{iter, n}
	}
	return iter, nil
}

func makeIterator(value any) iterable {
	if it, ok := value.(iterable); ok {
		return it
	}
	if value == nil {
		return nil
	}
	rv := reflect.ValueOf(value)
	switch rv.Kind() {
	case reflect.Array, reflect.Slice:
		return sliceIter(rv)
	case reflect.Map:
		pairs := make([][]any, 0, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			pairs = append(pairs, []any{iter.Key().Interface(), iter.Value().Interface()})
		}
		// Map order is random in Go; sorted by key, a template renders the same each time.
		sort.Slice(pairs, func(i, j int) bool { return fmt.Sprint(pairs[i][0]) < fmt.Sprint(pairs[j][0]) })
		return sliceIter(reflect.ValueOf(pairs))
	}
	return nil
}

type sliceIter reflect.Value

func (s sliceIter) Len() int        { return reflect.Value(s).Len() }
func (s sliceIter) Index(i int) any { return reflect.Value(s).Index(i).Interface() }

type limit struct {
	iterable
	n int
}

func (l limit) Len() int { return min(l.n, l.iterable.Len()) }

type offset struct {
	iterable
	n int
}

func (o offset) Len() int        { return max(0, o.iterable.Len()-o.n) }
func (o offset) Index(i int) any { return o.iterable.Index(i + o.n) }

type reversed struct{ iterable }

func (r reversed) Index(i int) any { return r.iterable.Index(r.iterable.Len() - 1 - i) }

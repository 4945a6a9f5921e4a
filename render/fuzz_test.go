package render

import (
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FuzzRender: checking and rendering any template never panics; a template
// that Check accepts renders without a syntax error; a missing variable is
// always reported as a MissingVariableError naming a customer.*, event.* or
// trigger.* path. Seeds: testdata/fuzz/FuzzRender.
// Run: go test -run '^$' -fuzz FuzzRender ./render/
func FuzzRender(f *testing.F) {
	f.Add("Hi {{ customer.first_name | default: \"there\" }}!")
	f.Add("{% if customer.vip %}VIP{% endif %} {{ event.items[0] }}")
	f.Add("{{ customer.name | upcase | append: \"}}\" }}")
	e := New(Limits{})
	customer := map[string]any{"first_name": "Ada", "vip": true, "address": map[string]any{"city": "Paris"}}
	data := map[string]any{"items": []any{"book"}, "order": 7}
	f.Fuzz(func(t *testing.T, src string) {
		fields := map[string]string{"title": src}
		if err := e.Check(fields); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "title" {
				t.Fatalf("Check error %T %v does not name the field", err, err)
			}
			return
		}
		out, err := e.Render(fields, customer, data)
		if err == nil {
			if _, ok := out["title"]; !ok {
				t.Fatal("rendered without a title")
			}
			return
		}
		var missing *MissingVariableError
		if errors.As(err, &missing) {
			if !strings.HasPrefix(missing.Error(), "Liquid error: variable is missing: ") {
				t.Fatalf("missing-variable message %q", missing.Error())
			}
			return
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("render error %T %v does not name the field", err, err)
		}
	})
}

// FuzzTemplateBudget: Check (the check at creation) and Render under a small
// budget never panic and never go over the budget: the output fits in
// MaxBytes, a render uses about CPUTime at most, and it allocates a bounded
// amount. They agree: a template Check accepts renders or fails with a
// "Liquid error: …" reason, and with no data (as Check renders it) it is
// never over the budget, except by CPU time (which varies from run to run).
// Seeds: testdata/fuzz/FuzzTemplateBudget.
// Run: go test ./render -run '^$' -fuzz FuzzTemplateBudget -parallel 1
func FuzzTemplateBudget(f *testing.F) {
	f.Add(`{% assign s = "xxxxxxxxxx" %}{% for i in (1..24) %}{% assign s = s | append: s %}{% endfor %}`)
	f.Add(`{% for i in (1..100000) %}{% for j in (1..100000) %}{% endfor %}{% endfor %}`)
	f.Add(`{% include "../../../proc/self/environ" %}`)
	f.Add(`{{ 10 | divided_by: 0 }}`)
	f.Add(`{% capture c %}{% for x in customer.items %}{{ x | upcase }},{% endfor %}{% endcapture %}{{ c | split: "," | uniq | join: "-" }}`)
	f.Add(`{% tablerow i in (1..customer.n) cols:2 %}{% cycle "a", "b" %}{% endtablerow %}{{ (1..5) | join }}`)
	f.Add(`{{ "ab" | replace: "", "xyz" | replace: "", "xyz" | prepend: customer.first_name }}`)
	limits := Limits{MaxBytes: 4096, MaxIterations: 1000, CPUTime: 50 * time.Millisecond}
	e := New(limits)
	customer := map[string]any{"first_name": "Ada", "n": 40, "items": []any{"a", "b", "a", map[string]any{"k": "v"}}}
	data := map[string]any{"order": 7}
	var before, after runtime.MemStats
	f.Fuzz(func(t *testing.T, src string) {
		fields := map[string]string{"body": src}
		runtime.ReadMemStats(&before)
		cpu0 := processCPU()
		cerr := e.Check(fields)
		out, rerr := e.Render(fields, customer, data)
		cpu := processCPU() - cpu0
		runtime.ReadMemStats(&after)

		// Check renders once and Render at most twice (the second for the
		// error's message), each under a budget of CPUTime; parsing is
		// outside it but linear in the template's length.
		if cpu > 3*limits.CPUTime+time.Second {
			t.Fatalf("Check and Render used %s of CPU; budget %s each", cpu, limits.CPUTime)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20+1000*uint64(len(src)) {
			t.Fatalf("Check and Render allocated %d bytes", alloc)
		}
		if len(out["body"]) > limits.MaxBytes {
			t.Fatalf("rendered %d bytes, over %d", len(out["body"]), limits.MaxBytes)
		}
		if cerr != nil {
			var fe *FieldError
			if !errors.As(cerr, &fe) || fe.Field != "body" {
				t.Fatalf("Check error %T %v does not name the field", cerr, cerr)
			}
			return
		}
		if rerr != nil && !strings.HasPrefix(reasonOf(t, rerr), "Liquid error: ") {
			t.Fatalf("accepted template failed with reason %q", reasonOf(t, rerr))
		}
		var over *BudgetError
		if _, err := e.Render(fields, nil, nil); errors.As(err, &over) && !strings.HasPrefix(over.What, "used more than") {
			t.Fatalf("Check accepted it, but with no data it is over budget: %v", err)
		}
	})
}

// processCPU returns the CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// reasonOf returns a Render error as the worker's failure reason.
func reasonOf(t *testing.T, err error) string {
	var missing *MissingVariableError
	var fe *FieldError
	switch {
	case errors.As(err, &missing):
		return missing.Error()
	case errors.As(err, &fe):
		return fe.Reason()
	}
	t.Fatalf("render error %T %v is neither", err, err)
	return ""
}

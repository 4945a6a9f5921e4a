package render

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/osteele/liquid"
)

// The review's 107-byte template: 10 bytes doubled 24 times (160 MB).
const doubling = `{% assign s = "xxxxxxxxxx" %}{% for i in (1..24) %}{% assign s = s | append: s %}{% endfor %}`

// TestNoFileSystem: include and render are syntax errors naming the field,
// in Check and in Render (a template stored before Check refused them),
// and a file that exists is never read.
func TestNoFileSystem(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("TOPSECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	rel, _ := filepath.Rel(wd, filepath.Join(dir, "secret"))
	e := New(Limits{})
	for _, src := range []string{
		`{% include "` + rel + `" %}`,
		`{%- include '` + rel + `' -%}`,
		`{% if true %}{% include "` + rel + `" %}{% endif %}`,
		`{% render "` + rel + `" %}`,
		`{% include customer.path %}`,
	} {
		fields := map[string]string{"body": src}
		var fe *FieldError
		if err := e.Check(fields); !errors.As(err, &fe) || fe.Field != "body" || !strings.Contains(err.Error(), "is not supported: templates cannot include") {
			t.Errorf("Check(%q) = %v, want a body error: not supported", src, err)
		}
		out, err := e.Render(fields, map[string]any{"path": rel}, nil)
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Reason(), "Liquid error: body: ") {
			t.Errorf("Render(%q) = %q, %v; want a body error", src, out["body"], err)
		}
		if strings.Contains(out["body"], "TOPSECRET") || (err != nil && strings.Contains(err.Error(), "TOPSECRET")) {
			t.Errorf("Render(%q) read the file", src)
		}
	}
}

// TestBudget: every way the review found (and a few more) to make a render
// grow or run without end stops at its limit with a *BudgetError, in Check
// (no data) or in Render (with data).
func TestBudget(t *testing.T) {
	e := New(Limits{MaxBytes: 1000, MaxIterations: 100, CPUTime: time.Second})
	tests := []struct {
		name, src string
		customer  map[string]any
		want      string
	}{
		{"doubling assign", doubling, nil, "more than 1000 bytes"},
		{"output", `{% for i in (1..90) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}`, nil, "more than 1000 bytes"},
		{"capture", `{% capture c %}{% for i in (1..90) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}{% endcapture %}`, nil, "more than 1000 bytes"},
		{"nested loops", `{% for i in (1..100000) %}{% for j in (1..100000) %}{% endfor %}{% endfor %}`, nil, "more than 100 loop iterations"},
		{"tablerow", `{% tablerow i in (1..1000) %}{% endtablerow %}`, nil, "more than 1000 bytes"},
		{"loop with continue", `{% for i in (1..1000) %}{% continue %}{% endfor %}`, nil, "more than 100 loop iterations"},
		{"replace empty", `{% assign s = "xxxxxxxxxx" %}{{ s | replace: "", "yyyyyyyyyyyyyyyyyyyy" | replace: "", "yyyyyyyyyyyyyyyyyyyy" }}`, nil, "a value of more than 1000 bytes"},
		{"prepend", `{% assign s = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" %}{{ s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | prepend: s | size }}`, nil, "a value of more than 1000 bytes"},
		{"concat", `{% assign a = "a,b,c,d,e,f,g,h" | split: "," %}{% for i in (1..20) %}{% assign a = a | concat: a %}{% endfor %}`, nil, "a value of more than 1000 bytes"},
		{"range to a filter", `{{ (1..1000000000) | join: "," }}`, nil, "a range of 1000000000 items"},
		{"range assigned", `{% assign r = (1..1000000000) %}`, nil, "more than 1000 bytes"},
		{"range as the default", `{{ customer.none | default: (1..1000000000) | join: "," }}`, nil, "a range of 1000000000 items"},
		{"range assigned by default", `{% assign r = customer.none | default: (1..1000000000) %}`, nil, "more than 1000 bytes"},
		{"loop over a default", `{% for i in customer.none | default: (1..1000000000) %}{% endfor %}`, nil, "more than 100 loop iterations"},
		{"loop over the data", `{% for x in customer.items %}{% for y in customer.items %}{% endfor %}{% endfor %}`,
			map[string]any{"items": make([]any, 50)}, "more than 100 loop iterations"},
		{"json of the data", `{{ customer | json }}`, map[string]any{"bio": strings.Repeat("x", 2000)}, "a value of more than 1000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]string{"body": tt.src}
			var err error
			if tt.customer == nil {
				err = e.Check(fields)
			} else {
				if cerr := e.Check(fields); cerr != nil {
					t.Fatalf("Check = %v, want nil (over budget only with data)", cerr)
				}
				_, err = e.Render(fields, tt.customer, nil)
			}
			var fe *FieldError
			var over *BudgetError
			if !errors.As(err, &fe) || fe.Field != "body" || !errors.As(err, &over) {
				t.Fatalf("error %v, want a body *FieldError with a *BudgetError", err)
			}
			if over.What != tt.want {
				t.Errorf("over budget by %q, want %q", over.What, tt.want)
			}
			if want := "Liquid error: body: template over its budget: " + tt.want; fe.Reason() != want {
				t.Errorf("Reason() = %q, want %q", fe.Reason(), want)
			}
		})
	}
}

// TestBudgetIsPerPush: the budget is shared by the fields of one Render
// call, and each call gets a new one.
func TestBudgetIsPerPush(t *testing.T) {
	e := New(Limits{MaxIterations: 10})
	loop := `{% for i in (1..6) %}{% endfor %}`
	if _, err := e.Render(map[string]string{"title": loop}, nil, nil); err != nil {
		t.Fatalf("one field of 6 iterations: %v", err)
	}
	if _, err := e.Render(map[string]string{"title": loop}, nil, nil); err != nil {
		t.Fatalf("again, with a new budget: %v", err)
	}
	var over *BudgetError
	if _, err := e.Render(map[string]string{"title": loop, "body": loop}, nil, nil); !errors.As(err, &over) {
		t.Fatalf("two fields of 6 iterations: %v, want over a budget of 10", err)
	}
}

// TestBudgetCPUTime: a render stops when it has used its CPU time (the
// loop checks it every iteration), not after it finishes.
func TestBudgetCPUTime(t *testing.T) {
	e := New(Limits{MaxIterations: 1 << 30, CPUTime: 20 * time.Millisecond})
	start := time.Now()
	_, err := e.Render(map[string]string{"body": `{% for i in (1..1000000000) %}{% endfor %}`}, nil, nil)
	var over *BudgetError
	if !errors.As(err, &over) || over.What != "used more than 20ms of CPU" {
		t.Fatalf("error %v, want over budget: used more than 20ms of CPU", err)
	}
	t.Logf("stopped after %s", time.Since(start))
}

// TestDoublingTemplateMemory: the review's template allocates well under
// 10 MB before it is stopped (it grew the worker by 740 MB).
func TestDoublingTemplateMemory(t *testing.T) {
	e := New(Limits{})
	fields := map[string]string{"body": doubling}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := e.Check(fields)
	_, rerr := e.Render(fields, nil, nil)
	runtime.ReadMemStats(&after)
	var over *BudgetError
	if !errors.As(err, &over) || !errors.As(rerr, &over) {
		t.Fatalf("Check %v, Render %v; want both over budget", err, rerr)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 10<<20 {
		t.Errorf("Check and Render allocated %d bytes, want under 10 MB", alloc)
	} else {
		t.Logf("Check and Render allocated %d bytes", alloc)
	}
}

// BenchmarkDoublingTemplate: the time to stop the review's template.
func BenchmarkDoublingTemplate(b *testing.B) {
	e := New(Limits{})
	fields := map[string]string{"body": doubling}
	for b.Loop() {
		if _, err := e.Render(fields, nil, nil); err == nil {
			b.Fatal("rendered")
		}
	}
}

// TestTagsAsLiquid: the allowlisted tags render as osteele/liquid's
// standard ones.
func TestTagsAsLiquid(t *testing.T) {
	std := liquid.NewEngine()
	e := New(Limits{})
	bindings := map[string]any{"items": []any{"a", "b", "c", "d"}, "n": 2, "name": "Ada"}
	for _, src := range []string{
		`{% assign x = name | upcase %}{{ x }}`,
		`{% capture c %}Hi {{ name }}{% endcapture %}[{{ c }}]`,
		`{% case n %}{% when 1 %}one{% when 2, 3 %}two or three{% else %}other{% endcase %}`,
		`{% if n > 1 %}big{% elsif n == 1 %}one{% else %}small{% endif %}{% unless n == 2 %}no{% else %}yes{% endunless %}`,
		`{% for x in items %}{{ forloop.index }}{{ x }}{% cycle "-", "+" %}{% if forloop.last %}!{% endif %}{% endfor %}`,
		`{% for x in items reversed limit:2 offset:1 %}{{ x }}{% endfor %}`,
		`{% for x in items %}{% if x == "b" %}{% continue %}{% endif %}{% if x == "d" %}{% break %}{% endif %}{{ x }}{% endfor %}`,
		`{% for x in nothing %}{{ x }}{% else %}empty{% endfor %}`,
		`{% tablerow x in items cols:3 %}{{ x }}{% endtablerow %}`,
		`{% comment %}hidden {{ name }}{% endcomment %}{% raw %}{{ name }}{% endraw %}`,
		`{%- if true -%}  trimmed  {%- endif -%}`,
		`{{ items | join: ", " | append: "!" | prepend: "> " | replace: "a", "A" | replace_first: "b", "B" }}`,
		`{{ items | concat: items | uniq | size }} {{ "a b a" | split: " " | uniq | join: "" }}`,
	} {
		want, lerr := std.ParseAndRenderString(src, bindings)
		if lerr != nil {
			t.Fatalf("liquid %q: %v", src, lerr)
		}
		b := map[string]any{}
		for k, v := range bindings {
			b[k] = v
		}
		node, err := e.parse("body", src, false)
		if err != nil {
			t.Fatalf("parse %q: %v", src, err)
		}
		runtime.LockOSThread()
		bud := newBudget(e.limits)
		b[budgetKey] = bud
		got, err := e.renderNode(node, b, bud)
		runtime.UnlockOSThread()
		if err != nil || got != want {
			t.Errorf("%q renders %q, %v; liquid renders %q", src, got, err, want)
		}
	}
}

// BenchmarkRenderPush: a typical push (parsed templates cached), for the
// cost of the budget and the bounded filters.
func BenchmarkRenderPush(b *testing.B) {
	e := New(Limits{})
	fields := map[string]string{
		"title": `Hi {{ customer.first_name | default: "there" | capitalize }}`,
		"body":  `Your order {{ event.order }} of {{ event.items | size }} items{% if customer.vip %} (VIP){% endif %} ships {{ event.day | downcase }}`,
		"link":  `app://orders/{{ event.order | url_encode }}`,
	}
	customer := map[string]any{"first_name": "ada", "vip": true}
	data := map[string]any{"order": "A-1", "items": []any{1, 2, 3}, "day": "Monday"}
	for b.Loop() {
		if _, err := e.Render(fields, customer, data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStaticFields: a field without a tag renders as itself without
// Liquid, exactly as Liquid renders it (the same text with an empty output
// tag added goes through Liquid), and its bytes count against MaxBytes
// with the other fields'.
func TestStaticFields(t *testing.T) {
	e := New(Limits{MaxBytes: 100, MaxIterations: 100, CPUTime: time.Second})
	for _, src := range []string{"", "Bench", "50% off } { now", "a {  { b } } c", "line\nbreak\t{ %} -}}", "ünïcödé ✓"} {
		got, err := e.Render(map[string]string{"body": src}, nil, nil)
		if err != nil {
			t.Fatalf("Render(%q): %v", src, err)
		}
		viaLiquid, err := e.Render(map[string]string{"body": src + `{{ "" }}`}, nil, nil)
		if err != nil {
			t.Fatalf("Render(%q + empty tag): %v", src, err)
		}
		if got["body"] != src || viaLiquid["body"] != src {
			t.Errorf("Render(%q) = %q, through Liquid %q", src, got["body"], viaLiquid["body"])
		}
	}
	_, err := e.Render(map[string]string{"body": strings.Repeat("x", 60), "title": strings.Repeat("y", 60)}, nil, nil)
	var fe *FieldError
	var over *BudgetError
	if !errors.As(err, &fe) || !errors.As(err, &over) || fe.Field != "title" || over.What != "more than 100 bytes" {
		t.Errorf("two static fields of 60 bytes under MaxBytes 100: %v, want title over budget", err)
	}
}

package render

import (
	"errors"
	"strings"
	"testing"
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

package graph

import (
	"errors"
	"strings"
	"testing"
)

func TestValidPersonID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"u1", true},
		{"alice@example.com", true},
		{"Ünïcode-ok", true},
		{"", false},
		{"has space", false},
		{"a/b", false},
		{"tab\tid", false},
		{strings.Repeat("x", 150), true},
		{strings.Repeat("x", 151), false},
	} {
		err := validPersonID("input.id", tc.id)
		var in *InputError
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &in) || in.Field != "input.id")) {
			t.Errorf("validPersonID(%q) = %v, want ok=%v with field input.id", tc.id, err, tc.ok)
		}
	}
}

func TestParseID(t *testing.T) {
	if _, err := parseID("id", "0190d6b2-0000-7000-8000-000000000000"); err != nil {
		t.Errorf("valid uuid: %v", err)
	}
	if _, err := parseID("id", "nope"); err == nil {
		t.Error("invalid uuid accepted")
	}
}

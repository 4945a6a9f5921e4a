package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		token string
		want  Behavior
	}{
		{"0123abcd", Behavior{Kind: Accept}},
		{"baddcafe", Behavior{Kind: BadToken}},
		{"BADDCAFE", Behavior{Kind: BadToken}},
		{"dead0000", Behavior{Kind: Unregistered}},
		{"f1a20000", Behavior{Kind: Flaky, N: 2}},
		{"f1af0000", Behavior{Kind: Flaky, N: 15}},
		{"f1a", Behavior{Kind: Accept}},
		{"50300000", Behavior{Kind: Unavailable}},
		{"51000000", Behavior{Kind: Slow, Delay: 250 * time.Millisecond}},
		{"51030000", Behavior{Kind: Slow, Delay: 3 * time.Second}},
		{"40300000", Behavior{Kind: Permanent}},
		{"fcm:token-without-prefix", Behavior{Kind: Accept}},
	} {
		if diff := cmp.Diff(tc.want, Classify(tc.token)); diff != "" {
			t.Errorf("Classify(%q) mismatch (-want +got):\n%s", tc.token, diff)
		}
	}
}

func TestFails(t *testing.T) {
	flaky := Behavior{Kind: Flaky, N: 2}
	got := []bool{flaky.Fails(1), flaky.Fails(2), flaky.Fails(3)}
	if diff := cmp.Diff([]bool{true, true, false}, got); diff != "" {
		t.Errorf("flaky Fails (-want +got):\n%s", diff)
	}
	if !(Behavior{Kind: Unavailable}).Fails(100) || (Behavior{Kind: Accept}).Fails(1) {
		t.Error("Unavailable must always fail, Accept never")
	}
}

func TestTokenAndDescribe(t *testing.T) {
	tok := Token("f1a2", 255)
	if len(tok) != 64 || !strings.HasPrefix(tok, "f1a2") || !strings.HasSuffix(tok, "ff") || !IsHex(tok) {
		t.Errorf("Token = %q", tok)
	}
	d := Describe()
	for _, r := range Rules() {
		if Classify(r.Example+"0000").Kind == Accept && r.Prefix != "(other)" {
			t.Errorf("example %q of rule %q is accepted", r.Example, r.Prefix)
		}
		if !strings.Contains(d, "`"+r.Prefix+"`") {
			t.Errorf("Describe lacks %q", r.Prefix)
		}
	}
}

func TestRecorder(t *testing.T) {
	var r Recorder
	if n := r.Record("a", Request{Body: []byte("1")}); n != 1 {
		t.Errorf("first Record = %d", n)
	}
	r.Record("a", Request{Body: []byte("2")})
	r.Record("b", Request{})
	if r.Count("a") != 2 || r.Count("b") != 1 || r.Total() != 3 || string(r.Requests("a")[1].Body) != "2" {
		t.Errorf("counts: a=%d b=%d total=%d", r.Count("a"), r.Count("b"), r.Total())
	}
	r.Reset()
	if r.Total() != 0 || r.Count("a") != 0 {
		t.Error("Reset left counts")
	}
}

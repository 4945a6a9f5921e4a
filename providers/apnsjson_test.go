package providers

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAPNSPayloadDirect: for pushes without an iosPayload, the direct
// encoder writes exactly the bytes of the map path (json.Marshal) — on
// the fixed pushes and on 20,000 random ones whose strings hold what
// encoding/json escapes (quotes, control bytes, <>&, U+2028, invalid
// UTF-8) and whose custom data uses the reserved keys.
func TestAPNSPayloadDirect(t *testing.T) {
	check := func(name string, p Push) {
		t.Helper()
		want, err := apnsPayloadMap(p)
		if err != nil {
			t.Fatalf("%s: map path: %v", name, err)
		}
		if got := appendAPNSPayload(nil, p); !bytes.Equal(got, want) {
			t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	check("full", fullPush())
	check("minimal", minimalPush())
	check("silent", silentPush())
	check("empty", Push{})

	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"", "a", "Hello", "<b>", "&amp;", `"q"`, `back\slash`, "\n\t\r\b\f", "\x00\x01\x1f\x7f", "é", "日本", "\u2028\u2029",
		"\xff", "a\xc3", "🎉", " ", "{{ x }}", "CIO", "aps"}
	str := func() string {
		var b []byte
		for range rng.IntN(4) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		return string(b)
	}
	strs := func() []string {
		var out []string
		for range rng.IntN(3) {
			out = append(out, str())
		}
		return out
	}
	levels := []string{"", "PASSIVE", "ACTIVE", "TIME_SENSITIVE", "CRITICAL", "LOUD"}
	dataKeys := []string{"order", "aps", "CIO", keyDeliveryID, keyDeliveryToken, "a", "Z", "CIO-", "b<"}
	for i := range 20000 {
		p := Push{DeliveryID: str(), Token: str(), Title: str(), Body: str(), Link: str(), Image: str(), Sound: str()}
		if rng.IntN(2) == 0 {
			n := rng.IntN(200) - 100
			p.Badge = &n
		}
		if rng.IntN(2) == 0 {
			p.Data = map[string]string{}
			for range rng.IntN(5) {
				p.Data[dataKeys[rng.IntN(len(dataKeys))]+str()[:0]] = str()
			}
		}
		o := &p.Options
		o.Silent = rng.IntN(10) == 0
		o.Subtitle, o.TitleLocKey, o.BodyLocKey, o.Category, o.ThreadID, o.TargetContentID = str(), str(), str(), str(), str(), str()
		o.TitleLocArgs, o.BodyLocArgs = strs(), strs()
		o.MutableContent, o.ContentAvailable = rng.IntN(2) == 0, rng.IntN(2) == 0
		o.InterruptionLevel = levels[rng.IntN(len(levels))]
		if rng.IntN(2) == 0 {
			s := []float64{0, 1, 0.75, 1e-7, 1e21, 123456789.125, -0.5}[rng.IntN(7)]
			o.RelevanceScore = &s
		}
		check("random push "+string(rune('0'+i%10)), p)
	}
}

// TestAPNSPayloadFallsBack: an iosPayload is merged (the map path), and a
// score json.Marshal refuses is an error, as before.
func TestAPNSPayloadFallsBack(t *testing.T) {
	p := optionsPush()
	got, err := APNSPayload(p)
	want, _ := apnsPayloadMap(p)
	if err != nil || !bytes.Equal(got, want) || !bytes.Contains(got, []byte(`"critical":1`)) {
		t.Errorf("with an iosPayload: %s, %v; want the merged %s", got, err, want)
	}
	nan := math.NaN()
	p = minimalPush()
	p.Options.RelevanceScore = &nan
	if _, err := APNSPayload(p); err == nil {
		t.Error("a NaN relevance score: no error")
	}
}

// BenchmarkAPNSPayload: the map path against the direct one, on the send
// benchmark's push and on fullPush.
func BenchmarkAPNSPayload(b *testing.B) {
	for _, c := range []struct {
		name string
		p    Push
	}{{"bench push", Push{DeliveryID: "0193a3b4-c5d6-7e8f-9012-3456789abcde", Token: "token-0000000001", Title: "Hello you", Body: "Bench"}}, {"full push", fullPush()}} {
		b.Run(c.name+"/maps", func(b *testing.B) {
			for b.Loop() {
				_, _ = apnsPayloadMap(c.p)
			}
		})
		b.Run(c.name+"/direct", func(b *testing.B) {
			for b.Loop() {
				_, _ = APNSPayload(c.p)
			}
		})
	}
}

package providers

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendAPNSPayload appends APNSPayload's JSON for a push without an
// iosPayload to merge: the bytes json.Marshal gives for apnsPayloadMap's
// maps (keys sorted, strings escaped as encoding/json does), written
// directly: BenchmarkAPNSPayload 3.5 → 0.6 µs and 26 → 2 allocations for
// the send benchmark's push (the maps were 4% of its CPU profile, 12 µs an
// iOS push with their GC). TestAPNSPayloadDirect checks it against them.
func appendAPNSPayload(b []byte, p Push) []byte {
	reserved := func(k string) bool {
		return k == "aps" || k == "CIO" || k == keyDeliveryID || k == keyDeliveryToken
	}
	keys := make([]string, 0, len(p.Data)+4)
	for k := range p.Data {
		if !reserved(k) {
			keys = append(keys, k)
		}
	}
	keys = append(keys, "aps")
	if p.Link != "" || p.Image != "" {
		keys = append(keys, "CIO")
	}
	if p.DeliveryID != "" {
		keys = append(keys, keyDeliveryID)
	}
	if p.Token != "" {
		keys = append(keys, keyDeliveryToken)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendJSONString(b, k), ':')
		switch k {
		case "aps":
			b = appendAPS(b, p)
		case "CIO":
			c := jsonObject{b: append(b, `{"push":{`...)} // cioPush's fields, in its order
			c.str("link", p.Link)
			c.str("image", p.Image)
			b = append(c.b, "}}"...)
		case keyDeliveryID:
			b = appendJSONString(b, p.DeliveryID)
		case keyDeliveryToken:
			b = appendJSONString(b, p.Token)
		default:
			b = appendJSONString(b, p.Data[k])
		}
	}
	return append(b, '}')
}

// jsonObject writes the members of one JSON object in the order given,
// a comma before each but the first; keys are Herald's own (no escaping).
type jsonObject struct {
	b []byte
	n int
}

func (o *jsonObject) key(k string) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = append(append(append(o.b, '"'), k...), `":`...)
}

// str writes k: v unless v is empty (omitempty).
func (o *jsonObject) str(k, v string) {
	if v != "" {
		o.key(k)
		o.b = appendJSONString(o.b, v)
	}
}

// list writes k: [vs...] unless vs is empty.
func (o *jsonObject) list(k string, vs []string) {
	if len(vs) == 0 {
		return
	}
	o.key(k)
	o.b = append(o.b, '[')
	for i, v := range vs {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendJSONString(o.b, v)
	}
	o.b = append(o.b, ']')
}

// appendAPS appends apsDict(p) as json.Marshal writes it: keys in order.
func appendAPS(b []byte, p Push) []byte {
	o := p.Options
	if o.Silent {
		return append(b, `{"content-available":1}`...)
	}
	w := jsonObject{b: append(b, '{')}
	if p.Title != "" || o.Subtitle != "" || p.Body != "" || o.TitleLocKey != "" || o.BodyLocKey != "" ||
		len(o.TitleLocArgs) > 0 || len(o.BodyLocArgs) > 0 {
		w.key("alert")
		a := jsonObject{b: append(w.b, '{')}
		a.str("body", p.Body)
		a.list("loc-args", o.BodyLocArgs)
		a.str("loc-key", o.BodyLocKey)
		a.str("subtitle", o.Subtitle)
		a.str("title", p.Title)
		a.list("title-loc-args", o.TitleLocArgs)
		a.str("title-loc-key", o.TitleLocKey)
		w.b = append(a.b, '}')
	}
	if p.Badge != nil {
		w.key("badge")
		w.b = strconv.AppendInt(w.b, int64(*p.Badge), 10)
	}
	w.str("category", o.Category)
	if o.ContentAvailable {
		w.key("content-available")
		w.b = append(w.b, '1')
	}
	if o.InterruptionLevel != "" { // an unknown level maps to "", written as the maps do
		w.key("interruption-level")
		w.b = appendJSONString(w.b, interruptions[o.InterruptionLevel])
	}
	if p.Image != "" || o.MutableContent {
		w.key("mutable-content")
		w.b = append(w.b, '1')
	}
	if o.RelevanceScore != nil {
		w.key("relevance-score")
		v, _ := json.Marshal(*o.RelevanceScore) // finite: APNSPayload checked
		w.b = append(w.b, v...)
	}
	w.str("sound", p.Sound)
	w.str("target-content-id", o.TargetContentID)
	w.str("thread-id", o.ThreadID)
	return append(w.b, '}')
}

// finiteScore: json.Marshal refuses NaN and ±Inf, and so must APNSPayload.
func finiteScore(o Options) bool {
	return o.RelevanceScore == nil || !(math.IsNaN(*o.RelevanceScore) || math.IsInf(*o.RelevanceScore, 0))
}

// appendJSONString appends s as encoding/json writes a string: quoted,
// with <, > and & escaped for HTML, \b \f \n \r \t by name, other control
// bytes, U+2028 and U+2029 as \u escapes, and invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}

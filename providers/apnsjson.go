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
			b = append(b, `{"push":{`...)
			if p.Link != "" {
				b = appendJSONString(append(b, `"link":`...), p.Link)
			}
			if p.Image != "" {
				if p.Link != "" {
					b = append(b, ',')
				}
				b = appendJSONString(append(b, `"image":`...), p.Image)
			}
			b = append(b, "}}"...)
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

// appendAPS appends apsDict(p) as json.Marshal writes it: keys in order.
func appendAPS(b []byte, p Push) []byte {
	o := p.Options
	if o.Silent {
		return append(b, `{"content-available":1}`...)
	}
	fields := 0
	key := func(k string) {
		if fields > 0 {
			b = append(b, ',')
		}
		fields++
		b = append(append(append(b, '"'), k...), `":`...)
	}
	b = append(b, '{')
	alert := p.Title != "" || o.Subtitle != "" || p.Body != "" || o.TitleLocKey != "" || o.BodyLocKey != "" ||
		len(o.TitleLocArgs) > 0 || len(o.BodyLocArgs) > 0
	if alert {
		key("alert")
		b = appendAlert(b, p)
	}
	if p.Badge != nil {
		key("badge")
		b = strconv.AppendInt(b, int64(*p.Badge), 10)
	}
	if o.Category != "" {
		key("category")
		b = appendJSONString(b, o.Category)
	}
	if o.ContentAvailable {
		key("content-available")
		b = append(b, '1')
	}
	if o.InterruptionLevel != "" {
		key("interruption-level")
		b = appendJSONString(b, interruptions[o.InterruptionLevel])
	}
	if p.Image != "" || o.MutableContent {
		key("mutable-content")
		b = append(b, '1')
	}
	if o.RelevanceScore != nil {
		key("relevance-score")
		v, _ := json.Marshal(*o.RelevanceScore) // finite: APNSPayload checked
		b = append(b, v...)
	}
	if p.Sound != "" {
		key("sound")
		b = appendJSONString(b, p.Sound)
	}
	if o.TargetContentID != "" {
		key("target-content-id")
		b = appendJSONString(b, o.TargetContentID)
	}
	if o.ThreadID != "" {
		key("thread-id")
		b = appendJSONString(b, o.ThreadID)
	}
	return append(b, '}')
}

// appendAlert appends the aps alert dictionary, keys in order.
func appendAlert(b []byte, p Push) []byte {
	o := p.Options
	fields := 0
	str := func(k, v string) {
		if v == "" {
			return
		}
		if fields > 0 {
			b = append(b, ',')
		}
		fields++
		b = appendJSONString(append(append(append(b, '"'), k...), `":`...), v)
	}
	list := func(k string, vs []string) {
		if len(vs) == 0 {
			return
		}
		if fields > 0 {
			b = append(b, ',')
		}
		fields++
		b = append(append(append(b, '"'), k...), `":[`...)
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, v)
		}
		b = append(b, ']')
	}
	b = append(b, '{')
	str("body", p.Body)
	list("loc-args", o.BodyLocArgs)
	str("loc-key", o.BodyLocKey)
	str("subtitle", o.Subtitle)
	str("title", p.Title)
	list("title-loc-args", o.TitleLocArgs)
	str("title-loc-key", o.TitleLocKey)
	return append(b, '}')
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

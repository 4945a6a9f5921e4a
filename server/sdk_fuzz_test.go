package server

import (
	"testing"
	"time"

	"github.com/heraldpush/herald/domain"
)

// FuzzParseReport: the report endpoints' parsing never panics, and whatever
// it accepts is a well-formed report. Seeds: testdata/fuzz/FuzzParseReport.
// Run: go test -run '^$' -fuzz FuzzParseReport ./server/
func FuzzParseReport(f *testing.F) {
	f.Add([]byte(`{"delivery_id":"01a21986-a4b5-77f5-980c-5ddb5edcfc53","event":"opened","device_id":"abc","timestamp":1732600000}`), 0)
	f.Add([]byte(`{"delivery_id":"x","metric":"delivered","recipient":"t"}`), 1)
	f.Fuzz(func(t *testing.T, body []byte, format int) {
		m, err := parseReport(body, reportFormat(format&1))
		if err != nil {
			if _, ok := err.(reportError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if m.DeliveryID == "" || m.Token == "" || len(m.Token) > maxTokenLen {
			t.Fatalf("accepted a report without a delivery or token: %+v", m)
		}
		switch m.Metric {
		case domain.MetricDelivered, domain.MetricOpened, domain.MetricConverted:
		default:
			t.Fatalf("accepted metric %q", m.Metric)
		}
		if !m.At.IsZero() && (m.At.Before(time.Unix(0, 0)) || m.At.After(time.Unix(1e11, 0))) {
			t.Fatalf("accepted time %v", m.At)
		}
	})
}

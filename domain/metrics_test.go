package domain

import (
	"errors"
	"testing"
	"time"
)

func TestMetricTime(t *testing.T) {
	created := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	now := created.Add(time.Hour)
	for _, tc := range []struct {
		name     string
		reported time.Time
		want     time.Time
		err      error
	}{
		{"absent means now", time.Time{}, now, nil},
		{"inside", created.Add(time.Minute), created.Add(time.Minute), nil},
		{"slightly future clamps to now", now.Add(time.Minute), now, nil},
		{"slightly early clamps to created", created.Add(-time.Minute), created, nil},
		{"far future rejected", now.Add(time.Hour), time.Time{}, ErrTimeInFuture},
		{"before the delivery rejected", created.Add(-time.Hour), time.Time{}, ErrTimeBeforeSending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MetricTime(tc.reported, created, now)
			if !errors.Is(err, tc.err) || !got.Equal(tc.want) {
				t.Errorf("MetricTime = %v, %v; want %v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestParseMetric(t *testing.T) {
	for in, want := range map[string]Metric{"delivered": MetricDelivered, "OPENED": MetricOpened, " converted ": MetricConverted} {
		if got, err := ParseMetric(in); err != nil || got != want {
			t.Errorf("ParseMetric(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseMetric("clicked"); err == nil {
		t.Error("ParseMetric(clicked) accepted")
	}
}

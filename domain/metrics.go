package domain

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Metric is what an app reports about a push.
type Metric string

// The metrics an SDK reports.
const (
	MetricDelivered Metric = "DELIVERED"
	MetricOpened    Metric = "OPENED"
	MetricConverted Metric = "CONVERTED"
)

// ParseMetric accepts Customer.io's lower-case names ("delivered", "opened",
// "converted") and the GraphQL enum.
func ParseMetric(s string) (Metric, error) {
	switch m := Metric(strings.ToUpper(strings.TrimSpace(s))); m {
	case MetricDelivered, MetricOpened, MetricConverted:
		return m, nil
	}
	return "", fmt.Errorf("unknown event %q: want delivered, opened or converted", s)
}

// ClockSkew is how far a reported time may lie outside [delivery created,
// now] and still be accepted (clamped): phones' clocks drift.
const ClockSkew = 10 * time.Minute

// Errors of MetricTime.
var (
	ErrTimeInFuture      = errors.New("timestamp is in the future")
	ErrTimeBeforeSending = errors.New("timestamp is before the delivery was created")
)

// MetricTime applies Herald's rule for reported times: no timestamp means
// now; a time within ClockSkew outside [created, now] is clamped into it;
// one further out is rejected (the REST endpoints answer 400), because a
// report from before the push existed, or from the future, is not a report
// about this push.
func MetricTime(reported, created, now time.Time) (time.Time, error) {
	if reported.IsZero() {
		return now, nil
	}
	switch {
	case reported.After(now.Add(ClockSkew)):
		return time.Time{}, ErrTimeInFuture
	case reported.Before(created.Add(-ClockSkew)):
		return time.Time{}, ErrTimeBeforeSending
	case reported.After(now):
		return now, nil
	case reported.Before(created):
		return created, nil
	}
	return reported, nil
}

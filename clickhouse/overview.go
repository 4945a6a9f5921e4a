package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
)

// Overview is a campaign's funnel over the deliveries created in [From, To),
// by DESIGN.md's "Campaign overview". Person-level figures count
// deliveries; Devices counts device sends. A delivery's send state is its
// status by DESIGN.md's table with the delivered/opened/converted rows
// ignored: ATTEMPTED, SENT, BOUNCED, SUPPRESSED or FAILED.
type Overview struct {
	From, To time.Time

	Created    uint64 // deliveries created in the range
	Attempted  uint64 // send state ATTEMPTED (still in flight)
	Sent       uint64 // send state SENT
	Bounced    uint64 // send state BOUNCED
	Suppressed uint64 // send state SUPPRESSED
	Failed     uint64 // send state FAILED (pre-send failures included)
	Sends      uint64 // Sent + Bounced + Suppressed
	Recipients uint64 // Sends − Suppressed − Bounced
	Delivered  uint64 // some device delivered or opened
	Opened     uint64 // some device opened
	Converted  uint64 // the delivery converted

	// Rates; 0 when the denominator is 0.
	DeliveryRate   float64 // Delivered / Recipients
	OpenRate       float64 // Opened / Delivered
	ConversionRate float64 // Converted / Recipients
	BounceRate     float64 // Bounced / Sends

	// FailuresByReason counts FAILED deliveries by failure reason: the
	// pre-send reason, else the failed-event reason of the FAILED device
	// with the smallest device index.
	FailuresByReason map[string]uint64

	// Devices totals the device sends of those deliveries' newest rounds.
	Devices DeviceTotals

	// SDKRecipients counts recipients (send state SENT) with a targeted
	// device token that has ever reported delivered or opened in the
	// workspace; SDKCoverage = SDKRecipients / Recipients.
	SDKRecipients uint64
	SDKCoverage   float64

	// Series buckets the person-level figures by the deliveries' creation
	// time (start of the hour or day, UTC), oldest first, empty buckets left out.
	Series []Bucket
}

// DeviceTotals counts device sends by state.
type DeviceTotals struct {
	Targeted, Sent, Bounced, Failed, Suppressed, Pending, Delivered, Opened uint64
}

// Bucket is one time-series point.
type Bucket struct {
	Start                                                                    time.Time
	Created, Sent, Bounced, Suppressed, Failed, Delivered, Opened, Converted uint64
}

// Granularity is a time-series bucket size.
type Granularity string

// The bucket sizes.
const (
	Hour Granularity = "HOUR"
	Day  Granularity = "DAY"
)

// Overview computes a campaign's funnel for deliveries created in [from, to).
func (s *Store) Overview(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time, g Granularity) (Overview, error) {
	if g != Day {
		g = Hour
	}
	o := Overview{From: from, To: to, FailuresByReason: map[string]uint64{}}
	buckets := map[time.Time]*Bucket{}
	bucket := func(t time.Time) *Bucket {
		t = t.UTC()
		b, ok := buckets[t]
		if !ok {
			b = &Bucket{Start: t}
			buckets[t] = b
		}
		return b
	}
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)
	addCreated := func(query string, args ...any) error {
		rows, err := s.conn.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("clickhouse: overview created: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var t time.Time
			var n uint64
			if err := rows.Scan(&t, &n); err != nil {
				return fmt.Errorf("clickhouse: scan overview created: %w", err)
			}
			bucket(t).Created += n
			o.Created += n
		}
		return rows.Err()
	}
	// Whole hours from the hourly rollup, the partial hours at both ends
	// from the deliveries table.
	fromH, toH := from.Truncate(time.Hour), to.Truncate(time.Hour)
	if fromH.Before(from) {
		fromH = fromH.Add(time.Hour)
	}
	if fromH.Before(toH) {
		if err := addCreated(createdSQL, string(g), workspaceID, campaignID, fromH, toH); err != nil {
			return o, err
		}
		if err := addCreated(createdEdgesSQL, string(g), workspaceID, campaignID, from, fromH, toH, to); err != nil {
			return o, err
		}
	} else if err := addCreated(createdEdgesSQL, string(g), workspaceID, campaignID, from, to, from, from); err != nil {
		return o, err
	}

	rangeArgs := []any{workspaceID, campaignID, from, to}
	var retried uint64
	if err := s.conn.QueryRow(ctx, countRetriedSQL, rangeArgs...).Scan(&retried); err != nil {
		return o, fmt.Errorf("clickhouse: overview retried: %w", err)
	}
	queries := []string{overviewFastSQL}
	if retried > 0 {
		queries = append(queries, overviewRetriedSQL)
	}
	var withEvents uint64
	for _, q := range queries {
		args := append(append([]any{string(g)}, rangeArgs...), rangeArgs...)
		if err := s.addOverviewGroups(ctx, &o, bucket, &withEvents, q, args...); err != nil {
			return o, err
		}
	}
	// Deliveries without any event yet are in flight.
	if o.Created > withEvents {
		o.Attempted += o.Created - withEvents
	}
	o.Sends = o.Sent + o.Bounced + o.Suppressed
	o.Recipients = o.Sends - o.Suppressed - o.Bounced
	o.DeliveryRate = ratio(o.Delivered, o.Recipients)
	o.OpenRate = ratio(o.Opened, o.Delivered)
	o.ConversionRate = ratio(o.Converted, o.Recipients)
	o.BounceRate = ratio(o.Bounced, o.Sends)
	o.SDKCoverage = ratio(o.SDKRecipients, o.Recipients)
	for _, b := range buckets {
		o.Series = append(o.Series, *b)
	}
	sort.Slice(o.Series, func(i, j int) bool { return o.Series[i].Start.Before(o.Series[j].Start) })
	return o, nil
}

// addOverviewGroups runs one of the overview's group queries and adds its
// rows into o.
func (s *Store) addOverviewGroups(ctx context.Context, o *Overview, bucket func(time.Time) *Bucket, withEvents *uint64, query string, args ...any) error {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("clickhouse: overview: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t time.Time
		var state, reason string
		var n, delivered, opened, converted, sdk uint64
		var d DeviceTotals
		if err := rows.Scan(&t, &state, &reason, &n, &delivered, &opened, &converted, &sdk,
			&d.Targeted, &d.Sent, &d.Bounced, &d.Failed, &d.Suppressed, &d.Pending, &d.Delivered, &d.Opened); err != nil {
			return fmt.Errorf("clickhouse: scan overview: %w", err)
		}
		b := bucket(t)
		*withEvents += n
		switch state {
		case "ATTEMPTED":
			o.Attempted += n
		case "SENT":
			o.Sent += n
			b.Sent += n
		case "BOUNCED":
			o.Bounced += n
			b.Bounced += n
		case "SUPPRESSED":
			o.Suppressed += n
			b.Suppressed += n
		case "FAILED":
			o.Failed += n
			b.Failed += n
			o.FailuresByReason[reason] += n
		}
		o.Delivered += delivered
		o.Opened += opened
		o.Converted += converted
		b.Delivered += delivered
		b.Opened += opened
		b.Converted += converted
		o.SDKRecipients += sdk
		o.Devices.add(d)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: overview: %w", err)
	}
	return nil
}

func (d *DeviceTotals) add(x DeviceTotals) {
	d.Targeted += x.Targeted
	d.Sent += x.Sent
	d.Bounced += x.Bounced
	d.Failed += x.Failed
	d.Suppressed += x.Suppressed
	d.Pending += x.Pending
	d.Delivered += x.Delivered
	d.Opened += x.Opened
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// FailuresByReason counts a campaign's FAILED deliveries created in [from,
// to) by failure reason (the figure Overview also carries), for a failures
// screen that needs nothing else.
func (s *Store) FailuresByReason(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time) (map[string]uint64, error) {
	o, err := s.Overview(ctx, workspaceID, campaignID, from, to, Day)
	return o.FailuresByReason, err
}

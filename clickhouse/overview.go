package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
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
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)
	rangeArgs := []any{workspaceID, campaignID, from, to}
	var retried uint64
	if err := s.conn.QueryRow(ctx, countRetriedSQL, rangeArgs...).Scan(&retried); err != nil {
		return o, fmt.Errorf("clickhouse: overview retried: %w", err)
	}
	r4 := func(times int, lead ...any) []any {
		out := append([]any{}, lead...)
		for i := 0; i < times; i++ {
			out = append(out, rangeArgs...)
		}
		return out
	}
	ex := retried > 0

	// Three independent parts run at once, each into its own partial.
	parts := make([]*overviewPart, 3)
	for i := range parts {
		parts[i] = newOverviewPart()
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // created: whole hours from the rollup, partial hours from deliveries
		defer wg.Done()
		p := parts[0]
		fromH, toH := from.Truncate(time.Hour), to.Truncate(time.Hour)
		if fromH.Before(from) {
			fromH = fromH.Add(time.Hour)
		}
		if fromH.Before(toH) {
			if errs[0] = s.addCreated(ctx, p, createdSQL, string(g), workspaceID, campaignID, fromH, toH); errs[0] != nil {
				return
			}
			errs[0] = s.addCreated(ctx, p, createdEdgesSQL, string(g), workspaceID, campaignID, from, fromH, toH, to)
		} else {
			errs[0] = s.addCreated(ctx, p, createdEdgesSQL, string(g), workspaceID, campaignID, from, to, from, from)
		}
	}()
	go func() { // the funnel: the fast path, and the exact one for retried deliveries
		defer wg.Done()
		p := parts[1]
		n := 1
		if ex {
			n = 2
		}
		if errs[1] = s.addOverviewGroups(ctx, p, false, overviewFastSQL(ex), r4(n, string(g))...); errs[1] != nil || !ex {
			return
		}
		errs[1] = s.addOverviewGroups(ctx, p, true, overviewRetriedSQL, r4(2, string(g))...)
	}()
	go func() { // failures by reason of the fast path
		defer wg.Done()
		n := 3
		if ex {
			n = 4
		}
		errs[2] = s.addFailures(ctx, parts[2], failuresFastSQL(ex), r4(n)...)
	}()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	buckets := map[time.Time]*Bucket{}
	var withEvents uint64
	for _, p := range parts {
		o.merge(&p.o)
		withEvents += p.withEvents
		for t, b := range p.buckets {
			if buckets[t] == nil {
				buckets[t] = &Bucket{Start: t}
			}
			buckets[t].add(b)
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

// overviewPart is what one of the overview's concurrent queries adds up.
type overviewPart struct {
	o          Overview
	buckets    map[time.Time]*Bucket
	withEvents uint64
}

func newOverviewPart() *overviewPart {
	return &overviewPart{o: Overview{FailuresByReason: map[string]uint64{}}, buckets: map[time.Time]*Bucket{}}
}

func (p *overviewPart) bucket(t time.Time) *Bucket {
	t = t.UTC()
	b, ok := p.buckets[t]
	if !ok {
		b = &Bucket{Start: t}
		p.buckets[t] = b
	}
	return b
}

// merge adds a partial's counts (not its rates or series) into o.
func (o *Overview) merge(x *Overview) {
	o.Created += x.Created
	o.Attempted += x.Attempted
	o.Sent += x.Sent
	o.Bounced += x.Bounced
	o.Suppressed += x.Suppressed
	o.Failed += x.Failed
	o.Delivered += x.Delivered
	o.Opened += x.Opened
	o.Converted += x.Converted
	o.SDKRecipients += x.SDKRecipients
	o.Devices.add(x.Devices)
	for r, n := range x.FailuresByReason {
		o.FailuresByReason[r] += n
	}
}

func (b *Bucket) add(x *Bucket) {
	b.Created += x.Created
	b.Sent += x.Sent
	b.Bounced += x.Bounced
	b.Suppressed += x.Suppressed
	b.Failed += x.Failed
	b.Delivered += x.Delivered
	b.Opened += x.Opened
	b.Converted += x.Converted
}

// addCreated adds a created-count query's rows.
func (s *Store) addCreated(ctx context.Context, p *overviewPart, query string, args ...any) error {
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
		p.bucket(t).Created += n
		p.o.Created += n
	}
	return rows.Err()
}

// addOverviewGroups runs one of the overview's group queries and adds its
// rows into o.
func (s *Store) addOverviewGroups(ctx context.Context, p *overviewPart, reasons bool, query string, args ...any) error {
	o, bucket := &p.o, p.bucket
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
		p.withEvents += n
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
			if reasons {
				o.FailuresByReason[reason] += n
			}
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

// addFailures adds the fast path's failures by reason.
func (s *Store) addFailures(ctx context.Context, p *overviewPart, query string, args ...any) error {
	o := &p.o
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("clickhouse: failures by reason: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var reason string
		var n uint64
		if err := rows.Scan(&reason, &n); err != nil {
			return fmt.Errorf("clickhouse: scan failures by reason: %w", err)
		}
		o.FailuresByReason[reason] += n
	}
	return rows.Err()
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
// to) by failure reason (the figure Overview also carries), reading only
// the deliveries that have a failure (and the retried ones, exactly).
func (s *Store) FailuresByReason(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time) (map[string]uint64, error) {
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)
	rangeArgs := []any{workspaceID, campaignID, from, to}
	var retried uint64
	if err := s.conn.QueryRow(ctx, countRetriedSQL, rangeArgs...).Scan(&retried); err != nil {
		return nil, fmt.Errorf("clickhouse: failures retried: %w", err)
	}
	p := newOverviewPart()
	n := 3
	if retried > 0 {
		n = 4
	}
	args := []any{}
	for i := 0; i < n; i++ {
		args = append(args, rangeArgs...)
	}
	if err := s.addFailures(ctx, p, failuresFastSQL(retried > 0), args...); err != nil {
		return nil, err
	}
	if retried > 0 {
		exact := append(append([]any{string(Day)}, rangeArgs...), rangeArgs...)
		if err := s.addOverviewGroups(ctx, p, true, overviewRetriedSQL, exact...); err != nil {
			return nil, err
		}
	}
	return p.o.FailuresByReason, nil
}

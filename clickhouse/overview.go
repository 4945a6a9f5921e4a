package clickhouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/domain"
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
	// pre-send reason, else the failed-event reason of the device with the
	// smallest index that has one (migration 0008's rule; README "Failure
	// reasons").
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

// Overview computes a campaign's funnel for deliveries created in [from,
// to), its time series bucketed by g.
//
// The queries run at once: the deliveries created per bucket (created
// whole hours from the campaign_created rollup, the partial hours at the
// ends from deliveries); the deliveries with events, counted by
// delivery_counts_fast_in and grouped by bucket, device counts and failure
// key, the keys of the FAILED groups then read as text (failureTexts);
// and, only when some delivery in the range is slow (a retry round, or six
// devices and more), the same over delivery_counts_slow_in, grouped by the
// reason's text. Each group's send state is domain.DeliveryStatusOf of its
// counts.
// Deliveries without any event yet are in flight (ATTEMPTED).
func (s *Store) Overview(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time, g Granularity) (Overview, error) {
	if g != Day {
		g = Hour
	}
	o := Overview{From: from, To: to, FailuresByReason: map[string]uint64{}}
	from, to = from.UTC().Truncate(time.Millisecond), to.UTC().Truncate(time.Millisecond)

	created := newOverviewPart()
	var createdErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		createdErr = s.addCreatedRange(ctx, created, g, workspaceID, campaignID, from, to)
	}()
	rows, err := s.deliveryGroups(ctx, workspaceID, campaignID, from, to, g)
	<-done
	if err := errors.Join(err, createdErr); err != nil {
		return o, err
	}
	p := newOverviewPart()
	for _, r := range rows {
		p.add(r)
	}
	buckets := map[time.Time]*Bucket{}
	for _, part := range []*overviewPart{created, p} {
		o.merge(&part.o)
		for t, b := range part.buckets {
			if buckets[t] == nil {
				buckets[t] = &Bucket{Start: t}
			}
			buckets[t].add(b)
		}
	}
	// Deliveries without any event yet are in flight.
	if o.Created > p.withEvents {
		o.Attempted += o.Created - p.withEvents
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

// addCreatedRange adds the deliveries created in [from, to): whole hours
// from the campaign_created rollup, partial hours from deliveries.
func (s *Store) addCreatedRange(ctx context.Context, p *overviewPart, g Granularity, workspaceID string, campaignID uuid.UUID, from, to time.Time) error {
	fromH, toH := ceilHour(from), to.Truncate(time.Hour)
	if !fromH.Before(toH) {
		return s.addCreated(ctx, p, createdEdgesSQL, string(g), workspaceID, campaignID, chTime(from), chTime(to), chTime(from), chTime(from))
	}
	if err := s.addCreated(ctx, p, createdSQL, string(g), workspaceID, campaignID, chTime(fromH), chTime(toH)); err != nil {
		return err
	}
	return s.addCreated(ctx, p, createdEdgesSQL, string(g), workspaceID, campaignID, chTime(from), chTime(fromH), chTime(toH), chTime(to))
}

// ceilHour is the first whole hour at or after t.
func ceilHour(t time.Time) time.Time {
	h := t.Truncate(time.Hour)
	if h.Before(t) {
		h = h.Add(time.Hour)
	}
	return h
}

// groupRow is one group of a campaign's deliveries created in one bucket
// (an hour or a day):
// those with the same device counts (Dev devices: Sent, Bounced, Failed,
// Suppressed, the rest pending), pre-send failure and (for those that may
// have FAILED) failure reason (Reason; a fast group has its failure key,
// Key, until Store.failureTexts fills Reason in), with their figures.
type groupRow struct {
	Bucket                                 time.Time
	Dev, Sent, Bounced, Failed, Suppressed uint32
	Presend                                bool
	Key                                    uint64
	Reason                                 string
	N, Delivered, Opened, Converted, SDK   uint64
	DevDelivered, DevOpened                uint64
}

// scanFast reads a row of overviewFastSQL, its packed counts unpacked.
func (r *groupRow) scanFast(rows driver.Rows) error {
	var counts uint64
	if err := rows.Scan(&r.Bucket, &counts, &r.Key, &r.N, &r.Delivered, &r.Opened, &r.Converted, &r.SDK, &r.DevDelivered, &r.DevOpened); err != nil {
		return err
	}
	r.Dev, r.Sent, r.Bounced, r.Failed, r.Suppressed = uint32(counts&255), uint32(counts>>8&255), uint32(counts>>16&255), uint32(counts>>24&255), uint32(counts>>32&255)
	r.Presend = counts>>40&1 == 1
	return nil
}

// scanSlow reads a row of overviewSlowSQL.
func (r *groupRow) scanSlow(rows driver.Rows) error {
	return rows.Scan(&r.Bucket, &r.Dev, &r.Sent, &r.Bounced, &r.Failed, &r.Suppressed, &r.Presend, &r.Reason,
		&r.N, &r.Delivered, &r.Opened, &r.Converted, &r.SDK, &r.DevDelivered, &r.DevOpened)
}

// state is the group's send state: domain.DeliveryStatusOf of its
// devices, the app's reports left out.
func (r *groupRow) state() domain.DeliveryStatus {
	devices := make([]domain.DeviceSend, 0, 5)
	for _, d := range []struct {
		n uint32
		s domain.DeviceSendStatus
	}{{r.Sent, domain.DeviceSendSent}, {r.Bounced, domain.DeviceSendBounced}, {r.Failed, domain.DeviceSendFailed},
		{r.Suppressed, domain.DeviceSendSuppressed}, {r.Dev - r.Sent - r.Bounced - r.Failed - r.Suppressed, domain.DeviceSendPending}} {
		if d.n > 0 {
			devices = append(devices, domain.DeviceSend{Status: d.s})
		}
	}
	return domain.DeliveryStatusOf(r.Presend, false, devices)
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

// add folds one group into the part, its time-series point in its bucket.
func (p *overviewPart) add(r groupRow) {
	o := &p.o
	b := p.bucket(r.Bucket)
	p.withEvents += r.N
	switch r.state() {
	case domain.DeliveryAttempted:
		o.Attempted += r.N
	case domain.DeliverySent:
		o.Sent += r.N
		b.Sent += r.N
		o.SDKRecipients += r.SDK
	case domain.DeliveryBounced:
		o.Bounced += r.N
		b.Bounced += r.N
	case domain.DeliverySuppressed:
		o.Suppressed += r.N
		b.Suppressed += r.N
	case domain.DeliveryFailed:
		o.Failed += r.N
		b.Failed += r.N
		o.FailuresByReason[r.Reason] += r.N
	}
	o.Delivered += r.Delivered
	o.Opened += r.Opened
	o.Converted += r.Converted
	b.Delivered += r.Delivered
	b.Opened += r.Opened
	b.Converted += r.Converted
	n := uint64(r.N)
	d := &o.Devices
	d.Targeted += n * uint64(r.Dev)
	d.Sent += n * uint64(r.Sent)
	d.Bounced += n * uint64(r.Bounced)
	d.Failed += n * uint64(r.Failed)
	d.Suppressed += n * uint64(r.Suppressed)
	d.Pending += n * uint64(r.Dev-r.Sent-r.Bounced-r.Failed-r.Suppressed)
	d.Delivered += r.DevDelivered
	d.Opened += r.DevOpened
}

// groupRows runs overviewFastSQL or overviewSlowSQL, scanning each row
// with scan (groupRow.scanFast or scanSlow).
func (s *Store) groupRows(ctx context.Context, scan func(*groupRow, driver.Rows) error, query string, args ...any) ([]groupRow, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: overview: %w", err)
	}
	defer rows.Close()
	var out []groupRow
	for rows.Next() {
		var r groupRow
		if err := scan(&r, rows); err != nil {
			return nil, fmt.Errorf("clickhouse: scan overview: %w", err)
		}
		r.Bucket = r.Bucket.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: overview: %w", err)
	}
	return out, nil
}

// failureTexts fills in the Reason of the fast groups that FAILED from
// their failure keys, reading delivery_states (failureTextsSQL) once per
// failureTextsBatch keys.
func (s *Store) failureTexts(ctx context.Context, rows []groupRow, args []any) error {
	var keys []uint64
	wanted := map[uint64]bool{}
	for _, r := range rows {
		if r.Key != 0 && !wanted[r.Key] && r.state() == domain.DeliveryFailed {
			wanted[r.Key] = true
			keys = append(keys, r.Key)
		}
	}
	texts := make(map[uint64]string, len(keys))
	for batch := range slices.Chunk(keys, failureTextsBatch) {
		if err := s.readFailureTexts(ctx, texts, append(args[:4:4], batch, len(batch))); err != nil {
			return err
		}
	}
	for i := range rows {
		if k := rows[i].Key; wanted[k] {
			why, ok := texts[k]
			if !ok {
				return fmt.Errorf("clickhouse: overview: no failure reason stored for key %#x", k)
			}
			rows[i].Reason = why
		}
	}
	return nil
}

// readFailureTexts runs failureTextsSQL, adding its rows to texts.
func (s *Store) readFailureTexts(ctx context.Context, texts map[uint64]string, args []any) error {
	q, err := s.conn.Query(ctx, failureTextsSQL, args...)
	if err != nil {
		return fmt.Errorf("clickhouse: overview: failure reasons: %w", err)
	}
	defer q.Close()
	for q.Next() {
		var k uint64
		var why string
		if err := q.Scan(&k, &why); err != nil {
			return fmt.Errorf("clickhouse: overview: scan failure reason: %w", err)
		}
		texts[k] = why
	}
	if err := q.Err(); err != nil {
		return fmt.Errorf("clickhouse: overview: failure reasons: %w", err)
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

// deliveryGroups reads the groups of a campaign's deliveries with events
// created in [from, to) (groupRow), by the buckets of g: from
// delivery_counts_fast_in, and from delivery_counts_slow_in at once when
// some delivery in the range is slow (a retry round, or six devices and
// more).
func (s *Store) deliveryGroups(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time, g Granularity) ([]groupRow, error) {
	args := []any{workspaceID, campaignID, chTime(from), chTime(to)}
	var (
		slowErr  error
		slowRows []groupRow
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		var one uint8
		err := s.conn.QueryRow(ctx, slowExistsSQL, args...).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			slowErr = fmt.Errorf("clickhouse: overview: find slow deliveries: %w", err)
		default:
			slowRows, slowErr = s.groupRows(ctx, (*groupRow).scanSlow, overviewSlow[g], args...)
		}
	}()
	var (
		merged []string
		rows   []groupRow
	)
	err := s.conn.QueryRow(ctx, mergedPartitionsSQL).Scan(&merged)
	if err != nil {
		err = fmt.Errorf("clickhouse: overview: list merged partitions: %w", err)
	} else {
		rows, err = s.groupRows(ctx, (*groupRow).scanFast, overviewFast[g], append(args[:4:4], merged)...)
	}
	if err == nil {
		err = s.failureTexts(ctx, rows, args)
	}
	<-done
	if err := errors.Join(err, slowErr); err != nil {
		return nil, err
	}
	return append(rows, slowRows...), nil
}

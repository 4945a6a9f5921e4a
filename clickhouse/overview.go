package clickhouse

import (
	"context"
	"errors"
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
//
// The deliveries' figures are grouped by the hour they were created in.
// A whole hour whose events have not changed since it was last computed
// (hour_changes, see 0010_overview_hours.sql) is read from overview_hours;
// the other hours, and the partial hours at the ends of the range, are
// computed from delivery_masks (and the events of retried deliveries), and
// those that have settled are stored for the next call.
func (s *Store) Overview(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time, g Granularity) (Overview, error) {
	if g != Day {
		g = Hour
	}
	o := Overview{From: from, To: to, FailuresByReason: map[string]uint64{}}
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)

	// The created counts and the hours' groups are independent queries.
	created := newOverviewPart()
	var createdErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		createdErr = s.addCreatedRange(ctx, created, g, workspaceID, campaignID, from, to)
	}()
	rows, err := s.overviewRows(ctx, workspaceID, campaignID, from, to)
	<-done
	if err := errors.Join(err, createdErr); err != nil {
		return o, err
	}
	p := newOverviewPart()
	for _, r := range rows {
		p.add(r, g)
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
		return s.addCreated(ctx, p, createdEdgesSQL, string(g), workspaceID, campaignID, from, to, from, from)
	}
	if err := s.addCreated(ctx, p, createdSQL, string(g), workspaceID, campaignID, fromH, toH); err != nil {
		return err
	}
	return s.addCreated(ctx, p, createdEdgesSQL, string(g), workspaceID, campaignID, from, fromH, toH, to)
}

// ceilHour is the first whole hour at or after t.
func ceilHour(t time.Time) time.Time {
	h := t.Truncate(time.Hour)
	if h.Before(t) {
		h = h.Add(time.Hour)
	}
	return h
}

// groupRow is one group of a campaign's deliveries created in one hour:
// those with send state State (ATTEMPTED, SENT, BOUNCED, SUPPRESSED or
// FAILED) and their figures; or, with State "REASON", the N FAILED
// deliveries whose failure reason is Reason; or, with State "", the mark
// of a stored computation.
type groupRow struct {
	Hour                                 time.Time
	State, Reason                        string
	N, Delivered, Opened, Converted, SDK uint64
	Devices                              DeviceTotals
}

// fields points at the row's columns after its hour, in the order the
// group queries and overview_hours have them: send_state, reason, then
// the figures.
func (r *groupRow) fields() []any {
	d := &r.Devices
	return []any{&r.State, &r.Reason, &r.N, &r.Delivered, &r.Opened, &r.Converted, &r.SDK,
		&d.Targeted, &d.Sent, &d.Bounced, &d.Failed, &d.Suppressed, &d.Pending, &d.Delivered, &d.Opened}
}

// overviewRows returns the hour groups of a campaign's deliveries created
// in [from, to) that have events: stored hours that are still current,
// and the rest computed (see Overview).
func (s *Store) overviewRows(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time) ([]groupRow, error) {
	fromH, toH := ceilHour(from), to.Truncate(time.Hour)
	if s.overviewSettle <= 0 || !fromH.Before(toH) {
		return s.computeRows(ctx, workspaceID, campaignID, from, to)
	}
	changed, now, err := s.hourChanges(ctx, workspaceID, campaignID, fromH, toH)
	if err != nil {
		return nil, err
	}
	stored, err := s.storedHours(ctx, workspaceID, campaignID, fromH, toH)
	if err != nil {
		return nil, err
	}

	// Keep the stored hours computed after their last change; compute the
	// rest, and the partial hours at the ends, in a few spans.
	var rows []groupRow
	current := map[time.Time]bool{}
	var settled []time.Time
	var todo []span
	if from.Before(fromH) {
		todo = append(todo, span{from, fromH})
	}
	if toH.Before(to) {
		todo = append(todo, span{toH, to})
	}
	for h, c := range changed {
		if st, ok := stored[h]; ok && c.Add(s.overviewSettle).Before(st.computed) {
			current[h] = true
			rows = append(rows, st.rows...)
			continue
		}
		if c.Add(s.overviewSettle).Before(now) {
			settled = append(settled, h)
		}
		todo = append(todo, span{h, h.Add(time.Hour)})
	}
	var computed []groupRow
	for _, sp := range mergeSpans(todo, overviewSpanGap, overviewMaxSpans) {
		rs, err := s.computeRows(ctx, workspaceID, campaignID, sp.from, sp.to)
		if err != nil {
			return nil, err
		}
		computed = append(computed, rs...)
	}
	for _, r := range computed {
		if !current[r.Hour] {
			rows = append(rows, r)
		}
	}
	if len(settled) > 0 {
		// The answer is complete without them: a failed store (a cancelled
		// request, say) only means computing these hours again next time.
		// An hour's rows and mark are in one part, so none is half stored.
		_ = s.storeHours(ctx, workspaceID, campaignID, now, settled, computed)
	}
	return rows, nil
}

// How Overview groups the hours it computes: spans less than
// overviewSpanGap apart are computed as one, and at most overviewMaxSpans
// spans are computed (each takes three or four queries).
const (
	overviewSpanGap  = 6 * time.Hour
	overviewMaxSpans = 4
)

// span is a time range [from, to).
type span struct{ from, to time.Time }

// mergeSpans sorts spans and joins those that overlap or are less than gap
// apart, then joins the closest neighbours until at most max remain.
func mergeSpans(spans []span, gap time.Duration, max int) []span {
	if len(spans) == 0 {
		return nil
	}
	spans = append([]span(nil), spans...)
	sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
	out := []span{spans[0]}
	for _, sp := range spans[1:] {
		last := &out[len(out)-1]
		if sp.from.Sub(last.to) < gap {
			if sp.to.After(last.to) {
				last.to = sp.to
			}
			continue
		}
		out = append(out, sp)
	}
	for len(out) > max {
		best := 0
		for i := 1; i < len(out)-1; i++ {
			if out[i+1].from.Sub(out[i].to) < out[best+1].from.Sub(out[best].to) {
				best = i
			}
		}
		out[best].to = out[best+1].to
		out = append(out[:best+1], out[best+2:]...)
	}
	return out
}

// hourChanges reads when the events of each hour of a campaign's
// deliveries created in [fromH, toH) last changed (an hour without events
// has no entry), and the server's time as it read them (zero when no hour
// has events: nothing is then computed or stored).
func (s *Store) hourChanges(ctx context.Context, workspaceID string, campaignID uuid.UUID, fromH, toH time.Time) (changed map[time.Time]time.Time, now time.Time, err error) {
	rows, err := s.conn.Query(ctx, hourChangesSQL, workspaceID, campaignID, fromH, toH)
	if err != nil {
		return nil, now, fmt.Errorf("clickhouse: overview hour changes: %w", err)
	}
	defer rows.Close()
	changed = map[time.Time]time.Time{}
	for rows.Next() {
		var h, c time.Time
		if err := rows.Scan(&h, &c, &now); err != nil {
			return nil, now, fmt.Errorf("clickhouse: scan overview hour changes: %w", err)
		}
		changed[h.UTC()] = c
	}
	return changed, now, rows.Err()
}

// storedHour is the newest stored computation of an hour.
type storedHour struct {
	computed time.Time
	rows     []groupRow
}

// storedHours reads the newest stored computation of each hour in [fromH,
// toH) (its mark row left out).
func (s *Store) storedHours(ctx context.Context, workspaceID string, campaignID uuid.UUID, fromH, toH time.Time) (map[time.Time]*storedHour, error) {
	rows, err := s.conn.Query(ctx, storedHoursSQL, workspaceID, campaignID, fromH, toH)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: overview stored hours: %w", err)
	}
	defer rows.Close()
	out := map[time.Time]*storedHour{}
	for rows.Next() {
		var r groupRow
		var computed time.Time
		if err := rows.Scan(append([]any{&r.Hour, &computed}, r.fields()...)...); err != nil {
			return nil, fmt.Errorf("clickhouse: scan overview stored hours: %w", err)
		}
		r.Hour = r.Hour.UTC()
		st := out[r.Hour]
		if st == nil || st.computed.Before(computed) {
			st = &storedHour{computed: computed}
			out[r.Hour] = st
		} else if computed.Before(st.computed) {
			continue
		}
		if r.State != "" {
			st.rows = append(st.rows, r)
		}
	}
	return out, rows.Err()
}

// storeHours writes the computed groups of the given hours, with a mark
// row each, as computed at now, in one insert.
func (s *Store) storeHours(ctx context.Context, workspaceID string, campaignID uuid.UUID, now time.Time, hours []time.Time, computed []groupRow) error {
	keep := map[time.Time]bool{}
	for _, h := range hours {
		keep[h] = true
	}
	batch, err := s.conn.PrepareBatch(ctx, insertOverviewHours)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare overview hours: %w", err)
	}
	defer batch.Close()
	add := func(r groupRow) error {
		return batch.Append(append([]any{workspaceID, campaignID, r.Hour, now}, r.fields()...)...)
	}
	for _, h := range hours {
		if err := add(groupRow{Hour: h}); err != nil {
			return fmt.Errorf("clickhouse: append overview hour: %w", err)
		}
	}
	for _, r := range computed {
		if keep[r.Hour] {
			if err := add(r); err != nil {
				return fmt.Errorf("clickhouse: append overview hour: %w", err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert overview hours: %w", err)
	}
	return nil
}

// campaignRange is a campaign's deliveries created in [from, to): the
// params of rangeWhere, and whether some of them have a retry round (the
// fast path then leaves those to the exact one).
type campaignRange struct {
	args    []any
	retried bool
}

// campaignRange reads whether the range has retried deliveries.
func (s *Store) campaignRange(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time) (campaignRange, error) {
	r := campaignRange{args: []any{workspaceID, campaignID, from, to}}
	var n uint64
	if err := s.conn.QueryRow(ctx, countRetriedSQL, r.args...).Scan(&n); err != nil {
		return r, fmt.Errorf("clickhouse: overview retried: %w", err)
	}
	r.retried = n > 0
	return r, nil
}

// params is lead followed by the range's params times times, and once
// more for the retried-delivery list when there is one (notRetried).
func (r campaignRange) params(times int, lead ...any) []any {
	if r.retried {
		times++
	}
	out := append([]any{}, lead...)
	for i := 0; i < times; i++ {
		out = append(out, r.args...)
	}
	return out
}

// fastFailures runs failuresFastSQL over the range: REASON rows by hour.
func (s *Store) fastFailures(ctx context.Context, r campaignRange) ([]groupRow, error) {
	return s.failureRows(ctx, failuresFastSQL(r.retried), r.params(3)...)
}

// exactRows runs the exact path over the range's retried deliveries (none
// when there are none), with a REASON row beside each FAILED group.
func (s *Store) exactRows(ctx context.Context, r campaignRange) ([]groupRow, error) {
	if !r.retried {
		return nil, nil
	}
	exact, err := s.groupRows(ctx, overviewRetriedSQL, append([]any{string(Hour)}, append(r.args, r.args...)...)...)
	if err != nil {
		return nil, err
	}
	var out []groupRow
	for _, g := range exact {
		out = append(out, g)
		if g.State == "FAILED" {
			out = append(out, groupRow{Hour: g.Hour, State: "REASON", Reason: g.Reason, N: g.N})
		}
	}
	return out, nil
}

// computeRows computes the hour groups of a campaign's deliveries created
// in [from, to) that have events: the fast path over delivery_masks, its
// failures by reason, and the exact path for retried deliveries.
func (s *Store) computeRows(ctx context.Context, workspaceID string, campaignID uuid.UUID, from, to time.Time) ([]groupRow, error) {
	r, err := s.campaignRange(ctx, workspaceID, campaignID, from, to)
	if err != nil {
		return nil, err
	}
	// The funnel (with the exact path) and the failures run at once.
	var failures []groupRow
	var failuresErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		failures, failuresErr = s.fastFailures(ctx, r)
	}()
	groups, groupsErr := s.groupRows(ctx, overviewFastSQL(r.retried), r.params(1, string(Hour))...)
	if groupsErr == nil {
		var exact []groupRow
		exact, groupsErr = s.exactRows(ctx, r)
		groups = append(groups, exact...)
	}
	<-done
	if err := errors.Join(groupsErr, failuresErr); err != nil {
		return nil, err
	}
	return append(groups, failures...), nil
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

// add folds one hour group into the part, its time-series point in the
// bucket of granularity g.
func (p *overviewPart) add(r groupRow, g Granularity) {
	o := &p.o
	t := r.Hour
	if g == Day {
		t = t.Truncate(24 * time.Hour)
	}
	if r.State == "REASON" {
		o.FailuresByReason[r.Reason] += r.N
		return
	}
	if r.State == "" {
		return
	}
	b := p.bucket(t)
	p.withEvents += r.N
	switch r.State {
	case "ATTEMPTED":
		o.Attempted += r.N
	case "SENT":
		o.Sent += r.N
		b.Sent += r.N
	case "BOUNCED":
		o.Bounced += r.N
		b.Bounced += r.N
	case "SUPPRESSED":
		o.Suppressed += r.N
		b.Suppressed += r.N
	case "FAILED":
		o.Failed += r.N
		b.Failed += r.N
	}
	o.Delivered += r.Delivered
	o.Opened += r.Opened
	o.Converted += r.Converted
	b.Delivered += r.Delivered
	b.Opened += r.Opened
	b.Converted += r.Converted
	o.SDKRecipients += r.SDK
	o.Devices.add(r.Devices)
}

// groupRows runs one of the overview's group queries (columns as
// overviewGroups).
func (s *Store) groupRows(ctx context.Context, query string, args ...any) ([]groupRow, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: overview: %w", err)
	}
	defer rows.Close()
	var out []groupRow
	for rows.Next() {
		var r groupRow
		if err := rows.Scan(append([]any{&r.Hour}, r.fields()...)...); err != nil {
			return nil, fmt.Errorf("clickhouse: scan overview: %w", err)
		}
		r.Hour = r.Hour.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: overview: %w", err)
	}
	return out, nil
}

// failureRows runs failuresFastSQL: REASON rows by hour.
func (s *Store) failureRows(ctx context.Context, query string, args ...any) ([]groupRow, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: failures by reason: %w", err)
	}
	defer rows.Close()
	var out []groupRow
	for rows.Next() {
		r := groupRow{State: "REASON"}
		if err := rows.Scan(&r.Hour, &r.Reason, &r.N); err != nil {
			return nil, fmt.Errorf("clickhouse: scan failures by reason: %w", err)
		}
		r.Hour = r.Hour.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
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
	r, err := s.campaignRange(ctx, workspaceID, campaignID, from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second))
	if err != nil {
		return nil, err
	}
	fast, err := s.fastFailures(ctx, r)
	if err != nil {
		return nil, err
	}
	exact, err := s.exactRows(ctx, r)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, g := range append(fast, exact...) {
		if g.State == "REASON" {
			out[g.Reason] += g.N
		}
	}
	return out, nil
}

// StoreSettledHours computes and stores the overview hours of every
// campaign whose events changed at or after since and have settled since
// (see Overview), so that the next Overview of those campaigns reads them
// instead of computing them. It returns the number of campaigns refreshed.
func (s *Store) StoreSettledHours(ctx context.Context, since time.Time) (int, error) {
	if s.overviewSettle <= 0 {
		return 0, nil
	}
	rows, err := s.conn.Query(ctx, settledHoursSQL, since.UTC().Truncate(time.Second), int64((s.overviewSettle+time.Second-1)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("clickhouse: settled hours: %w", err)
	}
	type campaignHours struct {
		workspaceID string
		campaignID  uuid.UUID
		from, to    time.Time
	}
	var todo []campaignHours
	for rows.Next() {
		var c campaignHours
		if err := rows.Scan(&c.workspaceID, &c.campaignID, &c.from, &c.to); err != nil {
			rows.Close()
			return 0, fmt.Errorf("clickhouse: scan settled hours: %w", err)
		}
		todo = append(todo, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("clickhouse: settled hours: %w", err)
	}
	for i, c := range todo {
		if _, err := s.overviewRows(ctx, c.workspaceID, c.campaignID, c.from.UTC(), c.to.UTC().Add(time.Hour)); err != nil {
			return i, err
		}
	}
	return len(todo), nil
}

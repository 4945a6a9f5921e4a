package clickhouse

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-faster/city"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/domain"
)

// chTime formats a time as a DateTime64 literal in UTC with microseconds.
// Bind times in WHERE clauses this way: clickhouse-go binds a time.Time as
// whole seconds. (A DateTime64(3) column reads the literal to the
// millisecond, which is exact for delivery times.)
func chTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000") }

// eventRowsSelect reads the events of deliveries, one row an event, for
// deviceRowsOf to fold in Go; the WHERE clause follows (eventRowsSQL,
// pageEventsSQL). Columns: delivery_id, round, device_index, kind,
// attempt, reason, provider_id, token, at.
//
// Herald reads one delivery's status, and a page of the delivery logs,
// this way (the rules of domain.DeliveryStatusOf, in fold), since planning
// even a GROUP BY of a few rows with its dozen -If aggregates costs more
// than reading them here; the overview and the analysts' views read
// delivery_status_in. The property test checks both against the reference
// model.
const eventRowsSelect = `
SELECT delivery_id, round, device_index, toString(kind), attempt, reason, provider_id, token, at
FROM events
`

// eventRowsSQL is eventRowsSelect for one delivery. Params: workspace_id,
// campaign_id, delivery_created (the id's time), delivery_id.
const eventRowsSQL = eventRowsSelect + `WHERE workspace_id = ? AND campaign_id = ? AND delivery_created = ? AND delivery_id = ?`

// pageEventsSQL is eventRowsSelect for a page of the delivery logs.
// Params: workspace_id, campaign ids (GroupSet), delivery_created lower and
// upper bound (inclusive), delivery ids (GroupSet).
const pageEventsSQL = eventRowsSelect + `WHERE workspace_id = ? AND campaign_id IN ? AND delivery_created >= ? AND delivery_created <= ? AND delivery_id IN ?`

// DeviceSend is one device's state in a delivery round.
type DeviceSend struct {
	Index       uint16
	Token       string
	Platform    string
	Status      string
	Attempts    int
	LastError   string
	ProviderID  string
	SentAt      time.Time // zero when absent
	DeliveredAt time.Time
	OpenedAt    time.Time
}

// DeliveryStatus is a delivery's computed status as of one round.
type DeliveryStatus struct {
	Status           string
	FailureReason    string
	DevicesTargeted  int
	DevicesAttempted int
	SentAt           time.Time // first of the round's devices; zero when absent
	DeliveredAt      time.Time
	OpenedAt         time.Time
	ConvertedAt      time.Time // first conversion, of any round
	Round            uint16
	Devices          []DeviceSend
}

// Status computes a delivery's status as of its newest round (the newest
// with an event other than a conversion), its devices and first times.
func (s *Store) Status(ctx context.Context, d Delivery) (DeliveryStatus, error) {
	rows, err := s.deviceRows(ctx, d)
	if err != nil {
		return DeliveryStatus{}, err
	}
	return fold(rows, newestRound(rows)), nil
}

// History computes a delivery's status as of each of its rounds (a retry
// starts a new one) that has an event other than a conversion, oldest
// first, from one read of its events; the last is Status. One round 0
// entry when it has no events yet.
func (s *Store) History(ctx context.Context, d Delivery) ([]DeliveryStatus, error) {
	rows, err := s.deviceRows(ctx, d)
	if err != nil {
		return nil, err
	}
	var rounds []uint16
	for _, r := range rows { // ordered by round
		if r.counts && (len(rounds) == 0 || rounds[len(rounds)-1] != r.round) {
			rounds = append(rounds, r.round)
		}
	}
	if len(rounds) == 0 {
		rounds = []uint16{0}
	}
	out := make([]DeliveryStatus, len(rounds))
	for i, round := range rounds {
		out[i] = fold(rows, round)
	}
	return out, nil
}

// deviceRow is one delivery's events of one round and device (device
// index DeliveryLevel: its delivery-level events), folded by deviceRowsOf.
type deviceRow struct {
	delivery      uuid.UUID
	round         uint16
	counts        bool // an event other than a conversion: the newest such round is the status round
	presend       bool // a pre-send failure
	presendReason string
	failed        bool   // a failed event
	failedReason  string // that of its failed events with the smallest FailureKey
	converted     time.Time
	send          DeviceSend
}

// eventRow is one row of eventRowsSelect.
type eventRow struct {
	delivery      uuid.UUID
	round, device uint16
	kind          string
	attempt       uint16
	reason        string
	providerID    string
	token         string
	at            time.Time
}

// deviceRowsOf folds events into one row per delivery, round and device,
// ordered by those. Every figure is idempotent (an event present twice
// gives the same row) and a first time is the earliest: Attempts counts
// distinct attempt numbers (of attempt events, and of any other event
// with one: a final attempt's outcome is that attempt); Status is the
// furthest state (SENT, BOUNCED, FAILED, SUPPRESSED, else PENDING); LastError is the reason of the newest
// attempt, failed or bounced event with one; failedReason and
// presendReason are the reason of their kind with the smallest FailureKey
// (FailureReasonLess); SentAt, DeliveredAt
// (delivered or opened), OpenedAt and converted are the earliest of their
// kinds; Token and Platform come from the targeted event.
func deviceRowsOf(evs []eventRow) []deviceRow {
	type key struct {
		delivery      uuid.UUID
		round, device uint16
	}
	type acc struct {
		row                       deviceRow
		sent, bounced, suppressed bool
		lastErrorAt               time.Time
		attempts                  map[uint16]bool
	}
	accs := map[key]*acc{}
	var keys []key
	for _, e := range evs {
		k := key{e.delivery, e.round, e.device}
		a := accs[k]
		if a == nil {
			a = &acc{row: deviceRow{delivery: e.delivery, round: e.round, send: DeviceSend{Index: e.device}}}
			accs[k] = a
			keys = append(keys, k)
		}
		r, ds := &a.row, &a.row.send
		if e.kind != KindConverted {
			r.counts = true
		}
		if e.kind == KindAttempt || e.attempt > 0 { // a final attempt's outcome carries its number (0007)
			if a.attempts == nil {
				a.attempts = map[uint16]bool{}
			}
			a.attempts[e.attempt] = true
		}
		switch e.kind {
		case KindTargeted:
			if e.token != "" && ds.Token == "" {
				ds.Token, ds.Platform = e.token, e.providerID
			}
		case KindSent:
			a.sent = true
			ds.SentAt = earliest(ds.SentAt, e.at)
			if ds.ProviderID == "" {
				ds.ProviderID = e.providerID
			}
		case KindBounced:
			a.bounced = true
		case KindFailed:
			if !r.failed || FailureReasonLess(e.reason, r.failedReason) {
				r.failedReason = e.reason
			}
			r.failed = true
		case KindSuppressed:
			a.suppressed = true
		case KindDelivered:
			ds.DeliveredAt = earliest(ds.DeliveredAt, e.at)
		case KindOpened:
			ds.DeliveredAt = earliest(ds.DeliveredAt, e.at)
			ds.OpenedAt = earliest(ds.OpenedAt, e.at)
		case KindConverted:
			r.converted = earliest(r.converted, e.at)
		case KindPresendFailed:
			if !r.presend || FailureReasonLess(e.reason, r.presendReason) {
				r.presendReason = e.reason
			}
			r.presend = true
		}
		switch e.kind {
		case KindAttempt, KindFailed, KindBounced:
			if e.reason != "" && (ds.LastError == "" || e.at.After(a.lastErrorAt)) {
				ds.LastError, a.lastErrorAt = e.reason, e.at
			}
		}
	}
	slices.SortFunc(keys, func(x, y key) int {
		if c := bytes.Compare(x.delivery[:], y.delivery[:]); c != 0 {
			return c
		}
		if x.round != y.round {
			return cmp.Compare(x.round, y.round)
		}
		return cmp.Compare(x.device, y.device)
	})
	out := make([]deviceRow, len(keys))
	for i, k := range keys {
		a := accs[k]
		a.row.send.Attempts = len(a.attempts)
		switch {
		case a.sent:
			a.row.send.Status = "SENT"
		case a.bounced:
			a.row.send.Status = "BOUNCED"
		case a.row.failed:
			a.row.send.Status = "FAILED"
		case a.suppressed:
			a.row.send.Status = "SUPPRESSED"
		default:
			a.row.send.Status = "PENDING"
		}
		out[i] = a.row
	}
	return out
}

// deviceRows reads a delivery's rows, by round and device index.
func (s *Store) deviceRows(ctx context.Context, d Delivery) ([]deviceRow, error) {
	return s.queryDeviceRows(s.pointRead(ctx), eventRowsSQL, d.WorkspaceID, d.CampaignID, chTime(DeliveryTime(d.ID)), d.ID)
}

// queryDeviceRows runs an eventRowsSelect query and folds its events.
func (s *Store) queryDeviceRows(ctx context.Context, query string, args ...any) ([]deviceRow, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: device sends: %w", err)
	}
	defer rows.Close()
	var evs []eventRow
	for rows.Next() {
		var e eventRow
		if err := rows.Scan(&e.delivery, &e.round, &e.device, &e.kind, &e.attempt, &e.reason, &e.providerID, &e.token, &e.at); err != nil {
			return nil, fmt.Errorf("clickhouse: scan event: %w", err)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: device sends: %w", err)
	}
	return deviceRowsOf(evs), nil
}

// newestRound is the largest round of a row with an event other than a
// conversion; 0 when there is none.
func newestRound(rows []deviceRow) uint16 {
	var r uint16
	for _, x := range rows {
		if x.counts && x.round > r {
			r = x.round
		}
	}
	return r
}

// fold computes one delivery's status as of round from its rows, by
// DESIGN.md's table (domain.DeliveryStatusOf): the devices are the round's
// device rows; a pre-send failure in the round fails it (with its reason);
// a conversion in any round converts it; a FAILED send state takes the
// failed reason of the device with the smallest index that has a failed
// event (migration 0008's rule: FAILED or not, that device's failure is
// the first).
func fold(rows []deviceRow, round uint16) DeliveryStatus {
	st := DeliveryStatus{Round: round}
	var presend bool
	var presendReason string
	var ds, sendOnly []domain.DeviceSend
	failedReason, failedSeen := "", false
	for _, r := range rows {
		st.ConvertedAt = earliest(st.ConvertedAt, r.converted)
		if r.round != round {
			continue
		}
		if r.send.Index == DeliveryLevel {
			presend, presendReason = r.presend, r.presendReason
			continue
		}
		x := r.send
		st.Devices = append(st.Devices, x)
		st.SentAt, st.DeliveredAt, st.OpenedAt = earliest(st.SentAt, x.SentAt), earliest(st.DeliveredAt, x.DeliveredAt), earliest(st.OpenedAt, x.OpenedAt)
		if x.Attempts > 0 {
			st.DevicesAttempted++
		}
		status := domain.DeviceSendStatus(x.Status)
		ds = append(ds, domain.DeviceSend{Status: status, Delivered: !x.DeliveredAt.IsZero(), Opened: !x.OpenedAt.IsZero()})
		sendOnly = append(sendOnly, domain.DeviceSend{Status: status})
		if r.failed && !failedSeen {
			failedSeen, failedReason = true, r.failedReason
		}
	}
	st.DevicesTargeted = len(st.Devices)
	st.Status = string(domain.DeliveryStatusOf(presend, !st.ConvertedAt.IsZero(), ds))
	switch {
	case presend:
		st.FailureReason = presendReason
	case domain.DeliveryStatusOf(false, false, sendOnly) == domain.DeliveryFailed:
		st.FailureReason = failedReason
	}
	return st
}

// FailureKey orders the reasons of one kind of failure (migration 0008):
// of a device's failed events in a round, or a round's presend_failed
// ones, the one whose reason has the smallest key is the failure reason.
// It is ClickHouse's cityHash64(reason) >> 8, the low 56 bits of
// delivery_states.fail, so that min() picks there what FailureReasonLess
// picks here.
func FailureKey(reason string) uint64 { return city.CH64([]byte(reason)) >> 8 }

// FailureReasonLess orders two reasons of one kind of failure: by
// FailureKey, then (for two reasons with one key) by their bytes. The
// reference model (domain/model) orders them by it too.
func FailureReasonLess(a, b string) bool {
	ka, kb := FailureKey(a), FailureKey(b)
	return ka < kb || ka == kb && a < b
}

func earliest(cur, t time.Time) time.Time {
	if t.IsZero() || (!cur.IsZero() && !t.Before(cur)) {
		return cur
	}
	return t
}

func usTime(us int64) time.Time {
	if us <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/domain"
)

// chTime formats a time as a DateTime64 literal in UTC with microseconds.
// Bind times in WHERE clauses this way: clickhouse-go binds a time.Time as
// whole seconds. (A DateTime64(3) column reads the literal to the
// millisecond, which is exact for delivery times.)
func chTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000") }

// deviceRowsSelect folds deliveries' events into one row per delivery,
// round and device (device_index 65535: the delivery-level events); the
// WHERE clause and grouping follow (deviceRowsSQL, pageRowsSQL).
// Columns: delivery_id, round, device_index, counts (1 when the row has an
// event other than a conversion: the newest such round is the delivery's
// status round), presend (a pre-send failure), presend_reason, attempts,
// status (PENDING SENT FAILED BOUNCED SUPPRESSED, a device's final state,
// furthest first), last_error (the newest provider error), failed_reason
// (why the device FAILED), provider_id, sent_us, delivered_us, opened_us,
// converted_us (the first time of each, 0 when absent), token and platform
// (from the device's targeted event). Every figure is idempotent: an event
// row present twice gives the same answer, and a first time is min(at).
//
// Herald reads one delivery's status, and a page of the delivery logs,
// from these rows with fold (the rules of domain.DeliveryStatusOf), since
// planning a query on delivery_status_in alone takes 80-100 ms here; the
// overview and the analysts' views read delivery_status_in. The property
// test checks both against the reference model.
const deviceRowsSelect = `
SELECT
    delivery_id, round, device_index,
    max(kind != 'converted') AS counts,
    maxIf(toUInt8(1), kind = 'presend_failed') AS presend,
    minIf(reason, kind = 'presend_failed') AS presend_reason,
    uniqExactIf(attempt, kind = 'attempt') AS attempts,
    multiIf(maxIf(toUInt8(1), kind = 'sent') = 1, 'SENT',
            maxIf(toUInt8(1), kind = 'bounced') = 1, 'BOUNCED',
            maxIf(toUInt8(1), kind = 'failed') = 1, 'FAILED',
            maxIf(toUInt8(1), kind = 'suppressed') = 1, 'SUPPRESSED',
            'PENDING') AS status,
    argMaxIf(reason, at, kind IN ('attempt', 'failed', 'bounced') AND reason != '') AS last_error,
    minIf(reason, kind = 'failed') AS failed_reason,
    anyIf(provider_id, kind = 'sent') AS sent_provider_id,
    toUnixTimestamp64Micro(minIf(at, kind = 'sent')) AS sent_us,
    toUnixTimestamp64Micro(minIf(at, kind IN ('delivered', 'opened'))) AS delivered_us,
    toUnixTimestamp64Micro(minIf(at, kind = 'opened')) AS opened_us,
    toUnixTimestamp64Micro(minIf(at, kind = 'converted')) AS converted_us,
    anyIf(token, kind = 'targeted' AND token != '') AS targeted_token,
    anyIf(provider_id, kind = 'targeted' AND token != '') AS targeted_platform
FROM events
`

// deviceRowsSQL is deviceRowsSelect for one delivery. Params: workspace_id,
// campaign_id, delivery_created (the id's time), delivery_id.
const deviceRowsSQL = deviceRowsSelect + `WHERE workspace_id = ? AND campaign_id = ? AND delivery_created = ? AND delivery_id = ?
GROUP BY delivery_id, round, device_index
ORDER BY round, device_index`

// pageRowsSQL is deviceRowsSelect for a page of the delivery logs. Params:
// workspace_id, campaign ids (GroupSet), delivery_created lower and upper
// bound (inclusive), delivery ids (GroupSet).
const pageRowsSQL = deviceRowsSelect + `WHERE workspace_id = ? AND campaign_id IN ? AND delivery_created >= ? AND delivery_created <= ? AND delivery_id IN ?
GROUP BY delivery_id, round, device_index
ORDER BY delivery_id, round, device_index`

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

// selectDeliveryDevices: params workspace_id, delivery_id, round; columns
// device_index, token, platform.
const selectDeliveryDevices = `SELECT device_index, token, toString(platform) FROM delivery_devices FINAL
WHERE workspace_id = ? AND delivery_id = ? AND round = ?`

// Status computes a delivery's status as of its newest round (the newest
// with an event other than a conversion), its devices and first times.
func (s *Store) Status(ctx context.Context, d Delivery) (DeliveryStatus, error) {
	rows, err := s.deviceRows(ctx, d)
	if err != nil {
		return DeliveryStatus{}, err
	}
	st := fold(rows, newestRound(rows))
	return st, s.fillTokens(ctx, d, &st)
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
		if err := s.fillTokens(ctx, d, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// deviceRow is one row of deviceRowsSQL.
type deviceRow struct {
	delivery      uuid.UUID
	round         uint16
	counts        bool
	presend       bool
	presendReason string
	failedReason  string
	converted     time.Time
	send          DeviceSend
}

// deviceRows reads a delivery's rows, by round and device index.
func (s *Store) deviceRows(ctx context.Context, d Delivery) ([]deviceRow, error) {
	return s.queryDeviceRows(ctx, deviceRowsSQL, d.WorkspaceID, d.CampaignID, chTime(DeliveryTime(d.ID)), d.ID)
}

func (s *Store) queryDeviceRows(ctx context.Context, query string, args ...any) ([]deviceRow, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: device sends: %w", err)
	}
	defer rows.Close()
	var out []deviceRow
	for rows.Next() {
		var r deviceRow
		var counts, presend uint8
		var attempts uint64
		var sUS, dUS, oUS, cUS int64
		ds := &r.send
		if err := rows.Scan(&r.delivery, &r.round, &ds.Index, &counts, &presend, &r.presendReason, &attempts, &ds.Status, &ds.LastError, &r.failedReason,
			&ds.ProviderID, &sUS, &dUS, &oUS, &cUS, &ds.Token, &ds.Platform); err != nil {
			return nil, fmt.Errorf("clickhouse: scan device send: %w", err)
		}
		r.counts, r.presend, r.converted = counts == 1, presend == 1, usTime(cUS)
		ds.Attempts = int(attempts)
		ds.SentAt, ds.DeliveredAt, ds.OpenedAt = usTime(sUS), usTime(dUS), usTime(oUS)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: device sends: %w", err)
	}
	return out, nil
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
// failed reason of the FAILED device with the smallest index.
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
		if status == domain.DeviceSendFailed && !failedSeen {
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

func earliest(cur, t time.Time) time.Time {
	if t.IsZero() || (!cur.IsZero() && !t.Before(cur)) {
		return cur
	}
	return t
}

// fillTokens adds the tokens that targeted events written before they
// carried one lack, from delivery_devices.
func (s *Store) fillTokens(ctx context.Context, d Delivery, st *DeliveryStatus) error {
	missing := false
	for _, x := range st.Devices {
		if x.Token == "" {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	tokens, err := s.DeliveryDevices(ctx, d.WorkspaceID, d.ID, st.Round)
	if err != nil {
		return err
	}
	for i := range st.Devices {
		if dd, ok := tokens[st.Devices[i].Index]; ok && st.Devices[i].Token == "" {
			st.Devices[i].Token, st.Devices[i].Platform = dd.Token, dd.Platform
		}
	}
	return nil
}

// DeliveryDevices returns a round's targeted devices by index.
func (s *Store) DeliveryDevices(ctx context.Context, workspaceID string, deliveryID uuid.UUID, round uint16) (map[uint16]DeliveryDevice, error) {
	rows, err := s.conn.Query(ctx, selectDeliveryDevices, workspaceID, deliveryID, round)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: select delivery devices: %w", err)
	}
	defer rows.Close()
	out := map[uint16]DeliveryDevice{}
	for rows.Next() {
		var dd DeliveryDevice
		if err := rows.Scan(&dd.Index, &dd.Token, &dd.Platform); err != nil {
			return nil, fmt.Errorf("clickhouse: scan delivery device: %w", err)
		}
		out[dd.Index] = dd
	}
	return out, rows.Err()
}

func usTime(us int64) time.Time {
	if us <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

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

// statusRowSQL reads one delivery's row of delivery_status_in, the one
// status definition (migrations/0001_baseline.sql). Params: workspace,
// campaign, from and to (the delivery's creation millisecond and the next
// one, so only its rows are read), delivery_id. Columns: status,
// failure_reason, n_dev, n_attempted, r (the round the figures are of;
// -1 when it has only conversions). No row: the delivery has no events yet.
const statusRowSQL = `SELECT toString(status), failure_reason, n_dev, n_attempted, r
FROM delivery_status_in(workspace = ?, campaign = ?, from = ?, to = ?)
WHERE delivery_id = ?`

// deviceSendsSQL folds one delivery round's events into one row per device.
// Params: workspace_id, campaign_id, delivery_created, delivery_id, round.
// Columns: device_index, presend (1 when a pre-send failure was recorded;
// only on device_index 65535), presend_reason, attempts, status (PENDING
// SENT FAILED BOUNCED SUPPRESSED, a device's final state, furthest first),
// last_error (the newest provider error), failed_reason (why the device
// FAILED), provider_id, sent_us, delivered_us, opened_us, converted_us (the
// first time of each, 0 when absent), token and platform (from the
// device's targeted event).
//
// A conversion belongs to the delivery, not to a round, so converted rows
// of any round count. Every figure is idempotent: an event row present
// twice gives the same answer, and a first time is min(at).
const deviceSendsSQL = `
SELECT
    device_index,
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
WHERE workspace_id = ? AND campaign_id = ? AND delivery_created = ? AND delivery_id = ?
  AND (round = ? OR kind = 'converted')
GROUP BY device_index
ORDER BY device_index`

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

// Status computes a delivery's status: the status, failure reason and
// device counts from delivery_status_in, the devices and first times from
// the newest round's events.
func (s *Store) Status(ctx context.Context, d Delivery) (DeliveryStatus, error) {
	st := DeliveryStatus{Status: string(domain.DeliveryAttempted)}
	var targeted, attempted uint32
	var round int64
	created := DeliveryTime(d.ID)
	err := s.conn.QueryRow(ctx, statusRowSQL, d.WorkspaceID, d.CampaignID, chTime(created), chTime(created.Add(time.Millisecond)), d.ID).
		Scan(&st.Status, &st.FailureReason, &targeted, &attempted, &round)
	if err := rowErr("delivery status", err); err != nil && !isNotFound(err) {
		return st, err
	}
	st.DevicesTargeted, st.DevicesAttempted = int(targeted), int(attempted)
	if round > 0 {
		st.Round = uint16(round)
	}
	devices, conv, err := s.deviceSends(ctx, d, st.Round)
	if err != nil {
		return st, err
	}
	st.Devices, st.ConvertedAt = devices.sends, conv
	st.SentAt, st.DeliveredAt, st.OpenedAt = devices.firsts()
	return st, nil
}

// roundsSQL: params workspace_id, campaign_id, delivery_created,
// delivery_id; column round: the delivery's rounds that have events other
// than converted, in order.
const roundsSQL = `SELECT DISTINCT round FROM events
WHERE workspace_id = ? AND campaign_id = ? AND delivery_created = ? AND delivery_id = ? AND kind != 'converted'
ORDER BY round`

// Rounds lists a delivery's rounds (a retry starts a new one); [0] when it
// has no events yet.
func (s *Store) Rounds(ctx context.Context, d Delivery) ([]uint16, error) {
	rows, err := s.conn.Query(ctx, roundsSQL, d.WorkspaceID, d.CampaignID, chTime(DeliveryTime(d.ID)), d.ID)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: delivery rounds: %w", err)
	}
	defer rows.Close()
	var out []uint16
	for rows.Next() {
		var r uint16
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("clickhouse: scan round: %w", err)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		out = []uint16{0}
	}
	return out, rows.Err()
}

// StatusOfRound computes a delivery's status as of one round, for its
// history, by domain.DeliveryStatusOf from the round's device sends (the
// newest round's status is Status, from delivery_status_in; the property
// test checks that the two agree).
func (s *Store) StatusOfRound(ctx context.Context, d Delivery, round uint16) (DeliveryStatus, error) {
	devices, conv, err := s.deviceSends(ctx, d, round)
	if err != nil {
		return DeliveryStatus{}, err
	}
	st := DeliveryStatus{Round: round, Devices: devices.sends, ConvertedAt: conv}
	st.SentAt, st.DeliveredAt, st.OpenedAt = devices.firsts()
	ds := make([]domain.DeviceSend, len(devices.sends))
	sendOnly := make([]domain.DeviceSend, len(devices.sends)) // without the app's reports
	failedReason, failedIndex := "", -1
	for i, x := range devices.sends {
		ds[i] = domain.DeviceSend{Status: domain.DeviceSendStatus(x.Status), Delivered: !x.DeliveredAt.IsZero(), Opened: !x.OpenedAt.IsZero()}
		sendOnly[i] = domain.DeviceSend{Status: ds[i].Status}
		if x.Attempts > 0 {
			st.DevicesAttempted++
		}
		if x.Status == string(domain.DeviceSendFailed) && failedIndex < 0 {
			failedIndex, failedReason = int(x.Index), devices.failedReason[x.Index]
		}
	}
	st.DevicesTargeted = len(ds)
	st.Status = string(domain.DeliveryStatusOf(devices.presend, !conv.IsZero(), ds))
	switch {
	case devices.presend:
		st.FailureReason = devices.presendReason
	case domain.DeliveryStatusOf(false, false, sendOnly) == domain.DeliveryFailed:
		st.FailureReason = failedReason
	}
	return st, nil
}

// roundDevices is one round's device sends as deviceSendsSQL reads them.
type roundDevices struct {
	sends         []DeviceSend
	presend       bool
	presendReason string
	failedReason  map[uint16]string
}

// firsts are the first sent, delivered and opened times of the devices.
func (r roundDevices) firsts() (sent, delivered, opened time.Time) {
	for _, d := range r.sends {
		sent, delivered, opened = earliest(sent, d.SentAt), earliest(delivered, d.DeliveredAt), earliest(opened, d.OpenedAt)
	}
	return sent, delivered, opened
}

func earliest(cur, t time.Time) time.Time {
	if t.IsZero() || (!cur.IsZero() && !t.Before(cur)) {
		return cur
	}
	return t
}

// deviceSends reads a round's devices and the delivery's first conversion.
func (s *Store) deviceSends(ctx context.Context, d Delivery, round uint16) (roundDevices, time.Time, error) {
	out := roundDevices{failedReason: map[uint16]string{}}
	var converted time.Time
	rows, err := s.conn.Query(ctx, deviceSendsSQL, d.WorkspaceID, d.CampaignID, chTime(DeliveryTime(d.ID)), d.ID, round)
	if err != nil {
		return out, converted, fmt.Errorf("clickhouse: device sends: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ds DeviceSend
		var presend uint8
		var presendReason, failedReason string
		var attempts uint64
		var sUS, dUS, oUS, cUS int64
		if err := rows.Scan(&ds.Index, &presend, &presendReason, &attempts, &ds.Status, &ds.LastError, &failedReason, &ds.ProviderID, &sUS, &dUS, &oUS, &cUS, &ds.Token, &ds.Platform); err != nil {
			return out, converted, fmt.Errorf("clickhouse: scan device send: %w", err)
		}
		converted = earliest(converted, usTime(cUS))
		if ds.Index == DeliveryLevel {
			out.presend, out.presendReason = presend == 1, presendReason
			continue
		}
		ds.Attempts = int(attempts)
		ds.SentAt, ds.DeliveredAt, ds.OpenedAt = usTime(sUS), usTime(dUS), usTime(oUS)
		out.failedReason[ds.Index] = failedReason
		out.sends = append(out.sends, ds)
	}
	if err := rows.Err(); err != nil {
		return out, converted, fmt.Errorf("clickhouse: device sends: %w", err)
	}
	missing := false
	for _, ds := range out.sends {
		if ds.Token == "" {
			missing = true
		}
	}
	if !missing {
		return out, converted, nil
	}
	tokens, err := s.DeliveryDevices(ctx, d.WorkspaceID, d.ID, round)
	if err != nil {
		return out, converted, err
	}
	for i := range out.sends {
		if dd, ok := tokens[out.sends[i].Index]; ok && out.sends[i].Token == "" {
			out.sends[i].Token, out.sends[i].Platform = dd.Token, dd.Platform
		}
	}
	return out, converted, nil
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

package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// deviceSendsSQL folds one delivery round's events into one row per device.
// Params: workspace_id, campaign_id, delivery_id, round (see roundsSQL). Columns: device_index, presend (1 when a
// pre-send failure was recorded; only on device_index 255), presend_reason,
// attempts, status (PENDING SENT FAILED BOUNCED SUPPRESSED, a device's final
// state, furthest first), last_error (the newest provider error),
// failed_reason (why the device FAILED), provider_id, sent_us, delivered_us,
// opened_us, converted_us (0 when absent), newest_round, targeted_token and
// targeted_platform (the device's token and platform as its targeted event
// carries them since 0009; empty for older rows, which delivery_devices has). Conversions are
// delivery-level events (device_index 255).
//
// A conversion belongs to the delivery, not to a round, so converted rows
// of any round count. Every figure is idempotent: maxIf, uniqExactIf and minIf give the same
// answer when an event row is present twice.
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
    argMaxIf(reason, at_us, kind IN ('attempt', 'failed', 'bounced') AND reason != '') AS last_error,
    minIf(reason, kind = 'failed') AS failed_reason,
    anyIf(provider_id, kind = 'sent') AS sent_provider_id,
    minIf(at_us, kind = 'sent') AS sent_us,
    minIf(at_us, kind IN ('delivered', 'opened')) AS delivered_us,
    minIf(at_us, kind = 'opened') AS opened_us,
    minIf(at_us, kind = 'converted') AS converted_us,
    max(round) AS newest_round,
    anyIf(token, kind = 'targeted' AND token != '') AS targeted_token,
    anyIf(provider_id, kind = 'targeted' AND token != '') AS targeted_platform
FROM events
WHERE workspace_id = ? AND campaign_id = ? AND delivery_id = ?
  AND (round = ? OR kind = 'converted')
GROUP BY device_index
ORDER BY device_index`

// deliveryStatusSQL computes a delivery's status by DESIGN.md's table from
// deviceSendsSQL's rows. Params: as deviceSendsSQL. Columns: send_state (the
// status without the app's reports), status,
// failure_reason, devices_targeted, devices_attempted, sent_us,
// delivered_us, opened_us (0 when absent).
const deliveryStatusSQL = `
SELECT
    multiIf(max(presend) = 1, 'FAILED',
            countIf(device_index < 255) = 0 OR countIf(device_index < 255 AND status = 'PENDING') > 0, 'ATTEMPTED',
            countIf(device_index < 255 AND status = 'SENT') > 0, 'SENT',
            countIf(device_index < 255 AND status = 'SUPPRESSED') = countIf(device_index < 255), 'SUPPRESSED',
            countIf(device_index < 255 AND status = 'FAILED') = 0, 'BOUNCED',
            'FAILED') AS send_state,
    multiIf(max(presend) = 1, 'FAILED',
            countIf(converted_us > 0) > 0, 'CONVERTED',
            countIf(device_index < 255 AND opened_us > 0) > 0, 'OPENED',
            countIf(device_index < 255 AND delivered_us > 0) > 0, 'DELIVERED',
            send_state) AS delivery_status,
    multiIf(max(presend) = 1, minIf(presend_reason, presend = 1),
            send_state = 'FAILED', argMinIf(failed_reason, device_index, device_index < 255 AND status = 'FAILED'),
            '') AS failure_reason,
    countIf(device_index < 255) AS devices_targeted,
    countIf(device_index < 255 AND attempts > 0) AS devices_attempted,
    minIf(sent_us, device_index < 255 AND sent_us > 0) AS first_sent_us,
    minIf(delivered_us, device_index < 255 AND delivered_us > 0) AS first_delivered_us,
    minIf(opened_us, device_index < 255 AND opened_us > 0) AS first_opened_us,
    minIf(converted_us, converted_us > 0) AS first_converted_us
FROM (` + deviceSendsSQL + `)`

// DeviceSend is one device's state in a delivery's newest round.
type DeviceSend struct {
	Index       uint8
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

// DeliveryStatus is a delivery's computed status.
type DeliveryStatus struct {
	Status           string
	FailureReason    string
	DevicesTargeted  int
	DevicesAttempted int
	SentAt           time.Time // zero when absent
	DeliveredAt      time.Time
	OpenedAt         time.Time
	ConvertedAt      time.Time
	Round            uint16
	Devices          []DeviceSend
}

// selectDeliveryDevices: params workspace_id, delivery_id, round; columns
// device_index, token, platform.
const selectDeliveryDevices = `SELECT device_index, token, toString(platform) FROM delivery_devices FINAL
WHERE workspace_id = ? AND delivery_id = ? AND round = ?`

// Status computes a delivery's status and its devices' sends from the events.
func (s *Store) Status(ctx context.Context, d Delivery) (DeliveryStatus, error) {
	rounds, err := s.Rounds(ctx, d)
	if err != nil {
		return DeliveryStatus{}, err
	}
	return s.StatusOfRound(ctx, d, rounds[len(rounds)-1])
}

// roundsSQL: params workspace_id, campaign_id, delivery_id; column round:
// the delivery's rounds that have events other than converted, in order.
const roundsSQL = `SELECT DISTINCT round FROM events
WHERE workspace_id = ? AND campaign_id = ? AND delivery_id = ? AND kind != 'converted'
ORDER BY round`

// Rounds lists a delivery's rounds (a retry starts a new one); [0] when it
// has no events yet.
func (s *Store) Rounds(ctx context.Context, d Delivery) ([]uint16, error) {
	rows, err := s.conn.Query(ctx, roundsSQL, d.WorkspaceID, d.CampaignID, d.ID)
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

// StatusOfRound computes a delivery's status as of one round (the newest
// round is the delivery's status; older ones are its history).
func (s *Store) StatusOfRound(ctx context.Context, d Delivery, round uint16) (DeliveryStatus, error) {
	args := []any{d.WorkspaceID, d.CampaignID, d.ID, round}
	var st DeliveryStatus
	var targeted, attempted uint64
	var sentUS, delivUS, openUS, convUS uint64
	var sendState string
	if err := s.conn.QueryRow(ctx, deliveryStatusSQL, args...).Scan(&sendState, &st.Status, &st.FailureReason, &targeted, &attempted, &sentUS, &delivUS, &openUS, &convUS); err != nil {
		return st, fmt.Errorf("clickhouse: delivery status: %w", err)
	}
	st.DevicesTargeted, st.DevicesAttempted = int(targeted), int(attempted)
	st.SentAt, st.DeliveredAt, st.OpenedAt, st.ConvertedAt = usTime(sentUS), usTime(delivUS), usTime(openUS), usTime(convUS)

	rows, err := s.conn.Query(ctx, deviceSendsSQL, args...)
	if err != nil {
		return st, fmt.Errorf("clickhouse: device sends: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ds DeviceSend
		var presend uint8
		var presendReason, failedReason string
		var attempts uint64
		var sUS, dUS, oUS, cUS uint64
		var newest uint16
		if err := rows.Scan(&ds.Index, &presend, &presendReason, &attempts, &ds.Status, &ds.LastError, &failedReason, &ds.ProviderID, &sUS, &dUS, &oUS, &cUS, &newest, &ds.Token, &ds.Platform); err != nil {
			return st, fmt.Errorf("clickhouse: scan device send: %w", err)
		}
		if ds.Index == DeliveryLevel {
			continue
		}
		ds.Attempts = int(attempts)
		ds.SentAt, ds.DeliveredAt, ds.OpenedAt = usTime(sUS), usTime(dUS), usTime(oUS)
		st.Devices = append(st.Devices, ds)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("clickhouse: device sends: %w", err)
	}
	st.Round = round
	missing := false
	for _, ds := range st.Devices {
		if ds.Token == "" {
			missing = true
		}
	}
	if !missing {
		return st, nil
	}
	tokens, err := s.DeliveryDevices(ctx, d.WorkspaceID, d.ID, st.Round)
	if err != nil {
		return st, err
	}
	for i := range st.Devices {
		if dd, ok := tokens[st.Devices[i].Index]; ok && st.Devices[i].Token == "" {
			st.Devices[i].Token, st.Devices[i].Platform = dd.Token, dd.Platform
		}
	}
	return st, nil
}

// DeliveryDevices returns a round's targeted devices by index.
func (s *Store) DeliveryDevices(ctx context.Context, workspaceID string, deliveryID uuid.UUID, round uint16) (map[uint8]DeliveryDevice, error) {
	rows, err := s.conn.Query(ctx, selectDeliveryDevices, workspaceID, deliveryID, round)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: select delivery devices: %w", err)
	}
	defer rows.Close()
	out := map[uint8]DeliveryDevice{}
	for rows.Next() {
		var dd DeliveryDevice
		if err := rows.Scan(&dd.Index, &dd.Token, &dd.Platform); err != nil {
			return nil, fmt.Errorf("clickhouse: scan delivery device: %w", err)
		}
		out[dd.Index] = dd
	}
	return out, rows.Err()
}

func usTime(us uint64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(us)).UTC()
}

package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// Event kinds, as the events.kind Enum8 spells them.
const (
	KindTargeted      = "targeted"
	KindAttempt       = "attempt"
	KindSent          = "sent"
	KindBounced       = "bounced"
	KindFailed        = "failed"
	KindSuppressed    = "suppressed"
	KindDelivered     = "delivered"
	KindOpened        = "opened"
	KindConverted     = "converted"
	KindPresendFailed = "presend_failed"
)

// DeliveryLevel is the device_index of delivery-level events (pre-send
// failures, conversions, the start of a retry round).
const DeliveryLevel = 65535

// MaxDevices is the most devices one delivery round can target: device
// indexes are UInt16 and 65535 is DeliveryLevel.
const MaxDevices = DeliveryLevel

// Event is one row of the events table. (WorkspaceID, CampaignID,
// DeliveryID, Round, DeviceIndex, Kind, Attempt) is its identity: writing the
// same event twice never changes a figure.
type Event struct {
	WorkspaceID     string
	CampaignID      uuid.UUID
	DeliveryID      uuid.UUID
	Round           uint16
	DeviceIndex     uint16
	Kind            string
	Attempt         uint16 // the attempt's number (from 1) on attempt rows and on the outcome (sent, bounced, failed) that ended one (0007); else 0
	StatusCode      uint16 // the provider's HTTP status; on targeted: 1 = the token had reported a metric before
	Reason          string
	ProviderID      string    // the platform on targeted; the provider's message id on attempts and outcomes
	Token           string    // the device's token on targeted; the reporting device's on delivered/opened
	DeliveryCreated time.Time // the delivery's id time; ClickHouse derives the stored one from the id
	At              time.Time
}

// insertEvents: params workspace_id, campaign_id, delivery_id, round,
// device_index, kind, attempt, status_code, reason, provider_id, token, at
// (delivery_created comes from the delivery id).
const insertEvents = `INSERT INTO events (workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt, status_code, reason, provider_id, token, at)`

// InsertEvents writes events in one batch, a column at a time (the
// driver appends a slice per column far faster than a row of twelve
// values at a time: the event consumer's inserts spent most of their
// time in per-row Append).
func InsertEvents(ctx context.Context, conn driver.Conn, events []Event) error {
	n := len(events)
	var (
		ws                                 = make([]string, n)
		campaign, delivery                 = make([]uuid.UUID, n), make([]uuid.UUID, n)
		round, device, attempt, statusCode = make([]uint16, n), make([]uint16, n), make([]uint16, n), make([]uint16, n)
		kind                               = make([]int8, n)
		reason, providerID, token          = make([]string, n), make([]string, n), make([]string, n)
		at                                 = make([]time.Time, n)
	)
	for i, e := range events {
		code, ok := kindCodes[e.Kind]
		if !ok {
			return fmt.Errorf("clickhouse: append event: unknown kind %q", e.Kind)
		}
		ws[i], campaign[i], delivery[i] = e.WorkspaceID, e.CampaignID, e.DeliveryID
		round[i], device[i], kind[i], attempt[i], statusCode[i] = e.Round, e.DeviceIndex, int8(code), e.Attempt, e.StatusCode
		reason[i], providerID[i], token[i], at[i] = e.Reason, e.ProviderID, e.Token, e.At
	}
	batch, err := conn.PrepareBatch(ctx, insertEvents)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare events: %w", err)
	}
	defer batch.Close()
	for i, col := range []any{ws, campaign, delivery, round, device, kind, attempt, statusCode, reason, providerID, token, at} {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("clickhouse: append events column %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert events: %w", err)
	}
	return nil
}

// InsertEvents writes events straight into ClickHouse, bypassing the
// buffered writer, for the rare write that the next read must see.
func (s *Store) InsertEvents(ctx context.Context, events ...Event) error {
	return InsertEvents(ctx, s.conn, events)
}

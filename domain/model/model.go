// Package model is a reference model of Herald's status and campaign
// overview rules, computed in plain Go from a delivery's event rows, and a
// generator of random delivery histories (see Generate). A property test
// writes generated histories to ClickHouse and checks that the SQL in
// clickhouse/status.go and clickhouse/overview.go gives the model's answers.
//
// The model reads events exactly as the SQL does: duplicates of a row never
// change a figure (every fold is a set membership, a distinct count or a
// minimum), and the order of the rows does not matter. Where the SQL could
// pick between differing values (several reasons on rows of one kind), the
// model picks the smallest string, so that the SQL can match it with minIf.
package model

import (
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
)

// Delivery is one delivery's metadata, the devices each of its rounds
// targeted and every event row the system wrote for it, duplicates
// included, in any order.
type Delivery struct {
	// Delivery holds WorkspaceID, ID (a UUIDv7 whose time is CreatedAt to
	// the millisecond), CampaignID, MessageID, PersonID, Audience and CreatedAt.
	clickhouse.Delivery
	// Devices lists the devices of each round, Devices[r] for round r, as
	// their targeted events carry them. A round that failed before sending
	// targeted no device and has a nil entry.
	Devices [][]clickhouse.DeliveryDevice
	// Events is every row of the events table for this delivery.
	Events []clickhouse.Event
}

// RoundDevices returns the devices listed for round r, nil when none.
func (d Delivery) RoundDevices(r uint16) []clickhouse.DeliveryDevice {
	if int(r) < len(d.Devices) {
		return d.Devices[r]
	}
	return nil
}

// DeviceResult is one device send of a delivery's newest round.
type DeviceResult struct {
	Index    uint16
	Token    string // from Delivery.Devices of the round; "" when not listed
	Platform string
	Status   domain.DeviceSendStatus
	// Attempts counts the distinct attempt numbers of the device's attempt rows.
	Attempts  int
	Delivered bool // a delivered or an opened row
	Opened    bool // an opened row
	// SDK: the device had reported a metric before it was targeted (its
	// targeted row has status_code 1) or reported one for this delivery.
	SDK bool
	// SentAt, DeliveredAt (delivered or opened) and OpenedAt are the
	// earliest such rows' times at microsecond precision, UTC; zero when absent.
	SentAt, DeliveredAt, OpenedAt time.Time
}

// Result is a delivery's status as the model computes it.
type Result struct {
	// Status is domain.DeliveryStatusOf(presend, converted, devices).
	Status domain.DeliveryStatus
	// SendState is the status with the delivered, opened and converted rows
	// ignored: ATTEMPTED, SENT, BOUNCED, SUPPRESSED or FAILED.
	SendState domain.DeliveryStatus
	// FailureReason is the pre-send reason when the newest round failed
	// before sending; else, when SendState is FAILED, the reason of the
	// failed row of the device with the smallest index that has one (it
	// may also have bounced or sent); else "". Of several such rows, the
	// reason first by clickhouse.FailureReasonLess (migration 0008's order).
	FailureReason string
	// Converted: a converted row in any round.
	Converted        bool
	DevicesTargeted  int // devices with any row in the newest round
	DevicesAttempted int // of those, devices with Attempts > 0
	// Round is the newest round: the largest round of a row that is not a
	// conversion, 0 when there is none.
	Round   uint16
	Devices []DeviceResult // by index
	// Earliest times, microsecond precision, UTC; zero when absent.
	// SentAt, DeliveredAt and OpenedAt read device rows of the newest round;
	// ConvertedAt reads converted rows of every round.
	SentAt, DeliveredAt, OpenedAt, ConvertedAt time.Time
}

// Status computes a delivery's status from its events by the rules of
// clickhouse/status.go:
//
//   - the newest round r is the largest round of a row whose kind is not
//     converted (0 if there is none); rows of other rounds are ignored,
//     except conversions;
//   - a device is a device_index below 65535 with any row in round r;
//   - its status is SENT if it has a sent row, else BOUNCED if bounced, else
//     FAILED if failed, else SUPPRESSED if suppressed, else PENDING;
//   - a presend_failed row in round r fails the delivery (its reason, the
//     smallest if several differ, is the failure reason);
//   - a converted row in any round, at any device index, converts it.
func Status(d Delivery) Result {
	var res Result
	for _, e := range d.Events {
		if e.Kind != clickhouse.KindConverted && e.Round > res.Round {
			res.Round = e.Round
		}
	}

	type acc struct {
		sent, bounced, failed, suppressed, delivered, opened bool
		sdkKnown                                             bool
		attempts                                             map[uint16]bool
		failedReason                                         string
		sentAt, deliveredAt, openedAt                        time.Time
	}
	devs := map[uint16]*acc{}
	var presend, converted bool
	var presendReason string
	for _, e := range d.Events {
		if e.Kind == clickhouse.KindConverted {
			converted = true
			res.ConvertedAt = earliest(res.ConvertedAt, e.At)
		}
		if e.Round != res.Round {
			continue
		}
		if e.Kind == clickhouse.KindPresendFailed {
			if !presend || clickhouse.FailureReasonLess(e.Reason, presendReason) {
				presendReason = e.Reason
			}
			presend = true
		}
		if e.DeviceIndex == clickhouse.DeliveryLevel {
			continue
		}
		a := devs[e.DeviceIndex]
		if a == nil {
			a = &acc{attempts: map[uint16]bool{}}
			devs[e.DeviceIndex] = a
		}
		if e.Kind == clickhouse.KindAttempt || e.Attempt > 0 {
			// A final attempt's outcome row carries its attempt number (0007).
			a.attempts[e.Attempt] = true
		}
		switch e.Kind {
		case clickhouse.KindTargeted:
			// status_code 1: the token had reported a metric before it was targeted.
			a.sdkKnown = a.sdkKnown || e.StatusCode == 1
		case clickhouse.KindSent:
			a.sent = true
			a.sentAt = earliest(a.sentAt, e.At)
		case clickhouse.KindBounced:
			a.bounced = true
		case clickhouse.KindFailed:
			if !a.failed || clickhouse.FailureReasonLess(e.Reason, a.failedReason) {
				a.failedReason = e.Reason
			}
			a.failed = true
		case clickhouse.KindSuppressed:
			a.suppressed = true
		case clickhouse.KindDelivered:
			a.delivered = true
			a.deliveredAt = earliest(a.deliveredAt, e.At)
		case clickhouse.KindOpened:
			a.delivered, a.opened = true, true
			a.deliveredAt = earliest(a.deliveredAt, e.At)
			a.openedAt = earliest(a.openedAt, e.At)
		}
	}

	listed := map[uint16]clickhouse.DeliveryDevice{}
	for _, dd := range d.RoundDevices(res.Round) {
		listed[dd.Index] = dd
	}
	indexes := make([]uint16, 0, len(devs))
	for i := range devs {
		indexes = append(indexes, i)
	}
	slices.Sort(indexes)

	sends := make([]domain.DeviceSend, 0, len(indexes))
	bare := make([]domain.DeviceSend, 0, len(indexes))
	failureReason, haveFailure := "", false
	for _, i := range indexes {
		a := devs[i]
		dr := DeviceResult{Index: i, Attempts: len(a.attempts), Delivered: a.delivered, Opened: a.opened, SDK: a.sdkKnown || a.delivered,
			SentAt: a.sentAt, DeliveredAt: a.deliveredAt, OpenedAt: a.openedAt}
		if dd, ok := listed[i]; ok {
			dr.Token, dr.Platform = dd.Token, dd.Platform
		}
		switch {
		case a.sent:
			dr.Status = domain.DeviceSendSent
		case a.bounced:
			dr.Status = domain.DeviceSendBounced
		case a.failed:
			dr.Status = domain.DeviceSendFailed
		case a.suppressed:
			dr.Status = domain.DeviceSendSuppressed
		default:
			dr.Status = domain.DeviceSendPending
		}
		if a.failed && !haveFailure {
			failureReason, haveFailure = a.failedReason, true
		}
		res.Devices = append(res.Devices, dr)
		sends = append(sends, domain.DeviceSend{Status: dr.Status, Delivered: dr.Delivered, Opened: dr.Opened})
		bare = append(bare, domain.DeviceSend{Status: dr.Status})
		if dr.Attempts > 0 {
			res.DevicesAttempted++
		}
		res.SentAt = earliest(res.SentAt, dr.SentAt)
		res.DeliveredAt = earliest(res.DeliveredAt, dr.DeliveredAt)
		res.OpenedAt = earliest(res.OpenedAt, dr.OpenedAt)
	}
	res.DevicesTargeted = len(res.Devices)
	res.Converted = converted
	res.Status = domain.DeliveryStatusOf(presend, converted, sends)
	res.SendState = domain.DeliveryStatusOf(presend, false, bare)
	switch {
	case presend:
		res.FailureReason = presendReason
	case res.SendState == domain.DeliveryFailed:
		res.FailureReason = failureReason
	}
	return res
}

// earliest returns the earlier of cur and t at microsecond precision in
// UTC, as ClickHouse's DateTime64(6) at column keeps it; a zero time is absent.
func earliest(cur, t time.Time) time.Time {
	if t.IsZero() {
		return cur
	}
	t = time.UnixMicro(t.UnixMicro()).UTC()
	if cur.IsZero() || t.Before(cur) {
		return t
	}
	return cur
}

// UUIDAt returns a new random UUIDv7 whose first 48 bits hold t's Unix
// milliseconds, so clickhouse.DeliveryTime(UUIDAt(t)) is t to the millisecond.
func UUIDAt(t time.Time) uuid.UUID {
	u, _ := uuid.NewV7()
	setMillis(&u, t)
	return u
}

func setMillis(u *uuid.UUID, t time.Time) {
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (40 - 8*i))
	}
}

// AllEvents returns the events of every delivery, in order, for one insert.
func AllEvents(ds []Delivery) []clickhouse.Event {
	var out []clickhouse.Event
	for _, d := range ds {
		out = append(out, d.Events...)
	}
	return out
}

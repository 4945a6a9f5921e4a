package model

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const (
	kTargeted   = clickhouse.KindTargeted
	kAttempt    = clickhouse.KindAttempt
	kSent       = clickhouse.KindSent
	kBounced    = clickhouse.KindBounced
	kFailed     = clickhouse.KindFailed
	kSuppressed = clickhouse.KindSuppressed
	kDelivered  = clickhouse.KindDelivered
	kOpened     = clickhouse.KindOpened
	kConverted  = clickhouse.KindConverted
	kPresend    = clickhouse.KindPresendFailed
	lvl         = clickhouse.DeliveryLevel
)

// ev is a row of round, device index, kind and attempt at t0 + sec seconds.
func ev(round uint16, idx uint16, kind string, attempt uint16, sec int) clickhouse.Event {
	return clickhouse.Event{WorkspaceID: "ws", Round: round, DeviceIndex: idx, Kind: kind, Attempt: attempt,
		DeliveryCreated: t0, At: t0.Add(time.Duration(sec) * time.Second)}
}

// why sets a row's reason.
func why(e clickhouse.Event, reason string) clickhouse.Event {
	e.Reason = reason
	return e
}

// dev is a device result without times or token.
func dev(idx uint16, s domain.DeviceSendStatus, attempts int, delivered, opened bool) DeviceResult {
	return DeviceResult{Index: idx, Status: s, Attempts: attempts, Delivered: delivered, Opened: opened, SDK: delivered}
}

const (
	pending    = domain.DeviceSendPending
	sent       = domain.DeviceSendSent
	failed     = domain.DeviceSendFailed
	bounced    = domain.DeviceSendBounced
	suppressed = domain.DeviceSendSuppressed
)

var ignoreTimes = cmp.Options{
	cmpopts.IgnoreFields(Result{}, "SentAt", "DeliveredAt", "OpenedAt", "ConvertedAt"),
	cmpopts.IgnoreFields(DeviceResult{}, "SentAt", "DeliveredAt", "OpenedAt", "Token", "Platform"),
	cmpopts.EquateEmpty(),
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name   string
		events []clickhouse.Event
		want   Result
	}{
		{"no rows: not planned yet", nil,
			Result{Status: domain.DeliveryAttempted, SendState: domain.DeliveryAttempted}},
		{"targeted only", []clickhouse.Event{ev(0, 0, kTargeted, 0, 0)},
			Result{Status: domain.DeliveryAttempted, SendState: domain.DeliveryAttempted, DevicesTargeted: 1,
				Devices: []DeviceResult{dev(0, pending, 0, false, false)}}},
		{"sent after three attempts, attempt rows duplicated", []clickhouse.Event{
			ev(0, 0, kTargeted, 0, 0), ev(0, 0, kAttempt, 1, 1), ev(0, 0, kAttempt, 1, 1), ev(0, 0, kAttempt, 2, 5),
			ev(0, 0, kAttempt, 3, 14), ev(0, 0, kAttempt, 3, 14), ev(0, 0, kSent, 0, 14), ev(0, 0, kSent, 0, 14)},
			Result{Status: domain.DeliverySent, SendState: domain.DeliverySent, DevicesTargeted: 1, DevicesAttempted: 1,
				Devices: []DeviceResult{dev(0, sent, 3, false, false)}}},
		{"out of order: final row before targeted", []clickhouse.Event{
			ev(0, 0, kSent, 0, 1), ev(0, 0, kAttempt, 1, 1), ev(0, 0, kTargeted, 0, 0)},
			Result{Status: domain.DeliverySent, SendState: domain.DeliverySent, DevicesTargeted: 1, DevicesAttempted: 1,
				Devices: []DeviceResult{dev(0, sent, 1, false, false)}}},
		{"precedence: sent over bounced, bounced over failed, failed over suppressed", []clickhouse.Event{
			ev(0, 0, kBounced, 0, 1), ev(0, 0, kSent, 0, 2),
			ev(0, 1, kFailed, 0, 1), ev(0, 1, kBounced, 0, 2),
			ev(0, 2, kSuppressed, 0, 1), why(ev(0, 2, kFailed, 0, 2), "x"),
			ev(0, 3, kSuppressed, 0, 1)},
			Result{Status: domain.DeliverySent, SendState: domain.DeliverySent, DevicesTargeted: 4,
				Devices: []DeviceResult{dev(0, sent, 0, false, false), dev(1, bounced, 0, false, false),
					dev(2, failed, 0, false, false), dev(3, suppressed, 0, false, false)}}},
		{"one sent, one pending: attempted", []clickhouse.Event{
			ev(0, 0, kTargeted, 0, 0), ev(0, 0, kAttempt, 1, 1), ev(0, 0, kSent, 0, 1),
			ev(0, 1, kTargeted, 0, 0), ev(0, 1, kAttempt, 1, 1), ev(0, 1, kAttempt, 2, 3)},
			Result{Status: domain.DeliveryAttempted, SendState: domain.DeliveryAttempted, DevicesTargeted: 2, DevicesAttempted: 2,
				Devices: []DeviceResult{dev(0, sent, 1, false, false), dev(1, pending, 2, false, false)}}},
		{"all suppressed", []clickhouse.Event{
			ev(0, 0, kTargeted, 0, 0), ev(0, 0, kSuppressed, 0, 0), ev(0, 1, kTargeted, 0, 0), ev(0, 1, kSuppressed, 0, 0)},
			Result{Status: domain.DeliverySuppressed, SendState: domain.DeliverySuppressed, DevicesTargeted: 2,
				Devices: []DeviceResult{dev(0, suppressed, 0, false, false), dev(1, suppressed, 0, false, false)}}},
		{"suppressed and bounced: bounced", []clickhouse.Event{
			ev(0, 0, kSuppressed, 0, 0), ev(0, 1, kAttempt, 1, 1), why(ev(0, 1, kBounced, 0, 1), "BadDeviceToken")},
			Result{Status: domain.DeliveryBounced, SendState: domain.DeliveryBounced, DevicesTargeted: 2, DevicesAttempted: 1,
				Devices: []DeviceResult{dev(0, suppressed, 0, false, false), dev(1, bounced, 1, false, false)}}},
		{"bounced and failed: failed, reason of the smallest FAILED index", []clickhouse.Event{
			why(ev(0, 0, kBounced, 0, 1), "Unregistered"),
			why(ev(0, 2, kFailed, 0, 1), "PayloadTooLarge"),
			why(ev(0, 1, kFailed, 0, 2), "retries exhausted after 11 attempts: UNAVAILABLE"),
			why(ev(0, 1, kFailed, 0, 2), "retries exhausted after 11 attempts: UNAVAILABLE")},
			Result{Status: domain.DeliveryFailed, SendState: domain.DeliveryFailed, DevicesTargeted: 3,
				FailureReason: "retries exhausted after 11 attempts: UNAVAILABLE",
				Devices:       []DeviceResult{dev(0, bounced, 0, false, false), dev(1, failed, 0, false, false), dev(2, failed, 0, false, false)}}},
		{"a failed row on a SENT device gives no reason", []clickhouse.Event{
			ev(0, 0, kSent, 0, 1), why(ev(0, 0, kFailed, 0, 1), "late"), ev(0, 1, kBounced, 0, 1)},
			Result{Status: domain.DeliverySent, SendState: domain.DeliverySent, DevicesTargeted: 2,
				Devices: []DeviceResult{dev(0, sent, 0, false, false), dev(1, bounced, 0, false, false)}}},
		{"delivered", []clickhouse.Event{ev(0, 0, kSent, 0, 1), ev(0, 0, kDelivered, 0, 3), ev(0, 0, kDelivered, 0, 9)},
			Result{Status: domain.DeliveryDelivered, SendState: domain.DeliverySent, DevicesTargeted: 1,
				Devices: []DeviceResult{dev(0, sent, 0, true, false)}}},
		{"opened without delivered", []clickhouse.Event{ev(0, 0, kSent, 0, 1), ev(0, 1, kSent, 0, 1), ev(0, 1, kOpened, 0, 30)},
			Result{Status: domain.DeliveryOpened, SendState: domain.DeliverySent, DevicesTargeted: 2,
				Devices: []DeviceResult{dev(0, sent, 0, false, false), dev(1, sent, 0, true, true)}}},
		{"delivered on a pending device", []clickhouse.Event{ev(0, 0, kAttempt, 1, 1), ev(0, 0, kDelivered, 0, 2)},
			Result{Status: domain.DeliveryDelivered, SendState: domain.DeliveryAttempted, DevicesTargeted: 1, DevicesAttempted: 1,
				Devices: []DeviceResult{dev(0, pending, 1, true, false)}}},
		{"delivered on the only, FAILED, device: send state and reason stay FAILED", []clickhouse.Event{
			ev(0, 0, kAttempt, 1, 1), why(ev(0, 0, kFailed, 0, 1), "PayloadTooLarge"), ev(0, 0, kDelivered, 0, 2)},
			Result{Status: domain.DeliveryDelivered, SendState: domain.DeliveryFailed, FailureReason: "PayloadTooLarge",
				DevicesTargeted: 1, DevicesAttempted: 1, Devices: []DeviceResult{dev(0, failed, 1, true, false)}}},
		{"converted, twice", []clickhouse.Event{ev(0, 0, kSent, 0, 1), ev(0, lvl, kConverted, 0, 50), ev(0, lvl, kConverted, 0, 40)},
			Result{Status: domain.DeliveryConverted, SendState: domain.DeliverySent, Converted: true, DevicesTargeted: 1,
				Devices: []DeviceResult{dev(0, sent, 0, false, false)}}},
		{"pre-send failure", []clickhouse.Event{why(ev(0, lvl, kPresend, 0, 0), domain.ReasonNoDevices)},
			Result{Status: domain.DeliveryFailed, SendState: domain.DeliveryFailed, FailureReason: domain.ReasonNoDevices}},
		{"pre-send failure wins over a conversion", []clickhouse.Event{
			why(ev(0, lvl, kPresend, 0, 0), domain.ReasonCustomerUnsubscribed), ev(0, lvl, kConverted, 0, 50)},
			Result{Status: domain.DeliveryFailed, SendState: domain.DeliveryFailed, Converted: true, FailureReason: domain.ReasonCustomerUnsubscribed}},
		{"pre-send failure of an older round is ignored", []clickhouse.Event{
			why(ev(0, lvl, kPresend, 0, 0), domain.ReasonCredentialsNotFound),
			ev(1, 0, kTargeted, 0, 60), ev(1, 0, kAttempt, 1, 61), ev(1, 0, kSent, 0, 61)},
			Result{Status: domain.DeliverySent, SendState: domain.DeliverySent, Round: 1, DevicesTargeted: 1, DevicesAttempted: 1,
				Devices: []DeviceResult{dev(0, sent, 1, false, false)}}},
		{"pre-send failure of the newest round after devices failed", []clickhouse.Event{
			ev(0, 0, kAttempt, 1, 1), why(ev(0, 0, kFailed, 0, 1), "PayloadTooLarge"),
			why(ev(1, lvl, kPresend, 0, 60), domain.ReasonVariableMissing+": customer.name")},
			Result{Status: domain.DeliveryFailed, SendState: domain.DeliveryFailed, Round: 1,
				FailureReason: domain.ReasonVariableMissing + ": customer.name"}},
		{"devices and reports of an older round are ignored", []clickhouse.Event{
			ev(0, 0, kSent, 0, 1), ev(0, 0, kOpened, 0, 2), ev(0, 1, kSent, 0, 1),
			ev(1, 0, kTargeted, 0, 60), ev(1, 0, kAttempt, 1, 61), why(ev(1, 0, kFailed, 0, 61), "THIRD_PARTY_AUTH_ERROR")},
			Result{Status: domain.DeliveryFailed, SendState: domain.DeliveryFailed, Round: 1, FailureReason: "THIRD_PARTY_AUTH_ERROR",
				DevicesTargeted: 1, DevicesAttempted: 1, Devices: []DeviceResult{dev(0, failed, 1, false, false)}}},
		{"a conversion of an older round counts", []clickhouse.Event{
			ev(0, lvl, kPresend, 0, 0), ev(1, 0, kSent, 0, 60), ev(0, lvl, kConverted, 0, 90)},
			Result{Status: domain.DeliveryConverted, SendState: domain.DeliverySent, Converted: true, Round: 1, DevicesTargeted: 1,
				Devices: []DeviceResult{dev(0, sent, 0, false, false)}}},
		{"a conversion stamped with a later round does not make the round", []clickhouse.Event{
			ev(0, 0, kSent, 0, 1), ev(3, lvl, kConverted, 0, 90)},
			Result{Status: domain.DeliveryConverted, SendState: domain.DeliverySent, Converted: true, Round: 0, DevicesTargeted: 1,
				Devices: []DeviceResult{dev(0, sent, 0, false, false)}}},
		{"only a conversion: attempted send state, converted status", []clickhouse.Event{ev(0, lvl, kConverted, 0, 90)},
			Result{Status: domain.DeliveryConverted, SendState: domain.DeliveryAttempted, Converted: true}},
		{"attempts count distinct attempt numbers, attempted only with attempts", []clickhouse.Event{
			ev(0, 0, kTargeted, 0, 0), ev(0, 0, kAttempt, 2, 2), ev(0, 0, kAttempt, 1, 1), ev(0, 0, kAttempt, 2, 7),
			ev(0, 1, kTargeted, 0, 0), ev(0, 1, kTargeted, 0, 0)},
			Result{Status: domain.DeliveryAttempted, SendState: domain.DeliveryAttempted, DevicesTargeted: 2, DevicesAttempted: 1,
				Devices: []DeviceResult{dev(0, pending, 2, false, false), dev(1, pending, 0, false, false)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Status(Delivery{Events: tt.events})
			if diff := cmp.Diff(tt.want, got, ignoreTimes); diff != "" {
				t.Errorf("Status mismatch (-want +got):\n%s", diff)
			}
			// Reversing the rows changes nothing.
			rev := make([]clickhouse.Event, len(tt.events))
			for i, e := range tt.events {
				rev[len(rev)-1-i] = e
			}
			if diff := cmp.Diff(got, Status(Delivery{Events: rev}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Status of reversed rows differs (-forward +reversed):\n%s", diff)
			}
		})
	}
}

func TestStatusTimesAndTokens(t *testing.T) {
	at := func(e clickhouse.Event, d time.Duration) clickhouse.Event { e.At = e.At.Add(d); return e }
	d := Delivery{
		Devices: [][]clickhouse.DeliveryDevice{
			{{Index: 0, Token: "old", Platform: "IOS"}},
			{{Index: 0, Token: "a", Platform: "IOS"}, {Index: 1, Token: "b", Platform: "ANDROID"}},
		},
		Events: []clickhouse.Event{
			ev(0, 0, kSent, 0, 1), ev(0, 0, kOpened, 0, 2), // older round: ignored
			ev(1, 0, kSent, 0, 20), at(ev(1, 0, kSent, 0, 10), 1500*time.Nanosecond), // duplicate, earlier, sub-µs
			ev(1, 1, kSent, 0, 15),
			ev(1, 1, kOpened, 0, 40), ev(1, 1, kOpened, 0, 30), ev(1, 0, kDelivered, 0, 35),
			ev(0, lvl, kConverted, 0, 100), ev(1, lvl, kConverted, 0, 80),
		},
	}
	got := Status(d)
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	want := Result{
		Status: domain.DeliveryConverted, SendState: domain.DeliverySent, Converted: true, Round: 1,
		DevicesTargeted: 2,
		Devices: []DeviceResult{
			{Index: 0, Token: "a", Platform: "IOS", Status: sent, Delivered: true, SDK: true, SentAt: sec(10).Add(time.Microsecond), DeliveredAt: sec(35)},
			{Index: 1, Token: "b", Platform: "ANDROID", Status: sent, Delivered: true, SDK: true, Opened: true, SentAt: sec(15), DeliveredAt: sec(30), OpenedAt: sec(30)},
		},
		SentAt: sec(10).Add(time.Microsecond), DeliveredAt: sec(30), OpenedAt: sec(30), ConvertedAt: sec(80),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status mismatch (-want +got):\n%s", diff)
	}
	if loc := got.SentAt.Location(); loc != time.UTC {
		t.Errorf("SentAt location = %v, want UTC", loc)
	}
}

func TestUUIDAt(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	u := UUIDAt(at)
	if u.Version() != 7 {
		t.Errorf("version = %d, want 7", u.Version())
	}
	if got, want := clickhouse.DeliveryTime(u).UnixMilli(), at.UnixMilli(); got != want {
		t.Errorf("DeliveryTime = %d ms, want %d", got, want)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	o := GenOptions{N: 300, Workspace: "ws", Campaigns: []uuid.UUID{uuid.MustParse("0190c0de-0000-7000-8000-000000000001")},
		Start: t0, Span: 48 * time.Hour}
	a := Generate(rand.New(rand.NewPCG(1, 2)), o)
	b := Generate(rand.New(rand.NewPCG(1, 2)), o)
	if !reflect.DeepEqual(a, b) { // cmp.Diff only on failure: it is slow on thousands of rows
		t.Errorf("Generate with the same seed differs (-first +second):\n%s", cmp.Diff(a, b))
	}
	c := Generate(rand.New(rand.NewPCG(3, 4)), o)
	if reflect.DeepEqual(a, c) {
		t.Error("Generate with another seed gave the same histories")
	}
}

package clickhouse_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/domain/model"
)

// TestFailureReasonRule checks migration 0008's failure reason on the
// histories the generator never writes (each of its devices has one
// outcome): a device with a failed and a bounced event in one round, a
// device that failed twice with two reasons, two pre-send failures, each
// for fast deliveries (devices 0-5) and slow ones (devices 6 and up, a
// later round), against the model through every reader (Status, History,
// delivery_status, the delivery logs, the overview).
func TestFailureReasonRule(t *testing.T) {
	ctx := context.Background()
	conn := chtest.New(t)
	store := clickhouse.NewStore(conn)
	ws := "ws_failure_rule"
	campaign := model.UUIDAt(time.Unix(5, 0))
	campaigns := []uuid.UUID{campaign}
	start := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour)

	// Two reasons, a and b, with FailureKey(a) < FailureKey(b) but b < a
	// by their bytes, so that a rule by bytes and one by key differ.
	a, b := "", ""
	for i := 0; a == ""; i++ {
		x, y := fmt.Sprintf("reason %d", i), fmt.Sprintf("reason %d", i+1)
		if clickhouse.FailureKey(y) < clickhouse.FailureKey(x) {
			a, b = y, x
		}
	}
	if !(clickhouse.FailureKey(a) < clickhouse.FailureKey(b) && b < a) {
		t.Fatalf("reasons %q %q: keys %x %x", a, b, clickhouse.FailureKey(a), clickhouse.FailureKey(b))
	}

	type ev struct {
		round, dev uint16
		kind, why  string
	}
	cases := []struct {
		name   string
		events []ev
		want   string // the failure reason
	}{
		{"device 0 failed and bounced, device 1 failed", []ev{
			{0, 0, clickhouse.KindFailed, "zeta"}, {0, 0, clickhouse.KindBounced, "BadDeviceToken"}, {0, 1, clickhouse.KindFailed, "alpha"}}, "zeta"},
		{"device 0 failed twice", []ev{{0, 0, clickhouse.KindFailed, b}, {0, 0, clickhouse.KindFailed, a}}, a},
		{"device 1 failed, device 0 bounced", []ev{{0, 0, clickhouse.KindBounced, "Unregistered"}, {0, 1, clickhouse.KindFailed, b}}, b},
		{"two pre-send failures", []ev{{0, clickhouse.DeliveryLevel, clickhouse.KindPresendFailed, b}, {0, clickhouse.DeliveryLevel, clickhouse.KindPresendFailed, a}}, a},
		{"slow: device 6 failed and bounced, device 7 failed", []ev{
			{0, 6, clickhouse.KindFailed, "zeta"}, {0, 6, clickhouse.KindBounced, "BadDeviceToken"}, {0, 7, clickhouse.KindFailed, "alpha"}}, "zeta"},
		{"slow: round 1, device 0 failed twice", []ev{
			{0, 0, clickhouse.KindSent, ""}, {1, 0, clickhouse.KindFailed, b}, {1, 0, clickhouse.KindFailed, a}}, a},
	}
	var hs []model.Delivery
	var rows []clickhouse.Delivery
	var events []clickhouse.Event
	for i, c := range cases {
		at := start.Add(time.Duration(i) * time.Minute)
		d := model.Delivery{Delivery: clickhouse.Delivery{WorkspaceID: ws, ID: model.UUIDAt(at), CampaignID: campaign,
			MessageID: campaign, PersonID: fmt.Sprintf("p%d", i), Audience: "ALL_DEVICES", CreatedAt: at.Truncate(time.Millisecond)}}
		targeted := map[[2]uint16]bool{}
		add := func(e clickhouse.Event) {
			e.WorkspaceID, e.CampaignID, e.DeliveryID, e.DeliveryCreated = ws, campaign, d.ID, d.CreatedAt
			e.At = at.Add(time.Duration(len(d.Events)+1) * time.Second)
			d.Events = append(d.Events, e)
		}
		for _, x := range c.events {
			if x.dev != clickhouse.DeliveryLevel && !targeted[[2]uint16{x.round, x.dev}] {
				targeted[[2]uint16{x.round, x.dev}] = true
				for len(d.Devices) <= int(x.round) {
					d.Devices = append(d.Devices, nil)
				}
				tok := fmt.Sprintf("tok-%d-%d-%d", i, x.round, x.dev)
				d.Devices[x.round] = append(d.Devices[x.round], clickhouse.DeliveryDevice{Index: x.dev, Token: tok, Platform: "IOS"})
				add(clickhouse.Event{Round: x.round, DeviceIndex: x.dev, Kind: clickhouse.KindTargeted, Token: tok, ProviderID: "IOS"})
			}
			var attempt uint16
			if x.kind != clickhouse.KindPresendFailed {
				attempt = 1
			}
			add(clickhouse.Event{Round: x.round, DeviceIndex: x.dev, Kind: x.kind, Attempt: attempt, Reason: x.why})
		}
		if got := model.Status(d); got.FailureReason != c.want || got.SendState != "FAILED" {
			t.Fatalf("%s: the model says %s %q, want FAILED %q", c.name, got.SendState, got.FailureReason, c.want)
		}
		hs = append(hs, d)
		rows = append(rows, d.Delivery)
		events = append(events, d.Events...)
	}
	if err := store.CreateDeliveries(ctx, rows); err != nil {
		t.Fatal(err)
	}
	// Each delivery's events in two inserts, so that delivery_states holds
	// two rows of it until a merge.
	half := len(events) / 2
	for _, part := range [][]clickhouse.Event{events[:half], events[half:]} {
		if err := clickhouse.InsertEvents(ctx, conn, part); err != nil {
			t.Fatal(err)
		}
	}
	c := checker{ctx: ctx, store: store, ws: ws, campaigns: campaigns, start: start.Add(-time.Hour)}
	c.all(t, hs)
	if err := conn.Exec(ctx, "OPTIMIZE TABLE delivery_states FINAL"); err != nil {
		t.Fatal(err)
	}
	c.all(t, hs)
}

// TestOverviewManyFailureReasons checks that the overview reads the texts
// of more failure keys than one query's text can hold: 15,000 FAILED
// deliveries, each with its own pre-send reason, are 315 KB of keys, above
// the server's max_query_size (256 KiB), so failureTexts must batch them.
func TestOverviewManyFailureReasons(t *testing.T) {
	ctx := context.Background()
	conn := chtest.New(t)
	store := clickhouse.NewStore(conn)
	ws := "ws_many_reasons"
	campaign := model.UUIDAt(time.Unix(8, 0))
	start := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour)
	const n = 15000
	rows := make([]clickhouse.Delivery, n)
	events := make([]clickhouse.Event, n)
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second)
		id := model.UUIDAt(at)
		rows[i] = clickhouse.Delivery{WorkspaceID: ws, ID: id, CampaignID: campaign, MessageID: campaign,
			PersonID: fmt.Sprintf("p%d", i), Audience: "ALL_DEVICES", CreatedAt: at.Truncate(time.Millisecond)}
		events[i] = clickhouse.Event{WorkspaceID: ws, CampaignID: campaign, DeliveryID: id, DeliveryCreated: rows[i].CreatedAt,
			DeviceIndex: clickhouse.DeliveryLevel, Kind: clickhouse.KindPresendFailed, Reason: fmt.Sprintf("Liquid error: variable is missing: v%d", i), At: at}
	}
	if err := store.CreateDeliveries(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.InsertEvents(ctx, conn, events); err != nil {
		t.Fatal(err)
	}
	ov, err := store.Overview(ctx, ws, campaign, start, start.Add(24*time.Hour), clickhouse.Day)
	if err != nil {
		t.Fatal(err)
	}
	if ov.Failed != n || len(ov.FailuresByReason) != n {
		t.Fatalf("overview: failed %d, %d reasons; want %d of each", ov.Failed, len(ov.FailuresByReason), n)
	}
	for _, e := range events {
		if ov.FailuresByReason[e.Reason] != 1 {
			t.Fatalf("FailuresByReason[%q] = %d, want 1", e.Reason, ov.FailuresByReason[e.Reason])
		}
	}
}

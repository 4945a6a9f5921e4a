package clickhouse_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/domain/model"
)

// TestStoreSettledHours: the refresh stores the hours of a campaign whose
// events changed, only once they have settled, and the overview then reads
// them (a stored hour altered by hand shows through) until a new event in
// that hour makes it compute the hour again.
func TestStoreSettledHours(t *testing.T) {
	ctx := context.Background()
	conn := chtest.New(t)
	store := clickhouse.NewStore(conn)
	store.SetOverviewSettle(time.Second)
	computing := clickhouse.NewStore(conn)
	computing.SetOverviewSettle(0)

	ws := "ws_settled"
	c := model.UUIDAt(time.Unix(7, 0))
	start := time.Now().UTC().Add(-3 * 24 * time.Hour).Truncate(time.Hour)
	ds := model.Generate(rand.New(rand.NewPCG(7, 7)), model.GenOptions{N: 300, Workspace: ws, Campaigns: []uuid.UUID{c}, Start: start, Span: 48 * time.Hour})
	rows := make([]clickhouse.Delivery, len(ds))
	var events []clickhouse.Event
	for i, d := range ds {
		rows[i] = d.Delivery
		events = append(events, d.Events...)
	}
	if err := store.CreateDeliveries(ctx, rows); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Second)
	if err := clickhouse.InsertEvents(ctx, conn, events); err != nil {
		t.Fatal(err)
	}
	stored := func() (n uint64) {
		if err := conn.QueryRow(ctx, "SELECT uniqExact(hour) FROM overview_hours WHERE workspace_id = ? AND campaign_id = ?", ws, c).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Not settled yet: nothing stored.
	if n, err := store.StoreSettledHours(ctx, since); err != nil || n != 0 || stored() != 0 {
		t.Fatalf("right after the insert: refreshed %d campaigns (err %v), %d hours stored; want none", n, err, stored())
	}
	time.Sleep(2100 * time.Millisecond)
	n, err := store.StoreSettledHours(ctx, since)
	if err != nil || n != 1 {
		t.Fatalf("refreshed %d campaigns (err %v), want 1", n, err)
	}
	var hours uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(toStartOfHour(delivery_created)) FROM events WHERE workspace_id = ? AND campaign_id = ?", ws, c).Scan(&hours); err != nil {
		t.Fatal(err)
	}
	if got := stored(); got != hours {
		t.Fatalf("%d hours stored, want the %d hours with events", got, hours)
	}
	from, to := start.Add(-time.Hour), start.Add(3*24*time.Hour)
	want, err := computing.Overview(ctx, ws, c, from, to, clickhouse.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := store.Overview(ctx, ws, c, from, to, clickhouse.Hour); err != nil {
		t.Fatal(err)
	} else if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Fatalf("overview from stored hours (-computed +stored):\n%s", diff)
	}

	// A newer stored computation of one hour, altered by hand, shows: the
	// overview reads the stored hours.
	d0 := ds[0]
	for _, d := range ds {
		if len(d.Events) > 0 {
			d0 = d
			break
		}
	}
	h := d0.CreatedAt.UTC().Truncate(time.Hour)
	if err := conn.Exec(ctx, `INSERT INTO overview_hours (workspace_id, campaign_id, hour, computed, send_state, reason, deliveries)
SELECT workspace_id, campaign_id, hour, computed + 1, send_state, reason, deliveries + if(send_state = 'SENT', 1000, 0)
FROM overview_hours WHERE workspace_id = ? AND campaign_id = ? AND hour = ? AND computed = (SELECT max(computed) FROM overview_hours WHERE workspace_id = ? AND campaign_id = ? AND hour = ?)`,
		ws, c, h, ws, c, h); err != nil {
		t.Fatal(err)
	}
	got, err := store.Overview(ctx, ws, c, from, to, clickhouse.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got.Sent != want.Sent+1000 {
		t.Fatalf("sent %d with an altered stored hour, want %d: the stored hours are not read", got.Sent, want.Sent+1000)
	}
	// A new event in that hour (a duplicate: the figures stay) makes the
	// overview compute it again.
	time.Sleep(1100 * time.Millisecond)
	if err := clickhouse.InsertEvents(ctx, conn, d0.Events[:1]); err != nil {
		t.Fatal(err)
	}
	if got, err := store.Overview(ctx, ws, c, from, to, clickhouse.Hour); err != nil {
		t.Fatal(err)
	} else if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Fatalf("overview after a new event in the altered hour (-computed +stored):\n%s", diff)
	}
}

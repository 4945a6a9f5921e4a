package jobs

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/internal/redistest"
)

// TestRefreshOverviewsStoresSettledHours: two refresh loops sharing a Redis
// store a changed campaign's hours once they have settled, one loop per
// interval.
func TestRefreshOverviewsStoresSettledHours(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := chtest.New(t)
	rdb := redistest.New(t)
	store := clickhouse.NewStore(conn)
	store.SetOverviewSettle(time.Second)

	ws, c := "ws_refresh", uuid.New()
	created := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	d := clickhouse.Delivery{WorkspaceID: ws, ID: uuid.New(), CampaignID: c, Audience: "ALL_DEVICES", CreatedAt: created}
	if err := store.CreateDeliveries(ctx, []clickhouse.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.InsertEvents(ctx, conn, []clickhouse.Event{{WorkspaceID: ws, CampaignID: c, DeliveryID: d.ID, Kind: clickhouse.KindTargeted,
		DeliveryCreated: created, At: created}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		go RefreshOverviews(ctx, store, rdb, "herald:test:overview-refresh", 300*time.Millisecond, slog.New(slog.DiscardHandler))
	}
	computations := func() (n, hours uint64) {
		if err := conn.QueryRow(ctx, "SELECT uniqExact(computed), uniqExact(hour) FROM overview_hours WHERE workspace_id = ? AND campaign_id = ?", ws, c).
			Scan(&n, &hours); err != nil {
			t.Fatal(err)
		}
		return n, hours
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, hours := computations(); hours == 1 {
			break
		} else if hours > 1 {
			t.Fatalf("%d hours stored, want the one hour with an event", hours)
		}
		if time.Now().After(deadline) {
			t.Fatal("no hour stored 15 s after the change")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Nothing changes: later turns store nothing more.
	time.Sleep(time.Second)
	n1, _ := computations()
	time.Sleep(time.Second)
	if n2, _ := computations(); n2 != n1 {
		t.Fatalf("%d computations stored, then %d with no change in between", n1, n2)
	}
}

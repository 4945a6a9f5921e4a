package clickhouse_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/domain/model"
)

// TestDeliveryLogsAcrossWindows pages through deliveries created in bursts
// and gaps over 60 days (several in one second, none for days) and densely
// in the last 12 hours, with page sizes, filters and ranges, and checks
// each walk against the list sorted in Go: every matching delivery once,
// newest first, none skipped.
func TestDeliveryLogsAcrossWindows(t *testing.T) {
	ctx := context.Background()
	conn := chtest.New(t)
	store := clickhouse.NewStore(conn)
	rng := rand.New(rand.NewPCG(3, 4))
	ws := "ws_windows"
	campaigns := []uuid.UUID{uuid.New(), uuid.New()}
	now := time.Now().UTC().Truncate(time.Second)
	var all []clickhouse.Delivery
	// delivery makes a delivery created at t (its id's millisecond).
	delivery := func(t time.Time) clickhouse.Delivery {
		id := model.UUIDAt(t)
		return clickhouse.Delivery{WorkspaceID: ws, ID: id, CampaignID: campaigns[rng.IntN(2)], MessageID: uuid.New(),
			PersonID: fmt.Sprintf("p%d", rng.IntN(5)), Audience: "ALL_DEVICES", CreatedAt: clickhouse.DeliveryTime(id)}
	}
	at := now.Add(-60 * 24 * time.Hour)
	for at.Before(now) {
		// A burst of 1–30 deliveries within a few seconds, then a gap of
		// seconds to four days.
		for i, n := 0, 1+rng.IntN(30); i < n; i++ {
			created := at.Add(time.Duration(rng.IntN(3_000_000)) * time.Microsecond).Truncate(time.Microsecond)
			if created.After(now) {
				break
			}
			all = append(all, delivery(created))
		}
		at = at.Add(time.Duration(rng.Int64N(int64(96 * time.Hour))))
	}
	// The last 12 hours densely (every 0–4 min: pages of 50 need a second
	// window), so that window edges fall between deliveries.
	for at := now.Add(-12 * time.Hour); at.Before(now); at = at.Add(time.Duration(rng.IntN(240_000_000)) * time.Microsecond) {
		all = append(all, delivery(at))
	}
	if err := store.CreateDeliveries(ctx, all); err != nil {
		t.Fatal(err)
	}
	// Newest first: (created, id) descending, as the cursor orders them.
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i].CreatedAt.UnixMicro(), all[j].CreatedAt.UnixMicro()
		if a != b {
			return a > b
		}
		return all[i].ID.String() > all[j].ID.String() // ClickHouse orders UUIDs differently; only the times are compared
	})
	t.Logf("%d deliveries", len(all))

	for _, tc := range []struct {
		name  string
		f     clickhouse.LogFilter
		first int
	}{
		{"all, pages of 7", clickhouse.LogFilter{}, 7},
		{"all, pages of 50", clickhouse.LogFilter{}, 50},
		{"one campaign, pages of 13", clickhouse.LogFilter{CampaignID: campaigns[0]}, 13},
		{"one person, pages of 3", clickhouse.LogFilter{PersonID: "p2"}, 3},
		{"a 10-day range, pages of 11", clickhouse.LogFilter{From: now.Add(-40 * 24 * time.Hour), To: now.Add(-30 * 24 * time.Hour)}, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []time.Time
			for _, d := range all {
				if (tc.f.CampaignID == uuid.Nil || d.CampaignID == tc.f.CampaignID) && (tc.f.PersonID == "" || d.PersonID == tc.f.PersonID) &&
					(tc.f.From.IsZero() || !d.CreatedAt.Before(tc.f.From)) && (tc.f.To.IsZero() || d.CreatedAt.Before(tc.f.To)) {
					want = append(want, d.CreatedAt)
				}
			}
			seen := map[uuid.UUID]bool{}
			var got []time.Time
			var cur *clickhouse.LogCursor
			for pages := 0; ; pages++ {
				if pages > len(want)+2 {
					t.Fatal("the walk does not end")
				}
				rows, next, err := store.DeliveryLogs(ctx, ws, tc.f, tc.first, cur)
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) > tc.first {
					t.Fatalf("page of %d rows, first = %d", len(rows), tc.first)
				}
				if next != nil && len(rows) < tc.first {
					t.Fatalf("a page of %d rows before the end (first = %d)", len(rows), tc.first)
				}
				for _, r := range rows {
					if seen[r.ID] {
						t.Fatalf("delivery %s twice", r.ID)
					}
					seen[r.ID] = true
					got = append(got, r.CreatedAt)
				}
				if next == nil {
					break
				}
				cur = next
			}
			if len(got) != len(want) {
				t.Fatalf("walked %d deliveries, want %d", len(got), len(want))
			}
			for i := range want {
				if !got[i].Equal(want[i]) {
					t.Fatalf("row %d created %s, want %s (newest first)", i, got[i], want[i])
				}
			}
		})
	}
}

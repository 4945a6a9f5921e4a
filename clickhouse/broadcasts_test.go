package clickhouse_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
)

// TestPersonsPage: paging through a workspace's persons, in three parts
// and with some persons written twice, gives every person once, at its
// newest version, and ends with more = false; each page reads a bounded
// number of rows, not the rest of the table.
func TestPersonsPage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := chtest.New(t)
	store := clickhouse.NewStore(conn)
	const n, limit = 500_000, 2000
	then := time.Now().UTC().Add(-time.Hour)
	insert := func(from, step int, attrs string, at time.Time) {
		t.Helper()
		b, err := conn.PrepareBatch(ctx, "INSERT INTO persons (workspace_id, id, attributes, unsubscribed, created_at, updated_at)")
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < n; i += step {
			if err := b.Append("ws1", fmt.Sprintf("p%06d", i), attrs, uint8(0), then, at); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	insert(0, 2, `{"v":1}`, then)
	insert(1, 2, `{"v":1}`, then)
	insert(0, 7, `{"v":2}`, then.Add(time.Minute)) // a newer version of every 7th person
	other := clickhouse.Person{WorkspaceID: "ws2", ID: "p000005", Attributes: "{}", CreatedAt: then}
	if err := store.PutPerson(ctx, other); err != nil {
		t.Fatal(err)
	}

	var read atomic.Uint64
	pctx := ch.Context(ctx, ch.WithProgress(func(p *ch.Progress) { read.Add(p.Rows) }))
	seen := map[string]bool{}
	after, pages, maxRead := "", 0, uint64(0)
	for more := true; more; pages++ {
		read.Store(0)
		page, m, err := store.PersonsPage(pctx, "ws1", after, limit)
		if err != nil {
			t.Fatalf("PersonsPage after %q: %v", after, err)
		}
		maxRead = max(maxRead, read.Load())
		more = m
		if len(page) > limit || (more && len(page) == 0) {
			t.Fatalf("page after %q: %d persons, more %v", after, len(page), more)
		}
		for i, p := range page {
			if seen[p.ID] || p.ID <= after || (i > 0 && p.ID <= page[i-1].ID) {
				t.Fatalf("page after %q: person %s out of order or seen before", after, p.ID)
			}
			seen[p.ID] = true
			var idx int
			fmt.Sscanf(p.ID, "p%06d", &idx)
			if want := map[bool]string{true: `{"v":2}`, false: `{"v":1}`}[idx%7 == 0]; p.Attributes != want || p.WorkspaceID != "ws1" {
				t.Fatalf("person %s = %+v, want attributes %s in ws1", p.ID, p, want)
			}
		}
		if len(page) > 0 {
			after = page[len(page)-1].ID
		}
		if pages > n/limit*3 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != n {
		t.Errorf("paging gave %d persons, want %d", len(seen), n)
	}
	// The bound: a page reads its own granules (8,192 rows each; a page
	// of 2,000 spans one or two, and an ordered read may take one more) in
	// each of the four parts, twice (the bound's listing, then the page),
	// not the rest of the table (the DISTINCT listing this replaced read
	// 373,082 rows of 342,858 on one page).
	if limitRows := uint64(3 * 4 * 2 * 8192); maxRead > limitRows {
		t.Errorf("a page read up to %d rows, want at most %d (the table holds %d)", maxRead, limitRows, n+n/7+1)
	}
	t.Logf("%d pages; the most rows a page read: %d", pages, maxRead)
}

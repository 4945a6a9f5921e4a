package clickhouse_test

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
)

// TestPointReadSettings checks that a read of one delivery's rows runs
// with pointReadSettings where the server knows them (use_statistics from
// 26.x), and that other reads keep the server's settings.
func TestPointReadSettings(t *testing.T) {
	ctx := context.Background()
	conn := chtest.New(t)
	store := clickhouse.NewStore(conn)
	var known uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM system.settings WHERE name = 'use_statistics'`).Scan(&known); err != nil {
		t.Fatal(err)
	}
	// The settings as a query sees them: max_threads, and use_statistics
	// where the server has it ("none" where it has not).
	read := func(ctx context.Context) (threads, stats string) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT toString(getSetting('max_threads')), if(?, toString(getSetting('use_statistics')), 'none')`, known == 1).
			Scan(&threads, &stats); err != nil {
			t.Fatal(err)
		}
		return threads, stats
	}
	wantStats, defaultStats := "false", "true" // a Bool setting
	if known == 0 {
		wantStats, defaultStats = "none", "none"
	}
	if threads, stats := read(store.PointRead(ctx)); threads != "1" || stats != wantStats {
		t.Errorf("point read: max_threads %s, use_statistics %s; want 1, %s", threads, stats, wantStats)
	}
	// A setting left on the connection (or on a shared map) would show in
	// a later plain read.
	if _, stats := read(ctx); stats != defaultStats {
		t.Errorf("a read without PointRead: use_statistics %s, want the default %s", stats, defaultStats)
	}
}

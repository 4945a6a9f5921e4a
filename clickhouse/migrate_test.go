package clickhouse_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/internal/redistest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testMigrations: numeric (not string) order matters, as 10 sorts before 2
// as text and 0010 copies the table 0002 creates; 0002 holds two statements,
// one ended by a lone ";" line and one by a trailing ";".
func testMigrations() fstest.MapFS {
	return fstest.MapFS{
		"1_first.sql": {Data: []byte("-- a comment;\nCREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY tuple()\n")},
		"2_second.sql": {Data: []byte(`-- two statements
CREATE TABLE IF NOT EXISTS b (x UInt8)
ENGINE = MergeTree ORDER BY tuple()
;
CREATE TABLE IF NOT EXISTS c (s String) ENGINE = MergeTree ORDER BY tuple();
`)},
		"10_third.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS d AS b\n")},
		"README.md":    {Data: []byte("not a migration")},
	}
}

type applied struct {
	Version uint32
	Name    string
}

func appliedMigrations(t *testing.T, conn driver.Conn) []applied {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT version, name FROM schema_migrations ORDER BY applied_at, version")
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	var got []applied
	for rows.Next() {
		var a applied
		if err := rows.Scan(&a.Version, &a.Name); err != nil {
			t.Fatalf("scan schema_migrations: %v", err)
		}
		got = append(got, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return got
}

func tables(t *testing.T, conn driver.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("scan table name: %v", err)
		}
		got = append(got, s)
	}
	return got
}

func TestMigrateFSAppliesInOrderOnce(t *testing.T) {
	ctx := context.Background()
	conn := chtest.NewEmpty(t)
	lock := clickhouse.NewMemoryLocker()
	fsys := testMigrations()

	if err := clickhouse.MigrateFS(ctx, conn, fsys, lock, testLogger(t)); err != nil {
		t.Fatalf("first MigrateFS: %v", err)
	}
	want := []applied{{1, "1_first.sql"}, {2, "2_second.sql"}, {10, "10_third.sql"}}
	if diff := cmp.Diff(want, appliedMigrations(t, conn)); diff != "" {
		t.Errorf("schema_migrations after first run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d", "schema_migrations"}, tables(t, conn)); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}

	// A second run applies nothing (a drop would be re-created otherwise).
	if err := conn.Exec(ctx, "DROP TABLE a"); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.MigrateFS(ctx, conn, fsys, lock, testLogger(t)); err != nil {
		t.Fatalf("second MigrateFS: %v", err)
	}
	if diff := cmp.Diff(want, appliedMigrations(t, conn)); diff != "" {
		t.Errorf("schema_migrations after second run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b", "c", "d", "schema_migrations"}, tables(t, conn)); diff != "" {
		t.Errorf("tables after second run (-want +got):\n%s", diff)
	}

	// A new file is applied alone.
	fsys["11_fourth.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE IF NOT EXISTS e (x UInt8) ENGINE = MergeTree ORDER BY tuple()")}
	if err := clickhouse.MigrateFS(ctx, conn, fsys, lock, testLogger(t)); err != nil {
		t.Fatalf("third MigrateFS: %v", err)
	}
	want = append(want, applied{11, "11_fourth.sql"})
	if diff := cmp.Diff(want, appliedMigrations(t, conn)); diff != "" {
		t.Errorf("schema_migrations after third run (-want +got):\n%s", diff)
	}
}

func TestMigrateFSConcurrent(t *testing.T) {
	ctx := context.Background()
	conn := chtest.NewEmpty(t)
	var database string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&database); err != nil {
		t.Fatal(err)
	}
	rdb := redistest.New(t)

	// Two "processes": their own connections and lockers, sharing Redis.
	const n = 2
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		c, err := clickhouse.Open(ctx, clickhouse.Options{Addr: chtest.Addr(), Database: database})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Go(func() {
			errs[i] = clickhouse.MigrateFS(ctx, c, testMigrations(), clickhouse.NewRedisLocker(rdb), testLogger(t))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("MigrateFS %d: %v", i, err)
		}
	}
	rows, err := conn.Query(ctx, "SELECT version, count() FROM schema_migrations GROUP BY version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[uint32]uint64{}
	for rows.Next() {
		var v uint32
		var c uint64
		if err := rows.Scan(&v, &c); err != nil {
			t.Fatal(err)
		}
		got[v] = c
	}
	if diff := cmp.Diff(map[uint32]uint64{1: 1, 2: 1, 10: 1}, got); diff != "" {
		t.Errorf("rows per version (-want +got):\n%s", diff)
	}
}

func TestMigrateFSErrors(t *testing.T) {
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		wantErr []string // substrings of the error
		applied []applied
	}{
		{
			name: "failing statement",
			fsys: fstest.MapFS{
				"0001_ok.sql":    {Data: []byte("CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY tuple()")},
				"0002_bad.sql":   {Data: []byte("CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY tuple();\nCREATE TABLE nope (x NoSuchType) ENGINE = MergeTree ORDER BY tuple();\n")},
				"0003_later.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS c (x UInt8) ENGINE = MergeTree ORDER BY tuple()")},
			},
			wantErr: []string{"0002_bad.sql", "statement 2 of 2", "NoSuchType"},
			applied: []applied{{1, "0001_ok.sql"}},
		},
		{
			name:    "bad file name",
			fsys:    fstest.MapFS{"init.sql": {Data: []byte("SELECT 1")}},
			wantErr: []string{"init.sql", "NNNN_name.sql"},
		},
		{
			name: "duplicate version",
			fsys: fstest.MapFS{
				"01_a.sql": {Data: []byte("SELECT 1")},
				"1_b.sql":  {Data: []byte("SELECT 1")},
			},
			wantErr: []string{"01_a.sql", "1_b.sql", "share version 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := chtest.NewEmpty(t)
			err := clickhouse.MigrateFS(context.Background(), conn, tt.fsys, clickhouse.NewMemoryLocker(), testLogger(t))
			if err == nil {
				t.Fatalf("MigrateFS: got nil error, want one containing %q", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("MigrateFS error = %q, want it to contain %q", err, s)
				}
			}
			if tt.applied != nil {
				if diff := cmp.Diff(tt.applied, appliedMigrations(t, conn)); diff != "" {
					t.Errorf("schema_migrations (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestMigrate applies the real, embedded migrations.
func TestMigrate(t *testing.T) {
	conn := chtest.New(t)
	got := appliedMigrations(t, conn)
	if len(got) == 0 {
		t.Fatalf("schema_migrations is empty after Migrate")
	}
	if err := clickhouse.Migrate(context.Background(), conn, clickhouse.NewMemoryLocker(), testLogger(t)); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if diff := cmp.Diff(got, appliedMigrations(t, conn)); diff != "" {
		t.Errorf("second Migrate changed schema_migrations (-want +got):\n%s", diff)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := clickhouse.Open(ctx, clickhouse.Options{Addr: "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "scripts/services.sh") {
		t.Errorf("Open(unreachable) error = %v, want one that says to run scripts/services.sh", err)
	}
}

func TestRedisLocker(t *testing.T) {
	rdb := redistest.New(t)
	lock := clickhouse.NewRedisLocker(rdb)
	ctx := context.Background()

	unlock, err := lock.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	// Held: a second Lock waits until its context ends.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := lock.Lock(short, "k", time.Minute); err == nil {
		t.Fatalf("second Lock of a held lock: got nil error, want a timeout")
	}
	// Released: the waiter gets it.
	got := make(chan error, 1)
	go func() {
		u, err := lock.Lock(ctx, "k", time.Minute)
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	unlock() // twice is harmless
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Lock after unlock: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Lock after unlock did not return")
	}

	// An expired lock is free again, and its old holder's unlock does not
	// release the new holder's lock.
	stale, err := lock.Lock(ctx, "ttl", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	fresh, err := lock.Lock(ctx, "ttl", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	stale()
	if n, err := rdb.Exists(ctx, "ttl").Result(); err != nil || n != 1 {
		t.Errorf("after the stale holder's unlock: EXISTS ttl = %d, %v; want 1", n, err)
	}
	fresh()
	if n, err := rdb.Exists(ctx, "ttl").Result(); err != nil || n != 0 {
		t.Errorf("after unlock: EXISTS ttl = %d, %v; want 0", n, err)
	}
}

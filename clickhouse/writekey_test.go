package clickhouse_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
)

// TestWriteKeyMigration: a workspace made before migration 0003 gets an
// empty write key hash (which matches nothing), keeps its API key and site
// id, and can be given a write key; a second one replaces the first.
func TestWriteKeyMigration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := chtest.NewEmpty(t)
	before := fstest.MapFS{}
	for _, name := range []string{"0001_baseline.sql", "0002_status_fast_path.sql"} {
		b, err := os.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = &fstest.MapFile{Data: b}
	}
	if err := clickhouse.MigrateFS(ctx, conn, before, clickhouse.NewMemoryLocker(), nil); err != nil {
		t.Fatalf("migrate to 0002: %v", err)
	}
	if err := conn.Exec(ctx, `INSERT INTO workspaces (id, name, key_hash, site_id, created_at, updated_at)
		VALUES ('ws_old', 'old', 'apihash', 'site1', now64(6), now64(6))`); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.Migrate(ctx, conn, clickhouse.NewMemoryLocker(), nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	store := clickhouse.NewStore(conn)
	w, err := store.WorkspaceByID(ctx, "ws_old")
	if err != nil || w.WriteKeyHash != "" || w.KeyHash != "apihash" {
		t.Fatalf("old workspace after 0003 = %+v, %v; want an empty write key hash", w, err)
	}
	if _, err := store.WorkspaceByWriteKeyHash(ctx, ""); !errors.Is(err, clickhouse.ErrNotFound) {
		t.Errorf("empty write key hash: err %v, want ErrNotFound", err)
	}
	for _, h := range []string{"wk1hash", "wk2hash"} {
		if err := store.SetWriteKeyHash(ctx, "ws_old", h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.WorkspaceByWriteKeyHash(ctx, "wk1hash"); !errors.Is(err, clickhouse.ErrNotFound) {
		t.Errorf("replaced write key: err %v, want ErrNotFound", err)
	}
	w, err = store.WorkspaceByWriteKeyHash(ctx, "wk2hash")
	if err != nil || w.ID != "ws_old" {
		t.Errorf("new write key: %+v, %v", w, err)
	}
	if w, err := store.WorkspaceBySiteID(ctx, "site1"); err != nil || w.KeyHash != "apihash" {
		t.Errorf("site id and API key after rotation: %+v, %v", w, err)
	}
	if err := store.SetWriteKeyHash(ctx, "ws_missing", "x"); !errors.Is(err, clickhouse.ErrNotFound) {
		t.Errorf("rotate a missing workspace: err %v, want ErrNotFound", err)
	}
}

package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/server"
)

// TestWorkspaceWriteKey: `herald workspace create` makes a write key with
// the workspace, and rotate-write-key replaces it (the old stops matching).
func TestWorkspaceWriteKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := clickhouse.NewStore(chtest.New(t))
	ws, key, writeKey, err := createWorkspace(ctx, store, "w")
	if err != nil {
		t.Fatal(err)
	}
	if writeKey == "" || writeKey == key {
		t.Fatalf("write key %q, API key %q: want a distinct write key", writeKey, key)
	}
	if got, err := store.WorkspaceByWriteKeyHash(ctx, server.HashKey(writeKey)); err != nil || got.ID != ws.ID {
		t.Fatalf("workspace of the write key: %+v, %v", got, err)
	}
	newKey, err := rotateWriteKey(ctx, store, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.WorkspaceByWriteKeyHash(ctx, server.HashKey(writeKey)); !errors.Is(err, clickhouse.ErrNotFound) {
		t.Errorf("old write key after rotation: err %v, want ErrNotFound", err)
	}
	if got, err := store.WorkspaceByWriteKeyHash(ctx, server.HashKey(newKey)); err != nil || got.ID != ws.ID {
		t.Errorf("new write key: %+v, %v", got, err)
	}
	if got, err := store.WorkspaceByKeyHash(ctx, server.HashKey(key)); err != nil || got.ID != ws.ID {
		t.Errorf("API key after rotation: %+v, %v", got, err)
	}
}

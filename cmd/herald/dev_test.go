package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	customerio "github.com/customerio/go-customerio/v3"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/internal/redistest"
)

// herald dev writes the demo workspace's site id to dev.env beside its API
// key, and the pair authenticates the Track API (here through the official
// Go client, go-customerio v3.10.0, customerio.WithURL).
func TestDevWritesSiteID(t *testing.T) {
	rdb := redistest.New(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "herald_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := clickhouse.Open(ctx, clickhouse.Options{Addr: chtest.Addr(), Database: "default", MaxOpenConns: 1})
		if err != nil {
			t.Errorf("drop database %s: %v", db, err)
			return
		}
		defer conn.Close()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
	})
	dir := t.TempDir()
	t.Setenv("HERALD_SECRET_KEY", "")
	cfg, d, err := parseConfig("dev", []string{"--addr", "127.0.0.1:0", "--clickhouse", chtest.Addr(), "--database", db,
		"--redis", redistest.Addr(), "--redis-db", strconv.Itoa(rdb.Options().DB),
		"--apns-sim", "127.0.0.1:0", "--fcm-sim", "127.0.0.1:0", "--state-dir", dir, "--demo=false"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- dev(ctx, cfg, d, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("herald dev: %v", err)
		}
	}()

	var env map[string]string
	for deadline := time.Now().Add(60 * time.Second); ; {
		env = readEnvFile(filepath.Join(dir, "dev.env"))
		if env["HERALD_URL"] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("herald dev did not write dev.env within 60 s")
		}
		select {
		case err := <-errc:
			t.Fatalf("herald dev stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if env["HERALD_SITE_ID"] == "" || env["HERALD_API_KEY"] == "" {
		t.Fatalf("dev.env: HERALD_SITE_ID %q, HERALD_API_KEY set %v; want both", env["HERALD_SITE_ID"], env["HERALD_API_KEY"] != "")
	}
	cio := customerio.NewTrackClient(env["HERALD_SITE_ID"], env["HERALD_API_KEY"], customerio.WithURL(env["HERALD_URL"]))
	if err := cio.Identify("dev-1", map[string]any{"plan": "basic"}); err != nil {
		t.Errorf("Track API with dev.env's site id and key: %v", err)
	}
}

// Package chtest gives each test its own ClickHouse database, migrated and
// dropped when the test ends. Tests need the ClickHouse that
// `bash scripts/services.sh` starts; without it they fail, they never skip.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/heraldpush/herald/clickhouse"
)

// Addr returns the native-protocol address of the test ClickHouse:
// $HERALD_CLICKHOUSE_ADDR, default 127.0.0.1:9000.
func Addr() string {
	if a := os.Getenv("HERALD_CLICKHOUSE_ADDR"); a != "" {
		return a
	}
	return clickhouse.DefaultAddr
}

// New returns a connection to a new database named herald_test_<random> with
// all of Herald's migrations applied. The database is dropped and the
// connection closed when the test ends.
func New(t testing.TB) driver.Conn {
	t.Helper()
	conn := NewEmpty(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := clickhouse.Migrate(ctx, conn, clickhouse.NewMemoryLocker(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	return conn
}

// NewEmpty is New without the migrations: a fresh, empty database.
func NewEmpty(t testing.TB) driver.Conn {
	t.Helper()
	conn, name := open(t)
	t.Cleanup(func() {
		// The test's own context may be done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("chtest: drop database %s: %v", name, err)
		}
		conn.Close()
	})
	return conn
}

func open(t testing.TB) (driver.Conn, string) {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	name := "herald_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(ctx, clickhouse.Options{Addr: Addr(), Database: name, MaxOpenConns: 4})
	if err != nil {
		t.Fatalf("ClickHouse is not running at %s: start it with `bash scripts/services.sh` (or set HERALD_CLICKHOUSE_ADDR): %v", Addr(), err)
	}
	return conn, name
}

// Package redistest gives each test its own Redis database number, empty at
// the start and flushed at the end. Tests need the Redis that
// `bash scripts/services.sh` starts; without it they fail, they never skip.
//
// Databases 1–15 are handed out; database 0 holds only the bookkeeping keys
// herald:test:db (a counter that spreads tests over the numbers) and
// herald:test:db:<n> (held by the test using database n, expiring after
// claimTTL in case a test process dies).
//
// A fault test that stops Redis runs its own instead: NewServer.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	numDBs   = 15 // databases 1..15; 0 is left for development
	claimTTL = 30 * time.Minute
	// claimWait is how long New waits for a free database when all are in
	// use by other tests.
	claimWait = 2 * time.Minute
)

// Addr returns the address of the test Redis: $HERALD_REDIS_ADDR, default
// 127.0.0.1:6379.
func Addr() string {
	if a := os.Getenv("HERALD_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// releaseScript deletes a claim only if it still holds the caller's token.
//
//	KEYS[1]: herald:test:db:<n>
//	ARGV[1]: the token New wrote
//	Returns 1 if deleted, else 0.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

// New returns a client for a Redis database that no other running test uses,
// flushed before it is returned and again when the test ends.
func New(t testing.TB) *redis.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), claimWait+10*time.Second)
	defer cancel()
	db, release, err := Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: Addr(), DB: db})
	t.Cleanup(func() {
		client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := release(ctx); err != nil {
			t.Error(err)
		}
	})
	return client
}

// Claim takes a database number that no running test (or benchmark) uses,
// flushed; release flushes it and gives it back. Benchmark commands use it
// so that tests running beside them do not flush their data.
func Claim(ctx context.Context) (db int, release func(context.Context) error, err error) {
	admin := redis.NewClient(&redis.Options{Addr: Addr(), DB: 0})
	if err := admin.Ping(ctx).Err(); err != nil {
		admin.Close()
		return 0, nil, fmt.Errorf("Redis is not running at %s: start it with `bash scripts/services.sh` (or set HERALD_REDIS_ADDR): %v", Addr(), err)
	}
	db, claim, token, err := claimDB(ctx, admin)
	if err != nil {
		admin.Close()
		return 0, nil, fmt.Errorf("redistest: %v", err)
	}
	client := redis.NewClient(&redis.Options{Addr: Addr(), DB: db})
	release = func(ctx context.Context) error {
		defer admin.Close()
		defer client.Close()
		if err := client.FlushDB(ctx).Err(); err != nil {
			return fmt.Errorf("redistest: flush db %d: %v", db, err)
		}
		if err := releaseScript.Run(ctx, admin, []string{claim}, token).Err(); err != nil {
			return fmt.Errorf("redistest: release db %d: %v", db, err)
		}
		return nil
	}
	if err := client.FlushDB(ctx).Err(); err != nil {
		_ = release(ctx)
		return 0, nil, fmt.Errorf("redistest: flush db %d: %v", db, err)
	}
	return db, release, nil
}

// claimDB picks a database number in 1..numDBs and marks it as taken with
// SET herald:test:db:<n> <token> NX PX claimTTL, trying the numbers after the
// counter's next value in turn, and polling until claimWait if all are taken.
func claimDB(ctx context.Context, admin *redis.Client) (db int, key, token string, err error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, "", "", err
	}
	token = hex.EncodeToString(b[:])
	deadline := time.Now().Add(claimWait)
	for {
		n, err := admin.Incr(ctx, "herald:test:db").Result()
		if err != nil {
			return 0, "", "", fmt.Errorf("pick a test database: %w", err)
		}
		for i := int64(0); i < numDBs; i++ {
			db = int((n+i)%numDBs) + 1
			key = fmt.Sprintf("herald:test:db:%d", db)
			ok, err := admin.SetNX(ctx, key, token, claimTTL).Result()
			if err != nil {
				return 0, "", "", fmt.Errorf("claim test database %d: %w", db, err)
			}
			if ok {
				return db, key, token, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, "", "", fmt.Errorf("all %d test databases stayed in use for %v (stale claims expire after %v; or delete the keys herald:test:db:* in Redis db 0)", numDBs, claimWait, claimTTL)
		}
		select {
		case <-ctx.Done():
			return 0, "", "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

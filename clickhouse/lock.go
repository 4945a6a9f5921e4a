package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Locker hands out named, expiring locks. Lock blocks until the lock is held
// or ctx is done; the returned unlock func releases it and is safe to call
// more than once. A lock whose holder dies is released when ttl runs out.
type Locker interface {
	Lock(ctx context.Context, name string, ttl time.Duration) (unlock func(), err error)
}

// lockPollInterval is how often a waiting Lock retries.
const lockPollInterval = 100 * time.Millisecond

// NewRedisLocker returns a Locker shared by every process that uses the same
// Redis: the lock for name is the key name itself, set with
// SET name token NX PX ttl, where token is random per Lock call so that only
// its holder can release it.
func NewRedisLocker(c redis.UniversalClient) Locker {
	return &redisLocker{client: c}
}

type redisLocker struct {
	client redis.UniversalClient
}

// unlockScript deletes a lock only if it still holds the caller's token, so
// a holder whose lock expired cannot release the next holder's lock.
//
//	KEYS[1]: the lock key
//	ARGV[1]: the token written by Lock
//	Returns 1 if the key was deleted, 0 if it was absent or held another token.
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

func (l *redisLocker) Lock(ctx context.Context, name string, ttl time.Duration) (func(), error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("clickhouse: lock %s: ttl must be positive", name)
	}
	token, err := randomToken()
	if err != nil {
		return nil, fmt.Errorf("clickhouse: lock %s: %w", name, err)
	}
	t := time.NewTicker(lockPollInterval)
	defer t.Stop()
	for {
		ok, err := l.client.SetNX(ctx, name, token, ttl).Result()
		if err != nil {
			return nil, fmt.Errorf("clickhouse: lock %s in redis: %w", name, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("clickhouse: wait for lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			// The caller's ctx may be cancelled by now; the release must
			// still happen, or others wait for the ttl.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			// An error here only delays the next holder until ttl.
			_ = unlockScript.Run(ctx, l.client, []string{name}, token).Err()
		})
	}, nil
}

func randomToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// NewMemoryLocker returns a Locker that holds its locks in this process only:
// for tests and single-process tools. Its locks do not expire (ttl is ignored),
// since the holder cannot die without the whole process.
func NewMemoryLocker() Locker {
	return &memoryLocker{held: make(map[string]chan struct{})}
}

type memoryLocker struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed when released
}

func (l *memoryLocker) Lock(ctx context.Context, name string, _ time.Duration) (func(), error) {
	for {
		l.mu.Lock()
		done, busy := l.held[name]
		if !busy {
			done = make(chan struct{})
			l.held[name] = done
			l.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					l.mu.Lock()
					delete(l.held, name)
					l.mu.Unlock()
					close(done)
				})
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("clickhouse: wait for lock %s: %w", name, ctx.Err())
		case <-done:
		}
	}
}

var errNilLocker = errors.New("clickhouse: migrate: nil Locker (use NewRedisLocker, or NewMemoryLocker for one process)")

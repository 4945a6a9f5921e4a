// Package ratelimit counts requests per key in fixed one-second windows in
// Redis, so every Herald process shares one limit.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limiter allows up to a number of events per second per key.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a limiter whose Redis keys start with prefix.
func New(rdb redis.UniversalClient, prefix string) *Limiter {
	return &Limiter{rdb: rdb, prefix: prefix}
}

// incr: KEYS[1] the window's counter; ARGV[1] its lifetime in ms. Returns
// the count after this event.
var incr = redis.NewScript(`
local n = redis.call("INCR", KEYS[1])
if n == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end
return n`)

// Allow counts one event for key and reports whether it is within perSecond;
// when it is not, retryAfter is the time until the window ends. perSecond
// <= 0 means no limit.
func (l *Limiter) Allow(ctx context.Context, key string, perSecond int) (ok bool, retryAfter time.Duration, err error) {
	if perSecond <= 0 {
		return true, 0, nil
	}
	now := time.Now()
	window := now.Unix()
	k := fmt.Sprintf("%s:%s:%d", l.prefix, key, window)
	n, err := incr.Run(ctx, l.rdb, []string{k}, 2000).Int64()
	if err != nil {
		return false, 0, fmt.Errorf("ratelimit: %w", err)
	}
	if n <= int64(perSecond) {
		return true, 0, nil
	}
	return false, time.Unix(window+1, 0).Sub(now), nil
}

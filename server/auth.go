package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph"
	"github.com/heraldpush/herald/internal/ratelimit"
)

// authenticator resolves Bearer keys (and the Track API's site id and key)
// to workspaces. It caches hits for
// authCacheTTL and misses for badKeyTTL, and bounds the lookups of keys it
// has not cached to lookupRate per client IP per second, so that a stream
// of bad keys costs ClickHouse little and other workspaces nothing.
type authenticator struct {
	store      *clickhouse.Store
	limiter    *ratelimit.Limiter // nil: lookups are not limited
	lookupRate int                // lookups per client IP per second; <= 0: no limit
	badKeyTTL  time.Duration

	mu     sync.Mutex
	hits   map[string]cached // by key hash
	misses map[string]time.Time
}

type cached struct {
	workspace string
	until     time.Time
}

const (
	authCacheTTL = 30 * time.Second
	// authCacheMax bounds each cache; a full one starts again empty, so a
	// flood of bad keys empties only the misses.
	authCacheMax = 10000
	// DefaultBadKeyTTL is how long an unknown key is remembered as unknown.
	DefaultBadKeyTTL = 10 * time.Second
	// DefaultAuthLookupRate is the lookups of uncached keys allowed per
	// client IP per second.
	DefaultAuthLookupRate = 20
)

func newAuthenticator(o Options) *authenticator {
	ttl := o.BadKeyTTL
	if ttl == 0 {
		ttl = DefaultBadKeyTTL
	}
	rate := o.AuthLookupRate
	if rate == 0 {
		rate = DefaultAuthLookupRate
	}
	return &authenticator{store: o.Store, limiter: o.Limiter, lookupRate: rate, badKeyTTL: ttl,
		hits: map[string]cached{}, misses: map[string]time.Time{}}
}

// workspace returns the id of key's workspace: clickhouse.ErrNotFound for
// an unknown key, a *graph.RateLimitError when ip has looked up too many
// uncached keys this second.
func (a *authenticator) workspace(ctx context.Context, key, ip string) (string, error) {
	h := HashKey(key)
	return a.resolve(ctx, h, ip, func(ctx context.Context) (string, error) {
		w, err := a.store.WorkspaceByKeyHash(ctx, h)
		return w.ID, err
	})
}

// siteWorkspace is workspace for the Track API's Basic auth: the workspace
// whose site id is site and whose API key is key, cached and limited the
// same way (a wrong key for a known site is a miss like an unknown site).
func (a *authenticator) siteWorkspace(ctx context.Context, site, key, ip string) (string, error) {
	return a.resolve(ctx, HashKey(site+":"+key), ip, func(ctx context.Context) (string, error) {
		w, err := a.store.WorkspaceBySiteID(ctx, site)
		if err != nil {
			return "", err
		}
		if subtle.ConstantTimeCompare([]byte(w.KeyHash), []byte(HashKey(key))) != 1 {
			return "", clickhouse.ErrNotFound
		}
		return w.ID, nil
	})
}

// resolve answers from the caches by the credentials' hash h, else counts
// a lookup for ip and runs lookup, caching its answer (a hit or
// clickhouse.ErrNotFound).
func (a *authenticator) resolve(ctx context.Context, h, ip string, lookup func(context.Context) (string, error)) (string, error) {
	now := time.Now()
	a.mu.Lock()
	c, hit := a.hits[h]
	bad, miss := a.misses[h]
	a.mu.Unlock()
	if hit && now.Before(c.until) {
		return c.workspace, nil
	}
	if miss && now.Before(bad) {
		return "", clickhouse.ErrNotFound
	}
	if err := a.allowLookup(ctx, ip); err != nil {
		return "", err
	}
	id, err := lookup(ctx)
	if errors.Is(err, clickhouse.ErrNotFound) {
		a.mu.Lock()
		if len(a.misses) >= authCacheMax {
			a.misses = map[string]time.Time{}
		}
		a.misses[h] = now.Add(a.badKeyTTL)
		a.mu.Unlock()
	}
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	if len(a.hits) >= authCacheMax {
		a.hits = map[string]cached{}
	}
	a.hits[h] = cached{id, now.Add(authCacheTTL)}
	a.mu.Unlock()
	return id, nil
}

// allowLookup counts one credential lookup for ip. Redis being away lets
// the lookup through: the limit protects ClickHouse, not the key.
func (a *authenticator) allowLookup(ctx context.Context, ip string) error {
	if a.limiter == nil || a.lookupRate <= 0 || ip == "" {
		return nil
	}
	ok, retry, err := a.limiter.Allow(ctx, "authlookup:"+ip, a.lookupRate)
	if err == nil && !ok {
		return &graph.RateLimitError{RetryAfter: retry}
	}
	return nil
}

// clientIP is the request's peer address without its port.
func clientIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

// bearerKey is the API key of an Authorization: Bearer header, or "".
func bearerKey(r *http.Request) string {
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if key == r.Header.Get("Authorization") {
		return ""
	}
	return strings.TrimSpace(key)
}

type ipKey struct{}

// withClientIP keeps the peer address for the websocket's connection_init,
// which authenticates after the upgrade with only the request's context.
func withClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ipKey{}, ip)
}

func clientIPOf(ctx context.Context) string {
	ip, _ := ctx.Value(ipKey{}).(string)
	return ip
}

// Package graph holds Herald's GraphQL resolvers. Resolvers are thin: they
// validate input, call the store or the queue, and map the result; domain
// errors become extensions.code in one error presenter (errors.go).
package graph

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/ratelimit"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/render"
)

// Resolver is the root resolver; it holds the services every resolver uses.
type Resolver struct {
	Store  *clickhouse.Store
	Queue  *jobs.Queue
	Render *render.Engine
	// Events writes event rows (reports, conversions) durably.
	Events jobs.EventWriter
	// Targets caches which tokens each delivery targeted (may be nil).
	Targets *jobs.TargetCache
	// Redis carries live updates (pub/sub) for subscriptions.
	Redis redis.UniversalClient
	// Secrets seals push credentials before they are stored.
	Secrets *secret.Box
	// Limiter and SendRate bound sends per workspace per second (0: no limit).
	Limiter  *ratelimit.Limiter
	SendRate int
	// FCMTokenURIs are the token endpoints an FCM service account may name
	// (empty: Google's).
	FCMTokenURIs []string
	// Queries bounds the ClickHouse queries in flight per request and per
	// workspace (nil: no bound); see RequestScope.
	Queries *clickhouse.Limiter
	// Live fans change notifications out to subscriptions (subscriptions.go).
	Live   *Live
	Logger *slog.Logger
}

type workspaceKey struct{}

// WithWorkspace returns a context carrying the authenticated workspace id.
func WithWorkspace(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, workspaceKey{}, id)
}

// workspace returns the authenticated workspace, or UNAUTHENTICATED.
func workspace(ctx context.Context) (string, error) {
	id, _ := ctx.Value(workspaceKey{}).(string)
	if id == "" {
		return "", ErrUnauthenticated
	}
	return id, nil
}

// lockDevice takes the lock on one device's row that the worker's bounce
// rules also take (jobs.LockDevice).
func (r *Resolver) lockDevice(ctx context.Context, workspaceID, personID, token string) (func(), error) {
	return jobs.LockDevice(ctx, clickhouse.NewRedisLocker(r.Redis), workspaceID, personID, token)
}

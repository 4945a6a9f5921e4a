package graph

import (
	"context"
	"slices"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph/model"
)

// Request-scoped loaders batch the lookups of one operation: 2,400 aliases
// of person(id) are one query per maxBatch ids, not 2,400 queries, and
// their devices one more. The batch is known before the first resolver
// runs (lookahead over the operation's root fields), so the batching does
// not depend on timing: the first load fetches every key the operation
// will ask for; a key outside the lookahead (a mutation's result) is
// fetched on its own.

// maxBatch bounds the ids of one batched query.
const maxBatch = 1000

// maxDevicesPage bounds Person.devices' first.
const maxDevicesPage = 100

type loader[V any] struct {
	mu      sync.Mutex
	entries map[string]*loaded[V]
	ahead   func() []string // the keys the operation will ask for; read once
	fetch   func(ctx context.Context, keys []string) (map[string]V, error)
}

type loaded[V any] struct {
	ready chan struct{}
	v     V
	ok    bool
	err   error
}

// load returns key's value (ok false when absent), fetching it with every
// other key not yet fetched.
func (l *loader[V]) load(ctx context.Context, key string) (V, bool, error) {
	l.mu.Lock()
	e := l.entries[key]
	var todo []string
	if e == nil {
		keys := []string{key}
		if l.ahead != nil {
			keys = append(keys, l.ahead()...)
			l.ahead = nil
		}
		for _, k := range keys {
			if l.entries[k] == nil {
				l.entries[k] = &loaded[V]{ready: make(chan struct{})}
				todo = append(todo, k)
			}
		}
		e = l.entries[key]
	}
	l.mu.Unlock()
	for chunk := range slices.Chunk(todo, maxBatch) {
		got, err := l.fetch(ctx, chunk)
		l.mu.Lock()
		for _, k := range chunk {
			d := l.entries[k]
			d.v, d.ok = got[k]
			d.err = err
			close(d.ready)
		}
		l.mu.Unlock()
	}
	select {
	case <-e.ready:
		return e.v, e.ok, e.err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

// found lists the keys fetched and present so far.
func (l *loader[V]) found() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, e := range l.entries {
		select {
		case <-e.ready:
			if e.ok {
				out = append(out, k)
			}
		default:
		}
	}
	return out
}

// loaders are one operation's loaders.
type loaders struct {
	persons *loader[clickhouse.Person]
	devices *loader[[]clickhouse.Device]
}

type loadersKey struct{}

func newLoaders(ctx context.Context, store *clickhouse.Store, ws string) *loaders {
	ls := &loaders{}
	ls.persons = &loader[clickhouse.Person]{
		entries: map[string]*loaded[clickhouse.Person]{},
		ahead:   func() []string { return rootPersonIDs(ctx) },
		fetch: func(ctx context.Context, ids []string) (map[string]clickhouse.Person, error) {
			return store.PersonsByIDs(ctx, ws, ids)
		},
	}
	ls.devices = &loader[[]clickhouse.Device]{
		entries: map[string]*loaded[[]clickhouse.Device]{},
		// Devices are asked for after their persons resolved: every person
		// found so far.
		ahead: ls.persons.found,
		fetch: func(ctx context.Context, ids []string) (map[string][]clickhouse.Device, error) {
			return store.NewestDevices(ctx, ws, ids, maxDevicesPage)
		},
	}
	return ls
}

// loadersFrom returns the operation's loaders; without any (a resolver
// called outside an operation) a fresh set that batches nothing ahead.
func (r *Resolver) loadersFrom(ctx context.Context, ws string) *loaders {
	if ls, ok := ctx.Value(loadersKey{}).(*loaders); ok {
		return ls
	}
	return newLoaders(context.Background(), r.Store, ws)
}

// rootPersonIDs returns the valid ids of the operation's root person(id)
// fields (aliases and fragments included, variables resolved).
func rootPersonIDs(ctx context.Context) []string {
	if !graphql.HasOperationContext(ctx) {
		return nil
	}
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != "query" {
		return nil
	}
	var ids []string
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Query"}) {
		if f.Name != "person" {
			continue
		}
		if id, ok := f.ArgumentMap(oc.Variables)["id"].(string); ok && validPersonID("id", id) == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// devices resolves Person.devices through the operation's loader: at most
// first (1–maxDevicesPage), newest last used first.
func (r *Resolver) devices(ctx context.Context, p *model.Person, first *int) ([]*model.Device, error) {
	ws, err := workspace(ctx)
	if err != nil {
		return nil, err
	}
	n, err := firstArg(first, maxDevicesPage, maxDevicesPage)
	if err != nil {
		return nil, err
	}
	devs, _, err := r.loadersFrom(ctx, ws).devices.load(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	out := make([]*model.Device, 0, min(n, len(devs)))
	for _, d := range devs[:min(n, len(devs))] {
		out = append(out, deviceModel(d))
	}
	return out, nil
}

package jobs

import (
	"sync"
	"time"

	"github.com/heraldpush/herald/clickhouse"
)

// Snapshot is what a deliver task would otherwise read from ClickHouse:
// the delivery row and the person with their devices. A broadcast's fan-out
// reads them for a whole batch at once and hands each deliver task its
// part, so a broadcast costs two queries per batch instead of four per
// person.
type Snapshot struct {
	Delivery    clickhouse.Delivery `json:"delivery"`
	PersonFound bool                `json:"person_found"`
	Person      clickhouse.Person   `json:"person"`
	Devices     []clickhouse.Device `json:"devices"`
}

// ttlCache keeps values for a short time: push messages and credentials,
// which every delivery of a broadcast reads. A credentials change reaches
// new deliveries within ttl. One load per key runs at a time: the callers
// that miss meanwhile wait for its answer, so a broadcast's 200 concurrent
// sends make one read when the entry expires, not 200.
type ttlCache[K comparable, V any] struct {
	ttl      time.Duration
	mu       sync.Mutex
	m        map[K]ttlEntry[V]
	inflight map[K]*ttlFlight[V]
}

type ttlEntry[V any] struct {
	v     V
	until time.Time
}

// ttlFlight is a load in progress; done closes when v and err are set.
type ttlFlight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func newTTLCache[K comparable, V any](ttl time.Duration) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, m: map[K]ttlEntry[V]{}, inflight: map[K]*ttlFlight[V]{}}
}

// get returns the cached value, or waits for the load in progress, or
// loads (and caches) it. A failed load is not cached: its waiters get its
// error, and the next caller loads again.
func (c *ttlCache[K, V]) get(k K, load func() (V, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.m[k]; ok && time.Now().Before(e.until) {
		c.mu.Unlock()
		return e.v, nil
	}
	if f, ok := c.inflight[k]; ok {
		c.mu.Unlock()
		<-f.done
		return f.v, f.err
	}
	f := &ttlFlight[V]{done: make(chan struct{})}
	c.inflight[k] = f
	c.mu.Unlock()
	f.v, f.err = load()
	c.mu.Lock()
	delete(c.inflight, k)
	if f.err == nil {
		if len(c.m) > 10000 {
			c.m = map[K]ttlEntry[V]{}
		}
		c.m[k] = ttlEntry[V]{f.v, time.Now().Add(c.ttl)}
	}
	c.mu.Unlock()
	close(f.done)
	return f.v, f.err
}

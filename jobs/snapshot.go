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
// new deliveries within ttl.
type ttlCache[K comparable, V any] struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v     V
	until time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, m: map[K]ttlEntry[V]{}}
}

// get returns the cached value or loads (and caches) it.
func (c *ttlCache[K, V]) get(k K, load func() (V, error)) (V, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if len(c.m) > 10000 {
		c.m = map[K]ttlEntry[V]{}
	}
	c.m[k] = ttlEntry[V]{v, now.Add(c.ttl)}
	c.mu.Unlock()
	return v, nil
}

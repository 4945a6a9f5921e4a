package jobs

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent misses of one key make one load and share its answer; a
// failed load is not kept; an expired entry is loaded again.
func TestTTLCacheOneLoadAtATime(t *testing.T) {
	c := newTTLCache[string, int](50 * time.Millisecond)
	var loads atomic.Int64
	slow := func() (int, error) {
		loads.Add(1)
		time.Sleep(20 * time.Millisecond)
		return 7, nil
	}
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := c.get("ws", slow); v != 7 || err != nil {
				t.Errorf("get = %d, %v; want 7", v, err)
			}
		}()
	}
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Errorf("200 concurrent misses made %d loads, want 1", n)
	}
	if v, _ := c.get("ws", slow); v != 7 || loads.Load() != 1 {
		t.Errorf("a hit loaded again (%d loads)", loads.Load())
	}
	time.Sleep(60 * time.Millisecond)
	if c.get("ws", slow); loads.Load() != 2 {
		t.Errorf("after the ttl: %d loads, want 2", loads.Load())
	}

	boom := errors.New("clickhouse down")
	if _, err := c.get("other", func() (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Errorf("a failed load returned %v", err)
	}
	if v, err := c.get("other", func() (int, error) { return 3, nil }); v != 3 || err != nil {
		t.Errorf("after a failed load: %d, %v; want a new load's 3", v, err)
	}
}

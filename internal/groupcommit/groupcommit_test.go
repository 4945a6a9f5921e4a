package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// Concurrent callers each get their own item's error, batches hold at most
// max items, and every item runs exactly once.
func TestCommitterBatchesAndAnswersEachCaller(t *testing.T) {
	var mu sync.Mutex
	ran := map[int]int{}
	biggest := 0
	c := New(8, func(_ context.Context, items []int) []error {
		mu.Lock()
		defer mu.Unlock()
		biggest = max(biggest, len(items))
		errs := make([]error, len(items))
		for i, v := range items {
			ran[v]++
			if v%3 == 0 {
				errs[i] = fmt.Errorf("item %d", v)
			}
		}
		return errs
	})
	const n = 500
	got := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = c.Do(context.Background(), i)
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		want := i%3 == 0
		if (got[i] != nil) != want || (want && got[i].Error() != fmt.Sprintf("item %d", i)) {
			t.Errorf("Do(%d) = %v, want error %v", i, got[i], want)
		}
		if ran[i] != 1 {
			t.Errorf("item %d ran %d times, want 1", i, ran[i])
		}
	}
	if biggest > 8 {
		t.Errorf("a batch held %d items, want at most 8", biggest)
	}
}

// A caller that waits for another's batch stops waiting when its context ends.
func TestCommitterDoHonoursContext(t *testing.T) {
	started, block := make(chan struct{}), make(chan struct{})
	c := New(4, func(_ context.Context, items []int) []error {
		if items[0] == 1 {
			close(started)
			<-block
		}
		return make([]error, len(items))
	})
	go func() { _ = c.Do(context.Background(), 1) }() // leads and blocks
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Do(ctx, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled context = %v, want context.Canceled", err)
	}
	close(block)
}

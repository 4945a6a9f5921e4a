package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/redistest"
)

func TestAllow(t *testing.T) {
	l := New(redistest.New(t), "test")
	ctx := context.Background()
	// Start at the beginning of a second so the window does not roll over mid-test.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	allowed := 0
	var retry time.Duration
	for i := 0; i < 8; i++ {
		ok, ra, err := l.Allow(ctx, "ws1", 5)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			allowed++
		} else {
			retry = ra
		}
	}
	if allowed != 5 {
		t.Errorf("allowed %d of 8 with a limit of 5", allowed)
	}
	if retry <= 0 || retry > time.Second {
		t.Errorf("retryAfter = %s, want within the second", retry)
	}
	if ok, _, _ := l.Allow(ctx, "ws2", 5); !ok {
		t.Error("another key shares the count")
	}
	if ok, _, _ := l.Allow(ctx, "ws1", 0); !ok {
		t.Error("limit 0 should mean no limit")
	}
}

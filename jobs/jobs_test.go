package jobs

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/redistest"
)

func TestRetryDelayDoublesAndCaps(t *testing.T) {
	f := RetryDelay(100*time.Millisecond, time.Second)
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{0, 100 * time.Millisecond, 120 * time.Millisecond},
		{1, 200 * time.Millisecond, 240 * time.Millisecond},
		{3, 800 * time.Millisecond, 960 * time.Millisecond},
		// 1 s or more: rounded up to end on a whole second (dueInWholeSeconds).
		{4, time.Second, 2200 * time.Millisecond},
		{9, time.Second, 2200 * time.Millisecond},
	} {
		for i := 0; i < 50; i++ {
			if d := f(tc.n, nil, nil); d < tc.min || d > tc.max {
				t.Fatalf("RetryDelay(n=%d) = %s, want in [%s, %s]", tc.n, d, tc.min, tc.max)
			}
		}
	}
}

func TestMessageFields(t *testing.T) {
	m := clickhouse.Message{Title: "Hi {{ customer.name }}", Body: "b", Link: "l",
		Data: `{"screen":"{{ event.screen }}","count":3,"flags":{"a":true}}`}
	fields, custom, err := MessageFields(m)
	if err != nil {
		t.Fatal(err)
	}
	wantFields := map[string]string{"title": "Hi {{ customer.name }}", "body": "b", "link": "l", "image": "", "sound": "",
		"data.screen": "{{ event.screen }}"}
	if diff := cmp.Diff(wantFields, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"count": "3", "flags": `{"a":true}`}, custom); diff != "" {
		t.Errorf("custom (-want +got):\n%s", diff)
	}
	if _, _, err := MessageFields(clickhouse.Message{Data: "{not json"}); err == nil {
		t.Error("bad data JSON: no error")
	}
}

func TestTaskIDsAreStable(t *testing.T) {
	a, _ := NewDeliverTask(DeliverPayload{WorkspaceID: "w", DeliveryID: "d", Round: 2})
	b, _ := NewSendTask(SendPayload{DeliveryID: "d", Round: 2, DeviceIndex: 3}, 10)
	if a.Type() != TypeDeliver || b.Type() != TypeSend {
		t.Errorf("types %s, %s", a.Type(), b.Type())
	}
	if got, want := planKey("d", 2), "herald:plan:d:2"; got != want {
		t.Errorf("planKey = %s, want %s", got, want)
	}
	if got, want := finalKey("d", 2, 3), "herald:final:d:2:3"; got != want {
		t.Errorf("finalKey = %s, want %s", got, want)
	}
	if got, want := handoffKey("d", 65535, 12), "herald:handoff:d:65535:12"; got != want {
		t.Errorf("handoffKey = %s, want %s", got, want)
	}
	id := uuid.MustParse("019a2b3c-4d5e-7f60-8192-a3b4c5d6e7ff")
	if got, want := targetsKey(id), "herald:targets:019a2b3c4d5e:63"; got != want {
		t.Errorf("targetsKey = %s, want %s", got, want)
	}
}

// A task that fails while Redis is down returns its error only once Redis
// answers again (so asynq can record the retry); one that succeeds, or
// whose context ends, returns at once.
func TestAwaitRedisHoldsFailuresUntilRedisAnswers(t *testing.T) {
	rs := redistest.NewServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	w := &Worker{rdb: rdb}
	failing := w.awaitRedis(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return errors.New("boom") }))
	ok := w.awaitRedis(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	task := asynq.NewTask("t", nil)
	rs.Kill()

	if err := ok.ProcessTask(context.Background(), task); err != nil {
		t.Errorf("succeeding task: %v, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := failing.ProcessTask(ctx, task); err == nil || err.Error() != "boom" {
		t.Errorf("failing task, context ended: %v, want boom", err)
	}
	done := make(chan error, 1)
	go func() { done <- failing.ProcessTask(context.Background(), task) }()
	select {
	case err := <-done:
		t.Fatalf("failing task returned %v while Redis was down", err)
	case <-time.After(time.Second):
	}
	rs.Start()
	select {
	case err := <-done:
		if err == nil || err.Error() != "boom" {
			t.Errorf("failing task: %v, want boom", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("failing task still waiting 10s after Redis came back")
	}
}

// TestHoldRecordThroughRedisOutage: a record that fails while Redis is down
// is written once Redis is back; one that fails while Redis answers is
// given up after one more try.
func TestHoldRecordThroughRedisOutage(t *testing.T) {
	rs := redistest.NewServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	w := &Worker{rdb: rdb}
	ctx := context.Background()

	tries := 0
	if err := w.holdRecord(ctx, func() error { tries++; return errors.New("not redis") }); err == nil || tries != 2 {
		t.Errorf("failing record with Redis up: err %v after %d tries, want an error after 2", err, tries)
	}

	rs.Kill()
	done := make(chan error, 1)
	go func() {
		done <- w.holdRecord(ctx, func() error { return rdb.Set(ctx, "held", "1", 0).Err() })
	}()
	select {
	case err := <-done:
		t.Fatalf("record returned %v while Redis was down", err)
	case <-time.After(time.Second):
	}
	rs.Start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("record after Redis came back: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("record still held 10s after Redis came back")
	}
	if v, err := rdb.Get(ctx, "held").Result(); err != nil || v != "1" {
		t.Errorf("held record: %q, %v; want it written", v, err)
	}

	rs.Kill()
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := w.holdRecord(cctx, func() error { return rdb.Set(cctx, "held", "2", 0).Err() }); err == nil {
		t.Error("record with Redis down and the context ended: nil error")
	}
}

// TestDueInWholeSeconds: a delay of a second or more ends on a whole second
// no earlier than asked (asynq drops the fraction of a due time); shorter
// ones are kept.
func TestDueInWholeSeconds(t *testing.T) {
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		now  time.Duration // past base
		d    time.Duration
		want time.Duration
	}{
		{0, 1500 * time.Millisecond, 2 * time.Second},
		{900 * time.Millisecond, 1200 * time.Millisecond, 2100 * time.Millisecond},
		{900 * time.Millisecond, 1100 * time.Millisecond, 1100 * time.Millisecond},
		{0, 2 * time.Second, 2 * time.Second},
		{250 * time.Millisecond, 10 * time.Minute, 10*time.Minute + 750*time.Millisecond},
		{300 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond},
		{0, 10 * time.Millisecond, 10 * time.Millisecond},
	} {
		now := base.Add(tc.now)
		got := dueInWholeSeconds(now, tc.d)
		if got != tc.want {
			t.Errorf("now +%v, delay %v: got %v, want %v", tc.now, tc.d, got, tc.want)
		}
		if tc.d >= time.Second && (got < tc.d || now.Add(got).Nanosecond() != 0) {
			t.Errorf("now +%v, delay %v: %v is shorter or does not end on a whole second", tc.now, tc.d, got)
		}
	}
}

// TestSendPool: goSend runs every delivery's sends, at most Concurrency at
// once, on at most Concurrency goroutines that it reuses.
func TestSendPool(t *testing.T) {
	const concurrency, n = 4, 200
	w := &Worker{slots: make(chan struct{}, concurrency), sendq: make(chan func())}
	before := runtime.NumGoroutine()
	var running, most, ran, goroutines atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		err := w.goSend(context.Background(), func() {
			defer wg.Done()
			now := running.Add(1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			goroutines.Store(max(goroutines.Load(), int64(runtime.NumGoroutine()-before)))
			time.Sleep(time.Millisecond)
			running.Add(-1)
			ran.Add(1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if ran.Load() != n || most.Load() > concurrency || most.Load() < 2 {
		t.Errorf("ran %d of %d, at most %d at once; want all, at most %d (and more than one)", ran.Load(), n, most.Load(), concurrency)
	}
	if g := goroutines.Load(); g > concurrency {
		t.Errorf("%d goroutines for %d sends, want at most %d (the pool)", g, n, concurrency)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	block := make(chan struct{})
	for range concurrency { // every pool goroutine busy: a canceled send gives up
		_ = w.goSend(context.Background(), func() { <-block })
	}
	if err := w.goSend(ctx, func() { t.Error("ran a send after its context was canceled") }); !errors.Is(err, context.Canceled) {
		t.Errorf("goSend with a full pool and a canceled context = %v, want context.Canceled", err)
	}
	close(block)
}

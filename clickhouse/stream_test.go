package clickhouse_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/domain/model"
	"github.com/heraldpush/herald/internal/redistest"
)

// testEvents returns n distinct events (distinct sorting keys), with times
// at the precision the table keeps (the delivery id's millisecond for
// delivery_created, microseconds for at).
func testEvents(n int) []clickhouse.Event {
	campaign := uuid.New()
	created := time.Now().UTC().Truncate(time.Millisecond)
	kinds := []string{clickhouse.KindTargeted, clickhouse.KindAttempt, clickhouse.KindSent, clickhouse.KindDelivered}
	events := make([]clickhouse.Event, n)
	for i := range events {
		events[i] = clickhouse.Event{
			WorkspaceID: "ws1", CampaignID: campaign, DeliveryID: model.UUIDAt(created),
			DeviceIndex: uint16(i % 3), Kind: kinds[i%len(kinds)], Attempt: uint16(i % 2),
			StatusCode: 200, Reason: fmt.Sprintf("reason %d", i), ProviderID: "p-" + fmt.Sprint(i),
			DeliveryCreated: created, At: created.Add(time.Duration(i) * time.Microsecond),
		}
	}
	return events
}

// deadConn is a ClickHouse connection to a closed port: the driver connects
// lazily, so every query fails with connection refused.
func deadConn(t testing.TB) driver.Conn {
	t.Helper()
	conn, err := ch.Open(&ch.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("open dead connection: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func newStreamWriter(t testing.TB, rdb redis.UniversalClient, conn driver.Conn, o clickhouse.StreamOptions, logger *slog.Logger) *clickhouse.StreamWriter {
	t.Helper()
	w, err := clickhouse.NewStreamWriter(rdb, conn, o, logger)
	if err != nil {
		t.Fatalf("NewStreamWriter: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

// checkStored fails unless the events table holds exactly want, each once
// (none of these tests repeats an insert).
func checkStored(t *testing.T, conn driver.Conn, want []clickhouse.Event) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		"SELECT count() FROM events",
		"SELECT uniqExact(workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt) FROM events",
	} {
		var n uint64
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n != uint64(len(want)) {
			t.Errorf("%s = %d, want %d", q, n, len(want))
		}
	}
	rows, err := conn.Query(ctx, `SELECT workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt, status_code, reason, provider_id, delivery_created, at FROM events`)
	if err != nil {
		t.Fatalf("select events: %v", err)
	}
	defer rows.Close()
	var got []clickhouse.Event
	for rows.Next() {
		var e clickhouse.Event
		if err := rows.Scan(&e.WorkspaceID, &e.CampaignID, &e.DeliveryID, &e.Round, &e.DeviceIndex, &e.Kind, &e.Attempt,
			&e.StatusCode, &e.Reason, &e.ProviderID, &e.DeliveryCreated, &e.At); err != nil {
			t.Fatalf("scan event: %v", err)
		}
		e.DeliveryCreated, e.At = e.DeliveryCreated.UTC(), e.At.UTC()
		got = append(got, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("select events: %v", err)
	}
	byID := func(es []clickhouse.Event) {
		sort.Slice(es, func(i, j int) bool { return es[i].DeliveryID.String() < es[j].DeliveryID.String() })
	}
	want = append([]clickhouse.Event(nil), want...)
	byID(want)
	byID(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events table (-want +got):\n%s", diff)
	}
}

func TestStreamWriterInsertsAll(t *testing.T) {
	rdb, conn := redistest.New(t), chtest.New(t)
	w := newStreamWriter(t, rdb, conn, clickhouse.StreamOptions{MaxBatch: 300, Interval: 10 * time.Millisecond}, testLogger(t))
	ctx := context.Background()

	events := testEvents(2000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g * 5; i < len(events); i += 8 * 5 {
				end := min(i+5, len(events))
				if err := w.Write(ctx, events[i:end]...); err != nil {
					t.Errorf("Write: %v", err)
				}
			}
		})
	}
	wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Flush(fctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	checkStored(t, conn, events)

	st, err := w.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if diff := cmp.Diff(clickhouse.StreamStats{Inserted: 2000}, st); diff != "" {
		t.Errorf("Stats after Flush (-want +got):\n%s", diff)
	}
}

// TestStreamWriterHoldsForLargeInserts: events that are fewer than
// MinInsert wait until MaxDelay after they were read, then go in one
// insert; MinInsert events go at once, whatever MaxDelay says.
func TestStreamWriterHoldsForLargeInserts(t *testing.T) {
	rdb, conn := redistest.New(t), chtest.New(t)
	ctx := context.Background()
	var inserts atomic.Int32
	const maxDelay = 400 * time.Millisecond
	w := newStreamWriter(t, rdb, conn, clickhouse.StreamOptions{Consumer: "small", Interval: 10 * time.Millisecond, MinInsert: 1000, MaxDelay: maxDelay,
		OnInserted: func(context.Context, []clickhouse.Event) { inserts.Add(1) }}, testLogger(t))
	events := testEvents(1100)
	start := time.Now()
	for i := 0; i < 100; i += 10 {
		if err := w.Write(ctx, events[i:i+10]...); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	count := func() uint64 {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil {
			t.Fatalf("count: %v", err)
		}
		return n
	}
	waitFor := func(want uint64) time.Duration {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if count() == want {
				return time.Since(start)
			}
		}
		t.Fatalf("events table holds %d events after 30 s, want %d", count(), want)
		return 0
	}
	if took := waitFor(100); took < maxDelay {
		t.Errorf("100 events (MinInsert 1000) were inserted after %v, before MaxDelay %v", took, maxDelay)
	}
	w.Close() // OnInserted runs after the insert: wait for it
	if n := inserts.Load(); n != 1 {
		t.Errorf("100 events in 10 Writes made %d inserts, want 1", n)
	}

	// MinInsert events go without waiting for a MaxDelay of an hour.
	big := newStreamWriter(t, rdb, conn, clickhouse.StreamOptions{Consumer: "big", Interval: 10 * time.Millisecond, MinInsert: 1000, MaxDelay: time.Hour, ClaimIdle: 3 * time.Hour}, testLogger(t))
	if err := big.Write(ctx, events[100:1100]...); err != nil {
		t.Fatalf("Write: %v", err)
	}
	waitFor(1100)
}

func TestStreamWriterRejectsUnknownKind(t *testing.T) {
	rdb := redistest.New(t)
	w := newStreamWriter(t, rdb, deadConn(t), clickhouse.StreamOptions{}, testLogger(t))
	e := testEvents(2)
	e[1].Kind = "exploded"
	if err := w.Write(context.Background(), e...); err == nil {
		t.Fatal("Write of an unknown kind: got nil error")
	}
	if n := rdb.XLen(context.Background(), "herald:events").Val(); n != 0 {
		t.Errorf("stream length after a rejected Write = %d, want 0", n)
	}
}

func TestStreamWriterCloseDrains(t *testing.T) {
	rdb, conn := redistest.New(t), chtest.New(t)
	w, err := clickhouse.NewStreamWriter(rdb, conn, clickhouse.StreamOptions{Interval: time.Hour}, testLogger(t))
	if err != nil {
		t.Fatalf("NewStreamWriter: %v", err)
	}
	events := testEvents(100)
	time.Sleep(50 * time.Millisecond) // let the first, immediate poll pass: the next is in an hour
	if err := w.Write(context.Background(), events...); err != nil {
		t.Fatalf("Write: %v", err)
	}
	w.Close()
	checkStored(t, conn, events)
	if err := w.Write(context.Background(), events...); err == nil {
		t.Error("Write after Close: got nil error")
	}
}

// countHandler counts log records by level.
type countHandler struct {
	errors atomic.Int64
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.errors.Add(1)
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

func TestStreamWriterClickHouseDown(t *testing.T) {
	rdb, conn := redistest.New(t), chtest.New(t)
	ctx := context.Background()
	logs := &countHandler{}
	down := newStreamWriter(t, rdb, deadConn(t), clickhouse.StreamOptions{Consumer: "down", Interval: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond}, slog.New(logs))

	events := testEvents(100)
	for i := 0; i < len(events); i += 10 {
		if err := down.Write(ctx, events[i:i+10]...); err != nil {
			t.Fatalf("Write with ClickHouse down: %v", err)
		}
	}
	time.Sleep(300 * time.Millisecond) // several failed inserts
	st1, err := down.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	// Pending holds what the failing writer read before its first insert
	// failed; while failing it retries those and reads nothing new, so the
	// rest stays unread for any healthy writer.
	if st1.Length != 100 || st1.Pending < 1 || st1.Pending > 10 || st1.OldestAge <= 0 || st1.Inserted != 0 || st1.LastError == "" {
		t.Errorf("Stats with ClickHouse down = %+v, want Length 100 (events), Pending 1..10 (entries), OldestAge > 0, Inserted 0, a LastError", st1)
	}
	if n := logs.errors.Load(); n != 1 {
		t.Errorf("logged %d errors during one failure streak, want 1", n)
	}
	time.Sleep(20 * time.Millisecond)
	st2, err := down.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st2.OldestAge <= st1.OldestAge {
		t.Errorf("OldestAge did not grow: %v then %v", st1.OldestAge, st2.OldestAge)
	}
	fctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := down.Flush(fctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush with ClickHouse down = %v, want a deadline error", err)
	}

	// The documented entry format: one entry per Redis round trip (these
	// Writes ran one after another: one each), field "n" its number of
	// events, field "events" their encoding, in order (each event's reason
	// is followed by its provider id's length and bytes).
	entries, err := rdb.XRange(ctx, "herald:events", "-", "+").Result()
	if err != nil || len(entries) != 10 {
		t.Fatalf("XRANGE: %v, %d entries, want 10", err, len(entries))
	}
	for j, m := range entries {
		blob := fmt.Sprint(m.Values["events"])
		for i := j * 10; i < j*10+10; i++ {
			if !strings.Contains(blob, events[i].Reason+string(rune(len(events[i].ProviderID)))+events[i].ProviderID) {
				t.Errorf("entry %d lacks event %d (%s, %s)", j, i, events[i].Reason, events[i].ProviderID)
			}
		}
		if m.Values["n"] != "10" {
			t.Errorf("entry %s: n %v, want 10", m.ID, m.Values["n"])
		}
	}

	// A second process, with a working ClickHouse, claims what the first
	// one holds once it has been idle for ClaimIdle.
	up := newStreamWriter(t, rdb, conn, clickhouse.StreamOptions{Consumer: "up", Interval: 10 * time.Millisecond, ClaimIdle: 100 * time.Millisecond}, testLogger(t))
	fctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := up.Flush(fctx); err != nil {
		t.Fatalf("Flush of the second writer: %v", err)
	}
	checkStored(t, conn, events)
	st, err := up.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if diff := cmp.Diff(clickhouse.StreamStats{Inserted: 100}, st); diff != "" {
		t.Errorf("Stats of the second writer (-want +got):\n%s", diff)
	}
}

func TestStreamWriterClaimsFromDeadConsumer(t *testing.T) {
	rdb, conn := redistest.New(t), chtest.New(t)
	ctx := context.Background()
	const stream, group = "herald:events", "herald-writers"
	if err := rdb.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
	// Write in the JSON entry format of earlier versions (one event an
	// entry, field "event"), which a new process still reads, then read as
	// consumer "dead", which never acknowledges: a process that crashed
	// after XREADGROUP.
	events := testEvents(50)
	for _, e := range events {
		b, err := json.Marshal(map[string]any{
			"workspace_id": e.WorkspaceID, "campaign_id": e.CampaignID, "delivery_id": e.DeliveryID,
			"round": e.Round, "device_index": e.DeviceIndex, "kind": e.Kind, "attempt": e.Attempt,
			"status_code": e.StatusCode, "reason": e.Reason, "provider_id": e.ProviderID,
			"delivery_created": e.DeliveryCreated, "at": e.At,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"event", b}}).Err(); err != nil {
			t.Fatalf("XADD: %v", err)
		}
	}
	start := time.Now()
	read, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "dead", Streams: []string{stream, ">"}, Count: 1000, Block: -1}).Result()
	if err != nil || len(read[0].Messages) != len(events) {
		t.Fatalf("XREADGROUP as dead: %v, %v", err, read)
	}

	const claimIdle = 300 * time.Millisecond
	w := newStreamWriter(t, rdb, conn, clickhouse.StreamOptions{Interval: 10 * time.Millisecond, ClaimIdle: claimIdle}, testLogger(t))
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Flush(fctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if took := time.Since(start); took < claimIdle {
		t.Errorf("entries were claimed after %v, before ClaimIdle %v", took, claimIdle)
	}
	checkStored(t, conn, events)
	pending, err := rdb.XPending(ctx, stream, group).Result()
	if err != nil {
		t.Fatalf("XPENDING: %v", err)
	}
	if pending.Count != 0 {
		t.Errorf("pending after the claim = %+v, want none", pending)
	}
}

// smallBuffer is a writer whose stream holds at most 10 events, with
// ClickHouse down (nothing is taken off the stream).
func smallBuffer(t *testing.T, rdb redis.UniversalClient, stream string) *clickhouse.StreamWriter {
	return newStreamWriter(t, rdb, deadConn(t), clickhouse.StreamOptions{Stream: stream, MaxLen: 10, Interval: 10 * time.Millisecond}, slog.New(slog.DiscardHandler))
}

func TestStreamWriterBufferFull(t *testing.T) {
	rdb := redistest.New(t)
	ctx := context.Background()
	w := smallBuffer(t, rdb, "")
	// A new writer (another process) finds the buffer full at its first
	// Write: it reads the count before writing.
	other := smallBuffer(t, rdb, "")
	events := testEvents(12)
	tests := []struct {
		name   string
		writer *clickhouse.StreamWriter
		events []clickhouse.Event
		want   error
	}{
		{"fill to MaxLen", w, events[:10], nil},
		{"one above", w, events[10:11], clickhouse.ErrBufferFull},
		{"two above", w, events[10:12], clickhouse.ErrBufferFull},
		{"another writer", other, events[10:11], clickhouse.ErrBufferFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.writer.Write(ctx, tt.events...); !errors.Is(err, tt.want) {
				t.Errorf("Write(%d events) = %v, want %v", len(tt.events), err, tt.want)
			}
		})
	}
	st, err := w.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Length != 10 {
		t.Errorf("stream length = %d, want 10: a refused Write must write nothing", st.Length)
	}
	if !strings.Contains(clickhouse.ErrBufferFull.Error(), "buffer full") {
		t.Errorf("ErrBufferFull = %q", clickhouse.ErrBufferFull)
	}
	// Once the loop is failing, Close tries once instead of for closeTimeout.
	for deadline := time.Now().Add(10 * time.Second); st.LastError == "" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if st, err = w.Stats(ctx); err != nil {
			t.Fatalf("Stats: %v", err)
		}
	}
	start := time.Now()
	w.Close()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close with ClickHouse down took %v, want one quick attempt", took)
	}
}

// TestStreamWriterBufferFullBound: a Write that starts below MaxLen is
// written whole, so the stream goes over MaxLen by at most that write's
// events, and the next Write is refused; once the stream is emptied
// (deleted here) a count left behind does not refuse writes.
func TestStreamWriterBufferFullBound(t *testing.T) {
	rdb := redistest.New(t)
	ctx := context.Background()
	stream := "herald:test:bound"
	w := smallBuffer(t, rdb, stream)
	events := testEvents(20)
	if err := w.Write(ctx, events[:9]...); err != nil {
		t.Fatalf("9 of 10: %v", err)
	}
	if err := w.Write(ctx, events[9:12]...); err != nil {
		t.Fatalf("3 more from 9 of 10: %v, want them written", err)
	}
	if err := w.Write(ctx, events[12]); !errors.Is(err, clickhouse.ErrBufferFull) {
		t.Fatalf("at 12 of 10: %v, want ErrBufferFull", err)
	}
	st, err := w.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Length != 12 {
		t.Errorf("stream length %d, want 12", st.Length)
	}
	if err := rdb.Del(ctx, stream).Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, events[13]); err != nil {
		t.Errorf("after the stream was deleted (its count left at 12): %v, want it written", err)
	}
}

// TestStreamWriterWriteThen: WriteThen's commands run with its events, in
// their MULTI; a refused write (buffer full) runs neither; a command that
// fails is the caller's error, its events written all the same.
func TestStreamWriterWriteThen(t *testing.T) {
	rdb := redistest.New(t)
	ctx := context.Background()
	w := smallBuffer(t, rdb, "")
	events := testEvents(12)
	set := func(key string) func(context.Context, redis.Pipeliner) []redis.Cmder {
		return func(ctx context.Context, p redis.Pipeliner) []redis.Cmder {
			return []redis.Cmder{p.Set(ctx, key, "1", time.Minute)}
		}
	}
	length := func() int64 {
		st, err := w.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Length
	}
	if err := w.WriteThen(ctx, set("mark1"), events[:2]...); err != nil {
		t.Fatalf("WriteThen: %v", err)
	}
	if n := rdb.Exists(ctx, "mark1").Val(); n != 1 || length() != 2 {
		t.Errorf("after WriteThen: mark1 exists %d, stream length %d; want 1, 2", n, length())
	}
	if err := rdb.Set(ctx, "text", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	incr := func(ctx context.Context, p redis.Pipeliner) []redis.Cmder { return []redis.Cmder{p.Incr(ctx, "text")} }
	if err := w.WriteThen(ctx, incr, events[2:4]...); err == nil || !strings.Contains(err.Error(), "events written, then") {
		t.Errorf("WriteThen with a failing command = %v, want its error", err)
	}
	if n := length(); n != 4 {
		t.Errorf("stream length %d after the failing command, want 4 (its events written)", n)
	}
	if err := w.Write(ctx, events[4:10]...); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteThen(ctx, set("mark2"), events[10:12]...); !errors.Is(err, clickhouse.ErrBufferFull) {
		t.Errorf("WriteThen into a full buffer = %v, want ErrBufferFull", err)
	}
	if n := rdb.Exists(ctx, "mark2").Val(); n != 0 || length() != 10 {
		t.Errorf("after the refused WriteThen: mark2 exists %d, stream length %d; want 0, 10", n, length())
	}
}

// BenchmarkStreamWriterWrite measures Write of single events from parallel
// callers, with the consumer inserting into ClickHouse at the same time.
func BenchmarkStreamWriterWrite(b *testing.B) {
	rdb, conn := redistest.New(b), chtest.New(b)
	w := newStreamWriter(b, rdb, conn, clickhouse.StreamOptions{}, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	events := testEvents(1024)
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := events[next.Add(1)%uint64(len(events))]
			e.DeliveryID = uuid.New()
			if err := w.Write(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := w.Flush(fctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds()), "flush-ms")
}

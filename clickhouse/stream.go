package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/internal/groupcommit"
)

// ErrBufferFull is returned by StreamWriter.Write when the Redis stream
// already holds StreamOptions.MaxLen events that ClickHouse has not taken
// yet. Nothing was written; HTTP callers answer 503 with Retry-After.
var ErrBufferFull = errors.New("clickhouse: event buffer full")

// StreamOptions tune a StreamWriter. Zero values take the stated defaults.
type StreamOptions struct {
	// Stream is the Redis stream key. Default "herald:events".
	Stream string
	// Group is the consumer group shared by every writer process. Default
	// "herald-writers".
	Group string
	// Consumer names this process in the group; it must differ between
	// processes. Default hostname-pid-random.
	Consumer string
	// MaxBatch is the most stream entries read, inserted and acknowledged
	// at once; an entry holds the events of the Write calls that shared
	// one Redis round trip (at most 256 calls). Default 64.
	MaxBatch int
	// Interval is how often the consumer polls the stream when it is idle.
	// Default 50ms.
	Interval time.Duration
	// MinInsert and MaxDelay make inserts large: the consumer holds the
	// entries it read (pending in Redis, so nothing is lost if it dies)
	// until they have MinInsert events or the first of them was read
	// MaxDelay ago, then inserts them at once. ClickHouse pays a fixed cost
	// per insert and per part, so many small inserts cost several times
	// what one large one does (a push's three events cost ClickHouse
	// about 115 CPU-µs in inserts of 1,000 rows, 12 in inserts of 20,000;
	// README, "Send path"). Flush and Close insert at
	// once. Defaults 20,000 and 1s; MaxDelay is at most ClaimIdle/2.
	MinInsert int
	MaxDelay  time.Duration
	// ClaimIdle: entries read by some consumer but not acknowledged for
	// this long (a crashed process, or one that cannot reach ClickHouse)
	// are claimed and inserted by this one. Default 30s.
	ClaimIdle time.Duration
	// MaxLen is the most events the stream holds, inserted or not; a Write
	// that would go above it returns ErrBufferFull. Default 1,000,000.
	MaxLen int64
	// OnInserted, when set, is called with every batch after it is in
	// ClickHouse (the live-update publisher uses it). It must not block long.
	OnInserted func(ctx context.Context, events []Event)
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Stream == "" {
		o.Stream = "herald:events"
	}
	if o.Group == "" {
		o.Group = "herald-writers"
	}
	if o.Consumer == "" {
		o.Consumer = defaultConsumer()
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 64
	}
	if o.Interval <= 0 {
		o.Interval = 50 * time.Millisecond
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	if o.MinInsert <= 0 {
		o.MinInsert = 20_000
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = time.Second
	}
	o.MaxDelay = min(o.MaxDelay, o.ClaimIdle/2)
	if o.MaxLen <= 0 {
		o.MaxLen = 1_000_000
	}
	return o
}

func defaultConsumer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "herald"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

const (
	// maxBackoff caps the wait between retries while ClickHouse or Redis fails.
	maxBackoff = 5 * time.Second
	// closeTimeout bounds the last drain in Close; what is left stays in
	// Redis for the next process to claim.
	closeTimeout = 5 * time.Second
	// insertTimeout bounds one ClickHouse insert.
	insertTimeout = 30 * time.Second
	// redisTimeout bounds one Redis command of the consumer loop.
	redisTimeout = 10 * time.Second
	// entryField holds a stream entry's events (streamcodec.go); field
	// "n" their number.
	entryField = "events"
	// legacyField held the one event of an entry in the JSON format of
	// earlier versions.
	legacyField = "event"
)

// StreamWriter writes events to ClickHouse through a Redis stream, the
// durable buffer between callers and ClickHouse. Write returns once Redis
// has the events, so a caller can acknowledge its own work then even while
// ClickHouse is down; a consumer loop inserts them in batches and
// acknowledges (XACK, then XDEL) the entries only after ClickHouse took
// them. Entries that a process read but never acknowledged (it crashed, or
// it cannot reach ClickHouse) are claimed by any writer of the group after
// ClaimIdle.
//
// Delivery to ClickHouse is at least once: a process that dies between the
// insert and the XACK leaves entries that are inserted again by whoever
// claims them. That is safe because the events table is a ReplacingMergeTree
// whose sorting key is the event's identity, and every query aggregates
// idempotently (FINAL, max, uniqExact), so a repeated insert never changes a
// figure; no second dedup mechanism is kept here.
//
// Stream entry format: one entry per Redis round trip of Writes (see
// writeGroups), with field "n", the number of its events, and field
// "events", the events in the binary encoding of streamcodec.go. The key
// countKey(Stream) counts the events of the entries not yet acknowledged,
// for MaxLen. Entries of the JSON format of earlier versions (field
// "event", one event) are still read. Entries that do not decode are moved
// to the stream "<Stream>:dead" with the error, and acknowledged.
//
// Acknowledged means accepted by Redis: how much survives a Redis crash is
// Redis's persistence setting (appendonly yes, appendfsync everysec loses at
// most about a second).
type StreamWriter struct {
	rdb    redis.UniversalClient
	conn   driver.Conn
	opts   StreamOptions
	logger *slog.Logger

	inserted  atomic.Uint64
	mu        sync.Mutex
	lastError string

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// commit group-commits concurrent Writes (writeGroups).
	commit *groupcommit.Committer[group]
	// full: the stream may hold MaxLen events; the next write reads the
	// count first. True at start, as another process may have filled it.
	full atomic.Bool

	// flushing counts Flush calls in progress: the loop inserts what it
	// holds at once while one waits.
	flushing atomic.Int32

	// Owned by the loop goroutine.
	held        []redis.XMessage // read, not yet inserted (MinInsert, MaxDelay)
	heldEvents  int64
	heldSince   time.Time
	readOwn     bool      // re-read our own pending entries (ID 0) before new ones
	claimCursor string    // XAUTOCLAIM position; "0-0" starts a new scan
	nextClaim   time.Time // when the next XAUTOCLAIM scan starts
}

// NewStreamWriter creates the consumer group (and the stream) if missing and
// starts the consumer loop; Close stops it.
func NewStreamWriter(rdb redis.UniversalClient, conn driver.Conn, o StreamOptions, logger *slog.Logger) (*StreamWriter, error) {
	o = o.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &StreamWriter{
		rdb: rdb, conn: conn, opts: o,
		logger:      logger.With("stream", o.Stream, "consumer", o.Consumer),
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		readOwn:     true, // a restarted process with a fixed Consumer name
		claimCursor: "0-0",
	}
	w.commit = groupcommit.New(maxGroups, w.writeGroups)
	w.full.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := w.createGroup(ctx); err != nil {
		return nil, err
	}
	go w.loop()
	return w, nil
}

// createGroup runs XGROUP CREATE <stream> <group> 0 MKSTREAM. Starting at 0
// makes a new group read what the stream already holds.
func (w *StreamWriter) createGroup(ctx context.Context) error {
	err := w.rdb.XGroupCreateMkStream(ctx, w.opts.Stream, w.opts.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("clickhouse: create consumer group %s on %s: %w", w.opts.Group, w.opts.Stream, err)
	}
	return nil
}

// countScript reads the stream's event count (countKey), resetting it to
// 0 when the stream is empty so that it cannot drift (a stream deleted by
// hand, entries of the JSON format written before the count existed). It
// runs only while the buffer may be full (StreamWriter.full).
//
//	KEYS[1]: the stream
//	KEYS[2]: its event count
var countScript = redis.NewScript(`
if redis.call("XLEN", KEYS[1]) == 0 then
	redis.call("SET", KEYS[2], 0)
	return 0
end
return tonumber(redis.call("GET", KEYS[2]) or "0")
`)

// countKey names the key that counts the events a stream holds. It shares
// the stream's hash slot (Redis Cluster), as the writing and
// acknowledging MULTIs and countScript need.
func countKey(stream string) string {
	if strings.Contains(stream, "{") {
		return stream + ":count" // the stream's own hash tag applies
	}
	return "{" + stream + "}:count"
}

// maxGroups is the most Write calls that share one Redis write.
const maxGroups = 256

// Write appends events to the stream and returns once Redis accepted them:
// that is the acknowledgement point, before the ClickHouse insert. All of
// the events are written or none. It returns ErrBufferFull, writing
// nothing, while the stream holds MaxLen events or more (see full), and
// rejects an event whose Kind the events table does not know (such a row
// would fail every insert of its batch). Concurrent calls are
// group-committed: their events go to Redis in one write, as one entry.
func (w *StreamWriter) Write(ctx context.Context, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	return w.write(ctx, nil, events)
}

// WriteThen is Write with then's Redis commands in the MULTI that writes
// the events, after them: they take effect exactly when the events do (a
// send's final mark, which must never be there without its events). The
// events' stream and then's keys must be on one Redis.
func (w *StreamWriter) WriteThen(ctx context.Context, then func(context.Context, redis.Pipeliner) []redis.Cmder, events ...Event) error {
	if len(events) == 0 {
		return fmt.Errorf("clickhouse: WriteThen without events")
	}
	return w.write(ctx, then, events)
}

func (w *StreamWriter) write(ctx context.Context, then func(context.Context, redis.Pipeliner) []redis.Cmder, events []Event) error {
	select {
	case <-w.stop:
		return fmt.Errorf("clickhouse: stream writer closed")
	default:
	}
	g := group{n: len(events), then: then}
	for _, e := range events {
		if !knownKind(e.Kind) {
			return fmt.Errorf("clickhouse: write event: unknown kind %q", e.Kind)
		}
		g.b = appendEvent(g.b, e)
	}
	return w.commit.Do(ctx, g)
}

// group is one Write call's events, encoded, and WriteThen's commands.
type group struct {
	n    int
	b    []byte
	then func(context.Context, redis.Pipeliner) []redis.Cmder
}

// writeGroups writes the groups of events of several Write calls as one
// stream entry, with the count's INCRBY in the same MULTI (so the count
// is exact: the acknowledging MULTI takes the entry's events off it), and
// returns each call's result. While the buffer may be full (full: at
// start, and once a write's count reached MaxLen) it first reads the count
// (countScript) and refuses every group while it is MaxLen or more. So
// the stream holds at most MaxLen plus one write's events per process.
// (A script did the check and the write at once, which was exact, but Lua
// copies its arguments: 33-78 µs of Redis a write of 2-9 KB, against 9-12
// for the MULTI.)
func (w *StreamWriter) writeGroups(ctx context.Context, groups []group) []error {
	errs := make([]error, len(groups))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	keys := []string{w.opts.Stream, countKey(w.opts.Stream)}
	if w.full.Load() {
		n, err := countScript.Run(rctx, w.rdb, keys).Int64()
		if err != nil {
			return fail(fmt.Errorf("clickhouse: write events to %s: %w", w.opts.Stream, err))
		}
		if n >= w.opts.MaxLen {
			return fail(ErrBufferFull)
		}
		w.full.Store(false)
	}
	total, size := 0, 0
	for _, g := range groups {
		total, size = total+g.n, size+len(g.b)
	}
	b := make([]byte, 0, size)
	for _, g := range groups {
		b = append(b, g.b...)
	}
	var add *redis.StringCmd
	var count *redis.IntCmd
	thens := make([][]redis.Cmder, len(groups))
	_, _ = w.rdb.TxPipelined(rctx, func(p redis.Pipeliner) error {
		add = p.XAdd(rctx, &redis.XAddArgs{Stream: w.opts.Stream, Values: []any{"n", total, "events", b}})
		count = p.IncrBy(rctx, keys[1], int64(total))
		for i, g := range groups {
			if g.then != nil {
				thens[i] = g.then(rctx, p)
			}
		}
		return nil
	})
	// TxPipelined returns the first failed command's error; the events are
	// written when the XADD and INCRBY succeeded, whatever a then did (a
	// failed transaction sets every command's error).
	if err := errors.Join(add.Err(), count.Err()); err != nil {
		return fail(fmt.Errorf("clickhouse: write events to %s: %w", w.opts.Stream, err))
	}
	if count.Val() >= w.opts.MaxLen {
		w.full.Store(true)
	}
	for i, cmds := range thens {
		for _, c := range cmds {
			if err := c.Err(); err != nil && errs[i] == nil {
				errs[i] = fmt.Errorf("clickhouse: events written, then: %w", err)
			}
		}
	}
	return errs
}

// StreamStats describe the stream, for health checks and metrics.
type StreamStats struct {
	// Length counts the events of the entries not yet acknowledged
	// (unread ones and Pending ones).
	Length int64
	// Pending counts entries (each the events of one Redis write) read by
	// some consumer of the group but not yet acknowledged.
	Pending int64
	// OldestAge is the age of the oldest entry not yet acknowledged, by its
	// id's millisecond timestamp and Redis's clock: the writer's lag. Zero
	// when the stream is empty.
	OldestAge time.Duration
	// Inserted counts the events this process inserted into ClickHouse.
	Inserted uint64
	// LastError is the error of the current failure streak of this
	// process's consumer loop; empty after a success.
	LastError string
}

// Stats reads the stream's length, pending count and lag from Redis.
func (w *StreamWriter) Stats(ctx context.Context) (StreamStats, error) {
	var (
		xlen    *redis.IntCmd
		count   *redis.StringCmd
		pending *redis.XPendingCmd
		first   *redis.XMessageSliceCmd
		now     *redis.TimeCmd
	)
	_, _ = w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		xlen = p.XLen(ctx, w.opts.Stream)
		count = p.Get(ctx, countKey(w.opts.Stream))
		pending = p.XPending(ctx, w.opts.Stream, w.opts.Group)
		first = p.XRangeN(ctx, w.opts.Stream, "-", "+", 1)
		now = p.Time(ctx)
		return nil
	})
	for _, c := range []redis.Cmder{xlen, count, pending, first, now} {
		if err := c.Err(); err != nil && !(c == count && errors.Is(err, redis.Nil)) { // a missing count is 0
			return StreamStats{}, fmt.Errorf("clickhouse: event stream stats: %w", err)
		}
	}
	s := StreamStats{Pending: pending.Val().Count, Inserted: w.inserted.Load()}
	if xlen.Val() > 0 {
		s.Length, _ = count.Int64()
	}
	if msgs := first.Val(); len(msgs) > 0 {
		if ms, ok := idMillis(msgs[0].ID); ok {
			if age := now.Val().Sub(time.UnixMilli(ms)); age > 0 {
				s.OldestAge = age
			}
		}
	}
	w.mu.Lock()
	s.LastError = w.lastError
	w.mu.Unlock()
	return s, nil
}

// Flush waits until every event written to the stream before the call (by
// any process) is in ClickHouse: as acknowledged entries are deleted, that
// is when no entry up to the stream's last id is left. It returns ctx's
// error, with the loop's last error, if that takes too long.
func (w *StreamWriter) Flush(ctx context.Context) error {
	last, err := w.rdb.XRevRangeN(ctx, w.opts.Stream, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("clickhouse: flush event stream: %w", err)
	}
	if len(last) == 0 {
		return nil
	}
	w.flushing.Add(1)
	defer w.flushing.Add(-1)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	ticker := time.NewTicker(min(w.opts.Interval, 10*time.Millisecond))
	defer ticker.Stop()
	for {
		left, err := w.rdb.XRangeN(ctx, w.opts.Stream, "-", last[0].ID, 1).Result()
		if err != nil {
			return fmt.Errorf("clickhouse: flush event stream: %w", err)
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			w.mu.Lock()
			lastErr := w.lastError
			w.mu.Unlock()
			if lastErr != "" {
				return fmt.Errorf("clickhouse: flush event stream: %w (last error: %s)", ctx.Err(), lastErr)
			}
			return fmt.Errorf("clickhouse: flush event stream: %w", ctx.Err())
		case <-ticker.C:
		}
	}
}

// Close stops the consumer loop after a last attempt, of at most a few
// seconds, to insert what this process holds and what is unread; what is
// left stays in Redis for the next process. Writes after Close fail.
func (w *StreamWriter) Close() {
	w.closeOnce.Do(func() { close(w.stop) })
	<-w.done
}

func (w *StreamWriter) loop() {
	defer close(w.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-w.stop:
			w.drain(failures > 0)
			return
		case <-timer.C:
		case <-w.wake:
			if failures > 0 {
				continue // keep the backoff; the timer is still armed
			}
			timer.Stop()
		}
		more, err := w.step(context.Background(), true, w.flushing.Load() > 0)
		wait := w.opts.Interval
		switch {
		case err != nil:
			failures++
			w.fail(err, failures)
			wait = backoff(w.opts.Interval, failures)
		case failures > 0:
			w.logger.Info("event stream: inserting again", "failures", failures)
			failures = 0
			w.setLastError("")
		}
		if more && err == nil {
			wait = 0
		}
		timer.Reset(wait)
	}
}

// drain inserts what it can within closeTimeout, without claiming other
// consumers' entries. When the loop was already failing it tries once, so
// that Close does not wait out closeTimeout on a ClickHouse that is down.
func (w *StreamWriter) drain(failing bool) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	failures := 0
	for ctx.Err() == nil {
		more, err := w.step(ctx, false, true)
		if err == nil && !more {
			return
		}
		if err != nil {
			if failing {
				break
			}
			failures++
			if failures == 1 {
				w.logger.Error("event stream: draining at close; retrying", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff(w.opts.Interval, failures)):
			}
		}
	}
	w.logger.Warn("event stream: closed with entries left for the next process")
}

func (w *StreamWriter) fail(err error, failures int) {
	w.setLastError(err.Error())
	if failures == 1 {
		w.logger.Error("event stream: insert failed; events stay in Redis and are retried", "err", err)
	}
}

func (w *StreamWriter) setLastError(s string) {
	w.mu.Lock()
	w.lastError = s
	w.mu.Unlock()
}

// backoff is interval·2^(failures-1), at most maxBackoff.
func backoff(interval time.Duration, failures int) time.Duration {
	d := interval
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// step runs one round of the consumer: this consumer's pending entries
// (ID 0) first, then, if due and claim is set, an XAUTOCLAIM pass over
// entries idle longer than ClaimIdle, then new entries (ID >), which it
// holds until MinInsert or MaxDelay says to insert them, or force does. It
// handles one batch and reports whether more work is likely waiting.
func (w *StreamWriter) step(ctx context.Context, claim, force bool) (more bool, err error) {
	if w.readOwn {
		w.dropHeld() // they are among our pending entries, read again here
		msgs, err := w.read(ctx, "0")
		if err != nil {
			return false, err
		}
		if len(msgs) > 0 {
			return true, w.process(ctx, msgs)
		}
		w.readOwn = false
	}
	if claim && !time.Now().Before(w.nextClaim) {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		msgs, next, err := w.rdb.XAutoClaim(rctx, &redis.XAutoClaimArgs{
			Stream: w.opts.Stream, Group: w.opts.Group, Consumer: w.opts.Consumer,
			MinIdle: w.opts.ClaimIdle, Start: w.claimCursor, Count: int64(w.opts.MaxBatch),
		}).Result()
		cancel()
		if err != nil {
			return false, w.redisError(ctx, "claim idle entries", err)
		}
		w.claimCursor = next
		if next == "0-0" {
			// Scan again after a fraction of ClaimIdle: an entry is then
			// claimed at most ClaimIdle·1.5 after its reader stopped.
			w.nextClaim = time.Now().Add(max(w.opts.ClaimIdle/2, w.opts.Interval))
		}
		if len(msgs) > 0 {
			w.logger.Info("event stream: claimed idle entries", "entries", len(msgs))
			return true, w.process(ctx, msgs)
		}
		if next != "0-0" {
			return true, nil
		}
	}
	msgs, err := w.read(ctx, ">")
	if err != nil {
		return false, err
	}
	full := len(msgs) >= w.opts.MaxBatch
	for _, m := range msgs {
		if len(w.held) == 0 {
			w.heldSince = time.Now()
		}
		w.held = append(w.held, m)
		w.heldEvents += entryEvents(m)
	}
	if len(w.held) == 0 {
		return false, nil
	}
	if !force && w.heldEvents < int64(w.opts.MinInsert) && len(w.held) < 4*w.opts.MaxBatch && time.Since(w.heldSince) < w.opts.MaxDelay {
		return full, nil // read on, or wait for more
	}
	held := w.held
	w.dropHeld()
	return full, w.process(ctx, held)
}

// dropHeld forgets the held entries (inserted, or to be read again).
func (w *StreamWriter) dropHeld() {
	w.held, w.heldEvents = nil, 0
}

// entryEvents is the number of events an entry holds (1 for an entry of
// the JSON format).
func entryEvents(m redis.XMessage) int64 {
	if _, ok := m.Values[legacyField]; ok {
		return 1
	}
	return countedEvents(m)
}

// countedEvents is the number of an entry's events that countKey counts:
// its field "n" (0 for an entry of the JSON format, which predates it).
func countedEvents(m redis.XMessage) int64 {
	n, _ := strconv.ParseInt(fmt.Sprint(m.Values["n"]), 10, 64)
	return n
}

// read runs XREADGROUP GROUP <group> <consumer> COUNT <MaxBatch> STREAMS
// <stream> <id>, without blocking: id ">" gives new entries, "0" this
// consumer's pending ones.
func (w *StreamWriter) read(ctx context.Context, id string) ([]redis.XMessage, error) {
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	streams, err := w.rdb.XReadGroup(rctx, &redis.XReadGroupArgs{
		Group: w.opts.Group, Consumer: w.opts.Consumer,
		Streams: []string{w.opts.Stream, id}, Count: int64(w.opts.MaxBatch), Block: -1,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, w.redisError(ctx, "read", err)
	}
	if len(streams) == 0 {
		return nil, nil
	}
	return streams[0].Messages, nil
}

// redisError recreates the group when the stream or group is gone (a
// FLUSHDB, a deleted key), so the next round works again.
func (w *StreamWriter) redisError(ctx context.Context, what string, err error) error {
	if strings.HasPrefix(err.Error(), "NOGROUP") {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		defer cancel()
		if cerr := w.createGroup(rctx); cerr != nil {
			return cerr
		}
	}
	return fmt.Errorf("clickhouse: event stream %s: %w", what, err)
}

// process inserts the events of msgs into ClickHouse in one batch and only
// then acknowledges and deletes the entries. On failure the entries stay
// pending on this consumer, to be read again (ID 0) or claimed by another.
func (w *StreamWriter) process(ctx context.Context, msgs []redis.XMessage) error {
	ids := make([]string, 0, len(msgs))
	var events []Event
	var dead []redis.XMessage
	var counted int64 // events of msgs that countKey holds
	for _, m := range msgs {
		ids = append(ids, m.ID)
		if m.Values == nil {
			continue // deleted while pending (Redis < 7 reports these): just acknowledge
		}
		counted += countedEvents(m)
		var err error
		before := len(events)
		if events, err = decodeEntry(m, events); err != nil {
			events = events[:before]
			w.logger.Error("event stream: undecodable entry moved to dead-letter stream", "id", m.ID, "err", err)
			vals := map[string]any{"id": m.ID, "error": err.Error()}
			for k, v := range m.Values {
				vals[k] = v
			}
			m.Values = vals
			dead = append(dead, m)
		}
	}
	if len(events) > 0 {
		ictx, cancel := context.WithTimeout(ctx, insertTimeout)
		err := InsertEvents(ictx, w.conn, events)
		cancel()
		if err != nil {
			w.readOwn = true
			return err
		}
		w.inserted.Add(uint64(len(events)))
		if w.opts.OnInserted != nil {
			w.opts.OnInserted(ctx, events)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	for _, m := range dead {
		// Outside the MULTI below: in Redis Cluster the dead-letter key
		// may live on another node. A retry may copy an entry twice.
		if err := w.rdb.XAdd(rctx, &redis.XAddArgs{Stream: w.opts.Stream + ":dead", Values: m.Values}).Err(); err != nil {
			w.readOwn = true
			return fmt.Errorf("clickhouse: event stream dead-letter: %w", err)
		}
	}
	// MULTI so that an entry is never acknowledged yet left in the stream
	// (Flush and OldestAge rely on acknowledged entries being gone), nor
	// its events left counted.
	_, err := w.rdb.TxPipelined(rctx, func(p redis.Pipeliner) error {
		p.XAck(rctx, w.opts.Stream, w.opts.Group, ids...)
		p.XDel(rctx, w.opts.Stream, ids...)
		if counted > 0 {
			p.DecrBy(rctx, countKey(w.opts.Stream), counted)
		}
		return nil
	})
	if err != nil {
		// Inserted but not acknowledged: inserted again later, which the
		// events table absorbs (see StreamWriter).
		w.readOwn = true
		return fmt.Errorf("clickhouse: event stream acknowledge %d entries: %w", len(ids), err)
	}
	return nil
}

// legacyEvent is an event as entries written before the binary encoding
// held it: one JSON object per entry, in field "event", keyed by the
// events table's column names. Entries of that form left in Redis by an
// older Herald are still read.
type legacyEvent struct {
	WorkspaceID     string    `json:"workspace_id"`
	CampaignID      uuid.UUID `json:"campaign_id"`
	DeliveryID      uuid.UUID `json:"delivery_id"`
	Round           uint16    `json:"round"`
	DeviceIndex     uint16    `json:"device_index"`
	Kind            string    `json:"kind"`
	Attempt         uint16    `json:"attempt"`
	StatusCode      uint16    `json:"status_code,omitempty"`
	Reason          string    `json:"reason,omitempty"`
	ProviderID      string    `json:"provider_id,omitempty"`
	Token           string    `json:"token,omitempty"`
	DeliveryCreated time.Time `json:"delivery_created"`
	At              time.Time `json:"at"`
}

// decodeEntry appends the events of a stream entry to out: field "events"
// (streamcodec.go), or a legacy entry's "event".
func decodeEntry(m redis.XMessage, out []Event) ([]Event, error) {
	if s, ok := m.Values[entryField].(string); ok {
		return decodeEvents([]byte(s), out)
	}
	s, ok := m.Values[legacyField].(string)
	if !ok {
		return out, fmt.Errorf("no %q field", entryField)
	}
	var le legacyEvent
	if err := json.Unmarshal([]byte(s), &le); err != nil {
		return out, err
	}
	if !knownKind(le.Kind) {
		return out, fmt.Errorf("unknown kind %q", le.Kind)
	}
	return append(out, Event{
		WorkspaceID: le.WorkspaceID, CampaignID: le.CampaignID, DeliveryID: le.DeliveryID,
		Round: le.Round, DeviceIndex: le.DeviceIndex, Kind: le.Kind, Attempt: le.Attempt,
		StatusCode: le.StatusCode, Reason: le.Reason, ProviderID: le.ProviderID, Token: le.Token,
		DeliveryCreated: le.DeliveryCreated, At: le.At,
	}), nil
}

// knownKind reports whether the events.kind Enum8 has k.
func knownKind(k string) bool {
	_, ok := kindCodes[k]
	return ok
}

// idMillis is the millisecond timestamp of a stream entry id "<ms>-<seq>".
func idMillis(id string) (int64, bool) {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	return n, err == nil
}

// Command analytics measures Herald's analytics queries on a realistic data
// set: it loads millions of device-level events (3,000,000 deliveries over
// 100 campaigns of Zipf-like sizes by default, 1–5 devices each, about 22
// million events) into its own database, then times three reference scans
// of the largest campaign's events, the campaign overview, failures by
// reason, one delivery's status, the analysts' delivery_status view for
// one delivery and the delivery logs (first page and a deep page). It runs
// the timings twice: on delivery_states as the load and background merges
// left it (background merges paused during the pass, -pause-merges), then
// after OPTIMIZE TABLE … FINAL of delivery_states, events and deliveries; each time the
// median of -runs runs, taken round-robin over the queries, with its ratio
// to the identity scan, rows read, the parts, the load average and where
// the CPU went. It needs ClickHouse (bash scripts/services.sh); the
// database is dropped at the end unless -keep, and a kept database is
// reused without loading again (then it is as merged as the earlier run
// left it: -reload loads afresh).
//
//	go run ./bench/analytics -deliveries 3000000 -campaigns 100 -runs 7
package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
)

// config is the command line.
type config struct {
	deliveries int
	campaigns  int
	runs       int
	keep       bool
	reload     bool
	database   string
	addr       string
	batch      int
	inflight   int
	seed       uint64
	pause      bool
}

func main() {
	var c config
	flag.IntVar(&c.deliveries, "deliveries", 3_000_000, "deliveries to load")
	flag.IntVar(&c.campaigns, "campaigns", 100, "campaigns (Zipf-like sizes; the largest holds about a third)")
	flag.IntVar(&c.runs, "runs", 7, "timed runs per query (after one warm-up); the median is reported")
	flag.BoolVar(&c.keep, "keep", false, "keep the database (and reuse it when it already holds this data set)")
	flag.BoolVar(&c.reload, "reload", false, "load afresh even when a kept database holds this data set")
	flag.StringVar(&c.database, "database", "herald_bench_analytics", "database to load into")
	flag.StringVar(&c.addr, "clickhouse", clickhouse.DefaultAddr, "ClickHouse native address")
	flag.IntVar(&c.batch, "batch", 400_000, "rows per insert")
	flag.IntVar(&c.inflight, "inflight", 2, "inserts in flight")
	flag.BoolVar(&c.pause, "pause-merges", true, "pause background merges of delivery_states, events and deliveries during the as-loaded pass (SYSTEM STOP MERGES), so that every run reads the same parts and no merge shares the cores with the timings")
	flag.Uint64Var(&c.seed, "seed", 1, "random seed of the generated data")
	flag.Parse()
	if c.deliveries <= 0 || c.campaigns <= 0 || c.runs <= 0 || c.batch <= 0 || c.inflight <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -deliveries, -campaigns, -runs, -batch and -inflight must be positive")
		os.Exit(2)
	}
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const workspace = "ws_bench_analytics"

// markerTable records a finished load, so -keep can reuse the database.
const (
	createMarker = `CREATE TABLE IF NOT EXISTS bench_loaded (deliveries UInt64, campaigns UInt32, seed UInt64, largest UUID, from_at DateTime, to_at DateTime) ENGINE = TinyLog`
	insertMarker = `INSERT INTO bench_loaded (deliveries, campaigns, seed, largest, from_at, to_at)`
	selectMarker = `SELECT largest, from_at, to_at FROM bench_loaded WHERE deliveries = ? AND campaigns = ? AND seed = ? LIMIT 1`
)

func run(ctx context.Context, c config) error {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := clickhouse.Options{Addr: c.addr, Database: c.database, MaxOpenConns: c.inflight + 2}
	conn, err := clickhouse.Open(ctx, opts)
	if err != nil {
		return err
	}
	defer conn.Close()

	var l loaded
	var found bool
	l.largest, l.from, l.to, found, err = loadedMarker(ctx, conn, c)
	if err != nil {
		return err
	}
	fresh := !c.keep || !found || c.reload
	if fresh {
		// Start from an empty database: a kept one may hold a partial or different load.
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+c.database+"`"); err != nil {
			return fmt.Errorf("drop database: %w", err)
		}
		conn.Close()
		if conn, err = clickhouse.Open(ctx, opts); err != nil {
			return err
		}
		defer conn.Close()
		if err := clickhouse.Migrate(ctx, conn, clickhouse.NewMemoryLocker(), logger); err != nil {
			return err
		}
		t0 := time.Now()
		if l, err = load(ctx, conn, c); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "loaded in %s\n", time.Since(t0).Round(100*time.Millisecond))
		if err := conn.Exec(ctx, createMarker); err != nil {
			return fmt.Errorf("create marker: %w", err)
		}
		b, err := conn.PrepareBatch(ctx, insertMarker)
		if err != nil {
			return fmt.Errorf("prepare marker: %w", err)
		}
		if err := b.Append(uint64(c.deliveries), uint32(c.campaigns), c.seed, l.largest, l.from, l.to); err != nil {
			return fmt.Errorf("append marker: %w", err)
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert marker: %w", err)
		}
	} else {
		fmt.Fprintf(os.Stderr, "reusing the data in %s\n", c.database)
		// Newer migrations apply to the kept data as to a user's.
		if err := clickhouse.Migrate(ctx, conn, clickhouse.NewMemoryLocker(), logger); err != nil {
			return err
		}
	}
	if !c.keep {
		defer func() {
			if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+c.database+"`"); err != nil {
				fmt.Fprintln(os.Stderr, "bench: drop database:", err)
			}
		}()
	}
	return measure(ctx, conn, c, l, fresh)
}

func loadedMarker(ctx context.Context, conn driver.Conn, c config) (largest uuid.UUID, from, to time.Time, found bool, err error) {
	var n uint64
	if err = conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'bench_loaded'", c.database).Scan(&n); err != nil {
		return largest, from, to, false, fmt.Errorf("look for marker: %w", err)
	}
	if n == 0 {
		return largest, from, to, false, nil
	}
	err = conn.QueryRow(ctx, selectMarker, uint64(c.deliveries), uint32(c.campaigns), c.seed).Scan(&largest, &from, &to)
	if errors.Is(err, sql.ErrNoRows) {
		return largest, from, to, false, nil // a different data set: load again
	}
	if err != nil {
		return largest, from, to, false, fmt.Errorf("read marker: %w", err)
	}
	return largest, from, to, true, nil
}

// ---- the generator ----

// Enum8 values of the schema.
const (
	kindTargeted      int8 = 1
	kindAttempt       int8 = 2
	kindSent          int8 = 3
	kindBounced       int8 = 4
	kindFailed        int8 = 5
	kindSuppressed    int8 = 6
	kindDelivered     int8 = 7
	kindOpened        int8 = 8
	kindConverted     int8 = 9
	kindPresendFailed int8 = 10

	audienceAll  int8 = 1
	audienceLast int8 = 2
)

// Reasons as the worker records them.
var (
	presendReasons = []string{
		"Liquid error: variable is missing: customer.first_name",
		"Customer doesn't exist",
		"Customer is unsubscribed",
		"Credentials not found",
		"Customer has no devices",
	}
	transientReasons = []string{"ServiceUnavailable", "TooManyRequests", "InternalServerError", "context deadline exceeded"}
	permanentReasons = []string{"PayloadTooLarge", "InvalidProviderToken", "BadTopic"}
	exhaustedReason  = "retries exhausted after 11 attempts: ServiceUnavailable"
	bounceReasons    = []string{"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"}
	bounceCodes      = []uint16{400, 410, 400}
	transientCodes   = []uint16{503, 429, 500, 0}
	permanentCodes   = []uint16{413, 403, 400}
)

// loaded is what the measurements need from the load.
type loaded struct {
	largest  uuid.UUID
	from, to time.Time // the largest campaign's creation range, [from, to)
	rows     int64     // rows inserted (deliveries and events; the views' rows not counted)
	seconds  float64   // how long the inserts took
}

// batchSink is one table's column buffers; send inserts them in one batch.
type batchSink interface {
	len() int
	send(ctx context.Context, conn driver.Conn) error
	reset()
}

// deliveryBuf holds deliveries; created_at is not written: ClickHouse
// derives it from the UUIDv7 id.
type deliveryBuf struct {
	ws                    []string
	id, campaign, message []uuid.UUID
	person                []string
	audience              []int8
	token, data           []string
	overrides             []string
}

func (b *deliveryBuf) len() int { return len(b.id) }
func (b *deliveryBuf) reset() {
	b.ws, b.id, b.campaign, b.message = b.ws[:0], b.id[:0], b.campaign[:0], b.message[:0]
	b.person, b.audience, b.token, b.data = b.person[:0], b.audience[:0], b.token[:0], b.data[:0]
	b.overrides = b.overrides[:0]
}
func (b *deliveryBuf) send(ctx context.Context, conn driver.Conn) error {
	return sendColumns(ctx, conn, "INSERT INTO deliveries (workspace_id, id, campaign_id, message_id, person_id, audience, token, data, overrides)",
		b.ws, b.id, b.campaign, b.message, b.person, b.audience, b.token, b.data, b.overrides)
}

// eventBuf holds events as the worker writes them; delivery_created is
// not written: ClickHouse derives it from the delivery id.
type eventBuf struct {
	ws               []string
	campaign, deliv  []uuid.UUID
	round            []uint16
	index            []uint16
	kind             []int8
	attempt, status  []uint16
	reason, provider []string
	token            []string
	at               []time.Time
}

func (b *eventBuf) len() int { return len(b.deliv) }
func (b *eventBuf) reset() {
	b.ws, b.campaign, b.deliv, b.round, b.index = b.ws[:0], b.campaign[:0], b.deliv[:0], b.round[:0], b.index[:0]
	b.kind, b.attempt, b.status, b.reason, b.provider = b.kind[:0], b.attempt[:0], b.status[:0], b.reason[:0], b.provider[:0]
	b.token, b.at = b.token[:0], b.at[:0]
}
func (b *eventBuf) send(ctx context.Context, conn driver.Conn) error {
	return sendColumns(ctx, conn, "INSERT INTO events (workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt, status_code, reason, provider_id, token, at)",
		b.ws, b.campaign, b.deliv, b.round, b.index, b.kind, b.attempt, b.status, b.reason, b.provider, b.token, b.at)
}

// add appends one event of round 0; at is in microseconds.
func (b *eventBuf) add(camp, deliv uuid.UUID, idx uint16, kind int8, attempt, status uint16, reason, provider, token string, atUS uint64) {
	b.ws = append(b.ws, workspace)
	b.campaign = append(b.campaign, camp)
	b.deliv = append(b.deliv, deliv)
	b.round = append(b.round, 0)
	b.index = append(b.index, idx)
	b.kind = append(b.kind, kind)
	b.attempt = append(b.attempt, attempt)
	b.status = append(b.status, status)
	b.reason = append(b.reason, reason)
	b.provider = append(b.provider, provider)
	b.token = append(b.token, token)
	b.at = append(b.at, time.UnixMicro(int64(atUS)).UTC())
}

// sendColumns inserts whole columns (columnar appends: no per-row reflection).
func sendColumns(ctx context.Context, conn driver.Conn, stmt string, cols ...any) error {
	batch, err := conn.PrepareBatch(ctx, stmt)
	if err != nil {
		return fmt.Errorf("prepare %q: %w", stmt[:30], err)
	}
	defer batch.Close()
	for i, col := range cols {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("append column %d of %q: %w", i, stmt[:30], err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %q: %w", stmt[:30], err)
	}
	return nil
}

// pools hands out column buffers and counts the rows inserted per table.
type pools struct {
	free    [nStreams]chan batchSink
	rows    [nStreams]atomic.Int64
	todo    chan sinkJob
	errOnce sync.Once
	err     error
	failed  chan struct{}
	wg      sync.WaitGroup
}

type sinkJob struct {
	table int
	buf   batchSink
}

// The insert streams. Events go in three, as they reach a real Herald at
// different times: the worker's (targeted to the final outcome) at once, the
// apps' delivered reports later, opens and conversions later still. So a
// delivery's events land in different inserts, and delivery_states holds
// several rows of it until merges fold them, as a live one does.
const (
	tDeliveries = iota
	tEvents
	tReports
	tOpens
	nStreams
)

func newPools(ctx context.Context, conn driver.Conn, inflight, batch int) *pools {
	p := &pools{todo: make(chan sinkJob), failed: make(chan struct{})}
	for t := range p.free {
		p.free[t] = make(chan batchSink, inflight+1)
		for i := 0; i < inflight+1; i++ {
			p.free[t] <- newBuf(t, batch)
		}
	}
	for i := 0; i < inflight; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.todo {
				n := j.buf.len()
				if err := j.buf.send(ctx, conn); err != nil {
					p.errOnce.Do(func() { p.err = err; close(p.failed) })
				}
				p.rows[j.table].Add(int64(n))
				j.buf.reset()
				p.free[j.table] <- j.buf
			}
		}()
	}
	return p
}

func newBuf(t, n int) batchSink {
	switch t {
	case tDeliveries:
		return &deliveryBuf{ws: make([]string, 0, n), id: make([]uuid.UUID, 0, n), campaign: make([]uuid.UUID, 0, n),
			message: make([]uuid.UUID, 0, n), person: make([]string, 0, n), audience: make([]int8, 0, n),
			token: make([]string, 0, n), data: make([]string, 0, n), overrides: make([]string, 0, n)}
	default:
		m := n + 64 // one delivery's events may overshoot the flush size
		return &eventBuf{ws: make([]string, 0, m), campaign: make([]uuid.UUID, 0, m), deliv: make([]uuid.UUID, 0, m),
			round: make([]uint16, 0, m), index: make([]uint16, 0, m), kind: make([]int8, 0, m),
			attempt: make([]uint16, 0, m), status: make([]uint16, 0, m), reason: make([]string, 0, m),
			provider: make([]string, 0, m), token: make([]string, 0, m), at: make([]time.Time, 0, m)}
	}
}

// take returns an empty buffer of table t, or the first insert error.
func (p *pools) take(t int) (batchSink, error) {
	select {
	case b := <-p.free[t]:
		return b, nil
	case <-p.failed:
		return nil, p.err
	}
}

// flush queues a buffer for insertion.
func (p *pools) flush(t int, b batchSink) error {
	select {
	case p.todo <- sinkJob{table: t, buf: b}:
		return nil
	case <-p.failed:
		return p.err
	}
}

// close waits for the queued inserts.
func (p *pools) close() error {
	close(p.todo)
	p.wg.Wait()
	return p.err
}

// zipfWeights returns cumulative campaign weights ∝ 1/rank^1.3, which puts
// about a third of the deliveries in the largest of 100 campaigns.
func zipfWeights(n int) []float64 {
	cum := make([]float64, n)
	sum := 0.0
	for k := 0; k < n; k++ {
		sum += 1 / math.Pow(float64(k+1), 1.3)
		cum[k] = sum
	}
	for k := range cum {
		cum[k] /= sum
	}
	return cum
}

// uuidV7 makes a version 7 UUID for the millisecond ms from r, as the
// deliveries' ids are (the creation time is read back from the id).
func uuidV7(r *rand.Rand, ms int64) uuid.UUID {
	var u uuid.UUID
	a, b := r.Uint64(), r.Uint64()
	for j := 0; j < 6; j++ {
		u[j] = byte(uint64(ms) >> (40 - 8*j))
	}
	u[6] = 0x70 | byte(a)&0x0f
	u[7] = byte(a >> 8)
	u[8] = 0x80 | byte(a>>16)&0x3f
	for j := 9; j < 16; j++ {
		u[j] = byte(b >> (8 * (j - 9)))
	}
	return u
}

func randomUUID(r *rand.Rand) uuid.UUID {
	var u uuid.UUID
	a, b := r.Uint64(), r.Uint64()
	for j := 0; j < 8; j++ {
		u[j], u[8+j] = byte(a>>(8*j)), byte(b>>(8*j))
	}
	u[6] = 0x40 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u
}

func load(ctx context.Context, conn driver.Conn, c config) (loaded, error) {
	r := rand.New(rand.NewPCG(c.seed, 0x9e3779b97f4a7c15))
	now := time.Now().UTC().Truncate(time.Hour)
	start := now.Add(-30 * 24 * time.Hour)
	spanMS := int64(30 * 24 * time.Hour / time.Millisecond)

	// Pools: tokens recur across deliveries (a person's devices get many
	// pushes); 70% of tokens belong to apps with the SDK, which report
	// delivered and opened.
	const nTokens = 1 << 20
	const nPersons = 1_000_000
	reported := make([]bool, nTokens) // tokens that reported delivered so far
	fmt.Fprintf(os.Stderr, "generating pools (%d tokens, %d persons)…\n", nTokens, nPersons)
	tokens := make([]string, nTokens)
	raw := make([]byte, 32)
	for i := range tokens {
		for j := 0; j < 32; j += 8 {
			v := r.Uint64()
			for k := 0; k < 8; k++ {
				raw[j+k] = byte(v >> (8 * k))
			}
		}
		tokens[i] = hex.EncodeToString(raw)
	}
	persons := make([]string, nPersons)
	for i := range persons {
		persons[i] = "person-" + strconv.Itoa(i)
	}
	providerIDs := make([]string, 1<<16)
	for i := range providerIDs {
		providerIDs[i] = randomUUID(r).String()
	}

	camps := make([]uuid.UUID, c.campaigns)
	msgs := make([]uuid.UUID, c.campaigns)
	for i := range camps {
		camps[i], msgs[i] = randomUUID(r), randomUUID(r)
	}
	if err := insertCampaigns(ctx, conn, camps, msgs, start); err != nil {
		return loaded{}, err
	}
	cum := zipfWeights(c.campaigns)

	p := newPools(ctx, conn, c.inflight, c.batch)
	var bufs [nStreams]batchSink
	for t := range bufs {
		b, err := p.take(t)
		if err != nil {
			return loaded{}, err
		}
		bufs[t] = b
	}
	db, ev := bufs[tDeliveries].(*deliveryBuf), bufs[tEvents].(*eventBuf)
	rp, op := bufs[tReports].(*eventBuf), bufs[tOpens].(*eventBuf)
	eventRows := func() int64 { return p.rows[tEvents].Load() + p.rows[tReports].Load() + p.rows[tOpens].Load() }

	t0 := time.Now()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-tick.C:
				el := time.Since(t0).Seconds()
				d, e := p.rows[tDeliveries].Load(), eventRows()
				fmt.Fprintf(os.Stderr, "  %5.0fs: %d deliveries, %d events inserted (%.0f rows/s)\n",
					el, d, e, float64(d+e)/el)
			}
		}
	}()
	defer func() {
		select {
		case <-stopProgress:
		default:
			close(stopProgress)
		}
		<-progressDone
	}()

	var out loaded
	out.largest = camps[0]
	var lo, hi int64 = math.MaxInt64, 0
	flushIf := func(t int, min int) error {
		if bufs[t].len() < min {
			return nil
		}
		if err := p.flush(t, bufs[t]); err != nil {
			return err
		}
		b, err := p.take(t)
		if err != nil {
			return err
		}
		bufs[t] = b
		switch t {
		case tDeliveries:
			db = b.(*deliveryBuf)
		case tEvents:
			ev = b.(*eventBuf)
		case tReports:
			rp = b.(*eventBuf)
		default:
			op = b.(*eventBuf)
		}
		return nil
	}

	fmt.Fprintf(os.Stderr, "loading %d deliveries in %d campaigns into %s…\n", c.deliveries, c.campaigns, c.database)
	for i := 0; i < c.deliveries; i++ {
		ci := sort.SearchFloat64s(cum, r.Float64())
		if ci >= len(camps) {
			ci = len(camps) - 1
		}
		camp := camps[ci]
		ms := start.UnixMilli() + r.Int64N(spanMS)
		id := uuidV7(r, ms)
		us := uint64(ms) * 1000
		if ci == 0 {
			lo, hi = min(lo, ms), max(hi, ms)
		}
		aud := audienceAll
		if r.IntN(10) == 0 {
			aud = audienceLast
		}
		db.ws = append(db.ws, workspace)
		db.id = append(db.id, id)
		db.campaign = append(db.campaign, camp)
		db.message = append(db.message, msgs[ci])
		db.person = append(db.person, persons[r.IntN(nPersons)])
		db.audience = append(db.audience, aud)
		db.token = append(db.token, "")
		db.data = append(db.data, "{}")
		db.overrides = append(db.overrides, "")

		if r.IntN(100) < 3 { // pre-send failure: no devices
			ev.add(camp, id, clickhouse.DeliveryLevel, kindPresendFailed, 0, 0, presendReasons[r.IntN(len(presendReasons))], "", "", us+20_000)
		} else {
			n := 1
			if aud == audienceAll {
				switch x := r.IntN(100); {
				case x < 45:
					n = 1
				case x < 70:
					n = 2
				case x < 85:
					n = 3
				case x < 95:
					n = 4
				default:
					n = 5
				}
			}
			base := r.IntN(nTokens)
			anySent := false
			for j := 0; j < n; j++ {
				ti := (base + j*7919) % nTokens
				tok := tokens[ti]
				plat := "IOS"
				if ti&1 == 1 {
					plat = "ANDROID"
				}
				idx := uint16(j)
				// As the worker writes it: the token and platform ride on
				// the targeted event, status code 1 when the token had
				// reported a metric before; a final attempt is one row,
				// its outcome with the attempt number (0007).
				var known uint16
				if reported[ti] {
					known = 1
				}
				at := us + 50_000
				ev.add(camp, id, idx, kindTargeted, 0, known, "", plat, tok, at)
				switch x := r.IntN(1000); {
				case x < 30: // suppressed before sending
					ev.add(camp, id, idx, kindSuppressed, 0, 0, "device is suppressed", "", "", at)
				case x < 60: // still pending: a transient error, retries in flight
					for a := 1; a <= 1+r.IntN(3); a++ {
						at += uint64(1+a*a) * 1_000_000
						k := r.IntN(len(transientReasons))
						ev.add(camp, id, idx, kindAttempt, uint16(a), transientCodes[k], transientReasons[k], "", "", at)
					}
				case x < 110: // bounced
					at += 150_000
					k := r.IntN(len(bounceReasons))
					ev.add(camp, id, idx, kindBounced, 1, bounceCodes[k], bounceReasons[k], "", "", at)
				case x < 140: // permanent failure
					at += 150_000
					k := r.IntN(len(permanentReasons))
					ev.add(camp, id, idx, kindFailed, 1, permanentCodes[k], permanentReasons[k], "", "", at)
				case x < 150: // ten retries exhausted
					for a := 1; a <= 10; a++ {
						at += uint64(a*a) * 1_000_000
						ev.add(camp, id, idx, kindAttempt, uint16(a), 503, "ServiceUnavailable", "", "", at)
					}
					at += 121 * 1_000_000
					ev.add(camp, id, idx, kindFailed, 11, 503, exhaustedReason, "", "", at)
				default: // sent, sometimes after transient errors
					a := 1
					if r.IntN(10) == 0 {
						for ; a <= 1+r.IntN(2); a++ {
							at += uint64(1+a*a) * 1_000_000
							k := r.IntN(len(transientReasons))
							ev.add(camp, id, idx, kindAttempt, uint16(a), transientCodes[k], transientReasons[k], "", "", at)
						}
					}
					at += 150_000
					pid := providerIDs[r.IntN(len(providerIDs))]
					ev.add(camp, id, idx, kindSent, uint16(a), 200, "", pid, "", at)
					anySent = true
					// Apps with the SDK (70% of tokens) report delivered
					// (most) and opened (some).
					if ti%10 < 7 && r.IntN(100) < 85 {
						at += uint64(1+r.IntN(600)) * 1_000_000
						rp.add(camp, id, idx, kindDelivered, 0, 0, "", "", tok, at)
						reported[ti] = true
						if r.IntN(100) < 20 {
							at += uint64(1+r.IntN(7200)) * 1_000_000
							op.add(camp, id, idx, kindOpened, 0, 0, "", "", tok, at)
						}
					}
				}
			}
			if anySent && r.IntN(100) < 4 {
				at := us + uint64(1+r.IntN(72*3600))*1_000_000
				op.add(camp, id, clickhouse.DeliveryLevel, kindConverted, 0, 0, "purchase", "", "", at)
			}
		}
		if err := flushIf(tDeliveries, c.batch); err != nil {
			return out, err
		}
		for _, t := range []int{tEvents, tReports, tOpens} {
			if err := flushIf(t, c.batch); err != nil {
				return out, err
			}
		}
	}
	for t := range bufs {
		if err := flushIf(t, 1); err != nil {
			return out, err
		}
	}
	if err := p.close(); err != nil {
		return out, err
	}
	close(stopProgress)
	el := time.Since(t0).Seconds()
	d, e := p.rows[tDeliveries].Load(), eventRows()
	fmt.Fprintf(os.Stderr, "  done: %d deliveries, %d events in %.1fs (%.0f rows/s)\n", d, e, el, float64(d+e)/el)
	out.rows, out.seconds = d+e, el
	// Whole seconds: the marker stores DateTime.
	out.from = time.Unix(lo/1000, 0).UTC()
	out.to = time.Unix(hi/1000+1, 0).UTC()
	return out, nil
}

func insertCampaigns(ctx context.Context, conn driver.Conn, camps, msgs []uuid.UUID, at time.Time) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO campaigns (workspace_id, id, name, goal_event, goal_window_hours, created_at)")
	if err != nil {
		return fmt.Errorf("prepare campaigns: %w", err)
	}
	defer b.Close()
	for i, id := range camps {
		if err := b.Append(workspace, id, "campaign "+strconv.Itoa(i), "purchase", uint32(168), at); err != nil {
			return fmt.Errorf("append campaign: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert campaigns: %w", err)
	}
	m, err := conn.PrepareBatch(ctx, "INSERT INTO push_messages (workspace_id, id, campaign_id, name, title, body, link, image, sound, badge, data, created_at)")
	if err != nil {
		return fmt.Errorf("prepare messages: %w", err)
	}
	defer m.Close()
	for i, id := range msgs {
		if err := m.Append(workspace, id, camps[i], "message "+strconv.Itoa(i), "Hello {{ customer.first_name | default: \"there\" }}",
			"We have news", "", "", "default", int32(-1), "{}", at); err != nil {
			return fmt.Errorf("append message: %w", err)
		}
	}
	if err := m.Send(); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	return nil
}

// ---- the measurements ----

// query is one timed statement or screen; run returns a note on its result.
type query struct {
	name   string
	run    func(ctx context.Context) (string, error)
	target string // what the issue asks of it, "" for none
}

// timing is one query's figures over one pass.
type timing struct {
	query
	median time.Duration
	read   uint64        // rows the server read in the last run (progress packets)
	plan   time.Duration // the server's planning, the median over the runs (planningEvents)
	note   string
}

// planningEvents are the profile events that time a statement's way to
// its first row read: parsing, analysis, building and optimizing the plan,
// building the pipeline (index analysis is in the pipeline build). For a
// plain statement, as the point reads are, their sum is its fixed cost,
// whatever it reads. Over views the timers nest: analysing
// delivery_status_in over an empty range timed 103-188 ms of a 102-127 ms
// statement (2026-12-07), so there the sum is no planning figure.
var planningEvents = map[string]bool{
	"QueryParseMicroseconds": true, "QueryAnalysisMicroseconds": true, "QueryPlanBuildMicroseconds": true,
	"QueryPlanOptimizeMicroseconds": true, "QueryPipelineBuildMicroseconds": true,
}

// The three reference scans of the largest campaign's events; ratios are to
// identityScan, which reads the columns any status computation needs.
const (
	countSQL    = `SELECT count() FROM events WHERE workspace_id = ? AND campaign_id = ?`
	oneColumn   = `SELECT countIf(kind = 'sent') FROM events WHERE workspace_id = ? AND campaign_id = ?`
	identitySQL = `SELECT max(delivery_id), max(round), max(device_index), max(kind) FROM events WHERE workspace_id = ? AND campaign_id = ?`
	// analystSQL is the README's ad-hoc status of one delivery.
	analystSQL = `SELECT toString(status), n_dev FROM delivery_status WHERE delivery_id = ?`
	// planningSQL asks delivery_status_in for statusRowSQL's columns over a
	// millisecond without deliveries: what any use of the view costs before
	// it reads a row.
	planningSQL = `SELECT toString(status), failure_reason, n_dev, n_attempted, r
FROM delivery_status_in(workspace = ?, campaign = ?, from = '1971-01-01 00:00:00.000', to = '1971-01-01 00:00:00.001')`
)

// Query names the tables refer to.
const (
	qCount    = "(a) count() of the campaign's events"
	qOneCol   = "(b) one-column scan: countIf(kind = 'sent')"
	qIdentity = "(c) identity scan: max(delivery_id, round, device_index, kind) — THE bare scan"
	qOverview = "overview, every hour computed (Day)"
	qDelivery = "one delivery's status (Delivery + Status)"
	qRow      = "Delivery only (the deliveries row)"
	qStatus   = "Status only"
	qAnalyst  = "analyst: delivery_status WHERE delivery_id = ?"
	qPlanning = "floor: delivery_status_in over an empty range (0 rows: planning)"
	qPing     = "floor: SELECT 1 (a round trip)"
	qFirst    = "delivery logs, first page (50)"
	qPage51   = "delivery logs, page 51 (from a cursor)"
)

// old is the README's table for ClickHouse 18.16 (2 cores, a quiet machine;
// 7.0M events, 970k deliveries in the largest campaign): median ms and the
// ratio to its bare scan, a count() that read every row there.
var old = []struct {
	name, ms, ratio, now string
}{
	{"bare scan (count())", "73.6", "1.00×", qCount},
	{"overview, every hour computed", "636", "8.63×", qOverview},
	{"overview, stored hours (cache, gone)", "76.6", "1.04×", ""},
	{"overview, one hour changed (cache, gone)", "112", "1.52×", ""},
	{"failures by reason (part of the overview since migration 0005)", "289", "3.93×", ""},
	{"one delivery's status", "82.6", "1.12×", qDelivery},
	{"delivery logs, first page (50)", "65.4", "0.89×", qFirst},
	{"delivery logs, page 51 (from a cursor)", "101", "1.37×", qPage51},
}

// usage is a reading of the CPU counters that the passes report.
type usage struct {
	at           time.Time
	load         string  // /proc/loadavg: 1, 5 and 15 minutes
	busy, total  float64 // machine CPU seconds from /proc/stat (USER_HZ 100)
	server, self time.Duration
}

func readUsage(ctx context.Context, conn driver.Conn) (usage, error) {
	u := usage{at: time.Now()}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			u.load = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			if i < 8 {
				u.total += x / 100
				if i != 3 && i != 4 {
					u.busy += x / 100
				}
			}
		}
	}
	var us uint64
	if err := conn.QueryRow(ctx, `SELECT sumIf(value, event IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds')) FROM system.events`).Scan(&us); err != nil {
		return u, fmt.Errorf("server CPU: %w", err)
	}
	u.server = time.Duration(us) * time.Microsecond
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return u, nil
}

// cpuLine says where the CPU went between two readings.
func cpuLine(a, b usage) string {
	wall := b.at.Sub(a.at).Seconds()
	busy := b.busy - a.busy
	server, self := (b.server - a.server).Seconds(), (b.self - a.self).Seconds()
	return fmt.Sprintf("%.0f s wall; CPU-s: machine %.1f of %.1f (/proc/stat), ClickHouse server %.1f (system.events, all its queries and merges), this process %.1f, the rest ≈ %.1f; load average %s → %s",
		wall, busy, b.total-a.total, server, self, busy-server-self, a.load, b.load)
}

// timedTables are the tables the timed reads read: the passes report their
// parts, the as-loaded pass pauses their merges and the merged pass
// optimizes them.
var timedTables = []string{"delivery_states", "events", "deliveries"}

// partsLine counts the active parts (and rows) of timedTables.
func partsLine(ctx context.Context, conn driver.Conn) (string, error) {
	rows, err := conn.Query(ctx, `SELECT table, count(), uniqExact(partition), sum(rows) FROM system.parts
WHERE database = currentDatabase() AND active AND table IN ?
GROUP BY table ORDER BY table`, timedTables)
	if err != nil {
		return "", fmt.Errorf("parts: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var table string
		var parts, partitions, n uint64
		if err := rows.Scan(&table, &parts, &partitions, &n); err != nil {
			return "", fmt.Errorf("scan parts: %w", err)
		}
		out = append(out, fmt.Sprintf("%s %d active parts in %d partitions (%d rows)", table, parts, partitions, n))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("parts: %w", err)
	}
	var merges uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM system.merges WHERE database = currentDatabase()`).Scan(&merges); err != nil {
		return "", fmt.Errorf("merges: %w", err)
	}
	return strings.Join(out, "; ") + fmt.Sprintf("; %d merges running", merges), nil
}

// pass is one set of timed runs and what surrounded it.
type pass struct {
	label          string
	partsBefore    string
	partsAfter     string
	states         uint64 // delivery_states rows
	bloom          string // the granules the bloom filter kept for the analyst query
	cpu            string
	timings        []timing
	identity, oneC time.Duration
}

func measure(ctx context.Context, conn driver.Conn, c config, l loaded, fresh bool) error {
	store := clickhouse.NewStore(conn)
	largest, from, to := l.largest, l.from, l.to
	start, err := readUsage(ctx, conn)
	if err != nil {
		return err
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	var nDeliveries, nDevices, nEvents, nLargest, nLargestEvents uint64
	for _, q := range []struct {
		dst  *uint64
		sql  string
		args []any
	}{
		{&nDeliveries, "SELECT count() FROM deliveries WHERE workspace_id = ?", []any{workspace}},
		{&nDevices, "SELECT count() FROM events WHERE workspace_id = ? AND kind = 'targeted'", []any{workspace}},
		{&nEvents, "SELECT count() FROM events WHERE workspace_id = ?", []any{workspace}},
		{&nLargest, "SELECT count() FROM deliveries WHERE workspace_id = ? AND campaign_id = ?", []any{workspace, largest}},
		{&nLargestEvents, countSQL, []any{workspace, largest}},
	} {
		if err := conn.QueryRow(ctx, q.sql, q.args...).Scan(q.dst); err != nil {
			return fmt.Errorf("count (%s): %w", q.sql, err)
		}
	}
	// A delivery of the largest campaign with three devices or more, from the
	// middle of its range.
	var sample uuid.UUID
	if err := conn.QueryRow(ctx, `SELECT delivery_id FROM events
WHERE workspace_id = ? AND campaign_id = ? AND delivery_created >= ? AND kind = 'targeted' AND device_index = 2
ORDER BY delivery_created, delivery_id LIMIT 1`, workspace, largest, from.Add(to.Sub(from)/2)).Scan(&sample); err != nil {
		return fmt.Errorf("pick a delivery: %w", err)
	}
	sampleDelivery, err := store.Delivery(ctx, workspace, sample)
	if err != nil {
		return err
	}

	var lastRead atomic.Uint64
	var lastPlan atomic.Int64 // microseconds
	qctx := ch.Context(ctx, ch.WithProgress(func(p *ch.Progress) { lastRead.Add(p.Rows) }),
		ch.WithProfileEvents(func(evs []ch.ProfileEvent) {
			for _, e := range evs {
				if e.Type == "increment" && planningEvents[e.Name] {
					lastPlan.Add(e.Value)
				}
			}
		}))
	scan := func(sql string) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			rows, err := conn.Query(ctx, sql, workspace, largest)
			if err != nil {
				return "", err
			}
			defer rows.Close()
			for rows.Next() {
			}
			return "", rows.Err()
		}
	}
	var ov clickhouse.Overview
	filter := clickhouse.LogFilter{CampaignID: largest}
	fmt.Fprintln(os.Stderr, "following the delivery logs 50 pages deep…")
	var cur *clickhouse.LogCursor
	for i := 0; i < 50; i++ {
		rows, next, err := store.DeliveryLogs(ctx, workspace, filter, 50, cur)
		if err != nil {
			return fmt.Errorf("delivery logs page %d: %w", i+1, err)
		}
		if next == nil {
			return fmt.Errorf("delivery logs end after %d pages (%d rows on the last)", i+1, len(rows))
		}
		cur = next
	}
	queries := []query{
		{name: qCount, run: scan(countSQL)},
		{name: qOneCol, run: scan(oneColumn)},
		{name: qIdentity, run: scan(identitySQL)},
		{name: qOverview, target: "≤ 3× (c)", run: func(ctx context.Context) (string, error) {
			var err error
			ov, err = store.Overview(ctx, workspace, largest, from, to, clickhouse.Day)
			return strconv.Itoa(len(ov.Series)) + " day buckets", err
		}},
		{name: qDelivery, target: "≤ 10 ms", run: func(ctx context.Context) (string, error) {
			d, err := store.Delivery(ctx, workspace, sample)
			if err != nil {
				return "", err
			}
			st, err := store.Status(ctx, d)
			return st.Status + ", " + strconv.Itoa(len(st.Devices)) + " devices", err
		}},
		{name: qRow, run: func(ctx context.Context) (string, error) {
			d, err := store.Delivery(ctx, workspace, sample)
			return "campaign " + d.CampaignID.String()[:8] + "…", err
		}},
		{name: qStatus, target: "≤ 10 ms", run: func(ctx context.Context) (string, error) {
			st, err := store.Status(ctx, sampleDelivery)
			return st.Status + ", " + strconv.Itoa(len(st.Devices)) + " devices", err
		}},
		{name: qAnalyst, run: func(ctx context.Context) (string, error) {
			var st string
			var n uint32
			err := conn.QueryRow(ctx, analystSQL, sample).Scan(&st, &n)
			return st + ", n_dev " + strconv.Itoa(int(n)), err
		}},
		{name: qFirst, target: "≤ 1.5× (c)", run: func(ctx context.Context) (string, error) {
			rows, _, err := store.DeliveryLogs(ctx, workspace, filter, 50, nil)
			return strconv.Itoa(len(rows)) + " rows", err
		}},
		{name: qPage51, target: "≤ 1.5× (c)", run: func(ctx context.Context) (string, error) {
			rows, _, err := store.DeliveryLogs(ctx, workspace, filter, 50, cur)
			return strconv.Itoa(len(rows)) + " rows", err
		}},
		{name: qPlanning, run: func(ctx context.Context) (string, error) {
			rows, err := conn.Query(ctx, planningSQL, workspace, largest)
			if err != nil {
				return "", err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			return strconv.Itoa(n) + " rows", rows.Err()
		}},
		{name: qPing, run: func(ctx context.Context) (string, error) {
			var one uint8
			return "", conn.QueryRow(ctx, "SELECT 1").Scan(&one)
		}},
	}

	// runPass times every query c.runs times after one warm-up round,
	// round-robin over the list, so a burst of other work on the machine
	// spreads over all of them rather than landing on one.
	runPass := func(label string) (pass, error) {
		p := pass{label: label}
		var err error
		if p.partsBefore, err = partsLine(ctx, conn); err != nil {
			return p, err
		}
		fmt.Fprintf(os.Stderr, "pass %q: %s\n", label, p.partsBefore)
		if p.bloom, err = bloomGranules(ctx, conn, sample); err != nil {
			return p, err
		}
		if err := conn.QueryRow(ctx, "SELECT count() FROM delivery_states").Scan(&p.states); err != nil {
			return p, fmt.Errorf("count delivery_states: %w", err)
		}
		u0, err := readUsage(ctx, conn)
		if err != nil {
			return p, err
		}
		ds := make([][]time.Duration, len(queries))
		plans := make([][]time.Duration, len(queries))
		p.timings = make([]timing, len(queries))
		for run := 0; run <= c.runs; run++ {
			fmt.Fprintf(os.Stderr, "  run %d of %d%s\n", run, c.runs, map[bool]string{true: " (warm-up)"}[run == 0])
			for i, q := range queries {
				lastRead.Store(0)
				lastPlan.Store(0)
				t0 := time.Now()
				note, err := q.run(qctx)
				d := time.Since(t0)
				if err != nil {
					return p, fmt.Errorf("%s: %w", q.name, err)
				}
				if run > 0 {
					ds[i] = append(ds[i], d)
					plans[i] = append(plans[i], time.Duration(lastPlan.Load())*time.Microsecond)
				}
				p.timings[i] = timing{query: q, read: lastRead.Load(), note: note}
			}
		}
		for i := range queries {
			slices.Sort(ds[i])
			p.timings[i].median = ds[i][len(ds[i])/2]
			slices.Sort(plans[i])
			p.timings[i].plan = plans[i][len(plans[i])/2]
			switch queries[i].name {
			case qIdentity:
				p.identity = p.timings[i].median
			case qOneCol:
				p.oneC = p.timings[i].median
			}
		}
		u1, err := readUsage(ctx, conn)
		if err != nil {
			return p, err
		}
		p.cpu = cpuLine(u0, u1)
		if p.partsAfter, err = partsLine(ctx, conn); err != nil {
			return p, err
		}
		return p, nil
	}

	label := "as loaded"
	if c.pause {
		// Merges paused: the pass reads the parts the load left, the same
		// in every run, and no merge shares the cores with the timings.
		for _, t := range timedTables {
			if err := conn.Exec(ctx, "SYSTEM STOP MERGES "+t); err != nil {
				return fmt.Errorf("pause merges of %s: %w", t, err)
			}
		}
		label = "as loaded (merges paused)"
	}
	loadedPass, err := runPass(label)
	if c.pause {
		for _, t := range timedTables {
			if rerr := conn.Exec(ctx, "SYSTEM START MERGES "+t); rerr != nil {
				return errors.Join(err, fmt.Errorf("resume merges of %s: %w", t, rerr))
			}
		}
	}
	if err != nil {
		return err
	}
	// The merged state, as background merges leave the older months of a
	// live table: one part per partition of delivery_states (one row per
	// delivery), of events and of deliveries (until 2026-12-07, late,
	// deliveries stayed as loaded, in 3 parts a partition, and Store.Delivery
	// read all three).
	fmt.Fprintln(os.Stderr, "OPTIMIZE TABLE delivery_states, events and deliveries FINAL…")
	t0 := time.Now()
	for _, t := range timedTables {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+t+" FINAL"); err != nil {
			return fmt.Errorf("optimize %s: %w", t, err)
		}
	}
	optimizeTook := time.Since(t0)
	mergedPass, err := runPass("after OPTIMIZE TABLE delivery_states, events and deliveries FINAL")
	if err != nil {
		return err
	}
	// The analyst's view against the API's figures, once: campaign_funnel
	// reads delivery_status, Overview reads delivery_status_in.
	var fSent, fBounced, fSuppressed, fFailed, fDelivered, fOpened, fConverted uint64
	if err := conn.QueryRow(ctx, `SELECT sent, bounced, suppressed, failed, delivered, opened, converted FROM campaign_funnel WHERE workspace_id = ? AND campaign_id = ?`,
		workspace, largest).Scan(&fSent, &fBounced, &fSuppressed, &fFailed, &fDelivered, &fOpened, &fConverted); err != nil {
		return fmt.Errorf("campaign_funnel: %w", err)
	}
	funnelAgrees := fSent == ov.Sent && fBounced == ov.Bounced && fSuppressed == ov.Suppressed && fFailed == ov.Failed &&
		fDelivered == ov.Delivered && fOpened == ov.Opened && fConverted == ov.Converted
	end, err := readUsage(ctx, conn)
	if err != nil {
		return err
	}

	// ---- the report ----
	fmt.Printf("ClickHouse %s. Loaded: %d deliveries, %d delivery devices, %d events in %d campaigns; largest campaign: %d deliveries, %d events (%s – %s).\n",
		version, nDeliveries, nDevices, nEvents, c.campaigns, nLargest, nLargestEvents, from.Format(time.DateOnly), to.Format(time.DateOnly))
	if fresh {
		fmt.Printf("Load: %d rows inserted (deliveries and events; the materialized views' rows besides) in %.0f s, %.0f rows/s, %d rows a batch, %d in flight.\n",
			l.rows, l.seconds, float64(l.rows)/l.seconds, c.batch, c.inflight)
	} else {
		fmt.Printf("Load: reused a kept database (-keep): its parts are as the earlier run (and its OPTIMIZE) and the merges since left them, so \"as loaded\" is not; -reload loads afresh.\n")
	}
	fmt.Printf("Sample delivery %s (created %s).\n", sample, clickhouse.DeliveryTime(sample).Format(time.RFC3339Nano))
	fmt.Printf("Each figure: the median of %d runs after one warm-up run, the queries taken round-robin (one run of each in turn). Rows read: the server's progress packets in the last run (all statements of a screen together). Server planning: the median over the runs of the profile events that time parsing, analysis, the plan and the pipeline (index analysis included), summed over a screen's statements, concurrent ones too (for a plain statement, as the point reads are, that is its fixed cost; over views the timers nest, so for the views' screens the column is no planning figure and can exceed the median). Ratios are to (c), the identity scan, THE bare scan; (a) is answered mostly from the primary index on 26.x and is shown for comparison only.\n", c.runs)
	fmt.Printf("Load average at start: %s.\n\n", start.load)
	for _, p := range []pass{loadedPass, mergedPass} {
		fmt.Printf("### %s\n\n", p.label)
		fmt.Printf("Before: %s (%d delivery_states rows, %.2f per delivery).\n", p.partsBefore, p.states, float64(p.states)/float64(nDeliveries))
		fmt.Printf("After: %s.\n", p.partsAfter)
		fmt.Printf("During the pass: %s.\n\n", p.cpu)
		fmt.Println("| query | median ms | server planning ms | × (c) identity scan | × (b) one-column scan | rows read | result | target |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---|---|")
		for _, t := range p.timings {
			note := t.note
			if t.name == qAnalyst {
				note += fmt.Sprintf("; delivery_states %d rows; bloom filter kept %s granules (EXPLAIN indexes = 1)", p.states, p.bloom)
			}
			fmt.Printf("| %s | %.1f | %.1f | %.2f× | %.2f× | %d | %s | %s |\n", t.name, ms(t.median), ms(t.plan),
				float64(t.median)/float64(p.identity), float64(t.median)/float64(p.oneC), t.read, note, verdict(t, p.identity))
		}
		fmt.Println()
	}
	fmt.Printf("OPTIMIZE TABLE delivery_states, events and deliveries FINAL took %.1f s.\n\n", optimizeTook.Seconds())

	fmt.Println("### Beside ClickHouse 18.16 (README: quiet machine, 2 cores, 7.0M events and 970k deliveries in the largest campaign; its ratio is to a count() that read every row)")
	fmt.Println()
	fmt.Println("| query | 18.16 ms | 18.16 × count() | 26.x as loaded ms | × (c) | 26.x merged ms | × (c) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, o := range old {
		if o.now == "" {
			fmt.Printf("| %s | %s | %s | — | — | — | — |\n", o.name, o.ms, o.ratio)
			continue
		}
		a, b := find(loadedPass, o.now), find(mergedPass, o.now)
		fmt.Printf("| %s | %s | %s | %.1f | %.2f× | %.1f | %.2f× |\n", o.name, o.ms, o.ratio,
			ms(a.median), float64(a.median)/float64(loadedPass.identity), ms(b.median), float64(b.median)/float64(mergedPass.identity))
	}
	fmt.Println()
	fmt.Printf("Overview of the largest campaign: created %d, attempted %d, sends %d, sent %d, bounced %d, suppressed %d, failed %d, recipients %d, delivered %d, opened %d, converted %d\n",
		ov.Created, ov.Attempted, ov.Sends, ov.Sent, ov.Bounced, ov.Suppressed, ov.Failed, ov.Recipients, ov.Delivered, ov.Opened, ov.Converted)
	fmt.Printf("Rates: delivery %.3f, open %.3f, conversion %.3f, bounce %.3f, SDK coverage %.3f (%d recipients)\n",
		ov.DeliveryRate, ov.OpenRate, ov.ConversionRate, ov.BounceRate, ov.SDKCoverage, ov.SDKRecipients)
	d := ov.Devices
	fmt.Printf("Devices: targeted %d, sent %d, bounced %d, failed %d, suppressed %d, pending %d, delivered %d, opened %d\n",
		d.Targeted, d.Sent, d.Bounced, d.Failed, d.Suppressed, d.Pending, d.Delivered, d.Opened)
	reasons := make([]string, 0, len(ov.FailuresByReason))
	for k := range ov.FailuresByReason {
		reasons = append(reasons, k)
	}
	slices.Sort(reasons)
	fmt.Print("Failures by reason:")
	for _, k := range reasons {
		fmt.Printf(" %q=%d", k, ov.FailuresByReason[k])
	}
	fmt.Println()
	fmt.Printf("campaign_funnel (the analysts' view) agrees with Overview on sent, bounced, suppressed, failed, delivered, opened, converted: %v\n", funnelAgrees)
	fmt.Printf("Whole run: %s.\n", cpuLine(start, end))
	return nil
}

// bloomGranules reads from EXPLAIN indexes = 1 how many granules of
// delivery_states the bloom filter index keeps for the analyst query
// ("kept/total").
func bloomGranules(ctx context.Context, conn driver.Conn, id uuid.UUID) (string, error) {
	rows, err := conn.Query(ctx, "EXPLAIN indexes = 1 "+analystSQL, id)
	if err != nil {
		return "", fmt.Errorf("explain analyst query: %w", err)
	}
	defer rows.Close()
	inBloom := false
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", fmt.Errorf("scan explain: %w", err)
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "Name: delivery":
			inBloom = true
		case inBloom && strings.HasPrefix(line, "Granules: "):
			return strings.TrimPrefix(line, "Granules: "), rows.Err()
		}
	}
	return "?", rows.Err()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// find returns the pass's timing of the named query.
func find(p pass, name string) timing {
	for _, t := range p.timings {
		if t.name == name {
			return t
		}
	}
	return timing{}
}

// verdict says whether a timing meets its target.
func verdict(t timing, identity time.Duration) string {
	var ok bool
	switch t.target {
	case "":
		return ""
	case "≤ 10 ms":
		ok = t.median <= 10*time.Millisecond
	case "≤ 3× (c)":
		ok = t.median <= 3*identity
	case "≤ 1.5× (c)":
		ok = 2*t.median <= 3*identity
	}
	if ok {
		return t.target + ": met"
	}
	return t.target + ": missed"
}

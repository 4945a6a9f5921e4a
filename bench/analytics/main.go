// Command analytics measures Herald's analytics queries on a realistic data
// set: it loads millions of device-level events (3,000,000 deliveries over
// 100 campaigns of Zipf-like sizes by default, 1–5 devices each, about 25
// million events) into its own database, then times the campaign overview,
// one delivery's status, the delivery logs (first page and a deep page),
// failures by reason and a bare scan of the largest campaign's events, and
// prints their medians as a Markdown table. It needs ClickHouse (bash
// scripts/services.sh); the database is dropped at the end unless -keep,
// and a kept database is reused without loading again.
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
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
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
	database   string
	addr       string
	batch      int
	inflight   int
	seed       uint64
}

func main() {
	var c config
	flag.IntVar(&c.deliveries, "deliveries", 3_000_000, "deliveries to load")
	flag.IntVar(&c.campaigns, "campaigns", 100, "campaigns (Zipf-like sizes; the largest holds about a third)")
	flag.IntVar(&c.runs, "runs", 7, "timed runs per query (after one warm-up); the median is reported")
	flag.BoolVar(&c.keep, "keep", false, "keep the database (and reuse it when it already holds this data set)")
	flag.StringVar(&c.database, "database", "herald_bench_analytics", "database to load into")
	flag.StringVar(&c.addr, "clickhouse", clickhouse.DefaultAddr, "ClickHouse native address")
	flag.IntVar(&c.batch, "batch", 400_000, "rows per insert")
	flag.IntVar(&c.inflight, "inflight", 2, "inserts in flight")
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

	largest, from, to, found, err := loadedMarker(ctx, conn, c)
	if err != nil {
		return err
	}
	if !c.keep || !found {
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
		l, err := load(ctx, conn, c)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "loaded in %s\n", time.Since(t0).Round(100*time.Millisecond))
		largest, from, to = l.largest, l.from, l.to
		if err := conn.Exec(ctx, createMarker); err != nil {
			return fmt.Errorf("create marker: %w", err)
		}
		b, err := conn.PrepareBatch(ctx, insertMarker)
		if err != nil {
			return fmt.Errorf("prepare marker: %w", err)
		}
		if err := b.Append(uint64(c.deliveries), uint32(c.campaigns), c.seed, largest, from, to); err != nil {
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
	return measure(ctx, conn, c, largest, from, to)
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

	platformIOS     int8 = 1
	platformAndroid int8 = 2
	audienceAll     int8 = 1
	audienceLast    int8 = 2
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
}

// batchSink is one table's column buffers; send inserts them in one batch.
type batchSink interface {
	len() int
	send(ctx context.Context, conn driver.Conn) error
	reset()
}

type deliveryBuf struct {
	ws                    []string
	id, campaign, message []uuid.UUID
	person                []string
	audience              []int8
	token, data           []string
	createdAt             []int64
	createdUS             []uint64
}

func (b *deliveryBuf) len() int { return len(b.id) }
func (b *deliveryBuf) reset() {
	b.ws, b.id, b.campaign, b.message = b.ws[:0], b.id[:0], b.campaign[:0], b.message[:0]
	b.person, b.audience, b.token, b.data = b.person[:0], b.audience[:0], b.token[:0], b.data[:0]
	b.createdAt, b.createdUS = b.createdAt[:0], b.createdUS[:0]
}
func (b *deliveryBuf) send(ctx context.Context, conn driver.Conn) error {
	return sendColumns(ctx, conn, "INSERT INTO deliveries (workspace_id, id, campaign_id, message_id, person_id, audience, token, data, created_at, created_us)",
		b.ws, b.id, b.campaign, b.message, b.person, b.audience, b.token, b.data, b.createdAt, b.createdUS)
}

type deviceBuf struct {
	ws        []string
	delivery  []uuid.UUID
	round     []uint16
	index     []uint8
	token     []string
	platform  []int8
	created   []int64
	createdUS []uint64
}

func (b *deviceBuf) len() int { return len(b.delivery) }
func (b *deviceBuf) reset() {
	b.ws, b.delivery, b.round, b.index = b.ws[:0], b.delivery[:0], b.round[:0], b.index[:0]
	b.token, b.platform, b.created, b.createdUS = b.token[:0], b.platform[:0], b.created[:0], b.createdUS[:0]
}
func (b *deviceBuf) send(ctx context.Context, conn driver.Conn) error {
	return sendColumns(ctx, conn, "INSERT INTO delivery_devices (workspace_id, delivery_id, round, device_index, token, platform, delivery_created, created_us)",
		b.ws, b.delivery, b.round, b.index, b.token, b.platform, b.created, b.createdUS)
}

type eventBuf struct {
	ws               []string
	campaign, deliv  []uuid.UUID
	round            []uint16
	index            []uint8
	kind             []int8
	attempt, status  []uint16
	reason, provider []string
	token            []string
	created, at      []int64
	atUS             []uint64
}

func (b *eventBuf) len() int { return len(b.deliv) }
func (b *eventBuf) reset() {
	b.ws, b.campaign, b.deliv, b.round, b.index = b.ws[:0], b.campaign[:0], b.deliv[:0], b.round[:0], b.index[:0]
	b.kind, b.attempt, b.status, b.reason, b.provider = b.kind[:0], b.attempt[:0], b.status[:0], b.reason[:0], b.provider[:0]
	b.token, b.created, b.at, b.atUS = b.token[:0], b.created[:0], b.at[:0], b.atUS[:0]
}
func (b *eventBuf) send(ctx context.Context, conn driver.Conn) error {
	return sendColumns(ctx, conn, "INSERT INTO events (workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt, status_code, reason, provider_id, token, delivery_created, at, at_us)",
		b.ws, b.campaign, b.deliv, b.round, b.index, b.kind, b.attempt, b.status, b.reason, b.provider, b.token, b.created, b.at, b.atUS)
}

// add appends one event; at is in microseconds.
func (b *eventBuf) add(camp, deliv uuid.UUID, created int64, idx uint8, kind int8, attempt, status uint16, reason, provider, token string, atUS uint64) {
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
	b.created = append(b.created, created)
	b.at = append(b.at, int64(atUS/1_000_000))
	b.atUS = append(b.atUS, atUS)
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
	free    [3]chan batchSink
	rows    [3]atomic.Int64
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

const (
	tDeliveries = iota
	tDevices
	tEvents
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
			token: make([]string, 0, n), data: make([]string, 0, n), createdAt: make([]int64, 0, n), createdUS: make([]uint64, 0, n)}
	case tDevices:
		return &deviceBuf{ws: make([]string, 0, n), delivery: make([]uuid.UUID, 0, n), round: make([]uint16, 0, n),
			index: make([]uint8, 0, n), token: make([]string, 0, n), platform: make([]int8, 0, n),
			created: make([]int64, 0, n), createdUS: make([]uint64, 0, n)}
	default:
		m := n + 64 // one delivery's events may overshoot the flush size
		return &eventBuf{ws: make([]string, 0, m), campaign: make([]uuid.UUID, 0, m), deliv: make([]uuid.UUID, 0, m),
			round: make([]uint16, 0, m), index: make([]uint8, 0, m), kind: make([]int8, 0, m),
			attempt: make([]uint16, 0, m), status: make([]uint16, 0, m), reason: make([]string, 0, m),
			provider: make([]string, 0, m), token: make([]string, 0, m), created: make([]int64, 0, m),
			at: make([]int64, 0, m), atUS: make([]uint64, 0, m)}
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
	var bufs [3]batchSink
	for t := range bufs {
		b, err := p.take(t)
		if err != nil {
			return loaded{}, err
		}
		bufs[t] = b
	}
	db, dv, ev := bufs[tDeliveries].(*deliveryBuf), bufs[tDevices].(*deviceBuf), bufs[tEvents].(*eventBuf)

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
				d, v, e := p.rows[tDeliveries].Load(), p.rows[tDevices].Load(), p.rows[tEvents].Load()
				fmt.Fprintf(os.Stderr, "  %5.0fs: %d deliveries, %d devices, %d events inserted (%.0f rows/s)\n",
					el, d, v, e, float64(d+v+e)/el)
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
		case tDevices:
			dv = b.(*deviceBuf)
		default:
			ev = b.(*eventBuf)
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
		sec := ms / 1000
		us := uint64(ms) * 1000
		if ci == 0 {
			lo, hi = min(lo, sec), max(hi, sec)
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
		db.createdAt = append(db.createdAt, sec)
		db.createdUS = append(db.createdUS, us)

		if r.IntN(100) < 3 { // pre-send failure: no devices
			ev.add(camp, id, sec, clickhouse.DeliveryLevel, kindPresendFailed, 0, 0, presendReasons[r.IntN(len(presendReasons))], "", "", us+20_000)
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
				plat := platformIOS
				if ti&1 == 1 {
					plat = platformAndroid
				}
				idx := uint8(j)
				dv.ws = append(dv.ws, workspace)
				dv.delivery = append(dv.delivery, id)
				dv.round = append(dv.round, 0)
				dv.index = append(dv.index, idx)
				dv.token = append(dv.token, tok)
				dv.platform = append(dv.platform, plat)
				dv.created = append(dv.created, sec)
				dv.createdUS = append(dv.createdUS, us)

				at := us + 50_000
				ev.add(camp, id, sec, idx, kindTargeted, 0, 0, "", "", "", at)
				switch x := r.IntN(1000); {
				case x < 30: // suppressed before sending
					ev.add(camp, id, sec, idx, kindSuppressed, 0, 0, "device is suppressed", "", "", at)
				case x < 60: // still pending: a transient error, retries in flight
					for a := 1; a <= 1+r.IntN(3); a++ {
						at += uint64(1+a*a) * 1_000_000
						k := r.IntN(len(transientReasons))
						ev.add(camp, id, sec, idx, kindAttempt, uint16(a), transientCodes[k], transientReasons[k], "", "", at)
					}
				case x < 110: // bounced
					at += 150_000
					k := r.IntN(len(bounceReasons))
					ev.add(camp, id, sec, idx, kindAttempt, 1, bounceCodes[k], bounceReasons[k], "", "", at)
					ev.add(camp, id, sec, idx, kindBounced, 0, bounceCodes[k], bounceReasons[k], "", "", at)
				case x < 140: // permanent failure
					at += 150_000
					k := r.IntN(len(permanentReasons))
					ev.add(camp, id, sec, idx, kindAttempt, 1, permanentCodes[k], permanentReasons[k], "", "", at)
					ev.add(camp, id, sec, idx, kindFailed, 0, permanentCodes[k], permanentReasons[k], "", "", at)
				case x < 150: // ten retries exhausted
					for a := 1; a <= 11; a++ {
						at += uint64(a*a) * 1_000_000
						ev.add(camp, id, sec, idx, kindAttempt, uint16(a), 503, "ServiceUnavailable", "", "", at)
					}
					ev.add(camp, id, sec, idx, kindFailed, 0, 503, exhaustedReason, "", "", at)
				default: // sent, sometimes after transient errors
					a := 1
					if r.IntN(10) == 0 {
						for ; a <= 1+r.IntN(2); a++ {
							at += uint64(1+a*a) * 1_000_000
							k := r.IntN(len(transientReasons))
							ev.add(camp, id, sec, idx, kindAttempt, uint16(a), transientCodes[k], transientReasons[k], "", "", at)
						}
					}
					at += 150_000
					pid := providerIDs[r.IntN(len(providerIDs))]
					ev.add(camp, id, sec, idx, kindAttempt, uint16(a), 200, "", pid, "", at)
					ev.add(camp, id, sec, idx, kindSent, 0, 200, "", pid, "", at)
					anySent = true
					// Apps with the SDK (70% of tokens) report delivered
					// (most) and opened (some).
					if ti%10 < 7 && r.IntN(100) < 85 {
						at += uint64(1+r.IntN(600)) * 1_000_000
						ev.add(camp, id, sec, idx, kindDelivered, 0, 0, "", "", tok, at)
						if r.IntN(100) < 20 {
							at += uint64(1+r.IntN(7200)) * 1_000_000
							ev.add(camp, id, sec, idx, kindOpened, 0, 0, "", "", tok, at)
						}
					}
				}
			}
			if anySent && r.IntN(100) < 4 {
				at := us + uint64(1+r.IntN(72*3600))*1_000_000
				ev.add(camp, id, sec, clickhouse.DeliveryLevel, kindConverted, 0, 0, "purchase", "", "", at)
			}
		}
		if err := flushIf(tDeliveries, c.batch); err != nil {
			return out, err
		}
		if err := flushIf(tDevices, c.batch); err != nil {
			return out, err
		}
		if err := flushIf(tEvents, c.batch); err != nil {
			return out, err
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
	d, v, e := p.rows[tDeliveries].Load(), p.rows[tDevices].Load(), p.rows[tEvents].Load()
	fmt.Fprintf(os.Stderr, "  done: %d deliveries, %d devices, %d events in %.1fs (%.0f rows/s)\n", d, v, e, el, float64(d+v+e)/el)
	out.from = time.Unix(lo, 0).UTC()
	out.to = time.Unix(hi+1, 0).UTC()
	return out, nil
}

func insertCampaigns(ctx context.Context, conn driver.Conn, camps, msgs []uuid.UUID, at time.Time) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO campaigns (workspace_id, id, name, goal_event, goal_window_hours, created_at, created_us)")
	if err != nil {
		return fmt.Errorf("prepare campaigns: %w", err)
	}
	defer b.Close()
	for i, id := range camps {
		if err := b.Append(workspace, id, "campaign "+strconv.Itoa(i), "purchase", uint32(168), at, uint64(at.UnixMicro())); err != nil {
			return fmt.Errorf("append campaign: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert campaigns: %w", err)
	}
	m, err := conn.PrepareBatch(ctx, "INSERT INTO push_messages (workspace_id, id, campaign_id, name, title, body, link, image, sound, badge, data, created_at, created_us)")
	if err != nil {
		return fmt.Errorf("prepare messages: %w", err)
	}
	defer m.Close()
	for i, id := range msgs {
		if err := m.Append(workspace, id, camps[i], "message "+strconv.Itoa(i), "Hello {{ customer.first_name | default: \"there\" }}",
			"We have news", "", "", "default", int32(-1), "{}", at, uint64(at.UnixMicro())); err != nil {
			return fmt.Errorf("append message: %w", err)
		}
	}
	if err := m.Send(); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	return nil
}

// ---- the measurements ----

// settle waits until every hour of the campaign last changed more than
// clickhouse.DefaultOverviewSettle ago, so that Overview stores them.
func settle(ctx context.Context, conn driver.Conn, campaign uuid.UUID) error {
	var wait int64
	if err := conn.QueryRow(ctx, `SELECT toInt64(maxMerge(changed)) - toInt64(now()) FROM hour_changes WHERE workspace_id = ? AND campaign_id = ?`,
		workspace, campaign).Scan(&wait); err != nil {
		return fmt.Errorf("hour changes: %w", err)
	}
	d := time.Duration(wait)*time.Second + clickhouse.DefaultOverviewSettle + 2*time.Second
	if d > 0 {
		fmt.Fprintf(os.Stderr, "waiting %s for the campaign's hours to settle…\n", d.Round(time.Second))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// timing is one measured query.
type timing struct {
	name   string
	median time.Duration
	read   uint64 // rows read by the server in the last run
	note   string
}

func measure(ctx context.Context, conn driver.Conn, c config, largest uuid.UUID, from, to time.Time) error {
	store := clickhouse.NewStore(conn)
	var nDeliveries, nDevices, nEvents uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM deliveries WHERE workspace_id = ?", workspace).Scan(&nDeliveries); err != nil {
		return fmt.Errorf("count deliveries: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM delivery_devices WHERE workspace_id = ?", workspace).Scan(&nDevices); err != nil {
		return fmt.Errorf("count devices: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM events WHERE workspace_id = ?", workspace).Scan(&nEvents); err != nil {
		return fmt.Errorf("count events: %w", err)
	}
	var nLargest, nLargestEvents uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM deliveries WHERE workspace_id = ? AND campaign_id = ?", workspace, largest).Scan(&nLargest); err != nil {
		return fmt.Errorf("count largest: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM events WHERE workspace_id = ? AND campaign_id = ?", workspace, largest).Scan(&nLargestEvents); err != nil {
		return fmt.Errorf("count largest events: %w", err)
	}
	// A delivery of the largest campaign with several devices, from the middle of its range.
	var sample uuid.UUID
	if err := conn.QueryRow(ctx, `SELECT delivery_id FROM delivery_devices
WHERE workspace_id = ? AND device_index = 2 AND delivery_created >= ? AND delivery_id IN (SELECT id FROM deliveries WHERE workspace_id = ? AND campaign_id = ?)
ORDER BY delivery_created, delivery_id LIMIT 1`, workspace, from.Add(to.Sub(from)/2), workspace, largest).Scan(&sample); err != nil {
		return fmt.Errorf("pick a delivery: %w", err)
	}

	var lastRead atomic.Uint64
	qctx := ch.Context(ctx, ch.WithProgress(func(p *ch.Progress) { lastRead.Add(p.Rows) }))
	// timeWith times f, after setup (not timed) before each run.
	timeWith := func(name string, setup func(context.Context) error, f func(context.Context) (string, error)) (timing, error) {
		fmt.Fprintf(os.Stderr, "timing %s…\n", name)
		var ds []time.Duration
		var note string
		for i := 0; i <= c.runs; i++ {
			if setup != nil {
				if err := setup(ctx); err != nil {
					return timing{}, fmt.Errorf("%s: %w", name, err)
				}
			}
			lastRead.Store(0)
			t0 := time.Now()
			n, err := f(qctx)
			d := time.Since(t0)
			if err != nil {
				return timing{}, fmt.Errorf("%s: %w", name, err)
			}
			if i > 0 { // run 0 warms up
				ds = append(ds, d)
			}
			note = n
		}
		slices.Sort(ds)
		return timing{name: name, median: ds[len(ds)/2], read: lastRead.Load(), note: note}, nil
	}
	time1 := func(name string, f func(context.Context) (string, error)) (timing, error) {
		return timeWith(name, nil, f)
	}

	var results []timing
	var ov clickhouse.Overview
	add := func(t timing, err error) error {
		if err != nil {
			return err
		}
		results = append(results, t)
		return nil
	}
	if err := add(time1("bare scan", func(ctx context.Context) (string, error) {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM events WHERE workspace_id = ? AND campaign_id = ?", workspace, largest).Scan(&n)
		return strconv.FormatUint(n, 10) + " events", err
	})); err != nil {
		return err
	}
	// The overview three ways: every hour computed (as on a first view);
	// the hours stored by an earlier call, with no event since (a finished
	// campaign); and one hour changed before each run (a live one: an
	// existing event of the sample delivery written again).
	computing := clickhouse.NewStore(conn)
	computing.SetOverviewSettle(0)
	if err := add(time1("overview, every hour computed", func(ctx context.Context) (string, error) {
		var err error
		ov, err = computing.Overview(ctx, workspace, largest, from, to, clickhouse.Day)
		return strconv.Itoa(len(ov.Series)) + " day buckets", err
	})); err != nil {
		return err
	}
	if err := settle(ctx, conn, largest); err != nil {
		return err
	}
	// sameOverview runs the overview with stored hours and checks that it
	// equals the computed one.
	sameOverview := func(ctx context.Context) (string, error) {
		o, err := store.Overview(ctx, workspace, largest, from, to, clickhouse.Day)
		if err == nil && !reflect.DeepEqual(o, ov) {
			err = errors.New("differs from the computed overview")
		}
		return strconv.Itoa(len(o.Series)) + " day buckets", err
	}
	if err := add(time1("overview, stored hours", sameOverview)); err != nil {
		return err
	}
	touch := func(ctx context.Context) error {
		return conn.Exec(ctx, `INSERT INTO events (workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt, status_code, reason, provider_id, token, delivery_created, at, at_us)
SELECT workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt, status_code, reason, provider_id, token, delivery_created, at, at_us
FROM events WHERE workspace_id = ? AND campaign_id = ? AND delivery_id = ? AND kind = 'targeted' LIMIT 1`, workspace, largest, sample)
	}
	if err := add(timeWith("overview, one hour changed", touch, sameOverview)); err != nil {
		return err
	}
	if err := add(time1("failures by reason", func(ctx context.Context) (string, error) {
		m, err := store.FailuresByReason(ctx, workspace, largest, from, to)
		return strconv.Itoa(len(m)) + " reasons", err
	})); err != nil {
		return err
	}
	if err := add(time1("delivery status (Delivery + Status)", func(ctx context.Context) (string, error) {
		d, err := store.Delivery(ctx, workspace, sample)
		if err != nil {
			return "", err
		}
		st, err := store.Status(ctx, d)
		return st.Status + ", " + strconv.Itoa(len(st.Devices)) + " devices", err
	})); err != nil {
		return err
	}
	filter := clickhouse.LogFilter{CampaignID: largest}
	if err := add(time1("delivery logs, first page (50)", func(ctx context.Context) (string, error) {
		rows, _, err := store.DeliveryLogs(ctx, workspace, filter, 50, nil)
		return strconv.Itoa(len(rows)) + " rows", err
	})); err != nil {
		return err
	}
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
	if err := add(time1("delivery logs, page 51 (from a cursor)", func(ctx context.Context) (string, error) {
		rows, _, err := store.DeliveryLogs(ctx, workspace, filter, 50, cur)
		return strconv.Itoa(len(rows)) + " rows", err
	})); err != nil {
		return err
	}

	fmt.Printf("Loaded: %d deliveries, %d delivery devices, %d events in %d campaigns; largest campaign: %d deliveries, %d events (%s – %s). Median of %d runs after one warm-up.\n\n",
		nDeliveries, nDevices, nEvents, c.campaigns, nLargest, nLargestEvents, from.Format(time.DateOnly), to.Format(time.DateOnly), c.runs)
	fmt.Println("| query | median ms | ratio to bare scan | rows/notes |")
	fmt.Println("|---|---:|---:|---|")
	bare := results[0].median
	for _, t := range results {
		fmt.Printf("| %s | %.1f | %.2f× | %s; %d rows read |\n", t.name, float64(t.median.Microseconds())/1000,
			float64(t.median)/float64(bare), t.note, t.read)
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
	return nil
}

package clickhouse

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// One GraphQL request may run many queries at once (gqlgen resolves sibling
// fields concurrently). Without a bound, one workspace's request can hold
// every connection of the pool while another workspace's request waits for
// one until the driver gives up. A Limiter bounds the reads in flight per
// request (a Gate) and per workspace, so the pool always has room for the
// other workspaces: size the pool (Options.MaxOpenConns) above the
// per-workspace bound.

// ErrBusy is returned by a read that waited Limiter.Wait for a slot of its
// workspace in vain: the workspace runs too many queries at once.
var ErrBusy = errors.New("clickhouse: the workspace has too many queries in flight; retry shortly")

// Limiter hands out Gates and holds the per-workspace semaphores. It is
// safe for concurrent use; one per process.
type Limiter struct {
	perRequest, perWorkspace int
	wait                     time.Duration

	mu sync.Mutex
	ws map[string]*wsSlots // only workspaces with a query in flight or waiting

	total atomic.Int64
}

// Queries returns how many queries all gates of l have run.
func (l *Limiter) Queries() int64 { return l.total.Load() }

type wsSlots struct {
	sem      chan struct{}
	refs     int // holders and waiters; the entry goes at 0
	inFlight atomic.Int64
}

// NewLimiter bounds reads in flight to perRequest per Gate and perWorkspace
// per workspace (each at least 1); a read waits at most wait (default 10s)
// for its workspace's slot, then fails with ErrBusy.
func NewLimiter(perRequest, perWorkspace int, wait time.Duration) *Limiter {
	perRequest, perWorkspace = max(perRequest, 1), max(perWorkspace, 1)
	if wait <= 0 {
		wait = 10 * time.Second
	}
	return &Limiter{perRequest: min(perRequest, perWorkspace), perWorkspace: perWorkspace, wait: wait, ws: map[string]*wsSlots{}}
}

// Gate bounds and counts the ClickHouse work of one request of a workspace.
type Gate struct {
	l         *Limiter
	workspace string
	sem       chan struct{}
	queries   atomic.Int64
	waits     atomic.Int64
	peak      atomic.Int64
}

// GateStats is what a Gate saw: queries run (reads and writes), reads that
// had to wait for a slot (of the request or of the workspace), and the most
// reads of the workspace in flight at once when one of this gate's started.
type GateStats struct {
	Queries, Waits, WorkspacePeak int64
}

// Gate returns a new gate for one request of workspace.
func (l *Limiter) Gate(workspace string) *Gate {
	return &Gate{l: l, workspace: workspace, sem: make(chan struct{}, l.perRequest)}
}

// Stats returns the gate's figures so far.
func (g *Gate) Stats() GateStats {
	return GateStats{Queries: g.queries.Load(), Waits: g.waits.Load(), WorkspacePeak: g.peak.Load()}
}

type gateKey struct{}

// WithGate returns a context whose Store reads go through g.
func WithGate(ctx context.Context, g *Gate) context.Context {
	return context.WithValue(ctx, gateKey{}, g)
}

// GateFrom returns the context's gate, or nil.
func GateFrom(ctx context.Context) *Gate {
	g, _ := ctx.Value(gateKey{}).(*Gate)
	return g
}

// acquire takes a slot of the request, then one of the workspace; release
// gives both back.
func (g *Gate) acquire(ctx context.Context) (release func(), err error) {
	g.count()
	waited := false
	select {
	case g.sem <- struct{}{}:
	default:
		waited = true
		select {
		case g.sem <- struct{}{}:
		case <-ctx.Done():
			g.waits.Add(1)
			return nil, ctx.Err()
		}
	}
	s := g.l.ref(g.workspace)
	fail := func(err error) (func(), error) {
		g.l.unref(g.workspace)
		<-g.sem
		g.waits.Add(1)
		return nil, err
	}
	select {
	case s.sem <- struct{}{}:
	default:
		waited = true
		timer := time.NewTimer(g.l.wait)
		defer timer.Stop()
		select {
		case s.sem <- struct{}{}:
		case <-timer.C:
			return fail(ErrBusy)
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	if waited {
		g.waits.Add(1)
	}
	n := s.inFlight.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.inFlight.Add(-1)
			<-s.sem
			g.l.unref(g.workspace)
			<-g.sem
		})
	}, nil
}

func (g *Gate) count() {
	g.queries.Add(1)
	g.l.total.Add(1)
}

func (l *Limiter) ref(ws string) *wsSlots {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.ws[ws]
	if s == nil {
		s = &wsSlots{sem: make(chan struct{}, l.perWorkspace)}
		l.ws[ws] = s
	}
	s.refs++
	return s
}

func (l *Limiter) unref(ws string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.ws[ws]; s != nil {
		if s.refs--; s.refs == 0 {
			delete(l.ws, ws)
		}
	}
}

// gatedConn is the Store's connection: reads (Query, QueryRow, Select,
// Exec) take a slot of the context's Gate for as long as they hold a
// connection; batches (inserts) are counted only. Without a gate (the
// worker, migrations) it passes through.
type gatedConn struct {
	driver.Conn
}

func (c gatedConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	g := GateFrom(ctx)
	if g == nil {
		return c.Conn.Query(ctx, query, args...)
	}
	release, err := g.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.Conn.Query(ctx, query, args...)
	if err != nil {
		release()
		return nil, err
	}
	return gatedRows{Rows: rows, release: release}, nil
}

func (c gatedConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	g := GateFrom(ctx)
	if g == nil {
		return c.Conn.QueryRow(ctx, query, args...)
	}
	release, err := g.acquire(ctx)
	if err != nil {
		return errRow{err}
	}
	return gatedRow{Row: c.Conn.QueryRow(ctx, query, args...), release: release}
}

func (c gatedConn) Select(ctx context.Context, dest any, query string, args ...any) error {
	return c.gated(ctx, func() error { return c.Conn.Select(ctx, dest, query, args...) })
}

func (c gatedConn) Exec(ctx context.Context, query string, args ...any) error {
	return c.gated(ctx, func() error { return c.Conn.Exec(ctx, query, args...) })
}

func (c gatedConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if g := GateFrom(ctx); g != nil {
		g.count()
	}
	return c.Conn.PrepareBatch(ctx, query, opts...)
}

func (c gatedConn) gated(ctx context.Context, run func() error) error {
	if g := GateFrom(ctx); g != nil {
		release, err := g.acquire(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	return run()
}

// gatedRows releases its slot when closed (the driver then returns the
// connection to the pool).
type gatedRows struct {
	driver.Rows
	release func()
}

func (r gatedRows) Close() error {
	err := r.Rows.Close()
	r.release()
	return err
}

// gatedRow releases its slot once scanned: the driver holds the connection
// until then.
type gatedRow struct {
	driver.Row
	release func()
}

func (r gatedRow) Scan(dest ...any) error {
	defer r.release()
	return r.Row.Scan(dest...)
}

func (r gatedRow) ScanStruct(dest any) error {
	defer r.release()
	return r.Row.ScanStruct(dest)
}

func (r gatedRow) Err() error {
	err := r.Row.Err()
	if err != nil {
		r.release()
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Err() error           { return r.err }
func (r errRow) Scan(...any) error    { return r.err }
func (r errRow) ScanStruct(any) error { return r.err }

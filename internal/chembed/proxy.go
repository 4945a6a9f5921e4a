package chembed

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// proxy forwards native-protocol connections to the engine and never resets
// an engine connection (see the package comment). Bytes move with io.Copy
// between TCP connections, which Linux serves with splice(2).
type proxy struct {
	ln        net.Listener
	engine    func() string           // the engine's native address, "" while it is down
	checkDB   func(name string) error // nil, errUnknownDatabase or another error
	slots     chan struct{}           // one per open connection: the MaxConns cap
	drain     time.Duration
	dial      time.Duration
	log       *slog.Logger
	wg        sync.WaitGroup
	closing   chan struct{} // closed by close: waiting dials give up
	closeOnce sync.Once
	rejected  atomic.Int64 // clients closed at once: over MaxConns, no engine, no database check
	refused   atomic.Int64 // clients answered by the proxy: no Hello, or an unknown database
	timedOut  atomic.Int64 // drains cut short by DrainTimeout
}

func newProxy(ln net.Listener, c Config, engine func() string, checkDB func(string) error, log *slog.Logger) *proxy {
	return &proxy{ln: ln, engine: engine, checkDB: checkDB, closing: make(chan struct{}), slots: make(chan struct{}, c.MaxConns),
		drain: c.DrainTimeout, dial: c.DialTimeout, log: log}
}

// close stops accepting; clients waiting for an engine give up. Open
// connections go on until the engine or the client ends them.
func (p *proxy) close() {
	p.closeOnce.Do(func() {
		close(p.closing)
		p.ln.Close()
	})
}

// serve accepts until the listener is closed, then waits for the open
// connections to end.
func (p *proxy) serve() {
	defer p.wg.Wait()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Warn("proxy: accept", "err", err)
			time.Sleep(100 * time.Millisecond) // for example out of file descriptors
			continue
		}
		select {
		case p.slots <- struct{}{}:
		default:
			p.rejected.Add(1)
			p.log.Warn("proxy: connection cap reached; closing the new client", "max_conns", cap(p.slots), "client", conn.RemoteAddr())
			conn.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.slots }()
			p.handle(conn.(*net.TCPConn))
		}()
	}
}

// helloTimeout is how long a new client has to send its Hello.
const helloTimeout = 30 * time.Second

// handle forwards one client until both sides are done.
func (p *proxy) handle(client *net.TCPConn) {
	defer client.Close()
	hl, first, ok := p.readHello(client)
	if !ok {
		return
	}
	up, err := p.dialEngine()
	if err != nil {
		p.rejected.Add(1)
		p.log.Warn("proxy: no engine to forward to; closing the client", "client", client.RemoteAddr(), "err", err)
		return
	}
	defer up.Close()
	if !p.admit(client, hl) {
		return // the engine connection closes before it was sent a byte
	}
	if _, err := up.Write(first); err != nil {
		p.log.Warn("proxy: forward the Hello", "err", err)
		return
	}
	fromEngine := make(chan struct{})
	go func() {
		defer close(fromEngine)
		p.toClient(client, up)
		client.Close() // the engine is done: unblock the copy below
	}()
	_, _ = io.Copy(up, client) // ends when the client closes, resets or is closed above
	// A FIN, never a reset: the engine cancels the query and closes.
	_ = up.CloseWrite()
	_ = up.SetReadDeadline(time.Now().Add(p.drain))
	<-fromEngine
}

// readHello reads the client's Hello (see hello.go) and returns it with the
// bytes to forward; it closes a client that sent something else.
func (p *proxy) readHello(client *net.TCPConn) (hello, []byte, bool) {
	_ = client.SetReadDeadline(time.Now().Add(helloTimeout))
	hl, first, err := readHello(client)
	_ = client.SetReadDeadline(time.Time{})
	if err != nil {
		if len(first) > 0 || !errors.Is(err, io.EOF) { // a bare connect and close is a port check
			p.refused.Add(1)
			p.log.Warn("proxy: closing a client that sent no ClickHouse Hello", "client", client.RemoteAddr(), "bytes", len(first), "err", err)
		}
		return hl, nil, false
	}
	return hl, first, true
}

// admit checks that the Hello's database exists, and otherwise answers the
// client itself (code 81, as the engine would before it aborts).
func (p *proxy) admit(client *net.TCPConn, hl hello) bool {
	if hl.database == "" {
		return true
	}
	switch err := p.checkDB(hl.database); {
	case err == nil:
		return true
	case errors.Is(err, errUnknownDatabase):
		p.refused.Add(1)
		_, _ = client.Write(exceptionPacket(codeUnknownDatabase, "Database `"+hl.database+"` does not exist (said by Herald's ClickHouse proxy)"))
	default:
		p.rejected.Add(1)
		p.log.Warn("proxy: cannot check the client's database; closing it", "client", client.RemoteAddr(), "database", hl.database, "err", err)
	}
	return false
}

// toClient copies the engine's output to the client; once the client cannot
// take more, it reads and discards until the engine closes (or the drain
// deadline that handle sets passes).
func (p *proxy) toClient(client, up *net.TCPConn) {
	if _, err := io.Copy(client, up); err == nil {
		return // the engine closed
	}
	_, err := io.Copy(io.Discard, up)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.timedOut.Add(1)
		p.log.Warn("proxy: the engine kept sending after its client left; closing the engine connection", "drain_timeout", p.drain)
	}
}

// dialEngine connects to the engine, waiting up to DialTimeout for one that
// is down or restarting.
func (p *proxy) dialEngine() (*net.TCPConn, error) {
	deadline := time.Now().Add(p.dial)
	for {
		var err error
		if addr := p.engine(); addr != "" {
			var conn net.Conn
			conn, err = net.DialTimeout("tcp", addr, time.Until(deadline))
			if err == nil {
				return conn.(*net.TCPConn), nil
			}
		} else {
			err = errors.New("the engine is not running")
		}
		if time.Now().Add(100 * time.Millisecond).After(deadline) {
			return nil, err
		}
		select {
		case <-p.closing:
			return nil, errors.New("the supervisor is stopping")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

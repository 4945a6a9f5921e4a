package chembed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Status is what the supervisor reports about itself and its engine; Run
// also writes it to Dir/state.json at each change.
type Status struct {
	SupervisorPID int `json:"supervisor_pid"`
	// EnginePID is the running engine's pid, 0 while it is down.
	EnginePID int `json:"engine_pid"`
	// Restarts counts engine starts after the first: a test that sees the
	// same EnginePID and Restarts 0 knows the engine survived.
	Restarts int  `json:"restarts"`
	Ready    bool `json:"ready"`
	// Version is the engine's SELECT version(); ChDBVersion the npm package's.
	Version     string    `json:"version"`
	ChDBVersion string    `json:"chdb_version"`
	Port        int       `json:"port"`
	HTTPPort    int       `json:"http_port"`
	EnginePort  int       `json:"engine_port"`
	StartedAt   time.Time `json:"started_at"` // of the running engine
	// CleanStop says the last stop cancelled the holder query and the engine
	// exited within StopTimeout (no SIGKILL).
	CleanStop bool `json:"clean_stop"`
	// Rejected counts clients the proxy closed at once (over MaxConns, no
	// engine within DialTimeout); Refused those it answered itself (no Hello,
	// an unknown database); DrainTimeouts drains cut short.
	Rejected      int64 `json:"rejected"`
	Refused       int64 `json:"refused"`
	DrainTimeouts int64 `json:"drain_timeouts"`
}

// Supervisor runs one engine at a time behind the proxy.
type Supervisor struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{} // closed when the first engine answers

	mu     sync.Mutex
	status Status
	engine *engine // nil while down
	proxy  *proxy
}

// New checks cfg and returns a supervisor; Run starts it.
func New(cfg Config, logger *slog.Logger) (*Supervisor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Supervisor{cfg: cfg, log: logger, ready: make(chan struct{})}
	s.status = Status{SupervisorPID: os.Getpid(), ChDBVersion: cfg.ChDBVersion(), Port: cfg.Port, HTTPPort: cfg.HTTPPort}
	return s, nil
}

// Ready is closed once the first engine answers on both ports.
func (s *Supervisor) Ready() <-chan struct{} { return s.ready }

// Addr is the public native-protocol address.
func (s *Supervisor) Addr() string { return net.JoinHostPort(host, strconv.Itoa(s.cfg.Port)) }

// Status returns a copy of the current status.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	if s.proxy != nil {
		st.Rejected, st.Refused, st.DrainTimeouts = s.proxy.rejected.Load(), s.proxy.refused.Load(), s.proxy.timedOut.Load()
	}
	return st
}

// Run serves until ctx ends, then stops the engine cleanly and returns nil. It
// returns an error when a port is taken or the first engine fails to start;
// an engine that dies after it has served is restarted with backoff.
func (s *Supervisor) Run(ctx context.Context) error {
	if err := portFree(s.cfg.HTTPPort, "HTTP"); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("chembed: native port %d is taken (see: ss -ltnp 'sport = :%d'): stop what listens there or choose another port", s.cfg.Port, s.cfg.Port)
		}
		return fmt.Errorf("chembed: listen: %w", err)
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
		ln.Close()
		return fmt.Errorf("chembed: %w", err)
	}
	if err := os.WriteFile(s.cfg.PIDFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		ln.Close()
		return fmt.Errorf("chembed: pid file: %w", err)
	}
	defer os.Remove(s.cfg.PIDFile())
	checkDB := func(name string) error { return databaseExists(s.cfg.HTTPPort, name) }
	p := newProxy(ln, s.cfg, s.engineAddr, checkDB, s.log)
	s.mu.Lock()
	s.proxy = p
	s.mu.Unlock()
	served := make(chan struct{})
	go func() { p.serve(); close(served) }()
	defer func() { <-served }() // open connections end with the engine
	return s.superviseEngines(ctx, p.close)
}

// superviseEngines starts an engine, waits for it to die or ctx to end, and
// restarts it after a backoff. At the end it calls closeProxy (no new
// clients), then stops the running engine.
func (s *Supervisor) superviseEngines(ctx context.Context, closeProxy func()) error {
	defer closeProxy() // when the first start fails
	backoff := s.cfg.MinBackoff
	for first := true; ; first = false {
		e, err := s.startEngine(ctx)
		if err != nil {
			if first || ctx.Err() != nil {
				s.writeState()
				return err
			}
			s.log.Error("engine failed to start; trying again", "err", err, "in", backoff)
		} else {
			select {
			case <-ctx.Done():
				closeProxy()
				s.stopEngine(e)
				return nil
			case <-e.exited:
			}
			s.engineDied(e)
			if time.Since(s.Status().StartedAt) > time.Minute {
				backoff = s.cfg.MinBackoff
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
		s.mu.Lock()
		s.status.Restarts++
		s.mu.Unlock()
	}
}

// startEngine spawns an engine and waits until it answers; it kills one that
// does not.
func (s *Supervisor) startEngine(ctx context.Context) (*engine, error) {
	port := s.cfg.EnginePort
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, fmt.Errorf("chembed: pick an engine port: %w", err)
		}
	}
	start := time.Now()
	e, err := spawn(s.cfg, port)
	if err != nil {
		return nil, err
	}
	version, err := waitReady(ctx, s.cfg, e)
	if err != nil {
		_ = e.cmd.Process.Signal(syscall.SIGKILL)
		<-e.exited
		return nil, err
	}
	s.mu.Lock()
	s.engine = e
	s.status.EnginePID, s.status.EnginePort, s.status.Ready = e.pid(), port, true
	s.status.Version, s.status.StartedAt = version, time.Now().UTC()
	restarts := s.status.Restarts
	s.mu.Unlock()
	s.writeState()
	s.log.Info("engine ready", "version", version, "chdb", s.cfg.ChDBVersion(), "pid", e.pid(),
		"native", s.Addr(), "http_port", s.cfg.HTTPPort, "engine_port", port, "took", time.Since(start).Round(time.Millisecond), "restarts", restarts)
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	go s.watchLiveness(e)
	return e, nil
}

// engineDied records an engine that exited without being asked to.
func (s *Supervisor) engineDied(e *engine) {
	s.markDown()
	s.log.Error("engine exited; restarting it", "pid", e.pid(), "err", e.err, "logs", s.cfg.logDir())
}

// stopEngine stops the engine cleanly (or kills it after StopTimeout).
func (s *Supervisor) stopEngine(e *engine) {
	start := time.Now()
	s.log.Info("stopping the engine", "pid", e.pid())
	clean, err := stop(s.cfg, e)
	s.mu.Lock()
	s.status.CleanStop = clean
	s.mu.Unlock()
	s.markDown()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		s.log.Warn("engine stop", "err", err, "took", took)
		return
	}
	s.log.Info("engine stopped", "clean", clean, "exit", e.err, "took", took)
}

func (s *Supervisor) markDown() {
	s.mu.Lock()
	s.engine = nil
	s.status.EnginePID, s.status.Ready = 0, false
	s.mu.Unlock()
	s.writeState()
}

// engineAddr is the running engine's native address, "" while it is down.
func (s *Supervisor) engineAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.engine == nil || s.engine.hasExited() {
		return ""
	}
	return s.engine.addr()
}

// watchLiveness kills an engine whose /ping stops answering for
// LivenessTimeout (a hung engine would otherwise hold the ports forever);
// superviseEngines then restarts it.
func (s *Supervisor) watchLiveness(e *engine) {
	if s.cfg.LivenessTimeout < 0 {
		return
	}
	interval := min(10*time.Second, s.cfg.LivenessTimeout/3)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-e.exited:
			return
		case <-tick.C:
		}
		if err := ping(context.Background(), s.cfg.HTTPPort, interval); err == nil {
			lastOK = time.Now()
			continue
		} else if time.Since(lastOK) > s.cfg.LivenessTimeout {
			s.log.Error("engine does not answer /ping; killing it", "pid", e.pid(), "for", time.Since(lastOK).Round(time.Second), "err", err)
			_ = e.cmd.Process.Signal(syscall.SIGKILL)
			return
		}
	}
}

// writeState replaces Dir/state.json with the current Status.
func (s *Supervisor) writeState() {
	b, err := json.MarshalIndent(s.Status(), "", "  ")
	if err != nil {
		return
	}
	tmp := s.cfg.statePath() + ".tmp"
	err = os.WriteFile(tmp, append(b, '\n'), 0o644)
	if err == nil {
		err = os.Rename(tmp, s.cfg.statePath())
	}
	if err != nil {
		s.log.Warn("write state", "err", err)
	}
}

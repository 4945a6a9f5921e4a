// Package chembed serves Herald's embedded ClickHouse: chDB's engine
// (libchdb.so, ClickHouse 26.x as a library) run by a small C loader
// (scripts/chdb/chserve.c) as a child process, supervised, with a draining TCP
// proxy in front of its native-protocol port. `herald clickhouse serve` runs it;
// scripts/services.sh installs the engine and starts that command.
//
// Why a proxy: chDB serves TCP from clickhouse-local, which installs Poco's
// KillingErrorHandler when stdin is not a terminal (ClickHouse issue 115666,
// fixed upstream after chDB 26.7): an exception that escapes a native-protocol
// connection handler — typically a client that resets its connection
// mid-query — calls std::terminate and aborts the whole engine. The proxy
// never lets the engine see a reset: when a client goes away it half-closes
// the engine side (a FIN), keeps reading and discarding what the engine still
// sends until the engine closes, and only then closes. The HTTP port is served
// by the engine directly; its handler survives dropped clients.
//
// The engine serves for as long as its last query runs (a query that sleeps
// forever, with a known query id). Stopping it cleanly is cancelling that
// query (KILL QUERY over HTTP): clickhouse-local then shuts down as it does
// after any last query. SIGTERM and SIGINT are not handled by the engine (they
// end it at once), so the supervisor sends SIGKILL only after StopTimeout.
package chembed

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config says which engine to run, where its files go and how the proxy is
// bounded. Zero durations and counts take the defaults named beside them.
type Config struct {
	// Lib is the path of chDB's libchdb.so. Required.
	Lib string
	// Loader is the chserve binary built from scripts/chdb/chserve.c. Required.
	Loader string
	// Dir holds data/ (the engine's --path), log/ (engine.log: the engine's
	// stdout and stderr; clickhouse.log and clickhouse.err.log: ClickHouse's own
	// log at level warning), state.json (Status) and supervisor.pid. Required.
	Dir string
	// Port is the public native-protocol port, served through the proxy on
	// 127.0.0.1. Default 9000.
	Port int
	// HTTPPort is the engine's HTTP port on 127.0.0.1. Default 8123.
	HTTPPort int
	// EnginePort is the engine's own native port on 127.0.0.1, which only the
	// proxy uses. Default 0: a free port picked at each engine start.
	EnginePort int
	// MaxConns caps the proxied connections; a client over it is closed at
	// once. Default 1024.
	MaxConns int
	// DrainTimeout bounds how long the proxy keeps reading from the engine
	// after a client went away. Default 1 minute.
	DrainTimeout time.Duration
	// DialTimeout is how long a new client waits for the engine (for example
	// during a restart) before the proxy closes it. Default 15 s.
	DialTimeout time.Duration
	// StartTimeout is how long a starting engine may take to answer. Default 60 s.
	StartTimeout time.Duration
	// StopTimeout is how long a clean stop may take before SIGKILL. Default 30 s.
	StopTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before restarting an engine
	// that died: MinBackoff doubles after each death up to MaxBackoff, and goes
	// back to MinBackoff after an engine served for a minute. Defaults 1 s and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// LivenessTimeout: an engine whose HTTP /ping has not answered for this
	// long is killed and restarted. Default 2 minutes; negative turns it off.
	LivenessTimeout time.Duration
}

// Defaults of Config's zero values.
const (
	DefaultPort            = 9000
	DefaultHTTPPort        = 8123
	DefaultMaxConns        = 1024
	DefaultDrainTimeout    = time.Minute
	DefaultDialTimeout     = 15 * time.Second
	DefaultStartTimeout    = 60 * time.Second
	DefaultStopTimeout     = 30 * time.Second
	DefaultMinBackoff      = time.Second
	DefaultMaxBackoff      = 30 * time.Second
	DefaultLivenessTimeout = 2 * time.Minute
)

// host is the only address served: the engine's default user has no password.
const host = "127.0.0.1"

func (c Config) withDefaults() Config {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Port, DefaultPort)
	def(&c.HTTPPort, DefaultHTTPPort)
	def(&c.MaxConns, DefaultMaxConns)
	defDur(&c.DrainTimeout, DefaultDrainTimeout)
	defDur(&c.DialTimeout, DefaultDialTimeout)
	defDur(&c.StartTimeout, DefaultStartTimeout)
	defDur(&c.StopTimeout, DefaultStopTimeout)
	defDur(&c.MinBackoff, DefaultMinBackoff)
	defDur(&c.MaxBackoff, DefaultMaxBackoff)
	defDur(&c.LivenessTimeout, DefaultLivenessTimeout)
	return c
}

// validate checks the paths and ports once, before anything starts.
func (c Config) validate() error {
	for _, f := range []struct{ name, path, fix string }{
		{"Lib (libchdb.so)", c.Lib, "install chDB's engine with `bash scripts/services.sh`"},
		{"Loader (chserve)", c.Loader, "build it with `cc -O2 -o chserve scripts/chdb/chserve.c -ldl`"},
	} {
		if f.path == "" {
			return fmt.Errorf("chembed: %s is not set", f.name)
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("chembed: %s: %w (%s)", f.name, err, f.fix)
		}
	}
	if c.Dir == "" {
		return errors.New("chembed: Dir is not set")
	}
	ports := map[int]string{c.Port: "Port", c.HTTPPort: "HTTPPort"}
	if len(ports) != 2 || (c.EnginePort != 0 && ports[c.EnginePort] != "") {
		return fmt.Errorf("chembed: Port %d, HTTPPort %d and EnginePort %d must differ", c.Port, c.HTTPPort, c.EnginePort)
	}
	if c.MaxConns < 1 {
		return fmt.Errorf("chembed: MaxConns %d: must be at least 1", c.MaxConns)
	}
	return nil
}

func (c Config) dataDir() string   { return filepath.Join(c.Dir, "data") }
func (c Config) logDir() string    { return filepath.Join(c.Dir, "log") }
func (c Config) statePath() string { return filepath.Join(c.Dir, "state.json") }

// PIDFile is where Run writes the supervisor's pid (removed when it returns).
func (c Config) PIDFile() string { return filepath.Join(c.Dir, "supervisor.pid") }

// ChDBVersion reads the npm package version from the package.json that sits
// beside Lib (scripts/services.sh keeps it there); "" when there is none.
func (c Config) ChDBVersion() string {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(c.Lib), "package.json"))
	if err != nil {
		return ""
	}
	var p struct{ Version string }
	if json.Unmarshal(b, &p) != nil {
		return ""
	}
	return p.Version
}

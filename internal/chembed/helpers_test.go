package chembed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// clientEnv, when set, makes the test binary a ClickHouse client that runs
// queries against the address it holds until it is killed (see TestMain).
const clientEnv = "HERALD_CHEMBED_CLIENT"

func TestMain(m *testing.M) {
	if addr := os.Getenv(clientEnv); addr != "" {
		if err := runClient(addr, os.Getenv(clientEnv+"_MODE")); err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runClient queries without end: "many" runs short queries in a loop,
// "stream" reads an endless result slowly, "insert" sends endless batches.
func runClient(addr, mode string) error {
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, Compression: &ch.Compression{Method: ch.CompressionLZ4}})
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch mode {
	case "stream":
		rows, err := conn.Query(ctx, "SELECT number, toString(number) FROM system.numbers")
		if err != nil {
			return err
		}
		for rows.Next() {
			time.Sleep(time.Microsecond)
		}
		return rows.Err()
	case "insert":
		if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS default.chembed_kill (x UInt64) ENGINE = MergeTree ORDER BY x"); err != nil {
			return err
		}
		for {
			b, err := conn.PrepareBatch(ctx, "INSERT INTO default.chembed_kill (x)")
			if err != nil {
				return err
			}
			for i := range 200_000 {
				if err := b.Append(uint64(i)); err != nil {
					return err
				}
			}
			if err := b.Send(); err != nil {
				return err
			}
		}
	default:
		for {
			rows, err := conn.Query(ctx, "SELECT number, toString(number) FROM numbers(20000)")
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			rows.Close()
		}
	}
}

// startClient runs this test binary as a client of addr (see TestMain).
func startClient(t *testing.T, addr, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientEnv+"="+addr, clientEnv+"_MODE="+mode)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a client: %v", err)
	}
	return cmd
}

// repoRoot is the folder of go.mod above the test's folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// engineLib is $HERALD_CHDB_LIB, or the libchdb.so that scripts/services.sh
// installs for $HERALD_CHDB_VERSION (default: scripts/chdb/version).
func engineLib(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HERALD_CHDB_LIB"); p != "" {
		return p
	}
	root := repoRoot(t)
	version := os.Getenv("HERALD_CHDB_VERSION")
	if version == "" {
		b, err := os.ReadFile(filepath.Join(root, "scripts/chdb/version"))
		if err != nil {
			t.Fatal(err)
		}
		version = strings.TrimSpace(string(b))
	}
	lib := filepath.Join(root, ".data/chdb", version, "libchdb.so")
	if _, err := os.Stat(lib); err != nil {
		t.Fatalf("chDB's engine %s is not installed (%v): run `bash scripts/services.sh` (or set HERALD_CHDB_LIB)", version, err)
	}
	return lib
}

var loader struct {
	once sync.Once
	path string
	err  error
}

// buildLoader compiles scripts/chdb/chserve.c once per test binary.
func buildLoader(t *testing.T) string {
	t.Helper()
	src := filepath.Join(repoRoot(t), "scripts/chdb/chserve.c")
	loader.once.Do(func() {
		dir, err := os.MkdirTemp("", "chembed-loader-")
		if err != nil {
			loader.err = err
			return
		}
		loader.path = filepath.Join(dir, "chserve")
		out, err := exec.Command("cc", "-O2", "-o", loader.path, src, "-ldl").CombinedOutput()
		if err != nil {
			loader.err = fmt.Errorf("cc %s: %v %s (install a C compiler: apt-get install gcc libc6-dev)", src, err, out)
		}
	})
	if loader.err != nil {
		t.Fatal(loader.err)
	}
	return loader.path
}

// testConfig is a private engine's Config: free ports, data in dir.
func testConfig(t *testing.T, dir string) Config {
	t.Helper()
	port := func() int {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return Config{Lib: engineLib(t), Loader: buildLoader(t), Dir: dir, Port: port(), HTTPPort: port(),
		MinBackoff: 200 * time.Millisecond}
}

// running is a supervisor running in the test, stopped by stop or at cleanup.
type running struct {
	*Supervisor
	cancel context.CancelFunc
	done   chan error
}

// startSupervisor runs a supervisor for c and waits until it serves.
func startSupervisor(t *testing.T, c Config) *running {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(c, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logFailure(t, c)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Supervisor: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-s.Ready():
	case err := <-r.done:
		r.done <- err
		t.Fatalf("supervisor: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("the engine did not become ready within 90 s")
	}
	return r
}

// stop stops the supervisor (once) and returns how long that took.
func (r *running) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	r.cancel()
	err, ok := <-r.done
	if ok {
		close(r.done)
		if err != nil {
			t.Errorf("supervisor: %v", err)
		}
	}
	return time.Since(start)
}

// connect opens a native-protocol connection to addr.
func connect(t *testing.T, addr string) driver.Conn {
	t.Helper()
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// pingFresh pings addr over a new connection, as a new client would.
func pingFresh(addr string) error { return pingDatabase(addr, "") }

// pingDatabase is pingFresh with a default database in the Hello.
func pingDatabase(addr, database string) error {
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Database: database}, DialTimeout: 3 * time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var one uint8
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return err
	}
	if one != 1 {
		return errors.New("SELECT 1 did not return 1")
	}
	return nil
}

// sendGarbageAndReset writes bytes that are not the native protocol, then
// closes with SO_LINGER 0: a reset.
func sendGarbageAndReset(addr string, i int) error {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	tc := conn.(*net.TCPConn)
	junk := []byte(strings.Repeat(fmt.Sprintf("garbage %d \x00\x01\xff", i), 1+i*50))
	if _, err := tc.Write(junk); err != nil {
		return err
	}
	_ = tc.SetReadDeadline(time.Now().Add(time.Duration(50+i*10) * time.Millisecond))
	_, _ = io.Copy(io.Discard, tc)
	_ = tc.SetLinger(0)
	return tc.Close()
}

// logFailure shows the end of a failed test's engine logs (its folder is
// deleted with the test).
func logFailure(t *testing.T, c Config) {
	for _, name := range []string{"engine.log", "clickhouse.err.log"} {
		b, err := os.ReadFile(filepath.Join(c.logDir(), name))
		if err != nil {
			t.Logf("%s: %v", name, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		from := max(0, len(lines)-40)
		for i, l := range lines { // from just before the first fatal line, when there is one
			if strings.Contains(l, "<Fatal>") {
				from = max(0, i-40)
				break
			}
		}
		t.Logf("%s from line %d:\n%s", name, from+1, strings.Join(lines[from:min(len(lines), from+80)], "\n"))
	}
}

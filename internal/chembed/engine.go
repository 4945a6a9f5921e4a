package chembed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// holderQueryID names the query that keeps the engine serving; cancelling it
// stops the engine cleanly.
const holderQueryID = "herald-chembed-holder"

// holderQueries start both listeners, then run a query that never ends and
// costs one wake-up a second.
const holderQueries = "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; " +
	"SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size = 1 FORMAT Null"

// httpClient opens a connection per request: an idle keep-alive connection
// would hold up the engine's shutdown by its 5 s wait for open connections.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// engine is one run of the loader.
type engine struct {
	cmd    *exec.Cmd
	port   int           // native port
	exited chan struct{} // closed when the process has exited and been reaped
	err    error         // the Wait error; read only after exited is closed
}

func (e *engine) pid() int     { return e.cmd.Process.Pid }
func (e *engine) addr() string { return net.JoinHostPort(host, strconv.Itoa(e.port)) }

func (e *engine) hasExited() bool {
	select {
	case <-e.exited:
		return true
	default:
		return false
	}
}

// engineArgs is the loader's command line: clickhouse-local's options, then,
// after "--", server settings. clickhouse-local ignores --timezone (the
// engine's TZ variable is set instead) and --logger.level (--log-level works).
func engineArgs(c Config, port int) []string {
	return []string{
		c.Lib,
		"--path=" + c.dataDir() + "/",
		"--log-level=warning",
		"--query_id=" + holderQueryID,
		"--query", holderQueries,
		"--",
		"--listen_host=" + host,
		"--tcp_port=" + strconv.Itoa(port),
		"--http_port=" + strconv.Itoa(c.HTTPPort),
		"--logger.log=" + filepath.Join(c.logDir(), "clickhouse.log"),
		"--logger.errorlog=" + filepath.Join(c.logDir(), "clickhouse.err.log"),
		"--logger.size=100M",
		"--logger.count=3",
		// Herald's tests drop whole databases: no size guard.
		"--max_table_size_to_drop=0",
		"--max_partition_size_to_drop=0",
	}
}

// spawn starts the loader with its output appended to log/engine.log.
func spawn(c Config, port int) (*engine, error) {
	for _, d := range []string{c.dataDir(), c.logDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("chembed: %w", err)
		}
	}
	out, err := os.OpenFile(filepath.Join(c.logDir(), "engine.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chembed: engine log: %w", err)
	}
	defer out.Close() // the child has its own copy
	fmt.Fprintf(out, "---- %s chembed: starting the engine on native port %d, HTTP port %d\n",
		time.Now().UTC().Format(time.RFC3339), port, c.HTTPPort)
	cmd := exec.Command(c.Loader, engineArgs(c, port)...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a terminal's Ctrl-C reaches only the supervisor, which stops the engine cleanly
		Pdeathsig: syscall.SIGKILL, // an engine never outlives its supervisor, holding the data folder and ports
	}
	e := &engine{cmd: cmd, port: port, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that forked the child
		// ends, not the process: keep that thread until the child is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		e.err = cmd.Wait()
		close(e.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("chembed: start %s: %w", c.Loader, err)
	}
	return e, nil
}

// waitReady polls until the engine answers on both ports, exits, or the
// timeout passes; it then returns the engine's version.
func waitReady(ctx context.Context, c Config, e *engine) (string, error) {
	deadline := time.NewTimer(c.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if ping(ctx, c.HTTPPort, time.Second) == nil && dialOK(e.addr()) {
			return httpQuery(ctx, c.HTTPPort, "SELECT version()", 5*time.Second)
		}
		select {
		case <-e.exited:
			return "", fmt.Errorf("chembed: the engine exited during start-up (%v): %s", e.err, logTail(c))
		case <-deadline.C:
			return "", fmt.Errorf("chembed: the engine did not answer within %v: %s", c.StartTimeout, logTail(c))
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

func dialOK(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// stop cancels the holder query, waits up to StopTimeout for the engine to
// shut down, and SIGKILLs it after that. It reports whether the stop was clean.
func stop(c Config, e *engine) (clean bool, err error) {
	if e.hasExited() {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.StopTimeout)
	defer cancel()
	_, kerr := httpQuery(ctx, c.HTTPPort, "KILL QUERY WHERE query_id = '"+holderQueryID+"' ASYNC", 5*time.Second)
	if kerr == nil {
		select {
		case <-e.exited:
			return true, nil
		case <-ctx.Done():
		}
	}
	_ = e.cmd.Process.Signal(syscall.SIGKILL)
	<-e.exited
	if kerr != nil {
		return false, fmt.Errorf("chembed: cancel the holder query: %w; sent SIGKILL", kerr)
	}
	return false, fmt.Errorf("chembed: the engine did not stop within %v of KILL QUERY; sent SIGKILL", c.StopTimeout)
}

// ping asks the engine's HTTP /ping.
func ping(ctx context.Context, port int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, strconv.Itoa(port))+"/ping", nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: HTTP %s", resp.Status)
	}
	return nil
}

// errUnknownDatabase: databaseExists found no such database.
var errUnknownDatabase = errors.New("unknown database")

// databaseExists returns nil when the engine has the database, else
// errUnknownDatabase or the error of the check.
func databaseExists(port int, name string) error {
	n, err := httpQuery(context.Background(), port, "SELECT count() FROM system.databases WHERE name = {db:String}",
		5*time.Second, url.Values{"param_db": {name}})
	switch {
	case err != nil:
		return err
	case n == "0":
		return errUnknownDatabase
	}
	return nil
}

// httpQuery runs one statement on the HTTP port, with its {name:Type}
// parameters as param_name values, and returns its trimmed output. Only the
// supervisor's own constant statements go through it.
func httpQuery(ctx context.Context, port int, query string, timeout time.Duration, params ...url.Values) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/"
	if len(params) > 0 {
		u += "?" + params[0].Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(query))
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return string(bytes.TrimSpace(body)), nil
}

// logTail is the end of engine.log, for errors about a failed start.
func logTail(c Config) string {
	p := filepath.Join(c.logDir(), "engine.log")
	b, err := os.ReadFile(p)
	if err != nil {
		return "no engine log: " + err.Error()
	}
	if i := bytes.LastIndex(b, []byte("---- ")); i >= 0 {
		b = b[i:]
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	hint := ""
	if bytes.Contains(b, []byte("SYSTEM START LISTEN query is not supported")) {
		hint = " (this chDB cannot serve: it needs 26.7 or later)"
	}
	return fmt.Sprintf("see %s and %s%s; the engine wrote:\n%s", p, filepath.Join(c.logDir(), "clickhouse.err.log"), hint, bytes.TrimSpace(b))
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports an error naming the port when something listens on it.
func portFree(port int, what string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("chembed: %s port %d is taken (see: ss -ltnp 'sport = :%d'): stop what listens there or choose another port", what, port, port)
		}
		return fmt.Errorf("chembed: %s port %d: %w", what, port, err)
	}
	return ln.Close()
}

package chembed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// SIGKILL 20 clients of a private engine mid-query, then reset 20 raw
// connections that sent garbage: the engine must still serve, with the same
// pid and no restart. Straight on the engine's port, the first few kills
// abort it (ClickHouse issue 115666); the proxy is what this tests.
func TestEngineSurvivesKilledClients(t *testing.T) {
	r := startSupervisor(t, testConfig(t, t.TempDir()))
	before := r.Status()
	modes := []string{"many", "stream", "insert"}
	const kills = 20
	for i := range kills {
		cmd := startClient(t, r.Addr(), modes[i%len(modes)])
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if err := pingFresh(r.Addr()); err != nil {
			t.Fatalf("after killing client %d (%s): %v; status %+v", i+1, modes[i%len(modes)], err, r.Status())
		}
	}
	for i := range 20 {
		if err := sendGarbageAndReset(r.Addr(), i); err != nil {
			t.Fatalf("raw connection %d: %v", i, err)
		}
	}
	if err := pingFresh(r.Addr()); err != nil {
		t.Fatalf("after 20 raw connections that sent garbage and reset: %v", err)
	}
	// Straight on the engine, each of these aborts it too.
	for i := range 5 {
		err := pingDatabase(r.Addr(), fmt.Sprintf("no_such_db_%d", i))
		if err == nil || !strings.Contains(err.Error(), "code: 81") {
			t.Fatalf("a client of a missing database got %v, want code 81 (UNKNOWN_DATABASE)", err)
		}
	}
	if err := pingFresh(r.Addr()); err != nil {
		t.Fatalf("after 5 clients of missing databases: %v", err)
	}
	after := r.Status()
	if after.EnginePID != before.EnginePID || after.Restarts != 0 {
		t.Fatalf("engine pid %d → %d, restarts %d: want the same engine and no restart (see %s)",
			before.EnginePID, after.EnginePID, after.Restarts, filepath.Join(r.cfg.logDir(), "clickhouse.err.log"))
	}
	if after.Refused < 25 {
		t.Errorf("the proxy answered %d clients itself, want at least 25 (20 without a Hello, 5 missing databases)", after.Refused)
	}
	t.Logf("%d clients killed mid-query, 20 raw connections sent garbage and reset, 5 asked for missing databases; engine pid %d served throughout, 0 restarts, %d drain timeouts",
		kills, after.EnginePID, after.DrainTimeouts)
}

// SIGKILL the engine: the supervisor restarts it, counts one restart, and
// acknowledged rows are there.
func TestRestartAfterEngineKill(t *testing.T) {
	r := startSupervisor(t, testConfig(t, t.TempDir()))
	conn := connect(t, r.Addr())
	insertRows(t, conn, 10_000)
	old := r.Status().EnginePID
	killedAt := time.Now()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var st Status
	for st = r.Status(); st.Restarts == 0 || !st.Ready; st = r.Status() {
		if time.Since(killedAt) > 60*time.Second {
			t.Fatalf("no restart within 60 s of killing engine %d: %+v", old, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	restartedIn := time.Since(killedAt)
	if st.Restarts != 1 || st.EnginePID == old {
		t.Fatalf("after one kill: restarts %d, engine pid %d (was %d); want 1 and a new pid", st.Restarts, st.EnginePID, old)
	}
	if err := pingFresh(r.Addr()); err != nil {
		t.Fatalf("the restarted engine does not serve: %v", err)
	}
	if got := countRows(t, connect(t, r.Addr())); got != 10_000 {
		t.Errorf("rows after the restart: got %d, want 10000", got)
	}
	t.Logf("engine %d killed; engine %d served %v later (backoff %v)", old, st.EnginePID, restartedIn.Round(time.Millisecond), r.cfg.MinBackoff)
}

// Stop a supervisor (KILL QUERY on the holder, no SIGKILL), start another on
// the same folder and find every acknowledged row.
func TestCleanStopKeepsRows(t *testing.T) {
	dir := t.TempDir()
	r := startSupervisor(t, testConfig(t, dir))
	conn := connect(t, r.Addr())
	insertRows(t, conn, 30_000)
	conn.Close()
	stoppedIn := r.stop(t)
	if st := r.Status(); !st.CleanStop {
		t.Errorf("the stop was not clean (the engine was killed): %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "supervisor.pid")); !os.IsNotExist(err) {
		t.Errorf("supervisor.pid is still there after the stop (%v)", err)
	}
	startedAt := time.Now()
	r2 := startSupervisor(t, testConfig(t, dir))
	startedIn := time.Since(startedAt)
	if got := countRows(t, connect(t, r2.Addr())); got != 30_000 {
		t.Errorf("rows after stop and start: got %d, want 30000", got)
	}
	t.Logf("clean stop took %v, start on the same data %v", stoppedIn.Round(time.Millisecond), startedIn.Round(time.Millisecond))
}

// insertRows inserts n rows into default.acked, in three batches, each
// acknowledged before the next.
func insertRows(t *testing.T, conn driver.Conn, n int) {
	t.Helper()
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS default.acked (x UInt64) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	for b := range 3 {
		lo, hi := b*n/3, (b+1)*n/3
		if err := conn.Exec(ctx, "INSERT INTO default.acked (x) SELECT number FROM numbers(?, ?)", lo, hi-lo); err != nil {
			t.Fatal(err)
		}
	}
}

// countRows counts the distinct rows of default.acked.
func countRows(t *testing.T, conn driver.Conn) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT uniqExact(x) FROM default.acked").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

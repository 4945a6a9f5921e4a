//go:build chfault

package server_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers/sim"
)

// Stop ClickHouse while reports are being accepted, start it again, and find
// every acknowledged report exactly once. It stops the shared, embedded
// ClickHouse (`bash scripts/services.sh stop`, then start), so
// scripts/test.sh runs it alone, after the other tests (-tags chfault).
func TestReportsSurviveClickHouseStop(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	ctx := context.Background()
	camp, msg := uuid.New(), uuid.New()
	targets := jobs.NewTargetCache(e.app.Redis, time.Hour)
	var reports []report
	start := time.Now().Add(-time.Minute)
	for i := 0; i < 150; i++ {
		id := uuidAt(start.Add(time.Duration(i) * time.Millisecond))
		d := clickhouse.Delivery{WorkspaceID: c.workspaceID, ID: id, CampaignID: camp, MessageID: msg,
			PersonID: "p", Audience: "ALL_DEVICES", Data: "{}", CreatedAt: clickhouse.DeliveryTime(id).UTC()}
		dd := []clickhouse.DeliveryDevice{{Index: 0, Token: sim.Token("cf", i), Platform: "IOS"}}
		if err := e.app.Store.CreateDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		e.targeted(d, dd...)
		if err := targets.Put(ctx, d, 0, dd); err != nil {
			t.Fatal(err)
		}
		reports = append(reports, report{id.String(), dd[0].Token, "delivered"}, report{id.String(), dd[0].Token, "opened"})
	}

	stream := streamReports(e.http.URL, reports, 2, 150*time.Millisecond) // spread over the outage
	for stream.acked.Load() < int64(len(reports))/4 {
		time.Sleep(5 * time.Millisecond)
	}
	// Stop the whole embedded ClickHouse (supervisor, proxy and engine) with
	// the stop command a person uses, and start it again on the same data.
	oldPID := embeddedSupervisor(t)
	stopBegan := time.Now()
	services(t, "stop")
	stopTook := time.Since(stopBegan)
	if alive(oldPID) {
		t.Fatalf("the ClickHouse supervisor (pid %d) still runs after `services.sh stop`", oldPID)
	}
	stoppedAt := stream.acked.Load()
	time.Sleep(time.Minute) // DESIGN: down for a minute loses nothing acknowledged
	duringStop := stream.acked.Load() - stoppedAt
	if conn, err := net.DialTimeout("tcp", chtest.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("something answers on %s while ClickHouse is stopped: the test would not be testing an outage", chtest.Addr())
	}
	startBegan := time.Now()
	services(t, "start")
	startTook := time.Since(startBegan)
	if pid := embeddedSupervisor(t); pid == oldPID {
		t.Fatalf("the supervisor pid is still %d after stop and start", pid)
	}
	t.Logf("services.sh stop took %v, services.sh start %v", stopTook.Round(time.Millisecond), startTook.Round(time.Millisecond))
	stream.wait()
	t.Logf("acknowledged %d before the stop, %d while ClickHouse was down, %d in all", stoppedAt, duringStop, stream.acked.Load())
	if duringStop == 0 {
		t.Errorf("no report was acknowledged while ClickHouse was down")
	}
	flushCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := e.app.Events.Flush(flushCtx); err != nil {
		t.Fatalf("flush after the restart: %v", err)
	}
	e.checkAckedOnce(c.workspaceID, stream.set, len(reports))
}

// embeddedSupervisor is the pid of the `herald clickhouse serve` that
// scripts/services.sh started in this checkout, which must be the ClickHouse
// the tests use.
func embeddedSupervisor(t *testing.T) int {
	t.Helper()
	port := os.Getenv("HERALD_CLICKHOUSE_PORT")
	if port == "" {
		port = "9000"
	}
	if want := "127.0.0.1:" + port; chtest.Addr() != want {
		t.Fatalf("this test stops the embedded ClickHouse at %s, but the tests use %s (HERALD_CLICKHOUSE_ADDR): unset it, or set HERALD_CLICKHOUSE_PORT to match", want, chtest.Addr())
	}
	b, err := os.ReadFile("../.data/clickhouse/supervisor.pid")
	if err != nil {
		t.Fatalf("no embedded ClickHouse runs from this checkout (%v): start it with `bash scripts/services.sh`", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) {
		t.Fatalf("../.data/clickhouse/supervisor.pid names no live process (%q): start ClickHouse with `bash scripts/services.sh`", b)
	}
	return pid
}

// services runs `bash scripts/services.sh ARG` and fails the test if it fails.
func services(t *testing.T, arg string) {
	t.Helper()
	out, err := exec.Command("bash", "../scripts/services.sh", arg).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/services.sh %s: %v\n%s", arg, err, out)
	}
	t.Logf("scripts/services.sh %s:\n%s", arg, bytes.TrimSpace(out))
}

// alive reports a process that exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

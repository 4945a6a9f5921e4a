//go:build chfault

package server_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers/sim"
)

// Stop ClickHouse while reports are being accepted, start it again, and find
// every acknowledged report exactly once. It stops the shared ClickHouse, so
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
		if err := e.app.Store.PutDeliveryDevices(ctx, d, 0, dd); err != nil {
			t.Fatal(err)
		}
		if err := targets.Put(ctx, d, 0, dd); err != nil {
			t.Fatal(err)
		}
		reports = append(reports, report{id.String(), dd[0].Token, "delivered"}, report{id.String(), dd[0].Token, "opened"})
	}

	stream := streamReports(e.http.URL, reports, 2, 150*time.Millisecond) // spread over the outage
	for stream.acked.Load() < int64(len(reports))/4 {
		time.Sleep(5 * time.Millisecond)
	}
	// Restart exactly the server that runs (same config and data folder),
	// whichever checkout started it.
	out, err := exec.Command("pgrep", "-o", "-f", "clickhouse-server --config-file").Output()
	if err != nil {
		t.Fatalf("find the ClickHouse server process: %v", err)
	}
	pid := strings.TrimSpace(string(out))
	cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if out, err := exec.Command("kill", pid).CombinedOutput(); err != nil {
		t.Fatalf("stop ClickHouse: %v %s", err, out)
	}
	stoppedAt := stream.acked.Load()
	time.Sleep(time.Minute) // DESIGN: down for a minute loses nothing acknowledged
	duringStop := stream.acked.Load() - stoppedAt
	for exec.Command("kill", "-0", pid).Run() == nil && !zombie(pid) {
		time.Sleep(100 * time.Millisecond)
	}
	restart := exec.Command("runuser", append([]string{"-u", "clickhouse", "--"}, args...)...)
	restart.Dir = "/"
	if out, err := restart.CombinedOutput(); err != nil {
		t.Fatalf("start ClickHouse again (%v): %v %s", args, err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("clickhouse-client", "-q", "SELECT 1").Run() != nil {
		if time.Now().After(deadline) {
			t.Fatal("ClickHouse did not come back within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
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

// zombie reports a process that exited but was not reaped yet.
func zombie(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

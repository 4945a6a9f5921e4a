//go:build chfault

package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
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

	var next, acked atomic.Int64
	var mu sync.Mutex
	ackedSet := map[report]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(reports)) {
					return
				}
				r := reports[i]
				body := fmt.Sprintf(`{"delivery_id":%q,"event":%q,"device_id":%q}`, r.delivery, r.event, r.token)
				for {
					resp, err := http.Post(e.http.URL+"/push/events", "application/json", strings.NewReader(body))
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == 200 {
							mu.Lock()
							ackedSet[r] = true
							mu.Unlock()
							acked.Add(1)
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(150 * time.Millisecond) // spread the reports over the outage
			}
		}()
	}
	for acked.Load() < int64(len(reports))/4 {
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
	stoppedAt := acked.Load()
	time.Sleep(time.Minute) // DESIGN: down for a minute loses nothing acknowledged
	duringStop := acked.Load() - stoppedAt
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
	wg.Wait()
	t.Logf("acknowledged %d before the stop, %d while ClickHouse was down, %d in all", stoppedAt, duringStop, acked.Load())
	if duringStop == 0 {
		t.Errorf("no report was acknowledged while ClickHouse was down")
	}
	flushCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := e.app.Events.Flush(flushCtx); err != nil {
		t.Fatalf("flush after the restart: %v", err)
	}
	found := map[[2]string]uint64{}
	rows, err := e.app.CH.Query(ctx, `SELECT toString(delivery_id), toString(kind), uniqExact(device_index, attempt) FROM events
		WHERE workspace_id = ? AND kind IN ('delivered', 'opened') GROUP BY delivery_id, kind`, c.workspaceID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var d, k string
		var n uint64
		if err := rows.Scan(&d, &k, &n); err != nil {
			t.Fatal(err)
		}
		found[[2]string{d, k}] = n
	}
	missing, dup := 0, 0
	for r := range ackedSet {
		switch n := found[[2]string{r.delivery, r.event}]; {
		case n == 0:
			missing++
		case n > 1:
			dup++
		}
	}
	if len(ackedSet) != len(reports) || missing != 0 || dup != 0 {
		t.Errorf("acknowledged %d of %d; missing %d, counted twice %d", len(ackedSet), len(reports), missing, dup)
	}
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

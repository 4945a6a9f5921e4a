package server_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/providers/sim"
)

// buildHerald compiles cmd/herald once per test binary.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func heraldBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "herald")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, "github.com/heraldpush/herald/cmd/herald").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcess runs `herald <command>` on e's database, Redis DB, secret
// key and simulators, with the extra HERALD_* settings given; it is
// killed at the end of the test.
func (e *env) startProcess(command string, extra ...string) *exec.Cmd {
	e.t.Helper()
	ca := filepath.Join(e.t.TempDir(), "apns-ca.pem")
	if err := os.WriteFile(ca, e.apns.CACertPEM(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(heraldBinary(e.t), command)
	cmd.Env = append(append(os.Environ(),
		"HERALD_CLICKHOUSE_ADDR="+e.cfg.ClickHouseAddr,
		"HERALD_CLICKHOUSE_DATABASE="+e.cfg.ClickHouseDatabase,
		"HERALD_REDIS_ADDR="+e.cfg.RedisAddr,
		fmt.Sprintf("HERALD_REDIS_DB=%d", e.cfg.RedisDB),
		"HERALD_EVENT_CLAIM_IDLE=1s",
		"HERALD_REPORT_RATE=-1", "HERALD_SEND_RATE=-1",
		"HERALD_SECRET_KEY="+hex.EncodeToString(e.cfg.SecretKey),
		"HERALD_APNS_HOST="+e.apns.URL(), "HERALD_APNS_CA_FILE="+ca,
		"HERALD_FCM_ENDPOINT="+e.fcm.URL(), "HERALD_FCM_TOKEN_URIS="+e.fcm.TokenURL(),
		"HERALD_POLL_INTERVAL=20ms",
	), extra...)
	if os.Getenv("HERALD_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd
}

// startServe runs `herald serve` as a separate process on e's database and
// Redis DB, and waits until it answers /healthz.
func (e *env) startServe(addr string) *exec.Cmd {
	e.t.Helper()
	cmd := e.startProcess("serve", "HERALD_ADDR="+addr)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("herald serve on %s did not answer /healthz within 30s", addr)
	return nil
}

type report struct{ delivery, token, event string }

// SIGKILL the server while apps stream reports at it, restart it, and find
// every acknowledged report in ClickHouse exactly once.
func TestReportsSurviveSIGKILL(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	camp := get(c.mustDo(`mutation { createCampaign(input: {name: "k"}) { id } }`, nil), "createCampaign", "id").(string)
	msg := get(c.mustDo(`mutation($c: ID!) { createPushMessage(input: {campaignId: $c, name: "m", title: "t", body: "b"}) { id } }`, vars{"c": camp}), "createPushMessage", "id").(string)

	// 200 sent deliveries, one device each; two reports per device.
	ctx := context.Background()
	var reports []report
	start := time.Now().Add(-time.Minute)
	for i := 0; i < 200; i++ {
		id := uuidAt(start.Add(time.Duration(i) * time.Millisecond))
		d := clickhouse.Delivery{WorkspaceID: c.workspaceID, ID: id, CampaignID: uuid.MustParse(camp), MessageID: uuid.MustParse(msg),
			PersonID: "p", Audience: "ALL_DEVICES", Data: "{}", CreatedAt: clickhouse.DeliveryTime(id).UTC()}
		if err := e.app.Store.CreateDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		tok := sim.Token("ab", i)
		e.targeted(d, clickhouse.DeliveryDevice{Index: 0, Token: tok, Platform: "IOS"})
		reports = append(reports, report{id.String(), tok, "delivered"}, report{id.String(), tok, "opened"})
	}

	addr := freeAddr(t)
	proc := e.startServe(addr)
	stream := streamReports("http://"+addr, reports, 4, 2*time.Millisecond)
	for stream.acked.Load() < int64(len(reports))*2/5 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = proc.Process.Wait()
	atKill := stream.acked.Load()
	time.Sleep(300 * time.Millisecond)
	e.startServe(addr)
	stream.wait()
	t.Logf("%d reports acknowledged before the SIGKILL, %d in all", atKill, stream.acked.Load())

	// The killed process's unacknowledged buffer entries are taken over by a
	// live writer after the claim idle time; wait until the buffer is empty.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := e.app.Events.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Length == 0 && st.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event buffer not drained after 60s: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.checkAckedOnce(c.workspaceID, stream.set, len(reports))
}

// reportStream posts reports the way an SDK does: each one retried until
// the server answers 200.
type reportStream struct {
	acked atomic.Int64
	set   map[report]bool // acknowledged reports (read after wait)
	mu    sync.Mutex
	wg    sync.WaitGroup
}

// streamReports posts reports to base+"/push/events" from workers
// goroutines, pausing gap after each acknowledged one.
func streamReports(base string, reports []report, workers int, gap time.Duration) *reportStream {
	s := &reportStream{set: map[report]bool{}}
	var next atomic.Int64
	for w := 0; w < workers; w++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				i := next.Add(1) - 1
				if i >= int64(len(reports)) {
					return
				}
				r := reports[i]
				body := fmt.Sprintf(`{"delivery_id":%q,"event":%q,"device_id":%q}`, r.delivery, r.event, r.token)
				for {
					resp, err := client.Post(base+"/push/events", "application/json", strings.NewReader(body))
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							s.mu.Lock()
							s.set[r] = true
							s.mu.Unlock()
							s.acked.Add(1)
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(gap)
			}
		}()
	}
	return s
}

func (s *reportStream) wait() { s.wg.Wait() }

// checkAckedOnce checks that every acknowledged report is in ClickHouse as
// exactly one event (one distinct device and attempt per delivery and
// metric), and that all total reports were acknowledged.
func (e *env) checkAckedOnce(ws string, acked map[report]bool, total int) {
	e.t.Helper()
	rows, err := e.app.CH.Query(context.Background(), `SELECT toString(delivery_id), toString(kind), uniqExact(device_index, attempt) FROM events
		WHERE workspace_id = ? AND kind IN ('delivered', 'opened') GROUP BY delivery_id, kind`, ws)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	found := map[[2]string]uint64{}
	for rows.Next() {
		var d, k string
		var n uint64
		if err := rows.Scan(&d, &k, &n); err != nil {
			e.t.Fatal(err)
		}
		found[[2]string{d, k}] = n
	}
	missing, dup := 0, 0
	for r := range acked {
		switch n := found[[2]string{r.delivery, r.event}]; {
		case n == 0:
			missing++
		case n > 1:
			dup++
		}
	}
	if len(acked) != total || missing != 0 || dup != 0 {
		e.t.Errorf("acknowledged %d of %d; missing %d, counted twice %d", len(acked), total, missing, dup)
	}
}

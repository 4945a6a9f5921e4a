package server_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/providers/sim"
)

// loadPeople writes n people with one device each straight into ClickHouse
// (as many registerDevice calls would), tokens from tokenOf.
func (e *env) loadPeople(ws string, n int, tokenOf func(int) string) {
	e.t.Helper()
	ctx := context.Background()
	pb, err := e.app.CH.PrepareBatch(ctx, "INSERT INTO persons (workspace_id, id, attributes, unsubscribed, created_at, updated_at)")
	if err != nil {
		e.t.Fatal(err)
	}
	db, err := e.app.CH.PrepareBatch(ctx, "INSERT INTO devices (workspace_id, person_id, token, platform, last_used, attributes, state, removed, updated_at)")
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("q%05d", i)
		platform := "IOS"
		if i%2 == 1 {
			platform = "ANDROID"
		}
		if err := pb.Append(ws, id, "{}", uint8(0), now, now); err != nil {
			e.t.Fatal(err)
		}
		if err := db.Append(ws, id, tokenOf(i), platform, now, "{}", "ok", uint8(0), now); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := pb.Send(); err != nil {
		e.t.Fatal(err)
	}
	if err := db.Send(); err != nil {
		e.t.Fatal(err)
	}
}

// startWorkerProcess runs `herald worker` on e's database, Redis DB and
// simulators.
func (e *env) startWorkerProcess(retryBase string) *exec.Cmd {
	e.t.Helper()
	ca := filepath.Join(e.t.TempDir(), "apns-ca.pem")
	if err := os.WriteFile(ca, e.apns.CACertPEM(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(heraldBinary(e.t), "worker")
	cmd.Env = append(os.Environ(),
		"HERALD_CLICKHOUSE_ADDR="+e.cfg.ClickHouseAddr,
		"HERALD_CLICKHOUSE_DATABASE="+e.cfg.ClickHouseDatabase,
		"HERALD_REDIS_ADDR="+e.cfg.RedisAddr,
		fmt.Sprintf("HERALD_REDIS_DB=%d", e.cfg.RedisDB),
		"HERALD_SECRET_KEY="+hex.EncodeToString(e.cfg.SecretKey),
		"HERALD_APNS_HOST="+e.apns.URL(), "HERALD_APNS_CA_FILE="+ca, "HERALD_FCM_ENDPOINT="+e.fcm.URL(), "HERALD_FCM_TOKEN_URIS="+e.fcm.TokenURL(),
		"HERALD_RETRY_BASE="+retryBase, "HERALD_RETRY_MAX=8s", "HERALD_POLL_INTERVAL=50ms",
		"HERALD_CONCURRENCY=20", "HERALD_EVENT_CLAIM_IDLE=1s", "HERALD_SEND_RATE=-1", "HERALD_SEND_TIMEOUT=5s",
	)
	if os.Getenv("HERALD_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd
}

// broadcastAll starts a broadcast to everyone and returns its id.
func (c *client) broadcastAll(msg string) string {
	c.t.Helper()
	return get(c.mustDo(`mutation($m: ID!) { broadcast(input: {messageId: $m}) { id } }`, vars{"m": msg}), "broadcast", "id").(string)
}

func (c *client) progress(id string) (queued, done int) {
	c.t.Helper()
	p := c.mustDo(`query($id: ID!) { broadcast(id: $id) { queued done } }`, vars{"id": id})
	return int(get(p, "broadcast", "queued").(float64)), int(get(p, "broadcast", "done").(float64))
}

// waitProgress polls a broadcast until at least min of its deliveries are
// done and returns how many are, failing the test after timeout.
func (c *client) waitProgress(id string, min int, timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, done := c.progress(id); done >= min {
			return done
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("broadcast did not reach %d deliveries done in %v", min, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slowBroadcastSetup gives a new workspace with credentials n people with
// one device each, whose tokens the simulators accept after 250 ms (so a
// broadcast takes a while), and a message; it stops the in-process worker
// and starts a `herald worker` process instead.
func (e *env) slowBroadcastSetup(n int) (c *client, msg string, tokenOf func(int) string, worker *exec.Cmd) {
	e.t.Helper()
	c = e.withCredentials(e.workspace("a"))
	e.worker.Shutdown()
	tokenOf = func(i int) string { return sim.Token("5100", i) }
	e.loadPeople(c.workspaceID, n, tokenOf)
	return c, c.message("Hello", "news"), tokenOf, e.startWorkerProcess("20ms")
}

// sentAndFailed counts device sends with a sent / failed event.
func (e *env) sentAndFailed(ws string) (sent, failed uint64) {
	e.t.Helper()
	e.flush()
	if err := e.app.CH.QueryRow(context.Background(),
		"SELECT uniqExactIf((delivery_id, device_index), kind = 'sent'), uniqExactIf((delivery_id, device_index), kind = 'failed') FROM events WHERE workspace_id = ?", ws).
		Scan(&sent, &failed); err != nil {
		e.t.Fatal(err)
	}
	return sent, failed
}

// waitAllSent waits until n device sends of the workspace are SENT, failing
// the test as soon as one is FAILED or when timeout passes.
func (e *env) waitAllSent(ws string, n int, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sent, failed := e.sentAndFailed(ws)
		if failed > 0 {
			e.t.Fatalf("%d device sends FAILED", failed)
		}
		if sent == uint64(n) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("only %d of %d devices SENT after %v", sent, n, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkSentOnce checks a broadcast to n people with one device each: one
// delivery per person, exactly one SENT per device, and each token (from
// tokenOf; even i on APNS, odd on FCM) reached the simulators once, or
// twice with the same collapse id — those it counts and returns.
func (e *env) checkSentOnce(ws string, n int, tokenOf func(int) string) (twice int) {
	e.t.Helper()
	// Exactly one SENT per device, and the deliveries once per person.
	var rows, perDevice uint64
	if err := e.app.CH.QueryRow(context.Background(), `SELECT count(), max(c) FROM (SELECT delivery_id, device_index, uniqExact(attempt) AS c
		FROM events WHERE workspace_id = ? AND kind = 'sent' GROUP BY delivery_id, device_index)`, ws).Scan(&rows, &perDevice); err != nil {
		e.t.Fatal(err)
	}
	var deliveries uint64
	if err := e.app.CH.QueryRow(context.Background(), "SELECT uniqExact(id), uniqExact(person_id) FROM deliveries WHERE workspace_id = ?", ws).Scan(&deliveries, new(uint64)); err != nil {
		e.t.Fatal(err)
	}
	if rows != uint64(n) || perDevice != 1 || deliveries != uint64(n) {
		e.t.Errorf("sent rows %d (max per device %d), deliveries %d; want %d, 1, %d", rows, perDevice, deliveries, n, n)
	}
	// Requests per token: one, or two with the same collapse id.
	for i := 0; i < n; i++ {
		tok := tokenOf(i)
		var reqs int
		var keys []string
		if i%2 == 0 {
			for _, r := range e.apns.Requests(tok) {
				keys = append(keys, r.Headers.Get("apns-collapse-id"))
			}
			reqs = len(keys)
		} else {
			for _, r := range e.fcm.Requests(tok) {
				var body struct {
					Message struct {
						Android struct {
							CollapseKey string `json:"collapse_key"`
						} `json:"android"`
					} `json:"message"`
				}
				_ = json.Unmarshal(r.Body, &body)
				keys = append(keys, body.Message.Android.CollapseKey)
			}
			reqs = len(keys)
		}
		switch {
		case reqs == 1:
		case reqs == 2 && keys[0] == keys[1] && keys[0] != "":
			twice++
		default:
			e.t.Errorf("token %d: %d requests with collapse ids %v", i, reqs, keys)
		}
	}
	return twice
}

// SIGKILL the worker in the middle of a 1,000-person broadcast and start
// another: every device ends with exactly one SENT, and each token reached
// the simulators once — except pushes the kill caught between the
// provider's acceptance and the record, which are sent again with the same
// collapse id.
func TestBroadcastSurvivesWorkerSIGKILL(t *testing.T) {
	e := newEnv(t, envOptions{})
	const n = 1000
	c, msg, tokenOf, worker := e.slowBroadcastSetup(n)
	id := c.broadcastAll(msg)
	c.waitProgress(id, n/4, 60*time.Second)
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = worker.Process.Wait()
	_, doneAtKill := c.progress(id)
	e.startWorkerProcess("20ms")

	// Tasks the dead worker held come back when their lease expires (~30 s).
	e.waitAllSent(c.workspaceID, n, 150*time.Second)
	twice := e.checkSentOnce(c.workspaceID, n, tokenOf)
	t.Logf("killed at %d of %d done; %d pushes were sent twice (the kill fell between the provider's acceptance and the record), each with one collapse id", doneAtKill, n, twice)
	if twice > 20 { // at most the worker's concurrency was in flight
		t.Errorf("%d tokens received two pushes, more than the 20 sends in flight", twice)
	}
	// The batches the kill interrupted ran again and wrote only the
	// deliveries they had not: the hourly rollup, which counts inserted
	// rows, counts each person's delivery once. (The overview of the
	// current hour counts deliveries themselves and would not show it.)
	var created uint64
	if err := e.app.CH.QueryRow(context.Background(), "SELECT sum(created) FROM campaign_created WHERE workspace_id = ?", c.workspaceID).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if created != n {
		t.Errorf("campaign_created counts %d deliveries, want %d", created, n)
	}
}

// The providers answer 503 for 30 s in the middle of a broadcast:
// everything is retried (with backoff that outlasts the outage) and ends
// SENT once, nothing FAILED, nothing counted twice.
func TestBroadcastSurvivesProviderOutage(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	e.worker.Shutdown()
	const n = 200
	// Tokens the simulators accept after 250 ms: with 20 sends in flight the
	// broadcast takes about 2.5 s, so the outage starts in its middle even
	// on a busy machine (with instant tokens it could end before the test
	// saw a quarter of it done, and then tested nothing).
	tokenOf := func(i int) string { return sim.Token("5100", i) }
	e.loadPeople(c.workspaceID, n, tokenOf)
	msg := c.message("Hello", "news")
	e.startWorkerProcess("1500ms") // 10 retries span about a minute
	id := c.broadcastAll(msg)
	c.waitProgress(id, n/4, 60*time.Second)
	e.apns.SetOutage(true)
	e.fcm.SetOutage(true)
	before := e.apns.Total() + e.fcm.Total()
	time.Sleep(30 * time.Second)
	during := e.apns.Total() + e.fcm.Total() - before
	e.apns.SetOutage(false)
	e.fcm.SetOutage(false)
	e.waitAllSent(c.workspaceID, n, 120*time.Second)
	t.Logf("%d requests got 503 during the 30 s outage; all %d devices SENT afterwards", during, n)
	if during == 0 {
		t.Error("no request reached the providers during the outage: the test did not test anything")
	}
	o := get(c.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { overview { sent failed created } } } }`, vars{"id": msg}), "pushMessage", "campaign", "overview").(map[string]any)
	if o["sent"].(float64) != n || o["failed"].(float64) != 0 || o["created"].(float64) != n {
		t.Errorf("overview %v, want sent %d, failed 0, created %d", o, n, n)
	}
}

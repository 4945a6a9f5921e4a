package server_test

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/redistest"
)

// exitOf reports, once, how a started process ended.
func exitOf(cmd *exec.Cmd) <-chan string {
	ch := make(chan string, 1)
	go func() {
		st, err := cmd.Process.Wait()
		ch <- fmt.Sprint(st, err)
	}()
	return ch
}

// tryProgress is progress for when the API may fail (Redis is down or just
// back): ok is false when the query failed.
func (c *client) tryProgress(id string) (done int, ok bool) {
	c.t.Helper()
	r := c.do(`query($id: ID!) { broadcast(id: $id) { done } }`, vars{"id": id})
	if len(r.Errors) > 0 {
		return 0, false
	}
	return int(get(r.Data, "broadcast", "done").(float64)), true
}

// SIGKILL Redis (its own, with AOF fsynced on every write) in the middle of
// a 1,000-person broadcast, keep it down a few seconds and start it again:
// `herald serve` and `herald worker` ride it out, the broadcast completes,
// every device ends with exactly one SENT and nothing FAILED, and each token
// reached the simulators once — except sends the outage caught between the
// provider's acceptance and the record, sent again with the same collapse id.
func TestBroadcastSurvivesRedisRestart(t *testing.T) {
	rs := redistest.NewServer(t)
	e := newEnv(t, envOptions{redisAddr: rs.Addr()})
	const n = 1000
	c, msg, tokenOf, worker := e.slowBroadcastSetup(n)
	workerExit := exitOf(worker)
	apiAddr := freeAddr(t)
	serveExit := exitOf(e.startServe(apiAddr))
	api := *c
	api.url = "http://" + apiAddr + "/graphql"
	id := api.broadcastAll(msg)

	start := time.Now()
	doneAtStop := api.waitProgress(id, 300, 60*time.Second)
	pushesAtStop := e.apns.Total() + e.fcm.Total()
	rs.Kill()
	const down = 4 * time.Second
	time.Sleep(down)
	pushesDown := e.apns.Total() + e.fcm.Total() - pushesAtStop
	rs.Start()
	restarted := time.Now()

	// A task whose dequeue or completion the kill cut off stays active
	// until asynq's recoverer takes it (its lease expired over 30 s ago;
	// it looks once a minute): up to two minutes.
	deadline := restarted.Add(180 * time.Second)
	for {
		if done, ok := api.tryProgress(id); ok && done == n {
			break
		}
		if time.Now().After(deadline) {
			done, _ := api.tryProgress(id)
			t.Fatalf("broadcast at %d of %d done %v after Redis came back", done, n, time.Since(restarted))
		}
		time.Sleep(100 * time.Millisecond)
	}
	doneAfter := time.Since(restarted)
	e.waitAllSent(c.workspaceID, n, 180*time.Second-doneAfter)
	recovery := time.Since(restarted)
	for name, exit := range map[string]<-chan string{"herald worker": workerExit, "herald serve": serveExit} {
		select {
		case how := <-exit:
			t.Errorf("%s exited: %s", name, how)
		default:
		}
	}
	twice := e.checkSentOnce(c.workspaceID, n, tokenOf)
	t.Logf("Redis killed at %d of %d deliveries done (%d pushes), down %v (%d pushes meanwhile); after it came back the broadcast was done in %v, all SENT in %v; %v in all; %d pushes were sent twice, each with one collapse id",
		doneAtStop, n, pushesAtStop, down, pushesDown, doneAfter.Round(time.Millisecond), recovery.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), twice)
	if twice > 20 { // at most the worker's concurrency was in flight
		t.Errorf("%d tokens received two pushes, more than the 20 sends in flight", twice)
	}
}

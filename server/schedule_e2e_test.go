package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"syscall"
	"testing"
	"time"

	customerio "github.com/customerio/go-customerio/v3"
	"github.com/hibiken/asynq"

	"github.com/heraldpush/herald/providers/sim"
)

const sendAtMutation = `mutation($in: SendPushInput!) { sendPush(input: $in) { id status sendAt } }`

// scheduleSend schedules msg to p1 at at and returns the delivery id after
// checking the answer says SCHEDULED with that time.
func scheduleSend(t *testing.T, c *client, msg string, at time.Time) string {
	t.Helper()
	d := c.mustDo(sendAtMutation, vars{"in": vars{"messageId": msg, "personId": "p1", "sendAt": at.UTC().Format(time.RFC3339Nano)}})
	if s := get(d, "sendPush", "status"); s != "SCHEDULED" {
		t.Fatalf("sendPush status = %v, want SCHEDULED", s)
	}
	got, err := time.Parse(time.RFC3339Nano, get(d, "sendPush", "sendAt").(string))
	if err != nil || !got.Equal(at.Truncate(time.Millisecond)) {
		t.Fatalf("sendPush sendAt = %v (%v), want %s", get(d, "sendPush", "sendAt"), err, at)
	}
	return get(d, "sendPush", "id").(string)
}

// TestScheduledSend: a send scheduled 2.5 s ahead is SCHEDULED (its
// sendAt shown), reaches no provider before its time, and reaches APNS
// within a second after it, measured at the simulator; it survives a
// worker restart in between and is sent once.
func TestScheduledSend(t *testing.T) {
	e, c, tok, msg := scheduleEnv(t, "sched", "5c01")

	at := time.Now().Add(2500 * time.Millisecond)
	id := scheduleSend(t, c, msg, at)
	if d := c.delivery(id); d.Status != "SCHEDULED" {
		t.Fatalf("delivery(id).status = %s before its time, want SCHEDULED", d.Status)
	}
	// It waits in Asynq's scheduled set, due at the start of its second.
	ti, err := e.inspc.GetTaskInfo("deliver", "deliver:"+id+":0")
	if err != nil {
		t.Fatalf("deliver task: %v", err)
	}
	if ti.State != asynq.TaskStateScheduled || !ti.NextProcessAt.Equal(at.Truncate(time.Second)) {
		t.Fatalf("deliver task %s for %s; want scheduled for %s", ti.State, ti.NextProcessAt, at.Truncate(time.Second))
	}
	e.restartWorker() // the task waits in Redis, not in the worker
	for time.Now().Before(at.Add(-100 * time.Millisecond)) {
		if n := e.apns.Count(tok); n != 0 {
			t.Fatalf("APNS got %d requests %s before the send time", n, time.Until(at))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("status = %s (%s), want SENT", d.Status, fmtDevices(d))
	}
	onTime(t, e, tok, at, "scheduled send")
	time.Sleep(500 * time.Millisecond)
	if n := e.apns.Count(tok); n != 1 {
		t.Errorf("APNS got %d requests in all, want 1", n)
	}
}

// TestCancelScheduledSend: a scheduled send canceled before its time
// becomes FAILED "Canceled before its send time" and sends nothing; it
// cannot be canceled twice, and a send at once cannot be canceled.
// Times in the past or over 90 days ahead are refused.
func TestCancelScheduledSend(t *testing.T) {
	e, c, tok, msg := scheduleEnv(t, "cancel", "5c02")

	id := scheduleSend(t, c, msg, time.Now().Add(time.Hour))
	const cancel = `mutation($id: ID!) { cancelDelivery(id: $id) { id sendAt } }`
	t0 := time.Now()
	c.mustDo(cancel, vars{"id": id})
	d := c.waitFinal(id)
	t.Logf("canceled in %s", time.Since(t0))
	if d.Status != "FAILED" || d.FailureReason == nil || *d.FailureReason != "Canceled before its send time" {
		t.Fatalf("canceled delivery: %s %v, want FAILED \"Canceled before its send time\"", d.Status, d.FailureReason)
	}
	if n := e.apns.Count(tok); n != 0 {
		t.Errorf("APNS got %d requests for a canceled send", n)
	}
	if p := get(c.mustDo(`query($id: ID!) { delivery(id: $id) { push { title } } }`, vars{"id": id}), "delivery", "push"); p != nil {
		t.Errorf("a canceled send's push = %v, want null (nothing was rendered)", p)
	}
	if r := c.do(cancel, vars{"id": id}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("second cancel: %q %+v, want BAD_USER_INPUT", r.code(), r.Errors)
	}
	now := c.send(msg, "p1", "ALL_DEVICES", "")
	if r := c.do(cancel, vars{"id": now}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("cancel of a send at once: %q %+v, want BAD_USER_INPUT", r.code(), r.Errors)
	}
	for name, at := range map[string]time.Time{"past": time.Now().Add(-time.Minute), "91 days": time.Now().Add(91 * 24 * time.Hour)} {
		r := c.do(sendAtMutation, vars{"in": vars{"messageId": msg, "personId": "p1", "sendAt": at.UTC().Format(time.RFC3339)}})
		if f, _ := firstField(r); r.code() != "BAD_USER_INPUT" || f != "input.sendAt" {
			t.Errorf("sendAt %s: %q on %q (%+v), want BAD_USER_INPUT on input.sendAt", name, r.code(), f, r.Errors)
		}
	}
	for _, status := range []string{"SCHEDULED", "DRAFT"} {
		r := c.do(`query($s: [DeliveryStatus!]) { deliveries(filter: {status: $s}) { edges { node { id } } } }`, vars{"s": []string{status}})
		if f, _ := firstField(r); r.code() != "BAD_USER_INPUT" || f != "filter.status" {
			t.Errorf("logs filtered by %s: %q on %q (%+v), want BAD_USER_INPUT on filter.status", status, r.code(), f, r.Errors)
		}
	}
}

// TestSendPushClientSendAt: go-customerio's SendPush with SendAt
// (send_push.go:16) schedules the send; a time in the past is a 400
// naming send_at.
func TestSendPushClientSendAt(t *testing.T) {
	e, c, tok, msg := scheduleEnv(t, "cio-sched", "5c03")
	api := e.apiClient(c)

	at := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	sec := at.Unix()
	resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
		Identifiers: map[string]string{"id": "p1"}, SendAt: &sec})
	if err != nil {
		t.Fatalf("SendPush with send_at: %v", err)
	}
	if d := c.delivery(resp.DeliveryID); d.Status != "SCHEDULED" {
		t.Fatalf("status = %s, want SCHEDULED", d.Status)
	}
	if d := c.waitFinal(resp.DeliveryID); d.Status != "SENT" {
		t.Fatalf("status = %s, want SENT", d.Status)
	}
	if reqs := e.apns.Requests(tok); len(reqs) != 1 || reqs[0].Time.Before(at) {
		t.Errorf("APNS requests %d, first at %v; want 1 at or after %s", len(reqs), reqs, at)
	}
	past := time.Now().Add(-time.Hour).Unix()
	_, err = api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
		Identifiers: map[string]string{"id": "p1"}, SendAt: &past})
	var terr *customerio.TransactionalError
	if !errors.As(err, &terr) || terr.StatusCode != 400 || terr.Err[:8] != "send_at:" {
		t.Errorf("send_at in the past: %v, want 400 naming send_at", err)
	}
}

// onTime checks that APNS got exactly one request for tok, 0 to 1 s after
// at (what names the send in the log and errors), and returns it.
func onTime(t *testing.T, e *env, tok string, at time.Time, what string) []sim.Request {
	t.Helper()
	reqs := e.apns.Requests(tok)
	if len(reqs) != 1 {
		t.Fatalf("%s: APNS got %d requests for %s, want 1", what, len(reqs), tok[:8])
	}
	late := reqs[0].Time.Sub(at)
	t.Logf("%s reached APNS %s after its time", what, late.Round(time.Millisecond))
	if late < 0 || late >= time.Second {
		t.Errorf("%s reached APNS %s after its time, want within [0, 1 s)", what, late)
	}
	return reqs
}

// scheduleEnv is a Herald with one workspace, person p1 with one iOS
// device (token prefix prefix) and a message.
func scheduleEnv(t *testing.T, ws, prefix string) (*env, *client, string, string) {
	t.Helper()
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace(ws))
	tok := sim.Token(prefix, 1)
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", tok, time.Now().Add(-time.Minute))
	return e, c, tok, c.message("Hi {{ customer.first_name }}", "Scheduled")
}

// firstField is the first error's extensions.field.
func firstField(r response) (string, bool) {
	if len(r.Errors) == 0 {
		return "", false
	}
	f, ok := r.Errors[0].Extensions["field"].(string)
	return f, ok
}

// TestScheduledBroadcast: a broadcast scheduled 2.5 s ahead makes no
// deliveries before its time; then every person's push reaches APNS
// within a second after it, and the deliveries are created at the send
// time. One scheduled an hour ahead and canceled makes none, shows
// canceled, and cannot be canceled again; one sent at once cannot be
// canceled.
func TestScheduledBroadcast(t *testing.T) {
	e, c, tok, msg := scheduleEnv(t, "bcast-sched", "5c04")
	tok2 := sim.Token("5c05", 1)
	c.person("p2", vars{"first_name": "Bo"}, false)
	c.device("p2", "IOS", tok2, time.Now().Add(-time.Minute))

	const create = `mutation($in: BroadcastInput!) { broadcast(input: $in) { id sendAt canceled } }`
	const read = `query($id: ID!) { broadcast(id: $id) { total queued done sendAt canceled } }`
	at := time.Now().Add(2500 * time.Millisecond)
	b := c.mustDo(create, vars{"in": vars{"messageId": msg, "personIds": []string{"p1", "p2"}, "sendAt": at.UTC().Format(time.RFC3339Nano)}})
	id := get(b, "broadcast", "id").(string)
	if s, _ := get(b, "broadcast", "sendAt").(string); s == "" || get(b, "broadcast", "canceled") != false {
		t.Fatalf("broadcast answer: %v", b)
	}
	for time.Now().Before(at.Add(-100 * time.Millisecond)) {
		if n := e.apns.Count(tok) + e.apns.Count(tok2); n != 0 {
			t.Fatalf("APNS got %d requests %s before the send time", n, time.Until(at))
		}
		if q := get(c.mustDo(read, vars{"id": id}), "broadcast", "queued"); q != 0.0 {
			t.Fatalf("broadcast queued %v deliveries before its time", q)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(15 * time.Second)
	for (e.apns.Count(tok) < 1 || e.apns.Count(tok2) < 1) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, tk := range []string{tok, tok2} {
		reqs := onTime(t, e, tk, at, "the broadcast's send")
		var p map[string]any
		if err := json.Unmarshal(reqs[0].Body, &p); err != nil {
			t.Fatal(err)
		}
		d := c.delivery(p["CIO-Delivery-ID"].(string))
		if d.CreatedAt.Sub(at.Truncate(time.Millisecond)).Abs() > time.Millisecond {
			t.Errorf("delivery createdAt %s, want the send time %s", d.CreatedAt, at)
		}
	}

	later := c.mustDo(create, vars{"in": vars{"messageId": msg, "sendAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	lid := get(later, "broadcast", "id").(string)
	const cancel = `mutation($id: ID!) { cancelBroadcast(id: $id) { id canceled } }`
	if got := get(c.mustDo(cancel, vars{"id": lid}), "cancelBroadcast", "canceled"); got != true {
		t.Errorf("cancelBroadcast canceled = %v, want true", got)
	}
	if got := get(c.mustDo(read, vars{"id": lid}), "broadcast", "canceled"); got != true {
		t.Errorf("broadcast(id).canceled = %v after cancelBroadcast, want true", got)
	}
	if n, err := e.inspc.GetTaskInfo("deliver", "fanout:"+lid+":0"); err == nil {
		t.Errorf("the canceled broadcast's fan-out task is still queued: %+v", n)
	}
	if r := c.do(cancel, vars{"id": lid}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("second cancelBroadcast: %q %+v, want BAD_USER_INPUT", r.code(), r.Errors)
	}
	if r := c.do(cancel, vars{"id": id}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("cancelBroadcast after it started: %q %+v, want BAD_USER_INPUT", r.code(), r.Errors)
	}
	now := c.mustDo(create, vars{"in": vars{"messageId": msg, "personIds": []string{"p1"}}})
	if r := c.do(cancel, vars{"id": get(now, "broadcast", "id")}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("cancelBroadcast of one sent at once: %q %+v, want BAD_USER_INPUT", r.code(), r.Errors)
	}
	if r := c.do(create, vars{"in": vars{"messageId": msg, "sendAt": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("broadcast sendAt in the past: %q, want BAD_USER_INPUT", r.code())
	}
}

// TestScheduledSendSurvivesWorkerSIGKILL: with `herald worker` processes
// only, a send scheduled 4 s ahead outlives its worker being SIGKILLed a
// second later: a new worker process sends it once, on time.
func TestScheduledSendSurvivesWorkerSIGKILL(t *testing.T) {
	e, c, tok, msg := scheduleEnv(t, "sched-kill", "5c06")
	e.worker.Shutdown() // worker processes only from here on
	first := e.startProcess("worker")
	waitWorker(t, e, first.Process.Pid)
	at := time.Now().Add(4 * time.Second)
	id := scheduleSend(t, c, msg, at)
	time.Sleep(time.Second)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = first.Process.Wait()
	second := e.startProcess("worker")
	waitWorker(t, e, second.Process.Pid)
	if time.Now().After(at) {
		t.Fatalf("the second worker came up %s after the send time", time.Since(at))
	}
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("status = %s (%s), want SENT", d.Status, fmtDevices(d))
	}
	time.Sleep(500 * time.Millisecond)
	onTime(t, e, tok, at, "after the SIGKILL, the scheduled send")
}

// waitWorker waits until the worker process pid has registered with Asynq.
func waitWorker(t *testing.T, e *env, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		servers, _ := e.inspc.Servers()
		for _, s := range servers {
			if s.PID == pid {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("worker process %d did not register with Asynq within 30 s", pid)
}

// TestDrafts: a send made as a draft (sendPush draft, go-customerio's
// QueueDraft, send_push.go:15) is DRAFT and sends nothing until sendDraft
// sends it, once; a canceled draft is FAILED "Canceled before its send
// time" and cannot be sent; a draft has no sendAt.
func TestDrafts(t *testing.T) {
	e, c, tok, msg := scheduleEnv(t, "drafts", "5c07")
	api := e.apiClient(c)
	const sendDraft = `mutation($id: ID!) { sendDraft(id: $id) { id status } }`
	d := c.mustDo(sendAtMutation, vars{"in": vars{"messageId": msg, "personId": "p1", "draft": true}})
	id := get(d, "sendPush", "id").(string)
	if s := get(d, "sendPush", "status"); s != "DRAFT" {
		t.Fatalf("sendPush draft status = %v, want DRAFT", s)
	}
	e.idle()
	if got := c.delivery(id); got.Status != "DRAFT" || e.apns.Count(tok) != 0 {
		t.Fatalf("a draft: status %s, %d APNS requests; want DRAFT and none", got.Status, e.apns.Count(tok))
	}
	if s := get(c.mustDo(sendDraft, vars{"id": id}), "sendDraft", "status"); s != "ATTEMPTED" {
		t.Errorf("sendDraft status = %v, want ATTEMPTED", s)
	}
	if got := c.waitFinal(id); got.Status != "SENT" {
		t.Fatalf("sent draft: %s", got.Status)
	}
	if r := c.do(sendDraft, vars{"id": id}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("second sendDraft: %q, want BAD_USER_INPUT", r.code())
	}
	e.idle()
	if n := e.apns.Count(tok); n != 1 {
		t.Errorf("APNS got %d requests for the draft, want 1", n)
	}

	yes := true
	resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
		Identifiers: map[string]string{"id": "p1"}, QueueDraft: &yes})
	if err != nil {
		t.Fatalf("SendPush queue_draft: %v", err)
	}
	if got := c.delivery(resp.DeliveryID); got.Status != "DRAFT" {
		t.Fatalf("queue_draft: %s, want DRAFT", got.Status)
	}
	c.mustDo(`mutation($id: ID!) { cancelDelivery(id: $id) { id } }`, vars{"id": resp.DeliveryID})
	got := c.waitFinal(resp.DeliveryID)
	if got.Status != "FAILED" || got.FailureReason == nil || *got.FailureReason != "Canceled before its send time" {
		t.Errorf("canceled draft: %s %v", got.Status, got.FailureReason)
	}
	if r := c.do(sendDraft, vars{"id": resp.DeliveryID}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("sendDraft of a canceled draft: %q, want BAD_USER_INPUT", r.code())
	}
	if r := c.do(sendDraft, vars{"id": c.send(msg, "p1", "ALL_DEVICES", "")}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("sendDraft of a send that is not a draft: %q, want BAD_USER_INPUT", r.code())
	}
	r := c.do(sendAtMutation, vars{"in": vars{"messageId": msg, "personId": "p1", "draft": true, "sendAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	if f, _ := firstField(r); r.code() != "BAD_USER_INPUT" || f != "input.draft" {
		t.Errorf("a draft with sendAt: %q on %q, want BAD_USER_INPUT on input.draft", r.code(), f)
	}
	e.idle()
	if n := e.apns.Count(tok); n != 2 {
		t.Errorf("APNS got %d requests in all, want 2 (the sent draft and the send at once)", n)
	}
}

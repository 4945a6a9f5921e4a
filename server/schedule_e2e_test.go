package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	customerio "github.com/customerio/go-customerio/v3"

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
	reqs := e.apns.Requests(tok)
	if len(reqs) != 1 {
		t.Fatalf("APNS got %d requests, want 1", len(reqs))
	}
	late := reqs[0].Time.Sub(at)
	t.Logf("scheduled send reached APNS %s after its time", late.Round(time.Millisecond))
	if late < 0 || late >= time.Second {
		t.Errorf("the push reached APNS %s after its time, want within [0, 1 s)", late)
	}
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
	if r := c.do(`query { deliveryLogs(filter: {status: [SCHEDULED]}) { edges { node { id } } } }`, nil); r.code() != "BAD_USER_INPUT" {
		t.Errorf("logs filtered by SCHEDULED: %q %+v, want BAD_USER_INPUT", r.code(), r.Errors)
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

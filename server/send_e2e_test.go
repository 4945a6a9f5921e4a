package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers/sim"
)

// One person, three devices: accepted (iOS), BadDeviceToken (Android) and
// flaky-2 (iOS). While the flaky device retries the delivery is ATTEMPTED;
// then it is SENT with device statuses SENT / BOUNCED / SENT and 3 attempts.
func TestSendAllDevicesWithFlakyDevice(t *testing.T) {
	e := newEnv(t, envOptions{retryBase: time.Second}) // asynq due times are whole seconds: see jobs.dueInWholeSeconds
	c := e.withCredentials(e.workspace("a"))
	ok, bad, flaky := sim.Token("a11", 1), sim.Token("badd", 1), sim.Token("f1a2", 1)
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", ok, time.Now().Add(-time.Hour))
	c.device("p1", "ANDROID", bad, time.Now().Add(-2*time.Hour))
	c.device("p1", "IOS", flaky, time.Now().Add(-3*time.Hour))
	msg := c.message("Hi {{ customer.first_name }}", "Your order {{ event.order | default: \"\" }} shipped")
	id := c.send(msg, "p1", "ALL_DEVICES", "")

	sawAttempted := false
	deadline := time.Now().Add(30 * time.Second)
	var d delivery
	for time.Now().Before(deadline) {
		d = c.delivery(id)
		st, attempts := d.statusOf(flaky)
		okSt, _ := d.statusOf(ok)
		if d.Status == "ATTEMPTED" && st == "PENDING" && attempts >= 1 && okSt == "SENT" {
			sawAttempted = true
		}
		if d.Status != "ATTEMPTED" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawAttempted {
		t.Errorf("never saw the delivery ATTEMPTED while the flaky device was retrying (last: %s %s)", d.Status, fmtDevices(d))
	}
	if d.Status != "SENT" {
		t.Fatalf("status = %s, want SENT (%s)", d.Status, fmtDevices(d))
	}
	type dev struct {
		Status   string
		Attempts int
	}
	got := map[string]dev{}
	for _, dv := range d.Devices {
		got[dv.Token] = dev{dv.Status, dv.Attempts}
	}
	want := map[string]dev{ok: {"SENT", 1}, bad: {"BOUNCED", 1}, flaky: {"SENT", 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("device sends (-want +got):\n%s", diff)
	}
	if d.DevicesTargeted != 3 || d.DevicesAttempted != 3 {
		t.Errorf("targeted/attempted = %d/%d, want 3/3", d.DevicesTargeted, d.DevicesAttempted)
	}
	if d.SentAt == nil {
		t.Error("sentAt is null")
	}
	if n := e.apns.Count(flaky); n != 3 {
		t.Errorf("APNS requests for the flaky token = %d, want 3", n)
	}
	if n := e.fcm.Count(bad); n != 1 {
		t.Errorf("FCM requests for the bad token = %d, want 1", n)
	}
	// The rows the worker wrote: a final attempt is one row, its outcome
	// with the attempt number (0007); only the attempts that were not
	// final have attempt rows.
	e.flush()
	shapes := e.strings(`SELECT arrayStringConcat(arrayMap(x -> concat(x.2, '/', toString(x.3)),
		arraySort(groupUniqArray((toInt8(kind), toString(kind), attempt)))), ' ')
		FROM events WHERE toString(delivery_id) = ? GROUP BY device_index`, id)
	slices.Sort(shapes)
	wantShapes := []string{"targeted/0 attempt/1 attempt/2 sent/3", "targeted/0 bounced/1", "targeted/0 sent/1"}
	if diff := cmp.Diff(wantShapes, shapes); diff != "" {
		t.Errorf("event rows per device (-want +got):\n%s", diff)
	}
	// The payload Apple received carries Customer.io's keys and the rendered text.
	reqs := e.apns.Requests(ok)
	if len(reqs) != 1 {
		t.Fatalf("APNS requests for ok token = %d, want 1", len(reqs))
	}
	var payload map[string]any
	if err := json.Unmarshal(reqs[0].Body, &payload); err != nil {
		t.Fatal(err)
	}
	if payload["CIO-Delivery-ID"] != id || payload["CIO-Delivery-Token"] != ok {
		t.Errorf("payload CIO keys = %v / %v, want %s / %s", payload["CIO-Delivery-ID"], payload["CIO-Delivery-Token"], id, ok)
	}
	if title := get(payload, "aps", "alert", "title"); title != "Hi Ada" {
		t.Errorf("rendered title = %v, want Hi Ada", title)
	}
	if got := reqs[0].Headers.Get("apns-collapse-id"); got != id {
		t.Errorf("apns-collapse-id = %q, want the delivery id %s", got, id)
	}
}

// TestTargetedEventsOfOneAndManyDevices: a delivery to one device writes
// that device's targeted event with its outcome, in one insert (so
// delivery_states has one row for it, not two), and nothing while the
// push is in flight; a delivery to two devices writes both targeted
// events before either is sent, so it never looks finished with a device
// still to send.
func TestTargetedEventsOfOneAndManyDevices(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	slow1, slowA, slowB := sim.Token("5102", 1), sim.Token("5102", 2), sim.Token("5102", 3) // answered after 2 s
	c.person("one", vars{}, false)
	c.device("one", "IOS", slow1, time.Now().Add(-time.Hour))
	c.person("two", vars{}, false)
	c.device("two", "IOS", slowA, time.Now().Add(-time.Hour))
	c.device("two", "ANDROID", slowB, time.Now().Add(-2*time.Hour))
	msg := c.message("Hi", "there")
	one := c.send(msg, "one", "ALL_DEVICES", "")
	two := c.send(msg, "two", "ALL_DEVICES", "")
	shapes := func(id string) string {
		rows := e.strings(`SELECT arrayStringConcat(arraySort(groupArray(concat(toString(device_index), ':', toString(kind)))), ' ')
			FROM events WHERE toString(delivery_id) = ?`, id)
		return strings.Join(rows, "")
	}
	// Both in flight: wait until the simulators hold all three pushes.
	deadline := time.Now().Add(10 * time.Second)
	for e.apns.Count(slow1)+e.apns.Count(slowA)+e.fcm.Count(slowB) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the simulators got %d of the 3 pushes in 10 s", e.apns.Count(slow1)+e.apns.Count(slowA)+e.fcm.Count(slowB))
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.flush()
	if got := shapes(one); got != "" {
		t.Errorf("one device, in flight: events %q, want none yet", got)
	}
	if got := shapes(two); got != "0:targeted 1:targeted" {
		t.Errorf("two devices, in flight: events %q, want both targeted", got)
	}
	for _, id := range []string{one, two} {
		if d := c.waitFinal(id); d.Status != "SENT" {
			t.Fatalf("delivery %s: %s, want SENT (%s)", id, d.Status, fmtDevices(d))
		}
	}
	e.flush()
	if got := shapes(one); got != "0:sent 0:targeted" {
		t.Errorf("one device, sent: events %q, want its targeted and sent", got)
	}
	d := c.delivery(one)
	if len(d.Devices) != 1 || d.Devices[0].Token != slow1 || d.Devices[0].Platform != "IOS" || d.DevicesTargeted != 1 {
		t.Errorf("one device, sent: %+v, want its token and platform from the targeted event", d.Devices)
	}
	states := e.strings(`SELECT toString(count()) FROM delivery_states WHERE toString(delivery_id) = ?`, one)
	if len(states) != 1 || states[0] != "1" {
		t.Errorf("delivery_states rows of the one-device delivery = %v, want 1 (its events in one insert)", states)
	}
}

// LAST_USED sends only to the newest device; CUSTOM_TOKEN only to the given one.
func TestAudiences(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	older, newest, android := sim.Token("01d", 1), sim.Token("ee0", 1), sim.Token("a4d", 1)
	c.person("p1", nil, false)
	c.device("p1", "IOS", older, time.Now().Add(-48*time.Hour))
	c.device("p1", "IOS", newest, time.Now().Add(-time.Minute))
	c.device("p1", "ANDROID", android, time.Now().Add(-time.Hour))
	msg := c.message("Hello", "World")

	d := c.waitFinal(c.send(msg, "p1", "LAST_USED", ""))
	if d.Status != "SENT" || d.DevicesTargeted != 1 {
		t.Fatalf("LAST_USED: status %s, targeted %d; want SENT, 1", d.Status, d.DevicesTargeted)
	}
	e.idle()
	if got := [3]int{e.apns.Count(older), e.apns.Count(newest), e.fcm.Count(android)}; got != [3]int{0, 1, 0} {
		t.Errorf("LAST_USED requests (older, newest, android) = %v, want [0 1 0]", got)
	}

	d = c.waitFinal(c.send(msg, "p1", "CUSTOM_TOKEN", android))
	if d.Status != "SENT" || d.DevicesTargeted != 1 || d.Devices[0].Token != android {
		t.Fatalf("CUSTOM_TOKEN: %+v", d)
	}
	e.idle()
	if got := [3]int{e.apns.Count(older), e.apns.Count(newest), e.fcm.Count(android)}; got != [3]int{0, 1, 1} {
		t.Errorf("after CUSTOM_TOKEN requests (older, newest, android) = %v, want [0 1 1]", got)
	}
}

// Each pre-send failure, with DESIGN.md's exact reason and no provider request.
func TestPresendFailures(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	noCreds := e.workspace("no-credentials")
	tok := sim.Token("0", 1)

	c.person("unsub", nil, true)
	c.device("unsub", "IOS", tok, time.Time{})
	c.person("nameless", vars{"plan": "pro"}, false)
	c.device("nameless", "IOS", sim.Token("0", 2), time.Time{})
	c.person("deviceless", nil, false)
	noCreds.person("p", nil, false)
	noCreds.device("p", "ANDROID", sim.Token("0", 3), time.Time{})

	plain := c.message("Hello", "there")
	named := c.message("Hi {{ customer.first_name }}", "Plan {{ customer.plan }}")
	other := noCreds.message("Hello", "there")
	cases := []struct {
		name   string
		c      *client
		msg    string
		person string
		want   string
	}{
		{"unknown person", c, plain, "nobody", "Customer doesn't exist"},
		{"unsubscribed", c, plain, "unsub", "Customer is unsubscribed"},
		{"missing variable", c, named, "nameless", "Liquid error: variable is missing: customer.first_name"},
		{"no devices", c, plain, "deviceless", "Customer has no devices"},
		{"no credentials", noCreds, other, "p", "Credentials not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.c.waitFinal(tc.c.send(tc.msg, tc.person, "ALL_DEVICES", ""))
			if d.Status != "FAILED" || d.FailureReason == nil || *d.FailureReason != tc.want {
				t.Errorf("status %s, reason %v; want FAILED, %q", d.Status, deref(d.FailureReason), tc.want)
			}
			if d.DevicesAttempted != 0 {
				t.Errorf("devicesAttempted = %d, want 0", d.DevicesAttempted)
			}
		})
	}
	e.idle()
	if n := e.apns.Total() + e.fcm.Total(); n != 0 {
		t.Errorf("providers received %d requests, want 0", n)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// All bad tokens → BOUNCED; Unregistered removes the device; a second bounce
// in a row suppresses a device and the next delivery is SUPPRESSED without a
// request; registering the token again clears its state.
func TestBouncesAndSuppression(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	bad, gone := sim.Token("badd", 7), sim.Token("dead", 7)
	c.person("p1", nil, false)
	c.device("p1", "IOS", bad, time.Now().Add(-time.Hour))
	c.device("p1", "ANDROID", gone, time.Now())
	msg := c.message("Hello", "there")

	d := c.waitFinal(c.send(msg, "p1", "ALL_DEVICES", ""))
	if d.Status != "BOUNCED" {
		t.Fatalf("all bad tokens: status %s (%s), want BOUNCED", d.Status, fmtDevices(d))
	}
	e.idle()
	states := c.deviceStates("p1")
	if diff := cmp.Diff(map[string]string{bad: "BOUNCED"}, states); diff != "" {
		t.Errorf("after first bounce, devices (-want +got):\n%s", diff)
	}

	d = c.waitFinal(c.send(msg, "p1", "ALL_DEVICES", ""))
	e.idle()
	if d.Status != "BOUNCED" || c.deviceStates("p1")[bad] != "SUPPRESSED" {
		t.Fatalf("second bounce: status %s, device state %s; want BOUNCED, SUPPRESSED", d.Status, c.deviceStates("p1")[bad])
	}

	d = c.waitFinal(c.send(msg, "p1", "ALL_DEVICES", ""))
	e.idle()
	if st, attempts := d.statusOf(bad); d.Status != "SUPPRESSED" || st != "SUPPRESSED" || attempts != 0 {
		t.Errorf("third delivery: %s, device %s/%d; want SUPPRESSED, SUPPRESSED/0", d.Status, st, attempts)
	}
	if n := e.apns.Count(bad); n != 2 {
		t.Errorf("APNS requests for the suppressed token = %d, want 2", n)
	}
	if n := e.fcm.Count(gone); n != 1 {
		t.Errorf("FCM requests for the unregistered token = %d, want 1 (it was removed)", n)
	}

	c.device("p1", "IOS", bad, time.Time{})
	if got := c.deviceStates("p1")[bad]; got != "OK" {
		t.Errorf("re-registered device state = %s, want OK", got)
	}
}

func (c *client) deviceStates(personID string) map[string]string {
	c.t.Helper()
	d := c.mustDo(`query($id: ID!) { person(id: $id) { devices { token state } } }`, vars{"id": personID})
	out := map[string]string{}
	for _, dv := range get(d, "person", "devices").([]any) {
		m := dv.(map[string]any)
		out[m["token"].(string)] = m["state"].(string)
	}
	return out
}

// An always-503 device fails after exactly 11 attempts (1 + 10 retries).
func TestAlwaysUnavailableFailsAfterElevenAttempts(t *testing.T) {
	e := newEnv(t, envOptions{retryBase: 5 * time.Millisecond})
	c := e.withCredentials(e.workspace("a"))
	down, downFCM := sim.Token("5030", 1), sim.Token("5030", 2)
	c.person("p1", nil, false)
	c.device("p1", "IOS", down, time.Time{})
	c.device("p1", "ANDROID", downFCM, time.Time{})
	msg := c.message("Hello", "there")
	d := c.waitFinal(c.send(msg, "p1", "ALL_DEVICES", ""))
	e.idle()
	if d.Status != "FAILED" {
		t.Fatalf("status %s, want FAILED", d.Status)
	}
	for _, tok := range []string{down, downFCM} {
		if st, attempts := d.statusOf(tok); st != "FAILED" || attempts != 11 {
			t.Errorf("device %s…: %s/%d attempts, want FAILED/11", tok[:8], st, attempts)
		}
	}
	if n := e.apns.Count(down); n != 11 {
		t.Errorf("APNS requests = %d, want 11", n)
	}
	if n := e.fcm.Count(downFCM); n != 11 {
		t.Errorf("FCM requests = %d, want 11", n)
	}
	if d.FailureReason == nil || !strings.Contains(*d.FailureReason, "retries exhausted") {
		t.Errorf("failure reason %q should say retries were exhausted", deref(d.FailureReason))
	}
}

// The same deliver task run twice makes one request per device and changes
// no count (asynq is at-least-once).
func TestDeliverTaskRunTwice(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	a, b := sim.Token("aa", 1), sim.Token("bb", 1)
	c.person("p1", nil, false)
	c.device("p1", "IOS", a, time.Time{})
	c.device("p1", "ANDROID", b, time.Time{})
	msg := c.message("Hello", "there")
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	before := c.waitFinal(id)
	e.idle()
	countEvents := func() uint64 {
		var n uint64
		if err := e.app.CH.QueryRow(context.Background(),
			"SELECT count() FROM (SELECT DISTINCT device_index, kind, attempt FROM events WHERE toString(delivery_id) = ?)", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	e.flush()
	eventsBefore := countEvents()

	// Run the deliver task again, as asynq may after a crash: same payload,
	// a new task id so the queue accepts it.
	payload, _ := json.Marshal(jobs.DeliverPayload{WorkspaceID: c.workspaceID, DeliveryID: id})
	if _, err := e.app.Asynq.Enqueue(asynq.NewTask(jobs.TypeDeliver, payload, asynq.Queue(jobs.QueueDeliver), asynq.TaskID("again-"+id))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	e.idle()
	e.flush()
	after := c.delivery(id)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("delivery changed (-before +after):\n%s", diff)
	}
	if e.apns.Count(a) != 1 || e.fcm.Count(b) != 1 {
		t.Errorf("requests = %d, %d; want 1 per device", e.apns.Count(a), e.fcm.Count(b))
	}
	if got := countEvents(); got != eventsBefore {
		t.Errorf("distinct events %d → %d", eventsBefore, got)
	}
}

package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	customerio "github.com/customerio/go-customerio/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/heraldpush/herald/providers/sim"
)

// These tests drive Herald with the official Go client,
// github.com/customerio/go-customerio/v3 v3.10.0, unchanged: each covers a
// call that failed before Herald answered it as Customer.io does.

// statusOf is the HTTP status of a Track client error (0 for none).
func statusOf(err error) int {
	var cerr *customerio.CustomerIOError
	if errors.As(err, &cerr) {
		return cerr.StatusCode()
	}
	return 0
}

// Identify(id, nil) sends the body null (customerio.go:92-94 marshals the
// nil map): it is no attributes, so a new person is created with none and
// an existing one is left as is.
func TestTrackIdentifyNil(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	cio := e.trackClient(c)
	if err := cio.Identify("p1", nil); err != nil {
		t.Fatalf("Identify(p1, nil): %v", err)
	}
	if err := cio.Identify("p2", map[string]any{"plan": "basic"}); err != nil {
		t.Fatal(err)
	}
	if err := cio.Identify("p2", nil); err != nil {
		t.Fatalf("Identify(p2, nil): %v", err)
	}
	for id, want := range map[string]map[string]any{"p1": {}, "p2": {"plan": "basic"}} {
		p, _ := c.mustDo(personQuery, vars{"id": id})["person"].(map[string]any)
		if diff := cmp.Diff(want, p["attributes"]); diff != "" {
			t.Errorf("%s attributes (-want +got):\n%s", id, diff)
		}
	}
}

// Delete sends DELETE /api/v1/customers/{id} with no body
// (customerio.go:141-148): the person and their devices are removed, so
// person(id) is NOT_FOUND and a send fails with Customer doesn't exist;
// past deliveries stay.
func TestTrackDeletePerson(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	cio := e.trackClient(c)
	tok := sim.Token("d1", 1)
	if err := cio.Identify("gone", map[string]any{"plan": "basic"}); err != nil {
		t.Fatal(err)
	}
	if err := cio.AddDevice("gone", tok, "ios", nil); err != nil {
		t.Fatal(err)
	}
	msg := c.message("Hi", "there")
	before := c.send(msg, "gone", "ALL_DEVICES", "")
	if d := c.waitFinal(before); d.Status != "SENT" {
		t.Fatalf("before delete: %s, want SENT", d.Status)
	}
	if err := cio.Delete("gone"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if r := c.do(personQuery, vars{"id": "gone"}); r.code() != "NOT_FOUND" {
		t.Errorf("person after Delete: %+v, want NOT_FOUND", r)
	}
	if d := c.delivery(before); d.Status != "SENT" {
		t.Errorf("past delivery after Delete: %s, want SENT (kept)", d.Status)
	}
	after := c.send(msg, "gone", "ALL_DEVICES", "")
	if d := c.waitFinal(after); d.Status != "FAILED" || d.FailureReason == nil || *d.FailureReason != "Customer doesn't exist" {
		t.Errorf("send after Delete: %s %v, want FAILED Customer doesn't exist", d.Status, d.FailureReason)
	}
	// Deleting again is 404 with Customer.io's body; identifying again
	// makes a new person without the old devices.
	var cerr *customerio.CustomerIOError
	if err := cio.Delete("gone"); !errors.As(err, &cerr) || cerr.StatusCode() != 404 || metaErrorBody(cerr.Body()) == "" {
		t.Errorf("second Delete: %v, want 404 with meta.error", err)
	}
	if err := cio.Identify("gone", nil); err != nil {
		t.Fatal(err)
	}
	p, _ := c.mustDo(personQuery, vars{"id": "gone"})["person"].(map[string]any)
	if devs, _ := p["devices"].([]any); len(devs) != 0 || len(p["attributes"].(map[string]any)) != 0 {
		t.Errorf("re-identified person: %v, want no devices or attributes", p)
	}
}

// TrackAnonymous sends POST /api/v1/events with {"name","data",
// "anonymous_id"} (customerio.go:121-133): accepted, and nothing is
// recorded (Herald has no anonymous people; track.go anonymousEvent), so
// it converts nothing, not even a person whose id equals the anonymous id.
func TestTrackAnonymous(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	cio := e.trackClient(c)
	camp := c.mustDo(`mutation { createCampaign(input: {name: "Goal", conversionGoal: {event: "purchase"}}) { id } }`, nil)
	msg := get(c.mustDo(`mutation($c: ID!) { createPushMessage(input: {campaignId: $c, name: "m", title: "Hi", body: "there"}) { id } }`,
		vars{"c": get(camp, "createCampaign", "id")}), "createPushMessage", "id").(string)
	c.person("anon-1", nil, false)
	c.device("anon-1", "IOS", sim.Token("a1", 1), time.Time{})
	id := c.send(msg, "anon-1", "ALL_DEVICES", "")
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("delivery %s, want SENT", d.Status)
	}
	if err := cio.TrackAnonymous("anon-1", "purchase", map[string]any{"price": 1}, customerio.WithEventID("01HZY3K8W6V7XQ2B5N9C4D1E0F")); err != nil {
		t.Fatalf("TrackAnonymous: %v", err)
	}
	if err := cio.TrackAnonymous("", "purchase", nil); err != nil {
		t.Fatalf("TrackAnonymous without an anonymous id: %v", err)
	}
	e.flush()
	if n := e.personEvents(); n != 0 {
		t.Errorf("person events = %d, want 0", n)
	}
	if d := c.delivery(id); d.Status != "SENT" {
		t.Errorf("an anonymous event converted: %s", d.Status)
	}
	// The body is still checked.
	if status, _, m := e.rest("POST", "/api/v1/events", `{"anonymous_id":"x"}`, basic(e.siteID(c), c.key)); status != 400 || metaError(m) == "" {
		t.Errorf("anonymous event without a name: %d %v, want 400", status, m)
	}
	if status, _, _ := e.rest("POST", "/api/v1/events", `{"name":"x"}`, noAuth); status != 401 {
		t.Errorf("anonymous event without credentials: %d, want 401", status)
	}
}

// MergeCustomers sends POST /api/v1/merge_customers with
// {"primary":{"id"},"secondary":{"id"}} (customerio.go:207-221): the
// primary keeps its attributes and gains the secondary's others, the
// secondary's devices move to it, and the secondary is NOT_FOUND.
func TestTrackMergeCustomers(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	cio := e.trackClient(c)
	keep, moved := sim.Token("b1", 1), sim.Token("b2", 2)
	if err := cio.Identify("primary", map[string]any{"plan": "premium", "email": "p@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := cio.AddDevice("primary", keep, "ios", map[string]any{"last_used": time.Now().Add(-time.Hour).Unix()}); err != nil {
		t.Fatal(err)
	}
	if err := cio.Identify("secondary", map[string]any{"plan": "basic", "city": "Oslo"}); err != nil {
		t.Fatal(err)
	}
	if err := cio.AddDevice("secondary", moved, "android", map[string]any{"last_used": 1514764800, "app_version": "2.0"}); err != nil {
		t.Fatal(err)
	}
	id := func(v string) customerio.Identifier {
		return customerio.Identifier{Type: customerio.IdentifierTypeID, Value: v}
	}
	if err := cio.MergeCustomers(id("primary"), id("secondary")); err != nil {
		t.Fatalf("MergeCustomers: %v", err)
	}
	p, _ := c.mustDo(personQuery, vars{"id": "primary"})["person"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"plan": "premium", "email": "p@example.com", "city": "Oslo"}, p["attributes"]); diff != "" {
		t.Errorf("primary attributes (-want +got):\n%s", diff)
	}
	devs, _ := p["devices"].([]any)
	got := map[string]any{}
	for _, d := range devs {
		m := d.(map[string]any)
		got[m["token"].(string)] = m["platform"]
		if m["token"] == moved && (m["lastUsedAt"] != "2018-01-01T00:00:00Z" || fmt.Sprint(m["attributes"]) != "map[app_version:2.0]") {
			t.Errorf("moved device lost its data: %v", m)
		}
	}
	if diff := cmp.Diff(map[string]any{keep: "IOS", moved: "ANDROID"}, got); diff != "" {
		t.Errorf("primary devices (-want +got):\n%s", diff)
	}
	if r := c.do(personQuery, vars{"id": "secondary"}); r.code() != "NOT_FOUND" {
		t.Errorf("secondary after merge: %+v, want NOT_FOUND", r)
	}
	// A send to the primary reaches the moved device.
	d := c.waitFinal(c.send(c.message("Hi", "there"), "primary", "ALL_DEVICES", ""))
	if d.Status != "SENT" || d.DevicesTargeted != 2 {
		t.Errorf("send after merge: %s to %d devices, want SENT to 2", d.Status, d.DevicesTargeted)
	}
	// Refusals: a missing person is 404; email identifiers and merging a
	// person into itself are 400 naming the field.
	if err := cio.MergeCustomers(id("primary"), id("secondary")); statusOf(err) != 404 {
		t.Errorf("merging a removed secondary: %v, want 404", err)
	}
	email := customerio.Identifier{Type: customerio.IdentifierTypeEmail, Value: "p@example.com"}
	if err := cio.MergeCustomers(id("primary"), email); statusOf(err) != 400 {
		t.Errorf("merging by email: %v, want 400", err)
	}
	if err := cio.MergeCustomers(id("primary"), id("primary")); statusOf(err) != 400 {
		t.Errorf("merging a person into itself: %v, want 400", err)
	}
}

// Unknown routes and methods under /api/ answer Customer.io's JSON error
// body, which the client returns as the error's body (customerio.go:162-168).
func TestTrackUnknownRoute(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	cred := basic(e.siteID(c), c.key)
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/customers/5/attributes"},
		{"POST", "/api/v2/entity"},
		{"PATCH", "/api/v1/customers/5"},
		{"GET", "/api/v1/push/events"},
	} {
		status, _, m := e.rest(r.method, r.path, `{}`, cred)
		if status != 404 || metaError(m) == "" {
			t.Errorf("%s %s → %d %v; want 404 with meta.error", r.method, r.path, status, m)
		}
	}
}

// The send API client (send_push.go:34) reaches a device named by its
// token with To, and its errors carry meta.error (transactional.go:43-58).
func TestSendPushClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	api := e.apiClient(c)
	a, b := sim.Token("c1", 1), sim.Token("c2", 1)
	c.person("12345", vars{"first_name": "Sarah"}, false)
	c.device("12345", "IOS", a, time.Now().Add(-time.Minute))
	c.device("12345", "IOS", b, time.Now().Add(-time.Hour))
	msg := c.message("Hi {{ customer.first_name }}", "Welcome")
	resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
		Identifiers: map[string]string{"id": "12345"}, To: b, Title: "Order {{ trigger.order }}",
		MessageData: map[string]any{"order": "A-1"}, CustomData: []byte(`{"screen":"orders"}`)})
	if err != nil {
		t.Fatalf("SendPush: %v", err)
	}
	d := c.waitFinal(resp.DeliveryID)
	if d.Status != "SENT" || d.DevicesTargeted != 1 || d.Devices[0].Token != b {
		t.Errorf("delivery: %s %s; want SENT to %s", d.Status, fmtDevices(d), b)
	}
	_, err = api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: "0190d6b2-0000-7000-8000-000000000000",
		Identifiers: map[string]string{"id": "12345"}})
	var terr *customerio.TransactionalError
	if !errors.As(err, &terr) || terr.StatusCode != 404 || terr.Err == "" {
		t.Errorf("unknown message: %v, want 404 with meta.error", err)
	}
}

package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	customerio "github.com/customerio/go-customerio/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/heraldpush/herald/providers/sim"
)

// auth sets a request's credentials.
type auth func(*http.Request)

func basic(site, key string) auth {
	return func(r *http.Request) { r.SetBasicAuth(site, key) }
}

func bearer(key string) auth {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}

func noAuth(*http.Request) {}

// rest makes one REST request; it returns the status, headers and the JSON
// body (nil when the body is not a JSON object).
func (e *env) rest(method, path, body string, a auth) (int, http.Header, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	a(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header, m
}

// siteID reads the workspace's site id (herald workspace create prints it).
func (e *env) siteID(c *client) string {
	e.t.Helper()
	var site string
	if err := e.app.CH.QueryRow(context.Background(), "SELECT site_id FROM workspaces FINAL WHERE id = ?", c.workspaceID).Scan(&site); err != nil {
		e.t.Fatal(err)
	}
	return site
}

// metaError is Customer.io's error body {"meta":{"error": …}}.
func metaError(m map[string]any) string {
	s, _ := get(m, "meta", "error").(string)
	return s
}

const personQuery = `query($id: ID!) { person(id: $id) { attributes unsubscribed
  devices { token platform lastUsedAt attributes state } } }`

// trackClient is the official Go client, github.com/customerio/go-customerio/v3
// v3.10.0, pointed at Herald with customerio.WithURL (options.go:88), using the
// workspace's site id and API key as Customer.io's Track API credentials
// (customerio.go:61, NewTrackClient).
func (e *env) trackClient(c *client) *customerio.CustomerIO {
	e.t.Helper()
	return customerio.NewTrackClient(e.siteID(c), c.key, customerio.WithURL(e.http.URL))
}

// apiClient is the same module's App API client (api.go:101, NewAPIClient),
// which sends with Authorization: Bearer <key> (api.go:119).
func (e *env) apiClient(c *client) *customerio.APIClient {
	return customerio.NewAPIClient(c.key, customerio.WithURL(e.http.URL))
}

// The Track API's calls, made by the official Go client, change what
// GraphQL shows; an event converts a delivery as trackEvent does.
func TestTrackAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	cio := e.trackClient(c)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	person := func(id string) map[string]any {
		t.Helper()
		p, _ := c.mustDo(personQuery, vars{"id": id})["person"].(map[string]any)
		return p
	}

	// Identify sends PUT /api/v1/customers/{id} with the attributes as the
	// body (customerio.go:88-95):
	// https://docs.customer.io/integrations/api/track/tag/track-customers/identify/
	must("identify", cio.Identify("5", map[string]any{"email": "bob@example.com", "created_at": 1361205308, "first_name": "Bob", "plan": "basic"}))
	p := person("5")
	want := map[string]any{"email": "bob@example.com", "created_at": float64(1361205308), "first_name": "Bob", "plan": "basic"}
	if diff := cmp.Diff(want, p["attributes"]); diff != "" {
		t.Errorf("attributes after identify (-want +got):\n%s", diff)
	}
	// Merged as identifyPerson: null removes, unsubscribed sets the flag.
	must("identify merge", cio.Identify("5", map[string]any{"plan": "premium", "first_name": nil, "unsubscribed": true}))
	p = person("5")
	want = map[string]any{"email": "bob@example.com", "created_at": float64(1361205308), "plan": "premium"}
	if diff := cmp.Diff(want, p["attributes"]); diff != "" {
		t.Errorf("attributes after merge (-want +got):\n%s", diff)
	}
	if p["unsubscribed"] != true {
		t.Errorf("unsubscribed = %v, want true", p["unsubscribed"])
	}
	must("identify unsubscribed false", cio.Identify("5", map[string]any{"unsubscribed": false, "first_name": "Bob"}))
	if p = person("5"); p["unsubscribed"] != false {
		t.Errorf("unsubscribed = %v, want false", p["unsubscribed"])
	}
	// _update only updates an existing person.
	must("identify _update", cio.Identify("ghost", map[string]any{"_update": true, "plan": "basic"}))
	if r := c.do(personQuery, vars{"id": "ghost"}); r.code() != "NOT_FOUND" {
		t.Errorf("_update created a person: %+v", r)
	}

	// AddDevice sends PUT /api/v1/customers/{id}/devices with
	// {"device":{"id","platform","last_used","attributes"}}, where a
	// last_used in data becomes a string (device.go:71-88 AddDeviceCtx;
	// device.go:42 in newDeviceV1: d.LastUsed = fmt.Sprintf("%v", v)):
	// https://docs.customer.io/integrations/api/track/tag/track-customers/add_device/
	ios, android := sim.Token("10", 1), sim.Token("a0", 2)
	must("add iOS device", cio.AddDevice("5", ios, "ios", map[string]any{"last_used": 1514764800, "app_version": "1.2"}))
	must("add Android device", cio.AddDevice("5", android, "android", nil))
	devs, _ := person("5")["devices"].([]any)
	if len(devs) != 2 {
		t.Fatalf("devices = %v, want 2", devs)
	}
	byToken := map[string]map[string]any{}
	for _, d := range devs {
		m := d.(map[string]any)
		byToken[m["token"].(string)] = m
	}
	wantIOS := map[string]any{"token": ios, "platform": "IOS", "lastUsedAt": "2018-01-01T00:00:00Z", "attributes": map[string]any{"app_version": "1.2"}, "state": "OK"}
	if diff := cmp.Diff(wantIOS, byToken[ios]); diff != "" {
		t.Errorf("iOS device (-want +got):\n%s", diff)
	}
	if byToken[android]["platform"] != "ANDROID" {
		t.Errorf("android device = %v", byToken[android])
	}
	// A device for a new person creates the person, as Customer.io does.
	must("add device for a new person", cio.AddDevice("6", sim.Token("60", 1), "ios", nil))
	if person("6") == nil {
		t.Error("adding a device did not create the person")
	}

	// DeleteDevice sends DELETE /api/v1/customers/{id}/devices/{token}
	// with no body (device.go:96-106):
	// https://docs.customer.io/integrations/api/track/tag/track-customers/delete_device/
	must("delete device", cio.DeleteDevice("5", android))
	devs, _ = person("5")["devices"].([]any)
	if len(devs) != 1 || devs[0].(map[string]any)["token"] != ios {
		t.Errorf("devices after delete = %v, want only %s", devs, ios)
	}
	// An unknown device is 404, like removeDevice's NOT_FOUND.
	var cerr *customerio.CustomerIOError
	if err := cio.DeleteDevice("5", android); !errors.As(err, &cerr) || cerr.StatusCode() != 404 || metaErrorBody(cerr.Body()) == "" {
		t.Errorf("deleting a removed device: %v; want 404 with meta.error", err)
	}

	// SendPush sends POST /v1/send/push (send_push.go:34, transactional.go:38)
	// and reads {"delivery_id","queued_at"} (transactional.go:77-88).
	camp := c.mustDo(`mutation { createCampaign(input: {name: "Goal", conversionGoal: {event: "purchase"}}) { id } }`, nil)
	msg := get(c.mustDo(`mutation($c: ID!) { createPushMessage(input: {campaignId: $c, name: "m", title: "Hi", body: "there"}) { id } }`,
		vars{"c": get(camp, "createCampaign", "id")}), "createPushMessage", "id").(string)
	sent, err := e.apiClient(c).SendPush(context.Background(), &customerio.SendPushRequest{
		TransactionalMessageID: msg, Identifiers: map[string]string{"id": "5"}, To: "all"})
	must("send push", err)
	if sent.QueuedAt.Before(time.Now().Add(-time.Minute)) {
		t.Errorf("queued_at = %v", sent.QueuedAt)
	}
	id := sent.DeliveryID
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("delivery %s, want SENT", d.Status)
	}

	// Track sends POST /api/v1/customers/{id}/events with {"name","data"}
	// and, with WithEventTimestamp, "timestamp" (customerio.go:103-113,
	// options.go:136-140); the event converts a delivery as trackEvent:
	// https://docs.customer.io/integrations/api/track/tag/track-events/track/
	// An event before the send (the documented example's 2018 timestamp) converts nothing.
	must("track before", cio.Track("5", "purchase", map[string]any{"price": 23.45}, customerio.WithEventTimestamp(time.Unix(1514764800, 0))))
	e.flush()
	if d := c.delivery(id); d.Status != "SENT" {
		t.Errorf("an event before the send converted: %s", d.Status)
	}
	must("track", cio.Track("5", "purchase", map[string]any{"price": 23.45}))
	e.flush()
	if d := c.delivery(id); d.Status != "CONVERTED" {
		t.Errorf("after the event: %s, want CONVERTED", d.Status)
	}
	var n uint64
	if err := e.app.CH.QueryRow(context.Background(), "SELECT count() FROM (SELECT DISTINCT id FROM person_events WHERE workspace_id = ? AND person_id = '5')", c.workspaceID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("person events = %d, want 2", n)
	}
}

// metaErrorBody reads meta.error from a raw Customer.io error body.
func metaErrorBody(raw []byte) string {
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return metaError(m)
}

// Every auth failure is 401 with Customer.io's error body; the Basic
// endpoints say so in WWW-Authenticate; nothing is recorded.
func TestTrackAuthFailures(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.withCredentials(e.workspace("a"))
	b := e.workspace("b")
	siteA, siteB := e.siteID(a), e.siteID(b)
	msg := a.message("Hi", "there")
	a.person("p1", nil, false)

	endpoints := []struct {
		method, path, body string
	}{
		{"PUT", "/api/v1/customers/intruder", `{"email":"x@example.com"}`},
		{"PUT", "/api/v1/customers/intruder/devices", fmt.Sprintf(`{"device":{"id":%q,"platform":"ios"}}`, sim.Token("77", 1))},
		{"DELETE", "/api/v1/customers/p1/devices/" + sim.Token("77", 1), ""},
		{"POST", "/api/v1/customers/intruder/events", `{"name":"purchase"}`},
	}
	creds := []struct {
		name string
		a    auth
	}{
		{"no auth", noAuth},
		{"wrong key", basic(siteA, "hk_wrong")},
		{"another workspace's site id", basic(siteB, a.key)},
		{"another workspace's key", basic(siteA, b.key)},
		{"unknown site id", basic("0000000000", a.key)},
		{"empty password", basic(siteA, "")},
		{"bearer on a basic endpoint", bearer(a.key)},
	}
	for _, ep := range endpoints {
		for _, cr := range creds {
			t.Run(ep.method+" "+ep.path+"/"+cr.name, func(t *testing.T) {
				status, h, m := e.rest(ep.method, ep.path, ep.body, cr.a)
				if status != 401 || metaError(m) == "" {
					t.Errorf("→ %d %v; want 401 with meta.error", status, m)
				}
				if got := h.Get("WWW-Authenticate"); got != `Basic realm="herald"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			})
		}
	}
	sendBody := fmt.Sprintf(`{"transactional_message_id":%q,"identifiers":{"id":"p1"}}`, msg)
	for _, cr := range []struct {
		name string
		a    auth
	}{
		{"no auth", noAuth},
		{"wrong key", bearer("hk_wrong")},
		{"basic on the bearer endpoint", basic(siteA, a.key)},
	} {
		t.Run("send/"+cr.name, func(t *testing.T) {
			if status, _, m := e.rest("POST", "/v1/send/push", sendBody, cr.a); status != 401 || metaError(m) == "" {
				t.Errorf("→ %d %v; want 401 with meta.error", status, m)
			}
		})
	}
	// Another workspace's key does not see this workspace's message.
	if status, _, m := e.rest("POST", "/v1/send/push", sendBody, bearer(b.key)); status != 404 {
		t.Errorf("send with another workspace's key: %d %v; want 404", status, m)
	}
	if r := a.do(personQuery, vars{"id": "intruder"}); r.code() != "NOT_FOUND" {
		t.Errorf("a rejected call created a person: %+v", r)
	}
	if r := b.do(personQuery, vars{"id": "intruder"}); r.code() != "NOT_FOUND" {
		t.Errorf("a rejected call created a person in workspace b: %+v", r)
	}
}

// Bad bodies are 400 naming the field (413 when too large); nothing changes.
func TestTrackBadBodies(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	cred := basic(e.siteID(c), c.key)
	c.person("p1", vars{"plan": "basic"}, false)
	huge := `{"notes":"` + strings.Repeat("x", 70<<10) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		field                    string // must appear in meta.error
	}{
		{"not JSON", "PUT", "/api/v1/customers/p1", `{"plan": `, 400, "JSON"},
		{"empty body", "PUT", "/api/v1/customers/p1", ``, 400, "empty"},
		{"array body", "PUT", "/api/v1/customers/p1", `["plan"]`, 400, "object"},
		{"unsubscribed not a bool", "PUT", "/api/v1/customers/p1", `{"unsubscribed":"yes"}`, 400, "unsubscribed"},
		{"another id in the body", "PUT", "/api/v1/customers/p1", `{"id":"p2"}`, 400, "id"},
		{"bad person id", "PUT", "/api/v1/customers/a%20b", `{"plan":"x"}`, 400, "identifier"},
		{"too large", "PUT", "/api/v1/customers/p1", huge, 413, "bytes"},
		{"no device", "PUT", "/api/v1/customers/p1/devices", `{"id":"x"}`, 400, "device"},
		{"device not an object", "PUT", "/api/v1/customers/p1/devices", `{"device":"x"}`, 400, "device"},
		{"missing device id", "PUT", "/api/v1/customers/p1/devices", `{"device":{"platform":"ios"}}`, 400, "device.id"},
		{"device id not a string", "PUT", "/api/v1/customers/p1/devices", `{"device":{"id":12,"platform":"ios"}}`, 400, "device.id"},
		{"missing platform", "PUT", "/api/v1/customers/p1/devices", fmt.Sprintf(`{"device":{"id":%q}}`, sim.Token("1", 1)), 400, "device.platform"},
		{"unknown platform", "PUT", "/api/v1/customers/p1/devices", fmt.Sprintf(`{"device":{"id":%q,"platform":"windows"}}`, sim.Token("1", 1)), 400, "device.platform"},
		{"bad iOS token", "PUT", "/api/v1/customers/p1/devices", `{"device":{"id":"not-hex","platform":"ios"}}`, 400, "device.id"},
		{"bad Android token", "PUT", "/api/v1/customers/p1/devices", `{"device":{"id":"short","platform":"android"}}`, 400, "device.id"},
		{"last_used not a number", "PUT", "/api/v1/customers/p1/devices", fmt.Sprintf(`{"device":{"id":%q,"platform":"ios","last_used":"yesterday"}}`, sim.Token("1", 1)), 400, "device.last_used"},
		{"last_used in milliseconds", "PUT", "/api/v1/customers/p1/devices", fmt.Sprintf(`{"device":{"id":%q,"platform":"ios","last_used":1514764800000}}`, sim.Token("1", 1)), 400, "device.last_used"},
		{"attributes not an object", "PUT", "/api/v1/customers/p1/devices", fmt.Sprintf(`{"device":{"id":%q,"platform":"ios","attributes":[1]}}`, sim.Token("1", 1)), 400, "device.attributes"},
		{"event without a name", "POST", "/api/v1/customers/p1/events", `{"data":{"price":1}}`, 400, "name"},
		{"event name empty", "POST", "/api/v1/customers/p1/events", `{"name":" "}`, 400, "name"},
		{"event data not an object", "POST", "/api/v1/customers/p1/events", `{"name":"purchase","data":"x"}`, 400, "data"},
		{"event timestamp not a number", "POST", "/api/v1/customers/p1/events", `{"name":"purchase","timestamp":"now"}`, 400, "timestamp"},
		{"event in the future", "POST", "/api/v1/customers/p1/events", fmt.Sprintf(`{"name":"purchase","timestamp":%d}`, time.Now().Add(time.Hour).Unix()), 400, "timestamp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, m := e.rest(tc.method, tc.path, tc.body, cred)
			t.Logf("%d %s", status, metaError(m))
			if status != tc.status || !strings.Contains(metaError(m), tc.field) {
				t.Errorf("→ %d %v; want %d with meta.error naming %q", status, m, tc.status, tc.field)
			}
		})
	}
	p, _ := c.mustDo(personQuery, vars{"id": "p1"})["person"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"plan": "basic"}, p["attributes"]); diff != "" || p["unsubscribed"] != false {
		t.Errorf("rejected calls changed the person (-want +got):\n%s (unsubscribed %v)", diff, p["unsubscribed"])
	}
	if devs, _ := p["devices"].([]any); len(devs) != 0 {
		t.Errorf("rejected calls added devices: %v", devs)
	}
}

// POST /v1/send/push sends the message with the overrides rendered as
// Liquid, to all, the last used or one device, and answers Customer.io's body.
func TestSendPushREST(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	ios, android, old := sim.Token("1a", 1), sim.Token("2a", 1), sim.Token("3a", 1)
	c.person("12345", vars{"first_name": "Sarah"}, false)
	c.device("12345", "IOS", ios, time.Now().Add(-time.Minute))
	c.device("12345", "ANDROID", android, time.Now().Add(-time.Hour))
	c.device("12345", "IOS", old, time.Now().Add(-48*time.Hour))
	msg := c.message("Hi {{ customer.first_name }}", "Welcome")
	send := func(body string) map[string]any {
		t.Helper()
		status, _, m := e.rest("POST", "/v1/send/push", body, bearer(c.key))
		if status != 200 {
			t.Fatalf("send → %d %v", status, m)
		}
		if _, ok := m["delivery_id"].(string); !ok {
			t.Fatalf("no delivery_id: %v", m)
		}
		if q, _ := m["queued_at"].(float64); q < float64(time.Now().Add(-time.Minute).Unix()) {
			t.Fatalf("queued_at = %v", m["queued_at"])
		}
		return m
	}
	// The 200 body is Customer.io's {"delivery_id", "queued_at"}:
	// https://docs.customer.io/journeys/send/transactional/api-common-api-errors/
	// The official client sends the body (send_push.go:8-27) and reads that
	// answer (transactional.go:77-88).
	api := e.apiClient(c)
	clientSend := func(req *customerio.SendPushRequest) string {
		t.Helper()
		resp, err := api.SendPush(context.Background(), req)
		if err != nil {
			t.Fatalf("SendPush: %v", err)
		}
		if resp.DeliveryID == "" || resp.QueuedAt.Before(time.Now().Add(-time.Minute)) {
			t.Fatalf("SendPush answer = %+v", resp)
		}
		return resp.DeliveryID
	}
	to12345 := map[string]string{"id": "12345"}

	// Send a transactional push, with every documented override:
	// https://docs.customer.io/integrations/api/app/tag/send-messages/sendPush/
	id := clientSend(&customerio.SendPushRequest{TransactionalMessageID: msg, To: "all", Title: "Order {{ trigger.order }} shipped",
		Message: "Hi {{ customer.first_name }}, it arrives {{ event.day }}", ImageURL: "https://example.com/box.png",
		Link: "myapp://orders/{{ trigger.order }}", Sound: "default", CustomData: []byte(`{"screen":"orders/{{ trigger.order }}","count":2}`),
		Identifiers: to12345, MessageData: map[string]any{"order": "A-1", "day": "Monday"}})
	d := c.waitFinal(id)
	if d.Status != "SENT" || d.DevicesTargeted != 3 {
		t.Fatalf("to all: %s, %d devices; want SENT to 3", d.Status, d.DevicesTargeted)
	}
	reqs := e.apns.Requests(ios)
	if len(reqs) != 1 {
		t.Fatalf("APNS requests = %d, want 1", len(reqs))
	}
	var apns map[string]any
	if err := json.Unmarshal(reqs[0].Body, &apns); err != nil {
		t.Fatal(err)
	}
	gotAPNS := map[string]any{
		"title": get(apns, "aps", "alert", "title"), "body": get(apns, "aps", "alert", "body"), "sound": get(apns, "aps", "sound"),
		"link": get(apns, "CIO", "push", "link"), "image": get(apns, "CIO", "push", "image"),
		"screen": apns["screen"], "count": apns["count"], "id": apns["CIO-Delivery-ID"],
	}
	wantAPNS := map[string]any{"title": "Order A-1 shipped", "body": "Hi Sarah, it arrives Monday", "sound": "default",
		"link": "myapp://orders/A-1", "image": "https://example.com/box.png", "screen": "orders/A-1", "count": "2", "id": id}
	if diff := cmp.Diff(wantAPNS, gotAPNS); diff != "" {
		t.Errorf("APNS payload (-want +got):\n%s\n%s", diff, reqs[0].Body)
	}
	freqs := e.fcm.Requests(android)
	if len(freqs) != 1 {
		t.Fatalf("FCM requests = %d, want 1", len(freqs))
	}
	var fcm map[string]any
	if err := json.Unmarshal(freqs[0].Body, &fcm); err != nil {
		t.Fatal(err)
	}
	gotFCM := map[string]any{"title": get(fcm, "message", "notification", "title"), "body": get(fcm, "message", "notification", "body"),
		"image": get(fcm, "message", "notification", "image"), "link": get(fcm, "message", "data", "link"),
		"screen": get(fcm, "message", "data", "screen"), "count": get(fcm, "message", "data", "count")}
	wantFCM := map[string]any{"title": "Order A-1 shipped", "body": "Hi Sarah, it arrives Monday", "image": "https://example.com/box.png",
		"link": "myapp://orders/A-1", "screen": "orders/A-1", "count": "2"}
	if diff := cmp.Diff(wantFCM, gotFCM); diff != "" {
		t.Errorf("FCM payload (-want +got):\n%s\n%s", diff, freqs[0].Body)
	}

	// No overrides: the message's own fields; last_used picks the newest device.
	d = c.waitFinal(clientSend(&customerio.SendPushRequest{TransactionalMessageID: msg, To: "last_used", Identifiers: to12345}))
	if d.Status != "SENT" || d.DevicesTargeted != 1 || d.Devices[0].Token != ios {
		t.Fatalf("last_used: %s %s; want SENT to %s", d.Status, fmtDevices(d), ios)
	}
	reqs = e.apns.Requests(ios)
	var plain map[string]any
	_ = json.Unmarshal(reqs[len(reqs)-1].Body, &plain)
	if got := get(plain, "aps", "alert", "title"); got != "Hi Sarah" {
		t.Errorf("title without overrides = %v, want the message's", got)
	}
	// A token sends to that device only; message_id (which the client does
	// not send) is accepted too; to is all by default.
	d = c.waitFinal(send(fmt.Sprintf(`{"message_id":%q,"to":%q,"identifiers":{"id":"12345"}}`, msg, old))["delivery_id"].(string))
	if d.Status != "SENT" || d.DevicesTargeted != 1 || d.Devices[0].Token != old {
		t.Errorf("to a token: %s %s; want SENT to %s", d.Status, fmtDevices(d), old)
	}
	d = c.waitFinal(clientSend(&customerio.SendPushRequest{TransactionalMessageID: msg, Identifiers: to12345}))
	if d.DevicesTargeted != 3 {
		t.Errorf("default to: %d devices, want 3", d.DevicesTargeted)
	}
	// A missing Liquid variable in an override fails the delivery like one in the message.
	d = c.waitFinal(clientSend(&customerio.SendPushRequest{TransactionalMessageID: msg, Title: "{{ trigger.missing }}", Identifiers: to12345}))
	if d.Status != "FAILED" || d.FailureReason == nil || *d.FailureReason != "Liquid error: variable is missing: trigger.missing" {
		t.Errorf("missing variable in an override: %s %v", d.Status, d.FailureReason)
	}

	// Rejections.
	unknown := "0190d6b2-0000-7000-8000-000000000000"
	rejections := []struct {
		name, body string
		status     int
		field      string
	}{
		// 404: Customer.io's App API documents 404 "The transactional
		// message does not exist" for an unknown transactional message id
		// (https://docs.customer.io/integrations/api/app/tag/transactional/getTransactional/);
		// the body is well-formed, the message it names is missing, so 400
		// would send the caller looking at the wrong thing.
		{"unknown message", fmt.Sprintf(`{"transactional_message_id":%q,"identifiers":{"id":"12345"}}`, unknown), 404, "transactional_message_id"},
		// Not a UUID: an alias, here of no message (TestMessageAliases).
		{"message id not a UUID", `{"transactional_message_id":"3","identifiers":{"id":"12345"}}`, 404, "transactional_message_id"},
		{"message id a number", `{"transactional_message_id":3,"identifiers":{"id":"12345"}}`, 404, "transactional_message_id"},
		{"message id an object", `{"transactional_message_id":{},"identifiers":{"id":"12345"}}`, 400, "transactional_message_id"},
		{"no message id", `{"identifiers":{"id":"12345"}}`, 400, "transactional_message_id"},
		{"email of nobody", fmt.Sprintf(`{"transactional_message_id":%q,"identifiers":{"email":"nobody@example.com"}}`, msg), 404, "identifiers.email"},
		{"cio_id identifier", fmt.Sprintf(`{"transactional_message_id":%q,"identifiers":{"cio_id":"a3000001"}}`, msg), 400, "identifiers.cio_id"},
		{"two identifiers", fmt.Sprintf(`{"transactional_message_id":%q,"identifiers":{"id":"12345","email":"s@example.com"}}`, msg), 400, "identifiers"},
		{"no identifiers", fmt.Sprintf(`{"transactional_message_id":%q}`, msg), 400, "identifiers"},
		{"bad person id", fmt.Sprintf(`{"transactional_message_id":%q,"identifiers":{"id":"a b"}}`, msg), 400, "identifiers.id"},
		{"title not a string", fmt.Sprintf(`{"transactional_message_id":%q,"title":5,"identifiers":{"id":"12345"}}`, msg), 400, "title"},
		{"bad Liquid in message", fmt.Sprintf(`{"transactional_message_id":%q,"message":"{{ x | nosuchfilter }}","identifiers":{"id":"12345"}}`, msg), 400, "message"},
		{"custom_data not an object", fmt.Sprintf(`{"transactional_message_id":%q,"custom_data":[1],"identifiers":{"id":"12345"}}`, msg), 400, "custom_data"},
		{"message_data not an object", fmt.Sprintf(`{"transactional_message_id":%q,"message_data":"x","identifiers":{"id":"12345"}}`, msg), 400, "message_data"},
		{"not JSON", `{"transactional_message_id":`, 400, "JSON"},
		{"a field Herald lacks", fmt.Sprintf(`{"transactional_message_id":%q,"identifiers":{"id":"12345"},"colour":"red"}`, msg), 400, "colour: not a field"},
		{"a custom_device field Herald lacks", fmt.Sprintf(`{"transactional_message_id":%q,"identifiers":{"id":"12345"},"custom_device":{"token":"ab","platform":"ios","model":"x"}}`, msg), 400, "model: not a field"},
	}
	for _, tc := range rejections {
		t.Run(tc.name, func(t *testing.T) {
			status, _, m := e.rest("POST", "/v1/send/push", tc.body, bearer(c.key))
			t.Logf("%d %s", status, metaError(m))
			if status != tc.status || !strings.Contains(metaError(m), tc.field) {
				t.Errorf("→ %d %v; want %d with meta.error naming %q", status, m, tc.status, tc.field)
			}
		})
	}
}

package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coderws "github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers/sim"
)

// Security issue 11, items 3, 8, 10, 11 and 12: input that Herald must
// refuse or canonicalise, checked over HTTP against a running server and
// worker.

// internalService stands for a service on Herald's network that answers
// anyone who asks with a secret; it counts the requests it gets.
func internalService(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("SECRET-internal-7f3a"))
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// serviceAccount is a simulator service account whose token_uri is uri.
func (e *env) serviceAccount(uri string) string {
	e.t.Helper()
	sa, err := e.fcm.NewServiceAccount("herald-test")
	if err != nil {
		e.t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(sa, &m)
	m["token_uri"] = uri
	b, _ := json.Marshal(m)
	return string(b)
}

// failedDevice waits for a delivery to end and returns its first device's
// status and lastError.
func (c *client) failedDevice(id string) (status, lastError string) {
	c.t.Helper()
	d := c.waitFinal(id)
	if len(d.Devices) != 1 {
		c.t.Fatalf("delivery %s: %d devices, want 1: %+v", id, len(d.Devices), d)
	}
	if d.Devices[0].LastError != nil {
		lastError = *d.Devices[0].LastError
	}
	if d.FailureReason != nil && strings.Contains(*d.FailureReason, "SECRET") {
		c.t.Errorf("failureReason %q holds the internal service's answer", *d.FailureReason)
	}
	return d.Devices[0].Status, lastError
}

// Item 3: a service account's token_uri must be one of the allowed token
// endpoints, when credentials are set and again at send time; and what a
// token endpoint answers never reaches lastError or failureReason.
func TestFCMTokenURIAllowListE2E(t *testing.T) {
	internal, internalHits := internalService(t)
	allowedLeaky, leakyHits := internalService(t) // allowed, but answers 400 with a body
	e := newEnv(t, envOptions{fcmTokenURIs: []string{allowedLeaky.URL + "/token"}})
	c := e.withCredentials(e.workspace("a"))
	ctx := context.Background()

	r := c.do(`mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }`,
		vars{"in": vars{"fcm": vars{"serviceAccountJson": e.serviceAccount(internal.URL + "/token")}}})
	if r.code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "input.fcm.serviceAccountJson" || !strings.Contains(r.Errors[0].Message, "token_uri") {
		t.Errorf("setPushCredentials with token_uri on another host = %+v, want BAD_USER_INPUT on input.fcm.serviceAccountJson naming token_uri", r)
	}

	c.person("p1", nil, false)
	tok := sim.Token("0123", 1) + ":APA91b"
	c.device("p1", "ANDROID", tok, time.Time{})
	msg := c.message("Hello", "there")

	// Credentials stored before the check existed (written past the resolver)
	// are refused by the worker, which never calls the token endpoint.
	creds, _ := json.Marshal(map[string]string{"ServiceAccountJSON": e.serviceAccount(internal.URL + "/token")})
	sealed := e.app.Secrets.Seal(creds, jobs.CredentialsAAD(c.workspaceID, "ANDROID"))
	if err := e.app.Store.PutCredentials(ctx, c.workspaceID, "ANDROID", sealed); err != nil {
		t.Fatal(err)
	}
	st, lastErr := c.failedDevice(c.send(msg, "p1", "ALL_DEVICES", ""))
	if st != "FAILED" || !strings.Contains(lastErr, "token_uri") {
		t.Errorf("send with a stored disallowed token_uri: device %s %q, want FAILED naming token_uri", st, lastErr)
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the internal service got %d requests, want 0", n)
	}

	// An allowed token endpoint that refuses: the status is kept, its body is not.
	c.mustDo(`mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }`,
		vars{"in": vars{"fcm": vars{"serviceAccountJson": e.serviceAccount(allowedLeaky.URL + "/token")}}})
	st, lastErr = c.failedDevice(c.send(msg, "p1", "ALL_DEVICES", ""))
	if leakyHits.Load() == 0 {
		t.Fatal("the allowed token endpoint got no request")
	}
	if st != "FAILED" || strings.Contains(lastErr, "SECRET") || !strings.Contains(lastErr, "400") {
		t.Errorf("send through a token endpoint answering 400: device %s %q, want FAILED with the status and without the body", st, lastErr)
	}
}

// Item 8: an id in another case (or any other form uuid.Parse accepts) is
// the same object: one task, one channel, one set of progress keys. APNS
// tokens in upper and lower case are one device.
func TestIDsAreCanonicalE2E(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	msg := c.message("Hello", "there")

	t.Run("retryDelivery", func(t *testing.T) {
		// Two retries at once, one with the id in upper case: on main each
		// got its own task id, plan and push.
		for i := range 3 {
			person, tok := fmt.Sprintf("r%d", i), sim.Token("4030", 100+i) // permanent failure
			c.person(person, nil, false)
			c.device(person, "IOS", tok, time.Time{})
			id := c.send(msg, person, "ALL_DEVICES", "")
			if d := c.waitFinal(id); d.Status != "FAILED" {
				t.Fatalf("status %s, want FAILED", d.Status)
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			for _, form := range []string{strings.ToUpper(id), id} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					c.do(`mutation($id: ID!) { retryDelivery(id: $id) { id } }`, vars{"id": form})
				}()
			}
			close(start)
			wg.Wait()
			e.idle()
			if n := e.apns.Count(tok); n != 2 {
				t.Errorf("delivery %d: the token got %d pushes, want 2 (the send and one retry round)", i, n)
			}
			// Whichever form won the race, the round's task is named by the
			// canonical id (the race itself is won by one side most runs).
			tasks, err := e.inspc.ListCompletedTasks(jobs.QueueDeliver, asynq.PageSize(1000))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, task := range tasks {
				if strings.Contains(strings.ToLower(task.ID), id) {
					ids = append(ids, task.ID)
				}
			}
			slices.Sort(ids)
			if want := []string{"deliver:" + id + ":0", "deliver:" + id + ":1"}; !slices.Equal(ids, want) {
				t.Errorf("delivery %d: deliver tasks %v, want %v", i, ids, want)
			}
		}
	})

	t.Run("broadcast", func(t *testing.T) {
		b := c.mustDo(`mutation($in: BroadcastInput!) { broadcast(input: $in) { id total } }`,
			vars{"in": vars{"messageId": msg, "personIds": []string{"r0"}}})
		id := get(b, "broadcast", "id").(string)
		e.idle()
		got := c.mustDo(`query($id: ID!) { broadcast(id: $id) { id total queued done } }`, vars{"id": strings.ToUpper(id)})
		want := map[string]any{"id": id, "total": 1.0, "queued": 1.0, "done": 1.0}
		if fmt.Sprint(got["broadcast"]) != fmt.Sprint(want) {
			t.Errorf("broadcast(id in upper case) = %v, want %v", got["broadcast"], want)
		}
	})

	t.Run("apnsTokenCase", func(t *testing.T) {
		tok := sim.Token("0abc", 7)
		c.person("t1", nil, false)
		c.device("t1", "IOS", strings.ToUpper(tok), time.Time{})
		c.device("t1", "IOS", tok, time.Time{})
		p := c.mustDo(`query { person(id: "t1") { devices { token } } }`, nil)
		if got := fmt.Sprint(get(p, "person", "devices")); got != fmt.Sprint([]any{map[string]any{"token": tok}}) {
			t.Errorf("devices after registering %s in upper then lower case = %s, want one device, in lower case", tok, got)
		}
		id := c.send(msg, "t1", "CUSTOM_TOKEN", strings.ToUpper(tok))
		if d := c.waitFinal(id); d.Status != "SENT" || len(d.Devices) != 1 || d.Devices[0].Token != tok {
			t.Errorf("CUSTOM_TOKEN in upper case: %s %s, want SENT to %s", d.Status, fmtDevices(d), tok)
		}
		if code, body := e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, strings.ToUpper(tok))); code != http.StatusOK {
			t.Errorf("report with the token in upper case: %d %s, want 200", code, body)
		}
		if r := c.do(`mutation($t: String!) { removeDevice(personId: "t1", token: $t) }`, vars{"t": strings.ToUpper(tok)}); r.code() != "" {
			t.Errorf("removeDevice with the token in upper case: %+v", r.Errors)
		}
	})

	t.Run("deliveryUpdated", func(t *testing.T) {
		c.person("s1", nil, false)
		tok := sim.Token("0123", 8)
		c.device("s1", "IOS", tok, time.Time{})
		id := c.send(msg, "s1", "ALL_DEVICES", "")
		if d := c.waitFinal(id); d.Status != "SENT" {
			t.Fatalf("status %s, want SENT", d.Status)
		}
		ws, err := dialWS(t, e.http.URL, "graphql-transport-ws", c.key)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.conn.Close(coderws.StatusNormalClosure, "")
		ws.subscribe("1", deliveryUpdatedQuery, map[string]any{"id": strings.ToUpper(id)})
		if _, err := ws.next(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, tok))
		// The slow re-check runs every 5 s: an update within 3 s came over
		// the delivery's pub/sub channel.
		d, err := ws.next(3 * time.Second)
		if err != nil || get(d, "deliveryUpdated", "status") != "DELIVERED" {
			t.Errorf("subscribed with the id in upper case: %v %v, want DELIVERED within 3 s", d, err)
		}
	})
}

// Item 10: times outside what ClickHouse's DateTime64 columns hold (and the
// driver converts) are refused with BAD_USER_INPUT before anything is
// written, cursors included.
func TestTimesOutOfRangeE2E(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	c.person("p1", nil, false)
	for _, at := range []string{"2300-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "1899-12-31T23:59:59Z"} {
		r := c.do(`mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token lastUsedAt } }`,
			vars{"in": vars{"personId": "p1", "platform": "IOS", "token": sim.Token("0123", 1), "lastUsedAt": at}})
		if r.code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "input.lastUsedAt" {
			t.Errorf("registerDevice lastUsedAt %s = %+v %v, want BAD_USER_INPUT on input.lastUsedAt", at, r.Errors, r.Data)
		}
		r = c.do(`mutation($t: Time) { trackEvent(input: {personId: "p1", name: "purchase", timestamp: $t}) }`, vars{"t": at})
		if r.code() != "BAD_USER_INPUT" {
			t.Errorf("trackEvent timestamp %s = %+v, want BAD_USER_INPUT", at, r.Errors)
		}
		r = c.do(`query($t: Time) { deliveries(filter: {from: $t}) { edges { cursor } } }`, vars{"t": at})
		if r.code() != "BAD_USER_INPUT" {
			t.Errorf("deliveries from %s = %+v, want BAD_USER_INPUT", at, r.Errors)
		}
	}
	if code, _, body := e.rest(http.MethodPut, "/api/v1/customers/p1/devices",
		fmt.Sprintf(`{"device":{"id":%q,"platform":"ios","last_used":99999999999}}`, sim.Token("0123", 2)), basic(e.siteID(c), c.key)); code != http.StatusBadRequest {
		t.Errorf("REST device last_used in the year 5138 = %d %v, want 400", code, body)
	}
	p := c.mustDo(`query { person(id: "p1") { devices { token } } }`, nil)
	if n := len(get(p, "person", "devices").([]any)); n != 0 {
		t.Errorf("a refused device was written: %d devices", n)
	}
	if n := e.personEvents(); n != 0 {
		t.Errorf("%d person events written by refused trackEvents", n)
	}
	// Times inside the range read back as written.
	for i, at := range []string{"2200-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "2261-12-31T23:59:59Z"} {
		person := fmt.Sprintf("in%d", i)
		c.person(person, nil, false)
		c.device(person, "IOS", sim.Token("0123", 10+i), mustTime(t, at))
		p := c.mustDo(`query($id: ID!) { person(id: $id) { devices { lastUsedAt } } }`, vars{"id": person})
		if got := fmt.Sprint(get(p, "person", "devices")); got != fmt.Sprint([]any{map[string]any{"lastUsedAt": at}}) {
			t.Errorf("lastUsedAt %s reads back as %s", at, got)
		}
	}
	camp := get(c.mustDo(`mutation { createCampaign(input: {name: "c"}) { id } }`, nil), "createCampaign", "id").(string)
	r := c.do(`query($id: ID!) { campaign(id: $id) { overview(from: "1000-01-01T00:00:00Z") { created } } }`, vars{"id": camp})
	if r.code() != "BAD_USER_INPUT" {
		t.Errorf("overview from the year 1000 = %+v, want BAD_USER_INPUT", r.Errors)
	}
	for _, us := range []string{"99999999999999999", "-99999999999999999"} {
		cur := base64.RawURLEncoding.EncodeToString([]byte(us + ":" + uuid.NewString()))
		for _, q := range []string{`query($a: String) { deliveries(after: $a) { edges { cursor } } }`, `query($a: String) { campaigns(after: $a) { edges { cursor } } }`} {
			if r := c.do(q, vars{"a": cur}); r.code() != "BAD_USER_INPUT" {
				t.Errorf("%s with a cursor at %s µs = %+v, want BAD_USER_INPUT", q[:30], us, r.Errors)
			}
		}
	}
}

// Item 11: every string input has the bound the README documents.
func TestStringBoundsE2E(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	c.person("p1", nil, false)
	big := strings.Repeat("x", 900<<10)
	for _, tc := range []struct {
		name, query, field string
		v                  vars
	}{
		{"trackEvent data", `mutation($d: JSON) { trackEvent(input: {personId: "p1", name: "purchase", data: $d}) }`, "input.data", vars{"d": vars{"blob": big}}},
		{"campaign name", `mutation($n: String!) { createCampaign(input: {name: $n}) { id } }`, "input.name", vars{"n": big}},
		{"goal event", `mutation($n: String!) { createCampaign(input: {name: "c", conversionGoal: {event: $n}}) { id } }`, "input.conversionGoal.event", vars{"n": strings.Repeat("e", 151)}},
		{"message name", `mutation($n: String!) { createPushMessage(input: {name: $n, title: "t", body: "b"}) { id } }`, "input.name", vars{"n": big}},
		{"bundle id", `mutation($b: String!) { setPushCredentials(input: {apns: {bundleId: $b, certPem: "x"}}) }`, "input.apns.bundleId", vars{"b": big}},
		{"removeDevice token", `mutation($t: String!) { removeDevice(personId: "p1", token: $t) }`, "token", vars{"t": big}},
	} {
		r := c.do(tc.query, tc.v)
		if r.code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != tc.field {
			msg := fmt.Sprint(r.Errors)
			t.Errorf("%s too long: code %q, %.200s, want BAD_USER_INPUT on %s", tc.name, r.code(), msg, tc.field)
		}
	}
	// A goal event of 150 characters is accepted and converts.
	goal := strings.Repeat("e", 150)
	c.mustDo(`mutation($n: String!) { createCampaign(input: {name: "c", conversionGoal: {event: $n}}) { id } }`, vars{"n": goal})
	site := e.siteID(c)
	if code, _, body := e.rest(http.MethodPost, "/api/v1/customers/p1/events",
		fmt.Sprintf(`{"name":"purchase","data":{"blob":%q}}`, strings.Repeat("x", 40<<10)), basic(site, c.key)); code != http.StatusBadRequest {
		t.Errorf("REST event with 40 KB of data = %d %v, want 400", code, body)
	}
	if n := e.personEvents(); n != 0 {
		t.Errorf("%d person events written by refused events", n)
	}
}

// Item 12: an unknown delivery and a delivery that did not target the
// token get the same answer from the SDK endpoints and from GraphQL.
func TestSDKNotFoundIsOneAnswerE2E(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	tok, other := sim.Token("0123", 1), sim.Token("0123", 2)
	c.person("p1", nil, false)
	c.device("p1", "IOS", tok, time.Time{})
	id := c.send(c.message("Hello", "there"), "p1", "ALL_DEVICES", "")
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("status %s, want SENT", d.Status)
	}
	unknown, _ := uuid.NewV7()
	for _, path := range []string{"/push/events", "/api/v1/metrics"} {
		body := func(delivery string) string {
			if path == "/api/v1/metrics" {
				return fmt.Sprintf(`{"delivery_id":%q,"metric":"delivered","recipient":%q}`, delivery, other)
			}
			return fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, delivery, other)
		}
		var times [2][]time.Duration
		var answers [2]string
		for i := range 15 {
			for k, delivery := range []string{id, unknown.String()} {
				start := time.Now()
				code, b := e.post(path, body(delivery))
				times[k] = append(times[k], time.Since(start))
				if i == 0 {
					answers[k] = fmt.Sprintf("%d %s", code, b)
				}
			}
		}
		// 400, which the legacy SDKs drop instead of retrying (sdk.go).
		if answers[0] != answers[1] || !strings.HasPrefix(answers[0], "400 ") {
			t.Errorf("%s: known delivery, token not targeted = %s; unknown delivery = %s; want one 400 answer", path, answers[0], answers[1])
		}
		for k := range times {
			slices.Sort(times[k])
		}
		t.Logf("%s median: known delivery %v, unknown delivery %v", path, times[0][7], times[1][7])
	}
	q := `mutation($d: ID!, $t: String!) { reportPushMetric(input: {deliveryId: $d, metric: DELIVERED, deviceToken: $t}) }`
	known, unk := c.do(q, vars{"d": id, "t": other}), c.do(q, vars{"d": unknown.String(), "t": other})
	if known.code() != "NOT_FOUND" || unk.code() != "NOT_FOUND" || known.Errors[0].Message != unk.Errors[0].Message {
		t.Errorf("reportPushMetric: known delivery %+v, unknown %+v, want one NOT_FOUND answer", known.Errors, unk.Errors)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// personEvents counts the rows of person_events (the test's own database).
func (e *env) personEvents() uint64 {
	e.t.Helper()
	var n uint64
	if err := e.app.CH.QueryRow(context.Background(), "SELECT count() FROM person_events").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

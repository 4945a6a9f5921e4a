package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/providers/sim"
)

// Every request needs a key; a key sees only its own workspace.
func TestAuthAndIsolation(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.withCredentials(e.workspace("a"))
	b := e.workspace("b")
	a.person("alice", vars{"first_name": "Alice"}, false)
	a.device("alice", "IOS", sim.Token("a1", 1), time.Time{})
	msg := a.message("Hi", "there")
	deliveryID := a.waitFinal(a.send(msg, "alice", "ALL_DEVICES", "")).ID
	campaignID := get(a.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { id } } }`, vars{"id": msg}), "pushMessage", "campaign", "id").(string)

	for _, key := range []string{"", "hk_wrong", "Bearer"} {
		anon := &client{t: t, url: a.url, key: key}
		r := anon.do(`query { person(id: "alice") { id } }`, nil)
		if r.code() != "UNAUTHENTICATED" {
			t.Errorf("key %q: code %q, want UNAUTHENTICATED (%+v)", key, r.code(), r.Errors)
		}
		r = anon.do(`mutation { identifyPerson(input: {id: "x"}) { id } }`, nil)
		if r.code() != "UNAUTHENTICATED" {
			t.Errorf("key %q mutation: code %q, want UNAUTHENTICATED", key, r.code())
		}
	}
	queries := map[string]struct {
		q  string
		id string
	}{
		"person":   {`query($id: ID!) { person(id: $id) { id } }`, "alice"},
		"campaign": {`query($id: ID!) { campaign(id: $id) { id } }`, campaignID},
		"delivery": {`query($id: ID!) { delivery(id: $id) { id } }`, deliveryID},
		"message":  {`query($id: ID!) { pushMessage(id: $id) { id } }`, msg},
	}
	for name, q := range queries {
		if r := a.do(q.q, vars{"id": q.id}); r.code() != "" {
			t.Errorf("%s: own workspace got %+v", name, r.Errors)
		}
		if r := b.do(q.q, vars{"id": q.id}); r.code() != "NOT_FOUND" {
			t.Errorf("%s: other workspace got code %q, want NOT_FOUND", name, r.code())
		}
	}
	// B cannot send A's message either.
	r := b.do(`mutation($m: ID!) { sendPush(input: {messageId: $m, personId: "alice"}) { id } }`, vars{"m": msg})
	if r.code() != "BAD_USER_INPUT" {
		t.Errorf("sending another workspace's message: code %q, want BAD_USER_INPUT", r.code())
	}
}

// Bad input gets BAD_USER_INPUT naming the field.
func TestBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	c.person("p1", nil, false)
	msg := c.message("Hi", "there")
	big := strings.Repeat("x", 4200)
	cases := []struct {
		name, query string
		v           vars
		field       string
	}{
		{"unknown platform", `mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`,
			vars{"in": vars{"personId": "p1", "platform": "WINDOWS", "token": sim.Token("0", 1)}}, "platform"},
		{"empty token", `mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`,
			vars{"in": vars{"personId": "p1", "platform": "IOS", "token": ""}}, "input.token"},
		{"malformed APNS token", `mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`,
			vars{"in": vars{"personId": "p1", "platform": "IOS", "token": "not hex at all"}}, "input.token"},
		{"malformed FCM token", `mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`,
			vars{"in": vars{"personId": "p1", "platform": "ANDROID", "token": "short"}}, "input.token"},
		{"bad person id", `mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`,
			vars{"in": vars{"personId": "has space", "platform": "IOS", "token": sim.Token("0", 1)}}, "input.personId"},
		{"unknown message", `mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`,
			vars{"in": vars{"messageId": "0190d6b2-0000-7000-8000-000000000000", "personId": "p1"}}, "input.messageId"},
		{"malformed message id", `mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`,
			vars{"in": vars{"messageId": "nope", "personId": "p1"}}, "input.messageId"},
		{"person id format", `mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`,
			vars{"in": vars{"messageId": msg, "personId": "a/b"}}, "input.personId"},
		{"custom token missing", `mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`,
			vars{"in": vars{"messageId": msg, "personId": "p1", "audience": "CUSTOM_TOKEN"}}, "input.token"},
		{"template does not parse", `mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id } }`,
			vars{"in": vars{"name": "m", "title": "Hi {{ customer.name ", "body": "b"}}, "input.title"},
		{"template with an unclosed if", `mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id } }`,
			vars{"in": vars{"name": "m", "title": "t", "body": "{% if customer.vip %}VIP"}}, "input.body"},
		{"payload over 4 KB", `mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id } }`,
			vars{"in": vars{"name": "m", "title": "t", "body": big}}, "input"},
		{"unknown delivery id format", `query($id: ID!) { delivery(id: $id) { id } }`, vars{"id": "xyz"}, "id"},
		{"window too long", `mutation { createCampaign(input: {name: "c", conversionGoal: {event: "buy", windowHours: 5000}}) { id } }`,
			nil, "input.conversionGoal.windowHours"},
		{"bad credentials", `mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }`,
			vars{"in": vars{"apns": vars{"bundleId": "b", "keyId": "k", "teamId": "t", "p8": "not a key"}}}, "input.apns.p8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.query, tc.v)
			if r.code() != "BAD_USER_INPUT" {
				t.Fatalf("code %q, want BAD_USER_INPUT (%+v)", r.code(), r.Errors)
			}
			msg := r.Errors[0].Message
			field, _ := r.Errors[0].Extensions["field"].(string)
			if field != tc.field && !strings.Contains(msg, tc.field) {
				t.Errorf("error %q (field %q) does not name %q: %+v", msg, field, tc.field, r.Errors)
			}
		})
	}
}

// Push credentials are sealed at rest and no API returns them.
func TestCredentialsSealedAtRest(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	data := e.strings("SELECT data FROM push_credentials WHERE workspace_id = ?", c.workspaceID)
	if len(data) != 2 {
		t.Fatalf("%d credential rows, want 2", len(data))
	}
	for _, d := range data {
		if !strings.HasPrefix(d, "v1:") || strings.Contains(d, "PRIVATE KEY") || strings.Contains(d, "private_key") || strings.Contains(d, "KEY0000001") {
			t.Errorf("stored credentials are not sealed: %.80q…", d)
		}
	}
	// They still work: the worker opens them to send.
	c.person("p1", nil, false)
	c.device("p1", "IOS", sim.Token("5e", 1), time.Time{})
	c.device("p1", "ANDROID", sim.Token("5e", 2), time.Time{})
	if d := c.waitFinal(c.send(c.message("a", "b"), "p1", "ALL_DEVICES", "")); d.Status != "SENT" {
		t.Errorf("status %s with sealed credentials, want SENT", d.Status)
	}
	// The schema has no field that could return them.
	r := c.do(`{ __type(name: "Query") { fields { name } } }`, nil)
	if b, _ := json.Marshal(r); strings.Contains(strings.ToLower(string(b)), "credential") {
		t.Errorf("a query exposes credentials: %s", b)
	}
}

// Limits: query cost, body size, JSON argument size.
func TestRequestLimits(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.workspace("a")
	r := c.do(`{ deliveries(first: 100) { edges { node { campaign { overview { sent series { start } } } } } } }`, nil)
	if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "complexity") {
		t.Errorf("costly query: %+v", r.Errors)
	}
	if r := c.do(`{ deliveries(first: 10) { edges { node { id } } } }`, nil); r.code() != "" {
		t.Errorf("cheap query refused: %+v", r.Errors)
	}
	big := strings.Repeat("x", 40<<10)
	r = c.do(`mutation($in: IdentifyPersonInput!) { identifyPerson(input: $in) { id } }`, vars{"in": vars{"id": "p", "attributes": vars{"bio": big}}})
	if r.code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "input.attributes" {
		t.Errorf("40 KB attributes: %+v", r.Errors)
	}
	huge := `{"query":"{ __typename }","variables":{"x":"` + strings.Repeat("y", 2<<20) + `"}}`
	resp, err := http.Post(c.url, "application/json", strings.NewReader(huge))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MB request: %d, want 413", resp.StatusCode)
	}
}

// Rate limits: sends per workspace (GraphQL RATE_LIMITED, REST 429) and
// reports per client IP (429 with Retry-After).
func TestRateLimits(t *testing.T) {
	e := newEnv(t, envOptions{sendRate: 3, reportRate: 4})
	c := e.withCredentials(e.workspace("a"))
	c.person("p1", nil, false)
	c.device("p1", "IOS", sim.Token("7a", 1), time.Time{})
	msg := c.message("Hello", "there")
	// Start at the beginning of a second: the windows are one second long.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	limited := 0
	for i := 0; i < 6; i++ {
		r := c.do(`mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`, vars{"in": vars{"messageId": msg, "personId": "p1"}})
		if r.code() == "RATE_LIMITED" {
			limited++
			if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); ra < 1 {
				t.Errorf("retryAfter = %v", r.Errors[0].Extensions["retryAfter"])
			}
		} else if r.code() != "" {
			t.Fatalf("send %d: %+v", i, r.Errors)
		}
	}
	if limited != 3 {
		t.Errorf("%d of 6 sends rate limited, want 3 (limit 3/s)", limited)
	}
	// Another workspace has its own budget.
	b := e.withCredentials(e.workspace("b"))
	b.person("p1", nil, false)
	if r := b.do(`mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`, vars{"in": vars{"messageId": b.message("x", "y"), "personId": "p1"}}); r.code() != "" {
		t.Errorf("other workspace limited: %+v", r.Errors)
	}

	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	statuses := map[int]int{}
	var retryAfter string
	for i := 0; i < 7; i++ {
		resp, err := http.Post(e.http.URL+"/push/events", "application/json",
			strings.NewReader(`{"delivery_id":"01a21986-a4b5-77f5-980c-5ddb5edcfc53","event":"opened","device_id":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			retryAfter = resp.Header.Get("Retry-After")
		}
	}
	if statuses[http.StatusBadRequest] != 4 || statuses[http.StatusTooManyRequests] != 3 || retryAfter != "1" {
		t.Errorf("reports: %v, Retry-After %q; want 4×400 (unmatched) then 3×429 with Retry-After 1", statuses, retryAfter)
	}
}

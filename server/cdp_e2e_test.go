package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/server"
	analytics "gopkg.in/segmentio/analytics-go.v3"
)

// cdpWorkspace is a workspace with credentials and a Data Pipelines write key.
func (e *env) cdpWorkspace(name string) (*client, string) {
	e.t.Helper()
	c := e.withCredentials(e.workspace(name))
	key, hash := server.NewWriteKey()
	if err := e.app.Store.SetWriteKeyHash(context.Background(), c.workspaceID, hash); err != nil {
		e.t.Fatalf("set write key: %v", err)
	}
	return c, key
}

// cdpPost sends body to path with the headers and returns the status and
// the decoded answer.
func (e *env) cdpPost(path string, body []byte, headers map[string]string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.http.URL+path, bytes.NewReader(body))
	for k, v := range headers {
		if k == "Transfer-Encoding" && v == "chunked" { // no Content-Length, as setChunkedStreamingMode(0)
			req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), -1
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("POST %s: %s: not JSON: %s", path, resp.Status, raw)
	}
	return resp.StatusCode, out
}

func basicWriteKey(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
}

func gzipBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// personDevices is the person's attributes and device tokens by GraphQL.
func (c *client) personDevices(id string) (map[string]any, map[string]string) {
	c.t.Helper()
	d := c.mustDo(`query($id: ID!) { person(id: $id) { attributes devices { token platform } } }`, vars{"id": id})
	p, _ := d["person"].(map[string]any)
	if p == nil {
		return nil, nil
	}
	attrs, _ := p["attributes"].(map[string]any)
	devs := map[string]string{}
	for _, dv := range p["devices"].([]any) {
		m := dv.(map[string]any)
		devs[m["token"].(string)] = m["platform"].(string)
	}
	return attrs, devs
}

// waitStatus polls the delivery until its status is want.
func (c *client) waitStatus(id, want string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := c.delivery(id)
		if d.Status == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("delivery %s: status %s, want %s", id, d.Status, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestCDPWriteKey(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, key := e.cdpWorkspace("cdp-auth")
	identify := []byte(`{"userId":"p-auth","traits":{"plan":"pro"}}`)
	jsonCT := map[string]string{"Content-Type": "application/json"}

	for _, tc := range []struct {
		name    string
		body    []byte
		headers map[string]string
		want    int
	}{
		{"no key", identify, jsonCT, 401},
		{"unknown key", identify, map[string]string{"Authorization": basicWriteKey("wknotakey")}, 401},
		// The API key is not a write key, though the authenticator has seen it.
		{"api key as write key", identify, map[string]string{"Authorization": basicWriteKey(c.key)}, 401},
		{"basic", identify, map[string]string{"Authorization": basicWriteKey(key)}, 200},
		{"in body", []byte(`{"userId":"p-auth","traits":{"plan":"pro"},"writeKey":"` + key + `"}`), jsonCT, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.do(`{ person(id: "nobody") { id } }`, nil) // the API key is cached as a hit
			got, out := e.cdpPost("/v1/identify", tc.body, tc.headers)
			if got != tc.want {
				t.Fatalf("status %d, want %d: %v", got, tc.want, out)
			}
			if want := got == 200; out["success"] != want {
				t.Errorf("success = %v, want %v (%v)", out["success"], want, out)
			}
			if got != 200 && out["message"] == "" {
				t.Errorf("no message in %v", out)
			}
		})
	}

	// Rotation (what herald workspace rotate-write-key does): the new key
	// works, the old one no longer does.
	_, old := e.cdpWorkspace("cdp-auth-2")
	newKey, hash := server.NewWriteKey()
	if err := e.app.Store.SetWriteKeyHash(context.Background(), mustWorkspaceOf(t, e, old), hash); err != nil {
		t.Fatal(err)
	}
	if got, out := e.cdpPost("/v1/identify", identify, map[string]string{"Authorization": basicWriteKey(old)}); got != 401 {
		t.Errorf("rotated-out key: status %d, want 401: %v", got, out)
	}
	if got, out := e.cdpPost("/v1/identify", identify, map[string]string{"Authorization": basicWriteKey(newKey)}); got != 200 {
		t.Errorf("new key: status %d, want 200: %v", got, out)
	}
}

// mustWorkspaceOf finds the workspace of a write key.
func mustWorkspaceOf(t *testing.T, e *env, key string) string {
	t.Helper()
	ws, err := e.app.Store.WorkspaceByWriteKeyHash(context.Background(), server.HashKey(key))
	if err != nil {
		t.Fatalf("workspace of write key: %v", err)
	}
	return ws.ID
}

// TestCDPAnalyticsGo drives Segment's own Go client,
// gopkg.in/segmentio/analytics-go.v3 v3.1.0 (the module proxy serves it
// under that path; github.com/segmentio/analytics-go/v3 it refuses, "403
// This module version is not available"): its analytics.go:285-295 POSTs
// Endpoint+"/v1/batch" with SetBasicAuth(writeKey, ""), message.go's batch
// {"messageId","sentAt","batch","context"}. Its DeviceInfo has no token,
// so a server registers a device with the token in Context.Extra's device,
// which context.go:134-147 inlines as context.device.
func TestCDPAnalyticsGo(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, key := e.cdpWorkspace("cdp-analytics-go")
	msg := c.message("Hi", "Hello")
	token := "0123" + strings.Repeat("ab", 30)
	enqueue := func(msgs ...analytics.Message) {
		t.Helper()
		for i, err := range segmentSend(t, e.http.URL, key, msgs...) {
			if err != nil {
				t.Fatalf("analytics-go, message %d: %v", i, err)
			}
		}
	}
	enqueue(
		analytics.Identify{UserId: "p-go", Traits: analytics.NewTraits().SetName("Ada").Set("plan", "pro")},
		analytics.Track{UserId: "p-go", Event: "Device Created or Updated", Properties: analytics.NewProperties().Set("app_version", "1.2.3"),
			Context: &analytics.Context{Extra: map[string]any{"device": map[string]any{"token": token, "type": "ios"}}}},
	)
	attrs, devs := c.personDevices("p-go")
	if attrs["name"] != "Ada" || attrs["plan"] != "pro" {
		t.Errorf("person attributes = %v, want name Ada, plan pro", attrs)
	}
	if devs[token] != "IOS" {
		t.Fatalf("devices = %v, want %s… IOS", devs, token[:8])
	}

	id := c.send(msg, "p-go", "ALL_DEVICES", "")
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("delivery %s, want SENT", d.Status)
	}
	enqueue(analytics.Track{AnonymousId: "a1", Event: "Report Delivery Event",
		Properties: analytics.NewProperties().Set("recipient", token).Set("metric", "delivered").Set("deliveryId", id)})
	c.waitStatus(id, "DELIVERED")

	// A wrong write key: the client's Failure callback gets the 401 after
	// its 10 attempts (analytics.go:248-279 retries every error, a 4xx too).
	if errs := segmentSend(t, e.http.URL, "wk-wrong", analytics.Identify{UserId: "p-go", Traits: analytics.NewTraits().Set("plan", "stolen")}); errs[0] == nil || !strings.Contains(errs[0].Error(), "401") {
		t.Errorf("wrong key: callback error %v, want a 401", errs[0])
	}
	if attrs, _ := c.personDevices("p-go"); attrs["plan"] != "pro" {
		t.Errorf("plan = %v after a wrong key's identify, want pro", attrs["plan"])
	}
}

// segmentSend sends msgs with a new analytics-go client (no wait between
// its retries) and returns each one's outcome from its callback.
func segmentSend(t *testing.T, endpoint, writeKey string, msgs ...analytics.Message) []error {
	t.Helper()
	cb := &segmentCallback{done: make(chan error, len(msgs))}
	sc, err := analytics.NewWithConfig(writeKey, analytics.Config{Endpoint: endpoint, Interval: 20 * time.Millisecond, Callback: cb,
		RetryAfter: func(int) time.Duration { return time.Millisecond }, Logger: analytics.StdLogger(log.New(io.Discard, "", 0))})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for _, m := range msgs {
		if err := sc.Enqueue(m); err != nil {
			t.Fatalf("enqueue %T: %v", m, err)
		}
	}
	errs := make([]error, len(msgs))
	for i := range msgs {
		select {
		case errs[i] = <-cb.done:
		case <-time.After(20 * time.Second):
			t.Fatal("analytics-go: no callback after 20s")
		}
	}
	return errs
}

// segmentCallback passes analytics-go's per-message outcome on.
type segmentCallback struct{ done chan error }

func (s *segmentCallback) Success(analytics.Message)              { s.done <- nil }
func (s *segmentCallback) Failure(_ analytics.Message, err error) { s.done <- err }

// TestCDPMobileSDKs replays the requests of Customer.io's mobile SDKs as
// their source builds them.
func TestCDPMobileSDKs(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, key := e.cdpWorkspace("cdp-mobile")
	msg := c.message("Hi", "Hello")
	iosToken := "0a1b" + strings.Repeat("cd", 30)
	androidToken := "eAnd" + strings.Repeat("x1:Y_", 30)

	// iOS batch upload: customerio-ios 3.x uploads through Customer.io's
	// analytics-swift fork (customerio-ios Package.swift:54, CioAnalytics
	// 1.7.3+cio.1 = customerio/cdp-analytics-swift). Its DirectoryStore.swift
	// (b5f805b) writes the file line by line (LineStream.swift:105-107: each
	// line ends in "\n"): "{ \"batch\": [" (:159), the first event, each
	// next one as ","+event (:79-81), then "],\"sentAt\":…,\"writeKey\":…}"
	// (:174-175); HTTPClient.swift:56,189-194 POSTs it to /b as
	// application/json; charset=utf-8, no gzip, no Authorization. The device
	// event's context is DataPipelineImplementation+BGQ.swift:45
	// ({"device":{"token":…,"type":"ios"}}).
	ios := "{ \"batch\": [\n" +
		`{"type":"identify","userId":"p-ios","anonymousId":"A-1","messageId":"ios-1","timestamp":"2026-12-02T06:00:00.000Z","traits":{"email":"ios@example.com"},"context":{"device":{"type":"ios"}}}` + "\n" +
		`,{"type":"track","event":"Device Created or Updated","userId":"p-ios","anonymousId":"A-1","messageId":"ios-2","timestamp":"2026-12-02T06:00:00.100Z","properties":{"cio_sdk_version":"3.10.0","push_enabled":"true"},"context":{"device":{"token":"` + iosToken + `","type":"ios"}}}` + "\n" +
		`],"sentAt":"2026-12-02T06:00:01.000Z","writeKey":"` + key + `"}` + "\n"
	if got, out := e.cdpPost("/v1/b", []byte(ios), map[string]string{"Content-Type": "application/json; charset=utf-8"}); got != 200 {
		t.Fatalf("ios batch: %d %v", got, out)
	}
	// Android batch upload: segmentio/analytics-kotlin (a14649b)
	// core/src/main/java/com/segment/analytics/kotlin/core/HTTPClient.kt:166-171
	// POSTs https://$apiHost/b with Content-Type text/plain, Content-Encoding
	// gzip, chunked; the body is core/.../utilities/StorageImpl.kt:37-40's
	// {"batch":[ev,ev],"sentAt":…,"writeKey":…} (no spaces, no newlines).
	// The token is in context.device.token (customerio-android 4.19.0
	// datapipelines/.../plugins/ContextPlugin.kt:55).
	android := `{"batch":[` +
		`{"type":"identify","userId":"p-and","anonymousId":"b-2","messageId":"and-1","timestamp":"2026-12-02T06:00:00.000Z","traits":{"plan":"free"},"context":{"device":{"type":"android"}}},` +
		`{"type":"track","event":"Device Created or Updated","userId":"p-and","anonymousId":"b-2","messageId":"and-2","timestamp":"2026-12-02T06:00:00.100Z","properties":{"device_os":34},"context":{"device":{"token":"` + androidToken + `","type":"android"}}}` +
		`],"sentAt":"2026-12-02T06:00:01.000Z","writeKey":"` + key + `"}`
	androidHeaders := map[string]string{"Content-Type": "text/plain", "Content-Encoding": "gzip", "Transfer-Encoding": "chunked"}
	if got, out := e.cdpPost("/v1/b", gzipBytes(t, []byte(android)), androidHeaders); got != 200 {
		t.Fatalf("android batch: %d %v", got, out)
	}
	for person, want := range map[string]string{"p-ios": iosToken, "p-and": androidToken} {
		_, devs := c.personDevices(person)
		if _, ok := devs[want]; !ok {
			t.Fatalf("%s devices = %v, want %s…", person, devs, want[:8])
		}
	}

	iosID := c.send(msg, "p-ios", "ALL_DEVICES", "")
	andID := c.send(msg, "p-and", "ALL_DEVICES", "")
	c.waitFinal(iosID)
	c.waitFinal(andID)

	// iOS Notification Service Extension: customerio-ios
	// Sources/Common/Service/BackgroundDeliveryHttpClient.swift:110-128
	// POSTs /track with {"event","userId","properties"} (+ an ISO-8601
	// timestamp with milliseconds), Content-Type application/json;
	// charset=utf-8 and Basic base64(cdpApiKey:).
	iosNSE := `{"event":"Report Delivery Event","userId":"p-ios","properties":{"recipient":"` + iosToken + `","metric":"delivered","deliveryId":"` + iosID + `"}}`
	basic := map[string]string{"Content-Type": "application/json; charset=utf-8", "Authorization": basicWriteKey(key)}
	if got, out := e.cdpPost("/v1/track", []byte(iosNSE), basic); got != 200 {
		t.Fatalf("ios nse: %d %v", got, out)
	}
	// Android delivered: customerio-android messagingpush/.../
	// PushDeliveryTracker.kt:33-49 (4.19.0): JSONObject keeps insertion
	// order, so the body is exactly this; core/.../CustomerIOHttpClient.kt:72-77
	// adds Basic base64(writeKey:).
	andDelivered := `{"anonymousId":"` + andID + `","properties":{"recipient":"` + androidToken + `","metric":"delivered","deliveryId":"` + andID + `"},"event":"Report Delivery Event"}`
	if got, out := e.cdpPost("/v1/track", []byte(andDelivered), basic); got != 200 {
		t.Fatalf("android delivered: %d %v", got, out)
	}
	c.waitStatus(iosID, "DELIVERED")
	c.waitStatus(andID, "DELIVERED")

	// Android opened, through the gzip batch, then the same batch again (a
	// retry after a lost answer): the retried identify must not apply again.
	opened := []byte(`{"batch":[` +
		`{"type":"track","event":"Report Delivery Event","userId":"p-and","anonymousId":"b-2","messageId":"and-3","timestamp":"` + time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + `","properties":{"recipient":"` + androidToken + `","metric":"opened","deliveryId":"` + andID + `"},"context":{"device":{"token":"` + androidToken + `","type":"android"}}},` +
		`{"type":"identify","userId":"p-and","anonymousId":"b-2","messageId":"and-4","traits":{"plan":"trial","unsubscribed":false}}` +
		`],"sentAt":"` + time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + `","writeKey":"` + key + `"}`)
	if got, out := e.cdpPost("/v1/b", gzipBytes(t, opened), androidHeaders); got != 200 {
		t.Fatalf("android opened: %d %v", got, out)
	}
	c.waitStatus(andID, "OPENED")
	c.person("p-and", vars{"plan": "paid"}, true) // changed since the batch
	if got, out := e.cdpPost("/v1/b", gzipBytes(t, opened), androidHeaders); got != 200 {
		t.Fatalf("android opened again: %d %v", got, out)
	}
	if attrs, _ := c.personDevices("p-and"); attrs["plan"] != "paid" {
		t.Errorf("after the retried batch plan = %v, want paid (the retry applied again)", attrs["plan"])
	}
	if r := c.mustDo(`{ person(id: "p-and") { unsubscribed attributes } }`, nil); get(r, "person", "unsubscribed") != true || get(r, "person", "attributes", "unsubscribed") != nil {
		t.Errorf("person = %v, want unsubscribed (the flag; not an attribute)", r)
	}
	ttl, err := e.app.Redis.TTL(context.Background(), "cdp:msg:"+c.workspaceID+":and-4").Result()
	if err != nil || ttl < 23*time.Hour {
		t.Errorf("dedup key TTL = %v (%v), want about 24h", ttl, err)
	}
	e.flush()
	d := c.mustDo(`query($id: ID!) { delivery(id: $id) { campaign { overview { delivered opened } } } }`, vars{"id": andID})
	if got := get(d, "delivery", "campaign", "overview"); got.(map[string]any)["delivered"] != float64(2) || got.(map[string]any)["opened"] != float64(1) {
		t.Errorf("overview = %v, want delivered 2, opened 1", got)
	}

	// Device Deleted removes the token.
	del := `{"type":"track","event":"Device Deleted","userId":"p-ios","messageId":"ios-9","context":{"device":{"token":"` + iosToken + `","type":"ios"}}}`
	if got, out := e.cdpPost("/v1/track", []byte(del), basic); got != 200 {
		t.Fatalf("device deleted: %d %v", got, out)
	}
	if _, devs := c.personDevices("p-ios"); len(devs) != 0 {
		t.Errorf("devices after Device Deleted = %v, want none", devs)
	}
}

func TestCDPRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, key := e.cdpWorkspace("cdp-requests")
	basic := map[string]string{"Content-Type": "application/json", "Authorization": basicWriteKey(key)}
	big := strings.Repeat("x", 33<<10)
	for _, tc := range []struct {
		name, path string
		body       []byte
		gzip       bool
		want       int
	}{
		{"ignored screen", "/v1/screen", []byte(`{"userId":"p-r","name":"Home"}`), false, 200},
		{"ignored page", "/v1/page", []byte(`{"userId":"p-r","name":"Home"}`), false, 200},
		{"ignored group", "/v1/group", []byte(`{"userId":"p-r","groupId":"g"}`), false, 200},
		{"ignored alias", "/v1/alias", []byte(`{"userId":"p-r","previousId":"a"}`), false, 200},
		{"not json", "/v1/track", []byte(`{"event":`), false, 400},
		{"event over 32KB", "/v1/track", []byte(`{"event":"x","userId":"p-r","properties":{"a":"` + big + `"}}`), false, 400},
		{"batch item over 32KB", "/v1/batch", []byte(`{"batch":[{"type":"track","event":"x","userId":"p-r","properties":{"a":"` + big + `"}}]}`), false, 400},
		// 600 KB of JSON, a few KB gzipped: the decompressed size counts.
		{"gzip over 500KB decompressed", "/v1/batch", []byte(`{"batch":[],"pad":"` + strings.Repeat("y", 600<<10) + `"}`), true, 400},
		{"gzip batch", "/v1/batch", []byte(`{"batch":[{"type":"track","event":"Signed Up","userId":"p-r","messageId":"r-1"}]}`), true, 200},
		{"unknown delivery", "/v1/track", []byte(`{"event":"Report Delivery Event","properties":{"recipient":"0123` + strings.Repeat("ab", 30) + `","metric":"opened","deliveryId":"0190a0a0-0000-7000-8000-000000000000"}}`), false, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, h := tc.body, basic
			if tc.gzip {
				body = gzipBytes(t, body)
				h = map[string]string{"Content-Type": "text/plain", "Content-Encoding": "gzip", "Authorization": basicWriteKey(key)}
			}
			got, out := e.cdpPost(tc.path, body, h)
			if got != tc.want {
				t.Fatalf("status %d, want %d: %v", got, tc.want, out)
			}
			if got == 400 && (out["success"] != false || out["message"] == "") {
				t.Errorf("400 answer %v, want success false and a message", out)
			}
			if m, _ := out["message"].(string); tc.gzip && got == 400 && !strings.Contains(m, "decompressed") {
				t.Errorf("message %q, want the decompressed limit named", m)
			}
		})
	}
	if r := c.do(`{ person(id: "p-r") { id } }`, nil); r.code() != "NOT_FOUND" {
		t.Errorf("person p-r: %+v, want NOT_FOUND (the ignored calls made no person; the tracked event needs none)", r)
	}
}

// TestCDPSettings: the document the SDKs fetch at start. customerio-android
// datapipelines/src/test/.../testutils/utils/Analytics.kt:26-36 (4.19.0)
// mocks it as {"integrations":{"Customer.io Data Pipelines":{"apiKey":…}},
// "plan":{},"edgeFunction":{}}; CustomerIODestination.kt:33-36 reads
// apiKey and an optional apiHost.
func TestCDPSettings(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, key := e.cdpWorkspace("cdp-settings")
	get := func(k string) (int, map[string]any) {
		resp, err := http.Get(e.http.URL + "/v1/projects/" + k + "/settings")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, out := get(key)
	if status != 200 {
		t.Fatalf("settings: %d %v", status, out)
	}
	dest, _ := out["integrations"].(map[string]any)["Customer.io Data Pipelines"].(map[string]any)
	if dest["apiKey"] != key {
		t.Errorf("settings = %v, want the Customer.io destination with apiKey", out)
	}
	if status, out := get("wknotakey"); status != 401 || out["success"] != false {
		t.Errorf("unknown key: %d %v, want 401", status, out)
	}
}

// TestCDPSegmentEvents: Segment's mobile push events and any other track
// (a conversion), and the per-IP rate limit.
func TestCDPSegmentEvents(t *testing.T) {
	e := newEnv(t, envOptions{reportRate: 5})
	c, key := e.cdpWorkspace("cdp-segment")
	basic := map[string]string{"Content-Type": "application/json", "Authorization": basicWriteKey(key)}
	campID := get(c.mustDo(`mutation { createCampaign(input: {name: "Goal", conversionGoal: {event: "Order Completed"}}) { id } }`, nil), "createCampaign", "id").(string)
	msg := get(c.mustDo(`mutation($c: ID!) { createPushMessage(input: {campaignId: $c, name: "m", title: "t", body: "b"}) { id } }`, vars{"c": campID}), "createPushMessage", "id").(string)
	token := "fcmSeg" + strings.Repeat("z9", 40)
	c.device("p-seg", "ANDROID", token, time.Time{})
	id := c.send(msg, "p-seg", "ALL_DEVICES", "")
	c.waitFinal(id)

	post := func(body string) {
		t.Helper()
		time.Sleep(250 * time.Millisecond) // under 5 a second
		if got, out := e.cdpPost("/v1/track", []byte(body), basic); got != 200 {
			t.Fatalf("%s: %d %v", body, got, out)
		}
	}
	post(`{"event":"Push Notification Received","userId":"p-seg","properties":{"deliveryId":"` + id + `"},"context":{"device":{"token":"` + token + `","type":"android"}}}`)
	c.waitStatus(id, "DELIVERED")
	post(`{"event":"Push Notification Tapped","userId":"p-seg","properties":{"delivery_id":"` + id + `","recipient":"` + token + `"}}`)
	c.waitStatus(id, "OPENED")
	post(`{"event":"Push Notification Bounced","userId":"p-seg","properties":{"deliveryId":"` + id + `"},"context":{"device":{"token":"` + token + `"}}}`)
	post(`{"event":"Order Completed","userId":"p-seg","messageId":"order-1","properties":{"total":12.5}}`)
	c.waitStatus(id, "CONVERTED")

	// The limit: a burst of 12 spans at most two one-second windows, so
	// at most 10 pass and the rest get 429.
	time.Sleep(time.Second)
	limited := 0
	for range 12 {
		if s, _ := e.cdpPost("/v1/screen", []byte(`{"userId":"p-seg"}`), basic); s == 429 {
			limited++
		}
	}
	if limited < 2 {
		t.Errorf("%d of a burst of 12 got 429, want at least 2", limited)
	}
}

// TestCDPIOSFirebaseToken: an iOS app that uses Firebase Messaging
// registers its FCM token, not the APNS one. customerio-ios 4.7.5
// Sources/MessagingPushFCM/MessagingPushFCM.swift:61-65 hands the FCM
// token to the same messagingPush.registerDeviceToken as the APNS module,
// so it arrives as the iOS batch's Device Created or Updated with
// context.device.type "ios" (DataPipelineImplementation+BGQ.swift:45).
// Herald keeps the device as IOS and sends to it through FCM, with the
// apns block an iPhone needs, while the person's APNS device goes to APNS.
func TestCDPIOSFirebaseToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, key := e.cdpWorkspace("cdp-ios-fcm")
	msg := c.message("Hi", "Hello")
	apnsToken := "0a1c" + strings.Repeat("cd", 30)
	fcmToken := "fIoS4w9WgXcQ:APA91bH-" + strings.Repeat("iOs_", 30)
	batch := "{ \"batch\": [\n" +
		`{"type":"track","event":"Device Created or Updated","userId":"p-fios","anonymousId":"A-9","messageId":"fios-1","timestamp":"2026-12-02T06:00:00.100Z","properties":{"cio_sdk_version":"4.7.5"},"context":{"device":{"token":"` + apnsToken + `","type":"ios"}}}` + "\n" +
		`,{"type":"track","event":"Device Created or Updated","userId":"p-fios","anonymousId":"A-9","messageId":"fios-2","timestamp":"2026-12-02T06:00:00.200Z","properties":{"cio_sdk_version":"4.7.5"},"context":{"device":{"token":"` + fcmToken + `","type":"ios"}}}` + "\n" +
		`],"sentAt":"2026-12-02T06:00:01.000Z","writeKey":"` + key + `"}` + "\n"
	if got, out := e.cdpPost("/v1/b", []byte(batch), map[string]string{"Content-Type": "application/json; charset=utf-8"}); got != 200 {
		t.Fatalf("ios batch: %d %v", got, out)
	}
	if _, devs := c.personDevices("p-fios"); devs[apnsToken] != "IOS" || devs[fcmToken] != "IOS" {
		t.Fatalf("devices = %v, want both IOS", devs)
	}

	id := c.send(msg, "p-fios", "ALL_DEVICES", "")
	d := c.waitFinal(id)
	for _, tok := range []string{apnsToken, fcmToken} {
		if st, _ := d.statusOf(tok); st != "SENT" {
			t.Errorf("device %.8s… is %q, want SENT: %s", tok, st, fmtDevices(d))
		}
	}
	for _, dv := range d.Devices {
		if dv.Platform != "IOS" {
			t.Errorf("delivery device %.8s… platform %s, want IOS", dv.Token, dv.Platform)
		}
	}
	if n := e.apns.Count(fcmToken); n != 0 {
		t.Errorf("APNS got %d requests for the FCM token", n)
	}
	if n := e.fcm.Count(apnsToken); n != 0 {
		t.Errorf("FCM got %d requests for the APNS token", n)
	}
	if n := e.apns.Count(apnsToken); n != 1 {
		t.Errorf("APNS got %d requests for the APNS token, want 1", n)
	}
	reqs := e.fcm.Requests(fcmToken)
	if len(reqs) != 1 {
		t.Fatalf("FCM got %d requests for the iOS device's FCM token, want 1", len(reqs))
	}
	var body map[string]any
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatalf("FCM body: %v: %s", err, reqs[0].Body)
	}
	if get(body, "message", "data", "CIO-Delivery-ID") != id || get(body, "message", "data", "CIO-Delivery-Token") != fcmToken {
		t.Errorf("data = %v, want CIO-Delivery-ID %s and the token", get(body, "message", "data"), id)
	}
	if get(body, "message", "android") != nil || get(body, "message", "apns", "payload", "aps") == nil ||
		get(body, "message", "apns", "payload", "CIO", "push", "link") != "app://home" || get(body, "message", "apns", "headers", "apns-collapse-id") != id {
		t.Errorf("FCM message to an iOS device = %s, want an apns block (aps, CIO.push.link, apns-collapse-id) and no android block", reqs[0].Body)
	}

	// The SDK reports delivered for the FCM token like any other.
	nse := `{"event":"Report Delivery Event","userId":"p-fios","properties":{"recipient":"` + fcmToken + `","metric":"delivered","deliveryId":"` + id + `"}}`
	if got, out := e.cdpPost("/v1/track", []byte(nse), map[string]string{"Content-Type": "application/json; charset=utf-8", "Authorization": basicWriteKey(key)}); got != 200 {
		t.Fatalf("nse: %d %v", got, out)
	}
	c.waitStatus(id, "DELIVERED")
}

// TestCDPSentAtSkew: Segment corrects each timestamp by the sender's clock
// (timestamp + received − sentAt); a phone two hours slow reports a
// delivered that happened half a second before it uploaded the batch, and
// the metric counts at that moment rather than being refused as from
// before the delivery existed.
func TestCDPSentAtSkew(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, key := e.cdpWorkspace("cdp-skew")
	msg := c.message("Hi", "Hello")
	token := "skew" + strings.Repeat("Q_", 30)
	c.device("p-skew", "ANDROID", token, time.Time{})
	id := c.send(msg, "p-skew", "ALL_DEVICES", "")
	created := time.Now()
	c.waitFinal(id)
	// The report is of a delivered lag before the upload: the delivery must
	// be older than lag, or its time would be clamped to the delivery's
	// creation (the timestamp rule).
	const lag = 1500 * time.Millisecond
	time.Sleep(time.Until(created.Add(lag + time.Second)))

	phone := time.Now().Add(-2 * time.Hour) // the phone's clock
	iso := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	batch := `{"batch":[{"type":"track","event":"Report Delivery Event","anonymousId":"s-1","messageId":"skew-1","timestamp":"` + iso(phone.Add(-lag)) +
		`","properties":{"recipient":"` + token + `","metric":"delivered","deliveryId":"` + id + `"}}],"sentAt":"` + iso(phone) + `","writeKey":"` + key + `"}`
	before := time.Now().Truncate(time.Millisecond)
	if got, out := e.cdpPost("/v1/b", []byte(batch), map[string]string{"Content-Type": "application/json"}); got != 200 {
		t.Fatalf("batch: %d %v", got, out)
	}
	after := time.Now()
	c.waitStatus(id, "DELIVERED")
	at, err := time.Parse(time.RFC3339Nano, get(c.mustDo(`query($id: ID!) { delivery(id: $id) { deliveredAt } }`, vars{"id": id}), "delivery", "deliveredAt").(string))
	if err != nil {
		t.Fatal(err)
	}
	// received − lag, received being between before and after (sentAt and
	// the timestamp have whole milliseconds); the upload's own time would be
	// lag later.
	if lo, hi := before.Add(-lag-time.Millisecond), after.Add(-lag); at.Before(lo) || at.After(hi) {
		t.Errorf("deliveredAt = %v, want in [%v, %v]: the phone's timestamp corrected by sentAt", at, lo, hi)
	}
}

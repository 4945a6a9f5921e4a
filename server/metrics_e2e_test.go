package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/providers/sim"
)

func (e *env) post(path, body string) (int, string) {
	e.t.Helper()
	resp, err := http.Post(e.http.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// distinctEvents counts a delivery's events by identity (duplicates once).
func (e *env) distinctEvents(deliveryID, kind string) uint64 {
	e.t.Helper()
	var n uint64
	q := "SELECT count() FROM (SELECT DISTINCT round, device_index, kind, attempt FROM events WHERE toString(delivery_id) = ? AND (? = '' OR toString(kind) = ?))"
	if err := e.app.CH.QueryRow(context.Background(), q, deliveryID, kind, kind).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// Reports through every path; each rejection records nothing; duplicates and
// out-of-order reports never change a count.
func TestSDKReports(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	a, b, other := sim.Token("aa", 1), sim.Token("bb", 1), sim.Token("cc", 1)
	c.person("p1", nil, false)
	c.device("p1", "IOS", a, time.Now().Add(-time.Minute))
	c.device("p1", "ANDROID", b, time.Now().Add(-2*time.Minute))
	c.person("p2", nil, false)
	c.device("p2", "IOS", other, time.Time{})
	msg := c.message("Hello", "there")
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("status %s, want SENT", d.Status)
	}
	now := time.Now().Unix()

	// Rejections first: nothing may be recorded.
	e.flush()
	before := e.distinctEvents(id, "")
	unknown, _ := uuid.NewV7()
	rejections := []struct {
		name, path, body string
		status           int
	}{
		{"unknown delivery", "/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q,"timestamp":%d}`, unknown, a, now), 400},
		{"not a delivery id", "/push/events", fmt.Sprintf(`{"delivery_id":"RPILAgUBcRhIBqSfeiIwdIYJKxTY","event":"delivered","device_id":%q}`, a), 400},
		{"token not targeted", "/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, other), 400},
		{"bad JSON", "/push/events", `{"delivery_id": "x", `, 400},
		{"not an object", "/api/v1/push/events", `["delivered"]`, 400},
		{"unknown event", "/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"bounced","device_id":%q}`, id, a), 400},
		{"timestamp not a number", "/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"opened","device_id":%q,"timestamp":"yesterday"}`, id, a), 400},
		{"timestamp in milliseconds", "/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"opened","device_id":%q,"timestamp":%d}`, id, a, now*1000), 400},
		{"timestamp in the future", "/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"opened","device_id":%q,"timestamp":%d}`, id, a, now+3600), 400},
		{"timestamp before the delivery", "/api/v1/metrics", fmt.Sprintf(`{"delivery_id":%q,"metric":"opened","recipient":%q,"timestamp":%d}`, id, a, now-86400), 400},
		{"missing device", "/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"opened"}`, id), 400},
	}
	for _, tc := range rejections {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.post(tc.path, tc.body)
			var m map[string]any
			if status != tc.status || json.Unmarshal([]byte(body), &m) != nil || m["error"] == nil {
				t.Errorf("%s → %d %s; want %d with a JSON error", tc.path, status, body, tc.status)
			}
		})
	}
	e.flush()
	if got := e.distinctEvents(id, ""); got != before {
		t.Fatalf("rejected reports recorded events: %d → %d", before, got)
	}

	// Opened before delivered, on device b, through the metrics endpoint.
	if status, body := e.post("/api/v1/metrics", fmt.Sprintf(`{"delivery_id":%q,"metric":"opened","recipient":%q,"timestamp":%d}`, id, b, now)); status != 200 {
		t.Fatalf("metrics opened: %d %s", status, body)
	}
	e.flush()
	d := c.delivery(id)
	if d.Status != "OPENED" {
		t.Errorf("after an open: %s, want OPENED", d.Status)
	}
	full := c.mustDo(`query($id: ID!) { delivery(id: $id) { deliveredAt openedAt devices { token deliveredAt openedAt } } }`, vars{"id": id})
	if get(full, "delivery", "deliveredAt") == nil || get(full, "delivery", "openedAt") == nil {
		t.Errorf("an open implies delivered: %v", full)
	}
	// Delivered for device a, twice, on both paths; then the late delivered for b.
	for _, p := range []string{"/push/events", "/api/v1/push/events", "/push/events"} {
		if status, body := e.post(p, fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q,"timestamp":%d}`, id, a, now)); status != 200 {
			t.Fatalf("%s delivered: %d %s", p, status, body)
		}
	}
	if r := c.do(`mutation($in: ReportPushMetricInput!) { reportPushMetric(input: $in) }`, vars{"in": vars{"deliveryId": id, "metric": "DELIVERED", "deviceToken": b}}); r.code() != "" {
		t.Fatalf("reportPushMetric: %+v", r.Errors)
	}
	if r := c.do(`mutation($in: ReportPushMetricInput!) { reportPushMetric(input: $in) }`, vars{"in": vars{"deliveryId": id, "metric": "OPENED", "deviceToken": other}}); r.code() != "NOT_FOUND" {
		t.Errorf("reportPushMetric for an untargeted token: code %q, want NOT_FOUND", r.code())
	}
	if r := e.workspace("b").do(`mutation($in: ReportPushMetricInput!) { reportPushMetric(input: $in) }`, vars{"in": vars{"deliveryId": id, "metric": "OPENED", "deviceToken": a}}); r.code() != "NOT_FOUND" {
		t.Errorf("reportPushMetric from another workspace: code %q, want NOT_FOUND", r.code())
	}
	e.flush()
	if got := e.distinctEvents(id, "delivered"); got != 2 {
		t.Errorf("distinct delivered events = %d, want 2 (one per device)", got)
	}
	if got := e.distinctEvents(id, "opened"); got != 1 {
		t.Errorf("distinct opened events = %d, want 1", got)
	}
	if d := c.delivery(id); d.Status != "OPENED" {
		t.Errorf("final status %s, want OPENED", d.Status)
	}
}

// uuidAt is a UUIDv7 whose time is t (for deliveries made in the past).
func uuidAt(t time.Time) uuid.UUID {
	u, _ := uuid.NewV7()
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (40 - 8*i))
	}
	return u
}

// pastDelivery records a delivery of msg to person made and SENT at `at`,
// as the send pipeline would have, so conversion windows can be tested.
func (e *env) pastDelivery(c *client, msgID, campaignID, person string, at time.Time) string {
	e.t.Helper()
	ctx := context.Background()
	id := uuidAt(at)
	d := clickhouse.Delivery{WorkspaceID: c.workspaceID, ID: id, CampaignID: uuid.MustParse(campaignID), MessageID: uuid.MustParse(msgID),
		PersonID: person, Audience: "ALL_DEVICES", Data: "{}", CreatedAt: clickhouse.DeliveryTime(id).UTC()}
	if err := e.app.Store.CreateDelivery(ctx, d); err != nil {
		e.t.Fatal(err)
	}
	tok := sim.Token("0", int(at.Unix()%100000))
	e.targeted(d, clickhouse.DeliveryDevice{Index: 0, Token: tok, Platform: "IOS"})
	ev := func(kind string, attempt uint16) clickhouse.Event {
		return clickhouse.Event{WorkspaceID: d.WorkspaceID, CampaignID: d.CampaignID, DeliveryID: id, Kind: kind, Attempt: attempt,
			StatusCode: 200, DeliveryCreated: d.CreatedAt, At: at}
	}
	if err := clickhouse.InsertEvents(ctx, e.app.CH, []clickhouse.Event{ev("targeted", 0), ev("attempt", 1), ev("sent", 0)}); err != nil {
		e.t.Fatal(err)
	}
	return id.String()
}

func TestConversions(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	camp := c.mustDo(`mutation { createCampaign(input: {name: "Goal", conversionGoal: {event: "purchase", windowHours: 1}}) { id } }`, nil)
	campID := get(camp, "createCampaign", "id").(string)
	msgID := get(c.mustDo(`mutation($c: ID!) { createPushMessage(input: {campaignId: $c, name: "m", title: "t", body: "b"}) { id } }`, vars{"c": campID}), "createPushMessage", "id").(string)
	now := time.Now().UTC().Truncate(time.Second)
	track := func(person string, at time.Time) {
		t.Helper()
		c.mustDo(`mutation($in: TrackEventInput!) { trackEvent(input: $in) }`, vars{"in": vars{"personId": person, "name": "purchase", "timestamp": at.Format(time.RFC3339)}})
	}
	status := func(id string) (string, any) {
		t.Helper()
		e.flush()
		d := c.mustDo(`query($id: ID!) { delivery(id: $id) { status convertedAt } }`, vars{"id": id})
		return get(d, "delivery", "status").(string), get(d, "delivery", "convertedAt")
	}

	// Two deliveries before the event: only the later converts.
	older := e.pastDelivery(c, msgID, campID, "p1", now.Add(-50*time.Minute))
	later := e.pastDelivery(c, msgID, campID, "p1", now.Add(-20*time.Minute))
	track("p1", now.Add(-5*time.Minute))
	if s, _ := status(older); s != "SENT" {
		t.Errorf("older delivery: %s, want SENT", s)
	}
	s, convertedAt := status(later)
	if s != "CONVERTED" || convertedAt == nil {
		t.Errorf("later delivery: %s (convertedAt %v), want CONVERTED", s, convertedAt)
	}
	// A second goal event: still one conversion, at the first event's time.
	track("p1", now.Add(-time.Minute))
	if _, again := status(later); again != convertedAt {
		t.Errorf("convertedAt moved from %v to %v", convertedAt, again)
	}
	if n := e.distinctEvents(later, "converted"); n != 1 {
		t.Errorf("converted events of the later delivery = %d, want 1", n)
	}
	if s, _ := status(older); s != "SENT" {
		t.Errorf("second event converted the older delivery: %s", s)
	}

	// After the window: none.
	stale := e.pastDelivery(c, msgID, campID, "p2", now.Add(-3*time.Hour))
	track("p2", now)
	if s, _ := status(stale); s != "SENT" {
		t.Errorf("event after the window: %s, want SENT", s)
	}

	// Before any send: none.
	future := e.pastDelivery(c, msgID, campID, "p3", now.Add(-10*time.Minute))
	track("p3", now.Add(-30*time.Minute))
	if s, _ := status(future); s != "SENT" {
		t.Errorf("event before the send: %s, want SENT", s)
	}

	// Another person's event converts nothing of p3, and another event name neither.
	c.mustDo(`mutation { trackEvent(input: {personId: "p3", name: "signup"}) }`, nil)
	if s, _ := status(future); s != "SENT" {
		t.Errorf("a non-goal event converted: %s", s)
	}

	// An SDK's converted report counts the same way.
	sdk := e.pastDelivery(c, msgID, campID, "p4", now.Add(-2*time.Minute))
	tok := sim.Token("0", int(now.Add(-2*time.Minute).Unix()%100000))
	body := fmt.Sprintf(`{"delivery_id":%q,"event":"converted","device_id":%q,"timestamp":%d}`, sdk, tok, now.Unix())
	for i := 0; i < 2; i++ {
		if st, b := e.post("/push/events", body); st != 200 {
			t.Fatalf("converted report: %d %s", st, b)
		}
	}
	if s, _ := status(sdk); s != "CONVERTED" {
		t.Errorf("SDK converted report: %s, want CONVERTED", s)
	}
	e.flush()
	if n := e.distinctEvents(sdk, "converted"); n != 1 {
		t.Errorf("converted events after two reports = %d, want 1", n)
	}

	// Bad input.
	if r := c.do(`mutation { trackEvent(input: {personId: "p1", name: ""}) }`, nil); r.code() != "BAD_USER_INPUT" {
		t.Errorf("empty event name: %q", r.code())
	}
}

// Legacy SDKs (customerio-android 3.x) report a tapped push as "clicked"
// and send HTTP Basic auth (site id : API key); "clicked" counts as opened,
// and the credentials are ignored: right, wrong or absent, a report counts
// only for a device the delivery targeted.
func TestSDKLegacyReports(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	a, b := sim.Token("e1", 1), sim.Token("e2", 1)
	c.person("p1", nil, false)
	c.device("p1", "IOS", a, time.Now().Add(-time.Minute))
	c.device("p1", "IOS", b, time.Now().Add(-time.Hour))
	id := c.send(c.message("Hello", "there"), "p1", "ALL_DEVICES", "")
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("status %s, want SENT", d.Status)
	}
	for _, r := range []struct {
		path, body string
		auth       auth
	}{
		{"/api/v1/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"clicked","device_id":%q}`, id, a), basic(e.siteID(c), c.key)},
		{"/api/v1/metrics", fmt.Sprintf(`{"delivery_id":%q,"metric":"clicked","recipient":%q}`, id, b), basic("wrong", "wrong")},
	} {
		if status, _, m := e.rest("POST", r.path, r.body, r.auth); status != 200 {
			t.Fatalf("%s clicked → %d %v; want 200", r.path, status, m)
		}
	}
	e.flush()
	if got := e.distinctEvents(id, "opened"); got != 2 {
		t.Errorf("distinct opened events = %d, want 2 (one per device)", got)
	}
	if d := c.delivery(id); d.Status != "OPENED" {
		t.Errorf("status %s, want OPENED", d.Status)
	}
}

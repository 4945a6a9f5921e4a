package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	customerio "github.com/customerio/go-customerio/v3"

	"github.com/heraldpush/herald/providers/sim"
)

// TestPushOptions creates messages with delivery options through GraphQL,
// reads them back, sends them to an iOS and an Android device and checks
// what the simulators got: the rendered Liquid options, the APNS headers,
// the FCM android block and the custom payloads merged with Herald's keys.
// Impossible combinations are refused with BAD_USER_INPUT naming the option.
func TestPushOptions(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("opts"))
	ios, android := sim.Token("0e01", 1), sim.Token("0e02", 1)
	c.person("p1", vars{"first_name": "Ada", "order": "42"}, false)
	c.device("p1", "IOS", ios, time.Now().Add(-time.Hour))
	c.device("p1", "ANDROID", android, time.Now().Add(-2*time.Hour))

	const create = `mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id options {
		silent priority ttlSeconds collapseKey pushType threadId subtitle interruptionLevel relevanceScore
		channelId notificationPriority visibility color tag titleLocArgs iosPayload androidPayload webpushPayload } } }`
	opts := vars{
		"priority": "NORMAL", "ttlSeconds": 3600, "collapseKey": "order-{{ customer.order }}",
		"threadId": "orders", "subtitle": "For {{ customer.first_name }}", "interruptionLevel": "TIME_SENSITIVE",
		"relevanceScore": 0.5, "channelId": "orders", "notificationPriority": "HIGH", "visibility": "PRIVATE",
		"color": "#ff8800", "tag": "order-{{ customer.order }}",
		"titleLocKey": "SHIPPED", "titleLocArgs": []string{"{{ customer.order }}"},
		"iosPayload":     vars{"aps": vars{"category": "ORDER"}, "order": vars{"id": 42, "label": "Order {{ customer.order }}"}},
		"androidPayload": vars{"data": vars{"extra": "1", "who": "{{ customer.first_name }}"}, "android": vars{"notification": vars{"sticky": true}}},
		"webpushPayload": vars{"fcm_options": vars{"link": "https://example.com/orders/{{ customer.order }}"}},
	}
	d := c.mustDo(create, vars{"in": vars{"name": "Options", "title": "Shipped", "body": "Hi {{ customer.first_name }}", "options": opts}})
	msg := get(d, "createPushMessage", "id").(string)
	got := get(d, "createPushMessage", "options").(map[string]any)
	for k, want := range map[string]any{"silent": false, "priority": "NORMAL", "ttlSeconds": 3600.0, "collapseKey": "order-{{ customer.order }}",
		"pushType": nil, "interruptionLevel": "TIME_SENSITIVE", "visibility": "PRIVATE", "notificationPriority": "HIGH", "relevanceScore": 0.5} {
		if got[k] != want {
			t.Errorf("options.%s = %v, want %v", k, got[k], want)
		}
	}
	if tla, ok := got["titleLocArgs"].([]any); !ok || len(tla) != 1 || tla[0] != "{{ customer.order }}" {
		t.Errorf("options.titleLocArgs = %#v, want the template", got["titleLocArgs"])
	}
	// Read back through message(id): the same options.
	rd := c.mustDo(`query($id: ID!) { pushMessage(id: $id) { options { collapseKey tag iosPayload } } }`, vars{"id": msg})
	if s := get(rd, "pushMessage", "options", "tag"); s != "order-{{ customer.order }}" {
		t.Errorf("pushMessage(id).options.tag = %v", s)
	}

	id := c.send(msg, "p1", "ALL_DEVICES", "")
	if st := c.waitFinal(id); st.Status != "SENT" {
		t.Fatalf("status = %s (%s)", st.Status, fmtDevices(st))
	}
	// The delivery shows the push as rendered for Ada, without a token.
	rp := get(c.mustDo(`query($id: ID!) { delivery(id: $id) { push { title body data options { subtitle collapseKey tag iosPayload } } } }`,
		vars{"id": id}), "delivery", "push")
	for path, want := range map[string]any{"body": "Hi Ada", "options.subtitle": "For Ada", "options.collapseKey": "order-42",
		"options.tag": "order-42", "options.iosPayload.order.label": "Order 42"} {
		if g := get(rp.(map[string]any), strings.Split(path, ".")...); g != want {
			t.Errorf("delivery.push.%s = %v, want %v", path, g, want)
		}
	}
	if b, _ := json.Marshal(rp); strings.Contains(string(b), ios) || strings.Contains(string(b), android) {
		t.Errorf("delivery.push holds a device token: %s", b)
	}
	areq := e.apns.Requests(ios)
	if len(areq) != 1 {
		t.Fatalf("APNS got %d requests", len(areq))
	}
	for h, want := range map[string]string{"apns-priority": "5", "apns-push-type": "alert", "apns-collapse-id": "order-42"} {
		if g := areq[0].Headers.Get(h); g != want {
			t.Errorf("APNS %s = %q, want %q", h, g, want)
		}
	}
	if exp, err := strconv.ParseInt(areq[0].Headers.Get("apns-expiration"), 10, 64); err != nil || exp < time.Now().Add(59*time.Minute).Unix() {
		t.Errorf("apns-expiration = %q, want about now + 1 h", areq[0].Headers.Get("apns-expiration"))
	}
	var ap map[string]any
	if err := json.Unmarshal(areq[0].Body, &ap); err != nil {
		t.Fatal(err)
	}
	if a, _ := get(ap, "aps", "alert", "title-loc-args").([]any); len(a) != 1 || a[0] != "42" {
		t.Errorf("aps.alert.title-loc-args = %v, want the rendered [42]", get(ap, "aps", "alert", "title-loc-args"))
	}
	if s := get(ap, "aps", "alert", "subtitle"); s != "For Ada" {
		t.Errorf("aps.alert.subtitle = %v, want the rendered %q", s, "For Ada")
	}
	for path, want := range map[string]any{"aps.thread-id": "orders", "aps.interruption-level": "time-sensitive",
		"aps.relevance-score": 0.5, "aps.category": "ORDER", "order.id": 42.0, "order.label": "Order 42", "CIO-Delivery-ID": id,
		"CIO-Delivery-Token": ios} {
		if g := get(ap, strings.Split(path, ".")...); g != want {
			t.Errorf("APNS payload %s = %v, want %v", path, g, want)
		}
	}
	freq := e.fcm.Requests(android)
	if len(freq) != 1 {
		t.Fatalf("FCM got %d requests", len(freq))
	}
	var fm map[string]any
	if err := json.Unmarshal(freq[0].Body, &fm); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{"message.android.priority": "normal", "message.android.ttl": "3600s",
		"message.android.collapse_key": "order-42", "message.android.notification.channel_id": "orders",
		"message.android.notification.notification_priority": "PRIORITY_HIGH", "message.android.notification.visibility": "PRIVATE",
		"message.android.notification.color": "#ff8800", "message.android.notification.tag": "order-42",
		"message.android.notification.sticky": true, "message.data.extra": "1", "message.data.who": "Ada", "message.data.CIO-Delivery-ID": id,
		"message.webpush.fcm_options.link": "https://example.com/orders/42"} {
		if g := get(fm, strings.Split(path, ".")...); g != want {
			t.Errorf("FCM %s = %v, want %v", path, g, want)
		}
	}

	// A silent push: no alert; background at priority 5 on APNS, no notification on FCM.
	sd := c.mustDo(create, vars{"in": vars{"name": "Sync", "title": "", "body": "", "data": vars{"sync": "inbox"},
		"options": vars{"silent": true}}})
	sid := c.send(get(sd, "createPushMessage", "id").(string), "p1", "ALL_DEVICES", "")
	if st := c.waitFinal(sid); st.Status != "SENT" {
		t.Fatalf("silent status = %s (%s)", st.Status, fmtDevices(st))
	}
	areq = e.apns.Requests(ios)
	if len(areq) != 2 || areq[1].Headers.Get("apns-push-type") != "background" || areq[1].Headers.Get("apns-priority") != "5" {
		t.Fatalf("silent APNS request: %d requests, headers %v", len(areq), areq[len(areq)-1].Headers)
	}
	if err := json.Unmarshal(areq[1].Body, &ap); err != nil {
		t.Fatal(err)
	}
	if aps, _ := ap["aps"].(map[string]any); len(aps) != 1 || aps["content-available"] != 1.0 || ap["sync"] != "inbox" {
		t.Errorf("silent APNS payload = %s", areq[1].Body)
	}
	freq = e.fcm.Requests(android)
	if err := json.Unmarshal(freq[len(freq)-1].Body, &fm); err != nil {
		t.Fatal(err)
	}
	if n := get(fm, "message", "notification"); n != nil {
		t.Errorf("silent FCM message has a notification: %s", freq[len(freq)-1].Body)
	}

	for _, tc := range []struct {
		name  string
		in    vars
		field string
	}{
		{"silent with a title", vars{"title": "x", "body": "", "options": vars{"silent": true}}, "input.options.silent"},
		{"silent at HIGH", vars{"title": "", "body": "", "options": vars{"silent": true, "priority": "HIGH"}}, "input.options.priority"},
		{"background without silent", vars{"title": "x", "body": "y", "options": vars{"pushType": "BACKGROUND"}}, "input.options.pushType"},
		{"ttl too long", vars{"title": "x", "body": "y", "options": vars{"ttlSeconds": 30 * 24 * 3600}}, "input.options.ttlSeconds"},
		{"color", vars{"title": "x", "body": "y", "options": vars{"color": "orange"}}, "input.options.color"},
		{"android webpush", vars{"title": "x", "body": "y", "options": vars{"androidPayload": vars{"webpush": vars{}}}}, "input.options.androidPayload.webpush"},
		{"bad Liquid in an option", vars{"title": "x", "body": "y", "options": vars{"subtitle": "{{ customer.name "}}, "input.options.subtitle"},
		{"bad Liquid in a payload", vars{"title": "x", "body": "y", "options": vars{"iosPayload": vars{"a": vars{"b": "{% if %}"}}}}, "input.options.iosPayload.a.b"},
		{"webpush apns", vars{"title": "x", "body": "y", "options": vars{"webpushPayload": vars{"apns": vars{}}}}, "input.options.webpushPayload.apns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in["name"] = "refused"
			r := c.do(create, vars{"in": tc.in})
			if r.code() != "BAD_USER_INPUT" {
				t.Fatalf("code = %q, want BAD_USER_INPUT (%+v)", r.code(), r.Errors)
			}
			if f, _ := r.Errors[0].Extensions["field"].(string); f != tc.field {
				t.Errorf("field = %q, want %q (%s)", f, tc.field, r.Errors[0].Message)
			}
		})
	}
	// An option the schema does not have is refused by name.
	r := c.do(create, vars{"in": vars{"name": "x", "title": "x", "body": "y", "options": vars{"webpush": vars{}}}})
	if len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "webpush") {
		t.Errorf("unknown option: errors %+v, want one naming webpush", r.Errors)
	}
}

// TestSendPushClientOptions drives go-customerio's SendPush (v3.10.0,
// send_push.go:8-27, every field of SendPushRequest) against Herald:
// custom_payload for iOS (APNS and FCM shapes) and Android reaches the
// simulators merged with Herald's keys; each field Herald does not do yet
// is refused with 400 naming it, and nothing is sent.
func TestSendPushClientOptions(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("cio-opts"))
	api := e.apiClient(c)
	ios, android := sim.Token("0c01", 1), sim.Token("0c02", 1)
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", ios, time.Now().Add(-time.Minute))
	c.device("p1", "ANDROID", android, time.Now().Add(-time.Hour))
	msg := c.message("Hi {{ customer.first_name }}", "Welcome")

	for _, shape := range []string{
		`{"aps":{"category":"WELCOME","sound":"chime.caf"},"promo":"spring"}`,
		`{"message":{"apns":{"payload":{"aps":{"category":"WELCOME","sound":"chime.caf"},"promo":"spring"}}}}`,
	} {
		cp := `{"ios":` + shape + `,"android":{"message":{"data":{"promo":"spring"},"android":{"notification":{"channel_id":"promos","tag":"welcome"}}}}}`
		resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
			Identifiers: map[string]string{"id": "p1"}, CustomPayload: json.RawMessage(cp)})
		if err != nil {
			t.Fatalf("SendPush with custom_payload %s: %v", shape, err)
		}
		if d := c.waitFinal(resp.DeliveryID); d.Status != "SENT" {
			t.Fatalf("delivery %s (%s)", d.Status, fmtDevices(d))
		}
		areq := e.apns.Requests(ios)
		var ap map[string]any
		if err := json.Unmarshal(areq[len(areq)-1].Body, &ap); err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]any{"aps.category": "WELCOME", "aps.sound": "chime.caf", "aps.alert.title": "Hi Ada",
			"promo": "spring", "CIO-Delivery-ID": resp.DeliveryID} {
			if g := get(ap, strings.Split(path, ".")...); g != want {
				t.Errorf("ios %s: APNS payload %s = %v, want %v", shape, path, g, want)
			}
		}
		freq := e.fcm.Requests(android)
		var fm map[string]any
		if err := json.Unmarshal(freq[len(freq)-1].Body, &fm); err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]any{"message.data.promo": "spring", "message.data.CIO-Delivery-ID": resp.DeliveryID,
			"message.android.notification.channel_id": "promos", "message.android.notification.tag": "welcome",
			"message.android.collapse_key": resp.DeliveryID, "message.notification.title": "Hi Ada"} {
			if g := get(fm, strings.Split(path, ".")...); g != want {
				t.Errorf("FCM %s = %v, want %v", path, g, want)
			}
		}
	}

	// The content fields, each checked in what Apple got.
	resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
		Identifiers: map[string]string{"id": "p1"}, To: ios, Title: "T {{ trigger.n }}", Message: "M {{ customer.first_name }}",
		ImageURL: "https://example.com/i.png", Link: "app://x/{{ trigger.n }}", Sound: "ping.caf",
		CustomData: json.RawMessage(`{"k":"v {{ trigger.n }}"}`), MessageData: map[string]any{"n": "7"}})
	if err != nil {
		t.Fatalf("SendPush with every content field: %v", err)
	}
	if d := c.waitFinal(resp.DeliveryID); d.Status != "SENT" || d.DevicesTargeted != 1 {
		t.Fatalf("content fields: %s %s", d.Status, fmtDevices(d))
	}
	areq := e.apns.Requests(ios)
	var cp map[string]any
	if err := json.Unmarshal(areq[len(areq)-1].Body, &cp); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{"aps.alert.title": "T 7", "aps.alert.body": "M Ada", "aps.sound": "ping.caf",
		"aps.mutable-content": 1.0, "CIO.push.image": "https://example.com/i.png", "CIO.push.link": "app://x/7", "k": "v 7"} {
		if g := get(cp, strings.Split(path, ".")...); g != want {
			t.Errorf("content fields: APNS payload %s = %v, want %v", path, g, want)
		}
	}

	yes, lang := true, "fr"
	before := e.apns.Total() + e.fcm.Total()
	for _, tc := range []struct {
		field string
		req   customerio.SendPushRequest
	}{
		{"language", customerio.SendPushRequest{Language: &lang}},
		{"disable_message_retention", customerio.SendPushRequest{DisableMessageRetention: &yes}},
		{"custom_payload.web", customerio.SendPushRequest{CustomPayload: json.RawMessage(`{"web":{}}`)}},
		{"custom_payload.ios.message.apns.headers", customerio.SendPushRequest{CustomPayload: json.RawMessage(`{"ios":{"message":{"apns":{"headers":{"apns-priority":"5"},"payload":{}}}}}`)}},
		{"custom_payload.android.message", customerio.SendPushRequest{CustomPayload: json.RawMessage(`{"android":{"data":{"a":"b"}}}`)}},
		{"custom_payload.android.message.data.n", customerio.SendPushRequest{CustomPayload: json.RawMessage(`{"android":{"message":{"data":{"n":1}}}}`)}},
		{"custom_payload.android.message.android.speed", customerio.SendPushRequest{CustomPayload: json.RawMessage(`{"android":{"message":{"android":{"speed":"fast"}}}}`)}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			req := tc.req
			req.TransactionalMessageID, req.Identifiers = msg, map[string]string{"id": "p1"}
			_, err := api.SendPush(context.Background(), &req)
			var terr *customerio.TransactionalError
			if !errors.As(err, &terr) || terr.StatusCode != 400 || !strings.HasPrefix(terr.Err, tc.field+":") {
				t.Errorf("SendPush with %s: %v, want 400 naming %s", tc.field, err, tc.field)
			}
		})
	}
	e.idle()
	if after := e.apns.Total() + e.fcm.Total(); after != before {
		t.Errorf("refused sends reached the providers: %d requests, want 0", after-before)
	}
}

// TestOverridesOptions: sendPush and broadcast overrides replace a
// message's fields and options for their deliveries; options impossible
// with the content in effect are refused.
func TestOverridesOptions(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("ovr"))
	tok1, tok2 := sim.Token("0d01", 1), sim.Token("0d02", 1)
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", tok1, time.Now().Add(-time.Minute))
	c.person("p2", vars{"first_name": "Bo"}, false)
	c.device("p2", "IOS", tok2, time.Now().Add(-time.Minute))
	msg := c.message("Hi {{ customer.first_name }}", "Welcome")

	d := c.mustDo(`mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`, vars{"in": vars{"messageId": msg, "personId": "p1",
		"overrides": vars{"title": "Hey {{ customer.first_name }}", "options": vars{"priority": "LOW", "threadId": "t-{{ customer.first_name }}"}}}})
	if st := c.waitFinal(get(d, "sendPush", "id").(string)); st.Status != "SENT" {
		t.Fatalf("sendPush: %s", st.Status)
	}
	req := e.apns.Requests(tok1)[0]
	var ap map[string]any
	if err := json.Unmarshal(req.Body, &ap); err != nil {
		t.Fatal(err)
	}
	if req.Headers.Get("apns-priority") != "1" || get(ap, "aps", "thread-id") != "t-Ada" || get(ap, "aps", "alert", "title") != "Hey Ada" {
		t.Errorf("sendPush overrides: apns-priority %q, payload %s", req.Headers.Get("apns-priority"), req.Body)
	}

	b := c.mustDo(`mutation($in: BroadcastInput!) { broadcast(input: $in) { id } }`, vars{"in": vars{"messageId": msg, "personIds": []string{"p1", "p2"},
		"overrides": vars{"options": vars{"interruptionLevel": "PASSIVE", "collapseKey": "welcome"}}}})
	if get(b, "broadcast", "id") == nil {
		t.Fatal("no broadcast id")
	}
	deadline := time.Now().Add(20 * time.Second)
	for (e.apns.Count(tok1) < 2 || e.apns.Count(tok2) < 1) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, r := range []sim.Request{e.apns.Requests(tok1)[1], e.apns.Requests(tok2)[0]} {
		if err := json.Unmarshal(r.Body, &ap); err != nil {
			t.Fatal(err)
		}
		if r.Headers.Get("apns-collapse-id") != "welcome" || get(ap, "aps", "interruption-level") != "passive" {
			t.Errorf("broadcast overrides: collapse id %q, payload %s", r.Headers.Get("apns-collapse-id"), r.Body)
		}
	}

	for _, tc := range []struct {
		name, mutation string
		in             vars
		field          string
	}{
		{"sendPush silent with the message's title", `mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`,
			vars{"messageId": msg, "personId": "p1", "overrides": vars{"options": vars{"silent": true}}}, "input.overrides.options.silent"},
		{"broadcast bad Liquid in an option", `mutation($in: BroadcastInput!) { broadcast(input: $in) { id } }`,
			vars{"messageId": msg, "overrides": vars{"options": vars{"tag": "{{ x "}}}, "input.overrides.options.tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.mutation, vars{"in": tc.in})
			if r.code() != "BAD_USER_INPUT" {
				t.Fatalf("code %q (%+v), want BAD_USER_INPUT", r.code(), r.Errors)
			}
			if f, _ := r.Errors[0].Extensions["field"].(string); f != tc.field {
				t.Errorf("field %q, want %q (%s)", f, tc.field, r.Errors[0].Message)
			}
		})
	}
}

// TestSendToUnsubscribed: go-customerio's SendPush reaches an unsubscribed
// person unless send_to_unsubscribed is false (Customer.io's transactional
// default); GraphQL sendPush does not unless sendToUnsubscribed is true.
func TestSendToUnsubscribed(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("unsub"))
	api := e.apiClient(c)
	c.person("u1", vars{"first_name": "Ada"}, true)
	c.device("u1", "IOS", sim.Token("0f01", 1), time.Now().Add(-time.Minute))
	msg := c.message("Reset", "Your code is 1234")
	no := false
	rest := func(flag *bool) string {
		resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
			Identifiers: map[string]string{"id": "u1"}, SendToUnsubscribed: flag})
		if err != nil {
			t.Fatalf("SendPush: %v", err)
		}
		return resp.DeliveryID
	}
	graphql := func(flag any) string {
		in := vars{"messageId": msg, "personId": "u1"}
		if flag != nil {
			in["sendToUnsubscribed"] = flag
		}
		return get(c.mustDo(`mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`, vars{"in": in}), "sendPush", "id").(string)
	}
	for _, tc := range []struct {
		name, id, status string
	}{
		{"REST, send_to_unsubscribed omitted", rest(nil), "SENT"},
		{"REST, send_to_unsubscribed false", rest(&no), "FAILED"},
		{"GraphQL, sendToUnsubscribed omitted", graphql(nil), "FAILED"},
		{"GraphQL, sendToUnsubscribed true", graphql(true), "SENT"},
	} {
		d := c.waitFinal(tc.id)
		if d.Status != tc.status {
			t.Errorf("%s: %s, want %s", tc.name, d.Status, tc.status)
		}
		if tc.status == "FAILED" && (d.FailureReason == nil || *d.FailureReason != "Customer is unsubscribed") {
			t.Errorf("%s: failure reason %v, want \"Customer is unsubscribed\"", tc.name, d.FailureReason)
		}
	}
}

// TestMessageAliases: a message's alias (a name, or a number as
// Customer.io's message ids are) stands for its id in
// transactional_message_id, from go-customerio's SendPush and as a JSON
// number; aliases are unique in a workspace, never UUIDs, and unknown
// ones are 404.
func TestMessageAliases(t *testing.T) {
	e, c, api, tok := cioEnv(t, "alias", "0a11", vars{"first_name": "Ada"})
	const create = `mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id alias } }`
	named := c.mustDo(create, vars{"in": vars{"name": "Reset", "alias": "password-reset", "title": "Reset", "body": "Code {{ trigger.code }}"}})
	if a := get(named, "createPushMessage", "alias"); a != "password-reset" {
		t.Fatalf("alias = %v", a)
	}
	c.mustDo(create, vars{"in": vars{"name": "Numbered", "alias": "42", "title": "Numbered", "body": "Hi"}})

	resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: "password-reset",
		Identifiers: map[string]string{"id": "p1"}, MessageData: map[string]any{"code": "1234"}})
	if err != nil {
		t.Fatalf("SendPush by alias: %v", err)
	}
	if d := c.waitFinal(resp.DeliveryID); d.Status != "SENT" {
		t.Fatalf("by alias: %s", d.Status)
	}
	var p map[string]any
	if err := json.Unmarshal(e.apns.Requests(tok)[0].Body, &p); err != nil {
		t.Fatal(err)
	}
	if b := get(p, "aps", "alert", "body"); b != "Code 1234" {
		t.Errorf("the aliased message's body = %v, want %q", b, "Code 1234")
	}
	status, _, m := e.rest("POST", "/v1/send/push", `{"transactional_message_id":42,"identifiers":{"id":"p1"}}`, bearer(c.key))
	if status != 200 {
		t.Fatalf("transactional_message_id 42 (a number): %d %v", status, m)
	}
	if d := c.waitFinal(m["delivery_id"].(string)); d.Status != "SENT" {
		t.Errorf("by number: %s", d.Status)
	}
	for body, want := range map[string]int{
		`{"transactional_message_id":"no-such-message","identifiers":{"id":"p1"}}`: 404,
		`{"transactional_message_id":4.5,"identifiers":{"id":"p1"}}`:               400,
		`{"transactional_message_id":{"id":1},"identifiers":{"id":"p1"}}`:          400,
	} {
		if status, _, m := e.rest("POST", "/v1/send/push", body, bearer(c.key)); status != want || !strings.HasPrefix(metaError(m), "transactional_message_id:") {
			t.Errorf("%s: %d %v, want %d naming transactional_message_id", body, status, m, want)
		}
	}
	for name, alias := range map[string]string{"taken": "password-reset", "a UUID": "0190d6b2-0000-7000-8000-000000000000",
		"spaces around": " reset ", "too long": strings.Repeat("a", 101)} {
		r := c.do(create, vars{"in": vars{"name": "x", "alias": alias, "title": "x", "body": "y"}})
		if f, _ := firstField(r); r.code() != "BAD_USER_INPUT" || f != "input.alias" {
			t.Errorf("alias %s: %q on %q (%+v), want BAD_USER_INPUT on input.alias", name, r.code(), f, r.Errors)
		}
	}
}

// TestSendPushCustomDevice: go-customerio's SendPush with custom_device
// (send_push.go:25, device.go:17-22) adds the device to the person and
// sends to it alone, or to every device with to "all"; a bad device is a
// 400 naming the field, and nothing is sent.
func TestSendPushCustomDevice(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("cdev"))
	api := e.apiClient(c)
	old, fresh, other := sim.Token("0d11", 1), sim.Token("0d12", 1), sim.Token("0d13", 1)
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", old, time.Now().Add(-time.Hour))
	msg := c.message("Hi", "New phone")

	resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
		Identifiers: map[string]string{"id": "p1"}, Device: &customerio.Device{Token: fresh, Platform: "ios",
			LastUsed: strconv.FormatInt(time.Now().Unix(), 10), Attributes: map[string]any{"app_version": "2.1"}}})
	if err != nil {
		t.Fatalf("SendPush with custom_device: %v", err)
	}
	if d := c.waitFinal(resp.DeliveryID); d.Status != "SENT" || d.DevicesTargeted != 1 || d.Devices[0].Token != fresh {
		t.Fatalf("delivery %s %s, want SENT to the custom device only", d.Status, fmtDevices(d))
	}
	devs := get(c.mustDo(`{ person(id: "p1") { devices { token attributes } } }`, nil), "person", "devices").([]any)
	found := false
	for _, dv := range devs {
		n := dv.(map[string]any)
		if n["token"] == fresh && get(n, "attributes", "app_version") == "2.1" {
			found = true
		}
	}
	if len(devs) != 2 || !found {
		t.Errorf("person's devices %v, want the old one and the custom device with its attributes", devs)
	}

	resp, err = api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg, To: "all",
		Identifiers: map[string]string{"id": "p1"}, Device: &customerio.Device{Token: other, Platform: "ios"}})
	if err != nil {
		t.Fatalf("SendPush with custom_device and to all: %v", err)
	}
	if d := c.waitFinal(resp.DeliveryID); d.Status != "SENT" || d.DevicesTargeted != 3 {
		t.Errorf("to all: %s %s, want SENT to 3 devices", d.Status, fmtDevices(d))
	}

	before := e.apns.Total()
	for _, tc := range []struct {
		field  string
		device customerio.Device
	}{
		{"custom_device.platform", customerio.Device{Token: sim.Token("0d14", 1), Platform: "windows"}},
		{"custom_device.token", customerio.Device{Platform: "ios"}},
		{"custom_device.token", customerio.Device{Token: "not hex", Platform: "ios"}},
	} {
		dev := tc.device
		_, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
			Identifiers: map[string]string{"id": "p1"}, Device: &dev})
		var terr *customerio.TransactionalError
		if !errors.As(err, &terr) || terr.StatusCode != 400 || !strings.HasPrefix(terr.Err, tc.field) {
			t.Errorf("custom_device %+v: %v, want 400 naming %s", tc.device, err, tc.field)
		}
	}
	e.idle()
	if n := e.apns.Total() - before; n != 0 {
		t.Errorf("refused sends reached APNS: %d requests", n)
	}
}

// TestSendPushByEmail: go-customerio's SendPush with identifiers
// {"email": …} (the person's email attribute, any case) reaches that
// person; an email nobody has is 404, one two people share is 400, and a
// person whose email changed is no longer found by the old one.
func TestSendPushByEmail(t *testing.T) {
	_, c, api, tok := cioEnv(t, "email", "0e11", vars{"email": "Ada@Example.com"})
	c.person("p2", vars{"email": "twin@example.com"}, false)
	c.person("p3", vars{"email": "twin@example.com"}, false)
	c.person("p4", vars{"email": "old@example.com"}, false)
	c.person("p4", vars{"email": "new@example.com"}, false)
	msg := c.message("Hi", "By email")

	resp, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
		Identifiers: map[string]string{"email": "ada@example.com"}})
	if err != nil {
		t.Fatalf("SendPush by email: %v", err)
	}
	if d := c.waitFinal(resp.DeliveryID); d.Status != "SENT" || d.Devices[0].Token != tok {
		t.Fatalf("by email: %s %s", d.Status, fmtDevices(d))
	}
	for email, status := range map[string]int{"nobody@example.com": 404, "twin@example.com": 400, "old@example.com": 404} {
		_, err := api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
			Identifiers: map[string]string{"email": email}})
		var terr *customerio.TransactionalError
		if !errors.As(err, &terr) || terr.StatusCode != status || !strings.HasPrefix(terr.Err, "identifiers.email:") {
			t.Errorf("email %s: %v, want %d naming identifiers.email", email, err, status)
		}
	}
	resp, err = api.SendPush(context.Background(), &customerio.SendPushRequest{TransactionalMessageID: msg,
		Identifiers: map[string]string{"email": "new@example.com"}})
	if err != nil {
		t.Fatalf("SendPush by the new email: %v", err)
	}
	if d := c.waitFinal(resp.DeliveryID); d.Status != "FAILED" || d.FailureReason == nil || *d.FailureReason != "Customer has no devices" {
		t.Errorf("p4 by its new email: %s %v, want FAILED \"Customer has no devices\" (found, no devices)", d.Status, d.FailureReason)
	}
}

// cioEnv is a Herald with one workspace, its go-customerio App API client,
// and person p1 (attributes attrs) with one iOS device, whose token
// (prefix prefix) it returns.
func cioEnv(t *testing.T, ws, prefix string, attrs vars) (*env, *client, *customerio.APIClient, string) {
	t.Helper()
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace(ws))
	tok := sim.Token(prefix, 1)
	c.person("p1", attrs, false)
	c.device("p1", "IOS", tok, time.Now().Add(-time.Minute))
	return e, c, e.apiClient(c), tok
}

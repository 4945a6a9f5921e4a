package providers_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/providers/sim"
)

// wirePush is the golden files' options push to token.
func wirePush(token string) providers.Push {
	p := providers.OptionsPush()
	p.Token = token
	return p
}

// golden reads a golden file as JSON.
func golden(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func jsonOf(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// TestOptionsWireAPNS sends pushes with options through apns2 to the
// simulator and checks the headers and the body Apple gets.
func TestOptionsWireAPNS(t *testing.T) {
	s := startAPNS(t)
	snd := tokenSender(t, s, 2*time.Second)
	hour := 3600
	zero := 0
	tokAlert, tokSilent, tokVoIP := sim.Token("0a01", 1), sim.Token("0a02", 1), sim.Token("0a03", 1)

	p := wirePush(tokAlert)
	p.Options.TTLSeconds = &hour
	before := time.Now()
	if r := snd.Send(context.Background(), p); r.Outcome != providers.Accepted {
		t.Fatalf("alert with options: %+v", r)
	}
	req := s.Requests(tokAlert)[0]
	for h, want := range map[string]string{"apns-push-type": "alert", "apns-priority": "5", "apns-collapse-id": "order-42", "apns-topic": testBundle} {
		if got := req.Headers.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	exp, err := strconv.ParseInt(req.Headers.Get("apns-expiration"), 10, 64)
	if err != nil || exp < before.Add(time.Hour).Unix() || exp > time.Now().Add(time.Hour).Unix()+1 {
		t.Errorf("apns-expiration = %q, want now + 3600 s", req.Headers.Get("apns-expiration"))
	}
	want := golden(t, "apns_options")
	want.(map[string]any)["CIO-Delivery-Token"] = tokAlert
	if diff := cmp.Diff(want, jsonOf(t, req.Body)); diff != "" {
		t.Errorf("APNS body differs from apns_options.golden (-want +got):\n%s", diff)
	}

	silent := providers.Push{DeliveryID: "dlv_silent", Token: tokSilent, Data: map[string]string{"sync": "inbox"},
		Options: providers.Options{Silent: true, TTLSeconds: &zero}}
	if r := snd.Send(context.Background(), silent); r.Outcome != providers.Accepted {
		t.Fatalf("silent: %+v", r)
	}
	req = s.Requests(tokSilent)[0]
	for h, want := range map[string]string{"apns-push-type": "background", "apns-priority": "5", "apns-expiration": "0", "apns-collapse-id": "dlv_silent"} {
		if got := req.Headers.Get(h); got != want {
			t.Errorf("silent %s = %q, want %q", h, got, want)
		}
	}
	want = golden(t, "apns_silent")
	want.(map[string]any)["CIO-Delivery-Token"] = tokSilent
	if diff := cmp.Diff(want, jsonOf(t, req.Body)); diff != "" {
		t.Errorf("silent body differs from apns_silent.golden (-want +got):\n%s", diff)
	}

	voip := providers.Push{DeliveryID: "dlv_voip", Token: tokVoIP, Title: "Call", Options: providers.Options{PushType: "VOIP"}}
	if r := snd.Send(context.Background(), voip); r.Outcome != providers.Accepted {
		t.Fatalf("voip: %+v", r)
	}
	req = s.Requests(tokVoIP)[0]
	if got := req.Headers.Get("apns-topic"); got != testBundle+".voip" {
		t.Errorf("voip apns-topic = %q, want %q", got, testBundle+".voip")
	}
	if got := req.Headers.Get("apns-push-type"); got != "voip" {
		t.Errorf("voip apns-push-type = %q", got)
	}
}

// TestSimulatorRefusesWhatAppleRefuses sends, through apns2, pushes that
// Herald's validation refuses at creation (built here without it) and
// checks the simulator answers as Apple documents.
func TestSimulatorRefusesWhatAppleRefuses(t *testing.T) {
	s := startAPNS(t)
	snd := tokenSender(t, s, 2*time.Second)
	for i, tc := range []struct {
		name   string
		push   providers.Push
		reason string
	}{
		{"background with an alert", providers.Push{Options: providers.Options{Silent: true,
			IOSPayload: map[string]any{"aps": map[string]any{"alert": "hi"}}}}, "InvalidPushType"},
		{"background at priority 10", providers.Push{Options: providers.Options{Silent: true, Priority: "HIGH"}}, "BadPriority"},
		{"content-available only at priority 10", providers.Push{Options: providers.Options{ContentAvailable: true, Priority: "HIGH"}}, "BadPriority"},
		{"live activity without event", providers.Push{Title: "x", Options: providers.Options{PushType: "LIVEACTIVITY"}}, "BadPayload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := sim.Token("0b0"+strconv.Itoa(i), 1)
			p := tc.push
			p.Token, p.DeliveryID = tok, "dlv-refused"
			r := snd.Send(context.Background(), p)
			if r.Outcome != providers.Permanent || r.Reason != tc.reason || r.StatusCode != 400 {
				t.Fatalf("Send = %+v, want Permanent 400 %s", r, tc.reason)
			}
		})
	}
}

// TestOptionsWireFCM sends the options push through the firebase client
// to the simulator, to an Android and to an iOS device, and checks the
// message Google gets; then pushes FCM refuses.
func TestOptionsWireFCM(t *testing.T) {
	s := startFCM(t)
	snd := fcmSender(t, s, newAccount(t, s, testProject), 2*time.Second)
	for _, tc := range []struct {
		golden string
		ios    bool
		token  string
	}{
		{"fcm_options", false, sim.Token("fa01", 1)},
		{"fcm_ios_options", true, "dQw4w9WgXcQ:APA91bH-ios" + sim.Token("fa02", 1)},
	} {
		p := wirePush(tc.token)
		p.ToIOS = tc.ios
		if r := snd.Send(context.Background(), p); r.Outcome != providers.Accepted {
			t.Fatalf("%s: %+v", tc.golden, r)
		}
		var got struct {
			Message map[string]any `json:"message"`
		}
		if err := json.Unmarshal(s.Requests(tc.token)[0].Body, &got); err != nil {
			t.Fatal(err)
		}
		want := golden(t, tc.golden).(map[string]any)["message"].(map[string]any)
		want["token"] = tc.token
		want["data"].(map[string]any)["CIO-Delivery-Token"] = tc.token
		if diff := cmp.Diff(want, got.Message); diff != "" {
			t.Errorf("FCM message differs from %s.golden (-want +got):\n%s", tc.golden, diff)
		}
	}

	big := providers.MaxTTLSeconds + 1
	for i, tc := range []struct {
		name string
		push providers.Push
	}{
		{"ttl over four weeks", providers.Push{Title: "x", Options: providers.Options{TTLSeconds: &big}}},
		{"FCM to iOS: background at priority 10", providers.Push{ToIOS: true, Options: providers.Options{Silent: true, Priority: "HIGH"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.push
			p.Token, p.DeliveryID = sim.Token("fb0"+strconv.Itoa(i), 1), "dlv-refused"
			if r := snd.Send(context.Background(), p); r.Outcome != providers.Permanent || r.StatusCode != 400 {
				t.Fatalf("Send = %+v, want Permanent 400 INVALID_ARGUMENT", r)
			}
		})
	}
}

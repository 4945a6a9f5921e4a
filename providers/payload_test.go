package providers

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func fullPush() Push {
	badge := 3
	return Push{
		DeliveryID: "dlv_01HZX3Q4",
		Token:      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Title:      "Your order shipped",
		Body:       "It arrives Tuesday <3 & more",
		Link:       "myapp://orders/42",
		Image:      "https://cdn.example.com/box.png",
		Sound:      "default",
		Badge:      &badge,
		Data:       map[string]string{"order_id": "42", "campaign": "shipping", "aps": "ignored", "CIO-Delivery-ID": "ignored"},
	}
}

func minimalPush() Push {
	return Push{DeliveryID: "dlv_min", Token: "fcm-token-1", Body: "Hello"}
}

// optionsPush is fullPush with every option of an alert set, custom
// payloads for both platforms included (no TTL: the APNS expiration is a
// header, and in FCM's apns block it depends on the clock; TestOptionsWire checks it).
func optionsPush() Push {
	p := fullPush()
	score := 0.75
	p.Options = Options{
		Priority: "NORMAL", CollapseKey: "order-42", PushType: "ALERT", Category: "ORDER", ThreadID: "orders",
		MutableContent: true, ContentAvailable: true, InterruptionLevel: "TIME_SENSITIVE", RelevanceScore: &score,
		TargetContentID: "order-42", Subtitle: "Order #42", TitleLocKey: "SHIPPED_TITLE", TitleLocArgs: []string{"42"},
		BodyLocKey: "SHIPPED_BODY", BodyLocArgs: []string{"Tuesday"},
		ChannelID: "orders", NotificationPriority: "HIGH", Visibility: "PRIVATE", Icon: "ic_box", Color: "#ff8800",
		Tag: "order-42", ClickAction: "OPEN_ORDER", DirectBoot: true,
		IOSPayload: map[string]any{"aps": map[string]any{"sound": map[string]any{"critical": 1.0, "name": "alarm.caf", "volume": 0.5}},
			"order": map[string]any{"id": 42.0}},
		AndroidPayload: map[string]any{"data": map[string]any{"extra": "1"},
			"android": map[string]any{"notification": map[string]any{"sticky": true}}, "notification": map[string]any{"title": "Custom title"}},
		WebpushPayload: map[string]any{"headers": map[string]any{"TTL": "3600"}, "fcm_options": map[string]any{"link": "https://example.com/orders/42"}},
	}
	return p
}

// silentPush is a background push with custom data and a TTL of 0.
func silentPush() Push {
	zero := 0
	return Push{DeliveryID: "dlv_silent", Token: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Data: map[string]string{"sync": "inbox"}, Options: Options{Silent: true, TTLSeconds: &zero}}
}

// toIOS makes p a push to an iOS device with an FCM token.
func toIOS(p Push) Push {
	p.ToIOS = true
	p.Token = "dQw4w9WgXcQ:APA91bH-ios" + strings.Repeat("A", 40)
	return p
}

func TestPayloadGolden(t *testing.T) {
	for _, tc := range []struct {
		name     string
		platform Platform
		push     Push
	}{
		{"apns_full", IOS, fullPush()},
		{"apns_minimal", IOS, minimalPush()},
		{"fcm_full", Android, fullPush()},
		{"fcm_minimal", Android, minimalPush()},
		{"fcm_ios_full", Android, toIOS(fullPush())},
		{"fcm_ios_minimal", Android, toIOS(minimalPush())},
		{"apns_options", IOS, optionsPush()},
		{"apns_silent", IOS, silentPush()},
		{"fcm_options", Android, optionsPush()},
		{"fcm_silent", Android, silentPush()},
		{"fcm_ios_options", Android, toIOS(optionsPush())},
		{"fcm_ios_silent", Android, toIOS(silentPush())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PayloadJSON(tc.platform, tc.push)
			if err != nil {
				t.Fatalf("PayloadJSON: %v", err)
			}
			// The golden file holds the exact bytes sent, without a trailing newline.
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test ./providers -update): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s payload mismatch (-want +got):\n%s", tc.name, diff)
			}
			size, err := PayloadSize(tc.platform, tc.push)
			if err != nil || size != len(got) {
				t.Errorf("PayloadSize = %d, %v; want %d", size, err, len(got))
			}
		})
	}
}

func TestAPNSPayloadFields(t *testing.T) {
	b, err := APNSPayload(fullPush())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		APS struct {
			MutableContent int `json:"mutable-content"`
		} `json:"aps"`
		CIO struct {
			Push struct{ Link, Image string } `json:"push"`
		} `json:"CIO"`
		DeliveryID string `json:"CIO-Delivery-ID"`
		Token      string `json:"CIO-Delivery-Token"`
		OrderID    string `json:"order_id"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := got
	want.APS.MutableContent = 1
	want.CIO.Push.Link, want.CIO.Push.Image = "myapp://orders/42", "https://cdn.example.com/box.png"
	want.DeliveryID, want.Token, want.OrderID = "dlv_01HZX3Q4", fullPush().Token, "42"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("APNS payload fields (-want +got):\n%s", diff)
	}
}

func TestFCMMessageData(t *testing.T) {
	m := FCMMessage(fullPush())
	want := map[string]string{
		"order_id": "42", "campaign": "shipping", "aps": "ignored",
		"CIO-Delivery-ID": "dlv_01HZX3Q4", "CIO-Delivery-Token": fullPush().Token,
		"link": "myapp://orders/42", "image": "https://cdn.example.com/box.png",
	}
	if diff := cmp.Diff(want, m.Data); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	if m.Android == nil || m.Android.CollapseKey != "dlv_01HZX3Q4" || m.Android.Notification.Sound != "default" {
		t.Errorf("android = %+v, want collapse key and sound", m.Android)
	}
}

func TestPayloadSizeLimit(t *testing.T) {
	p := minimalPush()
	p.Body = strings.Repeat("x", MaxPayloadBytes)
	for _, platform := range []Platform{IOS, Android} {
		size, err := PayloadSize(platform, p)
		if err != nil {
			t.Fatal(err)
		}
		if size <= MaxPayloadBytes {
			t.Errorf("%s: size %d, want over %d", platform, size, MaxPayloadBytes)
		}
	}
	if _, err := PayloadJSON("WINDOWS", p); err == nil {
		t.Error("PayloadJSON(WINDOWS) = nil error, want one")
	}
}

func TestOptionsValidate(t *testing.T) {
	ten, neg, big := 1.5, -1, MaxTTLSeconds+1
	for _, tc := range []struct {
		name     string
		o        Options
		hasAlert bool
		field    string // "" = valid
	}{
		{"default", Options{}, true, ""},
		{"every alert option", optionsPush().Options, true, ""},
		{"silent", Options{Silent: true, Priority: "LOW"}, false, ""},
		{"silent background", Options{Silent: true, PushType: "BACKGROUND"}, false, ""},
		{"unknown priority", Options{Priority: "URGENT"}, true, "priority"},
		{"negative ttl", Options{TTLSeconds: &neg}, true, "ttlSeconds"},
		{"ttl over 28 days", Options{TTLSeconds: &big}, true, "ttlSeconds"},
		{"long collapse key", Options{CollapseKey: strings.Repeat("k", 65)}, true, "collapseKey"},
		{"mdm", Options{PushType: "MDM"}, true, "pushType"},
		{"background without silent", Options{PushType: "BACKGROUND"}, true, "pushType"},
		{"silent voip", Options{Silent: true, PushType: "VOIP"}, false, "pushType"},
		{"silent high", Options{Silent: true, Priority: "HIGH"}, false, "priority"},
		{"silent with alert", Options{Silent: true}, true, "silent"},
		{"silent with subtitle", Options{Silent: true, Subtitle: "x"}, false, "silent"},
		{"silent with channel", Options{Silent: true, ChannelID: "c"}, false, "silent"},
		{"content-available only at 10", Options{ContentAvailable: true, Priority: "HIGH"}, false, "priority"},
		{"interruption level", Options{InterruptionLevel: "LOUD"}, true, "interruptionLevel"},
		{"relevance score", Options{RelevanceScore: &ten}, true, "relevanceScore"},
		{"loc args without key", Options{BodyLocArgs: []string{"a"}}, true, "bodyLocArgs"},
		{"title loc args without key", Options{TitleLocArgs: []string{"a"}}, true, "titleLocArgs"},
		{"notification priority", Options{NotificationPriority: "URGENT"}, true, "notificationPriority"},
		{"visibility", Options{Visibility: "HIDDEN"}, true, "visibility"},
		{"color", Options{Color: "orange"}, true, "color"},
		{"ios aps not an object", Options{IOSPayload: map[string]any{"aps": "x"}}, true, "iosPayload.aps"},
		{"ios delivery id", Options{IOSPayload: map[string]any{"CIO-Delivery-Token": "x"}}, true, "iosPayload.CIO-Delivery-Token"},
		{"live activity without payload", Options{PushType: "LIVEACTIVITY"}, true, "iosPayload"},
		{"live activity without timestamp", Options{PushType: "LIVEACTIVITY", IOSPayload: map[string]any{"aps": map[string]any{"event": "update"}}}, true, "iosPayload.aps.timestamp"},
		{"android webpush", Options{AndroidPayload: map[string]any{"webpush": map[string]any{}}}, true, "androidPayload.webpush"},
		{"android data number", Options{AndroidPayload: map[string]any{"data": map[string]any{"n": 1.0}}}, true, "androidPayload.data.n"},
		{"android data delivery id", Options{AndroidPayload: map[string]any{"data": map[string]any{"CIO-Delivery-ID": "x"}}}, true, "androidPayload.data.CIO-Delivery-ID"},
		{"android notification not an object", Options{AndroidPayload: map[string]any{"notification": "x"}}, true, "androidPayload.notification"},
		{"webpush unknown key", Options{WebpushPayload: map[string]any{"apns": map[string]any{}}}, true, "webpushPayload.apns"},
		{"android field FCM lacks", Options{AndroidPayload: map[string]any{"android": map[string]any{"speed": "fast"}}}, true, "androidPayload.android.speed"},
		{"android notification field FCM lacks", Options{AndroidPayload: map[string]any{"android": map[string]any{"notification": map[string]any{"blink": true}}}}, true, "androidPayload.android.notification.blink"},
		{"android ttl not a duration", Options{AndroidPayload: map[string]any{"android": map[string]any{"ttl": "soon"}}}, true, "androidPayload.android"},
		{"android priority a number", Options{AndroidPayload: map[string]any{"android": map[string]any{"priority": 10.0}}}, true, "androidPayload.android"},
		{"notification field FCM lacks", Options{AndroidPayload: map[string]any{"notification": map[string]any{"subtitle": "x"}}}, true, "androidPayload.notification.subtitle"},
		{"android fields FCM has", Options{AndroidPayload: map[string]any{"android": map[string]any{"ttl": "60s", "priority": "high", "direct_boot_ok": false,
			"notification": map[string]any{"sticky": true, "channel_id": "c", "notification_priority": "PRIORITY_HIGH"}}}}, true, ""},
		{"webpush field FCM lacks", Options{WebpushPayload: map[string]any{"fcm_options": map[string]any{"url": "https://x"}}}, true, "webpushPayload.fcm_options.url"},
		{"webpush header number", Options{WebpushPayload: map[string]any{"headers": map[string]any{"TTL": 3600.0}}}, true, "webpushPayload.headers.TTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate(tc.hasAlert)
			var oe *OptionError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.field != "" && !errors.As(err, &oe):
				t.Fatalf("Validate = %v, want an OptionError on %s", err, tc.field)
			case tc.field != "" && oe.Field != tc.field:
				t.Fatalf("Validate refused %s (%v), want %s", oe.Field, err, tc.field)
			}
		})
	}
}

func TestOptionsRoundTrip(t *testing.T) {
	o := optionsPush().Options
	s, err := o.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeOptions(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(o, got); diff != "" {
		t.Errorf("options changed through Encode/Decode (-want +got):\n%s", diff)
	}
	if s, err := (Options{}).Encode(); s != "" || err != nil {
		t.Errorf("default Encode = %q, %v; want \"\"", s, err)
	}
}

package providers

import (
	"encoding/json"
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

package sim

import "testing"

func TestCheckAPNS(t *testing.T) {
	alert := `{"aps":{"alert":{"title":"hi"}}}`
	onlyAvailable := `{"aps":{"content-available":1}}`
	for _, tc := range []struct {
		name    string
		headers map[string]string
		body    string
		reason  string
	}{
		{"plain alert", nil, alert, ""},
		{"unknown push type", map[string]string{"apns-push-type": "banner"}, alert, "InvalidPushType"},
		{"voip without its topic", map[string]string{"apns-push-type": "voip", "apns-topic": "com.example"}, alert, "TopicDisallowed"},
		{"voip with its topic", map[string]string{"apns-push-type": "voip", "apns-topic": "com.example.voip"}, alert, ""},
		{"priority 7", map[string]string{"apns-priority": "7"}, alert, "BadPriority"},
		{"expiration not a number", map[string]string{"apns-expiration": "soon"}, alert, "BadExpirationDate"},
		{"collapse id over 64 bytes", map[string]string{"apns-collapse-id": string(make([]byte, 65))}, alert, "BadCollapseId"},
		{"background at 5", map[string]string{"apns-push-type": "background", "apns-priority": "5"}, onlyAvailable, ""},
		{"background at 10", map[string]string{"apns-push-type": "background", "apns-priority": "10"}, onlyAvailable, "BadPriority"},
		{"background without priority", map[string]string{"apns-push-type": "background"}, onlyAvailable, "BadPriority"},
		{"background with an alert", map[string]string{"apns-push-type": "background", "apns-priority": "5"}, alert, "InvalidPushType"},
		{"background with a badge", map[string]string{"apns-push-type": "background", "apns-priority": "5"}, `{"aps":{"badge":1,"content-available":1}}`, "InvalidPushType"},
		{"content-available only at 10", map[string]string{"apns-priority": "10"}, onlyAvailable, "BadPriority"},
		{"content-available only at 5", map[string]string{"apns-priority": "5"}, onlyAvailable, ""},
		{"content-available with an alert at 10", map[string]string{"apns-priority": "10"}, `{"aps":{"alert":"x","content-available":1}}`, ""},
		{"live activity without timestamp", map[string]string{"apns-push-type": "liveactivity"}, `{"aps":{"event":"update"}}`, "BadPayload"},
		{"live activity", map[string]string{"apns-push-type": "liveactivity"}, `{"aps":{"event":"update","timestamp":1}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckAPNS(func(k string) string { return tc.headers[k] }, []byte(tc.body)); got != tc.reason {
				t.Fatalf("CheckAPNS = %q, want %q", got, tc.reason)
			}
		})
	}
}

func TestCheckFCM(t *testing.T) {
	for _, tc := range []struct {
		name, message string
		ok            bool
	}{
		{"plain", `{"token":"t","notification":{"title":"x"}}`, true},
		{"every android option", `{"token":"t","android":{"priority":"normal","ttl":"3600s","notification":{"color":"#ff8800","notification_priority":"PRIORITY_HIGH","visibility":"PRIVATE"}}}`, true},
		{"priority", `{"android":{"priority":"urgent"}}`, false},
		{"ttl without s", `{"android":{"ttl":"3600"}}`, false},
		{"ttl fraction", `{"android":{"ttl":"3.5s"}}`, true},
		{"ttl over four weeks", `{"android":{"ttl":"2419201s"}}`, false},
		{"color", `{"android":{"notification":{"color":"orange"}}}`, false},
		{"notification priority", `{"android":{"notification":{"notification_priority":"HIGH"}}}`, false},
		{"visibility", `{"android":{"notification":{"visibility":"HIDDEN"}}}`, false},
		{"apns background at 10", `{"apns":{"headers":{"apns-push-type":"background","apns-priority":"10"},"payload":{"aps":{"content-available":1}}}}`, false},
		{"apns background at 5", `{"apns":{"headers":{"apns-push-type":"background","apns-priority":"5"},"payload":{"aps":{"content-available":1}}}}`, true},
		{"apns alert from the notification", `{"notification":{"title":"x"},"apns":{"headers":{"apns-priority":"10"},"payload":{"aps":{"content-available":1}}}}`, true},
		{"apns content-available only at 10", `{"apns":{"headers":{"apns-priority":"10"},"payload":{"aps":{"content-available":1}}}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckFCM([]byte(tc.message))
			if (got == "") != tc.ok {
				t.Fatalf("CheckFCM = %q, want ok=%v", got, tc.ok)
			}
		})
	}
}

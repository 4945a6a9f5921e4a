package domain

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAfterBounce(t *testing.T) {
	tests := []struct {
		current, want DeviceState
	}{
		{DeviceOK, DeviceBounced},
		{DeviceBounced, DeviceSuppressed},
		{DeviceSuppressed, DeviceSuppressed},
		{"", DeviceBounced},
	}
	for _, tt := range tests {
		t.Run(string(tt.current), func(t *testing.T) {
			if got := AfterBounce(tt.current); got != tt.want {
				t.Errorf("AfterBounce(%q) = %q, want %q", tt.current, got, tt.want)
			}
		})
	}
}

func TestAfterSent(t *testing.T) {
	for _, current := range []DeviceState{DeviceOK, DeviceBounced, DeviceSuppressed, ""} {
		t.Run(string(current), func(t *testing.T) {
			if got := AfterSent(current); got != DeviceOK {
				t.Errorf("AfterSent(%q) = %q, want %q", current, got, DeviceOK)
			}
		})
	}
}

func TestBounceSequences(t *testing.T) {
	type outcome string
	const (
		bounce outcome = "bounce"
		send   outcome = "sent"
	)
	tests := []struct {
		name     string
		outcomes []outcome
		want     DeviceState
	}{
		{"none", nil, DeviceOK},
		{"one bounce", []outcome{bounce}, DeviceBounced},
		{"two bounces in a row", []outcome{bounce, bounce}, DeviceSuppressed},
		{"bounce, sent, bounce", []outcome{bounce, send, bounce}, DeviceBounced},
		{"three bounces", []outcome{bounce, bounce, bounce}, DeviceSuppressed},
		{"bounce then sent", []outcome{bounce, send}, DeviceOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DeviceOK
			for _, o := range tt.outcomes {
				if o == bounce {
					s = AfterBounce(s)
				} else {
					s = AfterSent(s)
				}
			}
			if s != tt.want {
				t.Errorf("state after %v = %q, want %q", tt.outcomes, s, tt.want)
			}
		})
	}
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    Platform
		wantErr bool
	}{
		{"IOS", PlatformIOS, false},
		{"ios", PlatformIOS, false},
		{"iOS", PlatformIOS, false},
		{" ios ", PlatformIOS, false},
		{"ANDROID", PlatformAndroid, false},
		{"android", PlatformAndroid, false},
		{"Android", PlatformAndroid, false},
		{"", "", true},
		{"web", "", true},
		{"apns", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePlatform(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParsePlatform(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParsePlatform(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidateToken(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	fcm := "dQw4w9WgXcQ:APA91bH-_x.y" + strings.Repeat("A", 140)
	tests := []struct {
		name     string
		platform Platform
		token    string
		wantErr  string // "" for valid; else a substring of the message
	}{
		{"apns 64 hex", PlatformIOS, hex64, ""},
		{"apns upper case hex", PlatformIOS, strings.ToUpper(hex64), ""},
		{"apns 200 hex", PlatformIOS, strings.Repeat("0f", 100), ""},
		{"apns empty", PlatformIOS, "", "token is empty"},
		{"apns not hex", PlatformIOS, strings.Repeat("zz", 32), "token must be hexadecimal"},
		{"apns space", PlatformIOS, hex64[:30] + " " + hex64[31:], "token must be hexadecimal"},
		{"ios with an fcm token", PlatformIOS, fcm, ""},
		{"ios fcm token without a colon", PlatformIOS, strings.Repeat("zz", 32), "or an FCM registration token"},
		{"ios fcm token, bad character", PlatformIOS, fcm + "/", "invalid character \"/\""},
		{"ios fcm token too short", PlatformIOS, "a:b", "32 to 4096"},
		{"apns too short", PlatformIOS, hex64[:62], "64 to 200"},
		{"apns too long", PlatformIOS, strings.Repeat("0f", 101), "64 to 200"},
		{"apns odd length", PlatformIOS, hex64 + "a", "even number"},
		{"fcm typical", PlatformAndroid, fcm, ""},
		{"fcm 32", PlatformAndroid, strings.Repeat("a", 32), ""},
		{"fcm 4096", PlatformAndroid, strings.Repeat("a", 4096), ""},
		{"fcm hex is fine", PlatformAndroid, hex64, ""},
		{"fcm empty", PlatformAndroid, "", "token is empty"},
		{"fcm too short", PlatformAndroid, strings.Repeat("a", 31), "32 to 4096"},
		{"fcm too long", PlatformAndroid, strings.Repeat("a", 4097), "32 to 4096"},
		{"fcm space", PlatformAndroid, fcm[:10] + " " + fcm[11:], "invalid character \" \""},
		{"fcm slash", PlatformAndroid, fcm + "/", "invalid character \"/\""},
		{"fcm non-ascii", PlatformAndroid, fcm + "é", "invalid character \"é\""},
		{"unknown platform", Platform("WEB"), hex64, "unknown platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateToken(tt.platform, tt.token)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateToken(%s, %q) = %v, want nil", tt.platform, tt.token, err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("ValidateToken(%s, %q) = nil, want error containing %q", tt.platform, tt.token, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("ValidateToken(%s, %q) = %q, want error containing %q", tt.platform, tt.token, err, tt.wantErr)
			}
		})
	}
}

func TestSendPlatform(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	fcm := "dQw4w9WgXcQ:APA91bH-_x.y" + strings.Repeat("A", 140)
	for _, tt := range []struct {
		p     Platform
		token string
		want  Platform
	}{
		{PlatformIOS, hex64, PlatformIOS},
		{PlatformIOS, fcm, PlatformAndroid},
		{PlatformAndroid, fcm, PlatformAndroid},
		{PlatformAndroid, hex64, PlatformAndroid},
	} {
		if got := SendPlatform(tt.p, tt.token); got != tt.want {
			t.Errorf("SendPlatform(%s, %.12s…) = %s, want %s", tt.p, tt.token, got, tt.want)
		}
	}
}

func TestPickDevices(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := Device{Token: "aaa", Platform: PlatformIOS, LastUsed: t0, State: DeviceOK}
	b := Device{Token: "bbb", Platform: PlatformAndroid, LastUsed: t0.Add(time.Hour), State: DeviceBounced}
	c := Device{Token: "ccc", Platform: PlatformIOS, LastUsed: t0.Add(time.Hour), State: DeviceSuppressed}
	d := Device{Token: "ddd", Platform: PlatformAndroid, LastUsed: t0.Add(-time.Hour), State: DeviceOK}
	zero := Device{Token: "zzz", Platform: PlatformIOS}
	tests := []struct {
		name     string
		audience Audience
		devices  []Device
		token    string
		want     []Device
	}{
		{"all, newest first then token", AudienceAllDevices, []Device{d, c, a, b}, "", []Device{b, c, a, d}},
		{"all, one device", AudienceAllDevices, []Device{a}, "", []Device{a}},
		{"all, zero last used goes last", AudienceAllDevices, []Device{zero, a}, "", []Device{a, zero}},
		{"all, none", AudienceAllDevices, nil, "", nil},
		{"all ignores token", AudienceAllDevices, []Device{a, b}, "aaa", []Device{b, a}},
		{"last used", AudienceLastUsed, []Device{a, d, b}, "", []Device{b}},
		{"last used, tie takes smallest token", AudienceLastUsed, []Device{c, a, b}, "", []Device{b}},
		{"last used, one device", AudienceLastUsed, []Device{d}, "", []Device{d}},
		{"last used, none", AudienceLastUsed, nil, "", nil},
		{"last used may be suppressed", AudienceLastUsed, []Device{c, a}, "", []Device{c}},
		{"custom token present", AudienceCustomToken, []Device{a, b, c}, "bbb", []Device{b}},
		{"custom token absent", AudienceCustomToken, []Device{a, b, c}, "eee", nil},
		{"custom token empty", AudienceCustomToken, []Device{a, b}, "", nil},
		{"custom token, no devices", AudienceCustomToken, nil, "aaa", nil},
		{"unknown audience", Audience("SOME"), []Device{a}, "aaa", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]Device(nil), tt.devices...)
			got := PickDevices(tt.audience, tt.devices, tt.token)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PickDevices(%s, %v, %q) mismatch (-want +got):\n%s", tt.audience, tokens(tt.devices), tt.token, diff)
			}
			if diff := cmp.Diff(in, tt.devices); diff != "" {
				t.Errorf("PickDevices modified its input (-want +got):\n%s", diff)
			}
		})
	}
}

func tokens(ds []Device) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Token
	}
	return out
}

func TestCanonicalToken(t *testing.T) {
	hex := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ in, want string }{
		{hex, hex},
		{strings.ToUpper(hex), hex},
		{"0123ABCDef", "0123abcdef"},
		{"fGx1:APA91bHun4MxP5egoKMwt2KZFBaFUH", "fGx1:APA91bHun4MxP5egoKMwt2KZFBaFUH"}, // FCM: case kept
		{"", ""},
	} {
		if got := CanonicalToken(tc.in); got != tc.want {
			t.Errorf("CanonicalToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	devs := []Device{{Token: strings.ToUpper(hex), Platform: PlatformIOS}}
	if got := PickDevices(AudienceCustomToken, devs, hex); len(got) != 1 {
		t.Errorf("PickDevices(CUSTOM_TOKEN in lower case) of a device stored in upper case = %v, want it", got)
	}
}

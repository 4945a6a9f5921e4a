package domain

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AfterBounce returns a device's state after a send to it bounced (the
// provider rejected the token): the first bounce makes an ok device bounced,
// a second bounce in a row makes it suppressed, and suppressed stays
// suppressed. Registering the same token again clears the state (back to
// DeviceOK); that is the registration's job, not a send outcome.
func AfterBounce(current DeviceState) DeviceState {
	switch current {
	case DeviceBounced, DeviceSuppressed:
		return DeviceSuppressed
	default:
		return DeviceBounced
	}
}

// AfterSent returns a device's state after the provider accepted a send to it:
// DeviceOK, since a successful send breaks a "bounce in a row". (Suppressed
// devices are not sent to, so in practice only ok and bounced devices get
// here; registering the token again is what clears a suppressed device.)
func AfterSent(current DeviceState) DeviceState {
	return DeviceOK
}

// ParsePlatform parses a platform name: the GraphQL enum values IOS and
// ANDROID in any case, which includes "ios" and "android" as Customer.io's
// SDKs send them.
func ParsePlatform(s string) (Platform, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "IOS":
		return PlatformIOS, nil
	case "ANDROID":
		return PlatformAndroid, nil
	}
	return "", fmt.Errorf("unknown platform %q: want IOS or ANDROID", s)
}

// Token length bounds. An APNS device token is 32 bytes today (64 hex
// digits), and Apple says its length may grow
// (https://developer.apple.com/documentation/usernotifications/registering-your-app-with-apns);
// FCM registration tokens are about 160 characters and Google gives no fixed
// length, so the bounds are generous.
const (
	MinAPNSTokenLen = 64
	MaxAPNSTokenLen = 200
	MinFCMTokenLen  = 32
	MaxFCMTokenLen  = 4096
)

// ValidateToken checks the form of a push token for a platform: for IOS
// (APNS), an even number of hexadecimal digits, MinAPNSTokenLen to
// MaxAPNSTokenLen long; for ANDROID (FCM), MinFCMTokenLen to MaxFCMTokenLen
// characters of A-Z, a-z, 0-9 and "_:.-". An IOS device may also hold an
// FCM registration token (an app that uses Firebase Messaging on iOS, as
// Customer.io's iOS SDK's FCM module does, registers that instead of the
// APNS token): one with a colon, as FCM's "<instance id>:<token>" tokens
// have, is checked as ANDROID's and sent through FCM (SendPlatform). It
// cannot tell whether the provider knows the token: that shows as a bounce.
func ValidateToken(p Platform, token string) error {
	if token == "" {
		return errors.New("token is empty")
	}
	switch p {
	case PlatformIOS:
		if isIOSFCMToken(token) {
			return ValidateToken(PlatformAndroid, token)
		}
		if i := strings.IndexFunc(token, func(r rune) bool { return !isHex(r) }); i >= 0 {
			return fmt.Errorf("token must be hexadecimal (an APNS device token) or an FCM registration token (instance id:token): invalid character %q at offset %d", token[i:i+1], i)
		}
		if len(token) < MinAPNSTokenLen || len(token) > MaxAPNSTokenLen {
			return fmt.Errorf("token must be %d to %d hexadecimal digits, got %d", MinAPNSTokenLen, MaxAPNSTokenLen, len(token))
		}
		if len(token)%2 != 0 {
			return fmt.Errorf("token must have an even number of hexadecimal digits, got %d", len(token))
		}
	case PlatformAndroid:
		if i := strings.IndexFunc(token, func(r rune) bool { return !isFCMTokenChar(r) }); i >= 0 {
			return fmt.Errorf("token must contain only letters, digits and _:.- : invalid character %q at offset %d", string([]rune(token[i:])[0]), i)
		}
		if len(token) < MinFCMTokenLen || len(token) > MaxFCMTokenLen {
			return fmt.Errorf("token must be %d to %d characters, got %d", MinFCMTokenLen, MaxFCMTokenLen, len(token))
		}
	default:
		return fmt.Errorf("unknown platform %q: want IOS or ANDROID", p)
	}
	return nil
}

// isIOSFCMToken reports whether an iOS device's token is an FCM
// registration token rather than an APNS device token: APNS tokens are
// hexadecimal, FCM's are "<instance id>:<token>".
func isIOSFCMToken(token string) bool { return strings.Contains(token, ":") }

// SendPlatform returns the platform whose provider and credentials carry a
// device's pushes: ANDROID (FCM) for an Android device and for an iOS
// device that registered an FCM token (see ValidateToken), IOS (APNS) for
// the other iOS devices.
func SendPlatform(p Platform, token string) Platform {
	if p == PlatformIOS && isIOSFCMToken(token) {
		return PlatformAndroid
	}
	return p
}

// CanonicalToken is the form in which a token is stored, locked, targeted
// and matched: a token made only of hexadecimal digits (APNS's form: Apple
// sends the token as bytes, and apps hex-encode them in either case) in
// lower case, so that "ABCD…" and "abcd…" are one device; any other token
// as given. Lower case because it is what Apple's and Customer.io's SDK
// samples print and what the simulators' prefixes use. FCM tokens are
// case-sensitive but always hold characters beyond a–f (":", "APA91b…"), so
// none of them changes.
func CanonicalToken(token string) string {
	if token == "" || strings.IndexFunc(token, func(r rune) bool { return !isHex(r) }) >= 0 {
		return token
	}
	return strings.ToLower(token)
}

func isHex(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F'
}

func isFCMTokenChar(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' ||
		r == '_' || r == ':' || r == '.' || r == '-'
}

// Device is what PickDevices needs to know about one of a person's devices.
type Device struct {
	Token    string
	Platform Platform
	LastUsed time.Time
	State    DeviceState
}

// PickDevices returns the devices that a delivery with audience a targets
// among a person's devices:
//
//   - ALL_DEVICES: every device, newest LastUsed first, then by token;
//   - LAST_USED: the device with the newest LastUsed (on a tie, the smallest token);
//   - CUSTOM_TOKEN: the device whose token is token (compared in
//     CanonicalToken form), if the person has it.
//
// It returns nil when nothing matches (the pre-send failure ReasonNoDevices)
// or a is unknown. Suppressed devices are returned too: they are targeted,
// and their device sends are SUPPRESSED without a try. The input is not
// modified.
func PickDevices(a Audience, devices []Device, token string) []Device {
	if len(devices) == 0 {
		return nil
	}
	switch a {
	case AudienceAllDevices:
		out := slices.Clone(devices)
		slices.SortStableFunc(out, compareByLastUsed)
		return out
	case AudienceLastUsed:
		return []Device{slices.MinFunc(devices, compareByLastUsed)}
	case AudienceCustomToken:
		token = CanonicalToken(token)
		for _, d := range devices {
			if CanonicalToken(d.Token) == token {
				return []Device{d}
			}
		}
	}
	return nil
}

// compareByLastUsed orders devices newest LastUsed first, then by token.
func compareByLastUsed(x, y Device) int {
	if c := y.LastUsed.Compare(x.LastUsed); c != 0 {
		return c
	}
	return cmp.Compare(x.Token, y.Token)
}

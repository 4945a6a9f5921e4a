// Package sim holds what the local provider simulators (apnssim for Apple's
// APNS, fcmsim for Google's FCM HTTP v1 API) share: the table that picks a
// device token's fate from its prefix, and a goroutine-safe recorder of the
// requests each simulator received.
//
// Prefixes are lowercase hex so that valid APNS tokens (64 hex digits) can
// carry them; matching ignores case. The first matching rule wins:
//
//	prefix  example             outcome         APNS answer                  FCM answer
//	badd    badd0000…           bad token       400 BadDeviceToken           400 INVALID_ARGUMENT (registration token)
//	dead    dead0000…           unregistered    410 Unregistered             404 NOT_FOUND, FcmError UNREGISTERED
//	f1aN    f1a20000…           flaky           first N requests: 503 ServiceUnavailable / 503 UNAVAILABLE, then accepted
//	5030    50300000…           always down     503 ServiceUnavailable       503 UNAVAILABLE
//	510N    51030000…           slow            waits N seconds (N=0: 250 ms), then accepted; honours cancellation
//	4030    40300000…           permanent       413 PayloadTooLarge          400 INVALID_ARGUMENT (no token wording)
//	other   0123abcd…           accepted        200 + apns-id                200 {"name":"projects/p/messages/…"}
//
// N is one hex digit (0–f). Independently of the prefix, a payload larger
// than MaxPayloadBytes gets APNS 413 PayloadTooLarge or FCM 400
// INVALID_ARGUMENT. Describe returns the same table as Markdown for the
// README.
package sim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxPayloadBytes is the payload limit both simulators enforce, as Apple and
// Google do for regular (non-VoIP) notifications.
const MaxPayloadBytes = 4096

// Kind is the fate a token prefix selects.
type Kind int

// The kinds of behaviour a token can ask for.
const (
	Accept       Kind = iota // accepted at once
	BadToken                 // the provider says the token is malformed
	Unregistered             // the provider says the app was uninstalled
	Flaky                    // the first N requests fail with 503, then accepted
	Unavailable              // always 503
	Slow                     // accepted after a delay
	Permanent                // a permanent, non-token error
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case Accept:
		return "accept"
	case BadToken:
		return "bad_token"
	case Unregistered:
		return "unregistered"
	case Flaky:
		return "flaky"
	case Unavailable:
		return "unavailable"
	case Slow:
		return "slow"
	case Permanent:
		return "permanent"
	}
	return "unknown"
}

// Behavior is what a simulator does with one token.
type Behavior struct {
	Kind  Kind
	N     int           // Flaky: how many requests fail first
	Delay time.Duration // Slow: how long to wait before answering
}

// Rule is one row of the prefix table.
type Rule struct {
	Prefix  string // lowercase hex; "N" stands for one hex digit
	Example string // an example prefix
	Outcome string // what Herald records
	APNS    string // the APNS simulator's answer
	FCM     string // the FCM simulator's answer
}

// Rules returns the prefix table, first match wins.
func Rules() []Rule {
	return []Rule{
		{"badd", "badd", "bad token (bounced)", "400 BadDeviceToken", "400 INVALID_ARGUMENT \"The registration token is not a valid FCM registration token\""},
		{"dead", "dead", "unregistered (bounced, device removed)", "410 Unregistered", "404 NOT_FOUND, FcmError UNREGISTERED"},
		{"f1aN", "f1a2", "transient N times, then sent", "503 ServiceUnavailable for the first N requests, then 200", "503 UNAVAILABLE for the first N requests, then 200"},
		{"5030", "5030", "transient forever (failed after retries)", "503 ServiceUnavailable", "503 UNAVAILABLE"},
		{"510N", "5103", "slow: waits N seconds (N=0: 250 ms), then sent", "200 after the delay", "200 after the delay"},
		{"4030", "4030", "permanent failure", "413 PayloadTooLarge", "400 INVALID_ARGUMENT \"Request contains an invalid argument.\""},
		{"(other)", "0123", "sent", "200 with apns-id", "200 {\"name\":\"projects/<p>/messages/<id>\"}"},
	}
}

// Describe returns the prefix table as Markdown, ready for the README.
func Describe() string {
	var b strings.Builder
	b.WriteString("| token prefix | example | outcome | APNS simulator | FCM simulator |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, r := range Rules() {
		fmt.Fprintf(&b, "| `%s` | `%s…` | %s | %s | %s |\n", r.Prefix, r.Example, r.Outcome, r.APNS, strings.ReplaceAll(r.FCM, "|", "\\|"))
	}
	b.WriteString("\nN is one hex digit. A payload over 4096 bytes gets APNS 413 PayloadTooLarge / FCM 400 INVALID_ARGUMENT whatever the token.\n")
	return b.String()
}

// Classify returns the behaviour a token's prefix selects.
func Classify(token string) Behavior {
	t := strings.ToLower(token)
	switch {
	case strings.HasPrefix(t, "badd"):
		return Behavior{Kind: BadToken}
	case strings.HasPrefix(t, "dead"):
		return Behavior{Kind: Unregistered}
	case strings.HasPrefix(t, "f1a") && len(t) >= 4 && isHex(t[3]):
		n, _ := strconv.ParseInt(t[3:4], 16, 0)
		return Behavior{Kind: Flaky, N: int(n)}
	case strings.HasPrefix(t, "5030"):
		return Behavior{Kind: Unavailable}
	case strings.HasPrefix(t, "510") && len(t) >= 4 && isHex(t[3]):
		n, _ := strconv.ParseInt(t[3:4], 16, 0)
		d := time.Duration(n) * time.Second
		if n == 0 {
			d = 250 * time.Millisecond
		}
		return Behavior{Kind: Slow, Delay: d}
	case strings.HasPrefix(t, "4030"):
		return Behavior{Kind: Permanent}
	}
	return Behavior{Kind: Accept}
}

// Fails reports whether the nth request (1-based) for a token with this
// behaviour gets a 503.
func (b Behavior) Fails(nth int) bool {
	switch b.Kind {
	case Unavailable:
		return true
	case Flaky:
		return nth <= b.N
	}
	return false
}

// Token returns a valid-looking 64-hex-digit device token that starts with
// prefix and ends with seq, so tests and demos can make many distinct
// tokens with the same behaviour.
func Token(prefix string, seq int) string {
	tail := fmt.Sprintf("%x", seq)
	pad := 64 - len(prefix) - len(tail)
	if pad < 0 {
		pad = 0
	}
	return prefix + strings.Repeat("0", pad) + tail
}

// IsHex reports whether s is a non-empty string of hex digits, as APNS
// device tokens are.
func IsHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

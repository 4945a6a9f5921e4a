// Package providers sends rendered pushes to Apple (APNS) and Google (FCM)
// through the real sideshow/apns2 and firebase.google.com/go/v4 clients, and
// classifies each provider answer into the outcomes Herald's status rules use.
// The local simulators live in providers/sim/apnssim and providers/sim/fcmsim,
// their shared token-prefix table in providers/sim.
package providers

import "context"

// Platform is a device platform, spelled as in the GraphQL enum.
type Platform string

// Platforms Herald can send to.
const (
	IOS     Platform = "IOS"
	Android Platform = "ANDROID"
)

// Push is one rendered notification for one device.
type Push struct {
	DeliveryID string // Herald's delivery id; also the collapse id / key
	Token      string // the device token
	Title      string
	Body       string
	Link       string
	Image      string
	Sound      string
	Badge      *int
	Data       map[string]string // custom data; string values keep both platforms equal
	// ToIOS: the device is an iPhone or iPad reached through FCM (it
	// registered an FCM token, domain.SendPlatform); FCMMessage then sets
	// the apns block instead of the android one.
	ToIOS bool
	// Options are the message's delivery options, their Liquid rendered.
	Options Options
}

// Outcome is the class of a provider's answer, as DESIGN.md's "Provider outcomes".
type Outcome int

// The outcomes of one attempt.
const (
	Accepted     Outcome = iota + 1 // APNS 200, FCM returned a message name
	BadToken                        // the token is wrong: bounce the device
	Unregistered                    // the token is gone: bounce and remove the device
	Transient                       // retry with backoff
	Permanent                       // fail at once
)

// String names the outcome for logs and event rows.
func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case BadToken:
		return "bad_token"
	case Unregistered:
		return "unregistered"
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	}
	return "unknown"
}

// Result is what one attempt produced.
type Result struct {
	Outcome    Outcome
	MessageID  string // apns-id or the FCM message name, when accepted
	StatusCode int    // HTTP status from the provider, 0 on a network error
	Reason     string // the provider's reason (APNS "reason", FCM errorCode) or the error text
}

// Sender sends one push for one platform with one workspace's credentials.
type Sender interface {
	Send(ctx context.Context, p Push) Result
}

package providers

import (
	"encoding/json"
	"fmt"

	"firebase.google.com/go/v4/messaging"
)

// MaxPayloadBytes is the largest payload Herald sends: Apple's limit for a
// regular remote notification and Google's for an FCM message
// (https://developer.apple.com/documentation/usernotifications/generating-a-remote-notification).
const MaxPayloadBytes = 4096

// Keys Customer.io's SDKs read from a push to report metrics back.
const (
	keyDeliveryID    = "CIO-Delivery-ID"
	keyDeliveryToken = "CIO-Delivery-Token"
)

// apsAlert is the alert dictionary of aps.
type apsAlert struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

// aps is Apple's reserved dictionary, keys as Apple spells them.
type aps struct {
	Alert          *apsAlert `json:"alert,omitempty"`
	Sound          string    `json:"sound,omitempty"`
	Badge          *int      `json:"badge,omitempty"`
	MutableContent int       `json:"mutable-content,omitempty"`
}

// cioPush is CIO.push, which Customer.io's iOS SDK reads for the deep link
// and the rich-push image.
type cioPush struct {
	Link  string `json:"link,omitempty"`
	Image string `json:"image,omitempty"`
}

// APNSPayload returns the JSON body Herald posts to APNS for p: the aps
// dictionary, the CIO-Delivery-ID/-Token keys, CIO.push.{link,image}, and
// the custom data as top-level keys. Custom keys never override the
// reserved ones. Empty fields are left out; mutable-content is set when
// there is an image, so the app's notification service extension can fetch it.
func APNSPayload(p Push) ([]byte, error) {
	m := make(map[string]any, len(p.Data)+4)
	for k, v := range p.Data {
		m[k] = v
	}
	a := aps{Sound: p.Sound, Badge: p.Badge}
	if p.Title != "" || p.Body != "" {
		a.Alert = &apsAlert{Title: p.Title, Body: p.Body}
	}
	if p.Image != "" {
		a.MutableContent = 1
	}
	m["aps"] = a
	delete(m, "CIO")
	if p.Link != "" || p.Image != "" {
		m["CIO"] = map[string]any{"push": cioPush{Link: p.Link, Image: p.Image}}
	}
	delete(m, keyDeliveryID)
	delete(m, keyDeliveryToken)
	if p.DeliveryID != "" {
		m[keyDeliveryID] = p.DeliveryID
	}
	if p.Token != "" {
		m[keyDeliveryToken] = p.Token
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("providers: apns payload: %w", err)
	}
	return b, nil
}

// FCMMessage returns the FCM HTTP v1 message for p: a notification (title,
// body, image), data holding the custom data plus CIO-Delivery-ID,
// CIO-Delivery-Token, link and image, and the Android collapse key set to
// the delivery id. Reserved data keys override custom ones. For an iOS
// device (p.ToIOS) the android block gives way to the apns one (fcmAPNS).
func FCMMessage(p Push) *messaging.Message {
	data := make(map[string]string, len(p.Data)+4)
	for k, v := range p.Data {
		data[k] = v
	}
	for k, v := range map[string]string{
		keyDeliveryID:    p.DeliveryID,
		keyDeliveryToken: p.Token,
		"link":           p.Link,
		"image":          p.Image,
	} {
		if v != "" {
			data[k] = v
		} else {
			delete(data, k)
		}
	}
	if p.ToIOS {
		// As in APNSPayload: aps is Apple's and CIO Herald's (the apns block's CIO.push).
		delete(data, "aps")
		delete(data, "CIO")
	}
	if len(data) == 0 {
		data = nil
	}
	m := &messaging.Message{Token: p.Token, Data: data}
	if p.Title != "" || p.Body != "" || p.Image != "" {
		m.Notification = &messaging.Notification{Title: p.Title, Body: p.Body, ImageURL: p.Image}
	}
	if p.ToIOS {
		m.APNS = fcmAPNS(p)
		return m
	}
	android := &messaging.AndroidConfig{CollapseKey: p.DeliveryID}
	if p.Sound != "" {
		android.Notification = &messaging.AndroidNotification{Sound: p.Sound}
	}
	if android.CollapseKey != "" || android.Notification != nil {
		m.Android = android
	}
	return m
}

// fcmAPNS is the apns block of an FCM message to an iOS device: what
// APNSPayload puts in the APNS payload besides the alert and the data
// (FCM makes the alert from the notification and puts the data keys at
// the top level of the payload, where the iOS SDK reads CIO-Delivery-ID):
// sound, badge, mutable-content with an image (and FCM's image option,
// which Firebase's own notification service extension reads), CIO.push,
// and the collapse id.
func fcmAPNS(p Push) *messaging.APNSConfig {
	c := &messaging.APNSConfig{
		Payload: &messaging.APNSPayload{Aps: &messaging.Aps{Sound: p.Sound, Badge: p.Badge, MutableContent: p.Image != ""}},
	}
	if p.DeliveryID != "" {
		c.Headers = map[string]string{"apns-collapse-id": truncate(p.DeliveryID, maxCollapseID)}
	}
	if p.Link != "" || p.Image != "" {
		c.Payload.CustomData = map[string]any{"CIO": map[string]any{"push": cioPush{Link: p.Link, Image: p.Image}}}
	}
	if p.Image != "" {
		c.FCMOptions = &messaging.APNSFCMOptions{ImageURL: p.Image}
	}
	return c
}

// PayloadJSON returns the exact body Herald sends for p on platform: the
// APNS payload, or FCM's {"message":{…}} request body as the firebase
// client marshals it.
func PayloadJSON(platform Platform, p Push) ([]byte, error) {
	switch platform {
	case IOS:
		return APNSPayload(p)
	case Android:
		b, err := json.Marshal(struct {
			Message *messaging.Message `json:"message"`
		}{FCMMessage(p)})
		if err != nil {
			return nil, fmt.Errorf("providers: fcm payload: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("providers: unknown platform %q", platform)
}

// PayloadSize returns the size in bytes of PayloadJSON(platform, p), the
// number compared with MaxPayloadBytes. For FCM it measures the whole
// request body, which is a little stricter than Google's own count.
func PayloadSize(platform Platform, p Push) (int, error) {
	b, err := PayloadJSON(platform, p)
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// ReasonPayloadTooLarge is the Reason of a push that Herald refused to send
// because its payload is over MaxPayloadBytes; it matches Apple's reason.
const ReasonPayloadTooLarge = "PayloadTooLarge"

// tooLarge is the Result for a push over MaxPayloadBytes, returned without
// contacting the provider.
func tooLarge() Result {
	return Result{Outcome: Permanent, Reason: ReasonPayloadTooLarge}
}

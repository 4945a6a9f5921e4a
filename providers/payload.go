package providers

import (
	"encoding/json"
	"fmt"
	"time"

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

// cioPush is CIO.push, which Customer.io's iOS SDK reads for the deep link
// and the rich-push image.
type cioPush struct {
	Link  string `json:"link,omitempty"`
	Image string `json:"image,omitempty"`
}

// APNSPayload returns the JSON body Herald posts to APNS for p: the aps
// dictionary, the CIO-Delivery-ID/-Token keys, CIO.push.{link,image}, and
// the custom data as top-level keys, then the options' iosPayload merged
// over them. Custom keys never override the reserved ones. Empty fields
// are left out; mutable-content is set when there is an image, so the
// app's notification service extension can fetch it.
func APNSPayload(p Push) ([]byte, error) {
	if len(p.Options.IOSPayload) == 0 && finiteScore(p.Options) {
		return appendAPNSPayload(make([]byte, 0, 512), p), nil
	}
	return apnsPayloadMap(p)
}

// apnsPayloadMap is APNSPayload by way of maps, which an iosPayload is
// merged into.
func apnsPayloadMap(p Push) ([]byte, error) {
	m := make(map[string]any, len(p.Data)+4)
	for k, v := range p.Data {
		m[k] = v
	}
	m["aps"] = apsDict(p)
	delete(m, "CIO")
	if p.Link != "" || p.Image != "" {
		m["CIO"] = map[string]any{"push": cioPush{Link: p.Link, Image: p.Image}}
	}
	mergeInto(m, p.Options.IOSPayload, true)
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

// apsDict is Apple's aps dictionary for p, keys as Apple spells them: the
// alert (title, subtitle, body, localization keys), sound, badge,
// category, thread-id, content-available (a silent push has nothing else),
// mutable-content (also with an image), interruption-level,
// relevance-score and target-content-id.
func apsDict(p Push) map[string]any {
	o := p.Options
	a := map[string]any{}
	if o.Silent {
		a["content-available"] = 1
		return a
	}
	alert := map[string]any{}
	for k, v := range map[string]string{"title": p.Title, "subtitle": o.Subtitle, "body": p.Body,
		"title-loc-key": o.TitleLocKey, "loc-key": o.BodyLocKey} {
		if v != "" {
			alert[k] = v
		}
	}
	if len(o.TitleLocArgs) > 0 {
		alert["title-loc-args"] = o.TitleLocArgs
	}
	if len(o.BodyLocArgs) > 0 {
		alert["loc-args"] = o.BodyLocArgs
	}
	if len(alert) > 0 {
		a["alert"] = alert
	}
	if p.Sound != "" {
		a["sound"] = p.Sound
	}
	if p.Badge != nil {
		a["badge"] = *p.Badge
	}
	if o.Category != "" {
		a["category"] = o.Category
	}
	if o.ThreadID != "" {
		a["thread-id"] = o.ThreadID
	}
	if o.ContentAvailable {
		a["content-available"] = 1
	}
	if p.Image != "" || o.MutableContent {
		a["mutable-content"] = 1
	}
	if o.InterruptionLevel != "" {
		a["interruption-level"] = interruptions[o.InterruptionLevel]
	}
	if o.RelevanceScore != nil {
		a["relevance-score"] = *o.RelevanceScore
	}
	if o.TargetContentID != "" {
		a["target-content-id"] = o.TargetContentID
	}
	return a
}

// FCMMessage returns the FCM HTTP v1 message for p: a notification (title,
// body, image), data holding the custom data plus CIO-Delivery-ID,
// CIO-Delivery-Token, link and image, and the android block: the collapse
// key (the delivery id unless the options set one) and the options
// (priority, ttl, direct boot, the notification's sound, channel,
// priority, visibility, icon, color, tag, click action and localization
// keys), then the options' androidPayload merged over it, and the
// options' webpushPayload as the webpush block. Reserved data
// keys override custom ones. A silent push has no notification. For an
// iOS device (p.ToIOS) the android block gives way to the apns one
// (fcmAPNS).
func FCMMessage(p Push) *messaging.Message {
	o := p.Options
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
	m := &messaging.Message{Token: p.Token}
	if !o.Silent && (p.Title != "" || p.Body != "" || p.Image != "") {
		m.Notification = &messaging.Notification{Title: p.Title, Body: p.Body, ImageURL: p.Image}
	}
	if o.WebpushPayload != nil {
		m.Webpush = &messaging.WebpushConfig{}
		mergeJSON(m.Webpush, o.WebpushPayload)
	}
	if p.ToIOS {
		if len(data) > 0 {
			m.Data = data
		}
		m.APNS = fcmAPNS(p)
		return m
	}
	android := &messaging.AndroidConfig{CollapseKey: p.collapseID(), Priority: o.fcmPriority(), DirectBootOK: o.DirectBoot}
	if o.TTLSeconds != nil {
		ttl := time.Duration(*o.TTLSeconds) * time.Second
		android.TTL = &ttl
	}
	if !o.Silent {
		n := &messaging.AndroidNotification{Sound: p.Sound, ChannelID: o.ChannelID, Icon: o.Icon, Color: o.Color, Tag: o.Tag,
			ClickAction: o.ClickAction, TitleLocKey: o.TitleLocKey, TitleLocArgs: o.TitleLocArgs, BodyLocKey: o.BodyLocKey, BodyLocArgs: o.BodyLocArgs,
			Priority: androidPriorities[o.NotificationPriority], Visibility: androidVisibilities[o.Visibility]}
		if n.Sound != "" || n.ChannelID != "" || n.Icon != "" || n.Color != "" || n.Tag != "" || n.ClickAction != "" ||
			n.TitleLocKey != "" || n.BodyLocKey != "" || o.NotificationPriority != "" || o.Visibility != "" {
			android.Notification = n
		}
	}
	if ap := o.AndroidPayload; ap != nil {
		mergeAndroid(m, android, data, ap)
	}
	if len(data) > 0 {
		m.Data = data
	}
	if android.CollapseKey != "" || android.Priority != "" || android.TTL != nil || android.DirectBootOK ||
		android.Notification != nil || android.Data != nil || android.FCMOptions != nil {
		m.Android = android
	}
	return m
}

var (
	androidPriorities = map[string]messaging.AndroidNotificationPriority{"MIN": messaging.PriorityMin, "LOW": messaging.PriorityLow,
		"DEFAULT": messaging.PriorityDefault, "HIGH": messaging.PriorityHigh, "MAX": messaging.PriorityMax}
	androidVisibilities = map[string]messaging.AndroidNotificationVisibility{"PRIVATE": messaging.VisibilityPrivate,
		"PUBLIC": messaging.VisibilityPublic, "SECRET": messaging.VisibilitySecret}
)

// mergeAndroid merges an androidPayload (validated by Options.Validate)
// into the message: data keys (Herald's CIO keys kept), and the
// notification and android objects key by key over Herald's, through
// their JSON form as the firebase client marshals and reads it.
func mergeAndroid(m *messaging.Message, android *messaging.AndroidConfig, data map[string]string, ap map[string]any) {
	if d, ok := ap["data"].(map[string]any); ok {
		for k, v := range d {
			if s, ok := v.(string); ok && k != keyDeliveryID && k != keyDeliveryToken {
				data[k] = s
			}
		}
	}
	if n, ok := ap["notification"].(map[string]any); ok {
		if m.Notification == nil {
			m.Notification = &messaging.Notification{}
		}
		mergeJSON(m.Notification, n)
	}
	if a, ok := ap["android"].(map[string]any); ok {
		mergeJSON(android, a)
	}
}

// mergeJSON sets v's fields from obj's keys, v's JSON form merged with obj
// (one level deep) and read back.
func mergeJSON(v any, obj map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	cur := map[string]any{}
	if err := json.Unmarshal(b, &cur); err != nil {
		return
	}
	mergeInto(cur, obj, true)
	if b, err = json.Marshal(cur); err == nil {
		_ = json.Unmarshal(b, v)
	}
}

// fcmAPNS is the apns block of an FCM message to an iOS device: what
// APNSPayload puts in the APNS payload besides the alert and the data
// (FCM makes the alert from the notification and puts the data keys at
// the top level of the payload, where the iOS SDK reads CIO-Delivery-ID):
// the aps dictionary without the alert's title and body, mutable-content
// with an image (and FCM's image option, which Firebase's own notification
// service extension reads), CIO.push, the iosPayload, and the headers
// apns-collapse-id, apns-priority, apns-push-type and apns-expiration.
func fcmAPNS(p Push) *messaging.APNSConfig {
	o := p.Options
	aps := apsDict(p)
	if alert, ok := aps["alert"].(map[string]any); ok {
		// Title and body alone come from the notification; with a subtitle
		// or localization keys the alert goes whole, as an aps.alert given
		// here replaces the one FCM makes.
		onlyTitleBody := true
		for k := range alert {
			onlyTitleBody = onlyTitleBody && (k == "title" || k == "body")
		}
		if onlyTitleBody {
			delete(aps, "alert")
		}
	}
	custom := map[string]any{"aps": aps}
	if p.Link != "" || p.Image != "" {
		custom["CIO"] = map[string]any{"push": cioPush{Link: p.Link, Image: p.Image}}
	}
	mergeInto(custom, o.IOSPayload, true)
	aps, _ = custom["aps"].(map[string]any)
	delete(custom, "aps")
	delete(custom, keyDeliveryID)
	delete(custom, keyDeliveryToken)
	c := &messaging.APNSConfig{Payload: &messaging.APNSPayload{Aps: &messaging.Aps{CustomData: aps}}}
	if len(custom) > 0 {
		c.Payload.CustomData = custom
	}
	c.Headers = map[string]string{}
	if id := p.collapseID(); id != "" {
		c.Headers["apns-collapse-id"] = id
	}
	if !o.IsZero() {
		typ, _ := o.apnsPushType()
		c.Headers["apns-push-type"] = string(typ)
		c.Headers["apns-priority"] = fmt.Sprint(o.apnsPriority())
		if exp := o.expiration(time.Now()); !exp.IsZero() {
			c.Headers["apns-expiration"] = fmt.Sprint(exp.Unix())
		}
	}
	if len(c.Headers) == 0 {
		c.Headers = nil
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

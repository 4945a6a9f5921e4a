package sim

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// apnsTopicSuffix is the suffix Apple wants on apns-topic for each push
// type that is not alert or background
// (https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns).
var apnsTopicSuffix = map[string]string{
	"alert": "", "background": "", "mdm": "", "widgets": ".push-type.widgets",
	"voip": ".voip", "complication": ".complication", "fileprovider": ".pushkit.fileprovider",
	"location": ".location-query", "liveactivity": ".push-type.liveactivity", "pushtotalk": ".voip-ptt",
}

// CheckAPNS applies the header and payload rules Apple's documentation
// states for a notification request and returns Apple's reason for the
// first one broken ("" when none is): the push type is one Apple knows
// (InvalidPushType) and the topic carries its suffix (TopicDisallowed);
// the priority is 10, 5 or 1 (BadPriority); a background push has
// priority 5 (BadPriority) and carries no alert, sound or badge
// (InvalidPushType: Herald's choice of reason; Apple documents the rule,
// not the answer); a push with only content-available is not priority 10
// (BadPriority); apns-expiration is a whole number (BadExpirationDate);
// the collapse id is at most 64 bytes (BadCollapseId); a Live Activity
// push has aps.event and aps.timestamp (BadPayload, Herald's choice).
// header gets a header by name; an empty topic is not checked.
func CheckAPNS(header func(string) string, payload []byte) string {
	return checkAPNS(header, payload, false)
}

// checkAPNS is CheckAPNS; notified says an alert comes from elsewhere (FCM's notification).
func checkAPNS(header func(string) string, payload []byte, notified bool) string {
	typ := header("apns-push-type")
	if typ == "" {
		typ = "alert"
	}
	suffix, known := apnsTopicSuffix[typ]
	if !known {
		return "InvalidPushType"
	}
	if topic := header("apns-topic"); topic != "" && suffix != "" && !strings.HasSuffix(topic, suffix) {
		return "TopicDisallowed"
	}
	prio := header("apns-priority")
	if prio != "" && prio != "10" && prio != "5" && prio != "1" {
		return "BadPriority"
	}
	if e := header("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			return "BadExpirationDate"
		}
	}
	if id := header("apns-collapse-id"); len(id) > 64 {
		return "BadCollapseId"
	}
	var body struct {
		Aps map[string]json.RawMessage `json:"aps"`
	}
	_ = json.Unmarshal(payload, &body)
	_, alert := body.Aps["alert"]
	_, sound := body.Aps["sound"]
	_, badge := body.Aps["badge"]
	_, available := body.Aps["content-available"]
	visible := alert || sound || badge || notified
	if typ == "background" {
		if prio != "5" {
			return "BadPriority"
		}
		if visible {
			return "InvalidPushType"
		}
	}
	if available && !visible && (prio == "" || prio == "10") && typ == "alert" {
		return "BadPriority"
	}
	if typ == "liveactivity" {
		if _, ok := body.Aps["event"]; !ok {
			return "BadPayload"
		}
		if _, ok := body.Aps["timestamp"]; !ok {
			return "BadPayload"
		}
	}
	return ""
}

var (
	fcmTTL   = regexp.MustCompile(`^\d+(\.\d{1,9})?s$`)
	fcmColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	fcmEnums = map[string]map[string]bool{
		"priority":              {"normal": true, "high": true, "NORMAL": true, "HIGH": true},
		"notification_priority": {"PRIORITY_UNSPECIFIED": true, "PRIORITY_MIN": true, "PRIORITY_LOW": true, "PRIORITY_DEFAULT": true, "PRIORITY_HIGH": true, "PRIORITY_MAX": true},
		"visibility":            {"VISIBILITY_UNSPECIFIED": true, "PRIVATE": true, "PUBLIC": true, "SECRET": true},
	}
)

// CheckFCM applies what FCM's HTTP v1 API checks of a message's android
// and apns blocks (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages)
// and returns a message for the first problem ("" when none): the
// android priority, notification_priority and visibility are the API's
// enum values, ttl is a duration in seconds ("3.5s") of at most four
// weeks, color is #rrggbb; the apns block obeys CheckAPNS (FCM passes
// it to Apple, which answers it).
func CheckFCM(message json.RawMessage) string {
	var m struct {
		Android *struct {
			Priority     string `json:"priority"`
			TTL          string `json:"ttl"`
			Notification *struct {
				Color                string `json:"color"`
				NotificationPriority string `json:"notification_priority"`
				Visibility           string `json:"visibility"`
			} `json:"notification"`
		} `json:"android"`
		Notification json.RawMessage `json:"notification"`
		APNS         *struct {
			Headers map[string]string `json:"headers"`
			Payload json.RawMessage   `json:"payload"`
		} `json:"apns"`
	}
	if err := json.Unmarshal(message, &m); err != nil {
		return fmt.Sprintf("Invalid JSON payload received. %v", err)
	}
	if a := m.Android; a != nil {
		if a.Priority != "" && !fcmEnums["priority"][a.Priority] {
			return fmt.Sprintf("Invalid value at 'message.android.priority' (%q)", a.Priority)
		}
		if a.TTL != "" {
			if !fcmTTL.MatchString(a.TTL) {
				return fmt.Sprintf("Invalid value at 'message.android.ttl' (%q): a duration in seconds, e.g. \"3.5s\"", a.TTL)
			}
			if d, err := time.ParseDuration(a.TTL); err != nil || d > 28*24*time.Hour {
				return "message.android.ttl: the time to live is at most 4 weeks"
			}
		}
		if n := a.Notification; n != nil {
			if n.Color != "" && !fcmColor.MatchString(n.Color) {
				return fmt.Sprintf("message.android.notification.color: %q is not #rrggbb", n.Color)
			}
			if n.NotificationPriority != "" && !fcmEnums["notification_priority"][n.NotificationPriority] {
				return fmt.Sprintf("Invalid value at 'message.android.notification.notification_priority' (%q)", n.NotificationPriority)
			}
			if n.Visibility != "" && !fcmEnums["visibility"][n.Visibility] {
				return fmt.Sprintf("Invalid value at 'message.android.notification.visibility' (%q)", n.Visibility)
			}
		}
	}
	if a := m.APNS; a != nil {
		if reason := checkAPNS(func(k string) string { return a.Headers[k] }, a.Payload, m.Notification != nil); reason != "" {
			return "message.apns: APNS refuses it: " + reason
		}
	}
	return ""
}

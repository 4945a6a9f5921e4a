package providers

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
)

// Options are a push's delivery options besides its content: what Apple's
// and Google's APIs take and Customer.io's composer offers. The zero value
// is Herald's default push: a high-priority alert, stored by the provider
// for its default time, collapsed by delivery id. Enum values are the
// GraphQL enums' names (HIGH, TIME_SENSITIVE, …); Validate checks them and
// the combinations Apple and Google refuse.
type Options struct {
	// Silent makes a background (data-only) push: no alert, sound or badge;
	// APNS push type background with content-available and priority 5;
	// FCM without a notification.
	Silent bool `json:"silent,omitempty"`
	// Priority is HIGH (APNS 10, FCM high), NORMAL (5, normal) or LOW (1,
	// normal); empty means HIGH, or NORMAL for a silent push.
	Priority string `json:"priority,omitempty"`
	// TTLSeconds is how long the provider keeps an undelivered push: 0
	// means now or never; nil leaves the provider's default.
	TTLSeconds *int `json:"ttlSeconds,omitempty"`
	// CollapseKey replaces the delivery id as apns-collapse-id and FCM's
	// collapse_key (a Liquid template).
	CollapseKey string `json:"collapseKey,omitempty"`

	// APNS (and the apns block of FCM to iOS).
	PushType          string   `json:"pushType,omitempty"` // ALERT (default), BACKGROUND, VOIP, COMPLICATION, FILEPROVIDER, LOCATION, LIVEACTIVITY, PUSHTOTALK
	Category          string   `json:"category,omitempty"`
	ThreadID          string   `json:"threadId,omitempty"` // a Liquid template
	MutableContent    bool     `json:"mutableContent,omitempty"`
	ContentAvailable  bool     `json:"contentAvailable,omitempty"`
	InterruptionLevel string   `json:"interruptionLevel,omitempty"` // PASSIVE, ACTIVE, TIME_SENSITIVE, CRITICAL
	RelevanceScore    *float64 `json:"relevanceScore,omitempty"`    // 0 to 1
	TargetContentID   string   `json:"targetContentId,omitempty"`   // a Liquid template
	Subtitle          string   `json:"subtitle,omitempty"`          // a Liquid template
	TitleLocKey       string   `json:"titleLocKey,omitempty"`
	TitleLocArgs      []string `json:"titleLocArgs,omitempty"`
	BodyLocKey        string   `json:"bodyLocKey,omitempty"`
	BodyLocArgs       []string `json:"bodyLocArgs,omitempty"`

	// FCM's android block.
	ChannelID            string `json:"channelId,omitempty"`
	NotificationPriority string `json:"notificationPriority,omitempty"` // MIN, LOW, DEFAULT, HIGH, MAX
	Visibility           string `json:"visibility,omitempty"`           // PRIVATE, PUBLIC, SECRET
	Icon                 string `json:"icon,omitempty"`
	Color                string `json:"color,omitempty"`       // #RRGGBB
	Tag                  string `json:"tag,omitempty"`         // a Liquid template
	ClickAction          string `json:"clickAction,omitempty"` // a Liquid template
	DirectBoot           bool   `json:"directBoot,omitempty"`

	// IOSPayload is merged into the APNS payload (and the apns payload of
	// FCM to iOS): its top-level keys replace Herald's, its aps keys replace
	// Herald's aps keys; CIO-Delivery-ID and CIO-Delivery-Token stay Herald's.
	IOSPayload map[string]any `json:"iosPayload,omitempty"`
	// AndroidPayload is merged into the FCM message to Android devices:
	// keys data (string values), notification and android, each merged
	// key by key into Herald's; the data keys CIO-Delivery-ID and
	// CIO-Delivery-Token stay Herald's.
	AndroidPayload map[string]any `json:"androidPayload,omitempty"`
	// WebpushPayload is FCM's webpush block (headers, data, notification,
	// fcm_options), set on every FCM message; it matters to web clients
	// of the FCM project only.
	WebpushPayload map[string]any `json:"webpushPayload,omitempty"`
}

// MaxTTLSeconds is the longest time to live: FCM's maximum, four weeks
// (APNS keeps a push for a limited time Apple does not state).
const MaxTTLSeconds = 28 * 24 * 3600

// TextFields are the options that are Liquid templates, by path: the
// text options (collapseKey, threadId, targetContentId, subtitle, tag,
// clickAction), each localization argument (titleLocArgs.0, …) and every
// string in the custom payloads (iosPayload.aps.category, …). Empty ones
// are left out. Push carries them rendered (WithText).
func (o Options) TextFields() map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{"collapseKey": o.CollapseKey, "threadId": o.ThreadID, "targetContentId": o.TargetContentID,
		"subtitle": o.Subtitle, "tag": o.Tag, "clickAction": o.ClickAction} {
		if v != "" {
			out[k] = v
		}
	}
	for i, v := range o.TitleLocArgs {
		out[fmt.Sprintf("titleLocArgs.%d", i)] = v
	}
	for i, v := range o.BodyLocArgs {
		out[fmt.Sprintf("bodyLocArgs.%d", i)] = v
	}
	walkStrings("iosPayload", o.IOSPayload, func(path, v string) string { out[path] = v; return v })
	walkStrings("androidPayload", o.AndroidPayload, func(path, v string) string { out[path] = v; return v })
	walkStrings("webpushPayload", o.WebpushPayload, func(path, v string) string { out[path] = v; return v })
	return out
}

// WithText returns o with its Liquid fields replaced by rendered values
// (keys as TextFields; a missing key keeps the field). The custom payloads
// are copied, not changed in place.
func (o Options) WithText(v map[string]string) Options {
	set := func(dst *string, k string) {
		if s, ok := v[k]; ok {
			*dst = s
		}
	}
	set(&o.CollapseKey, "collapseKey")
	set(&o.ThreadID, "threadId")
	set(&o.TargetContentID, "targetContentId")
	set(&o.Subtitle, "subtitle")
	set(&o.Tag, "tag")
	set(&o.ClickAction, "clickAction")
	args := func(name string, in []string) []string {
		if in == nil {
			return nil
		}
		out := make([]string, len(in))
		for i, a := range in {
			out[i] = a
			set(&out[i], fmt.Sprintf("%s.%d", name, i))
		}
		return out
	}
	o.TitleLocArgs, o.BodyLocArgs = args("titleLocArgs", o.TitleLocArgs), args("bodyLocArgs", o.BodyLocArgs)
	replace := func(path, s string) string {
		if r, ok := v[path]; ok {
			return r
		}
		return s
	}
	if o.IOSPayload != nil {
		o.IOSPayload = walkStrings("iosPayload", o.IOSPayload, replace).(map[string]any)
	}
	if o.AndroidPayload != nil {
		o.AndroidPayload = walkStrings("androidPayload", o.AndroidPayload, replace).(map[string]any)
	}
	if o.WebpushPayload != nil {
		o.WebpushPayload = walkStrings("webpushPayload", o.WebpushPayload, replace).(map[string]any)
	}
	return o
}

// walkStrings returns a copy of the JSON value v with each string s at
// path (keys and indexes joined by dots under prefix) replaced by f(path, s).
func walkStrings(path string, v any, f func(path, s string) string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = walkStrings(path+"."+k, e, f)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = walkStrings(fmt.Sprintf("%s.%d", path, i), e, f)
		}
		return out
	case string:
		return f(path, x)
	}
	return v
}

// IsZero reports whether o is the default (no field set). It is on the
// send path (fcmAPNS), so it compares fields instead of marshalling.
func (o Options) IsZero() bool { return reflect.ValueOf(o).IsZero() }

// Encode returns o as stored ("" for the default).
func (o Options) Encode() (string, error) {
	if o.IsZero() {
		return "", nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return "", fmt.Errorf("options: %w", err)
	}
	return string(b), nil
}

// DecodeOptions reads stored options ("" = the default).
func DecodeOptions(s string) (Options, error) {
	var o Options
	if s == "" {
		return o, nil
	}
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return o, fmt.Errorf("push options: %w", err)
	}
	return o, nil
}

// OptionError is a refused option: Field is its name (e.g. "priority").
type OptionError struct {
	Field, Msg string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Msg }

func optErr(field, format string, args ...any) error {
	return &OptionError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	priorities = map[string]bool{"HIGH": true, "NORMAL": true, "LOW": true}
	// interruptions maps InterruptionLevel to Apple's interruption-level.
	interruptions   = map[string]string{"PASSIVE": "passive", "ACTIVE": "active", "TIME_SENSITIVE": "time-sensitive", "CRITICAL": "critical"}
	notifPriorities = map[string]bool{"MIN": true, "LOW": true, "DEFAULT": true, "HIGH": true, "MAX": true}
	visibilities    = map[string]bool{"PRIVATE": true, "PUBLIC": true, "SECRET": true}
	colorRE         = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
)

// pushTypes maps the PushType names to apns2's push types and the suffix
// Apple wants on the topic (the app's bundle id) for each.
var pushTypes = map[string]struct {
	typ    apns2.EPushType
	suffix string
}{
	"ALERT":        {apns2.PushTypeAlert, ""},
	"BACKGROUND":   {apns2.PushTypeBackground, ""},
	"VOIP":         {apns2.PushTypeVOIP, ".voip"},
	"COMPLICATION": {apns2.PushTypeComplication, ".complication"},
	"FILEPROVIDER": {apns2.PushTypeFileProvider, ".pushkit.fileprovider"},
	"LOCATION":     {apns2.PushTypeLocation, ".location-query"},
	"LIVEACTIVITY": {apns2.PushTypeLiveActivity, ".push-type.liveactivity"},
	"PUSHTOTALK":   {apns2.PushTypePushToTalk, ".voip-ptt"},
}

// androidPayloadKeys and webpushPayloadKeys are the keys AndroidPayload
// and WebpushPayload may hold.
var (
	androidPayloadKeys = map[string]bool{"data": true, "notification": true, "android": true}
	webpushPayloadKeys = map[string]bool{"headers": true, "data": true, "notification": true, "fcm_options": true}
)

// Validate refuses unknown enum values and the combinations Apple and
// Google refuse, naming the option. hasAlert says whether the message has
// alert content (a title, body, sound or badge).
func (o Options) Validate(hasAlert bool) error {
	if o.Priority != "" && !priorities[o.Priority] {
		return optErr("priority", "%q is not HIGH, NORMAL or LOW", o.Priority)
	}
	if o.TTLSeconds != nil && (*o.TTLSeconds < 0 || *o.TTLSeconds > MaxTTLSeconds) {
		return optErr("ttlSeconds", "must be from 0 to %d (28 days)", MaxTTLSeconds)
	}
	if len(o.CollapseKey) > maxCollapseID {
		return optErr("collapseKey", "is %d bytes; Apple allows %d", len(o.CollapseKey), maxCollapseID)
	}
	if o.PushType != "" {
		if _, ok := pushTypes[o.PushType]; !ok {
			return optErr("pushType", "%q is not a push type Herald sends (ALERT, BACKGROUND, VOIP, COMPLICATION, FILEPROVIDER, LOCATION, LIVEACTIVITY, PUSHTOTALK)", o.PushType)
		}
	}
	if o.InterruptionLevel != "" && interruptions[o.InterruptionLevel] == "" {
		return optErr("interruptionLevel", "%q is not PASSIVE, ACTIVE, TIME_SENSITIVE or CRITICAL", o.InterruptionLevel)
	}
	if o.RelevanceScore != nil && (*o.RelevanceScore < 0 || *o.RelevanceScore > 1) {
		return optErr("relevanceScore", "must be from 0 to 1")
	}
	if len(o.TitleLocArgs) > 0 && o.TitleLocKey == "" {
		return optErr("titleLocArgs", "needs titleLocKey")
	}
	if len(o.BodyLocArgs) > 0 && o.BodyLocKey == "" {
		return optErr("bodyLocArgs", "needs bodyLocKey")
	}
	if o.NotificationPriority != "" && !notifPriorities[o.NotificationPriority] {
		return optErr("notificationPriority", "%q is not MIN, LOW, DEFAULT, HIGH or MAX", o.NotificationPriority)
	}
	if o.Visibility != "" && !visibilities[o.Visibility] {
		return optErr("visibility", "%q is not PRIVATE, PUBLIC or SECRET", o.Visibility)
	}
	if o.Color != "" && !colorRE.MatchString(o.Color) {
		return optErr("color", "%q is not #RRGGBB", o.Color)
	}
	if o.PushType == "BACKGROUND" && !o.Silent {
		return optErr("pushType", "BACKGROUND is a silent push: set silent")
	}
	if o.Silent {
		switch {
		case o.PushType != "" && o.PushType != "BACKGROUND":
			return optErr("pushType", "a silent push is BACKGROUND, not %s", o.PushType)
		case o.Priority == "HIGH":
			return optErr("priority", "Apple refuses priority 10 (HIGH) for a background push; use NORMAL or LOW")
		case hasAlert || o.Subtitle != "" || o.TitleLocKey != "" || o.BodyLocKey != "":
			return optErr("silent", "a background push carries no title, body, subtitle, sound, badge or image (put what the app needs in data)")
		case o.InterruptionLevel != "" || o.Category != "" || o.ChannelID != "" || o.NotificationPriority != "" ||
			o.Visibility != "" || o.Icon != "" || o.Color != "" || o.Tag != "" || o.ClickAction != "":
			return optErr("silent", "a background push shows no notification, so it takes no notification options (interruptionLevel, category, channelId, notificationPriority, visibility, icon, color, tag, clickAction)")
		}
	}
	if !o.Silent && !hasAlert && o.ContentAvailable && o.Priority == "HIGH" {
		return optErr("priority", "Apple refuses priority 10 (HIGH) for a push with only content-available; use NORMAL or LOW")
	}
	if o.IOSPayload != nil {
		if a, ok := o.IOSPayload["aps"]; ok {
			if _, isObj := a.(map[string]any); !isObj {
				return optErr("iosPayload.aps", "must be an object")
			}
		}
		for _, k := range []string{keyDeliveryID, keyDeliveryToken} {
			if _, ok := o.IOSPayload[k]; ok {
				return optErr("iosPayload."+k, "is Herald's: it is set on every push")
			}
		}
		if o.PushType == "LIVEACTIVITY" {
			a, _ := o.IOSPayload["aps"].(map[string]any)
			for _, k := range []string{"event", "timestamp"} {
				if _, ok := a[k]; !ok {
					return optErr("iosPayload.aps."+k, "a Live Activity push needs aps.%s (Apple)", k)
				}
			}
		}
	} else if o.PushType == "LIVEACTIVITY" {
		return optErr("iosPayload", "a Live Activity push needs aps.event, aps.timestamp and aps.content-state in iosPayload (Apple)")
	}
	if err := checkBlock("androidPayload", o.AndroidPayload, androidPayloadKeys, "data"); err != nil {
		return err
	}
	if err := checkBlock("webpushPayload", o.WebpushPayload, webpushPayloadKeys, "data", "headers"); err != nil {
		return err
	}
	for name, v := range map[string]any{"androidPayload.android": &messaging.AndroidConfig{}, "androidPayload.notification": &messaging.Notification{}} {
		if obj, ok := o.AndroidPayload[strings.TrimPrefix(name, "androidPayload.")].(map[string]any); ok {
			if err := checkFields(name, v, obj); err != nil {
				return err
			}
		}
	}
	if o.WebpushPayload != nil {
		return checkFields("webpushPayload", &messaging.WebpushConfig{}, o.WebpushPayload)
	}
	return nil
}

// checkFields checks that obj reads into the firebase client's type v (a
// value of the wrong type, an unparsable ttl) and that every key with a
// value other than the zero one is a field of it (the client drops
// unknown ones), naming the first problem.
func checkFields(name string, v any, obj map[string]any) error {
	b, err := json.Marshal(obj)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return optErr(name, "not FCM's form: %v", err)
	}
	back := map[string]any{}
	if b, err = json.Marshal(v); err == nil {
		err = json.Unmarshal(b, &back)
	}
	if err != nil {
		return optErr(name, "not FCM's form: %v", err)
	}
	return missingKeys(name, obj, back)
}

// missingKeys names the first key of sent with a non-zero value that got
// (the same object read by the client and written back) lacks, looking
// into nested objects.
func missingKeys(name string, sent, got map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(sent)) {
		v := sent[k]
		switch x := v.(type) {
		case nil, bool, string, float64:
			if x == nil || x == false || x == "" || x == 0.0 {
				continue
			}
		}
		g, ok := got[k]
		if !ok {
			return optErr(name+"."+k, "is not a field of FCM's message here (the firebase client would drop it)")
		}
		if sm, ok := v.(map[string]any); ok {
			if gm, ok := g.(map[string]any); ok {
				if err := missingKeys(name+"."+k, sm, gm); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkBlock checks a raw FCM block: its keys are in allowed, each value
// is an object, and the objects named in stringMaps hold strings only
// (and not Herald's CIO keys).
func checkBlock(name string, block map[string]any, allowed map[string]bool, stringMaps ...string) error {
	for k, v := range block {
		if !allowed[k] {
			return optErr(name+"."+k, "is not merged by Herald (it takes %s)", strings.Join(slices.Sorted(maps.Keys(allowed)), ", "))
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return optErr(name+"."+k, "must be an object")
		}
		if !slices.Contains(stringMaps, k) {
			continue
		}
		for dk, dv := range obj {
			if _, ok := dv.(string); !ok {
				return optErr(name+"."+k+"."+dk, "FCM %s values are strings", k)
			}
			if dk == keyDeliveryID || dk == keyDeliveryToken {
				return optErr(name+"."+k+"."+dk, "is Herald's: it is set on every push")
			}
		}
	}
	return nil
}

// apnsPriority is the apns-priority for o.
func (o Options) apnsPriority() int {
	switch o.Priority {
	case "HIGH":
		return 10
	case "NORMAL":
		return 5
	case "LOW":
		return 1
	}
	if o.Silent {
		return 5
	}
	return 10
}

// fcmPriority is android.priority for o ("" = FCM's default).
func (o Options) fcmPriority() string {
	switch o.Priority {
	case "HIGH":
		return "high"
	case "NORMAL", "LOW":
		return "normal"
	}
	return ""
}

// apnsPushType is the apns-push-type and the topic suffix for o.
func (o Options) apnsPushType() (apns2.EPushType, string) {
	if o.Silent {
		return apns2.PushTypeBackground, ""
	}
	if t, ok := pushTypes[o.PushType]; ok {
		return t.typ, t.suffix
	}
	return apns2.PushTypeAlert, ""
}

// expiration is the apns-expiration for o at now: zero time (no header)
// without a TTL, time.Unix(0, 0) ("0": now or never) for a TTL of 0.
func (o Options) expiration(now time.Time) time.Time {
	if o.TTLSeconds == nil {
		return time.Time{}
	}
	if *o.TTLSeconds == 0 {
		return time.Unix(0, 0)
	}
	return now.Add(time.Duration(*o.TTLSeconds) * time.Second)
}

// collapseID is the collapse id or key of a push: the option, else the delivery id.
func (p Push) collapseID() string {
	if p.Options.CollapseKey != "" {
		return truncate(p.Options.CollapseKey, maxCollapseID)
	}
	return truncate(p.DeliveryID, maxCollapseID)
}

// mergeInto copies src's keys over dst's; for keys whose values are both
// objects, recursively when deep.
func mergeInto(dst, src map[string]any, deep bool) {
	for k, v := range src {
		if deep {
			if sv, ok := v.(map[string]any); ok {
				if dv, ok := dst[k].(map[string]any); ok {
					merged := make(map[string]any, len(dv)+len(sv))
					mergeInto(merged, dv, false)
					mergeInto(merged, sv, true)
					dst[k] = merged
					continue
				}
			}
		}
		dst[k] = v
	}
}

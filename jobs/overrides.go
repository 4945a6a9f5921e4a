package jobs

import (
	"encoding/json"
	"fmt"

	"github.com/heraldpush/herald/providers"
)

// Overrides replaces fields of a push message for one delivery (Customer.io's
// transactional push overrides). Each text is a Liquid template, rendered
// like the message's own fields; an empty text keeps the message's field.
// Data is merged into the message's custom data, its keys winning.
// It is stored as JSON in deliveries.overrides.
type Overrides struct {
	Title string         `json:"title,omitempty"`
	Body  string         `json:"body,omitempty"`
	Link  string         `json:"link,omitempty"`
	Image string         `json:"image,omitempty"`
	Sound string         `json:"sound,omitempty"`
	Data  map[string]any `json:"data,omitempty"`
	// Options replace the message's delivery options as a whole.
	Options *providers.Options `json:"options,omitempty"`
	// IOSPayload and AndroidPayload replace the custom payloads of the
	// options in effect, the rest of them kept (POST /v1/send/push's
	// custom_payload).
	IOSPayload     map[string]any `json:"ios_payload,omitempty"`
	AndroidPayload map[string]any `json:"android_payload,omitempty"`
}

// IsZero reports whether o overrides nothing.
func (o Overrides) IsZero() bool {
	return o.Title == "" && o.Body == "" && o.Link == "" && o.Image == "" && o.Sound == "" && len(o.Data) == 0 &&
		o.Options == nil && o.IOSPayload == nil && o.AndroidPayload == nil
}

// EffectiveOptions returns the delivery options of a push of a message
// whose options are msg, with o applied.
func (o Overrides) EffectiveOptions(msg providers.Options) providers.Options {
	opts := msg
	if o.Options != nil {
		opts = *o.Options
	}
	if o.IOSPayload != nil {
		opts.IOSPayload = o.IOSPayload
	}
	if o.AndroidPayload != nil {
		opts.AndroidPayload = o.AndroidPayload
	}
	return opts
}

// Encode returns o as stored in deliveries.overrides ("" when empty).
func (o Overrides) Encode() (string, error) {
	if o.IsZero() {
		return "", nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return "", fmt.Errorf("overrides: %w", err)
	}
	return string(b), nil
}

// DecodeOverrides reads deliveries.overrides ("" = none).
func DecodeOverrides(s string) (Overrides, error) {
	var o Overrides
	if s == "" {
		return o, nil
	}
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return o, fmt.Errorf("delivery overrides: %w", err)
	}
	return o, nil
}

// Apply puts o into a message's Liquid fields and non-string custom data (as
// MessageFields returns them): a text replaces its field, and each custom
// data key replaces the message's value of that key.
func (o Overrides) Apply(fields, custom map[string]string) error {
	for name, v := range map[string]string{"title": o.Title, "body": o.Body, "link": o.Link, "image": o.Image, "sound": o.Sound} {
		if v != "" {
			fields[name] = v
		}
	}
	for k, v := range o.Data {
		delete(fields, "data."+k)
		delete(custom, k)
		if s, ok := v.(string); ok {
			fields["data."+k] = s
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("overrides data %q: %w", k, err)
		}
		custom[k] = string(b)
	}
	return nil
}

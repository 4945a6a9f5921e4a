package jobs

import (
	"encoding/json"
	"fmt"
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
}

// IsZero reports whether o overrides nothing.
func (o Overrides) IsZero() bool {
	return o.Title == "" && o.Body == "" && o.Link == "" && o.Image == "" && o.Sound == "" && len(o.Data) == 0
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

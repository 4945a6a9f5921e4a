package graph

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/graph/model"
	"github.com/heraldpush/herald/providers"
)

// maxPersonIDLen follows Customer.io's limit on customer ids.
const maxPersonIDLen = 150

// validPersonID checks an id: 1–150 characters, printable, no spaces or '/'.
func validPersonID(field, id string) error {
	if id == "" {
		return badInput(field, "person id is empty")
	}
	if !utf8.ValidString(id) || utf8.RuneCountInString(id) > maxPersonIDLen {
		return badInput(field, "person id must be valid UTF-8 of at most %d characters", maxPersonIDLen)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '/' {
			return badInput(field, "person id %q contains a space, '/' or a control character", id)
		}
	}
	return nil
}

// parseID parses a UUID argument.
func parseID(field, id string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.Nil, badInput(field, "%q is not a valid id (a UUID)", id)
	}
	return u, nil
}

// maxJSONBytes bounds a JSON argument (attributes, custom data, trigger
// data): Customer.io allows 100 KB per profile; a push payload is 4 KB.
const maxJSONBytes = 32 << 10

func encodeJSON(field string, m map[string]any) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", badInput(field, "not JSON-encodable: %v", err)
	}
	if len(b) > maxJSONBytes {
		return "", badInput(field, "is %d bytes of JSON, over the %d-byte limit", len(b), maxJSONBytes)
	}
	return string(b), nil
}

func decodeJSON(s string) map[string]any {
	m := map[string]any{}
	if s != "" {
		_ = json.Unmarshal([]byte(s), &m) // written by Herald from valid JSON
	}
	return m
}

func personModel(p clickhouse.Person) *model.Person {
	return &model.Person{ID: p.ID, Attributes: decodeJSON(p.Attributes), Unsubscribed: p.Unsubscribed, CreatedAt: p.CreatedAt.UTC()}
}

func deviceModel(d clickhouse.Device) *model.Device {
	return &model.Device{Token: d.Token, Platform: model.Platform(d.Platform), LastUsedAt: d.LastUsed.UTC(),
		Attributes: decodeJSON(d.Attributes), State: model.DeviceState(strings.ToUpper(d.State))}
}

func campaignModel(c clickhouse.Campaign) *model.Campaign {
	m := &model.Campaign{ID: c.ID.String(), Name: c.Name, CreatedAt: c.CreatedAt.UTC()}
	if c.GoalEvent != "" {
		m.ConversionGoal = &model.ConversionGoal{Event: c.GoalEvent, WindowHours: int(c.GoalWindowHours)}
	}
	return m
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func messageModel(m clickhouse.Message) *model.PushMessage {
	pm := &model.PushMessage{ID: m.ID.String(), Name: m.Name, Alias: optString(m.Alias), Title: m.Title, Body: m.Body,
		Link: optString(m.Link), Image: optString(m.Image), Sound: optString(m.Sound),
		Data: decodeJSON(m.Data), CreatedAt: m.CreatedAt.UTC()}
	// Stored by newMessage from valid options; unreadable ones show as the default.
	pm.Options, _ = providers.DecodeOptions(m.Options)
	if m.CampaignID != uuid.Nil {
		pm.CampaignID = m.CampaignID.String()
	}
	if m.Badge >= 0 {
		b := int(m.Badge)
		pm.Badge = &b
	}
	return pm
}

func deliveryModel(d clickhouse.Delivery, st clickhouse.DeliveryStatus) *model.Delivery {
	m := &model.Delivery{
		ID: d.ID.String(), Status: model.DeliveryStatus(st.Status), FailureReason: optString(st.FailureReason),
		Audience: model.Audience(d.Audience), PersonID: d.PersonID, MessageID: d.MessageID.String(),
		DevicesTargeted: st.DevicesTargeted, DevicesAttempted: st.DevicesAttempted,
		CreatedAt: d.CreatedAt.UTC(), SentAt: optTime(st.SentAt), DeliveredAt: optTime(st.DeliveredAt), OpenedAt: optTime(st.OpenedAt),
		ConvertedAt: optTime(st.ConvertedAt),
		Devices:     []*model.DeviceSend{}, Round: int(st.Round),
	}
	// Nothing recorded yet: a draft, or a scheduled send whose time is ahead, has not started.
	notStarted := st.Status == string(domain.DeliveryAttempted) && st.DevicesTargeted == 0 && st.Round == 0
	if d.Draft && notStarted {
		m.Status = model.DeliveryStatusDraft
	}
	if !d.SendAt.IsZero() {
		at := d.SendAt.UTC()
		m.SendAt = &at
		if notStarted && time.Now().Before(at) {
			m.Status = model.DeliveryStatusScheduled
		}
	}
	if d.CampaignID != uuid.Nil {
		m.CampaignID = d.CampaignID.String()
	}
	for _, ds := range st.Devices {
		m.Devices = append(m.Devices, &model.DeviceSend{
			Token: ds.Token, Platform: model.Platform(ds.Platform), Status: model.DeviceSendStatus(ds.Status),
			Attempts: ds.Attempts, LastError: optString(ds.LastError), ProviderMessageID: optString(ds.ProviderID),
			SentAt: optTime(ds.SentAt), DeliveredAt: optTime(ds.DeliveredAt), OpenedAt: optTime(ds.OpenedAt),
		})
	}
	return m
}

func strOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

package graph

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/jobs"
)

// MetricReport is what an app reports: a metric for the device token a
// delivery targeted. Workspace is empty for the unauthenticated REST
// endpoints (the delivery id alone identifies the delivery).
type MetricReport struct {
	Workspace  string
	DeliveryID string
	Metric     domain.Metric
	Token      string
	At         time.Time // zero = now
}

// ReportMetric records a delivered/opened/converted report exactly once: it
// counts only when the delivery targeted that token (else NOT_FOUND), and
// the event's identity (delivery, device, kind) makes a duplicate a no-op.
// An open implies delivered (the status SQL reads opened as delivered too).
func (r *Resolver) ReportMetric(ctx context.Context, m MetricReport) error {
	if m.Token == "" {
		return badInput("device_id", "the device token is empty")
	}
	if len(m.Token) > domain.MaxFCMTokenLen {
		return badInput("device_id", "the device token is over %d characters", domain.MaxFCMTokenLen)
	}
	m.Token = domain.CanonicalToken(m.Token)
	id, err := uuid.Parse(m.DeliveryID)
	if err != nil || id.Version() != 7 {
		return errNoTarget(m.Token) // never a delivery id
	}
	t, err := r.target(ctx, m.Workspace, id, m.Token)
	if err != nil {
		return err
	}
	at, err := domain.MetricTime(m.At, t.DeliveryCreated, time.Now())
	if err != nil {
		return badInput("timestamp", "%v", err)
	}
	e := clickhouse.Event{WorkspaceID: t.WorkspaceID, CampaignID: t.CampaignID, DeliveryID: id, Round: t.Round,
		DeviceIndex: t.DeviceIndex, DeliveryCreated: t.DeliveryCreated, At: at}
	switch m.Metric {
	case domain.MetricDelivered:
		e.Kind, e.Token = clickhouse.KindDelivered, m.Token
	case domain.MetricOpened:
		e.Kind, e.Token = clickhouse.KindOpened, m.Token
	case domain.MetricConverted:
		e.Kind, e.DeviceIndex = clickhouse.KindConverted, clickhouse.DeliveryLevel
	default:
		return badInput("event", "unknown metric %q", m.Metric)
	}
	if err := r.Events.Write(ctx, e); err != nil {
		return err
	}
	if e.Token != "" && r.Targets != nil {
		return r.Targets.MarkReporting(ctx, t.WorkspaceID, e.Token)
	}
	return nil
}

// errNoTarget is the one answer for a report that counts for nothing: its
// delivery does not exist, is another workspace's, or did not target the
// token. One answer for all, and the same queries for all (target), so that
// the unauthenticated endpoints do not tell which delivery ids exist.
func errNoTarget(token string) error {
	return &NotFoundError{What: "delivery targeting device", ID: token}
}

// target finds the device a delivery targeted with this token: from the
// Redis cache the deliver task fills, else from ClickHouse. A workspace, when
// given, must own the delivery.
func (r *Resolver) target(ctx context.Context, workspace string, id uuid.UUID, token string) (jobs.Target, error) {
	if r.Targets != nil {
		t, ok, err := r.Targets.Get(ctx, id, token)
		if err != nil {
			return t, err
		}
		// Another workspace's delivery takes the path of a missing one.
		if ok && (workspace == "" || t.WorkspaceID == workspace) {
			return t, nil
		}
	}
	var d clickhouse.Delivery
	var err error
	if workspace != "" {
		d, err = r.Store.Delivery(ctx, workspace, id)
	} else {
		d, err = r.Store.FindDelivery(ctx, id)
	}
	missing := errors.Is(err, clickhouse.ErrNotFound)
	if err != nil && !missing {
		return jobs.Target{}, err
	}
	// The device is looked up for a missing delivery too (in the
	// caller's workspace, or none), so both answers take the same queries.
	if missing {
		d = clickhouse.Delivery{WorkspaceID: workspace, ID: id}
	}
	round, idx, err := r.Store.TargetedDevice(ctx, d, token)
	if missing || errors.Is(err, clickhouse.ErrNotFound) {
		return jobs.Target{}, errNoTarget(token)
	}
	if err != nil {
		return jobs.Target{}, err
	}
	return jobs.Target{WorkspaceID: d.WorkspaceID, CampaignID: d.CampaignID, DeliveryCreated: d.CreatedAt, Round: round, DeviceIndex: idx}, nil
}

// TrackedEvent is a person's event (trackEvent, the Track API).
type TrackedEvent struct {
	Workspace string
	PersonID  string
	Name      string
	Data      map[string]any
	At        time.Time // zero = now
	ID        string    // idempotency key (a UUID); empty = new
}

// maxEventNameLen bounds event names.
const maxEventNameLen = 150

// TrackEvent records a person's event and applies conversion attribution:
// for each campaign whose goal is this event, the campaign's delivery to the
// person sent nearest before the event, within the goal window, becomes
// CONVERTED. A delivery converts once (the converted event's identity is
// the delivery), and one event converts at most one delivery per campaign.
func (r *Resolver) TrackEvent(ctx context.Context, e TrackedEvent) error {
	if err := validPersonID("input.personId", e.PersonID); err != nil {
		return err
	}
	name := strings.TrimSpace(e.Name)
	if name == "" || len(name) > maxEventNameLen {
		return badInput("input.name", "event name must be 1–%d characters", maxEventNameLen)
	}
	now := time.Now().UTC()
	at := e.At.UTC()
	if e.At.IsZero() {
		at = now
	}
	if err := checkTime("input.timestamp", at); err != nil {
		return err
	}
	if at.After(now.Add(domain.ClockSkew)) {
		return badInput("input.timestamp", "%v", domain.ErrTimeInFuture)
	}
	id := uuid.New()
	if e.ID != "" {
		var err error
		if id, err = parseID("input.id", e.ID); err != nil {
			return err
		}
	}
	data, err := encodeJSON("input.data", e.Data) // at most maxJSONBytes, as every JSON argument
	if err != nil {
		return err
	}
	if err := r.Store.PutPersonEvent(ctx, clickhouse.PersonEvent{WorkspaceID: e.Workspace, PersonID: e.PersonID, ID: id, Name: name, Data: data, At: at}); err != nil {
		return err
	}
	campaigns, err := r.Store.GoalCampaigns(ctx, e.Workspace, name)
	if err != nil {
		return err
	}
	var conversions []clickhouse.Event
	for _, c := range campaigns {
		d, ok, err := r.Store.NearestSentDelivery(ctx, e.Workspace, c.ID, e.PersonID, at, time.Duration(c.GoalWindowHours)*time.Hour)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		conversions = append(conversions, clickhouse.Event{WorkspaceID: e.Workspace, CampaignID: c.ID, DeliveryID: d.ID,
			DeviceIndex: clickhouse.DeliveryLevel, Kind: clickhouse.KindConverted, Reason: name,
			DeliveryCreated: d.CreatedAt, At: at})
	}
	return r.Events.Write(ctx, conversions...)
}

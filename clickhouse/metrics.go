package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// selectDeliveryAnyWorkspace: params created_at lower and upper bound (the
// UUIDv7 time ±2 s), id; columns workspace_id, campaign_id, message_id,
// person_id, audience, token, data, overrides. For the unauthenticated SDK
// endpoints, which know only the delivery id.
const selectDeliveryAnyWorkspace = `SELECT workspace_id, campaign_id, message_id, person_id, toString(audience), token, data, overrides
FROM deliveries FINAL
WHERE created_at = ? AND id = ?
LIMIT 1`

// FindDelivery reads a delivery by id alone; ErrNotFound if absent.
func (s *Store) FindDelivery(ctx context.Context, id uuid.UUID) (Delivery, error) {
	d := Delivery{ID: id}
	d.CreatedAt = DeliveryTime(id)
	err := s.conn.QueryRow(ctx, selectDeliveryAnyWorkspace, chTime(d.CreatedAt), id).
		Scan(&d.WorkspaceID, &d.CampaignID, &d.MessageID, &d.PersonID, &d.Audience, &d.Token, &d.Data, &d.Overrides)
	return d, rowErr("delivery", err)
}

// selectTargetedDevice: params workspace_id, campaign_id, delivery_created
// (the id's time), delivery_id, token; columns round, device_index of the
// newest round that targeted the token (its targeted event).
const selectTargetedDevice = `SELECT round, device_index FROM events
WHERE workspace_id = ? AND campaign_id = ? AND delivery_created = ? AND delivery_id = ? AND kind = 'targeted' AND token = ?
ORDER BY round DESC LIMIT 1`

// TargetedDevice finds the device index a delivery gave a token; ErrNotFound
// when the delivery never targeted it.
func (s *Store) TargetedDevice(ctx context.Context, d Delivery, token string) (round uint16, index uint16, err error) {
	err = s.conn.QueryRow(ctx, selectTargetedDevice, d.WorkspaceID, d.CampaignID, chTime(DeliveryTime(d.ID)), d.ID, token).Scan(&round, &index)
	return round, index, rowErr("targeted device", err)
}

// PersonEvent is something a person did (trackEvent).
type PersonEvent struct {
	WorkspaceID string
	PersonID    string
	ID          uuid.UUID
	Name        string
	Data        string
	At          time.Time
}

// insertPersonEvent: params workspace_id, person_id, id, name, data, at.
const insertPersonEvent = `INSERT INTO person_events (workspace_id, person_id, id, name, data, at)`

// PutPersonEvent records a person's event.
func (s *Store) PutPersonEvent(ctx context.Context, e PersonEvent) error {
	return s.insertOne(ctx, "person event", insertPersonEvent, e.WorkspaceID, e.PersonID, e.ID, e.Name, e.Data, e.At)
}

// selectGoalCampaigns: params workspace_id, goal_event; columns id,
// goal_window_hours of the campaigns whose conversion goal is that event.
const selectGoalCampaigns = `SELECT id, goal_window_hours FROM campaigns FINAL WHERE workspace_id = ? AND goal_event = ?`

// GoalCampaigns lists the campaigns converted by an event name.
func (s *Store) GoalCampaigns(ctx context.Context, workspaceID, event string) ([]Campaign, error) {
	rows, err := s.conn.Query(ctx, selectGoalCampaigns, workspaceID, event)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: select goal campaigns: %w", err)
	}
	defer rows.Close()
	var out []Campaign
	for rows.Next() {
		c := Campaign{WorkspaceID: workspaceID, GoalEvent: event}
		if err := rows.Scan(&c.ID, &c.GoalWindowHours); err != nil {
			return nil, fmt.Errorf("clickhouse: scan goal campaign: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// selectNearestSent: params workspace_id, campaign_id, workspace_id,
// campaign_id, person_id, created_at lower bound, created_at upper bound
// (also the events' delivery_created range), event time, window start;
// columns delivery_id, first_sent: the person's delivery of the campaign
// whose first SENT device is the latest one at or before the event and
// inside the goal window.
const selectNearestSent = `SELECT delivery_id, min(at) AS first_sent
FROM events
WHERE workspace_id = ? AND campaign_id = ? AND kind = 'sent'
  AND delivery_id IN (SELECT id FROM deliveries WHERE workspace_id = ? AND campaign_id = ? AND person_id = ? AND created_at >= ? AND created_at <= ?)
  AND delivery_created >= ? AND delivery_created <= ?
GROUP BY delivery_id
HAVING first_sent <= ? AND first_sent >= ?
ORDER BY first_sent DESC
LIMIT 1`

// NearestSentDelivery finds the delivery a goal event at `at` converts, by
// DESIGN.md's rule: the campaign's delivery to that person sent nearest
// before the event, within the window. ok is false when there is none.
func (s *Store) NearestSentDelivery(ctx context.Context, workspaceID string, campaignID uuid.UUID, personID string, at time.Time, window time.Duration) (d Delivery, ok bool, err error) {
	from := at.Add(-window)
	var first time.Time
	var id uuid.UUID
	lo, hi := from.Add(-time.Hour), at
	err = s.conn.QueryRow(ctx, selectNearestSent, workspaceID, campaignID, workspaceID, campaignID, personID,
		chTime(lo), chTime(hi), chTime(lo), chTime(hi), chTime(at), chTime(from)).Scan(&id, &first)
	if err != nil {
		if rowErr("", err) != nil && isNotFound(rowErr("", err)) {
			return d, false, nil
		}
		return d, false, fmt.Errorf("clickhouse: nearest sent delivery: %w", err)
	}
	return Delivery{WorkspaceID: workspaceID, ID: id, CampaignID: campaignID, PersonID: personID, CreatedAt: DeliveryTime(id)}, true, nil
}

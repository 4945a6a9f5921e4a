package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"
)

// Broadcast is one message to many people.
type Broadcast struct {
	WorkspaceID string
	ID          uuid.UUID
	MessageID   uuid.UUID
	Audience    string
	PersonIDs   []string // empty when AllPersons
	AllPersons  bool
	Data        string
	Overrides   string    // jobs.Overrides as JSON, for every delivery; '' = none
	SendAt      time.Time // when a scheduled broadcast fans out; zero = at once
	Total       uint64
	CreatedAt   time.Time
}

// FanoutTime is when the broadcast's deliveries are created (their ids'
// time): its send time when scheduled, else its creation.
func (b Broadcast) FanoutTime() time.Time {
	if b.SendAt.IsZero() {
		return b.CreatedAt
	}
	return b.SendAt
}

// insertBroadcast: params workspace_id, id, message_id, audience,
// person_ids, all_persons, data, overrides, send_at, total, created_at.
const insertBroadcast = `INSERT INTO broadcasts (workspace_id, id, message_id, audience, person_ids, all_persons, data, overrides, send_at, total, created_at)`

// CreateBroadcast records a broadcast.
func (s *Store) CreateBroadcast(ctx context.Context, b Broadcast) error {
	ids := b.PersonIDs
	if ids == nil {
		ids = []string{}
	}
	return s.insertOne(ctx, "broadcast", insertBroadcast, b.WorkspaceID, b.ID, b.MessageID, b.Audience, ids, b2u(b.AllPersons), b.Data, b.Overrides, epochIfZero(b.SendAt), b.Total, b.CreatedAt)
}

// selectBroadcast: params workspace_id, id; columns message_id, audience,
// person_ids, all_persons, data, overrides, send_at, total, created_at.
const selectBroadcast = `SELECT message_id, toString(audience), person_ids, all_persons, data, overrides, send_at, total, created_at
FROM broadcasts FINAL WHERE workspace_id = ? AND id = ?`

// Broadcast reads a broadcast; ErrNotFound if absent.
func (s *Store) Broadcast(ctx context.Context, workspaceID string, id uuid.UUID) (Broadcast, error) {
	b := Broadcast{WorkspaceID: workspaceID, ID: id}
	var all uint8
	err := s.conn.QueryRow(ctx, selectBroadcast, workspaceID, id).Scan(&b.MessageID, &b.Audience, &b.PersonIDs, &all, &b.Data, &b.Overrides, &b.SendAt, &b.Total, &b.CreatedAt)
	b.AllPersons, b.CreatedAt, b.SendAt = all == 1, b.CreatedAt.UTC(), zeroIfEpoch(b.SendAt)
	return b, rowErr("broadcast", err)
}

// countPersons: param workspace_id; column count of persons.
const countPersons = `SELECT uniqExact(id) FROM persons WHERE workspace_id = ?`

// CountPersons counts a workspace's persons.
func (s *Store) CountPersons(ctx context.Context, workspaceID string) (uint64, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, countPersons, workspaceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("clickhouse: count persons: %w", err)
	}
	return n, nil
}

// CreateDeliveries records many deliveries in one insert. Writing the same
// delivery again (a re-run fan-out) writes an identical row, which the
// table's sorting key collapses.
func (s *Store) CreateDeliveries(ctx context.Context, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, insertDelivery)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare deliveries: %w", err)
	}
	defer batch.Close()
	for _, d := range ds {
		if err := batch.Append(d.WorkspaceID, d.ID, d.CampaignID, d.MessageID, d.PersonID, d.Audience, d.Token, d.Data, d.Overrides, d.chSendAt(), b2u(d.SendToUnsubscribed), b2u(d.Draft)); err != nil {
			return fmt.Errorf("clickhouse: append delivery: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert deliveries: %w", err)
	}
	return nil
}

// selectCampaignPage: params workspace_id, cursor flag, cursor created_at
// (twice), cursor id, limit; columns id, name, goal_event,
// goal_window_hours, created_at — newest first, strictly after the cursor.
const selectCampaignPage = `SELECT id, name, goal_event, goal_window_hours, created_at
FROM campaigns FINAL
WHERE workspace_id = ? AND (? = 0 OR created_at < ? OR (created_at = ? AND id < ?))
ORDER BY created_at DESC, id DESC
LIMIT ?`

// Campaigns pages a workspace's campaigns, newest first; the cursor is the
// last row's (created_at, id).
func (s *Store) Campaigns(ctx context.Context, workspaceID string, after *LogCursor, limit int) ([]Campaign, []LogCursor, error) {
	var flag uint8
	at := time.Unix(0, 0).UTC()
	id := uuid.Nil
	if after != nil {
		flag, at, id = 1, after.CreatedAt, after.ID
	}
	rows, err := s.conn.Query(ctx, selectCampaignPage, workspaceID, flag, chTime(at), chTime(at), id, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("clickhouse: campaigns: %w", err)
	}
	defer rows.Close()
	var out []Campaign
	var cursors []LogCursor
	for rows.Next() {
		c := Campaign{WorkspaceID: workspaceID}
		if err := rows.Scan(&c.ID, &c.Name, &c.GoalEvent, &c.GoalWindowHours, &c.CreatedAt); err != nil {
			return nil, nil, fmt.Errorf("clickhouse: scan campaign: %w", err)
		}
		c.CreatedAt = c.CreatedAt.UTC()
		out = append(out, c)
		cursors = append(cursors, LogCursor{CreatedAt: c.CreatedAt, ID: c.ID})
	}
	return out, cursors, rows.Err()
}

// selectExistingDeliveries: params workspace_id, created_at, ids
// (GroupSet); column id of those already written.
const selectExistingDeliveries = `SELECT DISTINCT id FROM deliveries WHERE workspace_id = ? AND created_at = ? AND id IN ?`

// ExistingDeliveries returns which of ids (all created at the same second,
// as a broadcast's are) are already recorded, so a re-run fan-out batch
// writes each delivery, and counts it in campaign_created, once.
func (s *Store) ExistingDeliveries(ctx context.Context, workspaceID string, created time.Time, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	out := map[uuid.UUID]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	set := make([]any, len(ids))
	for i, id := range ids {
		set[i] = id
	}
	rows, err := s.conn.Query(ctx, selectExistingDeliveries, workspaceID, chTime(created), clickhouse.GroupSet{Value: set})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: existing deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("clickhouse: scan existing delivery: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// selectPersonsPage: params workspace_id, after, limit (the bound's
// listing), workspace_id, after (the page); columns id, attributes,
// unsubscribed, created_at, n, in id order. The bound is the largest of
// the next limit person rows in key order, read without FINAL (so that
// ClickHouse reads in order and stops: with DISTINCT or FINAL it reads
// every row after after, which made a broadcast's fan-out quadratic in
// the workspace's size), and n their number; the page is the persons up to
// it, each at its newest version (FINAL). Rows of one person in several
// parts make a page shorter than limit, never wrong. Blocks of limit rows
// (the default is 65,409) keep the ordered reads from reading far ahead.
const selectPersonsPage = `WITH (SELECT (max(id), count()) FROM (SELECT id FROM persons WHERE workspace_id = ? AND id > ? ORDER BY id LIMIT ?)) AS bound
SELECT id, attributes, unsubscribed, created_at, bound.2 AS n FROM persons FINAL
WHERE workspace_id = ? AND id > ? AND id <= bound.1
ORDER BY id
SETTINGS max_block_size = %d`

// PersonsPage reads the next page of a workspace's persons in id order,
// after after (exclusive): a broadcast to everyone reads each batch's
// people with this one query. more says a next page may hold persons; it
// starts after the last person of this one. A page may hold fewer than
// limit persons (a person written more than once counts once).
func (s *Store) PersonsPage(ctx context.Context, workspaceID, after string, limit int) (persons []Person, more bool, err error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf(selectPersonsPage, max(limit, 256)), workspaceID, after, limit, workspaceID, after)
	if err != nil {
		return nil, false, fmt.Errorf("clickhouse: persons page: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p := Person{WorkspaceID: workspaceID}
		var unsub uint8
		var n uint64
		if err := rows.Scan(&p.ID, &p.Attributes, &unsub, &p.CreatedAt, &n); err != nil {
			return nil, false, fmt.Errorf("clickhouse: scan person: %w", err)
		}
		p.Unsubscribed = unsub == 1
		persons = append(persons, p)
		more = n == uint64(limit)
	}
	return persons, more, rows.Err()
}

// selectPersonsByIDs: params workspace_id, ids (GroupSet); columns id,
// attributes, unsubscribed, created_at.
const selectPersonsByIDs = `SELECT id, attributes, unsubscribed, created_at FROM persons FINAL WHERE workspace_id = ? AND id IN ?`

// PersonsByIDs reads many persons at once (a broadcast batch); absent ids
// are left out.
func (s *Store) PersonsByIDs(ctx context.Context, workspaceID string, ids []string) (map[string]Person, error) {
	out := map[string]Person{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.conn.Query(ctx, selectPersonsByIDs, workspaceID, clickhouse.GroupSet{Value: anySlice(ids)})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: persons by ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p := Person{WorkspaceID: workspaceID}
		var unsub uint8
		if err := rows.Scan(&p.ID, &p.Attributes, &unsub, &p.CreatedAt); err != nil {
			return nil, fmt.Errorf("clickhouse: scan person: %w", err)
		}
		p.Unsubscribed = unsub == 1
		out[p.ID] = p
	}
	return out, rows.Err()
}

// selectDevicesByPersons: params workspace_id, person ids (GroupSet);
// columns person_id, token, platform, last_used, attributes, state of the
// devices that are not removed.
const selectDevicesByPersons = `SELECT person_id, token, toString(platform), last_used, attributes, toString(state)
FROM devices FINAL
WHERE workspace_id = ? AND person_id IN ? AND removed = 0`

// DevicesByPersons reads the current devices of many persons at once.
func (s *Store) DevicesByPersons(ctx context.Context, workspaceID string, ids []string) (map[string][]Device, error) {
	out := map[string][]Device{}
	if len(ids) == 0 {
		return out, nil
	}
	return s.scanPersonDevices(ctx, workspaceID, selectDevicesByPersons, workspaceID, clickhouse.GroupSet{Value: anySlice(ids)})
}

// selectNewestDevices: params workspace_id, person ids (GroupSet), limit
// per person; columns as selectDevicesByPersons, each person's newest
// last_used first (as selectDevices), at most limit per person.
const selectNewestDevices = `SELECT person_id, token, toString(platform), last_used, attributes, toString(state)
FROM devices FINAL
WHERE workspace_id = ? AND person_id IN ? AND removed = 0
ORDER BY person_id, last_used DESC, token
LIMIT ? BY person_id`

// NewestDevices reads the current devices of many persons at once (one
// GraphQL request's Person.devices), at most perPerson each, newest first.
func (s *Store) NewestDevices(ctx context.Context, workspaceID string, ids []string, perPerson int) (map[string][]Device, error) {
	if len(ids) == 0 {
		return map[string][]Device{}, nil
	}
	return s.scanPersonDevices(ctx, workspaceID, selectNewestDevices, workspaceID, clickhouse.GroupSet{Value: anySlice(ids)}, perPerson)
}

// scanPersonDevices runs a query whose columns are selectDevicesByPersons'
// and groups the devices by person, in the query's order.
func (s *Store) scanPersonDevices(ctx context.Context, workspaceID, query string, args ...any) (map[string][]Device, error) {
	out := map[string][]Device{}
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: devices by persons: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		d := Device{WorkspaceID: workspaceID}
		if err := rows.Scan(&d.PersonID, &d.Token, &d.Platform, &d.LastUsed, &d.Attributes, &d.State); err != nil {
			return nil, fmt.Errorf("clickhouse: scan device: %w", err)
		}
		out[d.PersonID] = append(out[d.PersonID], d)
	}
	return out, rows.Err()
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

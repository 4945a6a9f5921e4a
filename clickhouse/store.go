package clickhouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// ErrNotFound is returned when a row does not exist (in this workspace).
var ErrNotFound = errors.New("not found")

// Store reads and writes Herald's entities. It is safe for concurrent use.
type Store struct {
	conn driver.Conn // gated: reads go through the context's Gate (gate.go)
	raw  driver.Conn

	pointSettings atomic.Pointer[ch.Settings] // pointRead's, once looked up
}

// NewStore returns a Store over an open connection.
func NewStore(conn driver.Conn) *Store {
	return &Store{conn: gatedConn{conn}, raw: conn}
}

// pointReadSettings speed up reading one delivery's rows (its events, its
// deliveries row), which find their few granules by the primary key:
// ClickHouse 26.x loads every part's column statistics to order a query's
// conditions first (use_statistics; about 2 ms of the 8 here, for a choice
// the primary key has already made), and spreads the granules over two
// threads, which costs more to start than the reading. Measured on the
// analytics benchmark's data (bench/analytics, README): Status 9.1 -> 7.3
// ms, the deliveries row 11.3 -> 6.7 ms with reading without FINAL.
var pointReadSettings = ch.Settings{"use_statistics": 0, "max_threads": 1}

// pointRead returns ctx with pointReadSettings for a read of one
// delivery's rows, those the server knows (use_statistics is new in 26.x;
// an unknown setting fails a query), looked up on first use (again after
// a failed lookup, which leaves the read as it was: slower, not wrong).
func (s *Store) pointRead(ctx context.Context) context.Context {
	known := s.pointSettings.Load()
	if known == nil {
		known = s.lookUpPointSettings(ctx)
	}
	if known == nil || len(*known) == 0 {
		return ctx
	}
	return ch.Context(ctx, ch.WithSettings(*known))
}

// lookUpPointSettings keeps the pointReadSettings that system.settings
// lists; nil when the lookup fails. It reads on the raw connection: a
// lookup once per Store, not one of the request's queries that its Gate
// bounds and counts.
func (s *Store) lookUpPointSettings(ctx context.Context) *ch.Settings {
	names := make([]string, 0, len(pointReadSettings))
	for name := range pointReadSettings {
		names = append(names, name)
	}
	rows, err := s.raw.Query(ctx, `SELECT name FROM system.settings WHERE name IN ?`, names)
	if err != nil {
		return nil
	}
	defer rows.Close()
	known := ch.Settings{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil
		}
		known[name] = pointReadSettings[name]
	}
	if rows.Err() != nil {
		return nil
	}
	s.pointSettings.Store(&known)
	return &known
}

// Conn returns the underlying connection (for tests and the event writer).
func (s *Store) Conn() driver.Conn { return s.raw }

// now is the updated_at of a new row version: the newest one wins.
func now() time.Time { return time.Now().UTC() }

// Workspace is a tenant; KeyHash is the SHA-256 hex of its API key,
// WriteKeyHash that of its Data Pipelines write key ("" when it has none).
type Workspace struct {
	ID           string
	Name         string
	KeyHash      string
	SiteID       string
	WriteKeyHash string
	CreatedAt    time.Time
}

// insertWorkspace: params id, name, key_hash, site_id, write_key_hash,
// created_at, updated_at.
const insertWorkspace = `INSERT INTO workspaces (id, name, key_hash, site_id, write_key_hash, created_at, updated_at)`

// CreateWorkspace records a workspace (or a new version of one).
func (s *Store) CreateWorkspace(ctx context.Context, w Workspace) error {
	return s.insertOne(ctx, "workspace", insertWorkspace, w.ID, w.Name, w.KeyHash, w.SiteID, w.WriteKeyHash, w.CreatedAt, now())
}

// selectWorkspaceByKey: param key_hash; columns id, name, key_hash, site_id, created_at.
const selectWorkspaceByKey = `SELECT id, name, key_hash, site_id, created_at FROM workspaces FINAL WHERE key_hash = ? LIMIT 1`

// WorkspaceByKeyHash finds the workspace of an API key hash.
func (s *Store) WorkspaceByKeyHash(ctx context.Context, hash string) (Workspace, error) {
	var w Workspace
	err := s.conn.QueryRow(ctx, selectWorkspaceByKey, hash).Scan(&w.ID, &w.Name, &w.KeyHash, &w.SiteID, &w.CreatedAt)
	return w, rowErr("workspace", err)
}

// selectWorkspaceBySiteID: param site_id; columns id, name, key_hash, site_id, created_at.
const selectWorkspaceBySiteID = `SELECT id, name, key_hash, site_id, created_at FROM workspaces FINAL WHERE site_id = ? LIMIT 1`

// WorkspaceBySiteID finds the workspace of a Track API site id; ErrNotFound
// when none has it. The caller still checks the API key against KeyHash.
func (s *Store) WorkspaceBySiteID(ctx context.Context, siteID string) (Workspace, error) {
	var w Workspace
	err := s.conn.QueryRow(ctx, selectWorkspaceBySiteID, siteID).Scan(&w.ID, &w.Name, &w.KeyHash, &w.SiteID, &w.CreatedAt)
	return w, rowErr("workspace", err)
}

// Person is a customer profile; Attributes is a JSON object.
type Person struct {
	WorkspaceID  string
	ID           string
	Attributes   string
	Unsubscribed bool
	CreatedAt    time.Time
}

// insertPerson: params workspace_id, id, attributes, unsubscribed, created_at, updated_at.
const insertPerson = `INSERT INTO persons (workspace_id, id, attributes, unsubscribed, created_at, updated_at)`

// PutPerson writes a new version of a person.
func (s *Store) PutPerson(ctx context.Context, p Person) error {
	return s.insertOne(ctx, "person", insertPerson, p.WorkspaceID, p.ID, p.Attributes, b2u(p.Unsubscribed), p.CreatedAt, now())
}

// selectPerson: params workspace_id, id; columns attributes, unsubscribed, created_at.
const selectPerson = `SELECT attributes, unsubscribed, created_at FROM persons FINAL WHERE workspace_id = ? AND id = ?`

// selectPersonsByEmail: params workspace_id, email, workspace_id, email;
// column id of the persons whose email attribute is email now (ignoring
// ASCII case, as person_emails keeps it): person_emails finds who ever
// had it, and the persons' current versions decide.
const selectPersonsByEmail = `SELECT id FROM persons FINAL
WHERE workspace_id = ? AND id IN (SELECT person_id FROM person_emails WHERE workspace_id = ? AND email = lower(?))
  AND lower(JSONExtractString(attributes, 'email')) = lower(?)
ORDER BY id LIMIT 10`

// PersonIDsByEmail returns the ids of the workspace's persons whose email
// attribute is email (ignoring case), at most 10, in one query.
func (s *Store) PersonIDsByEmail(ctx context.Context, workspaceID, email string) ([]string, error) {
	rows, err := s.conn.Query(ctx, selectPersonsByEmail, workspaceID, workspaceID, email, email)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: persons by email: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("clickhouse: scan persons by email: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: persons by email: %w", err)
	}
	return ids, nil
}

// Person reads a person; ErrNotFound if absent.
func (s *Store) Person(ctx context.Context, workspaceID, id string) (Person, error) {
	p := Person{WorkspaceID: workspaceID, ID: id}
	var unsub uint8
	err := s.conn.QueryRow(ctx, selectPerson, workspaceID, id).Scan(&p.Attributes, &unsub, &p.CreatedAt)
	p.Unsubscribed = unsub == 1
	return p, rowErr("person", err)
}

// Device is a person's push token with its send state ("ok", "bounced", "suppressed").
type Device struct {
	WorkspaceID string
	PersonID    string
	Token       string
	Platform    string // IOS or ANDROID
	LastUsed    time.Time
	Attributes  string
	State       string
	Removed     bool
}

// insertDevice: params workspace_id, person_id, token, platform, last_used,
// attributes, state, removed, updated_at.
const insertDevice = `INSERT INTO devices (workspace_id, person_id, token, platform, last_used, attributes, state, removed, updated_at)`

// PutDevice writes a new version of a device.
func (s *Store) PutDevice(ctx context.Context, d Device) error {
	return s.insertOne(ctx, "device", insertDevice, d.WorkspaceID, d.PersonID, d.Token, d.Platform, d.LastUsed, d.Attributes, d.State, b2u(d.Removed), now())
}

// selectDevices: params workspace_id, person_id; columns token, platform,
// last_used, attributes, state of the person's devices that are not removed,
// newest last_used first.
const selectDevices = `SELECT token, toString(platform), last_used, attributes, toString(state)
FROM devices FINAL
WHERE workspace_id = ? AND person_id = ? AND removed = 0
ORDER BY last_used DESC, token`

// Devices lists a person's current devices.
func (s *Store) Devices(ctx context.Context, workspaceID, personID string) ([]Device, error) {
	rows, err := s.conn.Query(ctx, selectDevices, workspaceID, personID)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: select devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d := Device{WorkspaceID: workspaceID, PersonID: personID}
		if err := rows.Scan(&d.Token, &d.Platform, &d.LastUsed, &d.Attributes, &d.State); err != nil {
			return nil, fmt.Errorf("clickhouse: scan device: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// selectDevice: params workspace_id, person_id, token; columns platform,
// last_used, attributes, state, removed.
const selectDevice = `SELECT toString(platform), last_used, attributes, toString(state), removed
FROM devices FINAL WHERE workspace_id = ? AND person_id = ? AND token = ?`

// Device reads one device, removed or not; ErrNotFound if it never existed.
func (s *Store) Device(ctx context.Context, workspaceID, personID, token string) (Device, error) {
	d := Device{WorkspaceID: workspaceID, PersonID: personID, Token: token}
	var removed uint8
	err := s.conn.QueryRow(ctx, selectDevice, workspaceID, personID, token).Scan(&d.Platform, &d.LastUsed, &d.Attributes, &d.State, &removed)
	d.Removed = removed == 1
	return d, rowErr("device", err)
}

// insertCredentials: params workspace_id, platform, data, updated_at.
const insertCredentials = `INSERT INTO push_credentials (workspace_id, platform, data, updated_at)`

// PutCredentials stores a platform's credentials JSON for a workspace.
func (s *Store) PutCredentials(ctx context.Context, workspaceID, platform, data string) error {
	return s.insertOne(ctx, "credentials", insertCredentials, workspaceID, platform, data, now())
}

// Credentials is one platform's stored credentials; Version changes on every update.
type Credentials struct {
	Platform string
	Data     string
	Version  uint64
}

// selectCredentials: param workspace_id; columns platform, data, version
// (updated_at in microseconds).
const selectCredentials = `SELECT toString(platform), data, toUInt64(toUnixTimestamp64Micro(updated_at)) FROM push_credentials FINAL WHERE workspace_id = ?`

// Credentials returns the workspace's credentials by platform.
func (s *Store) Credentials(ctx context.Context, workspaceID string) (map[string]Credentials, error) {
	rows, err := s.conn.Query(ctx, selectCredentials, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: select credentials: %w", err)
	}
	defer rows.Close()
	out := map[string]Credentials{}
	for rows.Next() {
		var c Credentials
		if err := rows.Scan(&c.Platform, &c.Data, &c.Version); err != nil {
			return nil, fmt.Errorf("clickhouse: scan credentials: %w", err)
		}
		out[c.Platform] = c
	}
	return out, rows.Err()
}

// Campaign is a named group of messages with an optional conversion goal.
type Campaign struct {
	WorkspaceID     string
	ID              uuid.UUID
	Name            string
	GoalEvent       string
	GoalWindowHours uint32
	CreatedAt       time.Time
}

// insertCampaign: params workspace_id, id, name, goal_event, goal_window_hours, created_at.
const insertCampaign = `INSERT INTO campaigns (workspace_id, id, name, goal_event, goal_window_hours, created_at)`

// CreateCampaign records a campaign.
func (s *Store) CreateCampaign(ctx context.Context, c Campaign) error {
	return s.insertOne(ctx, "campaign", insertCampaign, c.WorkspaceID, c.ID, c.Name, c.GoalEvent, c.GoalWindowHours, c.CreatedAt)
}

// selectCampaign: params workspace_id, id; columns name, goal_event, goal_window_hours, created_at.
const selectCampaign = `SELECT name, goal_event, goal_window_hours, created_at FROM campaigns FINAL WHERE workspace_id = ? AND id = ?`

// Campaign reads a campaign; ErrNotFound if absent.
func (s *Store) Campaign(ctx context.Context, workspaceID string, id uuid.UUID) (Campaign, error) {
	c := Campaign{WorkspaceID: workspaceID, ID: id}
	err := s.conn.QueryRow(ctx, selectCampaign, workspaceID, id).Scan(&c.Name, &c.GoalEvent, &c.GoalWindowHours, &c.CreatedAt)
	return c, rowErr("campaign", err)
}

// Message is a push template; CampaignID is uuid.Nil outside a campaign and
// Badge is -1 when unset. Data is a JSON object.
type Message struct {
	WorkspaceID string
	ID          uuid.UUID
	CampaignID  uuid.UUID
	Name        string
	Alias       string // the transactional_message_id that names it besides its id; '' = none
	Title       string
	Body        string
	Link        string
	Image       string
	Sound       string
	Badge       int32
	Data        string
	Options     string // providers.Options as JSON; '' = the default
	CreatedAt   time.Time
}

// insertMessage: params workspace_id, id, campaign_id, name, alias, title,
// body, link, image, sound, badge, data, options, created_at.
const insertMessage = `INSERT INTO push_messages (workspace_id, id, campaign_id, name, alias, title, body, link, image, sound, badge, data, options, created_at)`

// CreateMessage records a push template.
func (s *Store) CreateMessage(ctx context.Context, m Message) error {
	return s.insertOne(ctx, "message", insertMessage, m.WorkspaceID, m.ID, m.CampaignID, m.Name, m.Alias, m.Title, m.Body, m.Link, m.Image, m.Sound, m.Badge, m.Data, m.Options, m.CreatedAt)
}

// selectMessage: params workspace_id, id; columns campaign_id, name, alias,
// title, body, link, image, sound, badge, data, options, created_at.
const selectMessage = `SELECT campaign_id, name, alias, title, body, link, image, sound, badge, data, options, created_at
FROM push_messages FINAL WHERE workspace_id = ? AND id = ?`

// Message reads a push template; ErrNotFound if absent.
func (s *Store) Message(ctx context.Context, workspaceID string, id uuid.UUID) (Message, error) {
	m := Message{WorkspaceID: workspaceID, ID: id}
	err := s.conn.QueryRow(ctx, selectMessage, workspaceID, id).Scan(&m.CampaignID, &m.Name, &m.Alias, &m.Title, &m.Body, &m.Link, &m.Image, &m.Sound, &m.Badge, &m.Data, &m.Options, &m.CreatedAt)
	return m, rowErr("message", err)
}

// selectMessagePage: params workspace_id, campaign flag (0 = any),
// campaign_id, cursor flag (0 = first page), created_at, created_at, id,
// limit; the columns of selectMessage with id first. It reads the
// workspace's rows of push_messages (its key's prefix), newest first.
const selectMessagePage = `SELECT id, campaign_id, name, alias, title, body, link, image, sound, badge, data, options, created_at
FROM push_messages FINAL
WHERE workspace_id = ? AND (? = 0 OR campaign_id = ?) AND (? = 0 OR created_at < ? OR (created_at = ? AND id < ?))
ORDER BY created_at DESC, id DESC
LIMIT ?`

// Messages pages a workspace's push templates (of one campaign unless
// campaignID is uuid.Nil), newest first; the cursor is the last row's
// (created_at, id).
func (s *Store) Messages(ctx context.Context, workspaceID string, campaignID uuid.UUID, after *LogCursor, limit int) ([]Message, []LogCursor, error) {
	var byCampaign, flag uint8
	if campaignID != uuid.Nil {
		byCampaign = 1
	}
	at := time.Unix(0, 0).UTC()
	id := uuid.Nil
	if after != nil {
		flag, at, id = 1, after.CreatedAt, after.ID
	}
	rows, err := s.conn.Query(ctx, selectMessagePage, workspaceID, byCampaign, campaignID, flag, chTime(at), chTime(at), id, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("clickhouse: messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	var cursors []LogCursor
	for rows.Next() {
		m := Message{WorkspaceID: workspaceID}
		if err := rows.Scan(&m.ID, &m.CampaignID, &m.Name, &m.Alias, &m.Title, &m.Body, &m.Link, &m.Image, &m.Sound, &m.Badge, &m.Data, &m.Options, &m.CreatedAt); err != nil {
			return nil, nil, fmt.Errorf("clickhouse: scan message: %w", err)
		}
		m.CreatedAt = m.CreatedAt.UTC()
		out = append(out, m)
		cursors = append(cursors, LogCursor{CreatedAt: m.CreatedAt, ID: m.ID})
	}
	return out, cursors, rows.Err()
}

// selectMessageByAlias: params workspace_id, alias; column id of the
// newest message with that alias.
const selectMessageByAlias = `SELECT id FROM push_messages FINAL WHERE workspace_id = ? AND alias = ? ORDER BY created_at DESC LIMIT 1`

// MessageIDByAlias finds the message a workspace calls alias (the newest,
// should two have it); ErrNotFound if none.
func (s *Store) MessageIDByAlias(ctx context.Context, workspaceID, alias string) (uuid.UUID, error) {
	var id uuid.UUID
	err := s.conn.QueryRow(ctx, selectMessageByAlias, workspaceID, alias).Scan(&id)
	return id, rowErr("message", err)
}

// Delivery is one message to one person. Its ID is a UUIDv7 and CreatedAt
// is the id's millisecond time (DeliveryTime): ClickHouse derives every
// stored creation time from the id.
type Delivery struct {
	WorkspaceID string
	ID          uuid.UUID
	CampaignID  uuid.UUID
	MessageID   uuid.UUID
	PersonID    string
	Audience    string // ALL_DEVICES, LAST_USED, CUSTOM_TOKEN
	Token       string // the CUSTOM_TOKEN target
	Data        string // JSON object bound as event.* / trigger.*
	// Overrides replaces fields of the message for this delivery (a JSON
	// object written by jobs.Overrides; '' = none), from POST /v1/send/push.
	Overrides string
	// SendAt is when a scheduled send is due; zero for a send at once.
	SendAt time.Time
	// SendToUnsubscribed sends even if the person is unsubscribed.
	SendToUnsubscribed bool
	// Draft holds the send until sendDraft releases it (queue_draft).
	Draft     bool
	CreatedAt time.Time
}

// chSendAt is SendAt as stored (epochIfZero).
func (d Delivery) chSendAt() time.Time { return epochIfZero(d.SendAt) }

// epochIfZero is an optional time as stored: the epoch (a DateTime64
// column's default) for zero.
func epochIfZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC()
}

// zeroIfEpoch reads an optional time back: zero for the epoch.
func zeroIfEpoch(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return t.UTC()
}

// DeliveryTime is the creation time encoded in a UUIDv7 delivery id (whole
// milliseconds, UTC), as ClickHouse's UUIDv7ToDateTime reads it.
func DeliveryTime(id uuid.UUID) time.Time {
	sec, nsec := id.Time().UnixTime()
	return time.Unix(sec, nsec).UTC().Truncate(time.Millisecond)
}

// insertDelivery: params workspace_id, id, campaign_id, message_id,
// person_id, audience, token, data, overrides, send_at,
// send_to_unsubscribed, draft (created_at comes from the id).
const insertDelivery = `INSERT INTO deliveries (workspace_id, id, campaign_id, message_id, person_id, audience, token, data, overrides, send_at, send_to_unsubscribed, draft)`

// CreateDelivery records a delivery.
func (s *Store) CreateDelivery(ctx context.Context, d Delivery) error {
	return s.insertOne(ctx, "delivery", insertDelivery, d.WorkspaceID, d.ID, d.CampaignID, d.MessageID, d.PersonID, d.Audience, d.Token, d.Data, d.Overrides, d.chSendAt(), b2u(d.SendToUnsubscribed), b2u(d.Draft))
}

// selectDelivery: params workspace_id, created_at (the id's time, so the
// primary key finds the row), id; columns campaign_id, message_id,
// person_id, audience, token, data, overrides, created_at.
//
// A delivery is written once (CreateDelivery); a second row is a retried
// insert of the same one, so any row will do: LIMIT 1, not FINAL, which
// costs a third of the read.
const selectDelivery = `SELECT campaign_id, message_id, person_id, toString(audience), token, data, overrides, send_at, send_to_unsubscribed, draft, created_at
FROM deliveries
WHERE workspace_id = ? AND created_at = ? AND id = ?
LIMIT 1`

// Delivery reads a delivery; ErrNotFound if absent.
func (s *Store) Delivery(ctx context.Context, workspaceID string, id uuid.UUID) (Delivery, error) {
	d := Delivery{WorkspaceID: workspaceID, ID: id}
	var unsub, draft uint8
	err := s.conn.QueryRow(s.pointRead(ctx), selectDelivery, workspaceID, chTime(DeliveryTime(id)), id).
		Scan(&d.CampaignID, &d.MessageID, &d.PersonID, &d.Audience, &d.Token, &d.Data, &d.Overrides, &d.SendAt, &unsub, &draft, &d.CreatedAt)
	d.CreatedAt, d.SendAt, d.SendToUnsubscribed, d.Draft = d.CreatedAt.UTC(), zeroIfEpoch(d.SendAt), unsub == 1, draft == 1
	return d, rowErr("delivery", err)
}

// DeliveryDevice is one device targeted by a delivery round.
type DeliveryDevice struct {
	Index    uint16
	Token    string
	Platform string
}

func (s *Store) insertOne(ctx context.Context, what, stmt string, args ...any) error {
	batch, err := s.conn.PrepareBatch(ctx, stmt)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare %s: %w", what, err)
	}
	defer batch.Close()
	if err := batch.Append(args...); err != nil {
		return fmt.Errorf("clickhouse: append %s: %w", what, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %s: %w", what, err)
	}
	return nil
}

func rowErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("clickhouse: select %s: %w", what, err)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// deletePerson: params workspace_id, id. A lightweight delete: every version
// of the person's row is masked at once, so every query that reads persons
// (FINAL or not) stops seeing it without a tombstone column to filter on. A
// later identify creates the person anew.
const deletePerson = `DELETE FROM persons WHERE workspace_id = ? AND id = ?`

// DeletePerson removes a person's row (not their devices, deliveries or
// events: the caller marks the devices removed).
func (s *Store) DeletePerson(ctx context.Context, workspaceID, id string) error {
	if err := s.conn.Exec(ctx, deletePerson, workspaceID, id); err != nil {
		return fmt.Errorf("clickhouse: delete person: %w", err)
	}
	return nil
}

-- 0001_init: Herald's tables. Each statement ends with a line holding only ";".
-- ClickHouse holds all of Herald's data; the mutable entities (workspaces,
-- persons, devices, credentials) are ReplacingMergeTree tables whose newest
-- version wins (read them with FINAL). Events are append-only; their sorting
-- key is the event's identity, so a duplicate row collapses on merge and every
-- query aggregates idempotently (max/uniqExact, never count() of raw rows).

-- workspaces: one row per workspace (newest version wins). key_hash is the
-- SHA-256 hex of the API key; the key itself is never stored.
CREATE TABLE IF NOT EXISTS workspaces (
    id String,
    name String,
    key_hash String,
    site_id String,
    created_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY id
;
-- persons: one row per person version; key (workspace_id, id).
CREATE TABLE IF NOT EXISTS persons (
    workspace_id String,
    id String,
    attributes String,
    unsubscribed UInt8,
    created_at DateTime,
    updated_us UInt64
) ENGINE = ReplacingMergeTree(updated_us)
ORDER BY (workspace_id, id)
;
-- devices: one row per device version; key (workspace_id, person_id, token).
-- state is the send state (ok, bounced, suppressed); removed = 1 once the
-- device was removed (by the API or an Unregistered answer).
CREATE TABLE IF NOT EXISTS devices (
    workspace_id String,
    person_id String,
    token String,
    platform Enum8('IOS' = 1, 'ANDROID' = 2),
    last_used DateTime,
    attributes String,
    state Enum8('ok' = 0, 'bounced' = 1, 'suppressed' = 2),
    removed UInt8,
    updated_us UInt64
) ENGINE = ReplacingMergeTree(updated_us)
ORDER BY (workspace_id, person_id, token)
;
-- push_credentials: one row per workspace and platform (newest wins); data is
-- the credentials JSON.
CREATE TABLE IF NOT EXISTS push_credentials (
    workspace_id String,
    platform Enum8('IOS' = 1, 'ANDROID' = 2),
    data String,
    updated_us UInt64
) ENGINE = ReplacingMergeTree(updated_us)
ORDER BY (workspace_id, platform)
;
-- campaigns: one row per campaign. goal_event is empty when there is no
-- conversion goal.
CREATE TABLE IF NOT EXISTS campaigns (
    workspace_id String,
    id UUID,
    name String,
    goal_event String,
    goal_window_hours UInt32,
    created_at DateTime,
    created_us UInt64
) ENGINE = ReplacingMergeTree(created_us)
ORDER BY (workspace_id, id)
;
-- push_messages: one row per push template. campaign_id is the zero UUID for a
-- message outside any campaign; badge is -1 when unset; data is custom data JSON.
CREATE TABLE IF NOT EXISTS push_messages (
    workspace_id String,
    id UUID,
    campaign_id UUID,
    name String,
    title String,
    body String,
    link String,
    image String,
    sound String,
    badge Int32,
    data String,
    created_at DateTime,
    created_us UInt64
) ENGINE = ReplacingMergeTree(created_us)
ORDER BY (workspace_id, id)
;
-- deliveries: one row per delivery (one message to one person). id is a
-- UUIDv7, so its creation time can be read back from the id.
CREATE TABLE IF NOT EXISTS deliveries (
    workspace_id String,
    id UUID,
    campaign_id UUID,
    message_id UUID,
    person_id String,
    audience Enum8('ALL_DEVICES' = 1, 'LAST_USED' = 2, 'CUSTOM_TOKEN' = 3),
    token String,
    data String,
    created_at DateTime,
    created_us UInt64
) ENGINE = ReplacingMergeTree(created_us)
PARTITION BY toYYYYMM(created_at)
ORDER BY (workspace_id, created_at, id)
;
-- delivery_devices: one row per device a delivery round targeted; the token is
-- stored here once, events refer to the device by (delivery_id, round, device_index).
CREATE TABLE IF NOT EXISTS delivery_devices (
    workspace_id String,
    delivery_id UUID,
    round UInt16,
    device_index UInt8,
    token String,
    platform Enum8('IOS' = 1, 'ANDROID' = 2),
    delivery_created DateTime,
    created_us UInt64
) ENGINE = ReplacingMergeTree(created_us)
PARTITION BY toYYYYMM(delivery_created)
ORDER BY (workspace_id, delivery_id, round, device_index)
;
-- events: every device-level event (device_index 0..254) and every
-- delivery-level event (device_index 255). The sorting key is the event's
-- identity: a duplicate (a job that ran twice, an SDK that reported twice)
-- has the same key and collapses on merge; queries aggregate with max and
-- uniqExact so unmerged duplicates never change a figure.
CREATE TABLE IF NOT EXISTS events (
    workspace_id String,
    campaign_id UUID,
    delivery_id UUID,
    round UInt16,
    device_index UInt8,
    kind Enum8('targeted' = 1, 'attempt' = 2, 'sent' = 3, 'bounced' = 4, 'failed' = 5, 'suppressed' = 6, 'delivered' = 7, 'opened' = 8, 'converted' = 9, 'presend_failed' = 10),
    attempt UInt16,
    status_code UInt16,
    reason String,
    provider_id String,
    delivery_created DateTime,
    at DateTime,
    at_us UInt64
) ENGINE = ReplacingMergeTree(at_us)
PARTITION BY toYYYYMM(delivery_created)
ORDER BY (workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt)
;

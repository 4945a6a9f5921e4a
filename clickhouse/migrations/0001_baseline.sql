-- 0001_baseline: Herald's schema for ClickHouse 25.8 and later (see the
-- README's "ClickHouse" section). It replaces the migrations written for
-- 18.16; from here on migrations are forward-only. Each statement ends with
-- a line holding only ";".
--
-- Times are DateTime64 in UTC: (6) where Herald takes the time itself, (3)
-- for a delivery's creation time, which is the millisecond time of its
-- UUIDv7 id (UUIDv7ToDateTime) and is derived from the id wherever it is
-- stored, so no writer can disagree about it.
--
-- The mutable entities (workspaces, persons, devices, credentials) are
-- ReplacingMergeTree tables whose row with the newest updated_at wins: read
-- them with FINAL. Events are append-only and kept as written; every reading
-- aggregates idempotently (min, max, bit-or, uniqExact), so an event written
-- twice never changes a figure, and the first time of anything is min(at).

-- workspaces: one row per workspace version. key_hash is the SHA-256 hex of
-- the API key; the key itself is never stored.
CREATE TABLE IF NOT EXISTS workspaces (
    id String,
    name String,
    key_hash String,
    site_id String,
    created_at DateTime64(6, 'UTC'),
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY id
;
-- persons: one row per person version; key (workspace_id, id).
CREATE TABLE IF NOT EXISTS persons (
    workspace_id String,
    id String,
    attributes String,
    unsubscribed UInt8,
    created_at DateTime64(6, 'UTC'),
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
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
    last_used DateTime64(3, 'UTC'),
    attributes String,
    state Enum8('ok' = 0, 'bounced' = 1, 'suppressed' = 2),
    removed UInt8,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (workspace_id, person_id, token)
;
-- push_credentials: one row per workspace and platform version; data is the
-- sealed credentials JSON.
CREATE TABLE IF NOT EXISTS push_credentials (
    workspace_id String,
    platform Enum8('IOS' = 1, 'ANDROID' = 2),
    data String,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
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
    created_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(created_at)
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
    created_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (workspace_id, id)
;
-- deliveries: one row per delivery (one message to one person). id is a
-- UUIDv7 and created_at its time. overrides is a JSON object of a
-- transactional send's field overrides (title, body, link, image, sound,
-- custom_data; each text a Liquid template), '' when none.
CREATE TABLE IF NOT EXISTS deliveries (
    workspace_id String,
    id UUID,
    campaign_id UUID,
    message_id UUID,
    person_id String,
    audience Enum8('ALL_DEVICES' = 1, 'LAST_USED' = 2, 'CUSTOM_TOKEN' = 3),
    token String,
    data String,
    overrides String,
    created_at DateTime64(3, 'UTC') MATERIALIZED UUIDv7ToDateTime(id)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (workspace_id, created_at, id)
;
-- events: every device-level event (device_index 0..65534) and every
-- delivery-level event (device_index 65535: pre-send failures, conversions,
-- the start of a retry round). (workspace_id, campaign_id, delivery_id,
-- round, device_index, kind, attempt) is an event's identity; a duplicate
-- stays as a second row and every query aggregates over it idempotently.
-- token is the device token on targeted (the delivery_devices view keeps
-- it once per device) and on delivered/opened (the reporting device);
-- provider_id is the platform on targeted and the provider's message id on
-- sent; status_code is the provider's HTTP status, and on targeted 1 when
-- the token had reported a metric before (SDK coverage).
CREATE TABLE IF NOT EXISTS events (
    workspace_id LowCardinality(String),
    campaign_id UUID,
    delivery_id UUID,
    delivery_created DateTime64(3, 'UTC') MATERIALIZED UUIDv7ToDateTime(delivery_id),
    round UInt16,
    device_index UInt16,
    kind Enum8('targeted' = 1, 'attempt' = 2, 'sent' = 3, 'bounced' = 4, 'failed' = 5, 'suppressed' = 6, 'delivered' = 7, 'opened' = 8, 'converted' = 9, 'presend_failed' = 10),
    attempt UInt16,
    status_code UInt16,
    reason String,
    provider_id String,
    token String,
    at DateTime64(6, 'UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMM(delivery_created)
ORDER BY (workspace_id, campaign_id, delivery_created, delivery_id, round, device_index, kind, attempt)
;
-- delivery_devices: one row per device a delivery round targeted, written
-- by the view below from the targeted events: the token is stored once per
-- delivery device, not on every event.
CREATE TABLE IF NOT EXISTS delivery_devices (
    workspace_id String,
    delivery_id UUID,
    delivery_created DateTime64(3, 'UTC') MATERIALIZED UUIDv7ToDateTime(delivery_id),
    round UInt16,
    device_index UInt16,
    token String,
    platform Enum8('IOS' = 1, 'ANDROID' = 2)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(delivery_created)
ORDER BY (workspace_id, delivery_id, round, device_index)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS delivery_devices_mv TO delivery_devices AS
SELECT
    toString(workspace_id) AS workspace_id,
    delivery_id,
    round,
    device_index,
    token,
    CAST(if(provider_id = 'ANDROID', 'ANDROID', 'IOS') AS Enum8('IOS' = 1, 'ANDROID' = 2)) AS platform
FROM events
WHERE kind = 'targeted' AND device_index < 65535 AND token != ''
;
-- person_events: events a person did (trackEvent, the Track API), the input
-- of conversion attribution. id is chosen by the caller (a UUID), so a
-- retried request writes the same row again.
CREATE TABLE IF NOT EXISTS person_events (
    workspace_id String,
    person_id String,
    id UUID,
    name String,
    data String,
    at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (workspace_id, person_id, name, id)
;
-- reporting_tokens: one row per device token that has ever reported
-- delivered or opened (key: workspace_id, token) and the first time it did;
-- SDK coverage reads it.
CREATE TABLE IF NOT EXISTS reporting_tokens (
    workspace_id String,
    token String,
    first_at SimpleAggregateFunction(min, DateTime64(6, 'UTC'))
) ENGINE = AggregatingMergeTree
ORDER BY (workspace_id, token)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS reporting_tokens_mv TO reporting_tokens AS
SELECT toString(workspace_id) AS workspace_id, token, min(at) AS first_at
FROM events
WHERE kind IN ('delivered', 'opened') AND token != ''
GROUP BY workspace_id, token
;
-- broadcasts: one row per broadcast (one message to many people).
-- person_ids is empty when all_persons = 1 (everyone in the workspace at
-- fan-out time). Progress counters live in Redis (see jobs/broadcast.go).
CREATE TABLE IF NOT EXISTS broadcasts (
    workspace_id String,
    id UUID,
    message_id UUID,
    audience Enum8('ALL_DEVICES' = 1, 'LAST_USED' = 2, 'CUSTOM_TOKEN' = 3),
    person_ids Array(String),
    all_persons UInt8,
    data String,
    total UInt64,
    created_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (workspace_id, id)
;
-- campaign_created: deliveries created per campaign and hour (sum(created)
-- when reading). Herald inserts each delivery once (a re-run broadcast batch
-- skips the deliveries it already wrote).
CREATE TABLE IF NOT EXISTS campaign_created (
    workspace_id String,
    campaign_id UUID,
    hour DateTime('UTC'),
    created UInt64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (workspace_id, campaign_id, hour)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_created_mv TO campaign_created AS
SELECT workspace_id, campaign_id, toStartOfHour(UUIDv7ToDateTime(id)) AS hour, count() AS created
FROM deliveries
GROUP BY workspace_id, campaign_id, hour
;
-- delivery_states: every delivery's events folded into one row (after
-- merges; read it with FINAL, as delivery_status_in does).
-- Every column merges by bit-or or by concatenation, so an event written
-- twice never changes the state.
--   present, sdk, attempted, sent, bounced, failed, suppressed, delivered,
--     opened: round 0's devices 0-63, bit i for device i: it has an event;
--     its targeted event says its token had reported a metric before (SDK
--     coverage); an attempt; a sent, bounced, failed or suppressed event; a
--     delivered or opened report; an opened report;
--   flags: round 0's delivery-level kinds (device_index 65535) as
--     1 << the kind's number: 2 targeted (a round's start), 512 converted,
--     1024 presend_failed;
--   more: every other event (a later round, or device 64 and up) as
--     round << 32 | device_index << 16 | bits, where bits is 1 << the kind's
--     number (targeted 2, attempt 4, sent 8, bounced 16, failed 32,
--     suppressed 64, delivered 128, opened 256, converted 512,
--     presend_failed 1024) plus 1 on a targeted event of an SDK token;
--     most deliveries have none;
--   reasons: (the same key, reason) of every failed and presend_failed event.
-- delivery_status_in below decodes it; it is the only place that does.
CREATE TABLE IF NOT EXISTS delivery_states (
    workspace_id LowCardinality(String),
    campaign_id UUID,
    delivery_id UUID,
    delivery_created DateTime64(3, 'UTC') MATERIALIZED UUIDv7ToDateTime(delivery_id),
    present SimpleAggregateFunction(groupBitOr, UInt64),
    sdk SimpleAggregateFunction(groupBitOr, UInt64),
    attempted SimpleAggregateFunction(groupBitOr, UInt64),
    sent SimpleAggregateFunction(groupBitOr, UInt64),
    bounced SimpleAggregateFunction(groupBitOr, UInt64),
    failed SimpleAggregateFunction(groupBitOr, UInt64),
    suppressed SimpleAggregateFunction(groupBitOr, UInt64),
    delivered SimpleAggregateFunction(groupBitOr, UInt64),
    opened SimpleAggregateFunction(groupBitOr, UInt64),
    flags SimpleAggregateFunction(groupBitOr, UInt16),
    more SimpleAggregateFunction(groupArrayArray, Array(UInt64)),
    reasons SimpleAggregateFunction(groupArrayArray, Array(Tuple(UInt64, String))),
    INDEX delivery delivery_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(delivery_created)
ORDER BY (workspace_id, campaign_id, delivery_created, delivery_id)
SETTINGS index_granularity = 2048
;
CREATE MATERIALIZED VIEW IF NOT EXISTS delivery_states_mv TO delivery_states AS
SELECT
    workspace_id,
    campaign_id,
    delivery_id,
    groupBitOr(bit) AS present,
    groupBitOrIf(bit, kind = 'targeted' AND status_code = 1) AS sdk,
    groupBitOrIf(bit, kind = 'attempt') AS attempted,
    groupBitOrIf(bit, kind = 'sent') AS sent,
    groupBitOrIf(bit, kind = 'bounced') AS bounced,
    groupBitOrIf(bit, kind = 'failed') AS failed,
    groupBitOrIf(bit, kind = 'suppressed') AS suppressed,
    groupBitOrIf(bit, kind IN ('delivered', 'opened')) AS delivered,
    groupBitOrIf(bit, kind = 'opened') AS opened,
    groupBitOrIf(kind_bit, round = 0 AND device_index = 65535) AS flags,
    groupArrayIf(key, round > 0 OR (device_index >= 64 AND device_index < 65535)) AS more,
    groupArrayIf((key, reason), kind IN ('failed', 'presend_failed')) AS reasons
FROM (
    SELECT
        workspace_id, campaign_id, delivery_id, round, device_index, kind, status_code, reason,
        if(round = 0 AND device_index < 64, bitShiftLeft(toUInt64(1), device_index), toUInt64(0)) AS bit,
        bitShiftLeft(toUInt16(1), toUInt8(kind)) AS kind_bit,
        bitShiftLeft(toUInt64(round), 32) + bitShiftLeft(toUInt64(device_index), 16)
            + bitOr(kind_bit, toUInt16(kind = 'targeted' AND status_code = 1)) AS key
    FROM events
)
GROUP BY workspace_id, campaign_id, delivery_id
;
-- delivery_status_in: the status of every delivery of a workspace's campaign
-- created in [from, to), by DESIGN.md's table; the one definition that the
-- API (clickhouse/status.go, overview.go, logs.go) and the analysts' views
-- below read. Parameters: workspace ('' = any), campaign (the zero UUID =
-- any), from, to. One row per delivery with events: workspace_id,
-- campaign_id, delivery_created, delivery_id, r (the round the counts are
-- of: the newest with an event other than a conversion), n_dev (devices
-- targeted in it), n_sent, n_bounced, n_failed, n_suppressed, n_pending
-- (each device counted once, by its furthest state: sent, bounced, failed,
-- suppressed, else pending), n_delivered (devices that reported delivered
-- or opened), n_opened, n_attempted (devices with an attempt), n_sdk
-- (devices whose token had reported a metric before, or did now),
-- presend (a pre-send failure in round r), converted (in any round),
-- send_state (the status without the app's reports), status, and
-- failure_reason (the pre-send reason, else that of the FAILED device with
-- the smallest index). A delivery without any event is not here: it is
-- ATTEMPTED.
--
-- Decoding: a delivery whose events all fit the masks (round 0, devices
-- 0-63) is counted with bitCount on them; any other delivery is decoded
-- from its events as keys (the masks' devices included): keep round r's
-- keys, OR each device's bits, count.
CREATE VIEW IF NOT EXISTS delivery_status_in AS
SELECT
    workspace_id, campaign_id, delivery_created, delivery_id, r,
    n_dev, n_sent, n_bounced, n_failed, n_suppressed,
    toUInt32(n_dev - n_sent - n_bounced - n_failed - n_suppressed) AS n_pending,
    n_delivered, n_opened, n_attempted, n_sdk, presend, converted,
    CAST(multiIf(presend, 5, n_dev = 0 OR n_pending > 0, 1, n_sent > 0, 2, n_suppressed = n_dev, 4, n_failed = 0, 3, 5)
        AS Enum8('ATTEMPTED' = 1, 'SENT' = 2, 'BOUNCED' = 3, 'SUPPRESSED' = 4, 'FAILED' = 5)) AS send_state,
    CAST(multiIf(presend, 5, converted, 8, n_opened > 0, 7, n_delivered > 0, 6, toInt8(send_state))
        AS Enum8('ATTEMPTED' = 1, 'SENT' = 2, 'BOUNCED' = 3, 'SUPPRESSED' = 4, 'FAILED' = 5, 'DELIVERED' = 6, 'OPENED' = 7, 'CONVERTED' = 8)) AS status,
    multiIf(presend, arrayMin(arrayFilter((why, k) -> bitShiftRight(k, 16) = bitShiftLeft(toUInt64(r), 16) + 65535 AND bitAnd(k, 1024) != 0, rs.2, rs.1)),
        send_state = 'FAILED', arrayMin(arrayFilter((why, k) -> bitShiftRight(k, 16) = bitShiftLeft(toUInt64(r), 16) + first_failed AND bitAnd(k, 32) != 0, rs.2, rs.1)),
        '') AS failure_reason
FROM (
    SELECT
        workspace_id, campaign_id, delivery_created, delivery_id, r, rs,
        toUInt32(if(slow, length(dev_bits), bitCount(p))) AS n_dev,
        toUInt32(if(slow, arrayCount(k -> bitAnd(k, 8) != 0, dev_bits), bitCount(s))) AS n_sent,
        toUInt32(if(slow, arrayCount(k -> bitAnd(k, 24) = 16, dev_bits), bitCount(bitAnd(b, bitNot(s))))) AS n_bounced,
        toUInt32(if(slow, arrayCount(k -> bitAnd(k, 56) = 32, dev_bits), bitCount(only_failed))) AS n_failed,
        toUInt32(if(slow, arrayCount(k -> bitAnd(k, 120) = 64, dev_bits), bitCount(bitAnd(u, bitNot(bitOr(bitOr(s, b), f)))))) AS n_suppressed,
        toUInt32(if(slow, arrayCount(k -> bitAnd(k, 384) != 0, dev_bits), bitCount(dl))) AS n_delivered,
        toUInt32(if(slow, arrayCount(k -> bitAnd(k, 256) != 0, dev_bits), bitCount(o))) AS n_opened,
        toUInt32(if(slow, arrayCount(k -> bitAnd(k, 4) != 0, dev_bits), bitCount(a))) AS n_attempted,
        toUInt32(if(slow, arrayCount(k -> bitAnd(k, 385) != 0, dev_bits), bitCount(bitOr(k, dl)))) AS n_sdk,
        if(slow, arrayExists(x -> bitAnd(x, 1024) != 0, live_flags), bitAnd(fl, 1024) != 0) AS presend,
        if(slow, arrayExists(e -> bitAnd(e, 512) != 0, mo), false) OR bitAnd(fl, 512) != 0 AS converted,
        -- the smallest index of a FAILED device, whose failed reason is the delivery's
        if(slow, arrayMin(arrayFilter((d, x) -> bitAnd(x, 56) = 32, devs, dev_bits)), bitCount(bitXor(only_failed, only_failed - 1)) - 1) AS first_failed
    FROM (
        -- A delivery with a later round or device 64 and up is decoded from
        -- keys (round 0's masks turned into keys too): keep the newest round
        -- r with an event other than a conversion, OR each device's bits.
        SELECT *,
            bitAnd(f, bitNot(bitOr(s, b))) AS only_failed,
            if(slow, arrayConcat(mo,
                arrayMap(i -> bitShiftLeft(toUInt64(i), 16) + 2 * bitTest(p, i) + bitTest(k, i) + 4 * bitTest(a, i) + 8 * bitTest(s, i)
                    + 16 * bitTest(b, i) + 32 * bitTest(f, i) + 64 * bitTest(u, i) + 128 * bitTest(dl, i) + 256 * bitTest(o, i), bitPositionsToArray(p)),
                [bitShiftLeft(toUInt64(65535), 16) + fl]), []) AS keys,
            toInt64(if(slow, arrayMax(arrayMap(e -> if(bitAnd(e, 65022) != 0, toInt64(bitShiftRight(e, 32)), -1), keys)), 0)) AS r,
            arrayFilter(e -> toInt64(bitShiftRight(e, 32)) = r, keys) AS live,
            arrayMap(e -> bitAnd(e, 65535), arrayFilter(e -> bitAnd(bitShiftRight(e, 16), 65535) = 65535, live)) AS live_flags,
            arrayDistinct(arrayFilter(d -> d != 65535, arrayMap(e -> bitAnd(bitShiftRight(e, 16), 65535), live))) AS devs,
            arrayMap(d -> arrayReduce('groupBitOr', arrayMap(e -> bitAnd(e, 65535), arrayFilter(e -> bitAnd(bitShiftRight(e, 16), 65535) = d, live))), devs) AS dev_bits
        FROM (
            -- FINAL merges the rows of a delivery that background merges have
            -- not folded yet (only where parts overlap); a merged row is read as is.
            SELECT
                delivery_id, workspace_id, campaign_id, delivery_created,
                present AS p, sdk AS k, attempted AS a, sent AS s, bounced AS b, failed AS f,
                suppressed AS u, delivered AS dl, opened AS o, flags AS fl, more AS mo, reasons AS rs,
                notEmpty(mo) AS slow
            FROM delivery_states FINAL
            WHERE ({workspace:String} = '' OR workspace_id = {workspace:String})
              AND ({campaign:UUID} = toUUID('00000000-0000-0000-0000-000000000000') OR campaign_id = {campaign:UUID})
              AND delivery_created >= {from:DateTime64(3)} AND delivery_created < {to:DateTime64(3)}
        )
    )
)
;
-- delivery_status: delivery_status_in over every workspace, campaign and
-- time, for ad-hoc SQL (same columns). A filter on delivery_id reads only
-- the granules that hold that delivery (the bloom filter index); filter by
-- campaign and time through delivery_status_in, which reads only their rows.
CREATE VIEW IF NOT EXISTS delivery_status AS
SELECT * FROM delivery_status_in(workspace = '', campaign = '00000000-0000-0000-0000-000000000000',
    from = '1970-01-01 00:00:00.000', to = '2299-12-31 00:00:00.000')
;
-- campaign_funnel: one row per campaign: the overview's person-level
-- figures over all time (deliveries with events; see delivery_status).
CREATE VIEW IF NOT EXISTS campaign_funnel AS
SELECT
    workspace_id,
    campaign_id,
    count() AS deliveries,
    countIf(send_state = 'ATTEMPTED') AS attempted,
    countIf(send_state = 'SENT') AS sent,
    countIf(send_state = 'BOUNCED') AS bounced,
    countIf(send_state = 'SUPPRESSED') AS suppressed,
    countIf(send_state = 'FAILED') AS failed,
    sent + bounced + suppressed AS sends,
    sent AS recipients,
    countIf(n_delivered > 0) AS delivered,
    countIf(n_opened > 0) AS opened,
    countIf(converted) AS converted,
    if(recipients = 0, 0, delivered / recipients) AS delivery_rate,
    if(delivered = 0, 0, opened / delivered) AS open_rate,
    if(recipients = 0, 0, converted / recipients) AS conversion_rate,
    if(sends = 0, 0, bounced / sends) AS bounce_rate
FROM delivery_status
GROUP BY workspace_id, campaign_id
;

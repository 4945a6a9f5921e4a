-- 0007_fast_overview: pre-aggregated tables that let the campaign overview
-- read one small row per delivery instead of every event.
--
-- delivery_masks: one row per (delivery, round) after merges (read with
-- the -Merge functions, grouped by delivery): m0/m1 hold 8 bits per device
-- index 0-7 / 8-15 (bit 0 targeted, 1 the device had reported a metric
-- before it was targeted (targeted.status_code = 1), 2 sent, 3 bounced,
-- 4 failed, 5 suppressed, 6 delivered or opened, 7 opened); flags holds
-- the delivery-level kinds (device_index 255) as 1 << the kind's value
-- (512 converted, 1024 presend_failed, 2 a retry round's start). Every
-- state is an OR, so a duplicate event never changes it. A delivery
-- targets at most 16 devices (jobs.MaxDevices).
--
-- delivery_failures: the same key, only for deliveries with a failed or
-- presend_failed event (a few percent): presend_reason, and failed_reason
-- (the reason of the failed device with the smallest index), for failures
-- by reason. Kept apart so the overview's main pass reads no strings.
CREATE TABLE IF NOT EXISTS delivery_masks (
    workspace_id String,
    campaign_id UUID,
    delivery_created DateTime,
    delivery_id UUID,
    round UInt16,
    m0 AggregateFunction(groupBitOr, UInt64),
    m1 AggregateFunction(groupBitOr, UInt64),
    flags AggregateFunction(groupBitOr, UInt16)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(delivery_created)
ORDER BY (workspace_id, campaign_id, delivery_created, delivery_id, round)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS delivery_masks_mv TO delivery_masks AS
SELECT
    workspace_id, campaign_id, delivery_created, delivery_id, round,
    groupBitOrState(if(device_index < 8, bitShiftLeft(toUInt64(multiIf(kind = 'targeted', if(status_code = 1, 3, 1), kind = 'sent', 4, kind = 'bounced', 8, kind = 'failed', 16, kind = 'suppressed', 32, kind = 'delivered', 64, kind = 'opened', 192, 0)), toUInt8(device_index * 8)), toUInt64(0))) AS m0,
    groupBitOrState(if(device_index >= 8 AND device_index < 16, bitShiftLeft(toUInt64(multiIf(kind = 'targeted', if(status_code = 1, 3, 1), kind = 'sent', 4, kind = 'bounced', 8, kind = 'failed', 16, kind = 'suppressed', 32, kind = 'delivered', 64, kind = 'opened', 192, 0)), toUInt8((device_index - 8) * 8)), toUInt64(0))) AS m1,
    groupBitOrState(if(device_index = 255, bitShiftLeft(toUInt16(1), toUInt8(toInt8(kind))), toUInt16(0))) AS flags
FROM events
GROUP BY workspace_id, campaign_id, delivery_created, delivery_id, round
;
-- Backfill what the events table already holds (repeating an event is
-- harmless: every state is idempotent).
INSERT INTO delivery_masks
SELECT
    workspace_id, campaign_id, delivery_created, delivery_id, round,
    groupBitOrState(if(device_index < 8, bitShiftLeft(toUInt64(multiIf(kind = 'targeted', if(status_code = 1, 3, 1), kind = 'sent', 4, kind = 'bounced', 8, kind = 'failed', 16, kind = 'suppressed', 32, kind = 'delivered', 64, kind = 'opened', 192, 0)), toUInt8(device_index * 8)), toUInt64(0))),
    groupBitOrState(if(device_index >= 8 AND device_index < 16, bitShiftLeft(toUInt64(multiIf(kind = 'targeted', if(status_code = 1, 3, 1), kind = 'sent', 4, kind = 'bounced', 8, kind = 'failed', 16, kind = 'suppressed', 32, kind = 'delivered', 64, kind = 'opened', 192, 0)), toUInt8((device_index - 8) * 8)), toUInt64(0))),
    groupBitOrState(if(device_index = 255, bitShiftLeft(toUInt16(1), toUInt8(toInt8(kind))), toUInt16(0)))
FROM events
GROUP BY workspace_id, campaign_id, delivery_created, delivery_id, round
;
CREATE TABLE IF NOT EXISTS delivery_failures (
    workspace_id String,
    campaign_id UUID,
    delivery_created DateTime,
    delivery_id UUID,
    round UInt16,
    presend_reason AggregateFunction(minIf, String, UInt8),
    failed_reason AggregateFunction(argMinIf, String, Tuple(UInt8, String), UInt8)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(delivery_created)
ORDER BY (workspace_id, campaign_id, delivery_created, delivery_id, round)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS delivery_failures_mv TO delivery_failures AS
SELECT
    workspace_id, campaign_id, delivery_created, delivery_id, round,
    minIfState(reason, toUInt8(kind = 'presend_failed')) AS presend_reason,
    argMinIfState(reason, tuple(device_index, reason), toUInt8(kind = 'failed' AND device_index < 255)) AS failed_reason
FROM events
WHERE kind IN ('failed', 'presend_failed')
GROUP BY workspace_id, campaign_id, delivery_created, delivery_id, round
;
INSERT INTO delivery_failures
SELECT
    workspace_id, campaign_id, delivery_created, delivery_id, round,
    minIfState(reason, toUInt8(kind = 'presend_failed')),
    argMinIfState(reason, tuple(device_index, reason), toUInt8(kind = 'failed' AND device_index < 255))
FROM events
WHERE kind IN ('failed', 'presend_failed')
GROUP BY workspace_id, campaign_id, delivery_created, delivery_id, round
;
-- campaign_created: deliveries created per campaign and hour (SummingMergeTree:
-- sum(created) when reading). Herald inserts each delivery once (a re-run
-- broadcast batch skips the deliveries it already wrote).
CREATE TABLE IF NOT EXISTS campaign_created (
    workspace_id String,
    campaign_id UUID,
    hour DateTime,
    created UInt64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (workspace_id, campaign_id, hour)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_created_mv TO campaign_created AS
SELECT workspace_id, campaign_id, toStartOfHour(created_at) AS hour, count() AS created
FROM deliveries
GROUP BY workspace_id, campaign_id, hour
;
INSERT INTO campaign_created
SELECT workspace_id, campaign_id, toStartOfHour(created_at) AS hour, uniqExact(id) AS created
FROM deliveries
GROUP BY workspace_id, campaign_id, hour
;
-- delivery_status now also has n_sdk (see clickhouse/overview_sql.go);
-- recreate it (a view is dropped like a table on 18.16).
DROP TABLE IF EXISTS delivery_status
;
CREATE VIEW IF NOT EXISTS delivery_status AS
SELECT
    workspace_id,
    campaign_id,
    delivery_id,
    created,
    r,
    n_dev, n_sent, n_bounced, n_failed, n_suppressed,
    n_dev - n_sent - n_bounced - n_failed - n_suppressed AS n_pending,
    n_delivered, n_opened, n_attempted, n_sdk, converted,
    multiIf(presend = 1, 'FAILED',
            n_dev = 0 OR n_pending > 0, 'ATTEMPTED',
            n_sent > 0, 'SENT',
            n_suppressed = n_dev, 'SUPPRESSED',
            n_failed = 0, 'BOUNCED',
            'FAILED') AS send_state,
    multiIf(presend = 1, presend_reason, send_state = 'FAILED', device_failed_reason, '') AS failure_reason,
    multiIf(presend = 1, 'FAILED', converted = 1, 'CONVERTED', n_opened > 0, 'OPENED', n_delivered > 0, 'DELIVERED', send_state) AS status,
    converted_us
FROM (
    SELECT
        any(round_workspace) AS workspace_id,
        any(round_campaign) AS campaign_id,
        delivery_id,
        any(created) AS created,
        max(round_converted) AS converted,
        minIf(round_converted_us, round_converted_us > 0) AS converted_us,
        argMax(round, rank) AS r,
        argMax(round_n_dev, rank) AS n_dev,
        argMax(round_n_sent, rank) AS n_sent,
        argMax(round_n_bounced, rank) AS n_bounced,
        argMax(round_n_failed, rank) AS n_failed,
        argMax(round_n_suppressed, rank) AS n_suppressed,
        argMax(round_n_delivered, rank) AS n_delivered,
        argMax(round_n_opened, rank) AS n_opened,
        argMax(round_n_attempted, rank) AS n_attempted,
        argMax(round_n_sdk, rank) AS n_sdk,
        argMax(round_presend, rank) AS presend,
        argMax(round_presend_reason, rank) AS presend_reason,
        argMax(round_failed_reason, rank) AS device_failed_reason
    FROM (
        SELECT
            any(dev_workspace) AS round_workspace,
            any(dev_campaign) AS round_campaign,
            delivery_id,
            round,
            any(dev_created) AS created,
            minIf(dev_converted_us, dev_converted_us > 0) AS round_converted_us,
            if(max(bitAnd(bits, 2046 - 512) != 0) = 1, toInt32(round), -1) AS rank,
            countIf(device_index < 255) AS round_n_dev,
            countIf(device_index < 255 AND bitAnd(bits, 8) != 0) AS round_n_sent,
            countIf(device_index < 255 AND bitAnd(bits, 8) = 0 AND bitAnd(bits, 16) != 0) AS round_n_bounced,
            countIf(device_index < 255 AND bitAnd(bits, 24) = 0 AND bitAnd(bits, 32) != 0) AS round_n_failed,
            countIf(device_index < 255 AND bitAnd(bits, 56) = 0 AND bitAnd(bits, 64) != 0) AS round_n_suppressed,
            countIf(device_index < 255 AND bitAnd(bits, 384) != 0) AS round_n_delivered,
            countIf(device_index < 255 AND bitAnd(bits, 256) != 0) AS round_n_opened,
            countIf(device_index < 255 AND attempts > 0) AS round_n_attempted,
            countIf(device_index < 255 AND (sdk_known = 1 OR bitAnd(bits, 384) != 0)) AS round_n_sdk,
            max(bitAnd(bits, 1024) != 0) AS round_presend,
            minIf(dev_presend_reason, bitAnd(bits, 1024) != 0) AS round_presend_reason,
            argMinIf(dev_failed_reason, device_index, device_index < 255 AND bitAnd(bits, 24) = 0 AND bitAnd(bits, 32) != 0) AS round_failed_reason,
            max(bitAnd(bits, 512) != 0) AS round_converted
        FROM (
            SELECT
                delivery_id, round, device_index,
                groupBitOr(bitShiftLeft(toUInt16(1), toUInt8(toInt8(kind)))) AS bits,
                uniqExactIf(attempt, kind = 'attempt') AS attempts,
                minIf(reason, kind = 'failed') AS dev_failed_reason,
                minIf(reason, kind = 'presend_failed') AS dev_presend_reason,
                any(delivery_created) AS dev_created,
                any(workspace_id) AS dev_workspace,
                any(campaign_id) AS dev_campaign,
                minIf(at_us, kind = 'converted') AS dev_converted_us,
                max(kind = 'targeted' AND status_code = 1) AS sdk_known
            FROM events
            WHERE 1
            GROUP BY delivery_id, round, device_index
        )
        GROUP BY delivery_id, round
    )
    GROUP BY delivery_id
)
;

-- 0005_narrow_states: delivery_states narrowed to one UInt64 of bit
-- planes per row (and the failure reasons, read only for the deliveries
-- that failed), and the status definition rewritten over it.
--
-- Why: the overview counts every delivery of a campaign by its merged
-- state. The rows of one delivery sit in several parts until merges fold
-- them (its reports arrive after its sends), and reading twelve state
-- columns with FINAL merged them at 11x the bare scan of the campaign's
-- events (bench/analytics, as loaded). Merging one UInt64 per row with a
-- GROUP BY costs about a fifth of that.
--
-- delivery_states.bits, for round 0's devices 0-5 (nearly every delivery
-- has fewer than 6 devices), nine planes of 6 bits, plane j at bits
-- 6j..6j+5, bit i of a plane for device i:
--   0 present (the device has an event), 1 sdk (its targeted event says
--   its token had reported a metric before), 2 attempted, 3 sent,
--   4 bounced, 5 failed, 6 suppressed, 7 delivered (a delivered or opened
--   report), 8 opened;
-- and three flags: bit 54 converted (a converted event in any round),
-- bit 55 a presend_failed event in round 0, bit 56 slow: an event of a
-- later round (other than a conversion) or of device 6 and up. A slow
-- delivery is decoded from its events (delivery_counts_slow_in); there is
-- no limit on devices or rounds.
-- delivery_states.reasons: (round << 16 | device, reason) of each failed
-- event, and (round << 16 | 65535, reason) of each presend_failed one.
--
-- delivery_status and campaign_funnel (0001) read delivery_status_in by
-- name and are kept as they are.
--
-- Every statement can run again after a failure: the table merges by
-- bit-or and concatenation and every reading is idempotent over
-- duplicates, so the backfill below may insert a row twice (or the view a
-- row the backfill also copies) without changing any figure.
DROP VIEW IF EXISTS delivery_status_in
;
DROP VIEW IF EXISTS delivery_states_mv
;
DROP TABLE IF EXISTS delivery_states
;
CREATE TABLE IF NOT EXISTS delivery_states (
    workspace_id LowCardinality(String),
    campaign_id UUID,
    delivery_id UUID,
    delivery_created DateTime64(3, 'UTC') MATERIALIZED UUIDv7ToDateTime(delivery_id),
    bits SimpleAggregateFunction(groupBitOr, UInt64),
    reasons SimpleAggregateFunction(groupArrayArray, Array(Tuple(UInt32, String))),
    INDEX delivery delivery_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(delivery_created)
ORDER BY (workspace_id, campaign_id, delivery_created, delivery_id)
SETTINGS index_granularity = 2048
;
-- The plane bits of one event, before the shift by its device index:
-- 1 (present) plus 64 sdk, 4096 attempted, 262144 sent, 16777216 bounced,
-- 1073741824 failed, 68719476736 suppressed, 4398046511104 delivered,
-- 281474976710656 opened. The backfill below repeats this SELECT.
CREATE MATERIALIZED VIEW IF NOT EXISTS delivery_states_mv TO delivery_states AS
SELECT workspace_id, campaign_id, delivery_id, groupBitOr(b) AS bits,
    groupArrayIf((toUInt32(round) * 65536 + if(kind = 'presend_failed', 65535, device_index), reason), kind IN ('failed', 'presend_failed')) AS reasons
FROM (
    SELECT workspace_id, campaign_id, delivery_id, round, device_index, kind, reason,
        if(round = 0 AND device_index < 6,
            bitShiftLeft(toUInt64(1 + multiIf(kind = 'targeted', 64 * (status_code = 1), kind = 'attempt', 4096, kind = 'sent', 262144,
                kind = 'bounced', 16777216, kind = 'failed', 1073741824, kind = 'suppressed', 68719476736,
                kind = 'delivered', 4398046511104, kind = 'opened', 4398046511104 + 281474976710656, 0)), device_index), 0)
        + bitShiftLeft(toUInt64(kind = 'converted'), 54)
        + bitShiftLeft(toUInt64(round = 0 AND kind = 'presend_failed'), 55)
        + bitShiftLeft(toUInt64((round > 0 AND kind != 'converted') OR (round = 0 AND device_index >= 6 AND device_index < 65535)), 56) AS b
    FROM events
)
GROUP BY workspace_id, campaign_id, delivery_id
;
INSERT INTO delivery_states (workspace_id, campaign_id, delivery_id, bits, reasons)
SELECT workspace_id, campaign_id, delivery_id, groupBitOr(b) AS bits,
    groupArrayIf((toUInt32(round) * 65536 + if(kind = 'presend_failed', 65535, device_index), reason), kind IN ('failed', 'presend_failed')) AS reasons
FROM (
    SELECT workspace_id, campaign_id, delivery_id, round, device_index, kind, reason,
        if(round = 0 AND device_index < 6,
            bitShiftLeft(toUInt64(1 + multiIf(kind = 'targeted', 64 * (status_code = 1), kind = 'attempt', 4096, kind = 'sent', 262144,
                kind = 'bounced', 16777216, kind = 'failed', 1073741824, kind = 'suppressed', 68719476736,
                kind = 'delivered', 4398046511104, kind = 'opened', 4398046511104 + 281474976710656, 0)), device_index), 0)
        + bitShiftLeft(toUInt64(kind = 'converted'), 54)
        + bitShiftLeft(toUInt64(round = 0 AND kind = 'presend_failed'), 55)
        + bitShiftLeft(toUInt64((round > 0 AND kind != 'converted') OR (round = 0 AND device_index >= 6 AND device_index < 65535)), 56) AS b
    FROM events
)
GROUP BY workspace_id, campaign_id, delivery_id
;
-- delivery_counts_fast_in and delivery_counts_slow_in: the device counts
-- of every delivery of a workspace's campaign created in [from, to), the
-- first of the deliveries whose events all fit the bits, the second of the
-- others (slow); delivery_status_in below is their union with the status
-- rule. Parameters: workspace ('' = any), campaign (the zero UUID = any),
-- from, to. One row per delivery with events: workspace_id, campaign_id,
-- delivery_created, delivery_id, r (the round the counts are of: the
-- newest with an event other than a conversion), n_dev (devices with an
-- event in round r), n_sent, n_bounced, n_failed, n_suppressed (each device
-- counted once, by its furthest state: sent, bounced, failed, suppressed),
-- n_delivered (devices that reported delivered or opened), n_opened,
-- n_attempted (devices with an attempt), n_sdk (devices whose token had
-- reported a metric before, or did now), presend (a pre-send failure in
-- round r), converted (in any round), first_failed (the smallest index of
-- a FAILED device; 65535 when none), rs (the (key, reason) pairs of its
-- failed and presend_failed events, as delivery_states.reasons). The
-- overview reads them apart (and the slow one only when some delivery is
-- slow) and applies the rule in Go (domain.DeliveryStatusOf): planning the
-- union costs more than counting most campaigns.
CREATE OR REPLACE VIEW delivery_counts_fast_in AS
-- The common case: a delivery whose events all fit the bits, counted
-- with bitCount on its planes.
SELECT
    ws AS workspace_id, cp AS campaign_id, dc AS delivery_created, delivery_id, toUInt16(0) AS r,
    toUInt32(bitCount(bitAnd(x, 63))) AS n_dev,
    toUInt32(bitCount(s)) AS n_sent,
    toUInt32(bitCount(bitAnd(b, bitNot(s)))) AS n_bounced,
    toUInt32(bitCount(only_failed)) AS n_failed,
    toUInt32(bitCount(bitAnd(bitAnd(bitShiftRight(x, 36), 63), bitNot(bitOr(bitOr(s, b), f))))) AS n_suppressed,
    toUInt32(bitCount(d)) AS n_delivered,
    toUInt32(bitCount(bitAnd(bitShiftRight(x, 48), 63))) AS n_opened,
    toUInt32(bitCount(bitAnd(bitShiftRight(x, 12), 63))) AS n_attempted,
    toUInt32(bitCount(bitOr(bitAnd(bitShiftRight(x, 6), 63), d))) AS n_sdk,
    bitTest(x, 55) AS presend,
    bitTest(x, 54) AS converted,
    toUInt16(if(only_failed = 0, 65535, bitCount(bitXor(only_failed, only_failed - 1)) - 1)) AS first_failed,
    rs
FROM (
    SELECT *,
        bitAnd(bitShiftRight(x, 18), 63) AS s, bitAnd(bitShiftRight(x, 24), 63) AS b, bitAnd(bitShiftRight(x, 30), 63) AS f,
        bitAnd(bitShiftRight(x, 42), 63) AS d,
        bitAnd(f, bitNot(bitOr(s, b))) AS only_failed
    FROM (
        -- A partition in {merged} (one part: background merges have
        -- folded it) holds one row per delivery, read with FINAL, which
        -- then merges nothing; any other partition's rows are merged per
        -- delivery by GROUP BY, which costs a fifth of what FINAL does
        -- when parts overlap. Both are right for any partition: {merged}
        -- only picks the faster (the overview passes it; [] is always
        -- right).
        SELECT delivery_id, workspace_id AS ws, campaign_id AS cp, delivery_created AS dc, bits AS x, reasons AS rs
        FROM delivery_states FINAL
        WHERE ({workspace:String} = '' OR workspace_id = {workspace:String})
          AND ({campaign:UUID} = toUUID('00000000-0000-0000-0000-000000000000') OR campaign_id = {campaign:UUID})
          AND delivery_created >= {from:DateTime64(3)} AND delivery_created < {to:DateTime64(3)}
          AND has({merged:Array(String)}, _partition_id) AND NOT bitTest(bits, 56)
        UNION ALL
        SELECT delivery_id, any(workspace_id) AS ws, any(campaign_id) AS cp, any(delivery_created) AS dc, groupBitOr(bits) AS x,
            groupArrayArray(reasons) AS rs
        FROM delivery_states
        WHERE ({workspace:String} = '' OR workspace_id = {workspace:String})
          AND ({campaign:UUID} = toUUID('00000000-0000-0000-0000-000000000000') OR campaign_id = {campaign:UUID})
          AND delivery_created >= {from:DateTime64(3)} AND delivery_created < {to:DateTime64(3)}
          AND NOT has({merged:Array(String)}, _partition_id)
        GROUP BY delivery_id
        HAVING NOT bitTest(x, 56)
    )
)
;
CREATE OR REPLACE VIEW delivery_counts_slow_in AS
-- A slow delivery (a later round, or device 6 and up) from its events:
-- each device's kinds as bits (1 << the kind's number: targeted 2,
-- attempt 4, sent 8, bounced 16, failed 32, suppressed 64, delivered
-- 128, opened 256, converted 512, presend_failed 1024), then each
-- round's counts, then the newest round r's (key: the round when it has
-- an event other than a conversion; else -1 for round 0, whose devices
-- count when no round has one, and -2 for the others, which never do).
-- The slow deliveries are joined, not found by IN, so that a filter on
-- delivery_id (an analyst's query of one delivery) reaches both sides.
SELECT
    ws AS workspace_id, cp AS campaign_id, dc AS delivery_created, delivery_id,
    toUInt16(greatest(max_key, 0)) AS r,
    if(max_key >= -1, c.1, 0) AS n_dev, if(max_key >= -1, c.2, 0) AS n_sent, if(max_key >= -1, c.3, 0) AS n_bounced,
    if(max_key >= -1, c.4, 0) AS n_failed, if(max_key >= -1, c.5, 0) AS n_suppressed, if(max_key >= -1, c.6, 0) AS n_delivered,
    if(max_key >= -1, c.7, 0) AS n_opened, if(max_key >= -1, c.8, 0) AS n_attempted, if(max_key >= -1, c.9, 0) AS n_sdk,
    max_key >= -1 AND c.10 AS presend,
    conv AS converted,
    if(max_key >= -1, c.11, toUInt16(65535)) AS first_failed,
    rs
FROM (
    SELECT delivery_id, any(ws) AS ws, any(cp) AS cp, any(dc) AS dc,
        max(key) AS max_key, argMax(counts, key) AS c, max(round_conv) AS conv, groupArrayArray(round_rs) AS rs
    FROM (
        SELECT delivery_id, any(ws) AS ws, any(cp) AS cp, any(dc) AS dc, round,
            if(max(bitAnd(kb, 1534) != 0), toInt32(round), if(round = 0, -1, -2)) AS key,
            max(bitAnd(kb, 512) != 0) AS round_conv,
            groupArrayArray(dev_rs) AS round_rs,
            tuple(
                toUInt32(countIf(device_index < 65535)),
                toUInt32(countIf(device_index < 65535 AND bitAnd(kb, 8) != 0)),
                toUInt32(countIf(device_index < 65535 AND bitAnd(kb, 24) = 16)),
                toUInt32(countIf(device_index < 65535 AND bitAnd(kb, 56) = 32)),
                toUInt32(countIf(device_index < 65535 AND bitAnd(kb, 120) = 64)),
                toUInt32(countIf(device_index < 65535 AND bitAnd(kb, 384) != 0)),
                toUInt32(countIf(device_index < 65535 AND bitAnd(kb, 256) != 0)),
                toUInt32(countIf(device_index < 65535 AND bitAnd(kb, 4) != 0)),
                toUInt32(countIf(device_index < 65535 AND (sdk OR bitAnd(kb, 384) != 0))),
                max(bitAnd(kb, 1024) != 0),
                toUInt16(minIf(device_index, device_index < 65535 AND bitAnd(kb, 56) = 32) + 65535 * (countIf(device_index < 65535 AND bitAnd(kb, 56) = 32) = 0))
            ) AS counts
        FROM (
            SELECT ev.delivery_id AS delivery_id, any(ev.workspace_id) AS ws, any(ev.campaign_id) AS cp, any(ev.delivery_created) AS dc,
                ev.round AS round, ev.device_index AS device_index,
                groupBitOr(bitShiftLeft(toUInt16(1), toUInt8(ev.kind))) AS kb,
                max(ev.kind = 'targeted' AND ev.status_code = 1) AS sdk,
                groupArrayIf((toUInt32(ev.round) * 65536 + if(ev.kind = 'presend_failed', 65535, ev.device_index), ev.reason),
                    ev.kind IN ('failed', 'presend_failed')) AS dev_rs
            FROM events AS ev
            INNER JOIN (
                SELECT DISTINCT delivery_id FROM delivery_states
                WHERE ({workspace:String} = '' OR workspace_id = {workspace:String})
                  AND ({campaign:UUID} = toUUID('00000000-0000-0000-0000-000000000000') OR campaign_id = {campaign:UUID})
                  AND delivery_created >= {from:DateTime64(3)} AND delivery_created < {to:DateTime64(3)}
                  AND bitTest(bits, 56)
            ) AS sl ON ev.delivery_id = sl.delivery_id
            WHERE ({workspace:String} = '' OR ev.workspace_id = {workspace:String})
              AND ({campaign:UUID} = toUUID('00000000-0000-0000-0000-000000000000') OR ev.campaign_id = {campaign:UUID})
              AND ev.delivery_created >= {from:DateTime64(3)} AND ev.delivery_created < {to:DateTime64(3)}
            GROUP BY delivery_id, round, device_index
        )
        GROUP BY delivery_id, round
    )
    GROUP BY delivery_id
)
;
-- delivery_status_in: every delivery's status by DESIGN.md's table, the
-- one SQL status definition, which the analysts' views read (and the
-- property test checks against the reference model, as it checks the
-- overview). Same parameters and columns as delivery_counts_fast_in (rs
-- left out), and n_pending (devices in none of those states), send_state
-- (the status without the app's reports), status, failure_device (65535
-- for the pre-send failure, else first_failed) and failure_reason (when
-- the delivery FAILED, the smallest reason of failure_device's events of
-- that kind in round r; else ''). A delivery without any event is not
-- here: it is ATTEMPTED.
CREATE OR REPLACE VIEW delivery_status_in AS
SELECT
    workspace_id, campaign_id, delivery_created, delivery_id, r,
    n_dev, n_sent, n_bounced, n_failed, n_suppressed,
    toUInt32(n_dev - n_sent - n_bounced - n_failed - n_suppressed) AS n_pending,
    n_delivered, n_opened, n_attempted, n_sdk, presend, converted, first_failed,
    CAST(multiIf(presend, 5, n_dev = 0 OR n_pending > 0, 1, n_sent > 0, 2, n_suppressed = n_dev, 4, n_failed = 0, 3, 5)
        AS Enum8('ATTEMPTED' = 1, 'SENT' = 2, 'BOUNCED' = 3, 'SUPPRESSED' = 4, 'FAILED' = 5)) AS send_state,
    CAST(multiIf(presend, 5, converted, 8, n_opened > 0, 7, n_delivered > 0, 6, toInt8(send_state))
        AS Enum8('ATTEMPTED' = 1, 'SENT' = 2, 'BOUNCED' = 3, 'SUPPRESSED' = 4, 'FAILED' = 5, 'DELIVERED' = 6, 'OPENED' = 7, 'CONVERTED' = 8)) AS status,
    if(presend, toUInt16(65535), first_failed) AS failure_device,
    if(send_state = 'FAILED', arrayMin(arrayFilter((why, k) -> k = toUInt32(r) * 65536 + failure_device, rs.2, rs.1)), '') AS failure_reason
FROM (
    SELECT * FROM delivery_counts_fast_in(workspace = {workspace:String}, campaign = {campaign:UUID}, from = {from:DateTime64(3)}, to = {to:DateTime64(3)}, merged = [])
    UNION ALL
    SELECT * FROM delivery_counts_slow_in(workspace = {workspace:String}, campaign = {campaign:UUID}, from = {from:DateTime64(3)}, to = {to:DateTime64(3)})
)
;
-- delivery_failure_reasons_in: the reasons of the failed and
-- presend_failed events of a campaign's deliveries created in [from, to),
-- which the overview looks up for its failing groups only: per delivery,
-- round and device (65535 for a pre-send failure), the smallest reason
-- (delivery_status_in's rule). Same parameters.
CREATE OR REPLACE VIEW delivery_failure_reasons_in AS
SELECT delivery_id, toUInt16(bitShiftRight(k, 16)) AS round, toUInt16(bitAnd(k, 65535)) AS device, min(why) AS reason
FROM delivery_states
ARRAY JOIN reasons.1 AS k, reasons.2 AS why
WHERE ({workspace:String} = '' OR workspace_id = {workspace:String})
  AND ({campaign:UUID} = toUUID('00000000-0000-0000-0000-000000000000') OR campaign_id = {campaign:UUID})
  AND delivery_created >= {from:DateTime64(3)} AND delivery_created < {to:DateTime64(3)}
  AND notEmpty(reasons)
GROUP BY delivery_id, round, device
;

-- 0008_failure_keys: a delivery's failure reason as one number in
-- delivery_states, so that the overview merges two UInt64s per row, not an
-- array of (key, reason) tuples.
--
-- Why: as loaded (a delivery's rows in several parts), the overview merges
-- each delivery's rows with GROUP BY; merging the reasons array cost as
-- much as the bits themselves (bench/analytics, README: 4.5-6.4x the bare
-- scan as loaded). A min() of one UInt64 costs a tenth of that.
--
-- The failure reason's rule changes with it (clickhouse/status.go,
-- domain/model and these views agree): a delivery that FAILED takes the
-- reason of its pre-send failure, else of the failed event of the device
-- with the smallest index that has a failed event in the round; of several
-- such events (a job that ran twice), the one whose reason has the
-- smallest failure key. Before, the device was the smallest FAILED one, a
-- device that also bounced or sent left out; that differs only when one
-- device has both a failed and a bounced event in one round, which no
-- single send writes.
--
-- The failure key of a failed or presend_failed event of round 0 (device
-- 0-5 for failed; the other deliveries are slow and decoded from their
-- events): prio << 56 | cityHash64(reason) >> 8, prio 1 for a pre-send
-- failure and 2 + the device index for a failed event; 2^64 - 1 for every
-- other event. min() of it picks the event the rule picks.
-- delivery_states.fail holds that min; delivery_states.fail_text the same
-- min over the key's 8 bytes (big-endian) followed by the reason, so that
-- substring(fail_text, 9) is the chosen reason (min() picks the same event:
-- the prefix orders as the key does).
--
-- Every statement can run again: ADD/DROP COLUMN IF (NOT) EXISTS, MODIFY
-- QUERY and CREATE OR REPLACE VIEW replace, and the backfill inserts rows
-- that merge by min() and bit-or, so inserting one twice, or a row the
-- view also wrote, changes nothing. Events written while this runs reach
-- delivery_states through the view (from its MODIFY QUERY on) or through
-- the backfill (before it), or both.
ALTER TABLE delivery_states ADD COLUMN IF NOT EXISTS fail SimpleAggregateFunction(min, UInt64) DEFAULT 18446744073709551615
;
ALTER TABLE delivery_states ADD COLUMN IF NOT EXISTS fail_text SimpleAggregateFunction(min, String) DEFAULT unhex('FFFFFFFFFFFFFFFF')
;
-- delivery_states_mv (0007) with fail and fail_text, without reasons.
ALTER TABLE delivery_states_mv MODIFY QUERY
SELECT workspace_id, campaign_id, delivery_id, groupBitOr(b) AS bits, min(k) AS fail, min(kt) AS fail_text
FROM (
    SELECT workspace_id, campaign_id, delivery_id,
        if(round = 0 AND device_index < 6,
            bitShiftLeft(toUInt64(1 + multiIf(kind = 'targeted', 64 * (status_code = 1), kind = 'attempt', 4096, kind = 'sent', 262144,
                kind = 'bounced', 16777216, kind = 'failed', 1073741824, kind = 'suppressed', 68719476736,
                kind = 'delivered', 4398046511104, kind = 'opened', 4398046511104 + 281474976710656, 0)
                + 4096 * (kind != 'attempt' AND attempt > 0)), device_index), 0)
        + bitShiftLeft(toUInt64(kind = 'converted'), 54)
        + bitShiftLeft(toUInt64(round = 0 AND kind = 'presend_failed'), 55)
        + bitShiftLeft(toUInt64((round > 0 AND kind != 'converted') OR (round = 0 AND device_index >= 6 AND device_index < 65535)), 56) AS b,
        multiIf(round = 0 AND kind = 'presend_failed', bitOr(bitShiftLeft(toUInt64(1), 56), bitShiftRight(cityHash64(reason), 8)),
            round = 0 AND kind = 'failed' AND device_index < 6, bitOr(bitShiftLeft(toUInt64(2 + device_index), 56), bitShiftRight(cityHash64(reason), 8)),
            18446744073709551615) AS k,
        if(k = 18446744073709551615, unhex('FFFFFFFFFFFFFFFF'), concat(unhex(leftPad(hex(k), 16, '0')), reason)) AS kt
    FROM events
)
GROUP BY workspace_id, campaign_id, delivery_id
;
-- delivery_counts_fast_in (0005) with the failure from fail, not reasons:
-- failure_device (65535 for a pre-send failure, else the device of the
-- failure key; 65535 when there is none), reason (the reason the rule
-- picks, should the delivery have FAILED; '' when there is none) and
-- failure_key (the overview groups by it and reads the reason text after,
-- from fail_text, for the few keys that failed). delivery_created is
-- computed from the id after the merge, which costs less than carrying it
-- through the GROUP BY. The partitions are picked by indexHint: the choice
-- is whole parts, which the index analysis makes exactly, so no row needs
-- the test (which cost a twentieth of the overview). The range, too, is
-- an indexHint for the index analysis, and each row's test is on the id it
-- is read for anyway (delivery_created is UUIDv7ToDateTime(delivery_id),
-- MATERIALIZED): reading the column cost another twentieth.
CREATE OR REPLACE VIEW delivery_counts_fast_in AS
SELECT
    ws AS workspace_id, cp AS campaign_id, UUIDv7ToDateTime(delivery_id) AS delivery_created, delivery_id, toUInt16(0) AS r,
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
    toUInt16(if(bitShiftRight(fl, 56) BETWEEN 2 AND 7, bitShiftRight(fl, 56) - 2, 65535)) AS failure_device,
    if(fl = 18446744073709551615, '', substring(ft, 9)) AS reason,
    fl AS failure_key
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
        SELECT delivery_id, workspace_id AS ws, campaign_id AS cp, bits AS x, fail AS fl, fail_text AS ft
        FROM delivery_states FINAL
        WHERE ({workspace:String} = '' OR workspace_id = {workspace:String})
          AND ({campaign:UUID} = toUUID('00000000-0000-0000-0000-000000000000') OR campaign_id = {campaign:UUID})
          AND indexHint(delivery_created >= {from:DateTime64(3)} AND delivery_created < {to:DateTime64(3)})
          AND UUIDv7ToDateTime(delivery_id) >= {from:DateTime64(3)} AND UUIDv7ToDateTime(delivery_id) < {to:DateTime64(3)}
          AND indexHint(has({merged:Array(String)}, _partition_id)) AND NOT bitTest(bits, 56)
        UNION ALL
        SELECT delivery_id, any(workspace_id) AS ws, any(campaign_id) AS cp, groupBitOr(bits) AS x, min(fail) AS fl, min(fail_text) AS ft
        FROM delivery_states
        WHERE ({workspace:String} = '' OR workspace_id = {workspace:String})
          AND ({campaign:UUID} = toUUID('00000000-0000-0000-0000-000000000000') OR campaign_id = {campaign:UUID})
          AND indexHint(delivery_created >= {from:DateTime64(3)} AND delivery_created < {to:DateTime64(3)})
          AND UUIDv7ToDateTime(delivery_id) >= {from:DateTime64(3)} AND UUIDv7ToDateTime(delivery_id) < {to:DateTime64(3)}
          AND indexHint(NOT has({merged:Array(String)}, _partition_id))
        GROUP BY delivery_id
        HAVING NOT bitTest(x, 56)
    )
)
;
-- delivery_counts_slow_in (0007) with failure_device and reason by the
-- same rule, computed from the events (any round, any device), in place of
-- first_failed and rs: per device, its failed (or, at the delivery level,
-- presend_failed) event with the smallest failure key's reason; per round,
-- the pre-send one when there is one, else that of the smallest device
-- index with a failed event.
CREATE OR REPLACE VIEW delivery_counts_slow_in AS
SELECT
    ws AS workspace_id, cp AS campaign_id, dc AS delivery_created, delivery_id,
    toUInt16(greatest(max_key, 0)) AS r,
    if(max_key >= -1, c.1, 0) AS n_dev, if(max_key >= -1, c.2, 0) AS n_sent, if(max_key >= -1, c.3, 0) AS n_bounced,
    if(max_key >= -1, c.4, 0) AS n_failed, if(max_key >= -1, c.5, 0) AS n_suppressed, if(max_key >= -1, c.6, 0) AS n_delivered,
    if(max_key >= -1, c.7, 0) AS n_opened, if(max_key >= -1, c.8, 0) AS n_attempted, if(max_key >= -1, c.9, 0) AS n_sdk,
    max_key >= -1 AND c.10 AS presend,
    conv AS converted,
    if(max_key >= -1 AND NOT c.10, c.11, toUInt16(65535)) AS failure_device,
    if(max_key >= -1, c.12, '') AS reason
FROM (
    SELECT delivery_id, any(ws) AS ws, any(cp) AS cp, any(dc) AS dc,
        max(key) AS max_key, argMax(counts, key) AS c, max(round_conv) AS conv
    FROM (
        SELECT delivery_id, any(ws) AS ws, any(cp) AS cp, any(dc) AS dc, round,
            if(max(bitAnd(kb, 1534) != 0), toInt32(round), if(round = 0, -1, -2)) AS key,
            max(bitAnd(kb, 512) != 0) AS round_conv,
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
                toUInt16(minIf(device_index, device_index < 65535 AND bitAnd(kb, 32) != 0) + 65535 * (countIf(device_index < 65535 AND bitAnd(kb, 32) != 0) = 0)),
                if(max(bitAnd(kb, 1024) != 0), anyIf(dev_reason, device_index = 65535),
                    argMinIf(dev_reason, device_index, device_index < 65535 AND bitAnd(kb, 32) != 0))
            ) AS counts
        FROM (
            SELECT ev.delivery_id AS delivery_id, any(ev.workspace_id) AS ws, any(ev.campaign_id) AS cp, any(ev.delivery_created) AS dc,
                ev.round AS round, ev.device_index AS device_index,
                groupBitOr(bitOr(bitShiftLeft(toUInt16(1), toUInt8(ev.kind)), 4 * (ev.attempt > 0))) AS kb,
                max(ev.kind = 'targeted' AND ev.status_code = 1) AS sdk,
                argMinIf(ev.reason, bitShiftRight(cityHash64(ev.reason), 8), ev.kind IN ('failed', 'presend_failed')) AS dev_reason
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
-- delivery_status_in (0005) over the new columns: failure_reason is the
-- views' reason when the delivery FAILED, else ''; failure_device as the
-- views give it.
CREATE OR REPLACE VIEW delivery_status_in AS
SELECT
    workspace_id, campaign_id, delivery_created, delivery_id, r,
    n_dev, n_sent, n_bounced, n_failed, n_suppressed,
    toUInt32(n_dev - n_sent - n_bounced - n_failed - n_suppressed) AS n_pending,
    n_delivered, n_opened, n_attempted, n_sdk, presend, converted,
    CAST(multiIf(presend, 5, n_dev = 0 OR n_pending > 0, 1, n_sent > 0, 2, n_suppressed = n_dev, 4, n_failed = 0, 3, 5)
        AS Enum8('ATTEMPTED' = 1, 'SENT' = 2, 'BOUNCED' = 3, 'SUPPRESSED' = 4, 'FAILED' = 5)) AS send_state,
    CAST(multiIf(presend, 5, converted, 8, n_opened > 0, 7, n_delivered > 0, 6, toInt8(send_state))
        AS Enum8('ATTEMPTED' = 1, 'SENT' = 2, 'BOUNCED' = 3, 'SUPPRESSED' = 4, 'FAILED' = 5, 'DELIVERED' = 6, 'OPENED' = 7, 'CONVERTED' = 8)) AS status,
    failure_device,
    if(send_state = 'FAILED', reason, '') AS failure_reason
FROM (
    SELECT workspace_id, campaign_id, delivery_created, delivery_id, r, n_dev, n_sent, n_bounced, n_failed, n_suppressed,
        n_delivered, n_opened, n_attempted, n_sdk, presend, converted, failure_device, reason
    FROM delivery_counts_fast_in(workspace = {workspace:String}, campaign = {campaign:UUID}, from = {from:DateTime64(3)}, to = {to:DateTime64(3)}, merged = [])
    UNION ALL
    SELECT workspace_id, campaign_id, delivery_created, delivery_id, r, n_dev, n_sent, n_bounced, n_failed, n_suppressed,
        n_delivered, n_opened, n_attempted, n_sdk, presend, converted, failure_device, reason
    FROM delivery_counts_slow_in(workspace = {workspace:String}, campaign = {campaign:UUID}, from = {from:DateTime64(3)}, to = {to:DateTime64(3)})
)
;
-- The failure keys of the events written before the view above changed.
INSERT INTO delivery_states (workspace_id, campaign_id, delivery_id, bits, fail, fail_text)
SELECT workspace_id, campaign_id, delivery_id, toUInt64(0), min(k), min(kt)
FROM (
    SELECT workspace_id, campaign_id, delivery_id,
        if(kind = 'presend_failed', bitOr(bitShiftLeft(toUInt64(1), 56), bitShiftRight(cityHash64(reason), 8)),
            bitOr(bitShiftLeft(toUInt64(2 + device_index), 56), bitShiftRight(cityHash64(reason), 8))) AS k,
        concat(unhex(leftPad(hex(k), 16, '0')), reason) AS kt
    FROM events
    WHERE round = 0 AND (kind = 'presend_failed' OR (kind = 'failed' AND device_index < 6))
)
GROUP BY workspace_id, campaign_id, delivery_id
;
ALTER TABLE delivery_states DROP COLUMN IF EXISTS reasons
;

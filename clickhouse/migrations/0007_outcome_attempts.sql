-- 0007_outcome_attempts: fewer rows per push.
--
-- 1. An event with attempt > 0 is that attempt, whatever its kind: the
--    worker now writes one row for a send's final attempt (its outcome,
--    sent, bounced or failed, with the attempt number) instead of an
--    attempt row and an outcome row with attempt 0. Attempt rows remain
--    for the attempts that were not final (transient failures, retried).
--    Rows of the earlier shape read as before (its outcomes have attempt
--    0), so a delivery may hold rows of either shape; the readers below
--    and Herald's (clickhouse/status.go) count both.
-- 2. delivery_devices and its view are dropped: every targeted event
--    carries its token and platform (0001), and Herald now reads them
--    from there (Store.Status, Store.TargetedDevice), so the table only
--    cost a row per targeted device and its merges.
--
-- Every statement can run again: MODIFY QUERY and CREATE OR REPLACE VIEW
-- replace, DROP ... IF EXISTS drops once.

-- delivery_states_mv (0005) with the attempted plane (4096) also set by
-- any event with an attempt number.
ALTER TABLE delivery_states_mv MODIFY QUERY
SELECT workspace_id, campaign_id, delivery_id, groupBitOr(b) AS bits,
    groupArrayIf((toUInt32(round) * 65536 + if(kind = 'presend_failed', 65535, device_index), reason), kind IN ('failed', 'presend_failed')) AS reasons
FROM (
    SELECT workspace_id, campaign_id, delivery_id, round, device_index, kind, reason,
        if(round = 0 AND device_index < 6,
            bitShiftLeft(toUInt64(1 + multiIf(kind = 'targeted', 64 * (status_code = 1), kind = 'attempt', 4096, kind = 'sent', 262144,
                kind = 'bounced', 16777216, kind = 'failed', 1073741824, kind = 'suppressed', 68719476736,
                kind = 'delivered', 4398046511104, kind = 'opened', 4398046511104 + 281474976710656, 0)
                + 4096 * (kind != 'attempt' AND attempt > 0)), device_index), 0)
        + bitShiftLeft(toUInt64(kind = 'converted'), 54)
        + bitShiftLeft(toUInt64(round = 0 AND kind = 'presend_failed'), 55)
        + bitShiftLeft(toUInt64((round > 0 AND kind != 'converted') OR (round = 0 AND device_index >= 6 AND device_index < 65535)), 56) AS b
    FROM events
)
GROUP BY workspace_id, campaign_id, delivery_id
;
-- delivery_counts_slow_in (0005), with the attempt bit (4) also set by
-- any event with an attempt number.
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
                groupBitOr(bitOr(bitShiftLeft(toUInt16(1), toUInt8(ev.kind)), 4 * (ev.attempt > 0))) AS kb,
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
DROP VIEW IF EXISTS delivery_devices_mv
;
DROP TABLE IF EXISTS delivery_devices
;

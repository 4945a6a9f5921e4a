-- 0006_views: ready SQL for analysts, the same SQL the API runs
-- (clickhouse/overview_sql.go, deliverySendsCore; a test checks they match).
--
-- delivery_status: one row per delivery that has events: workspace_id,
-- campaign_id, delivery_id, created, r (newest round), device counts of that
-- round (n_dev, n_sent, n_bounced, n_failed, n_suppressed, n_pending,
-- n_delivered, n_opened, n_attempted), converted, send_state, failure_reason,
-- status (DESIGN.md's delivery status), converted_us. A delivery with no
-- event yet is not in the view (its status is ATTEMPTED).
CREATE VIEW IF NOT EXISTS delivery_status AS
SELECT
    workspace_id,
    campaign_id,
    delivery_id,
    created,
    r,
    n_dev, n_sent, n_bounced, n_failed, n_suppressed,
    n_dev - n_sent - n_bounced - n_failed - n_suppressed AS n_pending,
    n_delivered, n_opened, n_attempted, converted,
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
                minIf(at_us, kind = 'converted') AS dev_converted_us
            FROM events
            WHERE 1
            GROUP BY delivery_id, round, device_index
        )
        GROUP BY delivery_id, round
    )
    GROUP BY delivery_id
)
;
-- campaign_funnel: one row per campaign: the overview's person-level figures
-- over all time (deliveries with events; see delivery_status).
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
    countIf(converted = 1) AS converted,
    if(recipients = 0, 0, delivered / recipients) AS delivery_rate,
    if(delivered = 0, 0, opened / delivered) AS open_rate,
    if(recipients = 0, 0, converted / recipients) AS conversion_rate,
    if(sends = 0, 0, bounced / sends) AS bounce_rate
FROM delivery_status
GROUP BY workspace_id, campaign_id
;

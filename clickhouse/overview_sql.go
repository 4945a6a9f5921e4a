package clickhouse

import "strings"

// Event kinds as bits (1 << the kind's Enum8 value), folded per device with
// groupBitOr: targeted 2, attempt 4, sent 8, bounced 16, failed 32,
// suppressed 64, delivered 128, opened 256, converted 512, presend 1024.
//
// deliverySendsSQL is the shared core of the overview and the analysts'
// views: one row per delivery with events, from the events table alone.
// Level 1 folds each (delivery, round, device) into a bitmask; level 2 sums
// each (delivery, round); level 3 keeps each delivery's newest round (the
// newest with an event other than converted) and whether it ever converted.
// Its WHERE clause is spliced in by the callers below (constant text only).
//
// Columns: workspace_id, campaign_id, delivery_id, created, r (the newest
// round), n_dev, n_sent, n_bounced, n_failed, n_suppressed, n_pending,
// n_delivered, n_opened, n_attempted, converted, send_state (ATTEMPTED SENT
// BOUNCED SUPPRESSED FAILED: the status without the app's reports),
// failure_reason, status (DESIGN.md's delivery status), converted_us.
const deliverySendsCore = `
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
            WHERE %s
            GROUP BY delivery_id, round, device_index
        )
        GROUP BY delivery_id, round
    )
    GROUP BY delivery_id
)`

// overviewSQL aggregates deliverySendsCore for one campaign and creation
// range into groups of (bucket, send_state, failure reason); Go sums the
// groups into the totals, the series and the failures by reason.
// Params, in order: granularity ('HOUR' or 'DAY'); for the SDK subquery
// workspace_id, from, to, workspace_id, campaign_id, from, to, workspace_id;
// for the core workspace_id, campaign_id, from, to.
// Columns: bucket, send_state, reason, deliveries, delivered, opened,
// converted, sdk (recipients with a device token that ever reported),
// dev_targeted, dev_sent, dev_bounced, dev_failed, dev_suppressed,
// dev_pending, dev_delivered, dev_opened.
var overviewSQL = `
SELECT
    if(? = 'DAY', toStartOfDay(created), toStartOfHour(created)) AS bucket,
    send_state,
    if(send_state = 'FAILED', failure_reason, '') AS reason,
    count() AS deliveries,
    countIf(n_delivered > 0) AS delivered,
    countIf(n_opened > 0) AS opened,
    countIf(converted = 1) AS converted_n,
    countIf(send_state = 'SENT' AND (delivery_id, r) IN (
        SELECT delivery_id, round FROM delivery_devices
        WHERE workspace_id = ? AND delivery_created >= ? AND delivery_created < ?
          AND delivery_id IN (SELECT id FROM deliveries WHERE workspace_id = ? AND campaign_id = ? AND created_at >= ? AND created_at < ?)
          AND token IN (SELECT token FROM reporting_tokens WHERE workspace_id = ?))) AS sdk,
    toUInt64(sum(n_dev)), toUInt64(sum(n_sent)), toUInt64(sum(n_bounced)), toUInt64(sum(n_failed)),
    toUInt64(sum(n_suppressed)), toUInt64(sum(n_pending)), toUInt64(sum(n_delivered)), toUInt64(sum(n_opened))
FROM (` + sprintfCore("workspace_id = ? AND campaign_id = ? AND delivery_created >= ? AND delivery_created < ?") + `)
GROUP BY bucket, send_state, reason`

// createdSQL counts a campaign's deliveries per bucket, those without any
// event yet included. Params: granularity, workspace_id, campaign_id, from,
// to. Columns: bucket, created.
const createdSQL = `
SELECT if(? = 'DAY', toStartOfDay(created_at), toStartOfHour(created_at)) AS bucket, uniqExact(id) AS created
FROM deliveries
WHERE workspace_id = ? AND campaign_id = ? AND created_at >= ? AND created_at < ?
GROUP BY bucket`

func sprintfCore(where string) string { return strings.Replace(deliverySendsCore, "%s", where, 1) }

// failuresSQL counts a campaign's FAILED deliveries by reason. Params:
// workspace_id, campaign_id, from, to. Columns: failure_reason, deliveries.
var failuresSQL = `SELECT failure_reason, count() FROM (` +
	sprintfCore("workspace_id = ? AND campaign_id = ? AND delivery_created >= ? AND delivery_created < ?") +
	`) WHERE send_state = 'FAILED' GROUP BY failure_reason`

package clickhouse

import (
	"fmt"
	"strings"
)

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
// n_delivered, n_opened, n_attempted, n_sdk (devices that had reported a
// metric before they were targeted, or reported one for this delivery),
// converted, send_state (ATTEMPTED SENT
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
            WHERE %s
            GROUP BY delivery_id, round, device_index
        )
        GROUP BY delivery_id, round
    )
    GROUP BY delivery_id
)`

// overviewGroups is the outer aggregation both overview queries share:
// groups of (bucket, send_state, failure reason) of the per-delivery rows.
// Param: granularity ('HOUR' or 'DAY'). Columns: bucket, send_state, reason,
// deliveries, delivered, opened, converted, sdk (recipients with an SDK
// device), dev_targeted, dev_sent, dev_bounced, dev_failed, dev_suppressed,
// dev_pending, dev_delivered, dev_opened.
const overviewGroups = `
SELECT
    if(? = 'DAY', toStartOfDay(created), toStartOfHour(created)) AS bucket,
    send_state,
    if(send_state = 'FAILED', failure_reason, '') AS reason,
    count() AS deliveries,
    countIf(n_delivered > 0) AS delivered,
    countIf(n_opened > 0) AS opened,
    countIf(converted = 1) AS converted_n,
    countIf(send_state = 'SENT' AND n_sdk > 0) AS sdk,
    toUInt64(sum(n_dev)), toUInt64(sum(n_sent)), toUInt64(sum(n_bounced)), toUInt64(sum(n_failed)),
    toUInt64(sum(n_suppressed)), toUInt64(sum(n_pending)), toUInt64(sum(n_delivered)), toUInt64(sum(n_opened))
FROM (%s)
GROUP BY bucket, send_state, reason`

// retriedSQL lists a campaign's deliveries with a retry round, which the
// fast path leaves to the exact one. Params: workspace_id, campaign_id,
// from, to.
const retriedSQL = `SELECT delivery_id FROM delivery_masks
WHERE workspace_id = ? AND campaign_id = ? AND delivery_created >= ? AND delivery_created < ? AND round > 0`

// overviewRetriedSQL is the exact path: deliverySendsCore over the events of
// the campaign's retried deliveries. Params: granularity; workspace_id,
// campaign_id, from, to; the same four for retriedSQL.
var overviewRetriedSQL = strings.Replace(overviewGroups, "%s",
	sprintfCore("workspace_id = ? AND campaign_id = ? AND delivery_created >= ? AND delivery_created < ? AND delivery_id IN ("+retriedSQL+")"), 1)

// overviewFastSQL is the fast path: one pre-aggregated delivery_masks row
// per delivery (no retry round), decoded with bit arithmetic; the send
// state is grouped as a number (1 ATTEMPTED, 2 SENT, 3 BOUNCED,
// 4 SUPPRESSED, 5 FAILED) and named after grouping; failure reasons come
// from failuresFastSQL. Params: granularity; workspace_id, campaign_id,
// from, to (and the same four again for retriedSQL when
// excludeRetried). Columns: as overviewGroups.
func overviewFastSQL(excludeRetried bool) string {
	return `
SELECT
    if(? = 'DAY', toStartOfDay(created), toStartOfHour(created)) AS bucket,
    transform(state, [1, 2, 3, 4, 5], ['ATTEMPTED', 'SENT', 'BOUNCED', 'SUPPRESSED', 'FAILED'], '') AS send_state,
    '' AS reason,
    count() AS deliveries,
    countIf(n_delivered > 0) AS delivered,
    countIf(n_opened > 0) AS opened,
    countIf(converted = 1) AS converted_n,
    countIf(state = 2 AND n_sdk > 0) AS sdk,
    toUInt64(sum(n_dev)), toUInt64(sum(n_sent)), toUInt64(sum(n_bounced)), toUInt64(sum(n_failed)),
    toUInt64(sum(n_suppressed)), toUInt64(sum(n_pending)), toUInt64(sum(n_delivered)), toUInt64(sum(n_opened))
FROM (` + maskStates(rangeWhere+notRetried(excludeRetried)) + `)
GROUP BY bucket, state`
}

// failuresFastSQL counts the fast path's FAILED deliveries by reason: only
// deliveries with a delivery_failures row (a few percent) are decoded.
// Params: workspace_id, campaign_id, from, to (mask rows); the same four
// for the delivery_failures id list; the same four for retriedSQL when
// excludeRetried; the same four for the reasons. Columns: bucket (the
// hour the delivery was created), reason, count.
func failuresFastSQL(excludeRetried bool) string {
	return `
SELECT toStartOfHour(created) AS bucket, if(bitAnd(fl, 1024) != 0, pr, fr) AS reason, count()
FROM (` + maskStates(rangeWhere+" AND delivery_id IN (SELECT delivery_id FROM delivery_failures WHERE "+rangeWhere+")"+notRetried(excludeRetried)) + `)
ANY INNER JOIN (
    SELECT delivery_id, minIfMerge(presend_reason) AS pr, argMinIfMerge(failed_reason) AS fr
    FROM delivery_failures
    WHERE ` + rangeWhere + `
    GROUP BY delivery_id
) USING delivery_id
WHERE state = 5
GROUP BY bucket, reason`
}

// rangeWhere selects a campaign's pre-aggregated rows in a creation range.
// Params: workspace_id, campaign_id, from, to.
const rangeWhere = "workspace_id = ? AND campaign_id = ? AND delivery_created >= ? AND delivery_created < ?"

// notRetried leaves out the retried deliveries (the exact path counts
// them); only added when there are some. Params: as retriedSQL.
func notRetried(excludeRetried bool) string {
	if !excludeRetried {
		return ""
	}
	return " AND delivery_id NOT IN (" + retriedSQL + ")"
}

// maskStates decodes delivery_masks rows (grouped by delivery) into
// deliverySendsCore's counts and a numeric send state. A count of devices
// is cnt(x) for an x with only bits 0, 8, 16, …: multiplying by
// 0x0101010101010101 sums the bytes into the top byte.
func maskStates(where string) string {
	const L = "72340172838076673" // 0x0101010101010101
	b := func(m string, k int) string {
		return fmt.Sprintf("bitAnd(bitShiftRight(%s, %d), %s)", m, k, L)
	}
	cnt := func(x string) string { return "bitShiftRight((" + x + ") * " + L + ", 56)" }
	not := func(x string) string { return "bitNot(" + x + ")" }
	and := func(xs ...string) string {
		out := xs[0]
		for _, x := range xs[1:] {
			out = "bitAnd(" + out + ", " + x + ")"
		}
		return out
	}
	or := func(xs ...string) string {
		out := xs[0]
		for _, x := range xs[1:] {
			out = "bitOr(" + out + ", " + x + ")"
		}
		return out
	}
	both := func(f func(m string) string) string {
		return "toUInt64(" + cnt(f("m0")) + " + " + cnt(f("m1")) + ")"
	}
	present := func(m string) string {
		return or(b(m, 0), b(m, 1), b(m, 2), b(m, 3), b(m, 4), b(m, 5), b(m, 6), b(m, 7))
	}
	sent := func(m string) string { return b(m, 2) }
	bounced := func(m string) string { return and(b(m, 3), not(b(m, 2))) }
	failed := func(m string) string { return and(b(m, 4), not(b(m, 2)), not(b(m, 3))) }
	suppressed := func(m string) string { return and(b(m, 5), not(b(m, 2)), not(b(m, 3)), not(b(m, 4))) }
	return `
SELECT
    delivery_id,
    created,
    fl,
    ` + both(present) + ` AS n_dev,
    ` + both(sent) + ` AS n_sent,
    ` + both(bounced) + ` AS n_bounced,
    ` + both(failed) + ` AS n_failed,
    ` + both(suppressed) + ` AS n_suppressed,
    n_dev - n_sent - n_bounced - n_failed - n_suppressed AS n_pending,
    ` + both(func(m string) string { return b(m, 6) }) + ` AS n_delivered,
    ` + both(func(m string) string { return b(m, 7) }) + ` AS n_opened,
    ` + both(func(m string) string { return or(b(m, 1), b(m, 6)) }) + ` AS n_sdk,
    toUInt8(bitAnd(fl, 512) != 0) AS converted,
    multiIf(bitAnd(fl, 1024) != 0, 5,
            n_dev = 0 OR n_pending > 0, 1,
            n_sent > 0, 2,
            n_suppressed = n_dev, 4,
            n_failed = 0, 3,
            5) AS state
FROM (
    SELECT
        delivery_id,
        any(delivery_created) AS created,
        groupBitOrMerge(m0) AS m0,
        groupBitOrMerge(m1) AS m1,
        groupBitOrMerge(flags) AS fl
    FROM delivery_masks
    WHERE ` + where + `
    GROUP BY delivery_id
)`
}

// createdSQL counts a campaign's deliveries per bucket, those without any
// event yet included, from the campaign_created rollup. Params:
// granularity, workspace_id, campaign_id, from, to. Columns: bucket, created.
const createdSQL = `
SELECT if(? = 'DAY', toStartOfDay(hour), toStartOfHour(hour)) AS bucket, toUInt64(sum(created)) AS created
FROM campaign_created
WHERE workspace_id = ? AND campaign_id = ? AND hour >= toStartOfHour(?) AND hour < ?
GROUP BY bucket`

// createdEdgesSQL counts the deliveries of the partial hours at the ends of
// a range, from the deliveries table. Params: granularity, workspace_id,
// campaign_id, and two [lo, hi) ranges. Columns: bucket, created.
const createdEdgesSQL = `
SELECT if(? = 'DAY', toStartOfDay(created_at), toStartOfHour(created_at)) AS bucket, uniqExact(id) AS created
FROM deliveries
WHERE workspace_id = ? AND campaign_id = ?
  AND ((created_at >= ? AND created_at < ?) OR (created_at >= ? AND created_at < ?))
GROUP BY bucket`

// countRetriedSQL counts retried deliveries (see retriedSQL); the exact path
// runs only when there are some. Params: as retriedSQL.
var countRetriedSQL = "SELECT count() FROM (" + retriedSQL + ")"

func sprintfCore(where string) string { return strings.Replace(deliverySendsCore, "%s", where, 1) }

// hourChangesSQL reads when the events of each hour of a campaign's
// deliveries last changed. Params: workspace_id, campaign_id, from, to
// (whole hours). Columns: hour, changed, now() (the time the computation
// that follows is stored under).
const hourChangesSQL = `
SELECT hour, maxMerge(changed), now()
FROM hour_changes
WHERE workspace_id = ? AND campaign_id = ? AND hour >= ? AND hour < ?
GROUP BY hour`

// storedHoursSQL reads the stored computations of a campaign's hours.
// Params: workspace_id, campaign_id, from, to (whole hours). Columns: hour,
// computed, send_state, reason, then as overviewGroups from deliveries.
const storedHoursSQL = `
SELECT hour, computed, send_state, reason, deliveries, delivered, opened, converted, sdk,
    dev_targeted, dev_sent, dev_bounced, dev_failed, dev_suppressed, dev_pending, dev_delivered, dev_opened
FROM overview_hours
WHERE workspace_id = ? AND campaign_id = ? AND hour >= ? AND hour < ?`

// insertOverviewHours stores computed hour groups (Store.storeHours): a
// batch of rows (workspace_id, campaign_id, hour, computed, send_state,
// reason, then the figures as storedHoursSQL reads them).
const insertOverviewHours = `INSERT INTO overview_hours (workspace_id, campaign_id, hour, computed, send_state, reason,
    deliveries, delivered, opened, converted, sdk,
    dev_targeted, dev_sent, dev_bounced, dev_failed, dev_suppressed, dev_pending, dev_delivered, dev_opened)`

// settledHoursSQL lists the campaigns with hours that changed at or after a
// time and have settled, with the first and last such hour. Params: since,
// the settle margin in whole seconds. Columns: workspace_id, campaign_id,
// first hour, last hour.
const settledHoursSQL = `
SELECT workspace_id, campaign_id, min(hour), max(hour)
FROM (
    SELECT workspace_id, campaign_id, hour, maxMerge(changed) AS c
    FROM hour_changes
    GROUP BY workspace_id, campaign_id, hour
)
WHERE c >= ? AND toUInt32(c) + ? < toUInt32(now())
GROUP BY workspace_id, campaign_id`

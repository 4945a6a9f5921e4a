package clickhouse

// overviewSQL groups a campaign's deliveries that have events, created in
// [from, to), by the hour they were created in, their send state and (for
// FAILED ones) their failure reason, from delivery_status_in (the one
// status definition). Params: workspace, campaign, from, to (DateTime64(3)
// literals, chTime). Columns: hour, send_state, reason, deliveries,
// delivered, opened, converted, sdk (SENT deliveries with an SDK device),
// then the device totals targeted, sent, bounced, failed, suppressed,
// pending, delivered, opened.
const overviewSQL = `
SELECT toStartOfHour(delivery_created) AS hour, toString(send_state) AS state, if(send_state = 'FAILED', failure_reason, '') AS reason,
    count(), countIf(n_delivered > 0), countIf(n_opened > 0), countIf(converted), countIf(send_state = 'SENT' AND n_sdk > 0),
    sum(n_dev), sum(n_sent), sum(n_bounced), sum(n_failed), sum(n_suppressed), sum(n_pending), sum(n_delivered), sum(n_opened)
FROM delivery_status_in(workspace = ?, campaign = ?, from = ?, to = ?)
GROUP BY hour, state, reason`

// failuresSQL counts a campaign's FAILED deliveries by failure reason.
// Params: as overviewSQL. Columns: reason, count.
const failuresSQL = `
SELECT failure_reason, count()
FROM delivery_status_in(workspace = ?, campaign = ?, from = ?, to = ?)
WHERE send_state = 'FAILED'
GROUP BY failure_reason`

// createdSQL counts a campaign's deliveries per bucket, those without any
// event yet included, from the campaign_created rollup. Params:
// granularity ('HOUR' or 'DAY'), workspace_id, campaign_id, from, to (whole
// hours). Columns: bucket, created.
const createdSQL = `
SELECT if(? = 'DAY', toStartOfDay(hour), toStartOfHour(hour)) AS bucket, toUInt64(sum(created)) AS created
FROM campaign_created
WHERE workspace_id = ? AND campaign_id = ? AND hour >= toStartOfHour(toDateTime64(?, 6, 'UTC')) AND hour < toDateTime64(?, 6, 'UTC')
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

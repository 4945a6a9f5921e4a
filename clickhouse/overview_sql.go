package clickhouse

import "fmt"

// overviewCountsSQL groups a campaign's deliveries that have events,
// created in [from, to), read from %[1]s (delivery_counts_fast_in or
// _slow_in), by the bucket they were created in (%[2]s: toStartOfHour or
// toStartOfDay, the series' granularity: grouping a month by day leaves
// a tenth of the rows, and the query is a fifth faster), their device counts,
// pre-send failure and, for a delivery that may have FAILED (a pre-send
// failure or a failed device), its failure reason: delivery_status_in's
// rule (the smallest reason of the failure device's events in round r,
// from the delivery's own rs), evaluated only for those rows (if() skips
// the others). A narrow key: grouping by anything wider costs more than
// counting. Params: workspace, campaign, from, to (DateTime64(3) literals,
// chTime), for the fast view also merged (the partitions of one part,
// mergedPartitionsSQL). Columns: as groupRow.fields.
const overviewCountsSQL = `
SELECT %[2]s(delivery_created) AS bucket, n_dev, n_sent, n_bounced, n_failed, n_suppressed, presend,
    if(presend OR n_failed > 0,
        arrayMin(arrayFilter((why, k) -> k = toUInt32(r) * 65536 + if(presend, toUInt16(65535), first_failed), rs.2, rs.1)), '') AS reason,
    count(), countIf(n_delivered > 0), countIf(n_opened > 0), countIf(converted), countIf(n_sdk > 0),
    sum(n_delivered), sum(n_opened)
FROM %[1]s
GROUP BY bucket, n_dev, n_sent, n_bounced, n_failed, n_suppressed, presend, reason`

// The overview's two sources (most deliveries, and the slow ones) by
// granularity.
var (
	overviewFastSQL = map[Granularity]string{
		Hour: fmt.Sprintf(overviewCountsSQL, fastCountsSource, "toStartOfHour"),
		Day:  fmt.Sprintf(overviewCountsSQL, fastCountsSource, "toStartOfDay"),
	}
	overviewSlowSQL = map[Granularity]string{
		Hour: fmt.Sprintf(overviewCountsSQL, slowCountsSource, "toStartOfHour"),
		Day:  fmt.Sprintf(overviewCountsSQL, slowCountsSource, "toStartOfDay"),
	}
)

const (
	fastCountsSource = "delivery_counts_fast_in(workspace = ?, campaign = ?, from = ?, to = ?, merged = ?)"
	slowCountsSource = "delivery_counts_slow_in(workspace = ?, campaign = ?, from = ?, to = ?)"
)

// mergedPartitionsSQL lists the partitions of delivery_states that hold a
// single part, which delivery_counts_fast_in reads without merging rows
// (its merged parameter). A merge or insert after this read only makes
// the choice slower, never wrong. No params; one row, one array.
const mergedPartitionsSQL = `
SELECT groupArray(partition_id) FROM (
    SELECT partition_id FROM system.parts
    WHERE database = currentDatabase() AND table = 'delivery_states' AND active
    GROUP BY partition_id HAVING count() = 1
)`

// slowExistsSQL finds whether any delivery of a campaign created in [from,
// to) is slow (bit 56 of delivery_states.bits: a later round, or device 6
// and up), so that the overview reads delivery_counts_slow_in only then.
// Params: workspace, campaign, from, to. One row when some is.
const slowExistsSQL = `
SELECT toUInt8(1) FROM delivery_states
WHERE workspace_id = ? AND campaign_id = ? AND delivery_created >= ? AND delivery_created < ? AND bitTest(bits, 56)
LIMIT 1`

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

package clickhouse

import "fmt"

// overviewFastSQL groups a campaign's deliveries that have events, created
// in [from, to), read from delivery_counts_fast_in, by the bucket they were
// created in (%[1]s: toStartOfHour or toStartOfDay, the series'
// granularity: grouping a month by day leaves a tenth of the rows), their
// device counts packed into one key (8 bits each, from the low end:
// n_dev, n_sent, n_bounced, n_failed, n_suppressed, presend; a fast
// delivery has at most 6 devices; grouping by one number costs a third
// less than by six columns), and, for a delivery that may have FAILED (a
// pre-send failure or a failed device), its failure key (0008: the reason
// the rule picks, as a number; Store.failureTexts reads the texts of the
// keys of the groups that FAILED). Params: workspace, campaign, from, to
// (DateTime64(3) literals, chTime), merged (the partitions of one part,
// mergedPartitionsSQL). Columns: as groupRow.scanFast reads them.
const overviewFastSQL = `
SELECT %[1]s(delivery_created) AS bucket,
    toUInt64(n_dev + bitShiftLeft(n_sent, 8) + bitShiftLeft(n_bounced, 16) + bitShiftLeft(n_failed, 24)
        + bitShiftLeft(toUInt64(n_suppressed), 32) + bitShiftLeft(toUInt64(presend), 40)) AS counts,
    if(presend OR n_failed > 0, failure_key, 0) AS key,
    count(), countIf(n_delivered > 0), countIf(n_opened > 0), countIf(converted), countIf(n_sdk > 0),
    sum(n_delivered), sum(n_opened)
FROM delivery_counts_fast_in(workspace = ?, campaign = ?, from = ?, to = ?, merged = ?)
GROUP BY bucket, counts, key`

// overviewSlowSQL groups the slow deliveries (a retry round, or six
// devices and more) as overviewFastSQL does the others, by separate counts
// (a slow delivery has any number of devices) and the failure reason's
// text. Params: workspace, campaign, from, to. Columns: as
// groupRow.scanSlow reads them.
const overviewSlowSQL = `
SELECT %[1]s(delivery_created) AS bucket, n_dev, n_sent, n_bounced, n_failed, n_suppressed, presend,
    if(presend OR n_failed > 0, reason, '') AS why,
    count(), countIf(n_delivered > 0), countIf(n_opened > 0), countIf(converted), countIf(n_sdk > 0),
    sum(n_delivered), sum(n_opened)
FROM delivery_counts_slow_in(workspace = ?, campaign = ?, from = ?, to = ?)
GROUP BY bucket, n_dev, n_sent, n_bounced, n_failed, n_suppressed, presend, why`

// The overview's two sources by granularity.
var (
	overviewFast = map[Granularity]string{
		Hour: fmt.Sprintf(overviewFastSQL, "toStartOfHour"),
		Day:  fmt.Sprintf(overviewFastSQL, "toStartOfDay"),
	}
	overviewSlow = map[Granularity]string{
		Hour: fmt.Sprintf(overviewSlowSQL, "toStartOfHour"),
		Day:  fmt.Sprintf(overviewSlowSQL, "toStartOfDay"),
	}
)

// failureTextsSQL reads the reason of each failure key (0008) from
// delivery_states.fail_text, whose first 8 bytes are the key: a row of
// each, the read ending when every key has one (the keys of common reasons
// are met in the first granules). Params: workspace, campaign, from, to,
// keys (at most failureTextsBatch), the number of keys. Columns: key,
// reason.
const failureTextsSQL = `
SELECT fail, substring(fail_text, 9)
FROM delivery_states
WHERE workspace_id = ? AND campaign_id = ? AND delivery_created >= ? AND delivery_created < ? AND fail IN ?
LIMIT 1 BY fail LIMIT ?`

// failureTextsBatch bounds the keys of one failureTextsSQL: the driver
// writes them into the query's text, which the server refuses above
// max_query_size (256 KiB by default); 1,000 keys are about 21 KB.
const failureTextsBatch = 1000

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

-- 0010_overview_hours: the campaign overview keeps the figures of each
-- whole hour of deliveries it has computed, and uses them again while that
-- hour's deliveries have no new event (see clickhouse/overview.go).
--
-- hour_changes: when the events of a campaign's deliveries created in an
-- hour last changed. The view runs after the insert into events has
-- written its part, so now() here is no earlier than the moment the new
-- rows became visible: an hour computed by a query that started after
-- `changed` saw every one of them.
CREATE TABLE IF NOT EXISTS hour_changes (
    workspace_id String,
    campaign_id UUID,
    hour DateTime,
    changed AggregateFunction(max, DateTime)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (workspace_id, campaign_id, hour)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS hour_changes_mv TO hour_changes AS
SELECT workspace_id, campaign_id, toStartOfHour(delivery_created) AS hour, maxState(now()) AS changed
FROM events
GROUP BY workspace_id, campaign_id, hour
;
-- overview_hours: one computation of an hour's overview groups, written in
-- one insert: the rows of (send_state, reason) groups, failures-by-reason
-- rows (send_state 'REASON'), and one row with send_state '' that marks
-- the computation even when the hour has no deliveries. `computed` is the
-- server time just before the computing query started; the newest
-- computation of an hour is used while hour_changes.changed < computed
-- (and otherwise recomputed). Old computations stay (a few rows per hour
-- that changed); DROP PARTITION removes them with the events' month.
CREATE TABLE IF NOT EXISTS overview_hours (
    workspace_id String,
    campaign_id UUID,
    hour DateTime,
    computed DateTime,
    send_state String,
    reason String,
    deliveries UInt64,
    delivered UInt64,
    opened UInt64,
    converted UInt64,
    sdk UInt64,
    dev_targeted UInt64,
    dev_sent UInt64,
    dev_bounced UInt64,
    dev_failed UInt64,
    dev_suppressed UInt64,
    dev_pending UInt64,
    dev_delivered UInt64,
    dev_opened UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (workspace_id, campaign_id, hour, computed)
;
-- Hours with events from before this migration: changed now, so they are
-- computed once and then kept. An hour without a row has no events.
INSERT INTO hour_changes
SELECT workspace_id, campaign_id, toStartOfHour(delivery_created) AS hour, maxState(now())
FROM events
GROUP BY workspace_id, campaign_id, hour
;

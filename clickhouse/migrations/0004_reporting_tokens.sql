-- 0004_reporting_tokens: one row per device token that has ever reported
-- delivered or opened (key: workspace_id, token), filled by a materialized
-- view on events. SDK coverage reads it.
CREATE TABLE IF NOT EXISTS reporting_tokens (
    workspace_id String,
    token String,
    first_at DateTime
) ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, token)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS reporting_tokens_mv TO reporting_tokens AS
SELECT workspace_id, token, at AS first_at
FROM events
WHERE kind IN ('delivered', 'opened') AND token != ''
;

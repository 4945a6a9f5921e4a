-- 0002_person_events: events a person did (trackEvent, the Track API), the
-- input of conversion attribution. id is chosen by the caller (a UUID), so a
-- retried request writes the same row and it collapses on merge.
CREATE TABLE IF NOT EXISTS person_events (
    workspace_id String,
    person_id String,
    id UUID,
    name String,
    data String,
    at DateTime,
    at_us UInt64
) ENGINE = ReplacingMergeTree(at_us)
PARTITION BY toYYYYMM(at)
ORDER BY (workspace_id, person_id, name, id)
;

-- 0005_broadcasts: one row per broadcast (one message to many people).
-- person_ids is empty when all_persons = 1 (everyone in the workspace at
-- fan-out time). Progress counters live in Redis (see jobs/broadcast.go).
CREATE TABLE IF NOT EXISTS broadcasts (
    workspace_id String,
    id UUID,
    message_id UUID,
    audience Enum8('ALL_DEVICES' = 1, 'LAST_USED' = 2, 'CUSTOM_TOKEN' = 3),
    person_ids Array(String),
    all_persons UInt8,
    data String,
    total UInt64,
    created_at DateTime,
    created_us UInt64
) ENGINE = ReplacingMergeTree(created_us)
ORDER BY (workspace_id, id)
;

-- 0003_event_token: delivered and opened events carry the device token that
-- reported them (empty on every other event, where it costs nothing), so
-- "has this device ever reported a metric" (SDK coverage) needs no join.
-- Alone in its file: 18.16 has no ADD COLUMN IF NOT EXISTS.
ALTER TABLE events ADD COLUMN token String DEFAULT ''
;

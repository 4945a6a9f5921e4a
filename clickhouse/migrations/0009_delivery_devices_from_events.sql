-- 0009_delivery_devices_from_events: a targeted event now carries its
-- device's token (events.token) and platform (events.provider_id), and this
-- view writes the delivery_devices row from it, so the send path makes no
-- separate insert per delivery. Rows written before keep coming from the
-- old direct insert; both have the same key.
CREATE MATERIALIZED VIEW IF NOT EXISTS delivery_devices_mv TO delivery_devices AS
SELECT
    workspace_id,
    delivery_id,
    round,
    device_index,
    token,
    CAST(if(provider_id = 'ANDROID', 'ANDROID', 'IOS') AS Enum8('IOS' = 1, 'ANDROID' = 2)) AS platform,
    delivery_created,
    at_us AS created_us
FROM events
WHERE kind = 'targeted' AND device_index < 255 AND token != ''
;

-- 0008_delivery_overrides: a transactional send (POST /v1/send/push) may
-- override the message's fields. overrides is a JSON object (title, body,
-- link, image, sound, custom_data), each text a Liquid template; '' = none.
-- 18.16 has no ADD COLUMN IF NOT EXISTS, so this file holds one statement:
-- a failed run leaves nothing half-applied.
ALTER TABLE deliveries ADD COLUMN overrides String DEFAULT ''
;

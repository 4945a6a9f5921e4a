-- push_messages.options: the message's delivery options (priority, time
-- to live, silent, APNS and FCM options, custom payloads per platform) as
-- the JSON of providers.Options; '' for the default push.
ALTER TABLE push_messages ADD COLUMN IF NOT EXISTS options String DEFAULT '' AFTER data;
-- broadcasts.overrides: the overrides (jobs.Overrides as JSON: fields and
-- options replacing the message's) given to every delivery of the
-- broadcast; '' for none.
ALTER TABLE broadcasts ADD COLUMN IF NOT EXISTS overrides String DEFAULT '' AFTER data;
-- deliveries.send_at: when a scheduled send is due (sendAt, send_at);
-- 1970-01-01 (0) for a send that goes at once.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS send_at DateTime64(3, 'UTC') DEFAULT 0 AFTER overrides;
-- broadcasts.send_at: when a scheduled broadcast fans out; 1970-01-01
-- (0) for one that goes at once.
ALTER TABLE broadcasts ADD COLUMN IF NOT EXISTS send_at DateTime64(3, 'UTC') DEFAULT 0 AFTER overrides;
-- deliveries.send_to_unsubscribed: 1 when the send goes to the person
-- even if unsubscribed (POST /v1/send/push's send_to_unsubscribed,
-- sendPush's sendToUnsubscribed).
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS send_to_unsubscribed UInt8 DEFAULT 0 AFTER send_at;
-- push_messages.alias: the name (or Customer.io-style number) that POST
-- /v1/send/push takes as transactional_message_id instead of the id; ''
-- for none.
ALTER TABLE push_messages ADD COLUMN IF NOT EXISTS alias String DEFAULT '' AFTER name;
-- deliveries.draft: 1 for a send held as a draft (queue_draft): it goes
-- only when sendDraft releases it.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS draft UInt8 DEFAULT 0 AFTER send_to_unsubscribed;
-- person_emails: which person has which email attribute (lower-cased),
-- for POST /v1/send/push's identifiers.email: a row per person version
-- with an email, so a lookup checks the person's current attributes.
CREATE TABLE IF NOT EXISTS person_emails (
    workspace_id String,
    email String,
    person_id String,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (workspace_id, email, person_id)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS person_emails_mv TO person_emails AS
SELECT workspace_id, lower(JSONExtractString(attributes, 'email')) AS email, id AS person_id, updated_at
FROM persons
WHERE email != ''
;
INSERT INTO person_emails
SELECT workspace_id, lower(JSONExtractString(attributes, 'email')) AS email, id AS person_id, updated_at
FROM persons FINAL
WHERE email != ''
;

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

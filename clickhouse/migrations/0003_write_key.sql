-- workspaces.write_key_hash: the SHA-256 hex of the workspace's Data
-- Pipelines (Segment HTTP API) write key, '' when it has none (a workspace
-- made before this migration, until `herald workspace rotate-write-key`
-- gives it one). The key itself is never stored.
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS write_key_hash String DEFAULT '' AFTER site_id;

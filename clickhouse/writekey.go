package clickhouse

import (
	"context"
	"errors"
)

// selectWorkspaceByWriteKey: param write_key_hash; columns id, name,
// key_hash, site_id, write_key_hash, created_at of the workspace whose
// current version has that write key (an empty hash never matches).
const selectWorkspaceByWriteKey = `SELECT id, name, key_hash, site_id, write_key_hash, created_at
FROM workspaces FINAL WHERE write_key_hash = ? AND write_key_hash != '' LIMIT 1`

// WorkspaceByWriteKeyHash finds the workspace of a Data Pipelines write key
// hash; ErrNotFound when none has it.
func (s *Store) WorkspaceByWriteKeyHash(ctx context.Context, hash string) (Workspace, error) {
	var w Workspace
	err := s.conn.QueryRow(ctx, selectWorkspaceByWriteKey, hash).Scan(&w.ID, &w.Name, &w.KeyHash, &w.SiteID, &w.WriteKeyHash, &w.CreatedAt)
	return w, rowErr("workspace", err)
}

// selectWorkspaceByID: param id; columns id, name, key_hash, site_id,
// write_key_hash, created_at of the workspace's current version.
const selectWorkspaceByID = `SELECT id, name, key_hash, site_id, write_key_hash, created_at FROM workspaces FINAL WHERE id = ? LIMIT 1`

// WorkspaceByID reads a workspace; ErrNotFound when it does not exist.
func (s *Store) WorkspaceByID(ctx context.Context, id string) (Workspace, error) {
	var w Workspace
	err := s.conn.QueryRow(ctx, selectWorkspaceByID, id).Scan(&w.ID, &w.Name, &w.KeyHash, &w.SiteID, &w.WriteKeyHash, &w.CreatedAt)
	return w, rowErr("workspace", err)
}

// SetWriteKeyHash gives workspace id a new write key hash (a new version of
// its row, the other columns kept): the old write key stops matching.
func (s *Store) SetWriteKeyHash(ctx context.Context, id, hash string) error {
	if hash == "" {
		return errors.New("clickhouse: set write key: empty hash")
	}
	w, err := s.WorkspaceByID(ctx, id)
	if err != nil {
		return err
	}
	w.WriteKeyHash = hash
	return s.CreateWorkspace(ctx, w)
}

package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/server"
)

// rotateWriteKeyCmd is `herald workspace rotate-write-key ID`: it gives the
// workspace a new Data Pipelines write key and prints it. Running servers
// may accept the old key for up to 30 seconds more (their auth cache).
func rotateWriteKeyCmd(ctx context.Context, id string, args []string, logger *slog.Logger) error {
	a, err := openWorkspaceApp(ctx, "workspace rotate-write-key", args, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	key, err := rotateWriteKey(ctx, a.Store, id)
	if err != nil {
		return err
	}
	fmt.Printf("workspace: %s\nwrite key: %s\n", id, key)
	fmt.Println("the key is shown once; Herald stores only its hash; the old write key no longer works")
	return nil
}

// openWorkspaceApp parses a workspace command's flags and opens Herald on
// its ClickHouse and Redis.
func openWorkspaceApp(ctx context.Context, name string, args []string, logger *slog.Logger) (*app.App, error) {
	cfg, _, err := parseConfig(name, args)
	if err != nil {
		return nil, err
	}
	return app.Open(ctx, cfg, logger)
}

// rotateWriteKey stores a new write key for workspace id and returns it.
func rotateWriteKey(ctx context.Context, store *clickhouse.Store, id string) (string, error) {
	key, hash := server.NewWriteKey()
	if err := store.SetWriteKeyHash(ctx, id, hash); err != nil {
		return "", fmt.Errorf("rotate write key of %s: %w", id, err)
	}
	return key, nil
}

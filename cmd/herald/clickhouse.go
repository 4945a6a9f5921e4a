package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/chembed"
)

const clickhouseUsage = `usage: herald clickhouse <command> [flags]

commands:
  serve     run the embedded ClickHouse (chDB's engine behind a draining proxy) until SIGTERM
  version   print the version of the ClickHouse at --addr (native protocol)`

// clickhouseCmd runs `herald clickhouse ...`.
func clickhouseCmd(ctx context.Context, args []string, logger *slog.Logger) error {
	if len(args) == 0 {
		return errors.New(clickhouseUsage)
	}
	switch args[0] {
	case "serve":
		return clickhouseServe(ctx, args[1:], logger)
	case "version":
		return clickhouseVersion(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], clickhouseUsage)
}

// clickhouseServe parses the supervisor's flags and runs it.
func clickhouseServe(ctx context.Context, args []string, logger *slog.Logger) error {
	var c chembed.Config
	fs := flag.NewFlagSet("herald clickhouse serve", flag.ContinueOnError)
	fs.StringVar(&c.Lib, "lib", envOr("HERALD_CHDB_LIB", ""), "path of chDB's libchdb.so ($HERALD_CHDB_LIB)")
	fs.StringVar(&c.Loader, "loader", envOr("HERALD_CHDB_LOADER", ""), "path of the chserve loader built from scripts/chdb/chserve.c ($HERALD_CHDB_LOADER)")
	fs.StringVar(&c.Dir, "dir", ".data/clickhouse", "folder of data/, log/, state.json and supervisor.pid")
	fs.IntVar(&c.Port, "port", envInt("HERALD_CLICKHOUSE_PORT", chembed.DefaultPort), "native-protocol port on 127.0.0.1, through the proxy ($HERALD_CLICKHOUSE_PORT)")
	fs.IntVar(&c.HTTPPort, "http-port", envInt("HERALD_CLICKHOUSE_HTTP_PORT", chembed.DefaultHTTPPort), "HTTP port on 127.0.0.1 ($HERALD_CLICKHOUSE_HTTP_PORT)")
	fs.IntVar(&c.EnginePort, "engine-port", 0, "the engine's own native port (0: a free one at each start)")
	fs.IntVar(&c.MaxConns, "max-conns", chembed.DefaultMaxConns, "most proxied connections at once")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", chembed.DefaultDrainTimeout, "how long the proxy reads from the engine after a client left")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", chembed.DefaultStopTimeout, "how long a clean stop may take before SIGKILL")
	fs.DurationVar(&c.LivenessTimeout, "liveness-timeout", chembed.DefaultLivenessTimeout, "restart an engine whose /ping does not answer for this long (negative: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := chembed.New(c, logger.With("component", "chembed"))
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// clickhouseVersion prints SELECT version() of the server at --addr.
func clickhouseVersion(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("herald clickhouse version", flag.ContinueOnError)
	addr := fs.String("addr", envOr("HERALD_CLICKHOUSE_ADDR", clickhouse.DefaultAddr), "ClickHouse native address ($HERALD_CLICKHOUSE_ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(ctx, clickhouse.Options{Addr: *addr, Database: "default"})
	if err != nil {
		return err
	}
	defer conn.Close()
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return fmt.Errorf("clickhouse at %s: SELECT version(): %w", *addr, err)
	}
	fmt.Println(v)
	return nil
}

package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Options says where ClickHouse is and which database Herald uses.
type Options struct {
	// Addr is host:port of the native protocol (not HTTP). Default 127.0.0.1:9000.
	Addr string
	// Database is created by Open when missing. Default "herald". Letters,
	// digits and underscores only.
	Database string
	// Username defaults to "default"; Password may be empty.
	Username, Password string
	// MaxOpenConns caps the connection pool. Default (0) is the driver's: 10.
	MaxOpenConns int
}

// Defaults used by Open for the zero values of Options.
const (
	DefaultAddr     = "127.0.0.1:9000"
	DefaultDatabase = "herald"
)

var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.Username == "" {
		o.Username = "default"
	}
	return o
}

func (o Options) driverOptions(database string) *ch.Options {
	return &ch.Options{
		Protocol: ch.Native,
		Addr:     []string{o.Addr},
		Auth:     ch.Auth{Database: database, Username: o.Username, Password: o.Password},
		ClientInfo: ch.ClientInfo{
			Products: []struct{ Name, Version string }{{Name: "herald", Version: "dev"}},
		},
		// LZ4 is what clickhouse-client uses.
		Compression:  &ch.Compression{Method: ch.CompressionLZ4},
		DialTimeout:  5 * time.Second,
		MaxOpenConns: o.MaxOpenConns,
	}
}

// Open connects to ClickHouse over the native protocol, creates the database
// named in o if it is missing, and pings it. The returned conn is a pool; close
// it when done.
func Open(ctx context.Context, o Options) (driver.Conn, error) {
	o = o.withDefaults()
	if !databaseName.MatchString(o.Database) {
		return nil, fmt.Errorf("clickhouse: database name %q: use letters, digits and underscores", o.Database)
	}

	// The target database may not exist yet, and the server rejects a
	// connection to a missing database: create it from "default" first.
	admin, err := ch.Open(o.driverOptions("default"))
	if err != nil {
		return nil, connectError(o, err)
	}
	defer admin.Close()
	if err := admin.Ping(ctx); err != nil {
		return nil, connectError(o, err)
	}
	// The name is checked against databaseName above, so quoting is safe.
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+o.Database+"`"); err != nil {
		return nil, fmt.Errorf("clickhouse: create database %s: %w", o.Database, err)
	}

	conn, err := ch.Open(o.driverOptions(o.Database))
	if err != nil {
		return nil, connectError(o, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, connectError(o, err)
	}
	return conn, nil
}

// connectError adds how to start a local ClickHouse to errors that are not
// the server's own answer (those mean it is running).
func connectError(o Options, err error) error {
	var exc *ch.Exception
	if errors.As(err, &exc) {
		return fmt.Errorf("clickhouse: connect to %s as %s: %w", o.Addr, o.Username, err)
	}
	return fmt.Errorf("clickhouse: connect to %s: %w (is ClickHouse running? for local development start it with `bash scripts/services.sh`)", o.Addr, err)
}

package clickhouse

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// migrationFS holds the schema, applied by Migrate.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration files are named NNNN_name.sql (any number of digits, applied in
// numeric order, each number used once) and hold one or more statements. A
// statement ends at a ";" that ends a line (trailing spaces allowed), so a
// ";" on a line of its own also ends one; a ";" elsewhere in a line does not.
// Lines that start with "--" are comments and are dropped. Each statement is
// sent in its own call (the native protocol takes one statement a query).
//
// A migration is recorded in schema_migrations only after all its statements
// succeed; if one fails, the next run starts that migration from its first
// statement again, so write statements that can run twice (CREATE TABLE IF
// NOT EXISTS, ADD COLUMN IF NOT EXISTS).
var migrationName = regexp.MustCompile(`^([0-9]+)_([A-Za-z0-9_.-]+)\.sql$`)

// migrateLockTTL bounds how long a crashed migrator blocks the others.
const migrateLockTTL = 10 * time.Minute

// createSchemaMigrations creates the table recording applied migrations; one
// row per migration: version (the file's number), name (the file's name),
// applied_at (server time).
const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version UInt32,
	name String,
	applied_at DateTime
) ENGINE = MergeTree ORDER BY version`

// selectAppliedVersions lists applied migrations. No parameters; columns:
// version UInt32.
const selectAppliedVersions = `SELECT version FROM schema_migrations`

// insertSchemaMigration records one applied migration (batch columns:
// version UInt32, name String, applied_at time.Time).
const insertSchemaMigration = `INSERT INTO schema_migrations (version, name, applied_at)`

type migration struct {
	version    uint32
	name       string // file name
	statements []string
}

// Migrate applies the migrations embedded from clickhouse/migrations to the
// database conn uses, holding lock so that only one process migrates it at a
// time.
func Migrate(ctx context.Context, conn driver.Conn, lock Locker, logger *slog.Logger) error {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("clickhouse: migrate: %w", err)
	}
	return MigrateFS(ctx, conn, sub, lock, logger)
}

// MigrateFS applies the migrations in the top folder of fsys (files named
// NNNN_name.sql; other names are ignored) that schema_migrations does not
// list yet, in order, each once. It holds the lock "herald:migrate:<database>"
// while it works. Errors name the file and statement that failed.
func MigrateFS(ctx context.Context, conn driver.Conn, fsys fs.FS, lock Locker, logger *slog.Logger) error {
	if lock == nil {
		return errNilLocker
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	migrations, err := readMigrations(fsys)
	if err != nil {
		return err
	}

	var database string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&database); err != nil {
		return fmt.Errorf("clickhouse: migrate: current database: %w", err)
	}
	logger = logger.With("database", database)
	unlock, err := lock.Lock(ctx, "herald:migrate:"+database, migrateLockTTL)
	if err != nil {
		return fmt.Errorf("clickhouse: migrate %s: %w", database, err)
	}
	defer unlock()

	if err := conn.Exec(ctx, createSchemaMigrations); err != nil {
		return fmt.Errorf("clickhouse: migrate: create schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}

	n := 0
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		start := time.Now()
		for i, stmt := range m.statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("clickhouse: migration %s, statement %d of %d: %w", m.name, i+1, len(m.statements), err)
			}
		}
		if err := recordMigration(ctx, conn, m); err != nil {
			return err
		}
		n++
		logger.Info("applied migration", "file", m.name, "statements", len(m.statements), "took", time.Since(start).Round(time.Millisecond))
	}
	if n == 0 {
		logger.Debug("migrations up to date", "known", len(migrations))
	}
	return nil
}

func appliedVersions(ctx context.Context, conn driver.Conn) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, selectAppliedVersions)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: migrate: read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := make(map[uint32]bool)
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("clickhouse: migrate: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: migrate: read schema_migrations: %w", err)
	}
	return applied, nil
}

func recordMigration(ctx context.Context, conn driver.Conn, m migration) error {
	batch, err := conn.PrepareBatch(ctx, insertSchemaMigration)
	if err != nil {
		return fmt.Errorf("clickhouse: migration %s: record it: %w", m.name, err)
	}
	defer batch.Close()
	if err := batch.Append(m.version, m.name, time.Now().UTC().Truncate(time.Second)); err != nil {
		return fmt.Errorf("clickhouse: migration %s: record it: %w", m.name, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: migration %s: record it: %w", m.name, err)
	}
	return nil
}

// readMigrations reads and splits the migration files of fsys, in version order.
func readMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read migrations: %w", err)
	}
	var ms []migration
	seen := make(map[uint32]string)
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		match := migrationName.FindStringSubmatch(e.Name())
		if match == nil {
			return nil, fmt.Errorf("clickhouse: migration file %s: name it NNNN_name.sql", e.Name())
		}
		v, err := strconv.ParseUint(match[1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: migration file %s: version: %w", e.Name(), err)
		}
		if other, dup := seen[uint32(v)]; dup {
			return nil, fmt.Errorf("clickhouse: migration files %s and %s share version %d", other, e.Name(), v)
		}
		seen[uint32(v)] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("clickhouse: read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: uint32(v), name: e.Name(), statements: splitStatements(string(b))})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// splitStatements splits a migration file by the rule documented at
// migrationName: a statement ends at a ";" ending a line; "--" comment lines
// are dropped; empty statements are skipped. The ";" itself is not sent.
func splitStatements(src string) []string {
	var (
		stmts []string
		cur   []string
	)
	flush := func() {
		s := strings.TrimSpace(strings.Join(cur, "\n"))
		if s != "" {
			stmts = append(stmts, s)
		}
		cur = cur[:0]
	}
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		if strings.HasSuffix(line, ";") {
			cur = append(cur, strings.TrimSuffix(line, ";"))
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return stmts
}

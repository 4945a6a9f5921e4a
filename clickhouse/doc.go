// Package clickhouse is Herald's storage: migrations, the entity store
// (workspaces, persons, devices, credentials, campaigns, messages,
// deliveries), the batched event writer and the status queries. It keeps its
// own row types and imports no other Herald package but domain (the status
// rules, which the per-delivery reads apply in Go: see fold).
//
// Every statement is a named constant with a comment stating its parameters
// and result columns; values are always bound with the driver's "?" args.
package clickhouse

import "time"

// MinTime and MaxTime bound the times Herald stores. ClickHouse's
// DateTime64 columns hold 1900-01-01 to 2299-12-31
// (https://clickhouse.com/docs/sql-reference/data-types/datetime64), and
// clickhouse-go converts a time.Time through UnixNano, which ends on
// 2262-04-11: a time beyond either silently becomes another one (the zero
// time.Time is written as 1970). Callers refuse times outside
// [MinTime, MaxTime] before writing or querying with them.
var (
	MinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2261, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

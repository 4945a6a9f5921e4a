// Package clickhouse is Herald's storage: migrations, the entity store
// (workspaces, persons, devices, credentials, campaigns, messages,
// deliveries), the batched event writer and the status queries. It keeps its
// own row types and imports no other Herald package but domain (the status
// rules, which the per-delivery reads apply in Go: see fold).
//
// Every statement is a named constant with a comment stating its parameters
// and result columns; values are always bound with the driver's "?" args.
package clickhouse

package server

import (
	"errors"

	"github.com/heraldpush/herald/clickhouse"
)

// isOverloaded reports an event writer that refuses more work for now (its
// Redis buffer is full because ClickHouse is behind or down).
func isOverloaded(err error) bool { return errors.Is(err, clickhouse.ErrBufferFull) }

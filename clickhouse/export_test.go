package clickhouse

import "context"

// PointRead exposes Store.pointRead to the external tests.
func (s *Store) PointRead(ctx context.Context) context.Context { return s.pointRead(ctx) }

package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
)

// RefreshOverviews stores the settled overview hours of recently changed
// campaigns every interval (clickhouse.Store.StoreSettledHours), so that a
// campaign's overview is read from stored hours even on its first view.
// Workers sharing a Redis take turns: lockKey lets one of them refresh per
// interval. It returns when ctx ends; a failed refresh is logged and tried
// again at the next interval.
func RefreshOverviews(ctx context.Context, store *clickhouse.Store, rdb redis.UniversalClient, lockKey string, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	// Hours that changed in the last few intervals: a missed turn is caught
	// up by the next, and an older change waits for the overview to compute it.
	window := 4*interval + clickhouse.DefaultOverviewSettle
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := rdb.SetNX(ctx, lockKey, "1", interval*9/10).Result()
		if err != nil || !ok {
			if err != nil && ctx.Err() == nil {
				logger.Warn("overview refresh: redis", "err", err)
			}
			continue
		}
		start := time.Now()
		n, err := store.StoreSettledHours(ctx, start.Add(-window))
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("overview refresh failed; trying again next interval", "err", err, "campaigns", n)
			}
			continue
		}
		if n > 0 {
			logger.Debug("overview hours stored", "campaigns", n, "took", time.Since(start))
		}
	}
}

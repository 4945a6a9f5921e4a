package jobs

import (
	"context"
	"log/slog"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
)

// Live updates travel over Redis pub/sub, so a subscriber on any server
// process hears about events recorded by any other process:
//   - DeliveryChannel(id) gets a message when a delivery's events change;
//   - CampaignChannel(id) when any delivery of the campaign changes.
//
// Messages carry no data: subscribers re-read the state from ClickHouse,
// which already holds the events when the message is sent.

// DeliveryChannel names a delivery's change channel.
func DeliveryChannel(id string) string { return "herald:changed:delivery:" + id }

// CampaignChannel names a campaign's change channel.
func CampaignChannel(id string) string { return "herald:changed:campaign:" + id }

// PublishChanges announces the deliveries and campaigns of an inserted
// batch of events (the event writer's OnInserted hook). A lost message only
// delays an update: subscribers also re-read on their own schedule.
func PublishChanges(rdb redis.UniversalClient, logger *slog.Logger) func(ctx context.Context, events []clickhouse.Event) {
	return func(ctx context.Context, events []clickhouse.Event) {
		deliveries := map[uuid.UUID]bool{}
		campaigns := map[uuid.UUID]bool{}
		for _, e := range events {
			deliveries[e.DeliveryID] = true
			campaigns[e.CampaignID] = true
		}
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for id := range deliveries {
				p.Publish(ctx, DeliveryChannel(id.String()), "1")
			}
			for id := range campaigns {
				p.Publish(ctx, CampaignChannel(id.String()), "1")
			}
			return nil
		})
		if err != nil {
			logger.Warn("publish live updates", "err", err)
		}
	}
}

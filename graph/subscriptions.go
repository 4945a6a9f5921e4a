package graph

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/graph/model"
	"github.com/heraldpush/herald/jobs"
)

// Subscriptions send the current value first, then every change. A change
// is announced on Redis pub/sub (jobs.PublishChanges) after its events are
// in ClickHouse; the subscriber then re-reads the value and sends it if it
// differs from the last one sent. A slow re-check (recheckEvery) covers a
// lost announcement.
const (
	recheckEvery = 5 * time.Second
	// campaignEvery is the least time between two overview updates: a
	// broadcast to a million people must not flood the clients.
	campaignEvery = 400 * time.Millisecond
)

// subscribe opens a Redis subscription and waits until Redis confirms it,
// so no change between this call and the first read is missed.
func (r *Resolver) subscribe(ctx context.Context, channel string) (*redis.PubSub, error) {
	sub := r.Redis.Subscribe(ctx, channel)
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

func (r *Resolver) deliveryUpdated(ctx context.Context, id string) (<-chan *model.Delivery, error) {
	if _, err := workspace(ctx); err != nil {
		return nil, err
	}
	u, err := parseID("id", id)
	if err != nil {
		return nil, err
	}
	id = u.String() // the channel's name: the canonical form, whatever was given
	q := &queryResolver{r}
	first, err := q.Delivery(ctx, id) // NOT_FOUND for another workspace's delivery
	if err != nil {
		return nil, err
	}
	sub, err := r.subscribe(ctx, jobs.DeliveryChannel(id))
	if err != nil {
		return nil, err
	}
	// Re-read after subscribing: a change may have landed in between.
	read := func() (*model.Delivery, error) { return q.Delivery(ctx, id) }
	if cur, err := read(); err == nil {
		first = cur
	}
	return watch(ctx, r, sub, first, read, fingerprint, 0, "deliveryUpdated "+id), nil
}

func (r *Resolver) campaignOverviewUpdated(ctx context.Context, campaignID string) (<-chan *model.CampaignOverview, error) {
	_, c, err := findByID(ctx, "campaignId", campaignID, "campaign", r.Store.Campaign)
	if err != nil {
		return nil, err
	}
	camp := campaignModel(c)
	read := func() (*model.CampaignOverview, error) { return r.overview(ctx, camp, nil, nil, nil) }
	sub, err := r.subscribe(ctx, jobs.CampaignChannel(c.ID.String()))
	if err != nil {
		return nil, err
	}
	first, err := read()
	if err != nil {
		sub.Close()
		return nil, err
	}
	return watch(ctx, r, sub, first, read, overviewFingerprint, campaignEvery, "campaignOverviewUpdated "+campaignID), nil
}

// watch sends first, then every value read after a change announcement (or
// every recheckEvery) that differs from the last one sent by key; with
// minGap > 0 it waits out at least minGap between sends, folding every
// announcement that arrives meanwhile into one read. It closes the channel
// and the Redis subscription when ctx ends.
func watch[T any](ctx context.Context, r *Resolver, sub *redis.PubSub, first T, read func() (T, error), key func(T) string, minGap time.Duration, what string) <-chan T {
	out := make(chan T, 1)
	go func() {
		defer close(out)
		defer sub.Close()
		last := key(first)
		select {
		case out <- first:
		case <-ctx.Done():
			return
		}
		msgs := sub.Channel()
		tick := time.NewTicker(recheckEvery)
		defer tick.Stop()
		var lastSent time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-msgs:
				if !ok {
					return
				}
			case <-tick.C:
			}
			if wait := minGap - time.Since(lastSent); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case <-timer.C:
				}
			}
			drain(msgs)
			v, err := read()
			if err != nil {
				if ctx.Err() == nil {
					r.Logger.Warn("subscription re-read failed", "subscription", what, "err", err)
				}
				continue
			}
			if k := key(v); k != last {
				last, lastSent = k, time.Now()
				select {
				case out <- v:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// drain discards announcements already queued: one re-read answers them all.
func drain(msgs <-chan *redis.Message) {
	for {
		select {
		case <-msgs:
		default:
			return
		}
	}
}

func fingerprint[T any](v T) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// overviewFingerprint ignores the range's end (it moves with the clock).
func overviewFingerprint(o *model.CampaignOverview) string {
	c := *o
	c.To = time.Time{}
	return fingerprint(c)
}

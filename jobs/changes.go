package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
)

// Live updates travel over Redis pub/sub, so a subscriber on any server
// process hears about events recorded by any other process: after each
// insert of events, CampaignChannel(id) gets one message per campaign in
// it, whose payload is the ids of the campaign's deliveries that changed,
// 16 bytes each. A delivery's subscriber listens on its campaign's channel
// for its own id (ListenFor); a campaign's subscriber hears every message.
// One message per campaign and insert, rather than one per delivery
// (which a broadcast's insert of 20,000 events made 10,000 PUBLISH
// commands, two a push), costs Redis one command per insert.
//
// Subscribers re-read the state from ClickHouse, which already holds the
// events when the message is sent.

// CampaignChannel names a campaign's change channel (the zero UUID's for
// deliveries outside any campaign).
func CampaignChannel(id string) string { return "herald:changed:campaign:" + id }

// PublishChanges announces the deliveries of an inserted batch of events,
// by campaign (the event writer's OnInserted hook). Subscribers re-read
// only when told (ChangeFeed): a message lost to a dropped connection is
// made up for when the feed reconnects.
func PublishChanges(rdb redis.UniversalClient, logger *slog.Logger) func(ctx context.Context, events []clickhouse.Event) {
	return func(ctx context.Context, events []clickhouse.Event) {
		seen := map[uuid.UUID]bool{}
		changed := map[uuid.UUID][]byte{} // campaign: its deliveries' ids
		for _, e := range events {
			if !seen[e.DeliveryID] {
				seen[e.DeliveryID] = true
				changed[e.CampaignID] = append(changed[e.CampaignID], e.DeliveryID[:]...)
			}
		}
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for id, deliveries := range changed {
				p.Publish(ctx, CampaignChannel(id.String()), deliveries)
			}
			return nil
		})
		if err != nil {
			logger.Warn("publish live updates", "err", err)
		}
	}
}

// changed returns the deliveries a change message's payload names; all
// when it is not a list of ids (an older Herald's "1"), which names every
// delivery.
func changed(payload string) (ids map[uuid.UUID]bool, all bool) {
	if len(payload)%16 != 0 {
		return nil, true
	}
	ids = make(map[uuid.UUID]bool, len(payload)/16)
	for i := 0; i < len(payload); i += 16 {
		ids[uuid.UUID([]byte(payload[i:i+16]))] = true
	}
	return ids, false
}

// ChangeFeed is one process's subscriber side of PublishChanges: every
// subscription of the process shares its one Redis pub/sub connection.
// A channel is subscribed on Redis while it has a Listener, and
// unsubscribed when its last one closes. When Redis confirms a channel
// again without being asked (go-redis resubscribes after a reconnect, and
// messages may have been lost meanwhile), its listeners are told too, so
// nothing waits on a ticker for a lost announcement.
type ChangeFeed struct {
	ps     *redis.PubSub
	logger *slog.Logger

	mu     sync.Mutex
	chans  map[string]*feedChannel
	closed bool
	done   chan struct{}
}

type feedChannel struct {
	listeners map[*Listener]struct{}
	// inflight counts SUBSCRIBE/UNSUBSCRIBE commands sent and not yet
	// confirmed; Redis confirms in order, so at 0 Redis is where we are.
	inflight  int
	confirmed chan struct{} // closed when a SUBSCRIBE is confirmed
}

// Listener hears of a channel's changes: C gets a value (coalesced: one
// pending at most) after each announcement; it is closed when the feed is.
type Listener struct {
	C       chan struct{}
	feed    *ChangeFeed
	channel string
	// only, when set, is the one delivery the listener hears of: a
	// message that does not mention it is not passed on.
	only *uuid.UUID
	once sync.Once
}

// confirmWait bounds the wait for Redis to confirm a subscription.
const confirmWait = 10 * time.Second

// NewChangeFeed opens the process's pub/sub connection on rdb; Close it.
func NewChangeFeed(rdb redis.UniversalClient, logger *slog.Logger) *ChangeFeed {
	f := &ChangeFeed{ps: rdb.Subscribe(context.Background()), logger: logger, chans: map[string]*feedChannel{}, done: make(chan struct{})}
	go f.run(f.ps.ChannelWithSubscriptions(redis.WithChannelSize(1000)))
	return f
}

// Channels returns how many channels the feed is subscribed to.
func (f *ChangeFeed) Channels() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.chans)
}

// Listen subscribes to channel and returns once Redis has confirmed the
// subscription, so no announcement after Listen returns is missed.
func (f *ChangeFeed) Listen(ctx context.Context, channel string) (*Listener, error) {
	return f.listen(ctx, &Listener{C: make(chan struct{}, 1), feed: f, channel: channel})
}

// ListenFor is Listen for the messages of channel that mention delivery
// id (and for a resubscription, after which any may have been lost).
func (f *ChangeFeed) ListenFor(ctx context.Context, channel string, id uuid.UUID) (*Listener, error) {
	return f.listen(ctx, &Listener{C: make(chan struct{}, 1), feed: f, channel: channel, only: &id})
}

func (f *ChangeFeed) listen(ctx context.Context, l *Listener) (*Listener, error) {
	channel := l.channel
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, errors.New("jobs: change feed closed")
	}
	c := f.chans[channel]
	if c == nil {
		c = &feedChannel{listeners: map[*Listener]struct{}{}}
		f.chans[channel] = c
	}
	if len(c.listeners) == 0 {
		// Commands are written under f.mu so that a SUBSCRIBE and an
		// UNSUBSCRIBE of one channel reach Redis in the order decided here.
		c.inflight++
		c.confirmed = make(chan struct{})
		if err := f.ps.Subscribe(ctx, channel); err != nil {
			c.inflight--
			if c.inflight == 0 {
				delete(f.chans, channel)
			}
			f.mu.Unlock()
			return nil, fmt.Errorf("jobs: subscribe %s: %w", channel, err)
		}
	}
	c.listeners[l] = struct{}{}
	confirmed := c.confirmed
	f.mu.Unlock()
	timer := time.NewTimer(confirmWait)
	defer timer.Stop()
	select {
	case <-confirmed:
		return l, nil
	case <-ctx.Done():
		l.Close()
		return nil, ctx.Err()
	case <-timer.C:
		l.Close()
		return nil, fmt.Errorf("jobs: subscribe %s: Redis did not confirm within %s", channel, confirmWait)
	}
}

// Close stops listening; the channel is unsubscribed when no listener of
// the process is left.
func (l *Listener) Close() {
	l.once.Do(func() {
		f := l.feed
		f.mu.Lock()
		defer f.mu.Unlock()
		c := f.chans[l.channel]
		if c == nil {
			return
		}
		delete(c.listeners, l)
		if len(c.listeners) > 0 || f.closed {
			return
		}
		c.inflight++
		if err := f.ps.Unsubscribe(context.Background(), l.channel); err != nil {
			f.logger.Warn("unsubscribe", "channel", l.channel, "err", err)
			c.inflight--
			if c.inflight == 0 {
				delete(f.chans, l.channel)
			}
		}
	})
}

func (f *ChangeFeed) run(msgs <-chan any) {
	defer close(f.done)
	for m := range msgs {
		f.mu.Lock()
		switch m := m.(type) {
		case *redis.Message:
			if c := f.chans[m.Channel]; c != nil {
				c.notify(&m.Payload)
			}
		case *redis.Subscription:
			c := f.chans[m.Channel]
			if c == nil {
				break
			}
			if c.inflight == 0 {
				if m.Kind == "subscribe" { // resubscribed after a reconnect
					c.notify(nil)
				}
				break
			}
			if c.inflight--; c.inflight > 0 {
				break
			}
			if len(c.listeners) == 0 {
				delete(f.chans, m.Channel)
			} else if m.Kind == "subscribe" {
				close(c.confirmed)
			}
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.chans {
		for l := range c.listeners {
			close(l.C)
		}
	}
	f.chans = map[string]*feedChannel{}
}

// notify passes a message on to the listeners it concerns; payload nil
// concerns them all. The payload is decoded once, when a listener of one
// delivery needs it: a campaign's message may list 10,000 deliveries and
// its channel have a thousand such listeners.
func (c *feedChannel) notify(payload *string) {
	var ids map[uuid.UUID]bool
	all := payload == nil
	for l := range c.listeners {
		if l.only != nil && !all {
			if ids == nil {
				ids, all = changed(*payload)
			}
			if !all && !ids[*l.only] {
				continue
			}
		}
		select {
		case l.C <- struct{}{}:
		default: // one pending announcement stands for all
		}
	}
}

// Close closes the pub/sub connection; every Listener's C is closed.
func (f *ChangeFeed) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	err := f.ps.Close()
	<-f.done
	return err
}

package graph

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/graph/model"
	"github.com/heraldpush/herald/jobs"
)

// Subscriptions send the current value first, then every change. A change
// is announced on Redis pub/sub (jobs.PublishChanges) after its events are
// in ClickHouse; the process's one shared pub/sub connection (Live.Feed)
// tells the subscriber, which then re-reads the value and sends it if it
// differs from the last one sent. Nothing is read while nothing changed.
const (
	// campaignEvery is the least time between two overview updates: a
	// broadcast to a million people must not flood the clients.
	campaignEvery = 400 * time.Millisecond
	// broadcastEvery is how often a broadcast's progress is read while it
	// runs: its counts live in Redis (jobs.BroadcastProgress), and the send
	// path announces no change per delivery, so nothing costs a push more.
	broadcastEvery = 500 * time.Millisecond
)

// Default subscription caps (HERALD_SUBSCRIPTIONS_PER_SOCKET,
// HERALD_SUBSCRIPTIONS_PER_WORKSPACE).
const (
	DefaultSubscriptionsPerSocket    = 100
	DefaultSubscriptionsPerWorkspace = 1000
)

// Live holds what every subscription of the process shares: the change
// feed and the caps on subscriptions per websocket and per workspace (per
// process). Over a cap a subscription is refused with LIMIT_EXCEEDED; the
// socket and its other subscriptions go on.
type Live struct {
	Feed                    *jobs.ChangeFeed
	PerSocket, PerWorkspace int

	mu          sync.Mutex
	byWorkspace map[string]int
}

// NewLive returns the process's Live over feed; caps ≤ 0 take the defaults.
func NewLive(feed *jobs.ChangeFeed, perSocket, perWorkspace int) *Live {
	if perSocket <= 0 {
		perSocket = DefaultSubscriptionsPerSocket
	}
	if perWorkspace <= 0 {
		perWorkspace = DefaultSubscriptionsPerWorkspace
	}
	return &Live{Feed: feed, PerSocket: perSocket, PerWorkspace: perWorkspace, byWorkspace: map[string]int{}}
}

type socketKey struct{}

// WithSocket marks ctx as one websocket connection's (the transport's
// InitFunc): the subscriptions started under it count against PerSocket.
func WithSocket(ctx context.Context) context.Context {
	return context.WithValue(ctx, socketKey{}, new(atomic.Int64))
}

// admit counts one more subscription of the socket and the workspace, or
// refuses it over a cap; release uncounts it.
func (lv *Live) admit(ctx context.Context, ws string) (release func(), err error) {
	if lv == nil || lv.Feed == nil {
		return nil, errors.New("graph: subscriptions are not configured")
	}
	sock, _ := ctx.Value(socketKey{}).(*atomic.Int64)
	if sock != nil && sock.Add(1) > int64(lv.PerSocket) {
		sock.Add(-1)
		return nil, &LimitError{What: "subscriptions on one connection", Limit: lv.PerSocket}
	}
	lv.mu.Lock()
	if lv.byWorkspace[ws] >= lv.PerWorkspace {
		lv.mu.Unlock()
		if sock != nil {
			sock.Add(-1)
		}
		return nil, &LimitError{What: "subscriptions of one workspace", Limit: lv.PerWorkspace}
	}
	lv.byWorkspace[ws]++
	lv.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			if sock != nil {
				sock.Add(-1)
			}
			lv.mu.Lock()
			if lv.byWorkspace[ws]--; lv.byWorkspace[ws] <= 0 {
				delete(lv.byWorkspace, ws)
			}
			lv.mu.Unlock()
		})
	}, nil
}

// start admits a subscription, listens (listen), then reads the first
// value (NOT_FOUND for another workspace's object); listening first means
// no change after that read is missed. On any error it undoes what it did.
func start[T any](ctx context.Context, r *Resolver, listen func() (*jobs.Listener, error), read func() (T, error)) (first T, l *jobs.Listener, release func(), err error) {
	ws, err := workspace(ctx)
	if err != nil {
		return first, nil, nil, err
	}
	if release, err = r.Live.admit(ctx, ws); err != nil {
		return first, nil, nil, err
	}
	if l, err = listen(); err != nil {
		release()
		return first, nil, nil, err
	}
	if first, err = read(); err != nil {
		l.Close()
		release()
		return first, nil, nil, err
	}
	return first, l, release, nil
}

func (r *Resolver) deliveryUpdated(ctx context.Context, id string) (<-chan *model.Delivery, error) {
	if _, err := workspace(ctx); err != nil {
		return nil, err
	}
	u, err := parseID("id", id)
	if err != nil {
		return nil, err
	}
	id = u.String()
	q := &queryResolver{r}
	read := func() (*model.Delivery, error) { return q.Delivery(ctx, id) }
	// The delivery's changes are announced on its campaign's channel
	// (jobs.PublishChanges), which its row names: the row is read once
	// admitted, and a missing delivery is NOT_FOUND by the first read.
	listen := func() (*jobs.Listener, error) {
		_, d, err := findByID(ctx, "id", id, "delivery", r.Store.Delivery)
		if err != nil {
			return nil, err
		}
		return r.Live.Feed.ListenFor(ctx, jobs.CampaignChannel(d.CampaignID.String()), d.ID)
	}
	first, l, release, err := start(ctx, r, listen, read)
	if err != nil {
		return nil, err
	}
	return watch(ctx, r, l, release, first, read, fingerprint, 0, "deliveryUpdated "+id), nil
}

func (r *Resolver) campaignOverviewUpdated(ctx context.Context, campaignID string) (<-chan *model.CampaignOverview, error) {
	_, c, err := findByID(ctx, "campaignId", campaignID, "campaign", r.Store.Campaign)
	if err != nil {
		return nil, err
	}
	camp := campaignModel(c)
	read := func() (*model.CampaignOverview, error) { return r.overview(ctx, camp, nil, nil, nil) }
	listen := func() (*jobs.Listener, error) { return r.Live.Feed.Listen(ctx, jobs.CampaignChannel(c.ID.String())) }
	first, l, release, err := start(ctx, r, listen, read)
	if err != nil {
		return nil, err
	}
	return watch(ctx, r, l, release, first, read, overviewFingerprint, campaignEvery, "campaignOverviewUpdated "+campaignID), nil
}

func (r *Resolver) broadcastUpdated(ctx context.Context, id string) (<-chan *model.Broadcast, error) {
	ws, b, err := findByID(ctx, "id", id, "broadcast", r.Store.Broadcast)
	if err != nil {
		return nil, err
	}
	release, err := r.Live.admit(ctx, ws)
	if err != nil {
		return nil, err
	}
	first, err := r.broadcastNow(ctx, b)
	if err != nil {
		release()
		return nil, err
	}
	out := make(chan *model.Broadcast, 1)
	go func() {
		defer close(out) // the subscription completes
		defer release()
		v, last := first, fingerprint(first)
		select {
		case out <- v:
		case <-ctx.Done():
			return
		}
		tick := time.NewTicker(broadcastEvery)
		defer tick.Stop()
		for !broadcastFinished(v) {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			next, err := r.broadcastNow(ctx, b)
			if err != nil {
				if ctx.Err() == nil {
					r.Logger.Warn("subscription re-read failed", "subscription", "broadcastUpdated "+id, "err", err)
				}
				continue
			}
			v = next
			if k := fingerprint(v); k != last {
				last = k
				select {
				case out <- v:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// broadcastFinished: canceled, or every person's delivery done.
func broadcastFinished(b *model.Broadcast) bool {
	return b.Canceled || (b.Queued >= b.Total && b.Done >= b.Total)
}

// watch sends first, then every value read after a change announcement
// that differs from the last one sent by key; with minGap > 0 it waits out
// at least minGap between sends, folding every announcement that arrives
// meanwhile into one read. When ctx ends it closes the channel, the
// listener and the subscription's admission.
func watch[T any](ctx context.Context, r *Resolver, l *jobs.Listener, release func(), first T, read func() (T, error), key func(T) string, minGap time.Duration, what string) <-chan T {
	out := make(chan T, 1)
	go func() {
		defer close(out)
		defer release()
		defer l.Close()
		last := key(first)
		select {
		case out <- first:
		case <-ctx.Done():
			return
		}
		var lastSent time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-l.C:
				if !ok {
					return
				}
			}
			if wait := minGap - time.Since(lastSent); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case <-timer.C:
				}
				select { // announcements meanwhile: this read answers them
				case <-l.C:
				default:
				}
			}
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

// Package jobs holds Herald's Asynq task types and their handlers: a deliver
// task checks a delivery and makes each device's first attempt itself; a
// device whose first attempt fails transiently is handed to a send task,
// which makes one attempt per run, with asynq's backoff between runs. A
// broadcast's fan-out task carries out its batch's deliveries itself, with
// bounded concurrency, instead of queueing a deliver task for each.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/providers"
)

// Task types.
const (
	// TypeDeliver checks a delivery round and makes its devices' first attempts.
	TypeDeliver = "push:deliver"
	// TypeSend makes one retry attempt to push one device of a delivery round.
	TypeSend = "push:send"
)

// Queue names.
const (
	QueueDeliver = "deliver"
	QueueSend    = "send"
)

// retention keeps finished tasks' ids so that a duplicate enqueue of the same
// task id is refused with asynq.ErrTaskIDConflict instead of running again.
const retention = 24 * time.Hour

// DeliverPayload names a delivery round.
type DeliverPayload struct {
	WorkspaceID string `json:"workspace_id"`
	DeliveryID  string `json:"delivery_id"`
	Round       uint16 `json:"round"`
	// BroadcastID and BroadcastIndex, for a broadcast's delivery, let the
	// task record the broadcast's progress.
	BroadcastID    string `json:"broadcast_id,omitempty"`
	BroadcastIndex int    `json:"broadcast_index,omitempty"`
	// Snapshot, when set (by a broadcast's fan-out), saves the task its reads.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}

// NewDeliverTask builds the deliver task of a delivery round. Its task id is
// derived from the round, so enqueuing it twice runs it once.
func NewDeliverTask(p DeliverPayload, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("jobs: marshal deliver payload: %w", err)
	}
	return asynq.NewTask(TypeDeliver, b, append([]asynq.Option{asynq.TaskID(deliverTaskID(p.DeliveryID, p.Round)),
		asynq.Queue(QueueDeliver), asynq.MaxRetry(25), asynq.Retention(retention)}, opts...)...), nil
}

// SendPayload is one device of a delivery round with the rendered push.
type SendPayload struct {
	WorkspaceID     string    `json:"workspace_id"`
	CampaignID      string    `json:"campaign_id"`
	DeliveryID      string    `json:"delivery_id"`
	DeliveryCreated time.Time `json:"delivery_created"`
	Round           uint16    `json:"round"`
	DeviceIndex     uint16    `json:"device_index"`
	PersonID        string    `json:"person_id"`
	Platform        string    `json:"platform"`
	CredVersion     uint64    `json:"cred_version"`
	// DeviceState is the device's send state when the round was planned;
	// an accepted push to an "ok" device changes nothing.
	DeviceState string         `json:"device_state,omitempty"`
	Push        providers.Push `json:"push"`
	// Attempts is how many attempts were made before the task's first
	// run (the deliver task's inline first attempt): the task's attempt
	// numbers and backoff continue from there.
	Attempts uint16 `json:"attempts,omitempty"`
	// target, on a first attempt only (never in a task), is the device's
	// targeted event to write with the attempt's row (deferTargeted).
	target *deferredTarget
}

// deferredTarget is what a targeted event holds besides the send's own
// fields: the device's platform and reporting flag (planDevice).
type deferredTarget struct {
	platform  string
	reporting bool
}

// NewSendTask builds a device's send task; maxRetry is the number of
// retries after the device's first attempt (DESIGN.md: ten), so the task
// itself runs at most maxRetry+1-p.Attempts times.
func NewSendTask(p SendPayload, maxRetry int, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("jobs: marshal send payload: %w", err)
	}
	opts = append([]asynq.Option{
		asynq.TaskID(fmt.Sprintf("send:%s:%d:%d", p.DeliveryID, p.Round, p.DeviceIndex)),
		asynq.Queue(QueueSend), asynq.MaxRetry(max(maxRetry-int(p.Attempts), 0)), asynq.Retention(retention),
	}, opts...)
	return asynq.NewTask(TypeSend, b, opts...), nil
}

// Queue enqueues tasks for the API.
type Queue struct {
	client *asynq.Client
	rdb    redis.UniversalClient
}

// NewQueue wraps an asynq client; rdb reads broadcast progress.
func NewQueue(c *asynq.Client, rdb redis.UniversalClient) *Queue { return &Queue{client: c, rdb: rdb} }

// Deliver enqueues a delivery round; enqueuing the same round twice is not an error.
func (q *Queue) Deliver(ctx context.Context, p DeliverPayload) error {
	t, err := NewDeliverTask(p)
	if err != nil {
		return err
	}
	return enqueue(ctx, q.client, t)
}

// Schedule enqueues a delivery's first round to run at sendAt: Asynq keeps
// due times in whole seconds, so the task is due at the second sendAt is
// in, and the worker waits out the rest (HandleDeliver).
func (q *Queue) Schedule(ctx context.Context, p DeliverPayload, sendAt time.Time) error {
	t, err := NewDeliverTask(p, asynq.ProcessAt(sendAt.Truncate(time.Second)))
	if err != nil {
		return err
	}
	return enqueue(ctx, q.client, t)
}

// ErrStarted is CancelScheduled's error for a send that has started (or
// was canceled before).
var ErrStarted = errors.New("the send has started or was canceled already")

// CancelScheduled cancels a scheduled delivery before it starts: it
// claims the delivery as canceled (scheduledKey; the deliver task claims
// it as started when it runs, and only one claim wins), then runs its
// deliver task at once, which records the pre-send failure "Canceled
// before its send time" instead of sending.
func (q *Queue) CancelScheduled(ctx context.Context, deliveryID string) error {
	if err := q.claimCanceled(ctx, deliveryID); err != nil {
		return err
	}
	// If the task cannot be moved (it is due already, or Redis failed
	// here), it runs at its time and finds the claim all the same.
	_ = asynq.NewInspectorFromRedisClient(q.rdb).RunTask(QueueDeliver, deliverTaskID(deliveryID, 0))
	return nil
}

// ReleaseDraft sends a draft delivery (queue_draft): it claims it as
// released (the cancel claim's rival) and queues its deliver task.
// ErrStarted when it was released or canceled before.
func (q *Queue) ReleaseDraft(ctx context.Context, p DeliverPayload) error {
	if err := claimFirst(ctx, q.rdb, p.DeliveryID, scheduledStarted); err != nil {
		return err
	}
	return q.Deliver(ctx, p)
}

// CancelDraft cancels a draft delivery: it claims it as canceled and
// queues its deliver task, which records "Canceled before its send time".
func (q *Queue) CancelDraft(ctx context.Context, p DeliverPayload) error {
	if err := q.claimCanceled(ctx, p.DeliveryID); err != nil {
		return err
	}
	return q.Deliver(ctx, p)
}

// PlannedPush returns the push a delivery round was rendered into, from
// the round's plan in Redis (kept PlanTTL, 7 days by default): nil when
// the round is not planned yet, failed before sending (no push), or its
// plan has expired.
func (q *Queue) PlannedPush(ctx context.Context, deliveryID string, round uint16) (*providers.Push, error) {
	v, err := q.rdb.Get(ctx, planKey(deliveryID, round)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: read plan: %w", err)
	}
	var pl plan
	if err := json.Unmarshal([]byte(v), &pl); err != nil {
		return nil, fmt.Errorf("jobs: decode plan: %w", err)
	}
	if pl.PresendReason != "" {
		return nil, nil
	}
	return &pl.Push, nil
}

// claimCanceled claims a scheduled delivery or broadcast (by id) as
// canceled; ErrStarted when its task claimed it as started first.
func (q *Queue) claimCanceled(ctx context.Context, id string) error {
	return claimFirst(ctx, q.rdb, id, scheduledCanceled)
}

// claimFirst sets the claim of a scheduled send or draft (by id) to value
// unless one is set: ErrStarted when one was.
func claimFirst(ctx context.Context, rdb redis.UniversalClient, id, value string) error {
	ok, err := rdb.SetNX(ctx, scheduledKey(id), value, scheduledKeyTTL).Result()
	if err != nil {
		return fmt.Errorf("jobs: claim %s as %s: %w", id, value, err)
	}
	if !ok {
		return ErrStarted
	}
	return nil
}

// claimOf is the claim of a scheduled send or draft ("" when none).
func claimOf(ctx context.Context, rdb redis.UniversalClient, id string) (string, error) {
	v, err := rdb.Get(ctx, scheduledKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// scheduledKey holds a scheduled delivery's claim: scheduledStarted or
// scheduledCanceled, whichever was set first.
func scheduledKey(deliveryID string) string { return "herald:scheduled:" + deliveryID }

const (
	scheduledStarted  = "started"
	scheduledCanceled = "canceled"
	// scheduledKeyTTL outlives the furthest send time (90 days).
	scheduledKeyTTL = 100 * 24 * time.Hour
)

func deliverTaskID(deliveryID string, round uint16) string {
	return fmt.Sprintf("deliver:%s:%d", deliveryID, round)
}

func enqueue(ctx context.Context, c *asynq.Client, t *asynq.Task) error {
	_, err := c.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("jobs: enqueue %s: %w", t.Type(), err)
	}
	return nil
}

// RetryDelay is the backoff between attempts: base·2^n, capped at max, with
// up to 20% jitter, where n counts the device's failed attempts less one.
// For a send task that continues a deliver task's attempts (Attempts > 0)
// n is shifted by those, so the schedule is the same as if every attempt
// had been one of its runs.
func RetryDelay(base, max time.Duration) asynq.RetryDelayFunc {
	return func(n int, _ error, t *asynq.Task) time.Duration {
		if t != nil && t.Type() == TypeSend {
			var p struct {
				Attempts int `json:"attempts"`
			}
			if json.Unmarshal(t.Payload(), &p) == nil {
				n += p.Attempts
			}
		}
		d := base
		for i := 0; i < n && d < max; i++ {
			d *= 2
		}
		if d > max {
			d = max
		}
		return dueInWholeSeconds(time.Now(), d+time.Duration(float64(d)*0.2*jitter()))
	}
}

// dueInWholeSeconds lengthens a delay of a second or more so that it ends
// on a whole second. asynq keeps a task's due time in whole seconds,
// dropping the fraction, so a task would otherwise run up to a second
// early: a 1.5 s backoff could become 0.5 s. Shorter delays (tests) are
// left as they are: asynq runs them at the next whole second or sooner.
func dueInWholeSeconds(now time.Time, d time.Duration) time.Duration {
	if d < time.Second {
		return d
	}
	due := now.Add(d)
	if t := due.Truncate(time.Second); t.Before(due) {
		due = t.Add(time.Second)
	}
	return due.Sub(now)
}

package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
)

// TypeFanout creates and queues one batch of a broadcast's deliveries, then
// queues the next batch.
const TypeFanout = "broadcast:fanout"

// FanoutPayload is one batch of a broadcast.
type FanoutPayload struct {
	WorkspaceID string `json:"workspace_id"`
	BroadcastID string `json:"broadcast_id"`
	Batch       int    `json:"batch"`
	// After is the last person id of the previous batch (all-persons broadcasts).
	After string `json:"after,omitempty"`
}

// NewFanoutTask builds a batch's task; its id is (broadcast, batch), so a
// batch is queued once however often its predecessor runs.
func NewFanoutTask(p FanoutPayload, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("jobs: marshal fanout payload: %w", err)
	}
	return asynq.NewTask(TypeFanout, b, append([]asynq.Option{asynq.TaskID(fanoutTaskID(p.BroadcastID, p.Batch)),
		asynq.Queue(QueueDeliver), asynq.MaxRetry(25), asynq.Retention(retention)}, opts...)...), nil
}

// Broadcast starts a broadcast's fan-out: at once, or at sendAt (not
// zero) as Schedule does for a delivery.
func (q *Queue) Broadcast(ctx context.Context, workspaceID, broadcastID string, sendAt time.Time) error {
	var opts []asynq.Option
	if !sendAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(sendAt.Truncate(time.Second)))
	}
	t, err := NewFanoutTask(FanoutPayload{WorkspaceID: workspaceID, BroadcastID: broadcastID}, opts...)
	if err != nil {
		return err
	}
	return enqueue(ctx, q.client, t)
}

// CancelBroadcast cancels a scheduled broadcast before it fans out: it
// claims it as canceled (as CancelScheduled does a delivery) and drops
// its fan-out task; a task that could not be dropped finds the claim and
// makes no deliveries.
func (q *Queue) CancelBroadcast(ctx context.Context, broadcastID string) error {
	if err := q.claimCanceled(ctx, broadcastID); err != nil {
		return err
	}
	_ = asynq.NewInspectorFromRedisClient(q.rdb).DeleteTask(QueueDeliver, fanoutTaskID(broadcastID, 0))
	return nil
}

// Canceled reports whether a scheduled delivery or broadcast was canceled.
func (q *Queue) Canceled(ctx context.Context, id string) (bool, error) {
	v, err := claimOf(ctx, q.rdb, id)
	return v == scheduledCanceled, err
}

func fanoutTaskID(broadcastID string, batch int) string {
	return fmt.Sprintf("fanout:%s:%d", broadcastID, batch)
}

// Redis keys of a broadcast's progress:
//   - herald:bcast:{id}:queued — hash: batch number → deliveries queued by
//     that batch (HSET is idempotent, so a re-run batch counts once);
//   - herald:bcast:{id}:done — bitmap: bit i set once the delivery of the
//     broadcast's i-th person finished its deliver task.
func queuedKey(id string) string { return "herald:bcast:" + id + ":queued" }
func doneKey(id string) string   { return "herald:bcast:" + id + ":done" }

// startedKey: a hash with a field per fan-out batch that has started
// (set before its deliveries are written).
func startedKey(id string) string { return "herald:bcast:" + id + ":started" }

// BroadcastDeliveryID is the delivery id of a broadcast's person: a UUIDv7
// with the broadcast's creation time and a hash of (broadcast, person), so a
// fan-out batch that runs twice makes the same deliveries, and their deliver
// tasks (whose ids derive from the delivery id) are queued once.
func BroadcastDeliveryID(broadcastID uuid.UUID, created time.Time, personID string) uuid.UUID {
	h := sha256.Sum256([]byte(broadcastID.String() + "\x00" + personID))
	var u uuid.UUID
	copy(u[:], h[:16])
	ms := uint64(created.UnixMilli())
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = 0x70 | (u[6] & 0x0f) // version 7
	u[8] = 0x80 | (u[8] & 0x3f) // RFC 4122 variant
	return u
}

// HandleFanout creates one batch of deliveries, queues the next batch, and
// carries out the batch's deliveries (deliverBatch).
func (w *Worker) HandleFanout(ctx context.Context, t *asynq.Task) error {
	var p FanoutPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("jobs: fanout payload: %v: %w", err, asynq.SkipRetry)
	}
	id, err := uuid.Parse(p.BroadcastID)
	if err != nil {
		return fmt.Errorf("jobs: fanout id: %v: %w", err, asynq.SkipRetry)
	}
	b, err := w.broadcasts.get(p.WorkspaceID+"/"+id.String(), func() (clickhouse.Broadcast, error) {
		return w.store.Broadcast(ctx, p.WorkspaceID, id)
	})
	if errors.Is(err, clickhouse.ErrNotFound) {
		return fmt.Errorf("jobs: broadcast %s: %w", id, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if !b.SendAt.IsZero() && p.Batch == 0 {
		if err := w.awaitSendAt(ctx, "broadcast "+b.ID.String(), b.ID.String(), b.SendAt); err != nil {
			return err
		}
		started, err := w.claimScheduled(ctx, b.ID.String())
		if err != nil {
			return err
		}
		if !started {
			w.logger.InfoContext(ctx, "broadcast canceled before its send time", "broadcast", b.ID)
			return nil
		}
	}
	msg, err := w.messages.get(p.WorkspaceID+"/"+b.MessageID.String(), func() (clickhouse.Message, error) {
		return w.store.Message(ctx, p.WorkspaceID, b.MessageID)
	})
	if err != nil {
		return err
	}
	// Hold a batch place from the page read to the batch's last send.
	select {
	case w.batches <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-w.batches }()
	size := w.cfg.BroadcastBatch
	var persons []string
	var people map[string]clickhouse.Person // read with the page, or below
	more := false
	if b.AllPersons {
		page, pageMore, err := w.store.PersonsPage(ctx, p.WorkspaceID, p.After, size)
		if err != nil {
			return err
		}
		people, more = make(map[string]clickhouse.Person, len(page)), pageMore
		for _, person := range page {
			persons = append(persons, person.ID)
			people[person.ID] = person
		}
	} else if lo := p.Batch * size; lo < len(b.PersonIDs) {
		persons = b.PersonIDs[lo:min(lo+size, len(b.PersonIDs))]
		more = lo+size < len(b.PersonIDs)
	}
	// Queue the next batch as soon as its start is known, so that batches
	// run side by side on the worker's task slots.
	if more {
		next := FanoutPayload{WorkspaceID: p.WorkspaceID, BroadcastID: p.BroadcastID, Batch: p.Batch + 1, After: persons[len(persons)-1]}
		nt, err := NewFanoutTask(next)
		if err != nil {
			return err
		}
		if err := enqueue(ctx, w.client, nt); err != nil {
			return err
		}
	}
	ds := make([]clickhouse.Delivery, len(persons))
	for i, person := range persons {
		did := BroadcastDeliveryID(b.ID, b.FanoutTime(), person)
		ds[i] = clickhouse.Delivery{WorkspaceID: p.WorkspaceID, ID: did, CampaignID: msg.CampaignID, MessageID: msg.ID,
			PersonID: person, Audience: b.Audience, Data: b.Data, Overrides: b.Overrides, CreatedAt: clickhouse.DeliveryTime(did).UTC()}
	}
	fresh, first, err := w.unwritten(ctx, p, ds)
	if err != nil {
		return err
	}
	if err := w.store.CreateDeliveries(ctx, fresh); err != nil {
		return err
	}
	// Read the batch's people (unless the page brought them) and devices
	// at once; each delivery gets its part and reads nothing itself.
	if people == nil {
		if people, err = w.store.PersonsByIDs(ctx, p.WorkspaceID, persons); err != nil {
			return err
		}
	}
	devices, err := w.store.DevicesByPersons(ctx, p.WorkspaceID, persons)
	if err != nil {
		return err
	}
	if err := w.rdb.HSet(ctx, queuedKey(p.BroadcastID), strconv.Itoa(p.Batch), len(ds)).Err(); err != nil {
		return fmt.Errorf("jobs: broadcast progress: %w", err)
	}
	return w.deliverBatch(ctx, p, ds, people, devices, first)
}

// batchesAhead is the most fan-out batches a worker has in progress at
// once: enough to fill its delivery slots, and two more so that the next
// batches read and plan while those send. Each batch queues the next as
// soon as it has read its page, so without a bound a broadcast's batches
// all start at once (a worker with 200 task slots held all 50 batches of
// a 100,000-person broadcast in memory: 600 MB), and the ones not sending
// only wait for delivery slots.
func batchesAhead(concurrency, batch int) int {
	return (concurrency+batch-1)/batch + 2
}

// unwritten returns the batch's deliveries that no earlier run of it wrote,
// so that each is written, and counted in campaign_created, once. A
// batch's first run (first) has written none and need not ask ClickHouse:
// its field in startedKey, set before the insert, tells a run whether an
// earlier one may have written some.
func (w *Worker) unwritten(ctx context.Context, p FanoutPayload, ds []clickhouse.Delivery) (fresh []clickhouse.Delivery, first bool, err error) {
	first, err = w.rdb.HSetNX(ctx, startedKey(p.BroadcastID), strconv.Itoa(p.Batch), 1).Result()
	if err != nil {
		return nil, false, fmt.Errorf("jobs: broadcast progress: %w", err)
	}
	if first || len(ds) == 0 {
		return ds, first, nil
	}
	ids := make([]uuid.UUID, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	existing, err := w.store.ExistingDeliveries(ctx, p.WorkspaceID, ds[0].CreatedAt, ids)
	if err != nil {
		return nil, false, err
	}
	for _, d := range ds {
		if !existing[d.ID] {
			fresh = append(fresh, d)
		}
	}
	return fresh, false, nil
}

// deliverBatch carries out a batch's deliveries in the fan-out task, as
// their deliver tasks would (HandleDeliver), together (deliverAll): a few
// Redis round trips for the batch's plans and records, and no queue
// operation per delivery. The crash guarantees are those of a deliver task
// that runs again: a fan-out task that dies mid-batch is run again by
// asynq, and so is every delivery of its batch, each of which follows its
// stored plan and skips the devices whose outcome is recorded. A delivery
// that fails for good (asynq.SkipRetry) is logged and left, as its deliver
// task would have been archived; any other error fails the task, and the
// whole batch is run again. On the batch's first run (first) no run of
// it has stored a plan, so none is looked for (round.unplanned).
func (w *Worker) deliverBatch(ctx context.Context, p FanoutPayload, ds []clickhouse.Delivery,
	people map[string]clickhouse.Person, devices map[string][]clickhouse.Device, first bool) error {
	rs := make([]round, len(ds))
	for i, d := range ds {
		person, found := people[d.PersonID]
		rs[i] = round{d: d, unplanned: first, p: DeliverPayload{WorkspaceID: p.WorkspaceID, DeliveryID: d.ID.String(), BroadcastID: p.BroadcastID,
			BroadcastIndex: p.Batch*w.cfg.BroadcastBatch + i,
			Snapshot:       &Snapshot{Delivery: d, PersonFound: found, Person: person, Devices: devices[d.PersonID]}}}
	}
	var retry []error
	for i, err := range w.deliverAll(ctx, rs) {
		switch {
		case err == nil:
		case errors.Is(err, asynq.SkipRetry):
			w.logger.Error("broadcast delivery failed for good", "broadcast", p.BroadcastID, "delivery", ds[i].ID, "err", err)
		default:
			retry = append(retry, err)
		}
	}
	return errors.Join(retry...)
}

// markDone records that a broadcast's delivery was carried out: its
// devices' first attempts made, or its pre-send failure recorded.
func (w *Worker) markDone(ctx context.Context, p DeliverPayload) error {
	c := doneMark(p)
	if c == nil {
		return nil
	}
	if err := w.mark(ctx, c); err != nil {
		return fmt.Errorf("jobs: broadcast progress: %w", err)
	}
	return nil
}

// doneMark is markDone's command; nil when p is not a broadcast's.
func doneMark(p DeliverPayload) markCmd {
	if p.BroadcastID == "" {
		return nil
	}
	return func(ctx context.Context, rp redis.Pipeliner) []redis.Cmder {
		return []redis.Cmder{rp.SetBit(ctx, doneKey(p.BroadcastID), int64(p.BroadcastIndex), 1)}
	}
}

// BroadcastProgress reads how many deliveries a broadcast queued and finished.
func BroadcastProgress(ctx context.Context, rdb redis.UniversalClient, broadcastID string) (queued, done int, err error) {
	vals, err := rdb.HVals(ctx, queuedKey(broadcastID)).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("jobs: broadcast progress: %w", err)
	}
	for _, v := range vals {
		n, _ := strconv.Atoi(v)
		queued += n
	}
	d, err := rdb.BitCount(ctx, doneKey(broadcastID), nil).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("jobs: broadcast progress: %w", err)
	}
	return queued, int(d), nil
}

// Progress reads a broadcast's progress (see BroadcastProgress).
func (q *Queue) Progress(ctx context.Context, broadcastID string) (queued, done int, err error) {
	return BroadcastProgress(ctx, q.rdb, broadcastID)
}

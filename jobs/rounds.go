package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
)

// round is one delivery round to carry out: its deliver payload (with the
// snapshot a fan-out read for it, if any) and its delivery row.
type round struct {
	p DeliverPayload
	d clickhouse.Delivery
	// unplanned: no plan of this round can be stored yet (a fan-out
	// batch's first run), so loadOrMakePlans need not read one (it reads
	// none when every round is). Only a saving: SET NX still decides which
	// plan is carried out.
	unplanned bool
}

// deliverAll carries out delivery rounds together: a deliver task's one,
// or a fan-out task's batch. For each round it loads or makes the plan,
// records it, makes each device's first attempt and, for a broadcast's
// delivery, records the broadcast's progress. The Redis reads and writes
// of the plans and records are made once for all the rounds (a few round
// trips per batch instead of several per delivery); the sends, and what
// each records, stay per device. It returns one error per round.
//
// Every step is idempotent, so rounds that run again (a task re-run after
// a crash, or asynq's at-least-once delivery) record nothing twice and push
// no device whose outcome is recorded: plans are stored with SET NX before
// anything is recorded and a second run follows the stored plan; events
// have deterministic identities; a device's first attempt is skipped once
// its finalKey or handoffKey is set (see firstAttempts).
func (w *Worker) deliverAll(ctx context.Context, rs []round) []error {
	errs := make([]error, len(rs))
	plans, fresh := w.loadOrMakePlans(ctx, rs, errs)
	w.record(ctx, rs, plans, errs)
	marks := w.outcomeMarks(ctx, rs, plans, fresh, errs)

	var wg sync.WaitGroup
	for i, r := range rs {
		if errs[i] != nil {
			continue
		}
		wg.Add(1)
		err := w.goSend(ctx, func() {
			defer wg.Done()
			done, err := w.firstAttempts(ctx, sendsOf(r, plans[i]), marks[i], doneMark(r.p))
			if err != nil {
				errs[i] = err
				return
			}
			if !done {
				errs[i] = w.markDone(ctx, r.p)
			}
		})
		if err != nil {
			wg.Done()
			errs[i] = err
		}
	}
	wg.Wait()
	return errs
}

// goSend runs f, a delivery's sends, on a goroutine of the worker's send
// pool: an idle one, or a new one while the pool has fewer than
// Concurrency (slots), or the first to become idle. So at most Concurrency
// deliveries send at once, and their goroutines are reused: a send goes
// deep (the provider's client, HTTP, TLS), and a new goroutine per
// delivery grew its stack on every push (runtime.newstack was 5-8% of
// the worker's CPU). A pool goroutine idle for sendIdle exits.
func (w *Worker) goSend(ctx context.Context, f func()) error {
	select {
	case w.sendq <- f:
		return nil
	default:
	}
	select {
	case w.sendq <- f:
	case w.slots <- struct{}{}:
		go w.sendLoop(f)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// sendLoop is a goroutine of the send pool: it runs f, then what goSend
// hands it, until it has been idle for sendIdle.
func (w *Worker) sendLoop(f func()) {
	defer func() { <-w.slots }()
	idle := time.NewTimer(sendIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(sendIdle)
		select {
		case f = <-w.sendq:
		case <-idle.C:
			return
		}
	}
}

// sendIdle is how long a goroutine of the send pool waits for work.
const sendIdle = 10 * time.Second

// loadOrMakePlans reads the rounds' stored plans with one MGET (none when
// every round is unplanned), makes the missing ones (the device tokens' reporting
// flags read with one SMISMEMBER for all the snapshots), and stores them
// with SET NX in one pipeline. A plan that another run stored first is
// read back and followed. fresh[i] says round i's plan was stored by this
// call: no attempt can have been made under it yet. A round that fails
// gets its error in errs.
func (w *Worker) loadOrMakePlans(ctx context.Context, rs []round, errs []error) (plans []plan, fresh []bool) {
	plans, fresh = make([]plan, len(rs)), make([]bool, len(rs))
	keys := make([]string, len(rs))
	unplanned := true
	for i, r := range rs {
		keys[i] = planKey(r.d.ID.String(), r.p.Round)
		unplanned = unplanned && r.unplanned
	}
	stored := make([]any, len(rs)) // all nil: nothing stored
	if !unplanned {
		var err error
		if stored, err = w.rdb.MGet(ctx, keys...).Result(); err != nil {
			fillErr(errs, fmt.Errorf("jobs: read plans: %w", err))
			return plans, fresh
		}
	}
	var missing []int
	for i, v := range stored {
		if v == nil {
			missing = append(missing, i)
			continue
		}
		errs[i] = decodePlan(v, &plans[i])
	}
	if len(missing) == 0 {
		return plans, fresh
	}
	reporting, err := w.batchReporting(ctx, rs, missing)
	if err != nil {
		fillErr(errs, err)
		return plans, fresh
	}
	var made []int
	ts := templates{}
	for _, i := range missing {
		if plans[i], errs[i] = w.makePlan(ctx, rs[i].d, rs[i].p.Snapshot, reporting, ts); errs[i] == nil {
			made = append(made, i)
		}
	}
	setnx := make([]*redis.BoolCmd, len(made))
	_, err = w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, i := range made {
			b, err := json.Marshal(plans[i])
			if err != nil {
				return fmt.Errorf("jobs: marshal plan: %w", err)
			}
			setnx[j] = p.SetNX(ctx, keys[i], b, w.cfg.PlanTTL)
		}
		return nil
	})
	if err != nil {
		for _, i := range made {
			errs[i] = fmt.Errorf("jobs: store plan: %w", err)
		}
		return plans, fresh
	}
	for j, i := range made {
		if setnx[j].Val() {
			fresh[i] = true
			continue
		}
		// Another run of this round stored its plan first: follow it.
		b, err := w.rdb.Get(ctx, keys[i]).Result()
		if err != nil {
			errs[i] = fmt.Errorf("jobs: read plan: %w", err)
			continue
		}
		plans[i] = plan{}
		errs[i] = decodePlan(b, &plans[i])
	}
	return plans, fresh
}

// batchReporting reads, with one SMISMEMBER, the reporting flags of every
// device token in the snapshots of the rounds missing (all of one
// workspace, as a fan-out batch is). It returns nil, and makePlan reads the
// flags itself, when a round has no snapshot or the workspaces differ.
func (w *Worker) batchReporting(ctx context.Context, rs []round, missing []int) (map[string]bool, error) {
	ws := rs[missing[0]].d.WorkspaceID
	var tokens []string
	for _, i := range missing {
		snap := rs[i].p.Snapshot
		if snap == nil || rs[i].d.WorkspaceID != ws {
			return nil, nil
		}
		for _, dev := range snap.Devices {
			tokens = append(tokens, dev.Token)
		}
	}
	return w.targets.Reporting(ctx, ws, tokens)
}

func decodePlan(v any, pl *plan) error {
	s, _ := v.(string)
	if err := json.Unmarshal([]byte(s), pl); err != nil {
		return fmt.Errorf("jobs: decode plan: %w", err)
	}
	return nil
}

func fillErr(errs []error, err error) {
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
}

// record writes what the rounds' plans decided, before any attempt: the
// targeted devices (to the target cache, in one MULTI, and as targeted
// events) and the suppressed ones, or the pre-send failure, as events in
// one Write. Writing them again is harmless (same identities).
func (w *Worker) record(ctx context.Context, rs []round, plans []plan, errs []error) {
	now := time.Now()
	var events []clickhouse.Event
	var targets []TargetsOf
	var recorded []int
	for i, r := range rs {
		if errs[i] != nil {
			continue
		}
		recorded = append(recorded, i)
		d, pl := r.d, plans[i]
		ev := func(idx uint16, kind, reason string) clickhouse.Event {
			return clickhouse.Event{WorkspaceID: d.WorkspaceID, CampaignID: d.CampaignID, DeliveryID: d.ID, Round: r.p.Round,
				DeviceIndex: idx, Kind: kind, Reason: reason, DeliveryCreated: d.CreatedAt, At: now}
		}
		if pl.PresendReason != "" {
			events = append(events, ev(clickhouse.DeliveryLevel, clickhouse.KindPresendFailed, pl.PresendReason))
			continue
		}
		t := TargetsOf{Delivery: d, Round: r.p.Round, Devices: make([]clickhouse.DeliveryDevice, len(pl.Devices))}
		deferred := deferTargeted(pl)
		for j, pd := range pl.Devices {
			t.Devices[j] = clickhouse.DeliveryDevice{Index: pd.Index, Token: pd.Token, Platform: pd.Platform}
			if !deferred {
				events = append(events, targetedEvent(ev(pd.Index, clickhouse.KindTargeted, ""), pd.Token, pd.Platform, pd.Reporting))
			}
			if pd.Suppressed {
				events = append(events, ev(pd.Index, clickhouse.KindSuppressed, "device is suppressed"))
			}
		}
		targets = append(targets, t)
	}
	err := w.targets.PutAll(ctx, targets)
	if err == nil {
		err = w.events.Write(ctx, events...)
	}
	if err != nil {
		for _, i := range recorded {
			errs[i] = err
		}
	}
}

// targetedEvent is e (a targeted event) with the device's token and
// platform, where the report endpoints look a token up
// (Store.TargetedDevice), and whether the token had reported a metric
// before, which the overview's SDK coverage reads (status code 1).
func targetedEvent(e clickhouse.Event, token, platform string, reporting bool) clickhouse.Event {
	e.Token, e.ProviderID = token, platform
	if reporting {
		e.StatusCode = 1
	}
	return e
}

// deferTargeted: a round of one device to send writes that device's
// targeted event with its first attempt's row (SendPayload.target), not
// with the round's records, so that both land in one insert and
// delivery_states gets one row for the delivery instead of two. Only a
// round of one device may: with more, every device's targeted event must
// be in before any outcome, or the delivery would look finished (SENT)
// while a device not yet targeted was still to send. A crash before that
// first write leaves the delivery without events (ATTEMPTED, as it is
// until then), and the round's next run writes both.
func deferTargeted(pl plan) bool {
	return pl.PresendReason == "" && len(pl.Devices) == 1 && !pl.Devices[0].Suppressed
}

// sendsOf lists the send payloads of a round's plan: its devices that are
// not suppressed, with the rendered push (and, for a round of one device,
// its targeted event to write: deferTargeted).
func sendsOf(r round, pl plan) []SendPayload {
	if pl.PresendReason != "" {
		return nil
	}
	d := r.d
	var sends []SendPayload
	for _, pd := range pl.Devices {
		if pd.Suppressed {
			continue
		}
		push := pl.Push
		push.Token = pd.Token
		via := pd.sendPlatform()
		push.ToIOS = via != pd.Platform
		sends = append(sends, SendPayload{
			WorkspaceID: d.WorkspaceID, CampaignID: d.CampaignID.String(), DeliveryID: d.ID.String(),
			DeliveryCreated: d.CreatedAt, Round: r.p.Round, DeviceIndex: pd.Index, PersonID: d.PersonID,
			Platform: via, CredVersion: pl.CredVersions[via], Push: push, DeviceState: pd.State,
		})
		if deferTargeted(pl) {
			sends[len(sends)-1].target = &deferredTarget{platform: pd.Platform, reporting: pd.Reporting}
		}
	}
	return sends
}

// Marks of a device send, read before its first attempt.
const (
	markNone    = iota
	markFinal   // finalKey is set: its outcome is recorded
	markHandoff // handoffKey is set: a send task makes its attempts
)

// outcomeMarks reads, in one pipeline, the finalKey and handoffKey of
// every device to send of the rounds whose plan was not fresh (a fresh
// plan has had no attempt yet), and the done bit of those that are a
// broadcast's: a round is marked done only once each of its devices'
// outcomes is final or handed off, and a round of one device marks it
// instead of its device's finalKey (attempt), so a set bit makes every
// device final unless it was handed off. marks[i][j] belongs to
// sendsOf(rs[i])[j]; nil means no marks.
func (w *Worker) outcomeMarks(ctx context.Context, rs []round, plans []plan, fresh []bool, errs []error) [][]int {
	marks := make([][]int, len(rs))
	var keys []string
	var checked []int
	for i, r := range rs {
		if errs[i] != nil || fresh[i] {
			continue
		}
		checked = append(checked, i)
		for _, p := range sendsOf(r, plans[i]) {
			keys = append(keys, finalKey(p.DeliveryID, p.Round, p.DeviceIndex), handoffKey(p.DeliveryID, p.Round, p.DeviceIndex))
		}
	}
	if len(checked) == 0 {
		return marks
	}
	var mget *redis.SliceCmd
	done := make(map[int]*redis.IntCmd)
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(keys) > 0 {
			mget = p.MGet(ctx, keys...)
		}
		for _, i := range checked {
			if r := rs[i]; r.p.BroadcastID != "" && r.p.Round == 0 {
				done[i] = p.GetBit(ctx, doneKey(r.p.BroadcastID), int64(r.p.BroadcastIndex))
			}
		}
		return nil
	})
	var vals []any
	if mget != nil {
		vals = mget.Val()
	}
	for _, i := range checked {
		if err != nil {
			errs[i] = fmt.Errorf("jobs: check outcomes: %w", err)
			continue
		}
		sends := sendsOf(rs[i], plans[i])
		marks[i] = make([]int, len(sends))
		isDone := done[i] != nil && done[i].Val() == 1
		for j := range sends {
			switch {
			case vals[0] != nil:
				marks[i][j] = markFinal
			case vals[1] != nil:
				marks[i][j] = markHandoff
			case isDone:
				marks[i][j] = markFinal
			}
			vals = vals[2:]
		}
	}
	return marks
}

// firstAttempts makes the first attempt at each device of a round, in
// parallel, in the task that carries out the round: no task per device.
// A device marked final is skipped, so a re-run pushes again only the
// devices a crash caught between the provider's answer and the record —
// as a re-run send task would; a device marked handed-off has its send
// task queued again (a no-op if it is queued). A transient failure hands
// the device's retries to a send task. A round of one device sends done
// (its done mark, when not nil) with the device's final outcome, in one
// Redis round trip; doneMarked says it did.
func (w *Worker) firstAttempts(ctx context.Context, sends []SendPayload, marks []int, done markCmd) (doneMarked bool, err error) {
	errs := make([]error, len(sends))
	var wg sync.WaitGroup
	for i, p := range sends {
		mark := markNone
		if marks != nil {
			mark = marks[i]
		}
		switch {
		case mark == markFinal:
			continue
		case mark == markHandoff:
			errs[i] = w.handoff(ctx, p)
			continue
		case len(sends) == 1:
			// The round's done mark rides with its one device's outcome.
			doneMarked, errs[i] = w.firstAttempt(ctx, p, done)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.firstAttempt(ctx, p, nil)
		}()
	}
	wg.Wait()
	return doneMarked, errors.Join(errs...)
}

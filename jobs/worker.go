package jobs

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/internal/groupcommit"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/render"
)

func jitter() float64 { return rand.Float64() }

// Config configures the worker.
type Config struct {
	// MaxRetry is the number of retries after a device's first attempt. Default 10.
	MaxRetry int
	// APNSHost overrides Apple's endpoint (the simulator in dev and tests).
	APNSHost string
	// APNSRootCAs trusts the APNS simulator's certificate; nil = system roots.
	APNSRootCAs *x509.CertPool
	// FCMEndpoint overrides Google's FCM endpoint (the simulator in dev and tests).
	FCMEndpoint string
	// FCMTokenURIs are the token endpoints a service account may name;
	// empty means Google's (providers.DefaultFCMTokenURIs).
	FCMTokenURIs []string
	// SendTimeout bounds one provider request. Default 10s.
	SendTimeout time.Duration
	// PlanTTL is how long a round's device plan and outcomes stay in Redis
	// to make re-run tasks idempotent. Default 7 days.
	PlanTTL time.Duration
	// BroadcastBatch is how many deliveries one fan-out task creates. Default 5000.
	BroadcastBatch int
	// Concurrency is the most deliveries a worker's fan-out tasks carry out
	// at once, together (each fan-out task carries out its batch). Default 50.
	Concurrency int
	// RetryBase and RetryMax are the backoff of a device's retries (see
	// RetryDelay): the delay before the send task that takes over a
	// transient first attempt. Defaults 1s and 10m.
	RetryBase, RetryMax time.Duration
	// Template bounds the rendering of one push's templates (render.Limits;
	// zero fields take their defaults).
	Template render.Limits
	// Secrets opens the push credentials sealed at rest.
	Secrets *secret.Box
}

// EventWriter stores events, returning once they are durable. WriteThen
// also runs then's Redis commands, on the worker's Redis, atomically with
// the events (clickhouse.StreamWriter.WriteThen).
type EventWriter interface {
	Write(ctx context.Context, events ...clickhouse.Event) error
	WriteThen(ctx context.Context, then func(context.Context, redis.Pipeliner) []redis.Cmder, events ...clickhouse.Event) error
}

// Worker handles Herald's tasks.
type Worker struct {
	store    *clickhouse.Store
	events   EventWriter
	rdb      redis.UniversalClient
	client   *asynq.Client
	render   *render.Engine
	senders  *senderCache
	targets  *TargetCache
	messages *ttlCache[string, clickhouse.Message]
	// broadcasts: a broadcast's row is written once; its fan-out batches
	// read it from here instead of one query each.
	broadcasts *ttlCache[string, clickhouse.Broadcast]
	creds      *ttlCache[string, map[string]clickhouse.Credentials]
	cfg        Config
	logger     *slog.Logger
	// slots bounds the goroutines of the send pool, and so the deliveries
	// that fan-out tasks carry out at once (goSend); sendq hands a
	// delivery's sends to an idle one.
	slots chan struct{}
	sendq chan func()
	// batches bounds the fan-out batches in progress at once (batchesAhead).
	batches chan struct{}
	// marks group-commits the send path's one-command Redis writes (see mark).
	marks *groupcommit.Committer[markCmd]
	// locks serialize changes to one device's row (LockDevice).
	locks clickhouse.Locker
}

// markCmd adds Redis commands to a pipeline (run in order).
type markCmd func(ctx context.Context, p redis.Pipeliner) []redis.Cmder

// mark runs one Redis write of the send path (a finalKey, a broadcast's
// done bit) and returns once Redis has it. Concurrent marks share one
// pipeline (groupcommit); each is a plain SET or SETBIT, safe to repeat.
func (w *Worker) mark(ctx context.Context, c markCmd) error {
	return w.marks.Do(ctx, c)
}

// runMarks sends a batch of marks in one pipeline.
func (w *Worker) runMarks(ctx context.Context, cs []markCmd) []error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmds := make([][]redis.Cmder, len(cs))
	_, _ = w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range cs {
			cmds[i] = c(ctx, p)
		}
		return nil
	})
	errs := make([]error, len(cs))
	for i, cc := range cmds {
		for _, c := range cc {
			if errs[i] == nil {
				errs[i] = c.Err()
			}
		}
	}
	return errs
}

// NewWorker builds a worker; client enqueues the send and fan-out tasks.
func NewWorker(store *clickhouse.Store, events EventWriter, rdb redis.UniversalClient, client *asynq.Client, cfg Config, logger *slog.Logger) *Worker {
	if cfg.MaxRetry <= 0 {
		cfg.MaxRetry = 10
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.PlanTTL <= 0 {
		cfg.PlanTTL = 7 * 24 * time.Hour
	}
	if cfg.BroadcastBatch <= 0 {
		cfg.BroadcastBatch = 5000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 50
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Minute
	}
	w := &Worker{
		store: store, events: events, rdb: rdb, client: client, render: render.New(cfg.Template),
		senders: newSenderCache(store, cfg), targets: NewTargetCache(rdb, 0), cfg: cfg, logger: logger,
		messages:   newTTLCache[string, clickhouse.Message](time.Minute),
		broadcasts: newTTLCache[string, clickhouse.Broadcast](time.Minute),
		creds:      newTTLCache[string, map[string]clickhouse.Credentials](5 * time.Second),
		slots:      make(chan struct{}, cfg.Concurrency),
		sendq:      make(chan func()),
		batches:    make(chan struct{}, batchesAhead(cfg.Concurrency, cfg.BroadcastBatch)),
		locks:      clickhouse.NewRedisLocker(rdb),
	}
	w.marks = groupcommit.New(256, w.runMarks)
	return w
}

// Register adds the handlers to mux.
func (w *Worker) Register(mux *asynq.ServeMux) {
	mux.Use(w.awaitRedis)
	mux.HandleFunc(TypeDeliver, w.HandleDeliver)
	mux.HandleFunc(TypeSend, w.HandleSend)
	mux.HandleFunc(TypeFanout, w.HandleFanout)
}

// redisPoll is how often awaitRedis pings a Redis that does not answer.
const redisPoll = 200 * time.Millisecond

// awaitRedis holds a failed task's error until Redis answers, so that
// asynq records the failure and schedules the retry at once. A task fails
// when Redis goes away mid-task, and asynq then cannot record it: its
// retry of that write reuses a context it has already canceled (asynq
// v0.26 processor.retry, since hibiken/asynq#926), so the task would stay
// active until its lease expires and the recoverer, which runs once a
// minute and takes leases expired over 30 s ago, retries it — up to two
// minutes after Redis is back. While the handler waits, asynq's heartbeat
// keeps extending the lease once Redis answers; if the lease expires first,
// ctx ends and the recoverer takes over as before. A task that succeeded
// has just written to Redis (its last step is a Redis write), so it does
// not wait.
func (w *Worker) awaitRedis(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if err == nil {
			return nil
		}
		w.waitRedis(ctx)
		return err
	})
}

// waitRedis pings Redis until it answers or ctx ends, and reports whether
// it had to wait (Redis did not answer the first ping).
func (w *Worker) waitRedis(ctx context.Context) (waited bool) {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		perr := w.rdb.Ping(pctx).Err()
		cancel()
		if perr == nil {
			return waited
		}
		waited = true
		select {
		case <-ctx.Done():
		case <-time.After(redisPoll):
		}
	}
	return waited
}

// holdRecord runs record, an idempotent write to Redis of something that
// has already happened (a push the provider answered), and when it fails
// waits for Redis and runs it again, for as long as Redis was away and ctx
// lasts. Dropping the record instead would fail the task, and its re-run
// would push the device again; held, a push made during a Redis outage is
// recorded once Redis is back. It gives up when record fails again while
// Redis answers (not an outage).
func (w *Worker) holdRecord(ctx context.Context, record func() error) error {
	err := record()
	for err != nil && ctx.Err() == nil {
		waited := w.waitRedis(ctx)
		if ctx.Err() != nil {
			break
		}
		if err = record(); err != nil && !waited {
			break
		}
	}
	return err
}

// plan is what a deliver task decided for a round. It is stored in Redis
// under planKey before anything is recorded, so a task that runs twice
// carries out the same plan and sends no device twice.
type plan struct {
	PresendReason string       `json:"presend_reason,omitempty"`
	Devices       []planDevice `json:"devices,omitempty"`
	Push          providers.Push
	CredVersions  map[string]uint64 `json:"cred_versions,omitempty"`
}

type planDevice struct {
	Index      uint16 `json:"index"`
	Token      string `json:"token"`
	Platform   string `json:"platform"`
	Suppressed bool   `json:"suppressed,omitempty"`
	// Reporting: the token had reported a metric before (SDK coverage).
	Reporting bool `json:"reporting,omitempty"`
	// State is the device's send state when planned.
	State string `json:"state,omitempty"`
}

// sendPlatform is the platform whose provider and credentials carry the
// device's pushes (domain.SendPlatform): an iOS device with an FCM token
// goes through FCM.
func (pd planDevice) sendPlatform() string {
	return string(domain.SendPlatform(domain.Platform(pd.Platform), pd.Token))
}

// planKey: a round's plan (JSON), set once with SET NX.
func planKey(deliveryID string, round uint16) string {
	return "herald:plan:" + deliveryID + ":" + strconv.Itoa(int(round))
}

// finalKey: set once a device's final outcome is recorded; a send task that
// finds it does nothing.
func finalKey(deliveryID string, round uint16, idx uint16) string {
	return "herald:final:" + deliveryID + ":" + strconv.Itoa(int(round)) + ":" + strconv.Itoa(int(idx))
}

// HandleDeliver runs the pre-send checks of DESIGN.md in order, records the
// targeted and suppressed devices, and makes each device's first attempt.
func (w *Worker) HandleDeliver(ctx context.Context, t *asynq.Task) error {
	var p DeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("jobs: deliver payload: %v: %w", err, asynq.SkipRetry)
	}
	id, err := uuid.Parse(p.DeliveryID)
	if err != nil {
		return fmt.Errorf("jobs: deliver payload id: %v: %w", err, asynq.SkipRetry)
	}
	var d clickhouse.Delivery
	if p.Snapshot != nil && p.Snapshot.Delivery.ID == id {
		d = p.Snapshot.Delivery
	} else {
		p.Snapshot = nil
		if d, err = w.store.Delivery(ctx, p.WorkspaceID, id); errors.Is(err, clickhouse.ErrNotFound) {
			return fmt.Errorf("jobs: delivery %s: %w", p.DeliveryID, asynq.SkipRetry)
		} else if err != nil {
			return err
		}
	}
	if !d.SendAt.IsZero() && p.Round == 0 {
		if err := w.awaitSendAt(ctx, "delivery "+d.ID.String(), d.ID.String(), d.SendAt); err != nil {
			return err
		}
	}
	return w.deliverAll(ctx, []round{{p: p, d: d}})[0]
}

// maxEarly is how early a scheduled deliver task may run and wait for its
// time: Asynq makes it due at the start of its second.
const maxEarly = 2 * time.Second

// awaitSendAt waits for a scheduled send's time (of the delivery or
// broadcast id, named what in errors) when its task runs up to maxEarly
// before it. A task run earlier than that was run by CancelScheduled (it
// goes on to find the cancellation) or too soon, which is retried.
func (w *Worker) awaitSendAt(ctx context.Context, what, id string, at time.Time) error {
	wait := time.Until(at)
	if wait <= 0 {
		return nil
	}
	if wait > maxEarly {
		v, err := claimOf(ctx, w.rdb, id)
		if err != nil {
			return err
		}
		if v == scheduledCanceled {
			return nil
		}
		return fmt.Errorf("jobs: %s is scheduled for %s; it ran %s early", what, at.Format(time.RFC3339Nano), wait.Round(time.Millisecond))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// claimScheduled claims a scheduled delivery or broadcast (by id) as
// started; false when it was canceled first (CancelScheduled).
func (w *Worker) claimScheduled(ctx context.Context, id string) (bool, error) {
	err := claimFirst(ctx, w.rdb, id, scheduledStarted)
	if !errors.Is(err, ErrStarted) {
		return err == nil, err
	}
	v, err := claimOf(ctx, w.rdb, id)
	return v != scheduledCanceled, err
}

// makePlan runs the pre-send checks in DESIGN.md's order. reporting, when
// not nil, holds the workspace's reporting flags of (at least) the person's
// device tokens, read beforehand for a whole batch; ts holds the batch's
// push templates.
func (w *Worker) makePlan(ctx context.Context, d clickhouse.Delivery, snap *Snapshot, reporting map[string]bool, ts templates) (plan, error) {
	fail := func(reason string) (plan, error) { return plan{PresendReason: reason}, nil }
	if !d.SendAt.IsZero() || d.Draft {
		started, err := w.claimScheduled(ctx, d.ID.String())
		if err != nil {
			return plan{}, err
		}
		if !started {
			return fail(domain.ReasonCanceled)
		}
	}

	var person clickhouse.Person
	var err error
	if snap != nil {
		if !snap.PersonFound {
			return fail(domain.ReasonCustomerNotFound)
		}
		person = snap.Person
	} else {
		person, err = w.store.Person(ctx, d.WorkspaceID, d.PersonID)
		if errors.Is(err, clickhouse.ErrNotFound) {
			return fail(domain.ReasonCustomerNotFound)
		}
		if err != nil {
			return plan{}, err
		}
	}
	if person.Unsubscribed && !d.SendToUnsubscribed {
		return fail(domain.ReasonCustomerUnsubscribed)
	}
	msg, err := w.messages.get(d.WorkspaceID+"/"+d.MessageID.String(), func() (clickhouse.Message, error) {
		return w.store.Message(ctx, d.WorkspaceID, d.MessageID)
	})
	if err != nil {
		return plan{}, fmt.Errorf("jobs: message of delivery %s: %w", d.ID, err)
	}
	t, err := ts.of(d, msg)
	var push providers.Push
	if err == nil {
		push, err = w.renderPush(d, person, t)
	}
	var missing *render.MissingVariableError
	if errors.As(err, &missing) {
		return fail(missing.Error())
	}
	// Any other template error (a filter's, a render over its budget, a
	// stored template that no longer parses) is as final as a missing
	// variable: rendering again gives the same error.
	var bad *render.FieldError
	if errors.As(err, &bad) {
		return fail(bad.Reason())
	}
	if err != nil {
		return plan{}, fmt.Errorf("jobs: render: %v: %w", err, asynq.SkipRetry)
	}

	var stored []clickhouse.Device
	if snap != nil {
		stored = snap.Devices
	} else if stored, err = w.store.Devices(ctx, d.WorkspaceID, d.PersonID); err != nil {
		return plan{}, err
	}
	all := make([]domain.Device, len(stored))
	for i, s := range stored {
		all[i] = domain.Device{Token: s.Token, Platform: domain.Platform(s.Platform), LastUsed: s.LastUsed, State: domain.DeviceState(s.State)}
	}
	picked := domain.PickDevices(domain.Audience(d.Audience), all, d.Token)
	if len(picked) == 0 {
		return fail(domain.ReasonNoDevices)
	}
	if len(picked) > clickhouse.MaxDevices {
		picked = picked[:clickhouse.MaxDevices] // the most recently used
	}

	creds, err := w.creds.get(d.WorkspaceID, func() (map[string]clickhouse.Credentials, error) {
		return w.store.Credentials(ctx, d.WorkspaceID)
	})
	if err != nil {
		return plan{}, err
	}
	tokens := make([]string, len(picked))
	for i, dev := range picked {
		tokens[i] = dev.Token
	}
	if reporting == nil {
		if reporting, err = w.targets.Reporting(ctx, d.WorkspaceID, tokens); err != nil {
			return plan{}, err
		}
	}
	pl := plan{Push: push, CredVersions: map[string]uint64{}}
	for i, dev := range picked {
		pd := planDevice{Index: uint16(i), Token: dev.Token, Platform: string(dev.Platform), Suppressed: dev.State == domain.DeviceSuppressed,
			Reporting: reporting[dev.Token], State: string(dev.State)}
		if !pd.Suppressed {
			via := pd.sendPlatform()
			c, ok := creds[via]
			if !ok {
				return fail(domain.ReasonCredentialsNotFound)
			}
			pl.CredVersions[via] = c.Version
		}
		pl.Devices = append(pl.Devices, pd)
	}
	return pl, nil
}

// pushTemplate is what rendering a push needs of its message and of its
// delivery's overrides and data, with the JSON decoded once: a fan-out
// batch's deliveries share all three (templates).
type pushTemplate struct {
	fields, custom map[string]string
	opts           providers.Options
	data           map[string]any
	badge          int32
	// withData: the push carries custom data (custom values or data.* fields).
	withData bool
}

// newPushTemplate decodes a delivery's message, overrides and data.
func newPushTemplate(d clickhouse.Delivery, m clickhouse.Message) (*pushTemplate, error) {
	data := map[string]any{}
	if d.Data != "" {
		if err := json.Unmarshal([]byte(d.Data), &data); err != nil {
			return nil, fmt.Errorf("delivery data: %w", err)
		}
	}
	fields, custom, err := MessageFields(m)
	if err != nil {
		return nil, err
	}
	overrides, err := DecodeOverrides(d.Overrides)
	if err != nil {
		return nil, err
	}
	if err := overrides.Apply(fields, custom); err != nil {
		return nil, err
	}
	msgOpts, err := providers.DecodeOptions(m.Options)
	if err != nil {
		return nil, err
	}
	opts := overrides.EffectiveOptions(msgOpts)
	AddOptionFields(fields, opts)
	return &pushTemplate{fields: fields, custom: custom, opts: opts, data: data, badge: m.Badge,
		withData: len(custom) > 0 || hasData(fields)}, nil
}

// templates keeps the push templates made for a batch of deliveries, by
// message, overrides and data. Render reads a template's maps and never
// writes them, so the batch's renders share them.
type templates map[templateKey]*pushTemplate

type templateKey struct {
	message         uuid.UUID
	overrides, data string
}

// of returns the template of a delivery of message m, made once.
func (ts templates) of(d clickhouse.Delivery, m clickhouse.Message) (*pushTemplate, error) {
	k := templateKey{m.ID, d.Overrides, d.Data}
	if t, ok := ts[k]; ok {
		return t, nil
	}
	t, err := newPushTemplate(d, m)
	if err == nil {
		ts[k] = t
	}
	return t, err
}

// renderPush renders the message's Liquid fields, with the delivery's
// overrides applied, for the person.
func (w *Worker) renderPush(d clickhouse.Delivery, person clickhouse.Person, t *pushTemplate) (providers.Push, error) {
	customer := map[string]any{}
	if person.Attributes != "" {
		if err := json.Unmarshal([]byte(person.Attributes), &customer); err != nil {
			return providers.Push{}, fmt.Errorf("person attributes: %w", err)
		}
	}
	if _, ok := customer["id"]; !ok {
		customer["id"] = person.ID
	}
	out, err := w.render.Render(t.fields, customer, t.data)
	if err != nil {
		return providers.Push{}, err
	}
	text := map[string]string{}
	for k, v := range out {
		if name, ok := strings.CutPrefix(k, "options."); ok {
			text[name] = v
		}
	}
	p := providers.Push{
		DeliveryID: d.ID.String(),
		Title:      out["title"], Body: out["body"], Link: out["link"], Image: out["image"], Sound: out["sound"],
		Options: t.opts.WithText(text),
	}
	if t.badge >= 0 {
		b := int(t.badge)
		p.Badge = &b
	}
	if t.withData {
		p.Data = map[string]string{}
		for k, v := range t.custom {
			p.Data[k] = v
		}
		for k, v := range out {
			if name, ok := strings.CutPrefix(k, "data."); ok {
				p.Data[name] = v
			}
		}
	}
	return p, nil
}

// AddOptionFields adds the options' Liquid templates (Options.TextFields)
// to a message's fields as "options.<path>".
func AddOptionFields(fields map[string]string, opts providers.Options) {
	for k, v := range opts.TextFields() {
		if v != "" {
			fields["options."+k] = v
		}
	}
}

// hasData reports whether fields hold a custom data template.
func hasData(fields map[string]string) bool {
	for k := range fields {
		if strings.HasPrefix(k, "data.") {
			return true
		}
	}
	return false
}

// MessageFields returns a message's Liquid fields by name ("title", "body",
// "link", "image", "sound", "data.<key>" for each string value of custom
// data) and the custom data values that are not strings, as JSON text.
func MessageFields(m clickhouse.Message) (map[string]string, map[string]string, error) {
	fields := map[string]string{"title": m.Title, "body": m.Body, "link": m.Link, "image": m.Image, "sound": m.Sound}
	custom := map[string]string{}
	if m.Data == "" {
		return fields, custom, nil
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(m.Data), &data); err != nil {
		return nil, nil, fmt.Errorf("message data: %w", err)
	}
	for k, v := range data {
		if s, ok := v.(string); ok {
			fields["data."+k] = s
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, nil, fmt.Errorf("message data %q: %w", k, err)
		}
		custom[k] = string(b)
	}
	return fields, custom, nil
}

// handoffKey: set once a device's first attempt failed transiently and its
// retries were handed to a send task; a deliver task that runs again and
// finds it queues that task again (a no-op if it is queued) instead of
// making the first attempt again.
func handoffKey(deliveryID string, round uint16, idx uint16) string {
	return "herald:handoff:" + deliveryID + ":" + strconv.Itoa(int(round)) + ":" + strconv.Itoa(int(idx))
}

// firstAttempt makes a device's first attempt and, when it failed
// transiently and retries are allowed, hands the device to a send task.
// then is marked with a final outcome (see attempt); thenDone says it was.
func (w *Worker) firstAttempt(ctx context.Context, p SendPayload, then markCmd) (thenDone bool, err error) {
	final, _, err := w.attempt(ctx, p, 1, w.cfg.MaxRetry == 0, then)
	if err != nil || final {
		return final && then != nil, err // attempt reports no final outcome with an error
	}
	if err := w.rdb.Set(ctx, handoffKey(p.DeliveryID, p.Round, p.DeviceIndex), "1", w.cfg.PlanTTL).Err(); err != nil {
		return false, fmt.Errorf("jobs: mark hand-off: %w", err)
	}
	return false, w.handoff(ctx, p)
}

// handoff queues the send task that makes a device's retries, after the
// first retry delay. Its task id is (delivery, round, device), so queueing
// it again is a no-op.
func (w *Worker) handoff(ctx context.Context, p SendPayload) error {
	p.Attempts, p.target = 1, nil
	t, err := NewSendTask(p, w.cfg.MaxRetry, asynq.ProcessIn(RetryDelay(w.cfg.RetryBase, w.cfg.RetryMax)(0, nil, nil)))
	if err != nil {
		return err
	}
	return enqueue(ctx, w.client, t)
}

// HandleSend makes one retry attempt at one device and records the attempt
// and, when there is one, the final outcome. Transient failures return an
// error so asynq retries with backoff; after the last retry the device is
// FAILED.
func (w *Worker) HandleSend(ctx context.Context, t *asynq.Task) error {
	var p SendPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("jobs: send payload: %v: %w", err, asynq.SkipRetry)
	}
	fk := finalKey(p.DeliveryID, p.Round, p.DeviceIndex)
	if n, err := w.rdb.Exists(ctx, fk).Result(); err != nil {
		return fmt.Errorf("jobs: check outcome: %w", err)
	} else if n > 0 {
		return nil // recorded by an earlier run of this task
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if !ok {
		maxRetry = w.cfg.MaxRetry - int(p.Attempts)
	}
	attempt := p.Attempts + uint16(retried+1)
	final, res, err := w.attempt(ctx, p, attempt, retried >= maxRetry, nil)
	if err != nil || final {
		return err
	}
	return fmt.Errorf("jobs: attempt %d to %s: transient: %s", attempt, p.Platform, res.Reason)
}

// attempt makes attempt number n at one device and records it and, when
// there is one, the final outcome: the events first, then the device's
// send state, then finalKey, so a crash before finalKey leaves the device
// to be tried again with the same event identities. When the outcome
// leaves the device's state as it is (deviceChanges), the events and
// finalKey are one MULTI. last makes a transient failure final (FAILED,
// retries exhausted). It reports whether the outcome is final, and the
// provider's answer.
//
// then, when not nil, is marked instead of finalKey when the outcome is
// final: the done bit of a broadcast's round of one device, which says as
// much (outcomeMarks reads it) in one Redis write instead of two.
func (w *Worker) attempt(ctx context.Context, p SendPayload, n uint16, last bool, then markCmd) (final bool, res providers.Result, err error) {
	deliveryID, err := uuid.Parse(p.DeliveryID)
	if err != nil {
		return false, res, fmt.Errorf("jobs: send payload id: %v: %w", err, asynq.SkipRetry)
	}
	campaignID, _ := uuid.Parse(p.CampaignID)

	sender, err := w.senders.get(ctx, p.WorkspaceID, p.Platform, p.CredVersion)
	if err != nil {
		// Stored credentials that do not build a client cannot be fixed by retrying.
		res = providers.Result{Outcome: providers.Permanent, Reason: err.Error()}
	} else {
		sctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
		res = sender.Send(sctx, p.Push)
		cancel()
	}

	// One row: the attempt's outcome carries its attempt number (a final
	// outcome row is also that attempt, migration 0007), or, when the
	// attempt is not final, an attempt row.
	kind, reason := clickhouse.KindAttempt, res.Reason
	switch res.Outcome {
	case providers.Accepted:
		kind, final = clickhouse.KindSent, true
	case providers.BadToken, providers.Unregistered:
		kind, final = clickhouse.KindBounced, true
	case providers.Permanent:
		kind, final = clickhouse.KindFailed, true
	default: // Transient
		if last {
			kind, final = clickhouse.KindFailed, true
			reason = fmt.Sprintf("retries exhausted after %d attempts: %s", n, res.Reason)
		}
	}
	events := []clickhouse.Event{{WorkspaceID: p.WorkspaceID, CampaignID: campaignID, DeliveryID: deliveryID, Round: p.Round,
		DeviceIndex: p.DeviceIndex, Kind: kind, Attempt: n, Reason: reason, StatusCode: uint16(res.StatusCode),
		ProviderID: res.MessageID, DeliveryCreated: p.DeliveryCreated, At: time.Now()}}
	if t := p.target; t != nil {
		e := clickhouse.Event{WorkspaceID: p.WorkspaceID, CampaignID: campaignID, DeliveryID: deliveryID, Round: p.Round,
			DeviceIndex: p.DeviceIndex, Kind: clickhouse.KindTargeted, DeliveryCreated: p.DeliveryCreated, At: events[0].At}
		events = append(events, targetedEvent(e, p.Push.Token, t.platform, t.reporting))
	}
	fk := finalKey(p.DeliveryID, p.Round, p.DeviceIndex)
	markFinal := func(ctx context.Context, rp redis.Pipeliner) []redis.Cmder {
		if then != nil {
			return then(ctx, rp) // stands for finalKey: see outcomeMarks
		}
		return []redis.Cmder{rp.Set(ctx, fk, res.Outcome.String(), w.cfg.PlanTTL)}
	}
	if final && !deviceChanges(p, res.Outcome) {
		// Nothing to change on the device: the final mark goes in the
		// events' MULTI (one Redis write; it cannot be there without them).
		if err := w.holdRecord(ctx, func() error { return w.events.WriteThen(ctx, markFinal, events...) }); err != nil {
			return false, res, err // retried; the rows are rewritten with the same identities
		}
		return true, res, nil
	}
	if err := w.holdRecord(ctx, func() error { return w.events.Write(ctx, events...) }); err != nil {
		return false, res, err // retried; the attempt row is rewritten with the same identity
	}
	if !final {
		return false, res, nil
	}
	if err := w.holdRecord(ctx, func() error { return w.updateDevice(ctx, p, res.Outcome) }); err != nil {
		return false, res, err // its lock is in Redis
	}
	if err := w.holdRecord(ctx, func() error { return w.mark(ctx, markFinal) }); err != nil {
		return false, res, fmt.Errorf("jobs: mark outcome: %w", err)
	}
	return true, res, nil
}

// deviceLockTTL bounds how long a dead holder keeps a device locked.
const deviceLockTTL = 10 * time.Second

// LockDevice takes the lock on one device's row, shared by every process
// on the Redis: a change that reads the row (a bounce, a send after a
// bounce, a removal) or overwrites it (a registration) holds it, so two
// bounces of one token at once make it suppressed, as two in a row do, and
// a registration is not undone by a bounce that read the row before it.
func LockDevice(ctx context.Context, locks clickhouse.Locker, workspaceID, personID, token string) (unlock func(), err error) {
	return locks.Lock(ctx, "herald:device-lock:"+workspaceID+":"+personID+":"+token, deviceLockTTL)
}

// deviceChanges reports whether outcome o may change the device's send
// state (updateDevice): a bounce, or an acceptance of a device that was
// not OK when planned.
func deviceChanges(p SendPayload, o providers.Outcome) bool {
	switch o {
	case providers.BadToken, providers.Unregistered:
		return true
	case providers.Accepted:
		return p.DeviceState != "" && p.DeviceState != string(domain.DeviceOK)
	}
	return false
}

// updateDevice applies the bounce rules to the device's send state.
func (w *Worker) updateDevice(ctx context.Context, p SendPayload, o providers.Outcome) error {
	if !deviceChanges(p, o) {
		return nil // nothing to change: spare the read
	}
	unlock, err := LockDevice(ctx, w.locks, p.WorkspaceID, p.PersonID, p.Push.Token)
	if err != nil {
		return err
	}
	defer unlock()
	dev, err := w.store.Device(ctx, p.WorkspaceID, p.PersonID, p.Push.Token)
	if errors.Is(err, clickhouse.ErrNotFound) || (err == nil && dev.Removed) {
		return nil
	}
	if err != nil {
		return err
	}
	next := dev
	switch o {
	case providers.Accepted:
		next.State = string(domain.AfterSent(domain.DeviceState(dev.State)))
	case providers.BadToken:
		next.State = string(domain.AfterBounce(domain.DeviceState(dev.State)))
	case providers.Unregistered:
		next.State = string(domain.AfterBounce(domain.DeviceState(dev.State)))
		next.Removed = true
	}
	if next == dev {
		return nil
	}
	return w.store.PutDevice(ctx, next)
}

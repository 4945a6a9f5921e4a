package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// Event kinds, as the events.kind Enum8 spells them.
const (
	KindTargeted      = "targeted"
	KindAttempt       = "attempt"
	KindSent          = "sent"
	KindBounced       = "bounced"
	KindFailed        = "failed"
	KindSuppressed    = "suppressed"
	KindDelivered     = "delivered"
	KindOpened        = "opened"
	KindConverted     = "converted"
	KindPresendFailed = "presend_failed"
)

// DeliveryLevel is the device_index of delivery-level events (pre-send failures).
const DeliveryLevel = 255

// Event is one row of the events table. (WorkspaceID, CampaignID,
// DeliveryID, Round, DeviceIndex, Kind, Attempt) is its identity: writing the
// same event twice never changes a figure.
type Event struct {
	WorkspaceID     string
	CampaignID      uuid.UUID
	DeliveryID      uuid.UUID
	Round           uint16
	DeviceIndex     uint8
	Kind            string
	Attempt         uint16
	StatusCode      uint16 // the provider's HTTP status; on targeted: 1 = the token had reported a metric before
	Reason          string
	ProviderID      string
	Token           string // delivered/opened only: the reporting device's token
	DeliveryCreated time.Time
	At              time.Time
}

// insertEvents: params workspace_id, campaign_id, delivery_id, round,
// device_index, kind, attempt, status_code, reason, provider_id, token,
// delivery_created, at, at_us.
const insertEvents = `INSERT INTO events (workspace_id, campaign_id, delivery_id, round, device_index, kind, attempt, status_code, reason, provider_id, token, delivery_created, at, at_us)`

// InsertEvents writes events in one batch.
func InsertEvents(ctx context.Context, conn driver.Conn, events []Event) error {
	batch, err := conn.PrepareBatch(ctx, insertEvents)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare events: %w", err)
	}
	defer batch.Close()
	for _, e := range events {
		if err := batch.Append(e.WorkspaceID, e.CampaignID, e.DeliveryID, e.Round, e.DeviceIndex, e.Kind, e.Attempt,
			e.StatusCode, e.Reason, e.ProviderID, e.Token, e.DeliveryCreated, e.At, uint64(e.At.UnixMicro())); err != nil {
			return fmt.Errorf("clickhouse: append event: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert events: %w", err)
	}
	return nil
}

// InsertEvents writes events straight into ClickHouse, bypassing the
// buffered writer, for the rare write that the next read must see.
func (s *Store) InsertEvents(ctx context.Context, events ...Event) error {
	return InsertEvents(ctx, s.conn, events)
}

// WriterOptions tune the event writer.
type WriterOptions struct {
	// MaxBatch flushes when this many events wait. Default 5000.
	MaxBatch int
	// Interval flushes at least this often. Default 20ms.
	Interval time.Duration
}

// Writer batches events from many goroutines into few ClickHouse inserts.
// Write returns only after the batch holding its events was inserted (group
// commit), so a caller that acknowledges work after Write never acknowledges
// an event that is not stored. It flushes on size or interval, and once more
// at Close.
type Writer struct {
	conn   driver.Conn
	opts   WriterOptions
	logger *slog.Logger

	in   chan pending
	done chan struct{}
	once sync.Once
}

type pending struct {
	events []Event
	result chan error
}

// NewWriter starts a writer; Close stops it after a last flush.
func NewWriter(conn driver.Conn, opts WriterOptions, logger *slog.Logger) *Writer {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 5000
	}
	if opts.Interval <= 0 {
		opts.Interval = 20 * time.Millisecond
	}
	w := &Writer{conn: conn, opts: opts, logger: logger, in: make(chan pending, 1024), done: make(chan struct{})}
	go w.loop()
	return w
}

// Write stores events, returning after they are in ClickHouse.
func (w *Writer) Write(ctx context.Context, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	p := pending{events: events, result: make(chan error, 1)}
	select {
	case w.in <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return fmt.Errorf("clickhouse: event writer closed")
	}
	select {
	case err := <-p.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes what is buffered and stops the writer.
func (w *Writer) Close() {
	w.once.Do(func() { close(w.in) })
	<-w.done
}

func (w *Writer) loop() {
	defer close(w.done)
	ticker := time.NewTicker(w.opts.Interval)
	defer ticker.Stop()
	var buf []pending
	n := 0
	flush := func() {
		if len(buf) == 0 {
			return
		}
		all := make([]Event, 0, n)
		for _, p := range buf {
			all = append(all, p.events...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := InsertEvents(ctx, w.conn, all)
		cancel()
		if err != nil {
			w.logger.Error("event batch failed; callers will retry", "events", len(all), "err", err)
		}
		for _, p := range buf {
			p.result <- err
		}
		buf, n = buf[:0], 0
	}
	for {
		select {
		case p, ok := <-w.in:
			if !ok {
				flush()
				return
			}
			buf = append(buf, p)
			n += len(p.events)
			if n >= w.opts.MaxBatch {
				flush()
			}
		case <-ticker.C:
			flush()
		}
	}
}

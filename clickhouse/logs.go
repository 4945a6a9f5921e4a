package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"
)

// LogFilter selects deliveries for the delivery logs; zero fields match all.
type LogFilter struct {
	CampaignID uuid.UUID
	MessageID  uuid.UUID
	PersonID   string
	Statuses   []string // DeliveryStatus values; empty = any
	From, To   time.Time
}

// LogCursor is a position in the newest-first order: (created_at, id).
type LogCursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// LogRow is one delivery with its computed status.
type LogRow struct {
	Delivery
	Status           string
	FailureReason    string
	DevicesTargeted  int
	DevicesAttempted int
	ConvertedAt      time.Time
	Cursor           LogCursor
}

// selectLogPage: params workspace_id, campaign filter flag, campaign_id,
// message filter flag, message_id, person_id (” = any), person_id, from,
// to, cursor flag, cursor created_at (twice), cursor id, limit. Columns:
// id, campaign_id, message_id, person_id, audience, token, data,
// created_at — newest first, strictly after the cursor, each delivery once
// (LIMIT 1 BY id: a re-run fan-out may have written a row twice before the
// merge).
const selectLogPage = `
SELECT id, campaign_id, message_id, person_id, toString(audience), token, data, created_at
FROM deliveries
WHERE workspace_id = ?
  AND (? = 0 OR campaign_id = ?)
  AND (? = 0 OR message_id = ?)
  AND (? = '' OR person_id = ?)
  AND created_at >= ? AND created_at < ?
  AND (? = 0 OR created_at < ? OR (created_at = ? AND id < ?))
ORDER BY created_at DESC, id DESC
LIMIT 1 BY id
LIMIT ?`

// pageStatusSQL reads a page's rows of delivery_status_in (the one status
// definition). Params: workspace, created lower bound and upper bound
// (exclusive; DateTime64(3) literals), delivery ids (GroupSet). Columns:
// delivery_id, status, failure_reason, n_dev, n_attempted. A delivery
// without a row has no events: ATTEMPTED.
const pageStatusSQL = `SELECT delivery_id, toString(status), failure_reason, n_dev, n_attempted
FROM delivery_status_in(workspace = ?, campaign = '00000000-0000-0000-0000-000000000000', from = ?, to = ?)
WHERE delivery_id IN ?`

// pageConversionsSQL reads the first conversion time of a page's converted
// deliveries. Params: workspace_id, created lower and upper bound, delivery
// ids (GroupSet). Columns: delivery_id, first conversion.
const pageConversionsSQL = `SELECT delivery_id, min(at) FROM events
WHERE workspace_id = ? AND delivery_created >= ? AND delivery_created <= ? AND delivery_id IN ? AND kind = 'converted'
GROUP BY delivery_id`

// logBatch is how many deliveries one round trip examines when a status
// filter drops rows; logMaxBatches bounds the work of one page.
const (
	logBatchMin   = 100
	logMaxBatches = 20
)

// DeliveryLogs returns up to first deliveries matching f, newest first,
// strictly after the cursor, and the cursor of the next page (nil at the
// end). Pages are read from the deliveries table by time first and only
// their ids are aggregated; a delivery created later never shifts a page, so
// cursors stay stable while deliveries arrive. With a status filter a page
// may hold fewer than first rows (it stops after logMaxBatches batches);
// follow the cursor.
func (s *Store) DeliveryLogs(ctx context.Context, workspaceID string, f LogFilter, first int, after *LogCursor) ([]LogRow, *LogCursor, error) {
	if first <= 0 {
		first = 20
	}
	to := f.To
	if to.IsZero() {
		// Now, with room for another process's clock running ahead.
		to = time.Now().Add(10 * time.Minute)
	}
	want := map[string]bool{}
	for _, st := range f.Statuses {
		want[st] = true
	}
	batch := first + 1
	if len(want) > 0 && batch < logBatchMin {
		batch = logBatchMin
	}
	var out []LogRow
	cur := after
	for i := 0; i < logMaxBatches; i++ {
		page, err := s.logPage(ctx, workspaceID, f, to, cur, batch)
		if err != nil {
			return nil, nil, err
		}
		if err := s.pageStatuses(ctx, workspaceID, page); err != nil {
			return nil, nil, err
		}
		for j, r := range page {
			if len(want) > 0 && !want[r.Status] {
				continue
			}
			if len(out) == first {
				// One more match exists: the next page starts after the last returned row.
				c := out[len(out)-1].Cursor
				return out, &c, nil
			}
			out = append(out, page[j])
		}
		if len(page) < batch {
			return out, nil, nil // the end
		}
		c := page[len(page)-1].Cursor
		cur = &c
	}
	// Gave up scanning for this page: continue after the last examined row.
	return out, cur, nil
}

// How logPage reads back in time: the newest logWindow first, then windows
// logWindowGrowth times longer each, until the page is full or the filter's
// start is reached. The deliveries table is sorted by (workspace, time), so
// a window reads only its own rows.
const (
	logWindow       = time.Hour
	logWindowGrowth = 4
	logWindowMax    = 50 * 365 * 24 * time.Hour
)

// logPage reads up to limit deliveries matching f created before to, newest
// first, strictly after the cursor (see DeliveryLogs), window by window.
func (s *Store) logPage(ctx context.Context, workspaceID string, f LogFilter, to time.Time, after *LogCursor, limit int) ([]LogRow, error) {
	from := f.From
	if epoch := time.Unix(0, 0); from.Before(epoch) {
		from = epoch
	}
	hi := to
	if after != nil {
		// Rows of the cursor's own millisecond may follow it.
		if c := after.CreatedAt.Add(time.Millisecond); c.Before(hi) {
			hi = c
		}
	}
	var out []LogRow
	for w := logWindow; len(out) < limit && hi.After(from); w *= logWindowGrowth {
		lo := hi.Add(-w)
		if w >= logWindowMax || lo.Before(from) {
			lo = from
		}
		rows, err := s.logWindowRows(ctx, workspaceID, f, lo, hi, after, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		hi = lo
	}
	return out, nil
}

// logWindowRows runs selectLogPage over deliveries created in [from, to).
func (s *Store) logWindowRows(ctx context.Context, workspaceID string, f LogFilter, from, to time.Time, after *LogCursor, limit int) ([]LogRow, error) {
	flag := func(b bool) uint8 {
		if b {
			return 1
		}
		return 0
	}
	cAt := time.Unix(0, 0).UTC()
	cID := uuid.Nil
	if after != nil {
		cAt, cID = after.CreatedAt, after.ID
	}
	rows, err := s.conn.Query(ctx, selectLogPage, workspaceID,
		flag(f.CampaignID != uuid.Nil), f.CampaignID, flag(f.MessageID != uuid.Nil), f.MessageID, f.PersonID, f.PersonID,
		chTime(from), chTime(to), flag(after != nil), chTime(cAt), chTime(cAt), cID, limit)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: delivery logs: %w", err)
	}
	defer rows.Close()
	var out []LogRow
	for rows.Next() {
		r := LogRow{Delivery: Delivery{WorkspaceID: workspaceID}, Status: "ATTEMPTED"}
		if err := rows.Scan(&r.ID, &r.CampaignID, &r.MessageID, &r.PersonID, &r.Audience, &r.Token, &r.Data, &r.CreatedAt); err != nil {
			return nil, fmt.Errorf("clickhouse: scan delivery log: %w", err)
		}
		r.CreatedAt = r.CreatedAt.UTC()
		r.Cursor = LogCursor{CreatedAt: r.CreatedAt, ID: r.ID}
		out = append(out, r)
	}
	return out, rows.Err()
}

// pageStatuses fills the status columns of a page's deliveries.
func (s *Store) pageStatuses(ctx context.Context, workspaceID string, page []LogRow) error {
	if len(page) == 0 {
		return nil
	}
	ids := make([]any, len(page))
	lo, hi := page[0].CreatedAt, page[0].CreatedAt
	byID := make(map[uuid.UUID]*LogRow, len(page))
	for i := range page {
		ids[i] = page[i].ID
		if page[i].CreatedAt.Before(lo) {
			lo = page[i].CreatedAt
		}
		if page[i].CreatedAt.After(hi) {
			hi = page[i].CreatedAt
		}
		byID[page[i].ID] = &page[i]
	}
	set := clickhouse.GroupSet{Value: ids}
	rows, err := s.conn.Query(ctx, pageStatusSQL, workspaceID, chTime(lo), chTime(hi.Add(time.Millisecond)), set)
	if err != nil {
		return fmt.Errorf("clickhouse: delivery log statuses: %w", err)
	}
	defer rows.Close()
	var converted []any
	for rows.Next() {
		var id uuid.UUID
		var st, reason string
		var nDev, nAtt uint32
		if err := rows.Scan(&id, &st, &reason, &nDev, &nAtt); err != nil {
			return fmt.Errorf("clickhouse: scan delivery log status: %w", err)
		}
		if r, ok := byID[id]; ok {
			r.Status, r.FailureReason, r.DevicesTargeted, r.DevicesAttempted = st, reason, int(nDev), int(nAtt)
			if st == "CONVERTED" {
				converted = append(converted, id)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: delivery log statuses: %w", err)
	}
	if len(converted) == 0 {
		return nil
	}
	crows, err := s.conn.Query(ctx, pageConversionsSQL, workspaceID, chTime(lo), chTime(hi), clickhouse.GroupSet{Value: converted})
	if err != nil {
		return fmt.Errorf("clickhouse: delivery log conversions: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		var id uuid.UUID
		var at time.Time
		if err := crows.Scan(&id, &at); err != nil {
			return fmt.Errorf("clickhouse: scan delivery log conversion: %w", err)
		}
		if r, ok := byID[id]; ok {
			r.ConvertedAt = at.UTC()
		}
	}
	return crows.Err()
}

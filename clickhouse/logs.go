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

// pageStatuses fills the status columns of a page's deliveries from their
// events (pageEventsSQL, folded as Store.Status folds one delivery's).
func (s *Store) pageStatuses(ctx context.Context, workspaceID string, page []LogRow) error {
	if len(page) == 0 {
		return nil
	}
	ids := make([]any, len(page))
	campSet := map[uuid.UUID]bool{}
	var camps []any
	lo, hi := page[0].CreatedAt, page[0].CreatedAt
	byID := make(map[uuid.UUID]*LogRow, len(page))
	for i := range page {
		ids[i] = page[i].ID
		if !campSet[page[i].CampaignID] {
			campSet[page[i].CampaignID] = true
			camps = append(camps, page[i].CampaignID)
		}
		if page[i].CreatedAt.Before(lo) {
			lo = page[i].CreatedAt
		}
		if page[i].CreatedAt.After(hi) {
			hi = page[i].CreatedAt
		}
		byID[page[i].ID] = &page[i]
	}
	rows, err := s.queryDeviceRows(ctx, pageEventsSQL, workspaceID, clickhouse.GroupSet{Value: camps}, chTime(lo), chTime(hi), clickhouse.GroupSet{Value: ids})
	if err != nil {
		return fmt.Errorf("clickhouse: delivery log statuses: %w", err)
	}
	for len(rows) > 0 {
		n := 1
		for n < len(rows) && rows[n].delivery == rows[0].delivery {
			n++
		}
		if r, ok := byID[rows[0].delivery]; ok {
			st := fold(rows[:n], newestRound(rows[:n]))
			r.Status, r.FailureReason, r.DevicesTargeted, r.DevicesAttempted, r.ConvertedAt = st.Status, st.FailureReason, st.DevicesTargeted, st.DevicesAttempted, st.ConvertedAt
		}
		rows = rows[n:]
	}
	return nil
}

// LogQueries is the most queries one DeliveryLogs call runs: per batch,
// one per window logPage reads (back to the epoch) and one for the
// statuses; one batch without a status filter, up to logMaxBatches with one.
// GraphQL costs the delivery logs by it.
func LogQueries(statusFilter bool) int {
	windows := 0
	for w, span := logWindow, time.Duration(0); ; w *= logWindowGrowth {
		windows++
		if span += w; w >= logWindowMax || span >= time.Since(time.Unix(0, 0)) {
			break
		}
	}
	if !statusFilter {
		return windows + 1
	}
	return logMaxBatches * (windows + 1)
}

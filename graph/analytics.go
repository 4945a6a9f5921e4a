package graph

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/graph/model"
	"github.com/heraldpush/herald/jobs"
)

// maxPage bounds `first` on every connection.
const maxPage = 100

func pageSize(first *int) (int, error) { return firstArg(first, 20, maxPage) }

// firstArg reads a `first` argument: def when omitted, else 1..most.
func firstArg(first *int, def, most int) (int, error) {
	n := def
	if first != nil {
		n = *first
	}
	if n < 1 || n > most {
		return 0, badInput("first", "must be between 1 and %d, got %d", most, n)
	}
	return n, nil
}

// findByID reads one of the caller's workspace's rows by the id given in
// argument arg: BAD_USER_INPUT naming arg for a malformed id, NOT_FOUND
// ("<kind> <id>") when the workspace has no such row.
func findByID[T any](ctx context.Context, arg, id, kind string, get func(context.Context, string, uuid.UUID) (T, error)) (ws string, v T, err error) {
	if ws, err = workspace(ctx); err != nil {
		return "", v, err
	}
	u, err := parseID(arg, id)
	if err != nil {
		return ws, v, err
	}
	v, err = get(ctx, ws, u)
	if errors.Is(err, clickhouse.ErrNotFound) {
		return ws, v, notFound(kind, id)
	}
	return ws, v, err
}

// pageArgs reads what every connection needs: the caller's workspace,
// the page size and the position after which the page starts.
func pageArgs(ctx context.Context, first *int, after *string) (ws string, n int, cur *clickhouse.LogCursor, err error) {
	if ws, err = workspace(ctx); err != nil {
		return "", 0, nil, err
	}
	if n, err = pageSize(first); err != nil {
		return "", 0, nil, err
	}
	cur, err = decodeCursor(after)
	return ws, n, cur, err
}

// encodeCursor makes an opaque cursor of a (created_at, id) position; the
// time is in microseconds.
func encodeCursor(c clickhouse.LogCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + ":" + c.ID.String()))
}

func decodeCursor(s *string) (*clickhouse.LogCursor, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*s)
	if err == nil {
		us, id, ok := strings.Cut(string(b), ":")
		n, err1 := strconv.ParseInt(us, 10, 64)
		u, err2 := uuid.Parse(id)
		// A time ClickHouse cannot hold was not made by this API either.
		if at := time.UnixMicro(n).UTC(); ok && err1 == nil && err2 == nil && checkTime("after", at) == nil {
			return &clickhouse.LogCursor{CreatedAt: at, ID: u}, nil
		}
	}
	return nil, badInput("after", "not a cursor this API returned")
}

func (r *Resolver) overview(ctx context.Context, c *model.Campaign, from, to *time.Time, g *model.Granularity) (*model.CampaignOverview, error) {
	ws, err := workspace(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkOptTime("from", from); err != nil {
		return nil, err
	}
	if err := checkOptTime("to", to); err != nil {
		return nil, err
	}
	f, t := c.CreatedAt.Add(-time.Second), time.Now().Add(time.Second)
	if from != nil {
		f = *from
	}
	if to != nil {
		t = *to
	}
	if !f.Before(t) {
		return nil, badInput("from", "from (%s) must be before to (%s)", f.Format(time.RFC3339), t.Format(time.RFC3339))
	}
	gran := clickhouse.Day
	if g != nil && *g == model.GranularityHour {
		gran = clickhouse.Hour
		if t.Sub(f) > 93*24*time.Hour {
			return nil, badInput("granularity", "hourly series cover at most 93 days; use DAY")
		}
	}
	o, err := r.Store.Overview(ctx, ws, uuid.MustParse(c.ID), f.UTC(), t.UTC(), gran)
	if err != nil {
		return nil, err
	}
	return overviewModel(o), nil
}

func overviewModel(o clickhouse.Overview) *model.CampaignOverview {
	m := &model.CampaignOverview{
		From: o.From, To: o.To,
		Created: int(o.Created), Attempted: int(o.Attempted), Sends: int(o.Sends), Sent: int(o.Sent), Bounced: int(o.Bounced),
		Suppressed: int(o.Suppressed), Failed: int(o.Failed), Recipients: int(o.Recipients), Delivered: int(o.Delivered),
		Opened: int(o.Opened), Converted: int(o.Converted),
		DeliveryRate: o.DeliveryRate, OpenRate: o.OpenRate, ConversionRate: o.ConversionRate, BounceRate: o.BounceRate,
		SdkRecipients: int(o.SDKRecipients), SdkCoverage: o.SDKCoverage,
		Devices: &model.DeviceTotals{Targeted: int(o.Devices.Targeted), Sent: int(o.Devices.Sent), Bounced: int(o.Devices.Bounced),
			Failed: int(o.Devices.Failed), Suppressed: int(o.Devices.Suppressed), Pending: int(o.Devices.Pending),
			Delivered: int(o.Devices.Delivered), Opened: int(o.Devices.Opened)},
		FailuresByReason: []*model.FailureCount{},
		Series:           []*model.OverviewBucket{},
	}
	for reason, n := range o.FailuresByReason {
		m.FailuresByReason = append(m.FailuresByReason, &model.FailureCount{Reason: reason, Count: int(n)})
	}
	sort.Slice(m.FailuresByReason, func(i, j int) bool {
		a, b := m.FailuresByReason[i], m.FailuresByReason[j]
		return a.Count > b.Count || (a.Count == b.Count && a.Reason < b.Reason)
	})
	for _, b := range o.Series {
		m.Series = append(m.Series, &model.OverviewBucket{Start: b.Start, Created: int(b.Created), Sent: int(b.Sent), Bounced: int(b.Bounced),
			Suppressed: int(b.Suppressed), Failed: int(b.Failed), Delivered: int(b.Delivered), Opened: int(b.Opened), Converted: int(b.Converted)})
	}
	return m
}

func (r *Resolver) campaigns(ctx context.Context, first *int, after *string) (*model.CampaignConnection, error) {
	ws, n, cur, err := pageArgs(ctx, first, after)
	if err != nil {
		return nil, err
	}
	cs, cursors, err := r.Store.Campaigns(ctx, ws, cur, n+1)
	if err != nil {
		return nil, err
	}
	edges, info := pageOf(cs, cursors, n, func(cursor string, c clickhouse.Campaign) *model.CampaignEdge {
		return &model.CampaignEdge{Cursor: cursor, Node: campaignModel(c)}
	})
	return &model.CampaignConnection{Edges: edges, PageInfo: info}, nil
}

// pageOf makes a connection's edges of the first n of rows (a store's
// answer to a limit of n+1) and its page info: a next page when the store
// had more.
func pageOf[T, E any](rows []T, cursors []clickhouse.LogCursor, n int, edge func(cursor string, row T) E) ([]E, *model.PageInfo) {
	edges := []E{}
	info := &model.PageInfo{}
	for i, row := range rows {
		if i == n {
			info.HasNextPage = true
			break
		}
		cc := encodeCursor(cursors[i])
		edges = append(edges, edge(cc, row))
		info.EndCursor = &cc
	}
	return edges, info
}

func (r *Resolver) pushMessages(ctx context.Context, campaignID *string, first *int, after *string) (*model.PushMessageConnection, error) {
	ws, n, cur, err := pageArgs(ctx, first, after)
	if err != nil {
		return nil, err
	}
	camp := uuid.Nil
	if campaignID != nil {
		if camp, err = parseID("campaignId", *campaignID); err != nil {
			return nil, err
		}
	}
	ms, cursors, err := r.Store.Messages(ctx, ws, camp, cur, n+1)
	if err != nil {
		return nil, err
	}
	edges, info := pageOf(ms, cursors, n, func(cursor string, m clickhouse.Message) *model.PushMessageEdge {
		return &model.PushMessageEdge{Cursor: cursor, Node: messageModel(m)}
	})
	return &model.PushMessageConnection{Edges: edges, PageInfo: info}, nil
}

func (r *Resolver) deliveries(ctx context.Context, filter *model.DeliveryFilter, first *int, after *string) (*model.DeliveryConnection, error) {
	ws, n, cur, err := pageArgs(ctx, first, after)
	if err != nil {
		return nil, err
	}
	var f clickhouse.LogFilter
	if filter != nil {
		if filter.CampaignID != nil {
			if f.CampaignID, err = parseID("filter.campaignId", *filter.CampaignID); err != nil {
				return nil, err
			}
		}
		if filter.MessageID != nil {
			if f.MessageID, err = parseID("filter.messageId", *filter.MessageID); err != nil {
				return nil, err
			}
		}
		if filter.PersonID != nil {
			if err := validPersonID("filter.personId", *filter.PersonID); err != nil {
				return nil, err
			}
			f.PersonID = *filter.PersonID
		}
		for _, s := range filter.Status {
			if s == model.DeliveryStatusScheduled || s == model.DeliveryStatusDraft {
				return nil, badInput("filter.status", "%s is not a delivery-logs filter: a scheduled send or a draft is listed as ATTEMPTED until it goes", s)
			}
			f.Statuses = append(f.Statuses, string(s))
		}
		if err := checkOptTime("filter.from", filter.From); err != nil {
			return nil, err
		}
		if err := checkOptTime("filter.to", filter.To); err != nil {
			return nil, err
		}
		if filter.From != nil {
			f.From = filter.From.UTC()
		}
		if filter.To != nil {
			f.To = filter.To.UTC()
		}
		if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
			return nil, badInput("filter.from", "from must be before to")
		}
	}
	rows, next, err := r.Store.DeliveryLogs(ctx, ws, f, n, cur)
	if err != nil {
		return nil, err
	}
	conn := &model.DeliveryConnection{Edges: []*model.DeliveryEdge{}, PageInfo: &model.PageInfo{HasNextPage: next != nil}}
	for _, row := range rows {
		c := encodeCursor(row.Cursor)
		conn.Edges = append(conn.Edges, &model.DeliveryEdge{Cursor: c, Node: logModel(row)})
	}
	if next != nil {
		c := encodeCursor(*next)
		conn.PageInfo.EndCursor = &c
	} else if len(rows) > 0 {
		c := encodeCursor(rows[len(rows)-1].Cursor)
		conn.PageInfo.EndCursor = &c
	}
	return conn, nil
}

func logModel(r clickhouse.LogRow) *model.DeliveryLog {
	m := &model.DeliveryLog{ID: r.ID.String(), Status: model.DeliveryStatus(r.Status), FailureReason: optString(r.FailureReason),
		PersonID: r.PersonID, MessageID: r.MessageID.String(), DevicesTargeted: r.DevicesTargeted, DevicesAttempted: r.DevicesAttempted,
		CreatedAt: r.CreatedAt.UTC(), Converted: !r.ConvertedAt.IsZero(), ConvertedAt: optTime(r.ConvertedAt)}
	if r.CampaignID != uuid.Nil {
		m.CampaignID = r.CampaignID.String()
	}
	return m
}

func (r *Resolver) messageByID(ctx context.Context, id string) (*model.PushMessage, error) {
	ws, err := workspace(ctx)
	if err != nil {
		return nil, err
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, nil
	}
	m, err := r.Store.Message(ctx, ws, u)
	if errors.Is(err, clickhouse.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return messageModel(m), nil
}

func (r *Resolver) history(ctx context.Context, d *model.Delivery) ([]*model.DeliveryRound, error) {
	ws, err := workspace(ctx)
	if err != nil {
		return nil, err
	}
	// The parent resolver already read the delivery: rebuild its key
	// rather than reading the row again.
	row := clickhouse.Delivery{WorkspaceID: ws, ID: uuid.MustParse(d.ID), CreatedAt: d.CreatedAt}
	if d.CampaignID != "" {
		row.CampaignID = uuid.MustParse(d.CampaignID)
	}
	rounds, err := r.Store.History(ctx, row)
	if err != nil {
		return nil, err
	}
	var out []*model.DeliveryRound
	for _, st := range rounds {
		dm := deliveryModel(row, st)
		out = append(out, &model.DeliveryRound{Round: int(st.Round), Status: dm.Status, FailureReason: dm.FailureReason,
			DevicesTargeted: dm.DevicesTargeted, DevicesAttempted: dm.DevicesAttempted, Devices: dm.Devices})
	}
	return out, nil
}

// deliveryStatus reads a delivery of the caller's workspace and computes
// its status: BAD_USER_INPUT for a malformed id, NOT_FOUND for an unknown
// one (or another workspace's).
func (r *Resolver) deliveryStatus(ctx context.Context, id string) (clickhouse.Delivery, clickhouse.DeliveryStatus, error) {
	_, d, err := findByID(ctx, "id", id, "delivery", r.Store.Delivery)
	if err != nil {
		return d, clickhouse.DeliveryStatus{}, err
	}
	st, err := r.Store.Status(ctx, d)
	return d, st, err
}

// retryDelivery starts a new round of a FAILED delivery. The round's first
// event (a delivery-level "targeted" row) is written before the task is
// queued, so the delivery reads ATTEMPTED at once; two retries racing pick
// the same round and its task id, so they make one round.
func (r *Resolver) retryDelivery(ctx context.Context, id string) (*model.Delivery, error) {
	d, st, err := r.deliveryStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	ws := d.WorkspaceID
	if st.Status != string(domain.DeliveryFailed) {
		return nil, badInput("id", "delivery is %s: only FAILED deliveries can be retried", st.Status)
	}
	round := st.Round + 1
	// Inserted directly (not through the buffered writer) so that the next
	// read already sees the new round.
	if err := r.Store.InsertEvents(ctx, clickhouse.Event{WorkspaceID: ws, CampaignID: d.CampaignID, DeliveryID: d.ID, Round: round,
		DeviceIndex: clickhouse.DeliveryLevel, Kind: clickhouse.KindTargeted, Reason: "retry", DeliveryCreated: d.CreatedAt, At: time.Now()}); err != nil {
		return nil, err
	}
	// The task id comes from the parsed id, never the argument: "ABC…" and
	// "abc…" are one delivery and must be one task.
	if err := r.Queue.Deliver(ctx, jobs.DeliverPayload{WorkspaceID: ws, DeliveryID: d.ID.String(), Round: round}); err != nil {
		return nil, err
	}
	m := deliveryModel(d, clickhouse.DeliveryStatus{Status: string(domain.DeliveryAttempted), Round: round})
	return m, nil
}

// cancelDelivery cancels a scheduled send before it starts (jobs.Queue.CancelScheduled).
func (r *Resolver) cancelDelivery(ctx context.Context, id string) (*model.Delivery, error) {
	d, st, err := r.deliveryStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.SendAt.IsZero() && !d.Draft {
		return nil, badInput("id", "delivery %s was sent at once, not scheduled: only a scheduled send or a draft can be canceled", d.ID)
	}
	cancel := func() error { return r.Queue.CancelScheduled(ctx, d.ID.String()) }
	if d.Draft {
		cancel = func() error {
			return r.Queue.CancelDraft(ctx, jobs.DeliverPayload{WorkspaceID: d.WorkspaceID, DeliveryID: d.ID.String()})
		}
	}
	if err := cancel(); errors.Is(err, jobs.ErrStarted) {
		return nil, badInput("id", "delivery %s has started (or was canceled already): a scheduled send can be canceled only before its time", d.ID)
	} else if err != nil {
		return nil, err
	}
	return deliveryModel(d, st), nil
}

// renderedPush is a delivery's current round's push from its plan
// (jobs.Queue.PlannedPush); the device token is left out.
func (r *Resolver) renderedPush(ctx context.Context, d *model.Delivery) (*model.RenderedPush, error) {
	p, err := r.Queue.PlannedPush(ctx, d.ID, uint16(d.Round))
	if err != nil || p == nil {
		return nil, err
	}
	rp := &model.RenderedPush{Title: p.Title, Body: p.Body, Link: p.Link, Image: p.Image, Sound: p.Sound, Badge: p.Badge,
		Data: map[string]any{}, Options: p.Options}
	for k, v := range p.Data {
		rp.Data[k] = v
	}
	return rp, nil
}

// sendDraft sends a draft delivery (jobs.Queue.ReleaseDraft).
func (r *Resolver) sendDraft(ctx context.Context, id string) (*model.Delivery, error) {
	d, st, err := r.deliveryStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	if !d.Draft {
		return nil, badInput("id", "delivery %s is not a draft", d.ID)
	}
	if err := r.Queue.ReleaseDraft(ctx, jobs.DeliverPayload{WorkspaceID: d.WorkspaceID, DeliveryID: d.ID.String()}); errors.Is(err, jobs.ErrStarted) {
		return nil, badInput("id", "draft %s was sent or canceled already", d.ID)
	} else if err != nil {
		return nil, err
	}
	m := deliveryModel(d, st)
	m.Status = model.DeliveryStatusAttempted
	return m, nil
}

// maxBroadcastList bounds an explicit person list (larger audiences omit
// personIds and send to everyone).
const maxBroadcastList = 100_000

func (r *Resolver) broadcast(ctx context.Context, in model.BroadcastInput) (*model.Broadcast, error) {
	ws, err := workspace(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.allowSend(ctx, ws); err != nil {
		return nil, err
	}
	msgID, err := parseID("input.messageId", in.MessageID)
	if err != nil {
		return nil, err
	}
	msg, err := r.Store.Message(ctx, ws, msgID)
	if errors.Is(err, clickhouse.ErrNotFound) {
		return nil, badInput("input.messageId", "no push message with id %s", in.MessageID)
	} else if err != nil {
		return nil, err
	}
	var overrides string
	if in.Overrides != nil {
		if overrides, err = r.checkOverrides(*in.Overrides, msg); err != nil {
			return nil, err
		}
	}
	audience := model.AudienceAllDevices
	if in.Audience != nil {
		audience = *in.Audience
	}
	if audience == model.AudienceCustomToken {
		return nil, badInput("input.audience", "a broadcast sends to ALL_DEVICES or LAST_USED, not a custom token")
	}
	data, err := encodeJSON("input.data", in.Data)
	if err != nil {
		return nil, err
	}
	var sendAt time.Time
	if in.SendAt != nil {
		if err := checkSendAt("input.sendAt", *in.SendAt); err != nil {
			return nil, err
		}
		sendAt = in.SendAt.UTC().Truncate(time.Millisecond)
	}
	id, _ := uuid.NewV7()
	b := clickhouse.Broadcast{WorkspaceID: ws, ID: id, MessageID: msgID, Audience: string(audience), Data: data, Overrides: overrides, SendAt: sendAt, CreatedAt: time.Now().UTC()}
	if in.PersonIds == nil {
		b.AllPersons = true
		if b.Total, err = r.Store.CountPersons(ctx, ws); err != nil {
			return nil, err
		}
	} else {
		if len(in.PersonIds) == 0 || len(in.PersonIds) > maxBroadcastList {
			return nil, badInput("input.personIds", "give 1 to %d person ids, or omit personIds to send to everyone", maxBroadcastList)
		}
		seen := map[string]bool{}
		for i, p := range in.PersonIds {
			if err := validPersonID(fmt.Sprintf("input.personIds[%d]", i), p); err != nil {
				return nil, err
			}
			if !seen[p] {
				seen[p] = true
				b.PersonIDs = append(b.PersonIDs, p)
			}
		}
		b.Total = uint64(len(b.PersonIDs))
	}
	if err := r.Store.CreateBroadcast(ctx, b); err != nil {
		return nil, err
	}
	if err := r.Queue.Broadcast(ctx, ws, id.String(), sendAt); err != nil {
		return nil, err
	}
	return broadcastModel(b, 0, 0, false), nil
}

func broadcastModel(b clickhouse.Broadcast, queued, done int, canceled bool) *model.Broadcast {
	m := &model.Broadcast{ID: b.ID.String(), MessageID: b.MessageID.String(), Total: int(b.Total), Queued: queued, Done: done,
		CreatedAt: b.CreatedAt, Canceled: canceled}
	if !b.SendAt.IsZero() {
		at := b.SendAt
		m.SendAt = &at
	}
	return m
}

// cancelBroadcast cancels a scheduled broadcast before it fans out (jobs.Queue.CancelBroadcast).
func (r *Resolver) cancelBroadcast(ctx context.Context, id string) (*model.Broadcast, error) {
	_, b, err := findByID(ctx, "id", id, "broadcast", r.Store.Broadcast)
	if err != nil {
		return nil, err
	}
	if b.SendAt.IsZero() {
		return nil, badInput("id", "broadcast %s was sent at once, not scheduled: only a scheduled broadcast can be canceled", b.ID)
	}
	if err := r.Queue.CancelBroadcast(ctx, b.ID.String()); errors.Is(err, jobs.ErrStarted) {
		return nil, badInput("id", "broadcast %s has started (or was canceled already): a scheduled broadcast can be canceled only before its time", b.ID)
	} else if err != nil {
		return nil, err
	}
	return broadcastModel(b, 0, 0, true), nil
}

func (r *Resolver) broadcastByID(ctx context.Context, id string) (*model.Broadcast, error) {
	_, b, err := findByID(ctx, "id", id, "broadcast", r.Store.Broadcast)
	if err != nil {
		return nil, err
	}
	return r.broadcastNow(ctx, b)
}

// broadcastNow is b with its progress and cancellation as Redis has them.
func (r *Resolver) broadcastNow(ctx context.Context, b clickhouse.Broadcast) (*model.Broadcast, error) {
	// Progress keys are named by the canonical id, whatever case was given.
	queued, done, err := r.Queue.Progress(ctx, b.ID.String())
	if err != nil {
		return nil, err
	}
	canceled := false
	if !b.SendAt.IsZero() {
		if canceled, err = r.Queue.Canceled(ctx, b.ID.String()); err != nil {
			return nil, err
		}
	}
	return broadcastModel(b, queued, done, canceled), nil
}

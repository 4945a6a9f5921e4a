package clickhouse_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/domain/model"
)

// TestPropertyStatusesAndOverview writes thousands of random delivery
// histories (1–12 devices, every outcome, retry rounds, duplicate and
// out-of-order reports, conversions, suppressed devices) to ClickHouse and
// checks the API (Store.Status, Store.History, DeliveryLogs, Overview, FailuresByReason)
// and the analysts' views (delivery_status, campaign_funnel) against the
// pure reference model (domain/model): every delivery's status, failure
// reason, device counts, devices and first times (sentAt, deliveredAt,
// openedAt, convertedAt), and every overview figure. It checks three
// times: after all but 5% of the histories' app reports (the rest arrive
// later, as reports do), after those, and after OPTIMIZE … FINAL has
// merged every table. HERALD_PROPERTY_SEED replays a failure;
// HERALD_PROPERTY_N sets the number of histories (default 10,000).
func TestPropertyStatusesAndOverview(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HERALD_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	n := 10000
	if s := os.Getenv("HERALD_PROPERTY_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d, %d histories (replay with HERALD_PROPERTY_SEED=%d)", seed, n, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with HERALD_PROPERTY_SEED=%d go test -run TestProperty ./clickhouse/", seed, seed)
		}
	}()

	ctx := context.Background()
	conn := chtest.New(t)
	store := clickhouse.NewStore(conn)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	campaigns := []uuid.UUID{model.UUIDAt(time.Unix(1, 0)), model.UUIDAt(time.Unix(2, 0)), model.UUIDAt(time.Unix(3, 0))}
	start := time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Hour)
	ws := "ws_property"
	ds := model.Generate(rng, model.GenOptions{N: n, Workspace: ws, Campaigns: campaigns, Start: start, Span: 9 * 24 * time.Hour})

	// Write the histories as Herald would have: targeted rows carry their
	// device's token and platform, delivered and opened rows the reporting
	// token, and most final attempts are their outcome row (0007).
	rows := make([]clickhouse.Delivery, len(ds))
	for i, d := range ds {
		rows[i] = d.Delivery
	}
	if err := store.CreateDeliveries(ctx, rows); err != nil {
		t.Fatal(err)
	}
	var early, late []clickhouse.Event
	dsEarly := make([]model.Delivery, len(ds))
	for i, d := range ds {
		lateReports := rng.Float64() < 0.05
		dsEarly[i] = d
		dsEarly[i].Events = nil
		for _, e := range d.Events {
			for _, dd := range d.RoundDevices(e.Round) {
				if dd.Index != e.DeviceIndex {
					continue
				}
				switch e.Kind {
				case clickhouse.KindTargeted:
					e.Token, e.ProviderID = dd.Token, dd.Platform
				case clickhouse.KindDelivered, clickhouse.KindOpened:
					e.Token = dd.Token
				}
			}
			isLate := lateReports && (e.Kind == clickhouse.KindDelivered || e.Kind == clickhouse.KindOpened || e.Kind == clickhouse.KindConverted)
			if isLate {
				late = append(late, e)
			} else {
				early = append(early, e)
				dsEarly[i].Events = append(dsEarly[i].Events, e)
			}
		}
	}
	insert := func(events []clickhouse.Event) {
		for len(events) > 0 {
			k := min(len(events), 20000)
			if err := clickhouse.InsertEvents(ctx, conn, events[:k]); err != nil {
				t.Fatal(err)
			}
			events = events[k:]
		}
	}
	insert(early)
	t.Logf("wrote %d deliveries, %d early event rows", len(ds), len(early))

	c := checker{ctx: ctx, store: store, ws: ws, campaigns: campaigns, start: start}
	t.Run("before the late reports", func(t *testing.T) { c.all(t, dsEarly) })
	insert(late)
	t.Logf("wrote %d late event rows", len(late))
	t.Run("after the late reports", func(t *testing.T) { c.all(t, ds) })
	for _, table := range []string{"events", "delivery_states", "deliveries", "campaign_created"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatalf("OPTIMIZE TABLE %s FINAL: %v", table, err)
		}
	}
	t.Run("after OPTIMIZE FINAL", func(t *testing.T) { c.all(t, ds) })
}

// checker compares what Herald reads from ClickHouse with the model.
type checker struct {
	ctx       context.Context
	store     *clickhouse.Store
	ws        string
	campaigns []uuid.UUID
	start     time.Time
}

// all runs every comparison over the histories hs.
func (c checker) all(t *testing.T, hs []model.Delivery) {
	want := make(map[uuid.UUID]model.Result, len(hs))
	for _, d := range hs {
		want[d.ID] = model.Status(d)
	}
	t.Run("delivery_status view", func(t *testing.T) { c.view(t, hs, want) })
	t.Run("Store.Status", func(t *testing.T) { c.statuses(t, hs, want) })
	t.Run("delivery logs", func(t *testing.T) { c.logs(t, hs, want) })
	t.Run("overview", func(t *testing.T) { c.overviews(t, hs) })
}

// reportBad counts a disagreement and shows the first few.
func reportBad(t *testing.T, bad *int, what string, id uuid.UUID, diff string) {
	t.Helper()
	*bad++
	if *bad <= 5 {
		t.Errorf("%s %s (-model +Herald):\n%s", what, id, diff)
	}
}

func (c checker) view(t *testing.T, hs []model.Delivery, want map[uuid.UUID]model.Result) {
	type row struct {
		Status, SendState, FailureReason string
		Devices, Attempted               uint32
		Converted                        bool
	}
	got := map[uuid.UUID]row{}
	q, err := c.store.Conn().Query(c.ctx, `SELECT delivery_id, toString(status), toString(send_state), failure_reason, n_dev, n_attempted, converted
FROM delivery_status WHERE workspace_id = ?`, c.ws)
	if err != nil {
		t.Fatal(err)
	}
	for q.Next() {
		var id uuid.UUID
		var r row
		if err := q.Scan(&id, &r.Status, &r.SendState, &r.FailureReason, &r.Devices, &r.Attempted, &r.Converted); err != nil {
			t.Fatal(err)
		}
		got[id] = r
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	q.Close()
	bad := 0
	for _, d := range hs {
		w := want[d.ID]
		g, ok := got[d.ID]
		if !ok {
			if len(d.Events) == 0 {
				continue // not in the view until it has an event: ATTEMPTED
			}
			reportBad(t, &bad, "missing from the view:", d.ID, "")
			continue
		}
		wr := row{string(w.Status), string(w.SendState), w.FailureReason, uint32(w.DevicesTargeted), uint32(w.DevicesAttempted), w.Converted}
		if diff := cmp.Diff(wr, g); diff != "" {
			reportBad(t, &bad, "delivery_status", d.ID, diff+eventsOf(d))
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d deliveries disagree", bad, len(hs))
	}
}

// eventsOf lists a delivery's rows, for a failure message.
func eventsOf(d model.Delivery) string {
	s := ""
	for _, e := range d.Events {
		s += fmt.Sprintf("  round %d device %d %s attempt %d %q at %s\n", e.Round, e.DeviceIndex, e.Kind, e.Attempt, e.Reason, e.At.Format(time.RFC3339Nano))
	}
	return s
}

// statuses checks Store.Status for every delivery (four at a time) and,
// for every retried delivery and every tenth one, Store.History: round k's
// entry against the model of the delivery's round-k rows (and its
// conversions, which belong to every round).
func (c checker) statuses(t *testing.T, hs []model.Delivery, want map[uuid.UUID]model.Result) {
	type dev struct {
		Index                         uint16
		Token, Platform, Status       string
		Attempts                      int
		SentAt, DeliveredAt, OpenedAt time.Time
	}
	type sum struct {
		Status, Reason                             string
		Targeted, Attempted                        int
		Round                                      uint16
		SentAt, DeliveredAt, OpenedAt, ConvertedAt time.Time
		Devices                                    []dev
	}
	of := func(st clickhouse.DeliveryStatus) sum {
		s := sum{st.Status, st.FailureReason, st.DevicesTargeted, st.DevicesAttempted, st.Round, st.SentAt, st.DeliveredAt, st.OpenedAt, st.ConvertedAt, nil}
		for _, x := range st.Devices {
			s.Devices = append(s.Devices, dev{x.Index, x.Token, x.Platform, x.Status, x.Attempts, x.SentAt, x.DeliveredAt, x.OpenedAt})
		}
		return s
	}
	ofModel := func(w model.Result) sum {
		s := sum{string(w.Status), w.FailureReason, w.DevicesTargeted, w.DevicesAttempted, w.Round, w.SentAt, w.DeliveredAt, w.OpenedAt, w.ConvertedAt, nil}
		for _, x := range w.Devices {
			s.Devices = append(s.Devices, dev{x.Index, x.Token, x.Platform, string(x.Status), x.Attempts, x.SentAt, x.DeliveredAt, x.OpenedAt})
		}
		return s
	}
	// roundOnly keeps a delivery's rows of round k and its conversions.
	roundOnly := func(d model.Delivery, k uint16) model.Delivery {
		out := d
		out.Events = nil
		for _, e := range d.Events {
			if e.Round == k || e.Kind == clickhouse.KindConverted {
				out.Events = append(out.Events, e)
			}
		}
		return out
	}
	// roundsOf lists the rounds with a row other than a conversion, in
	// order; [0] when there is none.
	roundsOf := func(d model.Delivery) []uint16 {
		seen := map[uint16]bool{}
		var out []uint16
		for _, e := range d.Events {
			if e.Kind != clickhouse.KindConverted && !seen[e.Round] {
				seen[e.Round] = true
				out = append(out, e.Round)
			}
		}
		slices.Sort(out)
		if len(out) == 0 {
			out = []uint16{0}
		}
		return out
	}
	var mu sync.Mutex
	bad, badHistory, histories := 0, 0, 0
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				d := hs[i]
				st, err := c.store.Status(c.ctx, d.Delivery)
				if err != nil {
					t.Error(err)
					continue
				}
				diff := cmp.Diff(ofModel(want[d.ID]), of(st), cmpopts.EquateEmpty())
				var hdiffs []string
				checked := i%10 == 0 || want[d.ID].Round > 0
				if checked {
					rounds, err := c.store.History(c.ctx, d.Delivery)
					if err != nil {
						t.Error(err)
						continue
					}
					wantRounds := roundsOf(d)
					if len(rounds) != len(wantRounds) {
						hdiffs = append(hdiffs, fmt.Sprintf("%d rounds, want %d (%v)\n", len(rounds), len(wantRounds), wantRounds))
					}
					for k, h := range rounds {
						if k >= len(wantRounds) {
							break
						}
						if hd := cmp.Diff(ofModel(model.Status(roundOnly(d, wantRounds[k]))), of(h), cmpopts.EquateEmpty()); hd != "" {
							hdiffs = append(hdiffs, fmt.Sprintf("round %d:\n%s", wantRounds[k], hd))
						}
					}
				}
				mu.Lock()
				if diff != "" {
					reportBad(t, &bad, "Store.Status", d.ID, diff+eventsOf(d))
				}
				if checked {
					histories++
				}
				if len(hdiffs) > 0 {
					reportBad(t, &badHistory, "Store.History", d.ID, strings.Join(hdiffs, "")+eventsOf(d))
				}
				mu.Unlock()
			}
		})
	}
	for i := range hs {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("Store.Status of %d deliveries, Store.History of %d", len(hs), histories)
	if bad+badHistory > 0 {
		t.Errorf("%d of %d deliveries disagree with the model, %d of %d histories", bad, len(hs), badHistory, histories)
	}
}

// logs walks every campaign's delivery logs in pages of 500 and checks each
// row's status, failure reason, device counts and conversion time.
func (c checker) logs(t *testing.T, hs []model.Delivery, want map[uuid.UUID]model.Result) {
	type row struct {
		Status, Reason      string
		Targeted, Attempted int
		ConvertedAt         time.Time
	}
	got := map[uuid.UUID]row{}
	for _, camp := range c.campaigns {
		var cur *clickhouse.LogCursor
		for {
			page, next, err := c.store.DeliveryLogs(c.ctx, c.ws, clickhouse.LogFilter{CampaignID: camp}, 500, cur)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				got[r.ID] = row{r.Status, r.FailureReason, r.DevicesTargeted, r.DevicesAttempted, r.ConvertedAt}
			}
			if next == nil {
				break
			}
			cur = next
		}
	}
	bad := 0
	for _, d := range hs {
		w := want[d.ID]
		wr := row{string(w.Status), w.FailureReason, w.DevicesTargeted, w.DevicesAttempted, w.ConvertedAt}
		g, ok := got[d.ID]
		if !ok {
			reportBad(t, &bad, "missing from the delivery logs:", d.ID, "")
			continue
		}
		if diff := cmp.Diff(wr, g); diff != "" {
			reportBad(t, &bad, "delivery log row", d.ID, diff)
		}
	}
	if len(got) != len(hs) || bad > 0 {
		t.Errorf("delivery logs: %d rows for %d deliveries, %d disagree", len(got), len(hs), bad)
	}
}

// overviews compares every campaign's overview over two ranges (all, and an
// odd one that cuts hours) and both granularities, FailuresByReason, and
// the campaign_funnel view, with the model.
func (c checker) overviews(t *testing.T, hs []model.Delivery) {
	norm := cmp.Options{
		cmpopts.EquateApprox(0, 1e-9),
		cmpopts.EquateEmpty(),
		cmp.Transformer("utc", func(t time.Time) time.Time { return t.UTC() }),
	}
	all := [2]time.Time{c.start.Add(-time.Hour), c.start.Add(10 * 24 * time.Hour)}
	ranges := [][2]time.Time{all, {c.start.Add(2*24*time.Hour + 17*time.Minute + 3*time.Millisecond), c.start.Add(5*24*time.Hour + 3*time.Hour + 11*time.Second)}}
	for _, camp := range c.campaigns {
		for _, r := range ranges {
			for _, g := range []clickhouse.Granularity{clickhouse.Day, clickhouse.Hour} {
				got, err := c.store.Overview(c.ctx, c.ws, camp, r[0], r[1], g)
				if err != nil {
					t.Fatal(err)
				}
				w := model.ComputeOverview(hs, camp, r[0], r[1], g)
				if diff := cmp.Diff(w, got, norm); diff != "" {
					t.Errorf("campaign %s, %s..%s by %s (-model +SQL):\n%s", camp, r[0].Format(time.RFC3339Nano), r[1].Format(time.RFC3339Nano), g, diff)
				}
			}
		}
		w := model.ComputeOverview(hs, camp, all[0], all[1], clickhouse.Day)
		var sent, bounced, suppressed, failed, delivered, opened, converted uint64
		if err := c.store.Conn().QueryRow(c.ctx, `SELECT sent, bounced, suppressed, failed, delivered, opened, converted FROM campaign_funnel WHERE workspace_id = ? AND campaign_id = ?`, c.ws, camp).
			Scan(&sent, &bounced, &suppressed, &failed, &delivered, &opened, &converted); err != nil {
			t.Fatal(err)
		}
		gotF := [7]uint64{sent, bounced, suppressed, failed, delivered, opened, converted}
		wantF := [7]uint64{w.Sent, w.Bounced, w.Suppressed, w.Failed, w.Delivered, w.Opened, w.Converted}
		if gotF != wantF {
			t.Errorf("campaign_funnel %s = %v, model %v (sent bounced suppressed failed delivered opened converted)", camp, gotF, wantF)
		}
	}
}

package clickhouse_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
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
// histories (1–5 devices, every outcome, retries, duplicate and
// out-of-order reports, conversions, suppressed devices) to ClickHouse and
// checks that the API's queries and the analysts' views agree with the pure
// reference model (domain/model) on every delivery's status and every
// overview figure. HERALD_PROPERTY_SEED replays a failure;
// HERALD_PROPERTY_N sets the number of histories (default 2000).
func TestPropertyStatusesAndOverview(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HERALD_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	n := 2000
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

	// Write the histories as Herald would have.
	rows := make([]clickhouse.Delivery, len(ds))
	for i, d := range ds {
		rows[i] = d.Delivery
	}
	if err := store.CreateDeliveries(ctx, rows); err != nil {
		t.Fatal(err)
	}
	// The events go in twice: first all but the app's reports (delivered,
	// opened, converted) of 5% of the histories (early), then those (late),
	// as reports arrive after the sends, so the overview's stored hours
	// (see Store.Overview) are kept for the hours without late events and
	// recomputed for the others.

	var early, late []clickhouse.Event
	dsEarly := make([]model.Delivery, len(ds))
	for i, d := range ds {
		for r := range d.Devices {
			if err := store.PutDeliveryDevices(ctx, d.Delivery, uint16(r), d.RoundDevices(uint16(r))); err != nil {
				t.Fatal(err)
			}
		}
		lateReports := rng.Float64() < 0.05
		dsEarly[i] = d
		dsEarly[i].Events = nil
		for _, e := range d.Events {
			isLate := lateReports && (e.Kind == clickhouse.KindDelivered || e.Kind == clickhouse.KindOpened || e.Kind == clickhouse.KindConverted)
			if !isLate {
				dsEarly[i].Events = append(dsEarly[i].Events, e)
			}
			if (e.Kind == clickhouse.KindDelivered || e.Kind == clickhouse.KindOpened) && e.Token == "" {
				for _, dd := range d.RoundDevices(e.Round) {
					if dd.Index == e.DeviceIndex {
						e.Token = dd.Token
					}
				}
			}
			if !isLate {
				early = append(early, e)
			} else {
				late = append(late, e)
			}
		}
	}
	if err := clickhouse.InsertEvents(ctx, conn, early); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d deliveries, %d early event rows", len(ds), len(early))

	norm := cmp.Options{
		cmpopts.EquateApprox(0, 1e-9),
		cmpopts.EquateEmpty(),
		cmp.Transformer("utc", func(t time.Time) time.Time { return t.UTC() }),
	}
	ranges := [][2]time.Time{
		{start.Add(-time.Hour), start.Add(10 * 24 * time.Hour)},
		{start.Add(2*24*time.Hour + 17*time.Minute), start.Add(5*24*time.Hour + 3*time.Hour + 11*time.Second)},
	}
	// checkOverviews compares every campaign's overview over each range and
	// granularity with the model of the histories hs.
	checkOverviews := func(t *testing.T, hs []model.Delivery) {
		t.Helper()
		for _, c := range campaigns {
			for _, r := range ranges {
				for _, g := range []clickhouse.Granularity{clickhouse.Day, clickhouse.Hour} {
					got, err := store.Overview(ctx, ws, c, r[0], r[1], g)
					if err != nil {
						t.Fatal(err)
					}
					w := model.ComputeOverview(hs, c, r[0], r[1], g)
					if diff := cmp.Diff(w, got, norm); diff != "" {
						t.Errorf("campaign %s, %s..%s by %s (-model +SQL):\n%s", c, r[0].Format(time.RFC3339), r[1].Format(time.RFC3339), g, diff)
					}
				}
			}
		}
	}
	storedHours := func() (n uint64) {
		if err := conn.QueryRow(ctx, "SELECT uniqExact(campaign_id, hour) FROM overview_hours WHERE workspace_id = ?", ws).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("overview before the late events", func(t *testing.T) {
		time.Sleep(2100 * time.Millisecond) // every hour settled (1 s margin, whole seconds)
		checkOverviews(t, dsEarly)          // computes and stores them
		n := storedHours()
		if n == 0 {
			t.Fatal("no hour was stored")
		}
		checkOverviews(t, dsEarly) // from the stored hours
		if m := storedHours(); m != n {
			t.Errorf("stored hours went from %d to %d with no new event", n, m)
		}
		t.Logf("%d campaign hours stored", n)
	})

	if err := clickhouse.InsertEvents(ctx, conn, late); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d late event rows", len(late))

	want := map[uuid.UUID]model.Result{}
	for _, d := range ds {
		want[d.ID] = model.Status(d)
	}

	t.Run("delivery_status view", func(t *testing.T) {
		type row struct {
			Status, SendState, FailureReason string
			Devices, Attempted               uint64
		}
		got := map[uuid.UUID]row{}
		q, err := conn.Query(ctx, `SELECT delivery_id, status, send_state, failure_reason, n_dev, n_attempted FROM delivery_status WHERE workspace_id = ?`, ws)
		if err != nil {
			t.Fatal(err)
		}
		for q.Next() {
			var id uuid.UUID
			var r row
			if err := q.Scan(&id, &r.Status, &r.SendState, &r.FailureReason, &r.Devices, &r.Attempted); err != nil {
				t.Fatal(err)
			}
			got[id] = r
		}
		q.Close()
		bad := 0
		for _, d := range ds {
			w := want[d.ID]
			g, ok := got[d.ID]
			if !ok {
				if len(d.Events) == 0 {
					continue // not in the view until it has an event: ATTEMPTED
				}
				t.Errorf("delivery %s missing from the view", d.ID)
				bad++
				continue
			}
			wr := row{string(w.Status), string(w.SendState), w.FailureReason, uint64(w.DevicesTargeted), uint64(w.DevicesAttempted)}
			if diff := cmp.Diff(wr, g); diff != "" {
				bad++
				if bad <= 5 {
					t.Errorf("delivery %s (-model +view):\n%s", d.ID, diff)
				}
				if bad == 1 {
					for _, e := range d.Events {
						t.Logf("  round %d device %d %s attempt %d %q", e.Round, e.DeviceIndex, e.Kind, e.Attempt, e.Reason)
					}
				}
			}
		}
		if bad > 0 {
			t.Errorf("%d of %d deliveries disagree", bad, len(ds))
		}
	})

	t.Run("delivery status API", func(t *testing.T) {
		// Every delivery with a retry or a pre-send failure, and a sample of the rest.
		bad, checked := 0, 0
		for i, d := range ds {
			if len(d.Devices) < 2 && i%7 != 0 {
				continue
			}
			checked++
			st, err := store.Status(ctx, d.Delivery)
			if err != nil {
				t.Fatal(err)
			}
			w := want[d.ID]
			type dev struct {
				Index    uint16
				Status   string
				Attempts int
			}
			var gd, wd []dev
			for _, x := range st.Devices {
				gd = append(gd, dev{x.Index, x.Status, x.Attempts})
			}
			for _, x := range w.Devices {
				wd = append(wd, dev{x.Index, string(x.Status), x.Attempts})
			}
			type sum struct {
				Status, Reason      string
				Targeted, Attempted int
				Round               uint16
				Devices             []dev
			}
			g := sum{st.Status, st.FailureReason, st.DevicesTargeted, st.DevicesAttempted, st.Round, gd}
			ww := sum{string(w.Status), w.FailureReason, w.DevicesTargeted, w.DevicesAttempted, w.Round, wd}
			if diff := cmp.Diff(ww, g, cmpopts.EquateEmpty()); diff != "" {
				bad++
				if bad <= 5 {
					t.Errorf("delivery %s (-model +API):\n%s", d.ID, diff)
				}
			}
		}
		t.Logf("checked %d deliveries through Store.Status", checked)
		if bad > 0 {
			t.Errorf("%d of %d deliveries disagree", bad, checked)
		}
	})

	t.Run("overview", func(t *testing.T) {
		// Right after the late events (their hours recomputed, the others
		// stored), and again once those have settled and been stored.
		checkOverviews(t, ds)
		time.Sleep(2100 * time.Millisecond)
		checkOverviews(t, ds)
		checkOverviews(t, ds)
		for _, c := range campaigns {
			// FailuresByReason alone agrees with the overview's.
			all := model.ComputeOverview(ds, c, start.Add(-time.Hour), start.Add(10*24*time.Hour), clickhouse.Day)
			fr, err := store.FailuresByReason(ctx, ws, c, start.Add(-time.Hour), start.Add(10*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(all.FailuresByReason, fr, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("FailuresByReason %s (-model +SQL):\n%s", c, diff)
			}
			// The campaign_funnel view gives the all-time figures.
			w := model.ComputeOverview(ds, c, start.Add(-time.Hour), start.Add(10*24*time.Hour), clickhouse.Day)
			var sent, bounced, suppressed, failed, delivered, opened, converted uint64
			if err := conn.QueryRow(ctx, `SELECT sent, bounced, suppressed, failed, delivered, opened, converted FROM campaign_funnel WHERE workspace_id = ? AND campaign_id = ?`, ws, c).
				Scan(&sent, &bounced, &suppressed, &failed, &delivered, &opened, &converted); err != nil {
				t.Fatal(err)
			}
			gotF := [7]uint64{sent, bounced, suppressed, failed, delivered, opened, converted}
			wantF := [7]uint64{w.Sent, w.Bounced, w.Suppressed, w.Failed, w.Delivered, w.Opened, w.Converted}
			if gotF != wantF {
				t.Errorf("campaign_funnel %s = %v, model %v (sent bounced suppressed failed delivered opened converted)", c, gotF, wantF)
			}
		}
	})
}

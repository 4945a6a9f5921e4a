package server_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers/sim"
)

// A hand-built campaign through the real pipeline; every overview figure
// and rate is checked on its own.
func TestOverviewFigures(t *testing.T) {
	e := newEnv(t, envOptions{retryBase: 2 * time.Millisecond})
	c := e.withCredentials(e.workspace("a"))
	campID := get(c.mustDo(`mutation { createCampaign(input: {name: "Figures", conversionGoal: {event: "purchase"}}) { id } }`, nil), "createCampaign", "id").(string)
	msg := get(c.mustDo(`mutation($c: ID!) { createPushMessage(input: {campaignId: $c, name: "m", title: "t", body: "b"}) { id } }`, vars{"c": campID}), "createPushMessage", "id").(string)
	other := c.message("Other", "campaign") // to suppress a device beforehand

	tok := map[string]string{
		"p1": sim.Token("a1", 1), "p2": sim.Token("a2", 1), "p3": sim.Token("a3", 1), "p9": sim.Token("a9", 1),
		"p4": sim.Token("badd", 4), "p5": sim.Token("badd", 5), "p8": sim.Token("5030", 8),
	}
	platform := map[string]string{"p2": "ANDROID", "p8": "ANDROID"}
	for p, tk := range tok {
		c.person(p, nil, false)
		pl := platform[p]
		if pl == "" {
			pl = "IOS"
		}
		c.device(p, pl, tk, time.Time{})
	}
	c.person("p6", nil, true) // unsubscribed
	// Two bounces in a row suppress p5's device before the campaign.
	for i := 0; i < 2; i++ {
		c.waitFinal(c.send(other, "p5", "ALL_DEVICES", ""))
		e.idle()
	}
	ids := map[string]string{}
	for _, p := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"} {
		ids[p] = c.send(msg, p, "ALL_DEVICES", "")
	}
	for _, id := range ids {
		c.waitFinal(id)
	}
	e.idle()
	report := func(p, event string) {
		t.Helper()
		if st, b := e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":%q,"device_id":%q}`, ids[p], event, tok[p])); st != 200 {
			t.Fatalf("report %s %s: %d %s", p, event, st, b)
		}
	}
	report("p1", "delivered")
	report("p1", "opened")
	report("p2", "delivered")
	c.mustDo(`mutation { trackEvent(input: {personId: "p9", name: "purchase"}) }`, nil)
	e.flush()

	q := `query($id: ID!, $g: Granularity) { campaign(id: $id) { overview(granularity: $g) {
	  created attempted sends sent bounced suppressed failed recipients delivered opened converted
	  deliveryRate openRate conversionRate bounceRate sdkRecipients sdkCoverage
	  failuresByReason { reason count }
	  devices { targeted sent bounced failed suppressed pending delivered opened }
	  series { start created sent bounced suppressed failed delivered opened converted } } } }`
	o := get(c.mustDo(q, vars{"id": campID, "g": "DAY"}), "campaign", "overview").(map[string]any)
	num := func(path ...string) float64 { return get(o, path...).(float64) }
	figures := []struct {
		name string
		got  float64
		want float64
	}{
		{"created", num("created"), 9},
		{"attempted", num("attempted"), 0},
		{"sent", num("sent"), 4},
		{"bounced", num("bounced"), 1},
		{"suppressed", num("suppressed"), 1},
		{"failed", num("failed"), 3},
		{"sends", num("sends"), 6},
		{"recipients", num("recipients"), 4},
		{"delivered", num("delivered"), 2},
		{"opened", num("opened"), 1},
		{"converted", num("converted"), 1},
		{"deliveryRate", num("deliveryRate"), 2.0 / 4},
		{"openRate", num("openRate"), 1.0 / 2},
		{"conversionRate", num("conversionRate"), 1.0 / 4},
		{"bounceRate", num("bounceRate"), 1.0 / 6},
		{"sdkRecipients", num("sdkRecipients"), 2},
		{"sdkCoverage", num("sdkCoverage"), 2.0 / 4},
		{"devices.targeted", num("devices", "targeted"), 7},
		{"devices.sent", num("devices", "sent"), 4},
		{"devices.bounced", num("devices", "bounced"), 1},
		{"devices.failed", num("devices", "failed"), 1},
		{"devices.suppressed", num("devices", "suppressed"), 1},
		{"devices.pending", num("devices", "pending"), 0},
		{"devices.delivered", num("devices", "delivered"), 2},
		{"devices.opened", num("devices", "opened"), 1},
	}
	for _, f := range figures {
		t.Run(f.name, func(t *testing.T) {
			if math.Abs(f.got-f.want) > 1e-9 {
				t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
			}
		})
	}
	t.Run("failuresByReason", func(t *testing.T) {
		got := map[string]float64{}
		for _, f := range o["failuresByReason"].([]any) {
			m := f.(map[string]any)
			got[m["reason"].(string)] = m["count"].(float64)
		}
		want := map[string]float64{"Customer is unsubscribed": 1, "Customer doesn't exist": 1, "retries exhausted after 11 attempts: UNAVAILABLE": 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("failuresByReason = %v, want %v", got, want)
		}
	})
	for _, g := range []string{"DAY", "HOUR"} {
		t.Run("series by "+g, func(t *testing.T) {
			ov := get(c.mustDo(q, vars{"id": campID, "g": g}), "campaign", "overview").(map[string]any)
			series := ov["series"].([]any)
			var created, sent, failed float64
			for _, b := range series {
				m := b.(map[string]any)
				created += m["created"].(float64)
				sent += m["sent"].(float64)
				failed += m["failed"].(float64)
				start, err := time.Parse(time.RFC3339, m["start"].(string))
				if err != nil {
					t.Fatal(err)
				}
				if (g == "DAY" && !start.Equal(start.Truncate(24*time.Hour))) || !start.Equal(start.Truncate(time.Hour)) {
					t.Errorf("bucket start %s is not at the start of a %s", start, g)
				}
			}
			if created != 9 || sent != 4 || failed != 3 {
				t.Errorf("series sums created/sent/failed = %v/%v/%v, want 9/4/3", created, sent, failed)
			}
		})
	}
	t.Run("empty range", func(t *testing.T) {
		ov := get(c.mustDo(`query($id: ID!, $f: Time, $t: Time) { campaign(id: $id) { overview(from: $f, to: $t) { created sent deliveryRate } } }`,
			vars{"id": campID, "f": "2020-01-01T00:00:00Z", "t": "2020-01-02T00:00:00Z"}), "campaign", "overview").(map[string]any)
		if ov["created"].(float64) != 0 || ov["deliveryRate"].(float64) != 0 {
			t.Errorf("empty range overview = %v", ov)
		}
		r := c.do(`query($id: ID!) { campaign(id: $id) { overview(from: "2021-01-02T00:00:00Z", to: "2021-01-01T00:00:00Z") { created } } }`, vars{"id": campID})
		if r.code() != "BAD_USER_INPUT" {
			t.Errorf("from after to: %q", r.code())
		}
	})
	t.Run("campaigns list", func(t *testing.T) {
		d := c.mustDo(`{ campaigns(first: 10) { edges { node { id name overview { sent } } } pageInfo { hasNextPage } } }`, nil)
		edges := get(d, "campaigns", "edges").([]any)
		if len(edges) != 2 { // Figures, and the campaign message() made for "Other"
			t.Fatalf("campaigns = %d, want 2", len(edges))
		}
		found := false
		for _, ed := range edges {
			if get(ed.(map[string]any), "node", "id") == campID {
				found = get(ed.(map[string]any), "node", "overview", "sent").(float64) == 4
			}
		}
		if !found {
			t.Errorf("campaign %s with sent=4 not in %v", campID, edges)
		}
	})
}

type logPage struct {
	ids  []string
	next string
	more bool
}

func (c *client) logs(filter vars, first int, after string) logPage {
	c.t.Helper()
	v := vars{"f": filter, "n": first}
	if after != "" {
		v["a"] = after
	}
	d := c.mustDo(`query($f: DeliveryFilter, $n: Int, $a: String) { deliveries(filter: $f, first: $n, after: $a) {
	  edges { cursor node { id status personId devicesTargeted createdAt message { name } } } pageInfo { hasNextPage endCursor } } }`, v)
	var p logPage
	for _, e := range get(d, "deliveries", "edges").([]any) {
		p.ids = append(p.ids, get(e.(map[string]any), "node", "id").(string))
	}
	p.more = get(d, "deliveries", "pageInfo", "hasNextPage").(bool)
	if s, ok := get(d, "deliveries", "pageInfo", "endCursor").(string); ok {
		p.next = s
	}
	return p
}

func (c *client) allLogs(filter vars, first int) []string {
	c.t.Helper()
	var out []string
	after := ""
	for i := 0; i < 100; i++ {
		p := c.logs(filter, first, after)
		out = append(out, p.ids...)
		if !p.more {
			return out
		}
		after = p.next
	}
	c.t.Fatal("more than 100 pages")
	return nil
}

// Delivery logs: newest first, every filter alone and combined, and cursors
// that stay stable while deliveries arrive.
func TestDeliveryLogs(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	msgA := c.message("A", "a")
	msgB := c.message("B", "b")
	campA := get(c.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { id } } }`, vars{"id": msgA}), "pushMessage", "campaign", "id").(string)
	for i := 0; i < 4; i++ {
		p := fmt.Sprintf("p%d", i)
		c.person(p, nil, false)
		c.device(p, "IOS", sim.Token("0c", i), time.Time{})
	}
	c.person("unsub", nil, true)
	type sent struct{ id, msg, person string }
	var all []sent
	for i := 0; i < 24; i++ {
		msg, p := msgA, fmt.Sprintf("p%d", i%4)
		if i%3 == 0 {
			msg = msgB
		}
		if i%5 == 0 {
			p = "unsub"
		}
		all = append(all, sent{c.send(msg, p, "ALL_DEVICES", ""), msg, p})
	}
	for _, s := range all {
		c.waitFinal(s.id)
	}
	e.flush()
	newestFirst := func(f func(sent) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if f(all[i]) {
				out = append(out, all[i].id)
			}
		}
		return out
	}
	cases := []struct {
		name   string
		filter vars
		want   []string
	}{
		{"no filter", nil, newestFirst(func(sent) bool { return true })},
		{"campaign", vars{"campaignId": campA}, newestFirst(func(s sent) bool { return s.msg == msgA })},
		{"message", vars{"messageId": msgB}, newestFirst(func(s sent) bool { return s.msg == msgB })},
		{"person", vars{"personId": "p1"}, newestFirst(func(s sent) bool { return s.person == "p1" })},
		{"status FAILED", vars{"status": []string{"FAILED"}}, newestFirst(func(s sent) bool { return s.person == "unsub" })},
		{"statuses SENT or FAILED", vars{"status": []string{"SENT", "FAILED"}}, newestFirst(func(sent) bool { return true })},
		{"status OPENED", vars{"status": []string{"OPENED"}}, nil},
		{"combined", vars{"messageId": msgA, "personId": "p2", "status": []string{"SENT"}},
			newestFirst(func(s sent) bool { return s.msg == msgA && s.person == "p2" })},
		{"time range", vars{"from": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "to": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
			newestFirst(func(sent) bool { return true })},
		{"time range before", vars{"to": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, first := range []int{1, 5, 100} {
				got := c.allLogs(tc.filter, first)
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("first=%d: got %d ids %v\nwant %d ids %v", first, len(got), got, len(tc.want), tc.want)
				}
			}
		})
	}

	t.Run("stable cursors while deliveries arrive", func(t *testing.T) {
		want := newestFirst(func(sent) bool { return true })
		var got []string
		after := ""
		for page := 0; ; page++ {
			p := c.logs(nil, 5, after)
			got = append(got, p.ids...)
			// New deliveries arrive between pages.
			c.send(msgA, "p0", "ALL_DEVICES", "")
			if !p.more {
				break
			}
			after = p.next
		}
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Errorf("delivery %s on two pages", id)
			}
			seen[id] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("paging while inserting: got %v, want %v", got, want)
		}
	})

	t.Run("row fields", func(t *testing.T) {
		d := c.mustDo(`{ deliveries(first: 1, filter: {status: [FAILED]}) { edges { node { id status failureReason personId devicesTargeted devicesAttempted converted message { name } campaign { id } } } } }`, nil)
		n := get(d, "deliveries", "edges").([]any)[0].(map[string]any)["node"].(map[string]any)
		if n["failureReason"] != "Customer is unsubscribed" || n["personId"] != "unsub" || get(n, "message", "name") == nil || n["converted"] != false {
			t.Errorf("row = %v", n)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, q := range []string{
			`{ deliveries(first: 0) { edges { cursor } } }`,
			`{ deliveries(first: 101) { edges { cursor } } }`,
			`{ deliveries(after: "garbage") { edges { cursor } } }`,
			`{ deliveries(filter: {campaignId: "x"}) { edges { cursor } } }`,
		} {
			if r := c.do(q, nil); r.code() != "BAD_USER_INPUT" {
				t.Errorf("%s: code %q", q, r.code())
			}
		}
	})
}

// retryDelivery: only FAILED deliveries; a new round that re-renders,
// re-resolves and re-sends; the history keeps every round.
func TestRetryDelivery(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	msg := c.message("Hi {{ customer.first_name }}", "b")
	tok := sim.Token("e7", 1)
	c.person("p1", vars{"first_name": "Ann"}, true)
	c.device("p1", "IOS", tok, time.Time{})
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	if d := c.waitFinal(id); d.Status != "FAILED" {
		t.Fatalf("status %s, want FAILED", d.Status)
	}
	c.person("p1", nil, false) // resubscribes
	r := c.mustDo(`mutation($id: ID!) { retryDelivery(id: $id) { id status round } }`, vars{"id": id})
	if get(r, "retryDelivery", "status") != "ATTEMPTED" || get(r, "retryDelivery", "round").(float64) != 1 {
		t.Errorf("retryDelivery = %v", r)
	}
	d := c.waitFinal(id)
	e.idle()
	if d.Status != "SENT" {
		t.Fatalf("after the retry: %s, want SENT (%s)", d.Status, fmtDevices(d))
	}
	if n := e.apns.Count(tok); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
	h := c.mustDo(`query($id: ID!) { delivery(id: $id) { round history { round status failureReason devicesTargeted devices { status } } } }`, vars{"id": id})
	hist := get(h, "delivery", "history").([]any)
	if len(hist) != 2 || get(hist[0].(map[string]any), "status") != "FAILED" || get(hist[0].(map[string]any), "failureReason") != "Customer is unsubscribed" ||
		get(hist[1].(map[string]any), "status") != "SENT" || get(h, "delivery", "round").(float64) != 1 {
		t.Errorf("history = %v", h)
	}
	// Not FAILED any more: retry refused, with the reason.
	if r := c.do(`mutation($id: ID!) { retryDelivery(id: $id) { id } }`, vars{"id": id}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("retrying a SENT delivery: %q", r.code())
	} else if msg := r.Errors[0].Message; msg != "id: delivery is SENT: only FAILED deliveries can be retried" {
		t.Errorf("message %q", msg)
	}
	if r := e.workspace("b").do(`mutation($id: ID!) { retryDelivery(id: $id) { id } }`, vars{"id": id}); r.code() != "NOT_FOUND" {
		t.Errorf("another workspace's retry: %q", r.code())
	}
}

// A broadcast's fan-out batches do not all start at once: a worker has at
// most batchesAhead (its 20 delivery slots' worth of batches, and two
// more) in progress, so a big broadcast is not held in memory whole.
// Each batch counts its deliveries as queued before it sends them and
// they count as done once sent (slow tokens: 250 ms a push), so queued -
// done is at most 4 batches of 10 = 40 deliveries. Without the bound
// every batch starts as soon as the one before it has read its page
// (queued 120, done 0).
func TestBroadcastBoundsBatchesInProgress(t *testing.T) {
	e := newEnv(t, envOptions{broadcastBatch: 10})
	c := e.withCredentials(e.workspace("a"))
	msg := c.message("Hello", "news")
	const n = 120
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("q%02d", i)
		c.person(p, nil, false)
		c.device(p, "IOS", sim.Token("5100", i), time.Time{})
	}
	b := c.mustDo(`mutation($m: ID!) { broadcast(input: {messageId: $m}) { id } }`, vars{"m": msg})
	id := get(b, "broadcast", "id").(string)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	most, samples := 0, 0
	for {
		queued, done, err := jobs.BroadcastProgress(ctx, e.app.Redis, id)
		if err != nil {
			t.Fatal(err)
		}
		most, samples = max(most, queued-done), samples+1
		if done == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("broadcast stuck at queued %d done %d of %d", queued, done, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("most deliveries queued and not done: %d (%d samples)", most, samples)
	if most > 40 {
		t.Errorf("%d deliveries were queued and not done at once, want at most 40 (4 batches of 10)", most)
	}
	if most < 10 {
		t.Errorf("at most %d deliveries in progress: the samples missed the broadcast", most)
	}
}

// Broadcast to everyone and to a list, with a worker restart mid-way:
// nobody gets two deliveries, every device one request.
func TestBroadcast(t *testing.T) {
	e := newEnv(t, envOptions{broadcastBatch: 7})
	c := e.withCredentials(e.workspace("a"))
	msg := c.message("Hello {{ customer.first_name | default: \"you\" }}", "news")
	const n = 40
	tokens := map[string]string{}
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("b%02d", i)
		c.person(p, nil, false)
		tokens[p] = sim.Token("5100", i) // slow (250 ms): the broadcast is still running at the restart
		c.device(p, "IOS", tokens[p], time.Time{})
	}
	b := c.mustDo(`mutation($m: ID!) { broadcast(input: {messageId: $m}) { id total } }`, vars{"m": msg})
	id := get(b, "broadcast", "id").(string)
	if total := get(b, "broadcast", "total").(float64); total != n {
		t.Fatalf("total = %v, want %d", total, n)
	}
	progress := func() (float64, float64) {
		p := c.mustDo(`query($id: ID!) { broadcast(id: $id) { total queued done } }`, vars{"id": id})
		return get(p, "broadcast", "queued").(float64), get(p, "broadcast", "done").(float64)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, d := progress()
		if q >= 7 {
			if d >= n {
				t.Log("broadcast finished before the restart")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("broadcast did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.restartWorker()
	for {
		q, d := progress()
		if q == n && d == n {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("broadcast stuck at queued %v done %v of %d", q, d, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.idle()
	e.flush()
	for p, tk := range tokens {
		if got := e.apns.Count(tk); got != 1 {
			t.Errorf("%s: %d requests, want 1", p, got)
		}
		if ids := c.allLogs(vars{"personId": p}, 10); len(ids) != 1 {
			t.Errorf("%s: %d deliveries, want 1", p, len(ids))
		}
	}
	sentLogs := c.allLogs(vars{"status": []string{"SENT"}}, 100)
	if len(sentLogs) != n {
		t.Errorf("SENT deliveries = %d, want %d", len(sentLogs), n)
	}

	// A list broadcast: duplicates collapse, unknown people fail as usual.
	b = c.mustDo(`mutation($m: ID!) { broadcast(input: {messageId: $m, personIds: ["b01", "b02", "b01", "ghost"]}) { id total } }`, vars{"m": msg})
	id2 := get(b, "broadcast", "id").(string)
	if total := get(b, "broadcast", "total").(float64); total != 3 {
		t.Errorf("list total = %v, want 3", total)
	}
	for {
		p := c.mustDo(`query($id: ID!) { broadcast(id: $id) { queued done } }`, vars{"id": id2})
		if get(p, "broadcast", "done").(float64) == 3 {
			break
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("list broadcast stuck: %v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.idle()
	e.flush()
	ghost := c.allLogs(vars{"personId": "ghost", "status": []string{"FAILED"}}, 10)
	if len(ghost) != 1 {
		t.Errorf("ghost deliveries = %v, want one FAILED", ghost)
	}
	var counts []int
	for _, p := range []string{"b01", "b02"} {
		counts = append(counts, e.apns.Count(tokens[p]))
	}
	sort.Ints(counts)
	if fmt.Sprint(counts) != "[2 2]" {
		t.Errorf("b01, b02 requests = %v, want 2 each (one per broadcast)", counts)
	}
	if r := c.do(`mutation($m: ID!) { broadcast(input: {messageId: $m, audience: CUSTOM_TOKEN}) { id } }`, vars{"m": msg}); r.code() != "BAD_USER_INPUT" {
		t.Errorf("CUSTOM_TOKEN broadcast: %q", r.code())
	}
}

// pushMessages pages a workspace's messages newest first, of one campaign
// when asked, never another workspace's; a bad campaign id or page size is
// BAD_USER_INPUT.
func TestPushMessagesPaged(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.workspace("msgs")
	other := e.workspace("msgs-other")
	other.message("Not yours", "x")
	var ids []string
	for i := range 3 {
		ids = append(ids, c.message(fmt.Sprintf("Title %d", i), "b")) // each in a campaign of its own
		time.Sleep(2 * time.Millisecond)                              // distinct created_at
	}
	const q = `query($c: ID, $first: Int, $after: String) { pushMessages(campaignId: $c, first: $first, after: $after) {
		edges { cursor node { id title campaign { id } } } pageInfo { hasNextPage endCursor } } }`
	page := func(v vars) ([]string, map[string]any) {
		t.Helper()
		d := get(c.mustDo(q, v), "pushMessages").(map[string]any)
		var got []string
		for _, e := range d["edges"].([]any) {
			got = append(got, get(e.(map[string]any), "node", "id").(string))
		}
		return got, d["pageInfo"].(map[string]any)
	}
	got, info := page(vars{"first": 2})
	if want := []string{ids[2], ids[1]}; fmt.Sprint(got) != fmt.Sprint(want) || info["hasNextPage"] != true {
		t.Fatalf("first page = %v %v, want newest first %v with a next page", got, info, want)
	}
	got, info = page(vars{"first": 2, "after": info["endCursor"]})
	if fmt.Sprint(got) != fmt.Sprint([]string{ids[0]}) || info["hasNextPage"] != false {
		t.Errorf("second page = %v %v, want [%s] and no next page", got, info, ids[0])
	}
	camp := get(c.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { id } } }`, vars{"id": ids[1]}), "pushMessage", "campaign", "id")
	if got, _ = page(vars{"c": camp}); fmt.Sprint(got) != fmt.Sprint([]string{ids[1]}) {
		t.Errorf("campaign %v's messages = %v, want [%s]", camp, got, ids[1])
	}
	for _, v := range []vars{{"c": "not-a-uuid"}, {"first": 0}, {"first": 101}, {"after": "garbage"}} {
		if r := c.do(q, v); r.code() != "BAD_USER_INPUT" {
			t.Errorf("pushMessages(%v): code %q (%+v), want BAD_USER_INPUT", v, r.code(), r.Errors)
		}
	}
}

package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	coderws "github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers/sim"
)

// wsClient speaks graphql-transport-ws (or the legacy graphql-ws) over a
// real websocket.
type wsClient struct {
	t     *testing.T
	conn  *coderws.Conn
	proto string
}

type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func dialWS(t *testing.T, httpURL, proto, key string) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(httpURL, "http") + "/graphql"
	conn, _, err := coderws.Dial(ctx, url, &coderws.DialOptions{Subprotocols: []string{proto}})
	if err != nil {
		return nil, err
	}
	c := &wsClient{t: t, conn: conn, proto: proto}
	payload, _ := json.Marshal(map[string]string{"Authorization": "Bearer " + key})
	if err := c.send(wsMsg{Type: "connection_init", Payload: payload}); err != nil {
		return nil, err
	}
	for {
		m, err := c.read(10 * time.Second)
		if err != nil {
			return nil, err
		}
		switch m.Type {
		case "connection_ack":
			return c, nil
		case "ka", "ping":
			continue
		default:
			return nil, fmt.Errorf("connection refused: %s %s", m.Type, m.Payload)
		}
	}
}

func (c *wsClient) send(m wsMsg) error {
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.conn.Write(ctx, coderws.MessageText, b)
}

func (c *wsClient) read(timeout time.Duration) (wsMsg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		return wsMsg{}, err
	}
	var m wsMsg
	return m, json.Unmarshal(b, &m)
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	typ := "subscribe"
	if c.proto == "graphql-ws" {
		typ = "start"
	}
	if err := c.send(wsMsg{ID: id, Type: typ, Payload: payload}); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next data payload (skipping keep-alives).
func (c *wsClient) next(timeout time.Duration) (map[string]any, error) {
	for {
		m, err := c.read(timeout)
		if err != nil {
			return nil, err
		}
		switch m.Type {
		case "next", "data":
			var p struct {
				Data   map[string]any `json:"data"`
				Errors []gqlError     `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				return nil, err
			}
			if len(p.Errors) > 0 {
				return nil, fmt.Errorf("errors: %+v", p.Errors)
			}
			return p.Data, nil
		case "error":
			return nil, fmt.Errorf("error: %s", m.Payload)
		case "complete":
			return nil, fmt.Errorf("completed")
		}
	}
}

const deliveryUpdatedQuery = `subscription($id: ID!) { deliveryUpdated(id: $id) { id status devices { status } } }`

// statusesUntil collects distinct consecutive statuses until want.
func statusesUntil(t *testing.T, c *wsClient, want string, onStatus func(string)) []string {
	t.Helper()
	var seen []string
	for {
		d, err := c.next(20 * time.Second)
		if err != nil {
			t.Fatalf("subscription after %v: %v", seen, err)
		}
		st := get(d, "deliveryUpdated", "status").(string)
		if len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
			if onStatus != nil {
				onStatus(st)
			}
		}
		if st == want {
			return seen
		}
	}
}

// Subscribe through one server process, send through another, and receive
// ATTEMPTED → SENT → DELIVERED → OPENED in that order: the changes travel
// over Redis pub/sub between the processes.
func TestDeliveryUpdatedAcrossProcesses(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	tok := sim.Token("5101", 1) // slow (1 s): the subscriber sees ATTEMPTED first
	c.person("p1", nil, false)
	c.device("p1", "IOS", tok, time.Time{})
	msg := c.message("Hello", "there")

	other := freeAddr(t)
	e.startServe(other) // a second server process, same ClickHouse and Redis
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			id := c.send(msg, "p1", "ALL_DEVICES", "") // through the in-process server
			ws, err := dialWS(t, "http://"+other, proto, c.key)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.conn.Close(coderws.StatusNormalClosure, "")
			ws.subscribe("1", deliveryUpdatedQuery, map[string]any{"id": id})
			var reportedAt time.Time
			seen := statusesUntil(t, ws, "OPENED", func(st string) {
				if !reportedAt.IsZero() {
					t.Logf("%s arrived %s after its report was acknowledged", st, time.Since(reportedAt).Round(time.Millisecond))
				}
				switch st {
				case "SENT":
					reportedAt = time.Now()
					e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, tok))
				case "DELIVERED":
					reportedAt = time.Now()
					e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"opened","device_id":%q}`, id, tok))
				}
			})
			if want := []string{"ATTEMPTED", "SENT", "DELIVERED", "OPENED"}; fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Errorf("statuses %v, want %v", seen, want)
			}
		})
	}
}

func TestSubscriptionAuthAndLeaks(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	c.person("p1", nil, false)
	c.device("p1", "IOS", sim.Token("ab", 1), time.Time{})
	msg := c.message("Hello", "there")
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	c.waitFinal(id)
	campID := get(c.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { id } } }`, vars{"id": msg}), "pushMessage", "campaign", "id").(string)

	t.Run("bad key refused", func(t *testing.T) {
		for _, key := range []string{"", "hk_wrong"} {
			for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
				if ws, err := dialWS(t, e.http.URL, proto, key); err == nil {
					ws.conn.Close(coderws.StatusNormalClosure, "")
					t.Errorf("%s with key %q: connection accepted", proto, key)
				}
			}
		}
	})
	t.Run("another workspace's delivery", func(t *testing.T) {
		b := e.workspace("b")
		ws, err := dialWS(t, e.http.URL, "graphql-transport-ws", b.key)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.conn.Close(coderws.StatusNormalClosure, "")
		ws.subscribe("1", deliveryUpdatedQuery, map[string]any{"id": id})
		if _, err := ws.next(10 * time.Second); err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
			t.Errorf("got %v, want a NOT_FOUND error", err)
		}
	})
	t.Run("campaign overview", func(t *testing.T) {
		ws, err := dialWS(t, e.http.URL, "graphql-transport-ws", c.key)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.conn.Close(coderws.StatusNormalClosure, "")
		ws.subscribe("1", `subscription($c: ID!) { campaignOverviewUpdated(campaignId: $c) { created sent delivered } }`, map[string]any{"c": campID})
		d, err := ws.next(10 * time.Second)
		if err != nil || get(d, "campaignOverviewUpdated", "sent").(float64) != 1 {
			t.Fatalf("first overview %v, %v", d, err)
		}
		e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, sim.Token("ab", 1)))
		d, err = ws.next(10 * time.Second)
		if err != nil || get(d, "campaignOverviewUpdated", "delivered").(float64) != 1 {
			t.Fatalf("updated overview %v, %v", d, err)
		}
	})
	t.Run("disconnects leak no goroutines", func(t *testing.T) {
		time.Sleep(200 * time.Millisecond)
		base := runtime.NumGoroutine()
		var conns []*wsClient
		for i := 0; i < 20; i++ {
			ws, err := dialWS(t, e.http.URL, "graphql-transport-ws", c.key)
			if err != nil {
				t.Fatal(err)
			}
			ws.subscribe("1", deliveryUpdatedQuery, map[string]any{"id": id})
			if _, err := ws.next(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, ws)
		}
		during := runtime.NumGoroutine()
		for _, ws := range conns {
			ws.conn.Close(coderws.StatusNormalClosure, "")
		}
		deadline := time.Now().Add(15 * time.Second)
		for runtime.NumGoroutine() > base+2 {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Fatalf("goroutines: %d before, %d with 20 subscribers, %d after closing (want ≤ %d)\n%s", base, during, runtime.NumGoroutine(), base+2, buf[:n])
			}
			time.Sleep(50 * time.Millisecond)
		}
		if during < base+20 {
			t.Errorf("20 subscriptions added only %d goroutines: is anything running?", during-base)
		}
	})
}

// npmClient installs the test's npm packages once (the graphql-ws client).
var npmOnce struct {
	sync.Once
	err error
}

func npmClient(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs("testdata/wsclient")
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "graphql-ws")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmOnce.err = fmt.Errorf("npm ci in %s: %v\n%s\n(needs node and the npm registry)", dir, err, out)
		}
	})
	if npmOnce.err != nil {
		t.Fatal(npmOnce.err)
	}
	return dir
}

// The graphql-ws npm package, run by node, against the running server.
func TestGraphQLWSNodeClient(t *testing.T) {
	dir := npmClient(t)
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	tok := sim.Token("5101", 2)
	c.person("p1", nil, false)
	c.device("p1", "IOS", tok, time.Time{})
	msg := c.message("Hello", "there")
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	wsURL := "ws" + strings.TrimPrefix(e.http.URL, "http") + "/graphql"

	cmd := exec.Command("node", "client.mjs", wsURL, c.key, id, "DELIVERED")
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("node: %v", err)
	}
	var seen []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var line struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Error != "" {
			t.Fatalf("node client: %s", sc.Text())
		}
		if len(seen) == 0 || seen[len(seen)-1] != line.Status {
			seen = append(seen, line.Status)
		}
		if line.Status == "SENT" {
			e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, tok))
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node client exited: %v (saw %v)", err, seen)
	}
	if want := []string{"ATTEMPTED", "SENT", "DELIVERED"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("node client saw %v, want %v", seen, want)
	}

	// A bad key: the client gets no data and exits with an error.
	bad := exec.Command("node", "client.mjs", wsURL, "hk_wrong", id, "DELIVERED")
	bad.Dir = dir
	out, err := bad.Output()
	if err == nil || strings.Contains(string(out), `"status"`) || !strings.Contains(string(out), "Forbidden") {
		t.Errorf("bad key: exit %v, output %s; want a Forbidden error and no data", err, out)
	}
}

// readID returns the next message for subscription id (next/data or error),
// skipping keep-alives and other subscriptions' messages.
func (c *wsClient) readID(id string, timeout time.Duration) (wsMsg, error) {
	for {
		m, err := c.read(timeout)
		if err != nil || m.ID == id {
			return m, err
		}
	}
}

// Every subscription of a process shares one Redis pub/sub connection;
// subscriptions per socket and per workspace are capped (LIMIT_EXCEEDED,
// the socket goes on); an idle subscription queries nothing.
func TestSubscriptionsSharedAndCapped(t *testing.T) {
	const perSocket, perWorkspace = 5, 8
	e := newEnv(t, envOptions{subsPerSocket: perSocket, subsPerWorkspace: perWorkspace})
	c := e.withCredentials(e.workspace("a"))
	tok := sim.Token("ab", 1)
	c.device("p1", "IOS", tok, time.Time{})
	msg := c.message("Hello", "there")
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	other := c.send(msg, "p1", "ALL_DEVICES", "") // the same campaign (none)
	c.waitFinal(id)
	c.waitFinal(other)
	// A delivery's changes are announced on its campaign's channel.
	d, err := e.app.Store.Delivery(context.Background(), c.workspaceID, uuid.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	channel := jobs.CampaignChannel(d.CampaignID.String())
	numsub := func() int64 {
		t.Helper()
		n, err := e.app.Redis.PubSubNumSub(context.Background(), channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[channel]
	}

	open := func(from, to int) *wsClient {
		t.Helper()
		ws, err := dialWS(t, e.http.URL, "graphql-transport-ws", c.key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.conn.Close(coderws.StatusNormalClosure, "") })
		for i := from; i <= to; i++ {
			sid := fmt.Sprint(i)
			ws.subscribe(sid, deliveryUpdatedQuery, map[string]any{"id": id})
			if m, err := ws.readID(sid, 10*time.Second); err != nil || m.Type != "next" {
				t.Fatalf("subscription %s: %s %s, %v", sid, m.Type, m.Payload, err)
			}
		}
		return ws
	}
	refused := func(ws *wsClient, sid, want string) {
		t.Helper()
		ws.subscribe(sid, deliveryUpdatedQuery, map[string]any{"id": id})
		m, err := ws.readID(sid, 10*time.Second)
		// gqlgen sends a resolver's refusal as a payload of errors.
		if err != nil || (m.Type != "error" && m.Type != "next") || !strings.Contains(string(m.Payload), `"code":"LIMIT_EXCEEDED"`) || !strings.Contains(string(m.Payload), want) {
			t.Fatalf("subscription %s over a cap: %s %s, %v; want an error with LIMIT_EXCEEDED naming %q", sid, m.Type, m.Payload, err, want)
		}
	}

	a := open(1, perSocket)
	if n := numsub(); n != 1 {
		t.Errorf("%d subscriptions on one socket: Redis has %d subscribers of the channel, want 1 (one shared connection)", perSocket, n)
	}
	refused(a, "over-socket", "one connection")
	b := open(perSocket+1, perWorkspace)
	refused(b, "over-workspace", "one workspace")
	if n := numsub(); n != 1 {
		t.Errorf("%d subscriptions on two sockets: Redis has %d subscribers of the channel, want 1", perWorkspace, n)
	}

	// Idle: longer than the old 5 s re-check, nothing is read.
	before := e.app.Queries.Queries()
	time.Sleep(6 * time.Second)
	if d := e.app.Queries.Queries() - before; d != 0 {
		t.Errorf("%d idle subscriptions ran %d ClickHouse queries in 6s, want 0", perWorkspace, d)
	}

	// Another delivery of the campaign changes: its announcement reaches
	// the feed, which passes it on to none of these subscriptions (each
	// hears of its own delivery only), so nothing is read.
	// A listener of the other delivery on the same feed says when the
	// announcement has arrived.
	heard, err := e.app.Live.Feed.ListenFor(context.Background(), channel, uuid.MustParse(other))
	if err != nil {
		t.Fatal(err)
	}
	before = e.app.Queries.Queries()
	e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, other, tok))
	select {
	case <-heard.C:
	case <-time.After(20 * time.Second):
		t.Fatal("the other delivery's change was not announced within 20s")
	}
	heard.Close()
	time.Sleep(200 * time.Millisecond) // a subscription told with it would have started its read by now
	if d := e.app.Queries.Queries() - before; d != 0 {
		t.Errorf("a change of another delivery of the campaign: %d subscriptions ran %d ClickHouse queries, want 0", perWorkspace, d)
	}

	// A change reaches a subscription of the capped socket.
	e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, tok))
	for {
		m, err := a.readID("1", 20*time.Second)
		if err != nil || m.Type != "next" {
			t.Fatalf("update after the report: %s %s, %v", m.Type, m.Payload, err)
		}
		if strings.Contains(string(m.Payload), "DELIVERED") {
			break
		}
	}

	// Closing the sockets unsubscribes the channel.
	a.conn.Close(coderws.StatusNormalClosure, "")
	b.conn.Close(coderws.StatusNormalClosure, "")
	deadline := time.Now().Add(10 * time.Second)
	for numsub() != 0 || e.app.Live.Feed.Channels() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after closing: %d Redis subscribers, %d feed channels; want 0", numsub(), e.app.Live.Feed.Channels())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// broadcastUpdated sends a broadcast's progress as it runs (queued and
// done never going back) and completes once every delivery is done; a
// canceled one answers once, canceled, and completes; another workspace's
// broadcast is NOT_FOUND.
func TestBroadcastUpdated(t *testing.T) {
	e := newEnv(t, envOptions{broadcastBatch: 4})
	c := e.withCredentials(e.workspace("bcast-live"))
	const n = 80 // at 20 sends at a time, 250 ms each: a second or more
	for i := range n {
		p := fmt.Sprintf("p%02d", i)
		c.person(p, nil, false)
		c.device(p, "IOS", sim.Token("5100", i), time.Time{}) // 250 ms each: the broadcast takes a while
	}
	msg := c.message("Hello", "live")
	ws, err := dialWS(t, e.http.URL, "graphql-transport-ws", c.key)
	if err != nil {
		t.Fatal(err)
	}
	const sub = `subscription($id: ID!) { broadcastUpdated(id: $id) { id total queued done canceled message { id } } }`
	id := c.broadcastAll(msg)
	ws.subscribe("1", sub, vars{"id": id})
	var seen []string
	lastQ, lastD := -1.0, -1.0
	for {
		m, err := ws.readID("1", 30*time.Second)
		if err != nil {
			t.Fatalf("after %v: %v", seen, err)
		}
		if m.Type == "complete" {
			break
		}
		if m.Type != "next" {
			t.Fatalf("message %s %s, want next or complete", m.Type, m.Payload)
		}
		var p struct {
			Data struct{ BroadcastUpdated map[string]any } `json:"data"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		b := p.Data.BroadcastUpdated
		q, d := b["queued"].(float64), b["done"].(float64)
		if b["total"] != float64(n) || b["id"] != id || get(b, "message", "id") != msg {
			t.Fatalf("broadcastUpdated = %v, want broadcast %s of message %s to %d", b, id, msg, n)
		}
		if q < lastQ || d < lastD {
			t.Errorf("progress went back: queued %v→%v, done %v→%v", lastQ, q, lastD, d)
		}
		lastQ, lastD = q, d
		seen = append(seen, fmt.Sprintf("%v/%v", q, d))
	}
	t.Logf("queued/done seen: %v", seen)
	if lastQ != n || lastD != n {
		t.Errorf("completed at queued %v done %v, want %d and %d", lastQ, lastD, n, n)
	}
	if len(seen) < 3 {
		t.Errorf("saw %d values (%v), want the progress on its way, not only its start and end", len(seen), seen)
	}
	if _, done := c.progress(id); done != n {
		t.Errorf("broadcast(id).done = %d after the subscription completed, want %d", done, n)
	}

	// A scheduled broadcast canceled: one answer, canceled, then complete.
	b := c.mustDo(`mutation($in: BroadcastInput!) { broadcast(input: $in) { id } }`, vars{"in": vars{"messageId": msg,
		"sendAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	sched := get(b, "broadcast", "id").(string)
	c.mustDo(`mutation($id: ID!) { cancelBroadcast(id: $id) { id } }`, vars{"id": sched})
	ws.subscribe("2", sub, vars{"id": sched})
	if m, err := ws.readID("2", 10*time.Second); err != nil || m.Type != "next" || !strings.Contains(string(m.Payload), `"canceled":true`) {
		t.Fatalf("canceled broadcast: %s %s %v, want canceled: true", m.Type, m.Payload, err)
	}
	if m, err := ws.readID("2", 10*time.Second); err != nil || m.Type != "complete" {
		t.Fatalf("canceled broadcast then %s %s %v, want complete", m.Type, m.Payload, err)
	}

	// Another workspace cannot watch it.
	other := e.workspace("bcast-live-other")
	ws2, err := dialWS(t, e.http.URL, "graphql-transport-ws", other.key)
	if err != nil {
		t.Fatal(err)
	}
	ws2.subscribe("3", sub, vars{"id": id})
	if m, err := ws2.readID("3", 10*time.Second); err != nil || !strings.Contains(string(m.Payload), `"code":"NOT_FOUND"`) || strings.Contains(string(m.Payload), `"total"`) {
		t.Fatalf("another workspace's broadcastUpdated: %s %s %v, want an error NOT_FOUND and no data", m.Type, m.Payload, err)
	}
}

package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/providers/sim/apnssim"
	"github.com/heraldpush/herald/providers/sim/fcmsim"
	"github.com/heraldpush/herald/server"
)

// env is one running Herald: API over real HTTP, worker, simulators, and its
// own ClickHouse database and Redis DB.
type env struct {
	t      *testing.T
	app    *app.App
	http   *httptest.Server
	apns   *apnssim.Server
	fcm    *fcmsim.Server
	inspc  *asynq.Inspector
	cfg    app.Config
	worker *asynq.Server
}

type envOptions struct {
	retryBase      time.Duration // default 10ms
	broadcastBatch int           // default Herald's (5000)
	sendRate       int           // sends per workspace per second; default no limit
	reportRate     int           // reports per IP per second; default no limit
	redisAddr      string        // a private Redis (its DB 0); default a test DB of the shared one
	fcmTokenURIs   []string      // token endpoints allowed besides the FCM simulator's
	// readTimeout and idleTimeout are the HTTP server's (default Herald's);
	// authLookupRate bounds uncached key lookups per IP (default Herald's).
	readTimeout, idleTimeout time.Duration
	authLookupRate           int
	logs                     io.Writer // where the servers log (default nowhere)
	// ClickHouse pool and query bounds, subscription caps; default the app's.
	chMaxConns, queryPerRequest, queryPerWorkspace int
	subsPerSocket, subsPerWorkspace                int
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("HERALD_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.logs != nil {
		logger = slog.New(slog.NewTextHandler(o.logs, nil))
	}
	redisAddr, redisDB := o.redisAddr, 0
	if redisAddr == "" {
		redisAddr, redisDB = redistest.Addr(), redistest.New(t).Options().DB
	}
	e := &env{t: t, apns: apnssim.New(logger), fcm: fcmsim.New(logger)}
	if err := e.apns.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("apns simulator: %v", err)
	}
	t.Cleanup(e.apns.Close)
	if err := e.fcm.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("fcm simulator: %v", err)
	}
	t.Cleanup(e.fcm.Close)

	if o.retryBase == 0 {
		o.retryBase = 10 * time.Millisecond
	}
	cfg := app.Config{
		RedisAddr: redisAddr, RedisDB: redisDB,
		Concurrency: 20, RetryBase: o.retryBase, RetryMax: 4 * o.retryBase, PollInterval: 20 * time.Millisecond,
		SendTimeout: 3 * time.Second, EventClaimIdle: time.Second, BroadcastBatch: o.broadcastBatch,
		SecretKey: testSecretKey(t), SendRate: orNoLimit(o.sendRate), ReportRate: orNoLimit(o.reportRate),
		APNSHost: e.apns.URL(), APNSRootCAs: e.apns.RootCAs(), FCMEndpoint: e.fcm.URL(),
		HTTPReadTimeout: o.readTimeout, HTTPIdleTimeout: o.idleTimeout, AuthLookupRate: o.authLookupRate,
		FCMTokenURIs:       append([]string{e.fcm.TokenURL()}, o.fcmTokenURIs...),
		ClickHouseMaxConns: o.chMaxConns, QueryConcurrencyRequest: o.queryPerRequest, QueryConcurrencyWorkspace: o.queryPerWorkspace,
		SubscriptionsPerSocket: o.subsPerSocket, SubscriptionsPerWorkspace: o.subsPerWorkspace,
	}
	a := openHerald(t, cfg, logger)
	e.app, e.cfg = a, a.Cfg
	w, err := a.StartWorker()
	if err != nil {
		t.Fatalf("start worker: %v", err)
	}
	e.worker = w
	t.Cleanup(func() { e.worker.Shutdown() })
	e.http = httptest.NewUnstartedServer(nil)
	e.http.Config = a.HTTPServer() // Herald's own server, timeouts and all
	e.http.Start()
	t.Cleanup(e.http.Close)
	e.inspc = asynq.NewInspectorFromRedisClient(a.Redis)
	return e
}

// openHerald opens Herald on its own new ClickHouse database (dropped at
// the end) with cfg's other settings.
func openHerald(t testing.TB, cfg app.Config, logger *slog.Logger) *app.App {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "herald_e2e_" + hex.EncodeToString(b)
	cfg.ClickHouseAddr, cfg.ClickHouseDatabase = chtest.Addr(), db
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := app.Open(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("open herald: %v", err)
	}
	t.Cleanup(func() {
		_ = a.CH.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		a.Close()
	})
	return a
}

// newWorkspace stores a new workspace and returns it with its API key.
func newWorkspace(t testing.TB, store *clickhouse.Store, name string) (clickhouse.Workspace, string) {
	t.Helper()
	key, hash := server.NewAPIKey()
	ws := clickhouse.Workspace{ID: "ws_" + server.NewSiteID(), Name: name, KeyHash: hash, SiteID: server.NewSiteID(), CreatedAt: time.Now().UTC()}
	if err := store.CreateWorkspace(context.Background(), ws); err != nil {
		t.Fatalf("create workspace: %v", err)
	}
	return ws, key
}

func orNoLimit(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func testSecretKey(t testing.TB) []byte {
	k, err := secret.ParseKey(secret.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// restartWorker stops the worker (letting running tasks finish, as on a
// deploy) and starts a new one.
func (e *env) restartWorker() {
	e.t.Helper()
	e.worker.Shutdown()
	w, err := e.app.StartWorker()
	if err != nil {
		e.t.Fatalf("restart worker: %v", err)
	}
	e.worker = w
}

// targeted records that round 0 of delivery d targeted devices, as the
// worker does: one targeted event per device, carrying its token and
// platform (what the report endpoints look a token up by).
func (e *env) targeted(d clickhouse.Delivery, devices ...clickhouse.DeliveryDevice) {
	e.t.Helper()
	evs := make([]clickhouse.Event, len(devices))
	for i, dd := range devices {
		evs[i] = clickhouse.Event{WorkspaceID: d.WorkspaceID, CampaignID: d.CampaignID, DeliveryID: d.ID, DeviceIndex: dd.Index,
			Kind: clickhouse.KindTargeted, Token: dd.Token, ProviderID: dd.Platform, DeliveryCreated: d.CreatedAt, At: time.Now()}
	}
	if err := e.app.Store.InsertEvents(context.Background(), evs...); err != nil {
		e.t.Fatal(err)
	}
}

// strings runs a ClickHouse query of one String column and returns its
// rows' values.
func (e *env) strings(query string, args ...any) []string {
	e.t.Helper()
	rows, err := e.app.CH.Query(context.Background(), query, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// workspace creates a workspace and returns a client with its key.
func (e *env) workspace(name string) *client {
	e.t.Helper()
	ws, key := newWorkspace(e.t, e.app.Store, name)
	return &client{t: e.t, url: e.http.URL + "/graphql", key: key, workspaceID: ws.ID}
}

// withCredentials gives the workspace token-auth APNS and FCM credentials
// trusted by the simulators.
func (e *env) withCredentials(c *client) *client {
	e.t.Helper()
	p8, err := e.apns.NewTokenKey("TEAM000001", "KEY0000001")
	if err != nil {
		e.t.Fatal(err)
	}
	sa, err := e.fcm.NewServiceAccount("herald-test")
	if err != nil {
		e.t.Fatal(err)
	}
	c.mustDo(`mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }`, vars{"in": vars{
		"apns": vars{"bundleId": "com.example.app", "keyId": "KEY0000001", "teamId": "TEAM000001", "p8": string(p8)},
		"fcm":  vars{"serviceAccountJson": string(sa)},
	}})
	return c
}

// idle waits until no task is pending, running or waiting for a retry.
func (e *env) idle() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		busy := 0
		qs, err := e.inspc.Queues()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, q := range qs {
			info, err := e.inspc.GetQueueInfo(q)
			if err != nil {
				e.t.Fatal(err)
			}
			busy += info.Pending + info.Active + info.Scheduled + info.Retry
		}
		if busy == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatal("tasks still queued after 30s")
}

// flush waits until every event written so far is queryable in ClickHouse
// (the event writer drains its Redis buffer every few tens of ms).
func (e *env) flush() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.app.Events.Flush(ctx); err != nil {
		e.t.Fatalf("flush events: %v", err)
	}
}

type vars = map[string]any

// client is a GraphQL-over-HTTP client.
type client struct {
	t           *testing.T
	url, key    string
	workspaceID string
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

type response struct {
	Data       map[string]any `json:"data"`
	Errors     []gqlError     `json:"errors"`
	Extensions map[string]any `json:"extensions"`
}

func (c *client) do(query string, v vars) response {
	c.t.Helper()
	body, _ := json.Marshal(vars{"query": query, "variables": v})
	req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("graphql request: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out response
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("graphql response %s: %v: %s", resp.Status, err, raw)
	}
	return out
}

func (c *client) mustDo(query string, v vars) map[string]any {
	c.t.Helper()
	r := c.do(query, v)
	if len(r.Errors) > 0 {
		c.t.Fatalf("graphql errors: %+v", r.Errors)
	}
	return r.Data
}

// code returns the first error's extensions.code ("" when no error).
func (r response) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	s, _ := r.Errors[0].Extensions["code"].(string)
	return s
}

func (c *client) person(id string, attrs vars, unsubscribed bool) {
	c.t.Helper()
	c.mustDo(`mutation($in: IdentifyPersonInput!) { identifyPerson(input: $in) { id } }`,
		vars{"in": vars{"id": id, "attributes": attrs, "unsubscribed": unsubscribed}})
}

func (c *client) device(personID, platform, token string, lastUsed time.Time) {
	c.t.Helper()
	in := vars{"personId": personID, "platform": platform, "token": token}
	if !lastUsed.IsZero() {
		in["lastUsedAt"] = lastUsed.UTC().Format(time.RFC3339)
	}
	c.mustDo(`mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`, vars{"in": in})
}

func (c *client) message(title, body string) string {
	c.t.Helper()
	camp := c.mustDo(`mutation { createCampaign(input: {name: "Test campaign"}) { id } }`, nil)
	d := c.mustDo(`mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id } }`, vars{"in": vars{
		"campaignId": get(camp, "createCampaign", "id"), "name": "Test message", "title": title, "body": body,
		"link": "app://home", "data": vars{"screen": "home"}}})
	return get(d, "createPushMessage", "id").(string)
}

func (c *client) send(messageID, personID, audience, token string) string {
	c.t.Helper()
	in := vars{"messageId": messageID, "personId": personID, "audience": audience}
	if token != "" {
		in["token"] = token
	}
	d := c.mustDo(`mutation($in: SendPushInput!) { sendPush(input: $in) { id status } }`, vars{"in": in})
	return get(d, "sendPush", "id").(string)
}

// delivery is the JSON of a delivery query.
type delivery struct {
	ID               string    `json:"id"`
	Status           string    `json:"status"`
	FailureReason    *string   `json:"failureReason"`
	DevicesTargeted  int       `json:"devicesTargeted"`
	DevicesAttempted int       `json:"devicesAttempted"`
	SentAt           *string   `json:"sentAt"`
	CreatedAt        time.Time `json:"createdAt"`
	Devices          []struct {
		Token     string  `json:"token"`
		Platform  string  `json:"platform"`
		Status    string  `json:"status"`
		Attempts  int     `json:"attempts"`
		LastError *string `json:"lastError"`
	} `json:"devices"`
}

const deliveryQuery = `query($id: ID!) { delivery(id: $id) { id status failureReason devicesTargeted devicesAttempted sentAt createdAt
  devices { token platform status attempts lastError } } }`

func (c *client) delivery(id string) delivery {
	c.t.Helper()
	d := c.mustDo(deliveryQuery, vars{"id": id})
	b, _ := json.Marshal(d["delivery"])
	var out delivery
	_ = json.Unmarshal(b, &out)
	return out
}

// waitFinal polls until the delivery's status is none of DRAFT, SCHEDULED and ATTEMPTED.
func (c *client) waitFinal(id string) delivery {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := c.delivery(id)
		if d.Status != "ATTEMPTED" && d.Status != "SCHEDULED" && d.Status != "DRAFT" {
			return d
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("delivery %s still %s after 30s: %+v", id, d.Status, d)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (d delivery) statusOf(token string) (string, int) {
	for _, dv := range d.Devices {
		if dv.Token == token {
			return dv.Status, dv.Attempts
		}
	}
	return "", 0
}

func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func fmtDevices(d delivery) string {
	var b bytes.Buffer
	for _, dv := range d.Devices {
		tok := dv.Token
		if len(tok) > 8 {
			tok = tok[:8]
		}
		fmt.Fprintf(&b, "%s…:%s/%d ", tok, dv.Status, dv.Attempts)
	}
	return b.String()
}

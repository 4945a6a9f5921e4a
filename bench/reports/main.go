// Command reports measures the SDK report endpoints (-api push:
// /push/events, one report a request; -api cdp: Data Pipelines batches to
// /v1/b, -batch events each): how many reports per
// second one Herald process acknowledges from clients on loopback, and the
// lag from acknowledgement to queryable in ClickHouse at that rate (median
// and p99). It needs ClickHouse and Redis (bash scripts/services.sh) and uses
// its own database, dropped at the end.
//
//	go run ./bench/reports -reports 20000 -clients 32
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers/sim"
	"github.com/heraldpush/herald/server"
)

func main() {
	n := flag.Int("reports", 20000, "reports to send (one per delivery)")
	clients := flag.Int("clients", 32, "concurrent HTTP clients")
	chAddr := flag.String("clickhouse", "127.0.0.1:9000", "ClickHouse address")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	api := flag.String("api", "push", "push: one report a request to /push/events (the legacy SDKs); cdp: Data Pipelines batches to /v1/b with the write key in the body (the current SDKs), -batch events each")
	perBatch := flag.Int("batch", 20, "events a /v1/b batch carries (with -api cdp)")
	flag.Parse()
	if *api != "push" && *api != "cdp" {
		fmt.Fprintln(os.Stderr, "bench: -api is push or cdp")
		os.Exit(2)
	}
	if *api == "push" {
		*perBatch = 1
	}
	if err := run(*n, *clients, *perBatch, *api, *chAddr, *redisAddr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n, clients, perBatch int, api, chAddr, redisAddr string) error {
	ctx := context.Background()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	db := "herald_bench_" + hex.EncodeToString(b)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.Open(ctx, app.Config{ClickHouseAddr: chAddr, ClickHouseDatabase: db, RedisAddr: redisAddr, RedisDB: 14, ReportRate: -1}, logger)
	if err != nil {
		return err
	}
	defer func() {
		_ = a.CH.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		_ = a.Redis.Del(ctx, "herald:events:"+db).Err()
		a.Close()
	}()

	fmt.Fprintf(os.Stderr, "setting up %d deliveries in %s…\n", n, db)
	ws := "ws_bench"
	// The workspace, with a write key for the Data Pipelines API.
	writeKey, writeKeyHash := server.NewWriteKey()
	_, apiKeyHash := server.NewAPIKey()
	if err := a.Store.CreateWorkspace(ctx, clickhouse.Workspace{ID: ws, Name: "bench", KeyHash: apiKeyHash, SiteID: server.NewSiteID(), WriteKeyHash: writeKeyHash, CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	camp, msg := uuid.New(), uuid.New()
	deliveries := make([]clickhouse.Delivery, n)
	tokens := make([]string, n)
	start := time.Now().Add(-time.Hour)
	// The deliveries, and their targeted events as the deliver task writes
	// them (token and platform on the event, where a report's token is
	// looked up). Creation times come from the UUIDv7 ids.
	batch, err := a.CH.PrepareBatch(ctx, "INSERT INTO deliveries (workspace_id, id, campaign_id, message_id, person_id, audience, token, data, overrides)")
	if err != nil {
		return err
	}
	targeted := make([]clickhouse.Event, n)
	for i := range deliveries {
		id := deliveryID(start.Add(time.Duration(i) * time.Millisecond))
		created := clickhouse.DeliveryTime(id)
		deliveries[i] = clickhouse.Delivery{WorkspaceID: ws, ID: id, CampaignID: camp, MessageID: msg, PersonID: fmt.Sprint("p", i), Audience: "ALL_DEVICES", Data: "{}", CreatedAt: created}
		tokens[i] = sim.Token("be", i)
		if err := batch.Append(ws, id, camp, msg, deliveries[i].PersonID, "ALL_DEVICES", "", "{}", ""); err != nil {
			return err
		}
		targeted[i] = clickhouse.Event{WorkspaceID: ws, CampaignID: camp, DeliveryID: id, Kind: clickhouse.KindTargeted,
			ProviderID: "IOS", Token: tokens[i], DeliveryCreated: created, At: created.Add(50 * time.Millisecond)}
	}
	if err := batch.Send(); err != nil {
		return err
	}
	if err := clickhouse.InsertEvents(ctx, a.CH, targeted); err != nil {
		return err
	}
	// As the deliver task does: cache each delivery's targeted devices.
	targets := jobs.NewTargetCache(a.Redis, time.Hour)
	for i, d := range deliveries {
		if err := targets.Put(ctx, d, 0, []clickhouse.DeliveryDevice{{Index: 0, Token: tokens[i], Platform: "IOS"}}); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/push/events"
	if api == "cdp" {
		url = "http://" + ln.Addr().String() + "/v1/b"
	}
	// body is the request for reports [i, j): one /push/events report, or
	// one /v1/b batch of Report Delivery Event tracks as the Android SDK
	// sends them (analytics-kotlin; the key in the body).
	body := func(i, j int) string {
		if api == "push" {
			return fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, deliveries[i].ID, tokens[i])
		}
		var b strings.Builder
		b.WriteString(`{"batch":[`)
		for k := i; k < j; k++ {
			if k > i {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"type":"track","event":"Report Delivery Event","anonymousId":"anon-%d","messageId":"%s-%d","timestamp":%q,"properties":{"recipient":%q,"metric":"delivered","deliveryId":%q}}`,
				k, db, k, time.Now().UTC().Format(time.RFC3339Nano), tokens[k], deliveries[k].ID) // messageIds of this run only: Herald drops repeats for 24 h
		}
		fmt.Fprintf(&b, `],"sentAt":%q,"writeKey":%q}`, time.Now().UTC().Format(time.RFC3339Nano), writeKey)
		return b.String()
	}

	ackAt := make([]time.Time, n)
	var next, done atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	fmt.Fprintf(os.Stderr, "sending %d reports from %d clients…\n", n, clients)
	t0 := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for {
				i := int(next.Add(int64(perBatch)) - int64(perBatch))
				if i >= n {
					return
				}
				j := min(i+perBatch, n)
				resp, err := hc.Post(url, "application/json", strings.NewReader(body(i, j)))
				if err != nil || resp.StatusCode != 200 {
					failures.Add(int64(j - i))
					if resp != nil {
						resp.Body.Close()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				now := time.Now()
				for k := i; k < j; k++ {
					ackAt[k] = now
				}
				if d := done.Add(int64(j - i)); d/5000 != (d-int64(j-i))/5000 {
					fmt.Fprintf(os.Stderr, "  %d acknowledged\n", d)
				}
			}
		}()
	}
	// Watch ClickHouse: the first time a delivery's event is queryable.
	seenAt := make([]time.Time, n)
	index := make(map[uuid.UUID]int, n)
	for i, d := range deliveries {
		index[d.ID] = i
	}
	stop := make(chan struct{})
	var seen int
	watchDone := make(chan error, 1)
	go func() {
		var since int64
		for {
			rows, err := a.CH.Query(ctx, "SELECT delivery_id, toUnixTimestamp64Micro(at) FROM events WHERE workspace_id = ? AND kind = 'delivered' AND at >= fromUnixTimestamp64Micro(toInt64(?), 'UTC')", ws, since)
			if err != nil {
				watchDone <- err
				return
			}
			now := time.Now()
			for rows.Next() {
				var id uuid.UUID
				var us int64
				if err := rows.Scan(&id, &us); err != nil {
					watchDone <- err
					return
				}
				if i, ok := index[id]; ok && seenAt[i].IsZero() {
					seenAt[i] = now
					seen++
				}
				if us > since+2_000_000 {
					since = us - 2_000_000
				}
			}
			rows.Close()
			if seen >= n-int(failures.Load()) && next.Load() >= int64(n) {
				select {
				case <-stop:
					watchDone <- nil
					return
				default:
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	select {
	case err := <-watchDone:
		if err != nil {
			return err
		}
	case <-time.After(60 * time.Second):
		return fmt.Errorf("only %d of %d reports queryable after 60s", seen, n)
	}
	var lags []time.Duration
	for i := range ackAt {
		if !ackAt[i].IsZero() && !seenAt[i].IsZero() {
			lags = append(lags, seenAt[i].Sub(ackAt[i]))
		}
	}
	slices.Sort(lags)
	pct := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[int(float64(len(lags)-1)*p)].Round(time.Millisecond)
	}
	fmt.Printf("| endpoint | reports | per request | clients | acknowledged/s | failed | lag median | lag p99 | lag max |\n|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %s | %d | %d | %d | %.0f | %d | %s | %s | %s |\n", strings.TrimPrefix(url, "http://"+ln.Addr().String()), n, perBatch, clients, float64(done.Load())/elapsed.Seconds(), failures.Load(), pct(0.5), pct(0.99), pct(1))
	return nil
}

// deliveryID makes a UUIDv7 delivery id whose millisecond time is t: the
// deliveries' creation time is read back from the id.
func deliveryID(t time.Time) uuid.UUID {
	id := uuid.Must(uuid.NewV7())
	ms := uint64(t.UnixMilli())
	for j := 0; j < 6; j++ {
		id[j] = byte(ms >> (40 - 8*j))
	}
	return id
}

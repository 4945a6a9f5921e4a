// Command send measures Herald's send path end to end — broadcast → fan-out
// and deliver tasks → send tasks → the real apns2/firebase clients → the
// local APNS/FCM simulators → events in ClickHouse — and, as the ceiling,
// the same simulators driven directly by the same clients in a tight loop.
// It prints a table: device sends per second, CPU seconds, peak heap, and
// the ratio between the two. Needs ClickHouse and Redis
// (bash scripts/services.sh); uses its own database, dropped at the end.
//
//	go run ./bench/send -persons 20000 -concurrency 200
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/providers/sim"
	"github.com/heraldpush/herald/providers/sim/apnssim"
	"github.com/heraldpush/herald/providers/sim/fcmsim"
)

func main() {
	persons := flag.Int("persons", 20000, "people in the broadcast (one device each, half iOS, half Android)")
	concurrency := flag.Int("concurrency", 200, "worker concurrency (and ceiling goroutines)")
	chAddr := flag.String("clickhouse", "127.0.0.1:9000", "ClickHouse address")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the end-to-end run to this file")
	flag.Parse()
	profile = *cpuProfile
	if err := run(*persons, *concurrency, *chAddr, *redisAddr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// profile is the -cpuprofile path ("" = none).
var profile string

type usage struct {
	wall time.Duration
	cpu  time.Duration
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakHeap samples the heap while f runs.
func peakHeap(f func() error) (uint64, error) {
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err := f()
	close(stop)
	return peak.Load(), err
}

func run(n, concurrency int, chAddr, redisAddr string) error {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	apns, fcm := apnssim.New(logger), fcmsim.New(logger)
	if err := apns.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer apns.Close()
	if err := fcm.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer fcm.Close()
	p8, err := apns.NewTokenKey("BENCHTEAM1", "BENCHKEY01")
	if err != nil {
		return err
	}
	sa, err := fcm.NewServiceAccount("herald-bench")
	if err != nil {
		return err
	}
	apnsCreds := providers.APNSCredentials{KeyID: "BENCHKEY01", TeamID: "BENCHTEAM1", BundleID: "com.example.bench", P8: string(p8)}
	fcmCreds := providers.FCMCredentials{ServiceAccountJSON: string(sa)}

	// Ceiling: the clients alone, in a tight loop.
	fmt.Fprintf(os.Stderr, "ceiling: %d pushes straight to the simulators from %d goroutines…\n", n, concurrency)
	ios, err := providers.NewAPNS(apnsCreds, providers.APNSOptions{Host: apns.URL(), RootCAs: apns.RootCAs()})
	if err != nil {
		return err
	}
	android, err := providers.NewFCM(ctx, fcmCreds, providers.FCMOptions{Endpoint: fcm.URL(), TokenURIs: []string{fcm.TokenURL()}})
	if err != nil {
		return err
	}
	var ceil usage
	var failed atomic.Int64
	ceilHeap, _ := peakHeap(func() error {
		cpu0, t0 := cpuNow(), time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < concurrency; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					s := ios
					if i%2 == 1 {
						s = android
					}
					r := s.Send(ctx, providers.Push{DeliveryID: uuid.NewString(), Token: sim.Token("c0", i), Title: "Hello", Body: "Bench"})
					if r.Outcome != providers.Accepted {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		ceil = usage{time.Since(t0), cpuNow() - cpu0}
		return nil
	})
	if failed.Load() > 0 {
		return fmt.Errorf("ceiling: %d pushes not accepted", failed.Load())
	}

	// End to end.
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	db := "herald_bench_send_" + hex.EncodeToString(b)
	key, _ := secret.ParseKey(secret.NewKey())
	a, err := app.Open(ctx, app.Config{ClickHouseAddr: chAddr, ClickHouseDatabase: db, RedisAddr: redisAddr, RedisDB: 13,
		Concurrency: concurrency, PollInterval: 20 * time.Millisecond, RetryBase: 50 * time.Millisecond,
		APNSHost: apns.URL(), APNSRootCAs: apns.RootCAs(), FCMEndpoint: fcm.URL(), FCMTokenURIs: []string{fcm.TokenURL()}, SecretKey: key, SendRate: -1, ReportRate: -1}, logger)
	if err != nil {
		return err
	}
	defer func() {
		_ = a.CH.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		_ = a.Redis.FlushDB(ctx).Err()
		a.Close()
	}()
	if err := a.Redis.FlushDB(ctx).Err(); err != nil {
		return err
	}
	ws := "ws_bench_send"
	for _, c := range []struct {
		platform string
		v        any
	}{{"IOS", apnsCreds}, {"ANDROID", fcmCreds}} {
		raw, _ := json.Marshal(c.v)
		if err := a.Store.PutCredentials(ctx, ws, c.platform, a.Secrets.Seal(raw, jobs.CredentialsAAD(ws, c.platform))); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "end to end: %d people with one device each…\n", n)
	if err := loadPeople(ctx, a, ws, n); err != nil {
		return err
	}
	camp, _ := uuid.NewV7()
	if err := a.Store.CreateCampaign(ctx, clickhouse.Campaign{WorkspaceID: ws, ID: camp, Name: "bench", CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	msgID, _ := uuid.NewV7()
	if err := a.Store.CreateMessage(ctx, clickhouse.Message{WorkspaceID: ws, ID: msgID, CampaignID: camp, Name: "bench", Title: "Hello {{ customer.first_name | default: \"you\" }}", Body: "Bench", Badge: -1, Data: "{}", CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	w, err := a.StartWorker()
	if err != nil {
		return err
	}
	defer w.Shutdown()
	apns.Reset()
	fcm.Reset()

	var e2e usage
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	e2eHeap, err := peakHeap(func() error {
		cpu0, t0 := cpuNow(), time.Now()
		bid, _ := uuid.NewV7()
		if err := a.Store.CreateBroadcast(ctx, clickhouse.Broadcast{WorkspaceID: ws, ID: bid, MessageID: msgID, Audience: "ALL_DEVICES", AllPersons: true, Data: "{}", Total: uint64(n), CreatedAt: time.Now().UTC()}); err != nil {
			return err
		}
		if err := jobs.NewQueue(a.Asynq, a.Redis).Broadcast(ctx, ws, bid.String(), time.Time{}); err != nil {
			return err
		}
		last := time.Now()
		for {
			var sent uint64
			if err := a.CH.QueryRow(ctx, "SELECT uniqExact(delivery_id, device_index) FROM events WHERE workspace_id = ? AND kind = 'sent'", ws).Scan(&sent); err != nil {
				return err
			}
			if sent >= uint64(n) {
				break
			}
			if time.Since(last) > 2*time.Second {
				fmt.Fprintf(os.Stderr, "  %d of %d sent and recorded (%.0f/s)\n", sent, n, float64(sent)/time.Since(t0).Seconds())
				last = time.Now()
			}
			if time.Since(t0) > 10*time.Minute {
				return fmt.Errorf("only %d of %d sends recorded after 10 minutes", sent, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		e2e = usage{time.Since(t0), cpuNow() - cpu0}
		return nil
	})
	if err != nil {
		return err
	}
	requests := apns.Total() + fcm.Total()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)

	rate := func(u usage) float64 { return float64(n) / u.wall.Seconds() }
	fmt.Printf("| path | device sends | wall s | sends/s | CPU s | CPU ms per 1k sends | peak heap MB |\n|---|---:|---:|---:|---:|---:|---:|\n")
	fmt.Printf("| ceiling: apns2/firebase clients → simulators | %d | %.2f | %.0f | %.2f | %.0f | %.0f |\n", n, ceil.wall.Seconds(), rate(ceil), ceil.cpu.Seconds(), ceil.cpu.Seconds()*1e6/float64(n), float64(ceilHeap)/(1<<20))
	fmt.Printf("| Herald end to end: broadcast → worker → simulators → ClickHouse | %d | %.2f | %.0f | %.2f | %.0f | %.0f |\n", n, e2e.wall.Seconds(), rate(e2e), e2e.cpu.Seconds(), e2e.cpu.Seconds()*1e6/float64(n), float64(e2eHeap)/(1<<20))
	fmt.Printf("\nratio end to end / ceiling: %.2f (simulator requests in the end-to-end run: %d for %d devices; process max RSS %d MB; the simulators run in this process, so CPU includes theirs in both rows)\n",
		rate(e2e)/rate(ceil), requests, n, ru.Maxrss/1024)
	return nil
}

// loadPeople writes n people with one device each in batches.
func loadPeople(ctx context.Context, a *app.App, ws string, n int) error {
	pb, err := a.CH.PrepareBatch(ctx, "INSERT INTO persons (workspace_id, id, attributes, unsubscribed, created_at, updated_at)")
	if err != nil {
		return err
	}
	db, err := a.CH.PrepareBatch(ctx, "INSERT INTO devices (workspace_id, person_id, token, platform, last_used, attributes, state, removed, updated_at)")
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("p%07d", i)
		if err := pb.Append(ws, id, `{"first_name":"P"}`, uint8(0), now, now); err != nil {
			return err
		}
		platform := "IOS"
		if i%2 == 1 {
			platform = "ANDROID"
		}
		if err := db.Append(ws, id, sim.Token("be", i), platform, now, "{}", "ok", uint8(0), now); err != nil {
			return err
		}
	}
	if err := pb.Send(); err != nil {
		return err
	}
	return db.Send()
}

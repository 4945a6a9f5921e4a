// Command send measures Herald's send path end to end — broadcast → fan-out
// and deliver tasks → send tasks → the real apns2/firebase clients → the
// APNS/FCM simulators → every event queryable in ClickHouse — beside the
// raw loop: the same clients driving the same simulators from -concurrency
// goroutines, as gorush does. The simulators run as separate processes
// (this binary again, with -simulator), so their CPU is nobody's here.
// For iOS only, Android only and a 50/50 mix it runs the raw loop and
// Herald alternately, -runs times each (which goes first alternates too),
// and prints per push the medians of: pushes/s, CPU-µs in this process
// (Herald's, or the raw loop's), in Redis and in ClickHouse (utime+stime
// from their /proc entries: Redis's pid from INFO, the embedded
// ClickHouse's supervisor and engine from .data/clickhouse/state.json),
// in the two simulators, and in all of them; peak RSS of this process
// during the run; the ratio Herald / raw; and the ratio of the raw loop's
// CPU per push, all processes, to Herald's: the rate ratio a machine that
// every process keeps busy (both paths here) cannot exceed.
// Needs ClickHouse and Redis (bash scripts/services.sh); uses its own
// database, dropped at the end.
//
//	go run ./bench/send -pushes 20000 -runs 3 -concurrency 200
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

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
	var c config
	flag.IntVar(&c.pushes, "pushes", 20000, "pushes per run (one device per person)")
	flag.IntVar(&c.runs, "runs", 3, "runs of each path per platform mix, alternating; the median is reported")
	flag.IntVar(&c.concurrency, "concurrency", 200, "worker concurrency, and the raw loop's goroutines")
	flag.StringVar(&c.chAddr, "clickhouse", "127.0.0.1:9000", "ClickHouse address")
	flag.StringVar(&c.redisAddr, "redis", "127.0.0.1:6379", "Redis address")
	flag.StringVar(&c.state, "clickhouse-state", ".data/clickhouse/state.json", "the embedded ClickHouse's state file (its pids); CPU shows n/a without it")
	flag.StringVar(&c.mixes, "mixes", "ios,android,mix", "platform mixes to run: ios, android, mix (50/50)")
	flag.IntVar(&c.batch, "batch", 0, "people per broadcast fan-out task (Herald's default when 0)")
	flag.DurationVar(&c.eventInterval, "event-interval", 0, "the event consumer's poll interval (Herald's default when 0)")
	flag.DurationVar(&c.maxDelay, "event-max-delay", 0, "the longest buffered events wait for a larger insert (Herald's default when 0)")
	flag.DurationVar(&c.pollInterval, "poll-interval", 0, "how often an idle worker looks for tasks (Herald's default, 1s, when 0; asynq polls Redis at this rate)")
	flag.StringVar(&c.profile, "cpuprofile", "", "write a CPU profile of the last end-to-end run of the last mix to this file")
	simulator := flag.String("simulator", "", "internal: run the apns or fcm simulator and print its details (used by the benchmark itself)")
	flag.Parse()
	if *simulator != "" {
		if err := serveSimulator(*simulator); err != nil {
			fmt.Fprintln(os.Stderr, "simulator:", err)
			os.Exit(1)
		}
		return
	}
	if c.pushes < 1 || c.runs < 1 || c.concurrency < 1 {
		fmt.Fprintln(os.Stderr, "bench: -pushes, -runs and -concurrency must be positive")
		os.Exit(2)
	}
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	pushes, runs, concurrency             int
	chAddr, redisAddr, state, mixes       string
	profile                               string
	eventInterval, maxDelay, pollInterval time.Duration
	batch                                 int
}

// simInfo is what a simulator process prints on its first line.
type simInfo struct {
	URL, TokenURL string
	CAPEM         []byte // APNS: the simulator's CA
	P8            []byte // APNS: a token key it trusts
	ServiceAcct   []byte // FCM: a service account it trusts
}

// serveSimulator runs one simulator until stdin closes (the benchmark
// ended) or a signal comes.
func serveSimulator(kind string) error {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var info simInfo
	var closeFn func()
	switch kind {
	case "apns":
		s := apnssim.New(logger)
		if err := s.Start("127.0.0.1:0"); err != nil {
			return err
		}
		p8, err := s.NewTokenKey("BENCHTEAM1", "BENCHKEY01")
		if err != nil {
			return err
		}
		info, closeFn = simInfo{URL: s.URL(), CAPEM: s.CACertPEM(), P8: p8}, s.Close
	case "fcm":
		s := fcmsim.New(logger)
		if err := s.Start("127.0.0.1:0"); err != nil {
			return err
		}
		sa, err := s.NewServiceAccount("herald-bench")
		if err != nil {
			return err
		}
		info, closeFn = simInfo{URL: s.URL(), TokenURL: s.TokenURL(), ServiceAcct: sa}, s.Close
	default:
		return fmt.Errorf("unknown simulator %q (apns or fcm)", kind)
	}
	defer closeFn()
	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-done:
	case <-sig:
	}
	return nil
}

// startSimulator starts this binary as a simulator process; pid is its.
func startSimulator(kind string) (info simInfo, pid int, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return simInfo{}, 0, nil, err
	}
	cmd := exec.Command(self, "-simulator", kind)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return simInfo{}, 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return simInfo{}, 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return simInfo{}, 0, nil, err
	}
	stop = func() { _ = stdin.Close(); _ = cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &info)
	}
	if err != nil {
		stop()
		return simInfo{}, 0, nil, fmt.Errorf("%s simulator: %w", kind, err)
	}
	return info, cmd.Process.Pid, stop, nil
}

// procCPU is a process's utime+stime from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command's closing parenthesis: state is field 3,
	// utime 14, stime 15 (clock ticks of 1/100 s on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// meters reads the CPU of Redis, ClickHouse and the simulators; a pid it
// cannot find reads as -1.
type meters struct {
	redisPID int
	state    string
	simPIDs  []int
}

func (m meters) chPIDs() []int {
	b, err := os.ReadFile(m.state)
	if err != nil {
		return nil
	}
	var st struct {
		Supervisor int `json:"supervisor_pid"`
		Engine     int `json:"engine_pid"`
	}
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	var out []int
	for _, p := range []int{st.Supervisor, st.Engine} {
		if p > 0 {
			out = append(out, p)
		}
	}
	return out
}

func (m meters) sample() (redisCPU, chCPU, simCPU time.Duration) {
	redisCPU, chCPU = -1, -1
	if m.redisPID > 0 {
		redisCPU = cpuOf([]int{m.redisPID})
	}
	if pids := m.chPIDs(); len(pids) == 2 {
		chCPU = cpuOf(pids)
	}
	return redisCPU, chCPU, cpuOf(m.simPIDs)
}

// cpuOf is the processes' CPU together; -1 when one cannot be read.
func cpuOf(pids []int) time.Duration {
	var sum time.Duration
	for _, p := range pids {
		c, err := procCPU(p)
		if err != nil {
			return -1
		}
		sum += c
	}
	return sum
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss is this process's resident set size.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// result is one run of one path.
type result struct {
	wall                  time.Duration
	self, redisCPU, chCPU time.Duration // -1: unknown
	simCPU                time.Duration // the simulators' processes; -1: unknown
	peakRSS               uint64
}

// measure runs f and what it cost: wall time, CPU here, in Redis and in
// ClickHouse, and the peak RSS here (sampled every 20 ms).
func (m meters) measure(f func() error) (result, error) {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if r := rss(); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	r0, c0, m0 := m.sample()
	s0, t0 := selfCPU(), time.Now()
	err := f()
	res := result{wall: time.Since(t0), self: selfCPU() - s0}
	r1, c1, m1 := m.sample()
	close(stop)
	wg.Wait()
	res.peakRSS = peak.Load()
	res.redisCPU, res.chCPU, res.simCPU = -1, -1, -1
	if m0 >= 0 && m1 >= 0 {
		res.simCPU = m1 - m0
	}
	if r0 >= 0 && r1 >= 0 {
		res.redisCPU = r1 - r0
	}
	if c0 >= 0 && c1 >= 0 {
		res.chCPU = c1 - c0
	}
	return res, err
}

// mix is a platform mix: which pushes go to Android.
type mix struct {
	name      string
	androidOf func(i int) bool
}

var mixes = map[string]mix{
	"ios":     {"iOS only", func(int) bool { return false }},
	"android": {"Android only", func(int) bool { return true }},
	"mix":     {"50/50 mix", func(i int) bool { return i%2 == 1 }},
}

func run(ctx context.Context, c config) error {
	var chosen []string
	for _, name := range strings.Split(c.mixes, ",") {
		if _, ok := mixes[name]; !ok {
			return fmt.Errorf("-mixes: unknown mix %q (ios, android, mix)", name)
		}
		chosen = append(chosen, name)
	}
	apnsInfo, apnsPID, stopAPNS, err := startSimulator("apns")
	if err != nil {
		return err
	}
	defer stopAPNS()
	fcmInfo, fcmPID, stopFCM, err := startSimulator("fcm")
	if err != nil {
		return err
	}
	defer stopFCM()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(apnsInfo.CAPEM) {
		return errors.New("apns simulator: no CA certificate")
	}
	apnsCreds := providers.APNSCredentials{KeyID: "BENCHKEY01", TeamID: "BENCHTEAM1", BundleID: "com.example.bench", P8: string(apnsInfo.P8)}
	fcmCreds := providers.FCMCredentials{ServiceAccountJSON: string(fcmInfo.ServiceAcct)}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	db := "herald_bench_send_" + hex.EncodeToString(b)
	key, _ := secret.ParseKey(secret.NewKey())
	a, err := app.Open(ctx, app.Config{ClickHouseAddr: c.chAddr, ClickHouseDatabase: db, RedisAddr: c.redisAddr, RedisDB: 13,
		Concurrency: c.concurrency, PollInterval: c.pollInterval, RetryBase: 50 * time.Millisecond,
		APNSHost: apnsInfo.URL, APNSRootCAs: roots, FCMEndpoint: fcmInfo.URL, FCMTokenURIs: []string{fcmInfo.TokenURL},
		SecretKey: key, SendRate: -1, ReportRate: -1, EventInterval: c.eventInterval, EventMaxDelay: c.maxDelay, BroadcastBatch: c.batch}, logger)
	if err != nil {
		return fmt.Errorf("%w (start the services with bash scripts/services.sh)", err)
	}
	defer func() {
		_ = a.CH.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		_ = a.Redis.FlushDB(ctx).Err()
		a.Close()
	}()
	if err := a.Redis.FlushDB(ctx).Err(); err != nil {
		return err
	}
	m := meters{state: c.state, redisPID: redisPID(ctx, a.Redis), simPIDs: []int{apnsPID, fcmPID}}
	var version string
	_ = a.CH.QueryRow(ctx, "SELECT version()").Scan(&version)

	// The raw loop's clients, made once as a sender keeps them.
	ios, err := providers.NewAPNS(apnsCreds, providers.APNSOptions{Host: apnsInfo.URL, RootCAs: roots})
	if err != nil {
		return err
	}
	android, err := providers.NewFCM(ctx, fcmCreds, providers.FCMOptions{Endpoint: fcmInfo.URL, TokenURIs: []string{fcmInfo.TokenURL}})
	if err != nil {
		return err
	}
	w, err := a.StartWorker()
	if err != nil {
		return err
	}
	defer w.Shutdown()

	type row struct {
		mix      string
		raw, e2e []result
		work     counters // ClickHouse's work in the last end-to-end run
	}
	var rows []row
	for mi, name := range chosen {
		mx := mixes[name]
		ws := "ws_bench_send_" + name
		if err := setUp(ctx, a, ws, c.pushes, mx, apnsCreds, fcmCreds); err != nil {
			return err
		}
		r := row{mix: mx.name}
		for i := range c.runs {
			rawRun := func() error {
				res, err := m.measure(func() error { return rawLoop(ctx, ios, android, c.pushes, c.concurrency, mx) })
				if err != nil {
					return err
				}
				r.raw = append(r.raw, res)
				fmt.Fprintf(os.Stderr, "  %s, run %d: raw loop %.0f pushes/s\n", mx.name, i+1, float64(c.pushes)/res.wall.Seconds())
				return nil
			}
			e2eRun := func() error {
				prof := c.profile != "" && mi == len(chosen)-1 && i == c.runs-1
				ev0 := chEvents(ctx, a)
				res, err := m.measure(func() error { return endToEnd(ctx, a, ws, c.pushes, prof, c.profile) })
				if err != nil {
					return err
				}
				r.work = chEvents(ctx, a).minus(ev0)
				r.e2e = append(r.e2e, res)
				fmt.Fprintf(os.Stderr, "  %s, run %d: Herald %.0f pushes/s\n", mx.name, i+1, float64(c.pushes)/res.wall.Seconds())
				return nil
			}
			first, second := rawRun, e2eRun
			if i%2 == 1 {
				first, second = e2eRun, rawRun
			}
			if err := first(); err != nil {
				return err
			}
			if err := second(); err != nil {
				return err
			}
		}
		rows = append(rows, r)
	}

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("Send path, %d pushes a run, %d runs of each path per mix, alternating; medians. ClickHouse %s; %d goroutines / worker concurrency; simulators in their own processes; load average %s at the end.\n\n",
		c.pushes, c.runs, version, c.concurrency, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Println("| mix | path | pushes/s | CPU-µs per push here | Redis | ClickHouse | total | simulators | all processes | peak RSS MB | Herald / raw | raw / Herald, all processes |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	n := float64(c.pushes)
	for _, r := range rows {
		rate := func(rs []result) float64 { return median(rs, func(x result) float64 { return n / x.wall.Seconds() }) }
		per := func(rs []result, f func(result) time.Duration) (float64, bool) {
			if slices.ContainsFunc(rs, func(x result) bool { return f(x) < 0 }) {
				return 0, false
			}
			return median(rs, func(x result) float64 { return float64(f(x).Microseconds()) / n }), true
		}
		var rawAll float64
		for _, p := range []struct {
			name string
			rs   []result
		}{{"raw apns2/firebase loop", r.raw}, {"Herald end to end", r.e2e}} {
			self, _ := per(p.rs, func(x result) time.Duration { return x.self })
			rd, okR := per(p.rs, func(x result) time.Duration { return x.redisCPU })
			chc, okC := per(p.rs, func(x result) time.Duration { return x.chCPU })
			sims, okS := per(p.rs, func(x result) time.Duration { return x.simCPU })
			all := self + rd + chc + sims
			cell := func(v float64, ok bool) string {
				if !ok {
					return "n/a"
				}
				return fmt.Sprintf("%.0f", v)
			}
			ratio, bound := "", ""
			if p.name == "Herald end to end" {
				ratio = fmt.Sprintf("%.2f×", rate(r.e2e)/rate(r.raw))
				if okR && okC && okS {
					bound = fmt.Sprintf("%.2f×", rawAll/all)
				}
			} else {
				rawAll = all
			}
			fmt.Printf("| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %.0f | %s | %s |\n", r.mix, p.name, rate(p.rs), self, cell(rd, okR), cell(chc, okC),
				cell(self+rd+chc, okR && okC), cell(sims, okS), cell(all, okR && okC && okS),
				median(p.rs, func(x result) float64 { return float64(x.peakRSS) / (1 << 20) }), ratio, bound)
		}
	}
	fmt.Println("\nClickHouse's work per push in the last end-to-end run of each mix (system.events):")
	fmt.Println("\n| mix | SELECT queries | INSERT queries | rows inserted | rows selected | rows merged | merges | query CPU-µs (user) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		w := r.work
		fmt.Printf("| %s | %.4f | %.4f | %.2f | %.1f | %.1f | %.4f | %.0f |\n", r.mix, w["SelectQuery"]/n, w["InsertQuery"]/n, w["InsertedRows"]/n,
			w["SelectedRows"]/n, w["MergedRows"]/n, w["Merge"]/n, w["UserTimeMicroseconds"]/n)
	}
	return nil
}

// counters are some of ClickHouse's system.events.
type counters map[string]float64

func chEvents(ctx context.Context, a *app.App) counters {
	out := counters{}
	rows, err := a.CH.Query(ctx, "SELECT event, value FROM system.events WHERE event IN ('SelectQuery', 'InsertQuery', 'InsertedRows', 'SelectedRows', 'MergedRows', 'Merge', 'UserTimeMicroseconds')")
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v uint64
		if rows.Scan(&k, &v) == nil {
			out[k] = float64(v)
		}
	}
	return out
}

func (c counters) minus(o counters) counters {
	out := counters{}
	for k, v := range c {
		out[k] = v - o[k]
	}
	return out
}

func median(rs []result, f func(result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// redisPID is the Redis server's pid (INFO server), or 0.
func redisPID(ctx context.Context, rdb *redis.Client) int {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	return 0
}

// rawLoop sends n pushes from g goroutines with the clients alone.
func rawLoop(ctx context.Context, ios, android providers.Sender, n, g int, mx mix) error {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				s := ios
				if mx.androidOf(i) {
					s = android
				}
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				r := s.Send(pctx, providers.Push{DeliveryID: uuid.NewString(), Token: sim.Token("c0", i), Title: "Hello", Body: "Bench"})
				cancel()
				if r.Outcome != providers.Accepted {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("raw loop: %d pushes not accepted", f)
	}
	return nil
}

// setUp gives workspace ws credentials, n people with one device each of
// mix's platforms, a campaign and a message.
func setUp(ctx context.Context, a *app.App, ws string, n int, mx mix, apnsCreds providers.APNSCredentials, fcmCreds providers.FCMCredentials) error {
	for _, c := range []struct {
		platform string
		v        any
	}{{"IOS", apnsCreds}, {"ANDROID", fcmCreds}} {
		raw, _ := json.Marshal(c.v)
		if err := a.Store.PutCredentials(ctx, ws, c.platform, a.Secrets.Seal(raw, jobs.CredentialsAAD(ws, c.platform))); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "%s: %d people with one device each…\n", mx.name, n)
	pb, err := a.CH.PrepareBatch(ctx, "INSERT INTO persons (workspace_id, id, attributes, unsubscribed, created_at, updated_at)")
	if err != nil {
		return err
	}
	db, err := a.CH.PrepareBatch(ctx, "INSERT INTO devices (workspace_id, person_id, token, platform, last_used, attributes, state, removed, updated_at)")
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for i := range n {
		id := fmt.Sprintf("p%07d", i)
		if err := pb.Append(ws, id, `{"first_name":"P"}`, uint8(0), now, now); err != nil {
			return err
		}
		platform := "IOS"
		if mx.androidOf(i) {
			platform = "ANDROID"
		}
		if err := db.Append(ws, id, sim.Token("be", i), platform, now, "{}", "ok", uint8(0), now); err != nil {
			return err
		}
	}
	if err := pb.Send(); err != nil {
		return err
	}
	if err := db.Send(); err != nil {
		return err
	}
	camp, _ := uuid.NewV7()
	if err := a.Store.CreateCampaign(ctx, clickhouse.Campaign{WorkspaceID: ws, ID: camp, Name: "bench", CreatedAt: now}); err != nil {
		return err
	}
	msgID, _ := uuid.NewV7()
	return a.Store.CreateMessage(ctx, clickhouse.Message{WorkspaceID: ws, ID: msgID, CampaignID: camp, Name: "bench",
		Title: "Hello {{ customer.first_name | default: \"you\" }}", Body: "Bench", Badge: -1, Data: "{}", CreatedAt: now})
}

// endToEnd broadcasts ws's message to everyone and waits until every
// push's sent event is queryable in ClickHouse.
func endToEnd(ctx context.Context, a *app.App, ws string, n int, profile bool, path string) error {
	var msgID uuid.UUID
	if err := a.CH.QueryRow(ctx, "SELECT id FROM push_messages WHERE workspace_id = ? LIMIT 1", ws).Scan(&msgID); err != nil {
		return err
	}
	if profile {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	const eventsPerPush = 2
	t0 := time.Now()
	bid, _ := uuid.NewV7()
	since := clickhouse.DeliveryTime(bid).Add(-time.Millisecond)
	if err := a.Store.CreateBroadcast(ctx, clickhouse.Broadcast{WorkspaceID: ws, ID: bid, MessageID: msgID, Audience: "ALL_DEVICES", AllPersons: true, Data: "{}", Total: uint64(n), CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	if err := jobs.NewQueue(a.Asynq, a.Redis).Broadcast(ctx, ws, bid.String(), time.Time{}); err != nil {
		return err
	}
	// The event writer's own count (Redis only) says when the events are
	// in (two a push: targeted, and sent carrying its attempt); then one
	// query checks every push's sent event is queryable. (A query per poll
	// would put its own cost in ClickHouse's column.)
	st0, err := a.Events.Stats(ctx)
	if err != nil {
		return err
	}
	last := time.Now()
	for {
		st, err := a.Events.Stats(ctx)
		if err != nil {
			return err
		}
		if st.Inserted-st0.Inserted >= uint64(eventsPerPush*n) && st.Length == 0 {
			var sent uint64
			if err := a.CH.QueryRow(ctx, "SELECT uniqExact(delivery_id, device_index) FROM events WHERE workspace_id = ? AND delivery_created >= ? AND kind = 'sent'",
				ws, since).Scan(&sent); err != nil {
				return err
			}
			if sent >= uint64(n) {
				return nil
			}
		}
		if time.Since(last) > 2*time.Second {
			fmt.Fprintf(os.Stderr, "    %d events of %d pushes recorded (%.0f pushes/s)\n", st.Inserted-st0.Inserted, n, float64(st.Inserted-st0.Inserted)/eventsPerPush/time.Since(t0).Seconds())
			last = time.Now()
		}
		if time.Since(t0) > 10*time.Minute {
			return fmt.Errorf("only %d events of %d pushes recorded after 10 minutes", st.Inserted-st0.Inserted, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

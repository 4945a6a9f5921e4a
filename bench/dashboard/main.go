// Command dashboard measures the time to an interactive campaign overview
// in the dashboard, in Debian's headless Chromium, on the analytics
// benchmark's largest campaign (970k deliveries, 7M events by default):
// it serves Herald (the API and the embedded app, in this process) on the
// database `go run ./bench/analytics -keep` left, signs in with a new key of
// the benchmark's workspace and opens /campaigns/<largest> -runs times,
// each in a new browser (an empty cache: a first visit; the browser
// started 3 s before, as a person's is running already), then -runs times
// reloaded in the same tab (assets cached). From the browser's own
// performance timing (navigation timing, resource timing of /graphql, and
// the app's performance marks herald:overview-shown and herald:chart-drawn)
// it prints each run and the medians: DOMContentLoaded, the overview's
// GraphQL request, figures on the page, the chart drawn, and the gzipped
// JavaScript and CSS the first load fetched. The target: the chart drawn
// (the page complete) ≤ 1 s.
//
//	go run ./bench/analytics -keep -runs 1   # once: load the data set
//	go run ./bench/dashboard -runs 5
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/web"
)

// The analytics benchmark's workspace and its load marker.
const (
	workspace    = "ws_bench_analytics"
	selectMarker = `SELECT largest FROM bench_loaded ORDER BY deliveries DESC LIMIT 1`
)

func main() {
	runs := flag.Int("runs", 5, "page loads of each kind (first visit, reload); the median is reported")
	database := flag.String("database", "herald_bench_analytics", "the database go run ./bench/analytics -keep left")
	addr := flag.String("clickhouse", clickhouse.DefaultAddr, "ClickHouse native address")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	redisDB := flag.Int("redis-db", 14, "Redis database for this run's Herald (its keys are left)")
	flag.Parse()
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "dashboard: -runs must be positive")
		os.Exit(2)
	}
	if err := run(context.Background(), *runs, *database, *addr, *redisAddr, *redisDB); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// timing is one page load as the browser measured it, in milliseconds
// from the navigation's start.
type timing struct {
	DOMContentLoaded float64 `json:"dcl"`
	GraphQL          float64 `json:"graphql"` // the overview query's duration
	Shown            float64 `json:"shown"`   // herald:overview-shown
	Chart            float64 `json:"chart"`   // herald:chart-drawn
	Buckets          int     `json:"buckets"`
	Delivered        string  `json:"delivered"`
}

// settle is the pause between starting a browser and the first visit.
const settle = 3 * time.Second

// measure waits for the chart and reads the page's performance entries.
const measure = `(() => {
  const nav = performance.getEntriesByType('navigation')[0]
  const mark = (n) => { const m = performance.getEntriesByName(n)[0]; return m ? m.startTime : -1 }
  // The page's first /graphql request is the overview's.
  const gql = performance.getEntriesByType('resource').filter((r) => r.name.endsWith('/graphql'))[0]
  const c = document.querySelector('.chart')
  const d = document.querySelector('[data-figure=delivered] .value')
  return { dcl: nav.domContentLoadedEventEnd, graphql: gql ? gql.duration : -1, shown: mark('herald:overview-shown'),
    chart: mark('herald:chart-drawn'), buckets: c && c.uplot ? c.uplot.data[0].length : 0, delivered: d ? d.textContent : '' }
})()`

func run(ctx context.Context, runs int, database, addr, redisAddr string, redisDB int) error {
	if !web.Built() {
		return errors.New("the dashboard is not built into this binary: run bash scripts/web.sh, then this command again")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return errors.New("chromium is not installed: apt-get install chromium (scripts/test.sh does)")
	}
	conn, err := clickhouse.Open(ctx, clickhouse.Options{Addr: addr, Database: database})
	if err != nil {
		return fmt.Errorf("%w (start ClickHouse with bash scripts/services.sh)", err)
	}
	var largest uuid.UUID
	err = conn.QueryRow(ctx, selectMarker).Scan(&largest)
	conn.Close()
	if err != nil {
		return fmt.Errorf("no data set in %s (%v): run go run ./bench/analytics -keep -runs 1 first", database, err)
	}

	key, err := secret.ParseKey(secret.NewKey())
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.Open(ctx, app.Config{ClickHouseAddr: addr, ClickHouseDatabase: database, RedisAddr: redisAddr, RedisDB: redisDB, SecretKey: key}, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	apiKey, hash := server.NewAPIKey()
	// A new version of the benchmark's workspace row with a key of ours.
	if err := a.Store.CreateWorkspace(ctx, clickhouse.Workspace{ID: workspace, Name: "analytics benchmark", KeyHash: hash, SiteID: server.NewSiteID(), CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := a.HTTPServer()
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	page := base + "/campaigns/" + largest.String() + "?granularity=DAY"
	js, css, err := firstLoadWeight(base)
	if err != nil {
		return err
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.WindowSize(1280, 900))
	// load opens the page (or reloads it) and waits for the chart.
	load := func(tab context.Context, reload bool) (timing, error) {
		tctx, cancel := context.WithTimeout(tab, 60*time.Second)
		defer cancel()
		nav := chromedp.Navigate(page)
		if reload {
			nav = chromedp.Reload()
		}
		if err := chromedp.Do(tctx, nav, chromedp.WaitVisible(`.chart canvas`)); err != nil {
			return timing{}, fmt.Errorf("open %s: %w", page, err)
		}
		return chromedp.Run(tctx, chromedp.Evaluate[timing](measure))
	}
	var first, again []timing
	fmt.Fprintf(os.Stderr, "dashboard: Herald at %s, campaign %s; %d first visits, then %d reloads\n", base, largest, runs, runs)
	for i := range runs {
		actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
		tab, cancelTab := chromedp.NewContext(actx)
		// Sign in: the key in the tab's sessionStorage, as the sign-in form keeps it.
		err := chromedp.Do(tab, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#key`))
		if err == nil {
			_, err = chromedp.Run(tab, chromedp.Evaluate[bool](fmt.Sprintf(`(sessionStorage.setItem('herald.apiKey', %q), true)`, apiKey)))
		}
		// A browser just started keeps both cores busy for a moment; a
		// person's browser is running already when they open the page.
		time.Sleep(settle)
		var t timing
		if err == nil {
			t, err = load(tab, false)
		}
		if err == nil && i == runs-1 { // the reloads, in the last browser
			for range runs {
				var r timing
				if r, err = load(tab, true); err != nil {
					break
				}
				again = append(again, r)
				fmt.Fprintf(os.Stderr, "  reload: figures at %.0f ms, chart at %.0f ms\n", r.Shown, r.Chart)
			}
		}
		cancelTab()
		cancelAlloc()
		if err != nil {
			return err
		}
		first = append(first, t)
		fmt.Fprintf(os.Stderr, "  first visit %d: figures at %.0f ms, chart at %.0f ms\n", i+1, t.Shown, t.Chart)
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("Time to an interactive overview of campaign %s (delivered %s, %d day buckets), in Chromium (%s), Herald serving the database %s; load average %s.\n",
		largest, first[0].Delivered, first[0].Buckets, chromiumVersion(chromium), database, strings.Join(strings.Fields(string(load1))[:3], " "))
	fmt.Printf("First load's assets (gzip -9): %.1f KB JavaScript, %.1f KB CSS (uPlot and graphql-ws load after, on demand).\n\n", float64(js)/1024, float64(css)/1024)
	fmt.Println("| page load | runs | DOMContentLoaded ms | overview GraphQL request ms | figures on the page ms | chart drawn ms | target |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---|")
	for _, row := range []struct {
		name string
		ts   []timing
	}{{"first visit (new browser, empty cache)", first}, {"reload (assets cached)", again}} {
		chart := median(row.ts, func(t timing) float64 { return t.Chart })
		verdict := "≤ 1000 ms: met"
		if chart > 1000 {
			verdict = "≤ 1000 ms: missed"
		}
		fmt.Printf("| %s | %d | %.0f | %.0f | %.0f | %.0f | %s |\n", row.name, len(row.ts),
			median(row.ts, func(t timing) float64 { return t.DOMContentLoaded }),
			median(row.ts, func(t timing) float64 { return t.GraphQL }),
			median(row.ts, func(t timing) float64 { return t.Shown }), chart, verdict)
	}
	return nil
}

func median(ts []timing, f func(timing) float64) float64 {
	var xs []float64
	for _, t := range ts {
		xs = append(xs, f(t))
	}
	slices.Sort(xs)
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)/2]
}

// firstLoadWeight fetches index.html and the scripts and style sheets it
// links, and returns their sizes gzipped at level 9.
func firstLoadWeight(base string) (js, css int, err error) {
	body, err := get(base + "/")
	if err != nil {
		return 0, 0, err
	}
	for _, part := range strings.Split(string(body), `"`) {
		if !strings.HasPrefix(part, "/assets/") {
			continue
		}
		b, err := get(base + part)
		if err != nil {
			return 0, 0, err
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		_, _ = w.Write(b)
		_ = w.Close()
		switch {
		case strings.HasSuffix(part, ".js"):
			js += z.Len()
		case strings.HasSuffix(part, ".css"):
			css += z.Len()
		}
	}
	return js, css, nil
}

func get(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func chromiumVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "chromium"
	}
	v := strings.TrimSpace(string(out))
	if i := strings.Index(v, " built"); i > 0 {
		v = v[:i]
	}
	return v
}

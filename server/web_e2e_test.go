package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/providers/sim"
	"github.com/heraldpush/herald/web"
)

// browser starts Debian's headless Chromium (the flags this machine needs:
// no sandbox as root, no GPU, no background requests) and returns a tab's
// context, closed at the end of the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	if !web.Built() {
		t.Fatal("the dashboard is not built into this test binary: run bash scripts/web.sh (scripts/test.sh does)")
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: apt-get install chromium (scripts/test.sh does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

// shot saves the page as name-1280.png and name-390.png (a desktop and a
// phone width, the whole page) in the folder HERALD_SCREENSHOTS names, when
// it is set (docs/screenshots holds the README's: HERALD_SCREENSHOTS=$PWD/docs/screenshots
// bash scripts/test.sh -run TestWeb); the test's own window is 1280 wide
// again afterwards.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("HERALD_SCREENSHOTS")
	if dir == "" {
		return
	}
	for _, w := range []int64{1280, 390} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, 800), chromedp.Sleep(300*time.Millisecond)); err != nil {
			t.Fatalf("screenshot %s at %d px: %v", name, w, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s at %d px: %v", name, w, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, w)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
}

// TestWebSignIn drives the dashboard in Chromium: a bad key says so and
// stays on the sign-in page; the workspace's key shows its campaigns with
// their headline numbers; signing out forgets the key.
func TestWebSignIn(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.workspace("web")
	c.mustDo(`mutation { createCampaign(input: {name: "Spring sale"}) { id } }`, nil)
	ctx := browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.http.URL+"/"),
		chromedp.WaitVisible(`#key`),
		chromedp.SendKeys(`#key`, "hk_not_a_key"),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`.error`),
	); err != nil {
		t.Fatalf("sign in with a bad key: %v", err)
	}
	if got := text(t, ctx, `.error`); !strings.Contains(got, "not valid") {
		t.Errorf("bad key message = %q, want one saying the key is not valid", got)
	}
	shot(t, ctx, "sign-in")

	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.http.URL+"/"), // a fresh form
		chromedp.WaitVisible(`#key`),
		chromedp.SendKeys(`#key`, c.key),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`table.campaigns td.name`),
	); err != nil {
		t.Fatalf("sign in with the workspace key: %v", err)
	}
	if name, sends := text(t, ctx, `table.campaigns td.name`), text(t, ctx, `table.campaigns tbody tr td:nth-child(2)`); name != "Spring sale" || sends != "0" {
		t.Errorf("campaign row = %q with %q sends, want \"Spring sale\" with 0", name, sends)
	}
	if stored := storedKey(t, ctx); stored != c.key {
		t.Errorf("the key is not kept for the tab (sessionStorage has %q)", stored)
	}
	shot(t, ctx, "campaigns")

	if err := chromedp.Do(ctx, chromedp.Click(`button.signout`), chromedp.WaitVisible(`#key`)); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	if stored := storedKey(t, ctx); stored != "" {
		t.Errorf("after sign out sessionStorage still has the key")
	}
}

// signIn opens url and signs in with key.
func signIn(t *testing.T, ctx context.Context, url, key string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(`#key`), chromedp.SendKeys(`#key`, key),
		chromedp.Click(`button[type=submit]`)); err != nil {
		t.Fatalf("sign in at %s: %v", url, err)
	}
}

// text is the text of the first element sel matches.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// storedKey is the API key the page keeps for the tab.
func storedKey(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem('herald.apiKey') || ''`))
	if err != nil {
		t.Fatalf("read sessionStorage: %v", err)
	}
	return s
}

// TestWebOverview: a hand-built campaign (one push sent and delivered, one
// bounced, one to an unsubscribed person) shows on its overview page the
// same funnel, rates, device totals and failures as GraphQL's overview,
// and the by-hour table has GraphQL's buckets.
func TestWebOverview(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("web-overview"))
	ok, bad := sim.Token("0ea1", 1), sim.Token("badd", 3)
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", ok, time.Now().Add(-time.Minute))
	c.person("p2", vars{"first_name": "Bo"}, false)
	c.device("p2", "ANDROID", bad, time.Now().Add(-time.Minute))
	c.person("p3", vars{"first_name": "Cy"}, true)
	msg := c.message("Hi {{ customer.first_name }}", "Sale")
	camp := get(c.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { id } } }`, vars{"id": msg}), "pushMessage", "campaign", "id").(string)
	var sent string
	for _, p := range []string{"p1", "p2", "p3"} {
		id := c.send(msg, p, "ALL_DEVICES", "")
		if d := c.waitFinal(id); p == "p1" {
			sent = d.ID
		}
	}
	c.mustDo(`mutation($in: ReportPushMetricInput!) { reportPushMetric(input: $in) }`, vars{"in": vars{"deliveryId": sent, "metric": "DELIVERED", "deviceToken": ok}})
	// The overview reads ClickHouse, which the report reaches a moment after
	// the delivery's status shows it: wait for it there.
	const overview = `query($id: ID!) { campaign(id: $id) { overview(granularity: HOUR) { created sends recipients delivered opened converted
		deliveryRate openRate conversionRate bounceRate devices { targeted sent bounced delivered } failuresByReason { reason count } series { start } } } }`
	var o map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if o = get(c.mustDo(overview, vars{"id": camp}), "campaign", "overview").(map[string]any); o["delivered"] == 1.0 {
			break
		}
	}
	if o["delivered"] != 1.0 || o["created"] != 3.0 {
		t.Fatalf("the hand-built campaign's GraphQL overview: %v", o)
	}

	ctx := browser(t)
	signIn(t, ctx, e.http.URL+"/", c.key)
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`table.campaigns td.name a`),
		chromedp.Click(`table.campaigns td.name a`),
		chromedp.WaitVisible(`.funnel`),
	); err != nil {
		t.Fatalf("open the overview: %v", err)
	}
	for _, k := range []string{"created", "sends", "recipients", "delivered", "opened", "converted"} {
		if got, want := text(t, ctx, `[data-figure=`+k+`] .value`), fmt.Sprint(o[k]); got != want {
			t.Errorf("page %s = %q, GraphQL %s", k, got, want)
		}
	}
	for k, rate := range map[string]string{"sends": "bounceRate", "delivered": "deliveryRate", "opened": "openRate", "converted": "conversionRate"} {
		want := fmt.Sprintf("%.1f %%", o[rate].(float64)*100)
		if got := text(t, ctx, `[data-rate=`+k+`]`); !strings.HasPrefix(got, want) {
			t.Errorf("page %s = %q, want GraphQL's %s", rate, got, want)
		}
	}
	devs := o["devices"].(map[string]any)
	for _, k := range []string{"targeted", "sent", "bounced", "delivered"} {
		if got, want := text(t, ctx, `[data-device=`+k+`]`), fmt.Sprint(devs[k]); got != want {
			t.Errorf("page devices.%s = %q, GraphQL %s", k, got, want)
		}
	}
	for _, f := range o["failuresByReason"].([]any) {
		f := f.(map[string]any)
		if got, want := text(t, ctx, fmt.Sprintf(`[data-failure=%q]`, f["reason"])), fmt.Sprint(f["count"]); got != want {
			t.Errorf("page failures %q = %q, GraphQL %s", f["reason"], got, want)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Click(`a[href$="granularity=HOUR"]`), chromedp.WaitVisible(`table.series`)); err != nil {
		t.Fatalf("by hour: %v", err)
	}
	// The page refetches by hour: wait for its table to settle on the answer.
	want, rows := len(o["series"].([]any)), -1
	for deadline := time.Now().Add(5 * time.Second); rows != want && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector('.loading') ? -1 : document.querySelectorAll('table.series tbody tr').length`))
		if err != nil {
			t.Fatal(err)
		}
		rows = n
	}
	if rows != want {
		t.Errorf("the by-hour table has %d rows, GraphQL %d buckets", rows, want)
	}
	// The chart (uPlot, loaded on demand) draws the same buckets.
	points := -1
	for deadline := time.Now().Add(5 * time.Second); points != want && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => { const c = document.querySelector('.chart'); return c && c.uplot && c.querySelector('canvas') ? c.uplot.data[0].length : -1 })()`))
		if err != nil {
			t.Fatal(err)
		}
		points = n
	}
	if points != want {
		t.Errorf("the chart draws %d buckets, GraphQL has %d", points, want)
	}
	shot(t, ctx, "overview")
	if u, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(u, "/campaigns/"+camp+"?granularity=HOUR") {
		t.Errorf("the URL is %s, want the campaign and granularity in it", u)
	}
}

// TestWebDeliveryLogs: the delivery logs list a workspace's deliveries
// newest first with their status badges; ticking FAILED filters the list
// and puts the filter in the URL (a link to it opens the same list); Retry
// on the FAILED row starts its next round, which the row shows and which
// then sends.
func TestWebDeliveryLogs(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("web-logs"))
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", sim.Token("0eb1", 1), time.Now().Add(-time.Minute))
	c.person("p2", vars{"first_name": "Bo"}, true)
	c.device("p2", "IOS", sim.Token("0eb2", 1), time.Now().Add(-time.Minute))
	msg := c.message("Hi", "Logs")
	sent := c.send(msg, "p1", "ALL_DEVICES", "")
	failed := c.send(msg, "p2", "ALL_DEVICES", "")
	c.waitFinal(sent)
	if d := c.waitFinal(failed); d.Status != "FAILED" {
		t.Fatalf("p2's delivery: %s, want FAILED (unsubscribed)", d.Status)
	}
	ctx := browser(t)
	rows := func() []string {
		t.Helper()
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('table.deliveries tbody tr')].map(r => r.dataset.delivery + ' ' + r.querySelector('[data-status]').textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	signIn(t, ctx, e.http.URL+"/", c.key)
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`nav a[href="/deliveries"]`),
		chromedp.Click(`nav a[href="/deliveries"]`),
		chromedp.WaitVisible(`table.deliveries`),
	); err != nil {
		t.Fatalf("open the delivery logs: %v", err)
	}
	shot(t, ctx, "delivery-logs")
	if got, want := rows(), []string{failed + " FAILED", sent + " SENT"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logs = %v, want newest first %v", got, want)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(`input[name=status][value=FAILED]`),
		chromedp.Click(`.filters button[type=submit]`),
		chromedp.WaitNotPresent(`tr[data-delivery="`+sent+`"]`),
		chromedp.WaitVisible(`tr[data-delivery="`+failed+`"]`),
	); err != nil {
		t.Fatalf("filter by FAILED: %v", err)
	}
	if got := rows(); len(got) != 1 || got[0] != failed+" FAILED" {
		t.Errorf("FAILED logs = %v, want only %s", got, failed)
	}
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasSuffix(u, "/deliveries?status=FAILED") {
		t.Errorf("the URL is %s (%v), want the filter in it", u, err)
	}
	// The link opens the same list in a fresh page.
	if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(`tr[data-delivery="`+failed+`"]`)); err != nil {
		t.Fatalf("open the filtered link: %v", err)
	}
	if got := rows(); len(got) != 1 {
		t.Errorf("the filtered link lists %v, want one row", got)
	}
	// A time range that ends an hour ago lists nothing, and goes in the URL
	// with the status filter.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const d = new Date(Date.now() - 3600e3), p = (n) => String(n).padStart(2, '0');
		return document.querySelector('input[name=to]').value = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()) })()`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`.filters button[type=submit]`), chromedp.WaitVisible(`.logs .empty`)); err != nil {
		t.Fatalf("filter by a past time range: %v", err)
	}
	if u, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(u, "status=FAILED") || !strings.Contains(u, "to=") {
		t.Errorf("the URL is %s, want the status and the time range in it", u)
	}
	// One that starts an hour ago lists the FAILED delivery again.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.http.URL+"/deliveries?status=FAILED&from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)),
		chromedp.WaitVisible(`tr[data-delivery="`+failed+`"]`)); err != nil {
		t.Fatalf("a time range from an hour ago: %v", err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('input[name=from]').value`)); err != nil || got == "" {
		t.Errorf("the from field shows %q (%v), want the URL's time", got, err)
	}

	c.person("p2", vars{"first_name": "Bo"}, false) // subscribed again, so the retry sends
	if err := chromedp.Do(ctx,
		chromedp.Click(`tr[data-delivery="`+failed+`"] button.retry`),
		chromedp.WaitVisible(`tr[data-delivery="`+failed+`"] [data-round="1"]`),
	); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if d := c.waitFinal(failed); d.Status != "SENT" {
		t.Errorf("after Retry: %s, want SENT in round 1", d.Status)
	}
}

// TestWebDeliveryDetail: a delivery's page (from its row in the logs)
// shows its status, each device with its token masked, platform, status
// and attempts, its rounds, and the push as rendered for the person; no
// full token is anywhere on the page.
func TestWebDeliveryDetail(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("web-detail"))
	ok, bad := sim.Token("0ec1", 1), sim.Token("badd", 4)
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", ok, time.Now().Add(-time.Minute))
	c.device("p1", "ANDROID", bad, time.Now().Add(-2*time.Minute))
	msg := c.message("Hi {{ customer.first_name }}", "Detail")
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("delivery: %s", d.Status)
	}
	ctx := browser(t)
	signIn(t, ctx, e.http.URL+"/deliveries", c.key)
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`tr[data-delivery="`+id+`"] a.person`),
		chromedp.Click(`tr[data-delivery="`+id+`"] a.person`),
		chromedp.WaitVisible(`.detail [data-push=title]`),
	); err != nil {
		t.Fatalf("open the delivery: %v", err)
	}
	if got := text(t, ctx, `.detail [data-status]`); got != "SENT" {
		t.Errorf("status badge %q, want SENT", got)
	}
	if got := text(t, ctx, `.detail [data-push=title]`); got != "Hi Ada" {
		t.Errorf("rendered title %q, want %q", got, "Hi Ada")
	}
	devs, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.detail table.devices tbody tr')].map(r => [...r.cells].slice(0, 4).map(c => c.textContent).join(' '))`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{ok[:6] + "…" + ok[len(ok)-4:] + " IOS SENT 1": true, bad[:6] + "…" + bad[len(bad)-4:] + " ANDROID BOUNCED 1": true}
	if len(devs) != 2 || !want[devs[0]] || !want[devs[1]] {
		t.Errorf("device rows %q, want %v", devs, want)
	}
	rounds, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('.detail ol.rounds li').length`))
	if err != nil || rounds != 1 {
		t.Errorf("rounds listed %d (%v), want 1", rounds, err)
	}
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, ok) || strings.Contains(html, bad) {
		t.Error("the page shows a full device token")
	}
	shot(t, ctx, "delivery")
	if u, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(u, "/deliveries/"+id) {
		t.Errorf("the URL is %s, want the delivery's", u)
	}
}

// TestWebLiveDelivery: the delivery page shows a status change (SENT →
// DELIVERED after the app's report) without a reload, over graphql-ws,
// within 2 s of the report; and the campaign overview's delivered figure
// follows without a reload too.
func TestWebLiveDelivery(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("web-live"))
	ok := sim.Token("0ed1", 1)
	c.person("p1", vars{"first_name": "Ada"}, false)
	c.device("p1", "IOS", ok, time.Now().Add(-time.Minute))
	msg := c.message("Hi {{ customer.first_name }}", "Live")
	camp := get(c.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { id } } }`, vars{"id": msg}), "pushMessage", "campaign", "id").(string)
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	if d := c.waitFinal(id); d.Status != "SENT" {
		t.Fatalf("delivery: %s", d.Status)
	}
	ctx := browser(t)
	signIn(t, ctx, e.http.URL+"/deliveries/"+id, c.key)
	// A marker in the page's JavaScript state: a reload would lose it.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`.detail .live`)); err != nil {
		t.Fatalf("open the delivery, live: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload = true`)); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, `.detail [data-status]`); got != "SENT" {
		t.Fatalf("status badge %q, want SENT", got)
	}
	reported := time.Now()
	c.mustDo(`mutation($in: ReportPushMetricInput!) { reportPushMetric(input: $in) }`, vars{"in": vars{"deliveryId": id, "metric": "DELIVERED", "deviceToken": ok}})
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(`.detail [data-status].delivered`)); err != nil {
		t.Fatalf("the page did not show DELIVERED within 2 s of the report: %v (badge %q)", err, text(t, ctx, `.detail [data-status]`))
	}
	t.Logf("DELIVERED on the page %v after the report", time.Since(reported).Round(time.Millisecond))
	if kept, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`)); err != nil || !kept {
		t.Errorf("the page reloaded (marker %v, %v)", kept, err)
	}

	// The overview, open before a second report arrives, follows it.
	c.person("p2", vars{"first_name": "Bo"}, false)
	ok2 := sim.Token("0ed2", 1)
	c.device("p2", "IOS", ok2, time.Now().Add(-time.Minute))
	id2 := c.send(msg, "p2", "ALL_DEVICES", "")
	c.waitFinal(id2)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.http.URL+"/campaigns/"+camp), chromedp.WaitVisible(`.overview .live`)); err != nil {
		t.Fatalf("open the overview, live: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload = true`)); err != nil {
		t.Fatal(err)
	}
	delivered := func() string { return text(t, ctx, `[data-figure=delivered] .value`) }
	for deadline := time.Now().Add(5 * time.Second); delivered() != "1" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if got := delivered(); got != "1" {
		t.Fatalf("overview delivered %q before the second report, want 1", got)
	}
	c.mustDo(`mutation($in: ReportPushMetricInput!) { reportPushMetric(input: $in) }`, vars{"in": vars{"deliveryId": id2, "metric": "DELIVERED", "deviceToken": ok2}})
	for deadline := time.Now().Add(5 * time.Second); delivered() != "2" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if got := delivered(); got != "2" {
		t.Errorf("overview delivered %q after the second report, want 2 (without a reload)", got)
	}
	if kept, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`)); err != nil || !kept {
		t.Errorf("the overview reloaded (marker %v, %v)", kept, err)
	}
}

// TestWebKeyboard: the dashboard works without a mouse: Tab reaches the
// key field, Enter signs in, Tab reaches the campaign's link and Enter
// opens its overview; the focused element is outlined.
func TestWebKeyboard(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.workspace("web-keys")
	c.mustDo(`mutation { createCampaign(input: {name: "Keys"}) { id } }`, nil)
	ctx := browser(t)
	focused := func() string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const a = document.activeElement; return a ? a.tagName.toLowerCase() + (a.id ? '#' + a.id : '') + (a.textContent ? ' ' + a.textContent.trim() : '') : '' })()`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// tabTo presses Tab until the focused element starts with want (at most 20 times).
	tabTo := func(want string) {
		t.Helper()
		for i := 0; i < 20 && !strings.HasPrefix(focused(), want); i++ {
			if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
				t.Fatal(err)
			}
		}
		if got := focused(); !strings.HasPrefix(got, want) {
			t.Fatalf("Tab never reached %q (focus on %q)", want, got)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.http.URL+"/"), chromedp.WaitVisible(`#key`)); err != nil {
		t.Fatal(err)
	}
	tabTo("input#key")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(c.key), chromedp.KeyEvent("\r"), chromedp.WaitVisible(`table.campaigns td.name a`)); err != nil {
		t.Fatalf("sign in by keyboard: %v", err)
	}
	tabTo("a Keys")
	outline, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.activeElement).outlineStyle`))
	if err != nil || outline == "none" {
		t.Errorf("the focused link has outline %q (%v), want one to see", outline, err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r"), chromedp.WaitVisible(`.funnel`)); err != nil {
		t.Fatalf("open the overview by keyboard: %v", err)
	}
}

// TestWebComposeAndBroadcast: a message written in the composer (a bad
// JSON field caught before sending, the API's refusal shown beside the
// field it names, then saved with options from three groups) is stored
// as typed; broadcast from its page to 40 people, the broadcast's page
// follows queued/done live to 40 of 40 without a reload, and every device
// got the rendered push once.
func TestWebComposeAndBroadcast(t *testing.T) {
	e := newEnv(t, envOptions{broadcastBatch: 4})
	c := e.withCredentials(e.workspace("web-compose"))
	camp := get(c.mustDo(`mutation { createCampaign(input: {name: "Launch"}) { id } }`, nil), "createCampaign", "id").(string)
	const n = 40
	tokens := make([]string, n)
	for i := range n {
		p := fmt.Sprintf("p%02d", i)
		c.person(p, vars{"first_name": fmt.Sprintf("P%d", i)}, false)
		tokens[i] = sim.Token("5101", i) // accepted after 1 s: the broadcast takes 2 s or more
		c.device(p, "IOS", tokens[i], time.Now().Add(-time.Minute))
	}
	ctx := browser(t)
	signIn(t, ctx, e.http.URL+"/messages", c.key)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`.messages .empty`), chromedp.Click(`a[href="/messages/new"]`), chromedp.WaitVisible(`#f-name`)); err != nil {
		t.Fatalf("open the composer: %v", err)
	}
	count := func() int {
		t.Helper()
		return len(get(c.mustDo(`{ pushMessages { edges { node { id } } } }`, nil), "pushMessages", "edges").([]any))
	}
	// Bad JSON in data: said beside the field, nothing sent.
	if err := chromedp.Do(ctx,
		chromedp.WaitReady(`#f-campaignId option[value="`+camp+`"]`), // the campaigns list loaded
		chromedp.SetValue(`#f-campaignId`, camp),
		chromedp.SendKeys(`#f-name`, "Spring launch"),
		chromedp.SendKeys(`#f-title`, "Hi {{ customer.first_name }}"),
		chromedp.SendKeys(`#f-body`, "It's here"),
		chromedp.SendKeys(`#f-data`, `{"screen": "launch"`),
		chromedp.Click(`.composer button[type=submit]`),
		chromedp.WaitVisible(`[data-error-for="input.data"]`),
	); err != nil {
		t.Fatalf("submit bad JSON: %v", err)
	}
	if got := text(t, ctx, `[data-error-for="input.data"]`); !strings.Contains(got, "not JSON") {
		t.Errorf("data's error = %q, want it to say it is not JSON", got)
	}
	if k := count(); k != 0 {
		t.Fatalf("a message with bad JSON was sent: %d messages", k)
	}
	// Silent with a title: the API refuses it, naming options.silent.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#f-data`, `{"screen": "launch"}`),
		chromedp.Click(`[name="options.silent"]`),
		chromedp.Click(`.composer button[type=submit]`),
		chromedp.WaitVisible(`[data-error-for="input.options.silent"]`),
	); err != nil {
		t.Fatalf("submit a silent push with a title: %v", err)
	}
	if got := text(t, ctx, `[data-error-for="input.options.silent"]`); !strings.Contains(got, "background push") {
		t.Errorf("silent's error = %q, want the API's reason", got)
	}
	if focused, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement && document.activeElement.name`)); focused != "options.silent" {
		t.Errorf("focus on %q after the refusal, want the field it names", focused)
	}
	if c.do(`{ pushMessages { edges { node { id } } } }`, nil); count() != 0 {
		t.Fatal("the refused message was stored")
	}
	shot(t, ctx, "composer")
	if err := chromedp.Do(ctx,
		chromedp.Click(`[name="options.silent"]`),
		chromedp.SetValue(`[name="options.priority"]`, "NORMAL"),
		chromedp.SendKeys(`[name="options.ttlSeconds"]`, "3600"),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelectorAll('.composer details').forEach(d => d.open = true), true)`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(`[name="options.subtitle"]`, "New"),
		chromedp.SendKeys(`[name="options.channelId"]`, "launches"),
		chromedp.Click(`.composer button[type=submit]`),
		chromedp.WaitVisible(`.message h2`),
	); err != nil {
		t.Fatalf("create the message: %v", err)
	}
	u, _ := chromedp.Run(ctx, chromedp.Location())
	msg := u[strings.LastIndex(u, "/")+1:]
	m := get(c.mustDo(`query($id: ID!) { pushMessage(id: $id) { name title body data campaign { id } options { silent priority ttlSeconds subtitle channelId } } }`, vars{"id": msg}), "pushMessage").(map[string]any)
	got := fmt.Sprintf("%v|%v|%v|%v|%v|%v", m["name"], m["title"], m["body"], m["data"], get(m, "campaign", "id"), m["options"])
	want := fmt.Sprintf("Spring launch|Hi {{ customer.first_name }}|It's here|map[screen:launch]|%s|map[channelId:launches priority:NORMAL silent:false subtitle:New ttlSeconds:3600]", camp)
	if got != want {
		t.Errorf("stored message = %s\nwant %s", got, want)
	}
	shot(t, ctx, "message")

	// Broadcast it from its page.
	if err := chromedp.Do(ctx, chromedp.Click(`a[href="/broadcast?message=`+msg+`"]`), chromedp.WaitVisible(`#b-message`)); err != nil {
		t.Fatalf("open the broadcast page: %v", err)
	}
	if v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#b-message').value`)); v != msg {
		t.Errorf("the broadcast page picked %q, want the message it came from (%s)", v, msg)
	}
	shot(t, ctx, "broadcast")
	if err := chromedp.Do(ctx, chromedp.Click(`.broadcast button[type=submit]`), chromedp.WaitVisible(`.broadcast-status .live`)); err != nil {
		t.Fatalf("send the broadcast: %v", err)
	}
	// Every value the page shows as done, and a marker a reload would lose.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		window.__noReload = true
		window.__dones = [document.querySelector('[data-figure=done] .value').textContent]
		new MutationObserver(() => window.__dones.push(document.querySelector('[data-figure=done] .value').textContent))
			.observe(document.querySelector('.broadcast-status'), { subtree: true, childList: true, characterData: true })
		return true })()`)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(`[data-state=finished]`)); err != nil {
		t.Fatalf("the broadcast page did not reach finished: %v (done %q)", err, text(t, ctx, `[data-figure=done] .value`))
	}
	shot(t, ctx, "broadcast-progress")
	u, _ = chromedp.Run(ctx, chromedp.Location())
	bid := u[strings.LastIndex(u, "/")+1:]
	b := get(c.mustDo(`query($id: ID!) { broadcast(id: $id) { total queued done message { id } } }`, vars{"id": bid}), "broadcast").(map[string]any)
	if b["total"] != float64(n) || b["done"] != float64(n) || get(b, "message", "id") != msg {
		t.Errorf("GraphQL broadcast %s = %v, want %d of %d done, of message %s", bid, b, n, n, msg)
	}
	for _, k := range []string{"total", "queued", "done"} {
		if got := text(t, ctx, `[data-figure=`+k+`] .value`); got != fmt.Sprint(n) {
			t.Errorf("page %s = %q, want %d", k, got, n)
		}
	}
	dones, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__dones || []`))
	if err != nil {
		t.Fatal(err)
	}
	between := false
	for _, d := range dones {
		between = between || (d != "0" && d != fmt.Sprint(n))
	}
	t.Logf("done as the page showed it: %v", dones)
	if !between {
		t.Errorf("the page showed done %v: no value between 0 and %d, so not live", dones, n)
	}
	if kept, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`)); !kept {
		t.Error("the broadcast page reloaded")
	}
	for i, tk := range tokens {
		reqs := e.apns.Requests(tk)
		if len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), fmt.Sprintf(`"title":"Hi P%d"`, i)) {
			t.Errorf("p%02d's device got %d requests (%s), want one titled Hi P%d", i, len(reqs), firstBody(reqs), i)
		}
	}
	// The messages list has it, with its campaign.
	if err := chromedp.Do(ctx, chromedp.Click(`nav a[href="/messages"]`), chromedp.WaitVisible(`tr[data-message="`+msg+`"]`)); err != nil {
		t.Fatalf("the messages list: %v", err)
	}
	if got := text(t, ctx, `tr[data-message="`+msg+`"] td:nth-child(3)`); got != "Launch" {
		t.Errorf("the list's campaign for the message = %q, want Launch", got)
	}
	shot(t, ctx, "messages")
}

func firstBody(reqs []sim.Request) string {
	if len(reqs) == 0 {
		return "none"
	}
	return string(reqs[0].Body)
}

// TestWebChartBuckets: a campaign whose deliveries were made over two to
// three days draws GraphQL's buckets by hour (four with sends) and by day
// at GraphQL's times, with the hours between them as zeros; a range picked
// in the page's form goes into the URL and the figures are the range's.
func TestWebChartBuckets(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("web-chart"))
	now := time.Now().UTC()
	camp := clickhouse.Campaign{WorkspaceID: c.workspaceID, ID: uuid.New(), Name: "Three days", CreatedAt: now.Add(-72 * time.Hour)}
	if err := e.app.Store.CreateCampaign(context.Background(), camp); err != nil {
		t.Fatal(err)
	}
	msg := get(c.mustDo(`mutation($c: ID!) { createPushMessage(input: {campaignId: $c, name: "m", title: "t", body: "b"}) { id } }`, vars{"c": camp.ID.String()}), "createPushMessage", "id").(string)
	hour := now.Truncate(time.Hour)
	// Hours 50, 49 (twice), 26 and 2 back: four hours with sends, over
	// two or three UTC days (depending on the time of day).
	for i, h := range []int{50, 49, 49, 26, 2} {
		e.pastDelivery(c, msg, camp.ID.String(), fmt.Sprintf("p%d", i), hour.Add(-time.Duration(h)*time.Hour+10*time.Minute))
	}
	e.flush()
	series := func(g string) []string {
		t.Helper()
		s := get(c.mustDo(`query($id: ID!, $g: Granularity) { campaign(id: $id) { overview(granularity: $g) { series { start sent } } } }`,
			vars{"id": camp.ID.String(), "g": g}), "campaign", "overview", "series").([]any)
		var starts []string
		for _, b := range s {
			b := b.(map[string]any)
			if b["sent"].(float64) > 0 {
				starts = append(starts, fmt.Sprint(b["start"]))
			}
		}
		return starts
	}
	byHour, byDay := series("HOUR"), series("DAY")
	if len(byHour) != 4 || len(byDay) < 2 {
		t.Fatalf("GraphQL buckets with sends: %d by hour (%v), %d by day (%v); want 4 hours over 3 days", len(byHour), byHour, len(byDay), byDay)
	}
	ctx := browser(t)
	signIn(t, ctx, e.http.URL+"/", c.key)
	for _, g := range []string{"HOUR", "DAY"} {
		want := get(c.mustDo(`query($id: ID!, $g: Granularity) { campaign(id: $id) { overview(granularity: $g) { series { start sent } } } }`,
			vars{"id": camp.ID.String(), "g": g}), "campaign", "overview", "series").([]any)
		// The chart draws every bucket from GraphQL's first to its last,
		// the ones GraphQL leaves out (nothing in them) as zeros.
		step := int64(3600)
		if g == "DAY" {
			step = 86400
		}
		sent := map[int64]float64{}
		var first, last int64
		for i, b := range want {
			at, err := time.Parse(time.RFC3339, b.(map[string]any)["start"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = at.Unix()
			}
			last = at.Unix()
			sent[at.Unix()] = b.(map[string]any)["sent"].(float64)
		}
		var wantX []int64
		var wantSent []float64
		for x := first; x <= last; x += step {
			wantX, wantSent = append(wantX, x), append(wantSent, sent[x])
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(e.http.URL+"/campaigns/"+camp.ID.String()+"?granularity="+g)); err != nil {
			t.Fatal(err)
		}
		var gotX []int64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			x, err := chromedp.Run(ctx, chromedp.Evaluate[[]int64](`(() => { const c = document.querySelector('.chart'); return c && c.uplot && c.querySelector('canvas') ? c.uplot.data[0] : [] })()`))
			if err != nil {
				t.Fatal(err)
			}
			if gotX = x; len(x) > 0 {
				break
			}
		}
		if fmt.Sprint(gotX) != fmt.Sprint(wantX) {
			t.Errorf("by %s the chart draws buckets at %v, want %v (GraphQL's first to last)", g, gotX, wantX)
		}
		gotSent, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`document.querySelector('.chart').uplot.data[1]`))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(gotSent) != fmt.Sprint(wantSent) {
			t.Errorf("by %s the chart's sent line is %v, GraphQL's (zeros between) %v", g, gotSent, wantSent)
		}
		t.Logf("by %s: %d buckets drawn (%d from GraphQL, the rest zeros)", g, len(gotX), len(want))
		if g == "HOUR" {
			shot(t, ctx, "overview-by-hour")
		}
	}

	// A range, picked in the page's form: the last 30 hours hold two of
	// the five deliveries (26 and 2 hours back), as GraphQL says.
	from := hour.Add(-30 * time.Hour)
	o := get(c.mustDo(`query($id: ID!, $from: Time) { campaign(id: $id) { overview(granularity: HOUR, from: $from) { created series { start } } } }`,
		vars{"id": camp.ID.String(), "from": from.Format(time.RFC3339)}), "campaign", "overview").(map[string]any)
	if o["created"] != 2.0 {
		t.Fatalf("GraphQL overview from %s: created %v, want 2", from, o["created"])
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.http.URL+"/campaigns/"+camp.ID.String()+"?granularity=HOUR"), chromedp.WaitVisible(`.range [name=from]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
		const d = new Date(%d), p = (n) => String(n).padStart(2, '0')
		document.querySelector('.range [name=from]').value = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes())
		return true })()`, from.UnixMilli()))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`.range button[type=submit]`)); err != nil {
		t.Fatal(err)
	}
	created := ""
	for deadline := time.Now().Add(10 * time.Second); created != "2" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		created, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('[data-figure=created] .value') || {}).textContent || ''`))
	}
	if created != "2" {
		t.Errorf("the page's created for the last 30 hours = %q, GraphQL 2", created)
	}
	u, _ := chromedp.Run(ctx, chromedp.Location())
	if want := "from=" + strings.ReplaceAll(from.Format("2006-01-02T15:04:05.000Z"), ":", "%3A"); !strings.Contains(u, want) || !strings.Contains(u, "granularity=HOUR") {
		t.Errorf("the URL is %s, want the range (%s) and the granularity in it", u, want)
	}
	buckets := -1
	for deadline := time.Now().Add(5 * time.Second); buckets != 25 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		buckets, _ = chromedp.Run(ctx, chromedp.Evaluate[int](`(() => { const c = document.querySelector('.chart'); return c && c.uplot ? c.uplot.data[0].length : -1 })()`))
	}
	if buckets != 25 {
		t.Errorf("the chart of the last 30 hours draws %d buckets, want 25 (hour 26 back to hour 2 back)", buckets)
	}
}

package server_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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

	if err := chromedp.Do(ctx, chromedp.Click(`button.signout`), chromedp.WaitVisible(`#key`)); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	if stored := storedKey(t, ctx); stored != "" {
		t.Errorf("after sign out sessionStorage still has the key")
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

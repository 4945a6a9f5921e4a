package server_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/providers/sim"
)

// cost returns extensions.cost.<name> of a response, failing when the
// server reported none.
func (r response) cost(t *testing.T, name string) int {
	t.Helper()
	c, ok := r.Extensions["cost"].(map[string]any)
	if !ok {
		t.Fatalf("response has no extensions.cost: %v", r.Extensions)
	}
	n, ok := c[name].(float64)
	if !ok {
		t.Fatalf("extensions.cost has no %s: %v", name, c)
	}
	return int(n)
}

// aliases repeats field n times as a0: …, a1: …; %d in field is the index.
func aliases(n int, field string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: %s", i, strings.ReplaceAll(field, "%d", fmt.Sprint(i)))
	}
	b.WriteString(" }")
	return b.String()
}

// Aliases of person(id) and their devices are one batched query each, not
// one per alias; Person.devices is bounded and costed.
func TestPersonAliasesBatched(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.workspace("a")
	const persons, devices = 5, 3
	for p := range persons {
		for d := range devices {
			c.device(fmt.Sprintf("p%d", p), "IOS", sim.Token(fmt.Sprintf("%d%d", p, d), 1), time.Now().Add(-time.Duration(d)*time.Hour))
		}
	}
	const n = 120 // 480 fields: under the document's 500-field limit
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, ` a%d: person(id: "p%d") { id devices(first: 2) { token } }`, i, i%persons)
	}
	q := b.String() + " }"
	r := c.do(q, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	for i := range n {
		p, _ := r.Data[fmt.Sprintf("a%d", i)].(map[string]any)
		devs, _ := p["devices"].([]any)
		if p == nil || len(devs) != 2 {
			t.Fatalf("alias a%d = %v, want a person with 2 devices", i, p)
		}
	}
	queries := r.cost(t, "clickhouseQueries")
	t.Logf("%d aliases of person(id) { devices }: %d ClickHouse queries, complexity %d", n, queries, r.cost(t, "complexity"))
	if queries > 2 {
		t.Errorf("%d aliases of person(id) with devices ran %d ClickHouse queries, want ≤ 2 (one batch of persons, one of devices)", n, queries)
	}

	t.Run("devices bounded and costed", func(t *testing.T) {
		if r := c.do(`{ person(id: "p0") { devices(first: 101) { token } } }`, nil); r.code() != "BAD_USER_INPUT" {
			t.Errorf("devices(first: 101): code %q (%+v), want BAD_USER_INPUT", r.code(), r.Errors)
		}
		// 100 aliases of up to 100 devices each (500 fields, within the
		// document's field limit): over the complexity limit.
		r := c.do(aliases(100, `person(id: "p0") { devices { token platform lastUsedAt } }`), nil)
		if r.code() != "BAD_USER_INPUT" || !strings.Contains(fmt.Sprint(r.Errors), "complexity") {
			t.Errorf("100 × devices: %+v, want a BAD_USER_INPUT complexity error", r.Errors)
		}
	})
}

// A field costs at least queryCost (10) per ClickHouse query it runs, so
// the complexity limit (5000) bounds one request's queries; the fields
// that fanned out refuse the many-alias forms.
func TestCostCoversQueries(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.withCredentials(e.workspace("a"))
	c.device("p1", "IOS", sim.Token("ab", 1), time.Time{})
	msg := c.message("Hello", "there")
	id := c.send(msg, "p1", "ALL_DEVICES", "")
	c.waitFinal(id)
	camp := get(c.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { id } } }`, vars{"id": msg}), "pushMessage", "campaign", "id").(string)

	for _, tc := range []struct{ name, query string }{
		{"deliveries with a status filter", `{ deliveries(first: 1, filter: {status: [CONVERTED]}) { edges { node { id } } } }`},
		{"deliveries", `{ deliveries(first: 5) { edges { node { id message { name } campaign { name } } } } }`},
		{"overviews", aliases(3, fmt.Sprintf(`campaign(id: %q) { overview { sent series { sent } } }`, camp))},
		{"campaigns with overviews", `{ campaigns(first: 5) { edges { node { name overview(granularity: HOUR) { sent delivered } } } } }`},
		{"delivery", fmt.Sprintf(`{ delivery(id: %q) { status devices { token } history { status } message { name campaign { name } } } }`, id)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.query, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %+v", r.Errors)
			}
			queries, complexity := r.cost(t, "clickhouseQueries"), r.cost(t, "complexity")
			t.Logf("%d queries, complexity %d", queries, complexity)
			if queries == 0 || complexity < 10*queries {
				t.Errorf("complexity %d for %d ClickHouse queries, want ≥ 10 per query", complexity, queries)
			}
		})
	}
	for _, tc := range []struct{ name, query string }{
		{"45 overviews", aliases(45, fmt.Sprintf(`campaign(id: %q) { overview { sent } }`, camp))},
		{"3 status-filtered logs", aliases(3, `deliveries(first: 1, filter: {status: [CONVERTED]}) { edges { cursor } }`)},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			if r := c.do(tc.query, nil); r.code() != "BAD_USER_INPUT" {
				t.Errorf("code %q (%+v), want BAD_USER_INPUT (over the complexity limit)", r.code(), r.Errors)
			}
		})
	}
}

// A heavy workspace (4 concurrent requests of 20 overviews each, without
// pause) beside a light one (campaigns(first: 1), one at a time). The pool
// has 6 connections and a workspace may hold 3: the light workspace always
// finds a connection and never waits on a semaphore, the heavy one never
// has more than 3 queries in flight, and no request fails INTERNAL.
// Latency is printed, not asserted (a 2-core machine shared with others).
func TestHeavyWorkspaceBesideLight(t *testing.T) {
	const pool, perWorkspace = 6, 3
	e := newEnv(t, envOptions{chMaxConns: pool, queryPerRequest: 2, queryPerWorkspace: perWorkspace})
	heavy := e.withCredentials(e.workspace("heavy"))
	heavy.device("p1", "IOS", sim.Token("ab", 1), time.Time{})
	msg := heavy.message("Hello", "there")
	heavy.waitFinal(heavy.send(msg, "p1", "ALL_DEVICES", ""))
	camp := get(heavy.mustDo(`query($id: ID!) { pushMessage(id: $id) { campaign { id } } }`, vars{"id": msg}), "pushMessage", "campaign", "id").(string)
	light := e.workspace("light")
	light.mustDo(`mutation { createCampaign(input: {name: "light"}) { id } }`, nil)

	const lightQuery = `{ campaigns(first: 1) { edges { node { id name } } } }`
	const runs = 15
	lightRuns := func(label string) []time.Duration {
		var took []time.Duration
		for range runs {
			start := time.Now()
			r := light.do(lightQuery, nil)
			took = append(took, time.Since(start))
			if len(r.Errors) > 0 {
				t.Errorf("light request %s: %+v", label, r.Errors)
				break
			}
			if w := r.cost(t, "queryWaits"); w != 0 {
				t.Errorf("light request %s waited for a query slot %d times, want 0", label, w)
			}
			if q := r.cost(t, "clickhouseQueries"); q != 1 {
				t.Errorf("light request %s ran %d queries, want 1", label, q)
			}
		}
		slices.Sort(took)
		return took
	}
	alone := lightRuns("alone")

	heavyQuery := aliases(20, fmt.Sprintf(`campaign(id: %q) { overview { sent delivered } }`, camp))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var heavyDone, heavyWaits, heavyBusy atomic.Int64
	var peak atomic.Int64
	var mu sync.Mutex
	var heavyErrs []string
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := heavy.do(heavyQuery, nil)
				heavyDone.Add(1)
				if code := r.code(); code == "RATE_LIMITED" {
					heavyBusy.Add(1)
				} else if code != "" {
					mu.Lock()
					heavyErrs = append(heavyErrs, fmt.Sprint(r.Errors))
					mu.Unlock()
				}
				if _, ok := r.Extensions["cost"]; !ok {
					mu.Lock()
					heavyErrs = append(heavyErrs, "no extensions.cost")
					mu.Unlock()
					continue
				}
				heavyWaits.Add(int64(r.cost(t, "queryWaits")))
				if p := int64(r.cost(t, "workspaceConcurrencyPeak")); p > peak.Load() {
					peak.Store(p)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // let the heavy load build up
	beside := lightRuns("beside the heavy workspace")
	close(stop)
	wg.Wait()

	med := func(d []time.Duration) time.Duration { return d[len(d)/2] }
	t.Logf("\n%-28s %10s %10s\n%-28s %10s %10s\n%-28s %10s %10s\nratio of medians %.2f; heavy requests %d (%d RATE_LIMITED), their query waits %d, heavy peak in flight %d (bound %d, pool %d)",
		"light campaigns(first:1)", "median", "max",
		"alone", med(alone).Round(time.Microsecond), alone[len(alone)-1].Round(time.Microsecond),
		"beside heavy", med(beside).Round(time.Microsecond), beside[len(beside)-1].Round(time.Microsecond),
		float64(med(beside))/float64(med(alone)), heavyDone.Load(), heavyBusy.Load(), heavyWaits.Load(), peak.Load(), perWorkspace, pool)
	if len(heavyErrs) > 0 {
		t.Errorf("heavy requests failed other than RATE_LIMITED: %v", heavyErrs[:min(3, len(heavyErrs))])
	}
	if p := peak.Load(); p > perWorkspace {
		t.Errorf("heavy workspace had %d queries in flight, over its bound of %d", p, perWorkspace)
	}
	if heavyWaits.Load() == 0 || peak.Load() < 2 {
		t.Errorf("heavy load never waited (%d waits, peak %d): the test did not load the server", heavyWaits.Load(), peak.Load())
	}
}

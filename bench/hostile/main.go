// Command hostile measures what hostile input costs Herald: it builds this
// checkout's herald, runs `herald dev` (API, worker and simulators in one
// process, on its own ClickHouse database and Redis database, without demo
// data) and sends it each attack of the security review (issue 11) and a
// normal request beside them. For each it prints the answer (HTTP status
// and GraphQL code), the median response time, the server's CPU time
// (utime+stime of the herald process, less its idle rate over the same
// time) and its memory growth (peak RSS during the attack less RSS before
// it; the peak is reset before each attack), and whether the attack stayed
// within the bounds the issue sets: ≤ 50 ms CPU and ≤ 10 MB.
//
// It needs ClickHouse and Redis (bash scripts/services.sh). Its database
// (-database) is dropped at the start and at the end; it takes a Redis
// database of its own the way tests do (internal/redistest), flushed at the
// start and at the end.
//
//	go run ./bench/hostile
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/coder/websocket"

	"github.com/heraldpush/herald/internal/redistest"
)

// Bounds the issue sets on every attack.
const (
	maxCPU    = 50 * time.Millisecond
	maxMemory = 10 << 20
)

func main() {
	database := flag.String("database", "herald_bench_hostile", "ClickHouse database (dropped at start and end)")
	chAddr := flag.String("clickhouse", "127.0.0.1:9000", "ClickHouse native address")
	only := flag.String("only", "", "run only the attacks whose name contains this")
	flag.Parse()
	if err := run(*database, *chAddr, redistest.Addr(), *only); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

func run(database, chAddr, redisAddr string, only string) error {
	ctx := context.Background()
	if err := dropDatabase(ctx, database, chAddr); err != nil {
		return err
	}
	defer func() { _ = dropDatabase(ctx, database, chAddr) }()
	// A Redis database of its own, as tests take theirs (internal/redistest).
	redisDB, release, err := redistest.Claim(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = release(context.Background()) }()

	tmp, err := os.MkdirTemp("", "herald-hostile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "herald")
	fmt.Println("building herald…")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/herald").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/herald (run from the repository root): %v\n%s", err, out)
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	secret, err := internalService()
	if err != nil {
		return err
	}
	defer secret.Close()

	cmd := exec.Command(bin, "dev", "-demo=false", "-addr", ports[0], "-apns-sim", ports[1], "-fcm-sim", ports[2],
		"-state-dir", tmp, "-database", database, "-clickhouse", chAddr, "-redis", redisAddr, "-redis-db", strconv.Itoa(redisDB))
	logFile, err := os.Create(filepath.Join(tmp, "herald.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	fmt.Println("starting herald dev…")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	h, err := waitReady(ctx, cmd.Process.Pid, tmp)
	if err != nil {
		tail(logFile.Name())
		return err
	}
	h.secretURL = secret.URL
	if err := h.setup(ctx); err != nil {
		tail(logFile.Name())
		return fmt.Errorf("setup: %w", err)
	}
	idle := h.idleRate(2 * time.Second)
	fmt.Printf("herald dev pid %d at %s; idle CPU %.1f ms/s\n\n", h.pid, h.url, float64(idle)/float64(time.Millisecond))

	printHeader()
	failed := 0
	for _, a := range attacks() {
		if only != "" && !strings.Contains(a.name, only) {
			continue
		}
		r := h.measure(ctx, a, idle)
		if err := h.alive(); err != nil {
			r.answer += " — SERVER DIED"
			printRow(r)
			tail(logFile.Name())
			return err
		}
		if !printRow(r) {
			failed++
		}
	}
	fmt.Println()
	fmt.Println("CPU: the herald process's utime+stime during the attack less its idle rate (in all, and divided by the requests); memory: its peak RSS less RSS before (the peak reset before each attack); both include the worker, which runs in the same process. /proc counts CPU in 10 ms ticks.")
	if failed > 0 {
		return fmt.Errorf("%d attacks over the bounds", failed)
	}
	return nil
}

// attack is one row of the table.
type attack struct {
	name string
	// run sends the attack and returns the answers (one string per
	// distinct answer, with counts) and each request's duration; it waits
	// for any work the attack leaves (a delivery to end) before returning.
	run func(ctx context.Context, h *herald) outcome
	// note says what the bound means for this row, when it is not the plain one.
	note string
}

type outcome struct {
	answers  []string
	times    []time.Duration
	detail   string
	requests int // when not len(times): messages on one connection
}

type result struct {
	name, answer, detail, note string
	requests                   int
	median                     time.Duration
	cpu                        time.Duration
	mem                        int64
}

func (h *herald) measure(ctx context.Context, a attack, idle float64) result {
	time.Sleep(200 * time.Millisecond) // let the last attack's work settle
	resetPeak(h.pid)
	rss0 := rss(h.pid)
	cpu0 := procCPU(h.pid)
	start := time.Now()
	o := a.run(ctx, h)
	elapsed := time.Since(start)
	cpu := procCPU(h.pid) - cpu0 - time.Duration(idle*float64(elapsed))
	mem := peak(h.pid) - rss0
	n := len(o.times)
	if o.requests > 0 {
		n = o.requests
	}
	return result{name: a.name, answer: summarize(o.answers), detail: o.detail, note: a.note, requests: n, median: median(o.times), cpu: max(cpu, 0), mem: max(mem, 0)}
}

func printHeader() {
	fmt.Println("| attack | requests | answer | median response | server CPU in all | CPU per request | memory growth | ≤ 50 ms CPU a request, ≤ 10 MB |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|---|")
}

// printRow prints one row as soon as it is measured; false when it is over
// the bounds.
func printRow(r result) bool {
	per := r.cpu / time.Duration(max(r.requests, 1))
	ok := per <= maxCPU && r.mem <= maxMemory
	verdict := "yes"
	if !ok {
		verdict = "**NO**"
	}
	if r.note != "" {
		verdict += " (" + r.note + ")"
	}
	answer := r.answer
	if r.detail != "" {
		answer += "; " + r.detail
	}
	fmt.Printf("| %s | %d | %s | %s | %.1f ms | %.1f ms | %.1f MB | %s |\n", r.name, r.requests, answer, fmtDur(r.median),
		float64(r.cpu)/float64(time.Millisecond), float64(per)/float64(time.Millisecond), float64(r.mem)/(1<<20), verdict)
	return ok
}

// herald is the running `herald dev`.
type herald struct {
	pid       int
	url       string
	key       string
	secretURL string
	client    *http.Client
	// set up by setup:
	messageID string // a message with a plain template
	personID  string
	delivery  string // a delivery that targeted token
	token     string
}

func waitReady(ctx context.Context, pid int, dir string) (*herald, error) {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		env := readEnv(filepath.Join(dir, "dev.env"))
		if env["HERALD_URL"] != "" && env["HERALD_API_KEY"] != "" {
			h := &herald{pid: pid, url: env["HERALD_URL"], key: env["HERALD_API_KEY"], client: &http.Client{Timeout: 60 * time.Second}}
			// dev sets the simulators' credentials after writing dev.env
			for time.Now().Before(deadline) {
				var r gqlResult
				if err := h.gql(ctx, h.key, `{ campaigns(first: 1) { edges { node { id } } } }`, nil, &r); err == nil && len(r.Errors) == 0 {
					time.Sleep(time.Second)
					return h, nil
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, errors.New("herald dev did not write dev.env within 90 s (is ClickHouse up? bash scripts/services.sh)")
}

func (h *herald) alive() error {
	resp, err := h.client.Get(h.url + "/healthz")
	if err != nil {
		return fmt.Errorf("herald dev no longer answers: %w", err)
	}
	resp.Body.Close()
	return nil
}

func (h *herald) setup(ctx context.Context) error {
	h.personID, h.token = "hostile-person", "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	if _, err := h.must(ctx, `mutation($in: IdentifyPersonInput!) { identifyPerson(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"id": h.personID, "attributes": map[string]any{"first_name": "Ada"}}}); err != nil {
		return err
	}
	if _, err := h.must(ctx, `mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`,
		map[string]any{"in": map[string]any{"personId": h.personID, "platform": "IOS", "token": h.token}}); err != nil {
		return err
	}
	id, err := h.message(ctx, "Hello {{ customer.first_name }}")
	if err != nil {
		return err
	}
	h.messageID = id
	d, err := h.send(ctx, id)
	if err != nil {
		return err
	}
	h.delivery = d
	_, err = h.waitFinal(ctx, d)
	return err
}

// message creates a campaign and a push message with body; its id.
func (h *herald) message(ctx context.Context, body string) (string, error) {
	var r gqlResult
	err := h.gql(ctx, h.key, `mutation($name: String!) { createCampaign(input: {name: $name}) { id } }`, map[string]any{"name": "hostile"}, &r)
	if err != nil || len(r.Errors) > 0 {
		return "", fmt.Errorf("createCampaign: %v %v", err, r.Errors)
	}
	camp := r.path("createCampaign", "id")
	r = gqlResult{}
	err = h.gql(ctx, h.key, `mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"campaignId": camp, "name": "hostile", "title": "Hi", "body": body}}, &r)
	if err != nil {
		return "", err
	}
	if len(r.Errors) > 0 {
		return "", &gqlError{r.code(), r.Errors[0].Message}
	}
	return r.path("createPushMessage", "id"), nil
}

func (h *herald) send(ctx context.Context, messageID string) (string, error) {
	r, err := h.must(ctx, `mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"messageId": messageID, "personId": h.personID}})
	if err != nil {
		return "", err
	}
	return r.path("sendPush", "id"), nil
}

// waitFinal polls a delivery until it is not ATTEMPTED (at most 20 s); its
// status and failure reason.
func (h *herald) waitFinal(ctx context.Context, id string) (string, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := h.must(ctx, `query($id: ID!) { delivery(id: $id) { status failureReason } }`, map[string]any{"id": id})
		if err != nil {
			return "", err
		}
		st := r.path("delivery", "status")
		if st != "ATTEMPTED" {
			return st + " " + r.path("delivery", "failureReason"), nil
		}
		if time.Now().After(deadline) {
			return "still ATTEMPTED after 20 s", nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// templateAttack creates a message with body and, if that is accepted,
// sends it and waits for the delivery to end.
func templateAttack(body string) func(ctx context.Context, h *herald) outcome {
	return func(ctx context.Context, h *herald) outcome {
		start := time.Now()
		id, err := h.message(ctx, body)
		took := time.Since(start)
		var ge *gqlError
		if errors.As(err, &ge) {
			return outcome{answers: []string{"createPushMessage " + ge.code}, times: []time.Duration{took}, detail: clip(ge.msg, 70)}
		}
		if err != nil {
			return outcome{answers: []string{"error: " + clip(err.Error(), 60)}, times: []time.Duration{took}}
		}
		d, err := h.send(ctx, id)
		if err != nil {
			return outcome{answers: []string{"accepted; sendPush: " + clip(err.Error(), 60)}, times: []time.Duration{took}}
		}
		st, err := h.waitFinal(ctx, d)
		if err != nil {
			st = err.Error()
		}
		return outcome{answers: []string{"accepted; delivery " + clip(st, 70)}, times: []time.Duration{took}}
	}
}

func attacks() []attack {
	person := func(n int, field string) string {
		var b strings.Builder
		b.WriteString("{ ")
		for i := range n {
			fmt.Fprintf(&b, "a%d: person(id: \"hostile-person\") { %s } ", i, field)
		}
		b.WriteString("}")
		return b.String()
	}
	ids := func(n int) string { return "{ person(id: \"x\") { " + strings.Repeat("id ", n) + "} }" }
	return []attack{
		{name: "normal: campaigns(first: 1) with a key", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 20, func() (string, time.Duration) {
				return h.post(ctx, "/graphql", h.key, gqlBody(`{ campaigns(first: 1) { edges { node { id name } } } }`, nil), nil)
			})
		}},
		{name: "1. template include of /proc/self/environ", run: templateAttack(`{% include "../../../proc/self/environ" %}`)},
		{name: "1. template render tag", run: templateAttack(`{% render "/etc/passwd" %}`)},
		{name: "2. template doubling a string 24 times (107 bytes)", run: templateAttack(`{% assign s = "xxxxxxxxxx" %}{% for i in (1..24) %}{% assign s = s | append: s %}{% endfor %}{{ s }}`)},
		{name: "2. template include of /dev/zero", run: templateAttack(`{% include "/dev/zero" %}`)},
		{name: "2. template 100000×100000 nested loops", run: templateAttack(`{% for i in (1..100000) %}{% for j in (1..100000) %}x{% endfor %}{% endfor %}`)},
		{name: "13. template divided_by: 0", run: templateAttack(`{{ 10 | divided_by: 0 }}`)},
		{name: "3. FCM token_uri at an internal service", run: func(ctx context.Context, h *herald) outcome {
			sa, _ := json.Marshal(map[string]any{"type": "service_account", "project_id": "evil", "private_key_id": "k",
				"private_key": testKeyPEM, "client_email": "x@evil.iam.gserviceaccount.com", "token_uri": h.secretURL + "/token"})
			o := h.repeat(ctx, 1, func() (string, time.Duration) {
				return h.post(ctx, "/graphql", h.key, gqlBody(`mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }`,
					map[string]any{"in": map[string]any{"fcm": map[string]any{"serviceAccountJson": string(sa)}}}), nil)
			})
			if o.answers[0] != "HTTP 200" {
				return o
			}
			// Accepted: send to an Android device and read what comes back.
			if _, err := h.must(ctx, `mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`,
				map[string]any{"in": map[string]any{"personId": h.personID, "platform": "ANDROID", "token": "fcm-hostile-token"}}); err != nil {
				o.detail = err.Error()
				return o
			}
			d, err := h.send(ctx, h.messageID)
			if err != nil {
				o.detail = err.Error()
				return o
			}
			_, _ = h.waitFinal(ctx, d)
			r, _ := h.must(ctx, `query($id: ID!) { delivery(id: $id) { failureReason devices { lastError } } }`, map[string]any{"id": d})
			b, _ := json.Marshal(r.Data)
			o.detail = "accepted; the internal service's secret reached the delivery: " + strconv.FormatBool(strings.Contains(string(b), "INTERNAL-SECRET"))
			return o
		}},
		{name: "4. 16,000 fields, no key", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 3, func() (string, time.Duration) { return h.post(ctx, "/graphql", "", gqlBody(ids(16000), nil), nil) })
		}},
		{name: "4. 16,000 fields, with a key", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 3, func() (string, time.Duration) { return h.post(ctx, "/graphql", h.key, gqlBody(ids(16000), nil), nil) })
		}},
		{name: "4. 1 MB document, no key", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 3, func() (string, time.Duration) { return h.post(ctx, "/graphql", "", gqlBody(ids(330000), nil), nil) })
		}},
		{name: "4. 16,000 fields by GET, no key", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 3, func() (string, time.Duration) { return h.get(ctx, "/graphql?query="+urlEscape(ids(16000)), "") })
		}},
		{name: "5. 2,400 aliases of person(id)", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 1, func() (string, time.Duration) {
				return h.post(ctx, "/graphql", h.key, gqlBody(person(2400, "id"), nil), nil)
			})
		}},
		{name: "5. 200 aliases of person(id).devices", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 1, func() (string, time.Duration) {
				return h.post(ctx, "/graphql", h.key, gqlBody(person(200, "devices { token platform lastUsedAt }"), nil), nil)
			})
		}},
		{name: "5. 45 aliases of campaign overview", run: func(ctx context.Context, h *herald) outcome {
			var b strings.Builder
			b.WriteString("{ ")
			for i := range 45 {
				fmt.Fprintf(&b, "a%d: campaigns(first: 1) { edges { node { overview { delivered opened } } } } ", i)
			}
			b.WriteString("}")
			return h.repeat(ctx, 1, func() (string, time.Duration) { return h.post(ctx, "/graphql", h.key, gqlBody(b.String(), nil), nil) })
		}},
		{name: "6. 500 subscriptions on one socket", run: func(ctx context.Context, h *herald) outcome { return h.subscriptions(ctx, 500) }},
		{name: "7. 900 KB truncated JSON body", run: func(ctx context.Context, h *herald) outcome {
			body := []byte(`{"query":"mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }","variables":{"in":{"apns":{"p8":"` + strings.Repeat("A", 900<<10))
			return h.repeat(ctx, 3, func() (string, time.Duration) { return h.post(ctx, "/graphql", h.key, body, nil) })
		}},
		{name: "7. 2 MB chunked body", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 3, func() (string, time.Duration) {
				body := io.MultiReader(strings.NewReader(`{"query":"{ campaigns { edges { node { id } } } }","x":"`), strings.NewReader(strings.Repeat("y", 2<<20)), strings.NewReader(`"}`))
				return h.post(ctx, "/graphql", h.key, nil, body)
			})
		}},
		{name: "7. batch array, non-object variables", run: func(ctx context.Context, h *herald) outcome {
			bodies := [][]byte{[]byte(`[{"query":"{ campaigns { edges { node { id } } } }"}]`), []byte(`{"query":"{ campaigns { edges { node { id } } } }","variables":[1]}`)}
			i := 0
			return h.repeat(ctx, 2, func() (string, time.Duration) { i++; return h.post(ctx, "/graphql", h.key, bodies[i-1], nil) })
		}},
		{name: "8. retryDelivery with the id in upper case", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 1, func() (string, time.Duration) {
				return h.post(ctx, "/graphql", h.key, gqlBody(`mutation($id: ID!) { retryDelivery(id: $id) { id } }`, map[string]any{"id": strings.ToUpper(h.delivery)}), nil)
			})
		}},
		{name: "9. 50 slow-body requests (1 byte/s)", note: "time: until the server drops them", run: func(ctx context.Context, h *herald) outcome { return h.slowBodies(ctx, 50) }},
		{name: "10. lastUsedAt 2300-01-01", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 1, func() (string, time.Duration) {
				return h.post(ctx, "/graphql", h.key, gqlBody(`mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`,
					map[string]any{"in": map[string]any{"personId": "hostile-person", "platform": "IOS", "token": strings.Repeat("ab", 32), "lastUsedAt": "2300-01-01T00:00:00Z"}}), nil)
			})
		}},
		{name: "11. trackEvent with 900 KB of data", run: func(ctx context.Context, h *herald) outcome {
			return h.repeat(ctx, 1, func() (string, time.Duration) {
				return h.post(ctx, "/graphql", h.key, gqlBody(`mutation($in: TrackEventInput!) { trackEvent(input: $in) }`,
					map[string]any{"in": map[string]any{"personId": "hostile-person", "name": "purchase", "data": map[string]any{"x": strings.Repeat("x", 900<<10)}}}), nil)
			})
		}},
		{name: "12. SDK report: unknown delivery / untargeted token", run: func(ctx context.Context, h *herald) outcome {
			bodies := []string{
				fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, "0190a000-0000-7000-8000-000000000000", h.token),
				fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, h.delivery, strings.Repeat("f", 64)),
			}
			var o outcome
			answers := map[int]map[string]bool{}
			var times [2][]time.Duration
			for i := range 20 {
				a, d, body := h.postBody(ctx, "/push/events", []byte(bodies[i%2]))
				o.answers, o.times = append(o.answers, a), append(o.times, d)
				if answers[i%2] == nil {
					answers[i%2] = map[string]bool{}
				}
				answers[i%2][a+" "+strings.ReplaceAll(body, h.token, "<token>")] = true
				times[i%2] = append(times[i%2], d)
			}
			same := len(answers[0]) == 1 && len(answers[1]) == 1 && fmt.Sprint(answers[0]) == (strings.ReplaceAll(fmt.Sprint(answers[1]), strings.Repeat("f", 64), "<token>"))
			o.detail = fmt.Sprintf("one answer for both: %v; medians %s / %s", same, fmtDur(median(times[0])), fmtDur(median(times[1])))
			return o
		}},
		{name: "14. 2,000 requests with bad keys", run: func(ctx context.Context, h *herald) outcome {
			return h.parallel(ctx, 2000, 16, func(i int) (string, time.Duration) {
				return h.post(ctx, "/graphql", fmt.Sprintf("hk_bad%08d", i), gqlBody(`{ campaigns(first: 1) { edges { node { id } } } }`, nil), nil)
			})
		}, note: "2,000 requests"},
	}
}

// repeat runs f n times in a row.
func (h *herald) repeat(ctx context.Context, n int, f func() (string, time.Duration)) outcome {
	var o outcome
	for range n {
		a, d := f()
		o.answers = append(o.answers, a)
		o.times = append(o.times, d)
	}
	return o
}

// parallel runs f n times from workers goroutines.
func (h *herald) parallel(ctx context.Context, n, workers int, f func(i int) (string, time.Duration)) outcome {
	var mu sync.Mutex
	var o outcome
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				a, d := f(i)
				mu.Lock()
				o.answers = append(o.answers, a)
				o.times = append(o.times, d)
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return o
}

// post sends body (or stream, chunked) with the key (none when empty); the
// answer as "HTTP <status> <graphql code>" and its time.
func (h *herald) post(ctx context.Context, path, key string, body []byte, stream io.Reader) (string, time.Duration) {
	var r io.Reader = bytes.NewReader(body)
	if stream != nil {
		r = stream
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+path, r)
	if stream != nil {
		req.ContentLength = -1 // chunked
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return h.do(req)
}

// postBody posts body without a key; the answer, its time and the body.
func (h *herald) postBody(ctx context.Context, path string, body []byte) (string, time.Duration, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		return "error: " + clip(err.Error(), 50), time.Since(start), ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return "HTTP " + strconv.Itoa(resp.StatusCode), time.Since(start), string(b)
}

func (h *herald) get(ctx context.Context, path, key string) (string, time.Duration) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return h.do(req)
}

func (h *herald) do(req *http.Request) (string, time.Duration) {
	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		return "error: " + clip(err.Error(), 50), time.Since(start)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	var r gqlResult
	answer := "HTTP " + strconv.Itoa(resp.StatusCode)
	if json.Unmarshal(b, &r) == nil && len(r.Errors) > 0 {
		answer += " " + r.code()
	}
	return answer, took
}

// subscriptions opens one graphql-transport-ws socket and starts n
// subscriptions on it; the answers are the first message each got (or
// none), then it closes the socket.
func (h *herald) subscriptions(ctx context.Context, n int) outcome {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	wsURL := "ws" + strings.TrimPrefix(h.url, "http") + "/graphql"
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return outcome{answers: []string{"dial: " + clip(err.Error(), 60)}, times: []time.Duration{time.Since(start)}}
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	send := func(v any) error { b, _ := json.Marshal(v); return c.Write(ctx, websocket.MessageText, b) }
	if err := send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + h.key}}); err != nil {
		return outcome{answers: []string{"init: " + clip(err.Error(), 60)}}
	}
	var ack struct{ Type string }
	if _, b, err := c.Read(ctx); err != nil || json.Unmarshal(b, &ack) != nil || ack.Type != "connection_ack" {
		return outcome{answers: []string{"no connection_ack"}, times: []time.Duration{time.Since(start)}}
	}
	for i := range n {
		if err := send(map[string]any{"id": strconv.Itoa(i), "type": "subscribe", "payload": map[string]any{
			"query": `subscription($id: ID!) { deliveryUpdated(id: $id) { id status } }`, "variables": map[string]any{"id": h.delivery}}}); err != nil {
			return outcome{answers: []string{"subscribe: " + clip(err.Error(), 60)}, times: []time.Duration{time.Since(start)}}
		}
	}
	// Read what comes back for a while: errors (a cap) and the first data.
	counts := map[string]int{}
	readCtx, stop := context.WithTimeout(ctx, 3*time.Second)
	defer stop()
	for {
		_, b, err := c.Read(readCtx)
		if err != nil {
			break
		}
		var m struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		_ = json.Unmarshal(b, &m)
		key := m.Type
		type gqlErr struct {
			Extensions struct{ Code string } `json:"extensions"`
		}
		var es []gqlErr
		switch m.Type {
		case "error":
			_ = json.Unmarshal(m.Payload, &es)
		case "next":
			var p struct{ Errors []gqlErr }
			_ = json.Unmarshal(m.Payload, &p)
			es = p.Errors
		}
		if len(es) > 0 {
			key += " " + es[0].Extensions.Code
		}
		counts[key]++
	}
	var answers []string
	for k, v := range counts {
		for range v {
			answers = append(answers, k)
		}
	}
	if len(answers) == 0 {
		answers = []string{"no message in 3 s"}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	slices.Sort(answers)
	return outcome{answers: answers, times: []time.Duration{time.Since(start)}, requests: n, detail: "requests: subscribe messages on one socket; time: the whole attack"}
}

// slowBodies opens n connections that send a request's head and then one
// body byte a second; the time is how long the server kept each.
func (h *herald) slowBodies(ctx context.Context, n int) outcome {
	addr := strings.TrimPrefix(h.url, "http://")
	var mu sync.Mutex
	var o outcome
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			start := time.Now()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				mu.Lock()
				o.answers = append(o.answers, "dial error")
				mu.Unlock()
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", addr, h.key)
			answer := "held 60 s (test limit)"
			done := make(chan string, 1)
			go func() {
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err != nil {
					done <- "closed by server"
					return
				}
				done <- strings.TrimSpace(line)
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
		loop:
			for time.Since(start) < 60*time.Second {
				select {
				case a := <-done:
					answer = a
					break loop
				case <-tick.C:
					if _, err := conn.Write([]byte("x")); err != nil {
						answer = "closed by server"
						break loop
					}
				}
			}
			mu.Lock()
			o.answers = append(o.answers, answer)
			o.times = append(o.times, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	return o
}

// idleRate is the herald process's CPU time per second while nothing is
// sent to it.
func (h *herald) idleRate(d time.Duration) float64 {
	c0 := procCPU(h.pid)
	time.Sleep(d)
	return float64(procCPU(h.pid)-c0) / float64(d)
}

type gqlResult struct {
	Data   map[string]any `json:"data"`
	Errors []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	} `json:"errors"`
}

func (r gqlResult) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	if c := r.Errors[0].Extensions.Code; c != "" {
		return c
	}
	return "(no code)"
}

func (r gqlResult) path(p ...string) string {
	var v any = r.Data
	for _, k := range p {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

type gqlError struct{ code, msg string }

func (e *gqlError) Error() string { return e.code + ": " + e.msg }

func (h *herald) gql(ctx context.Context, key, query string, vars map[string]any, out *gqlResult) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/graphql", bytes.NewReader(gqlBody(query, vars)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func (h *herald) must(ctx context.Context, query string, vars map[string]any) (gqlResult, error) {
	var r gqlResult
	if err := h.gql(ctx, h.key, query, vars, &r); err != nil {
		return r, err
	}
	if len(r.Errors) > 0 {
		return r, fmt.Errorf("%s: %s", r.code(), r.Errors[0].Message)
	}
	return r, nil
}

func gqlBody(query string, vars map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return b
}

// internalService is a stand-in for a service inside the network that an
// SSRF would reach: it answers every request with a secret.
type service struct {
	URL string
	srv *http.Server
}

func (s *service) Close() { _ = s.srv.Close() }

func internalService() (*service, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, "INTERNAL-SECRET-7f3a: this answer must never reach a workspace")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &service{URL: "http://" + l.Addr().String(), srv: srv}, nil
}

func dropDatabase(ctx context.Context, database, chAddr string) error {
	conn, err := ch.Open(&ch.Options{Addr: []string{chAddr}})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+database); err != nil {
		return fmt.Errorf("ClickHouse at %s: %w (start it with: bash scripts/services.sh)", chAddr, err)
	}
	return nil
}

func freePorts(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out, nil
}

// procCPU is a process's utime+stime (all its threads) from /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func status(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func rss(pid int) int64  { return status(pid, "VmRSS") }
func peak(pid int) int64 { return status(pid, "VmHWM") }

// resetPeak resets VmHWM to the current RSS (Linux: clear_refs 5).
func resetPeak(pid int) { _ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) }

func readEnv(path string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

func tail(path string) {
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	fmt.Fprintln(os.Stderr, "--- herald dev log (last 20 lines):")
	fmt.Fprintln(os.Stderr, strings.Join(lines[max(0, len(lines)-20):], "\n"))
}

func summarize(answers []string) string {
	counts := map[string]int{}
	var order []string
	for _, a := range answers {
		if counts[a] == 0 {
			order = append(order, a)
		}
		counts[a]++
	}
	var parts []string
	for _, a := range order {
		if counts[a] > 1 {
			parts = append(parts, fmt.Sprintf("%s ×%d", a, counts[a]))
		} else {
			parts = append(parts, a)
		}
	}
	return strings.Join(parts, ", ")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtDur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// testKeyPEM is a throwaway RSA key for the SSRF attack's service account
// (never used for anything but signing a JWT to a fake endpoint).
var testKeyPEM = func() string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(k))}))
}()

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coderws "github.com/coder/websocket"

	"github.com/heraldpush/herald/providers/sim"
)

// rawResult is one HTTP answer of the front door.
type rawResult struct {
	status int
	header http.Header
	resp   response
	body   []byte
}

func (r rawResult) code() string { return r.resp.code() }

// rawDo sends one GraphQL request as given: method, key ("" for none),
// content type and body (a nil body reader for GET).
func rawDo(t *testing.T, method, u, key, contentType string, body io.Reader) rawResult {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s request: %v", method, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := rawResult{status: resp.StatusCode, header: resp.Header, body: raw}
	_ = json.Unmarshal(raw, &out.resp)
	return out
}

func postQuery(t *testing.T, u, key, query string) rawResult {
	t.Helper()
	b, _ := json.Marshal(vars{"query": query})
	return rawDo(t, http.MethodPost, u, key, "application/json", bytes.NewReader(b))
}

// doorCase is a request and the answer the front door must give it.
type doorCase struct {
	name   string
	do     func() rawResult
	status int
	code   string
	msg    string // in the first error's message
}

// check reports whether r is the answer tc wants, and what differs.
func (tc doorCase) check(t *testing.T, r rawResult) bool {
	t.Helper()
	if r.status != tc.status || r.code() != tc.code {
		t.Errorf("%s: %d %q, want %d %q: %.300s", tc.name, r.status, r.code(), tc.status, tc.code, r.body)
		return false
	}
	if tc.msg != "" && !strings.Contains(r.resp.Errors[0].Message, tc.msg) {
		t.Errorf("%s: message %q does not say %q", tc.name, r.resp.Errors[0].Message, tc.msg)
		return false
	}
	return true
}

// cpuTime is this process's user+system CPU time: the server runs in it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Item 4 of security issue 11: a document of 16,000 fields cost 9.8 s of
// CPU in validation, without a key. Now a request without a valid key is
// refused before its body is read, and an oversized document before it is
// validated. The table printed shows what each refusal cost (not asserted).
func TestOversizedDocumentsRefusedBeforeValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.workspace("a")
	fields16k := `{ person(id: "x") { ` + strings.Repeat("id ", 16000) + `} }`
	megabyte := `{ person(id: "x") { ` + strings.Repeat("id ", (1<<20-100)/3) + `} }`
	frag := `query { person(id: "x") { ` + strings.Repeat("...F ", 6) + `} } fragment F on Person { ` + strings.Repeat("id ", 100) + `}`
	var aliases strings.Builder
	aliases.WriteString(`{ person(id: "x") { `)
	for i := range 600 {
		fmt.Fprintf(&aliases, "a%d: id ", i)
	}
	aliases.WriteString(`} }`)
	get := func(key, q string) rawResult {
		return rawDo(t, http.MethodGet, c.url+"?query="+url.QueryEscape(q), key, "", nil)
	}
	post := func(key, q string) rawResult { return postQuery(t, c.url, key, q) }
	cases := []doorCase{
		{"16,000 fields, POST, no key", func() rawResult { return post("", fields16k) }, 401, "UNAUTHENTICATED", "API key"},
		{"16,000 fields, GET, no key", func() rawResult { return get("", fields16k) }, 401, "UNAUTHENTICATED", "API key"},
		{"16,000 fields, POST, unknown key", func() rawResult { return post("hk_unknown", fields16k) }, 401, "UNAUTHENTICATED", "API key"},
		{"1 MB document, POST, no key", func() rawResult { return post("", megabyte) }, 401, "UNAUTHENTICATED", "API key"},
		{"16,000 fields, POST, key", func() rawResult { return post(c.key, fields16k) }, 400, "BAD_USER_INPUT", "token limit"},
		{"16,000 fields, GET, key", func() rawResult { return get(c.key, fields16k) }, 400, "BAD_USER_INPUT", "token limit"},
		{"1 MB document, POST, key", func() rawResult { return post(c.key, megabyte) }, 400, "BAD_USER_INPUT", "token limit"},
		{"600 fields by fragments, key", func() rawResult { return post(c.key, frag) }, 400, "BAD_USER_INPUT", "more than 500 fields"},
		{"600 aliased fields, key", func() rawResult { return post(c.key, aliases.String()) }, 400, "BAD_USER_INPUT", "more than 500 fields"},
		{"one field, key (runs)", func() rawResult { return post(c.key, `{ person(id: "x") { id } }`) }, 200, "NOT_FOUND", "not found"},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-32s %6s %-16s %10s %10s\n", "request", "status", "code", "cpu ms", "wall ms")
	for _, tc := range cases {
		cpu0, wall0 := cpuTime(), time.Now()
		r := tc.do()
		cpu, wall := cpuTime()-cpu0, time.Since(wall0)
		fmt.Fprintf(&table, "%-32s %6d %-16s %10.2f %10.2f\n", tc.name, r.status, r.code(), cpu.Seconds()*1000, wall.Seconds()*1000)
		if !tc.check(t, r) {
			t.FailNow()
		}
	}
	t.Logf("front door costs (this process's CPU: client and server)\n%s", table.String())
}

// syncBuffer is a bytes.Buffer the servers can log into concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Item 7 of security issue 11: client mistakes were INTERNAL, logged in
// full at ERROR (a body with a private key in it), and a chunked body over
// 1 MB got 200. Now each gets a 4xx with a code that is not INTERNAL, and
// a short log line without the body.
func TestClientMistakesAre4xxAndLoggedShort(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, envOptions{logs: logs})
	c := e.workspace("a")
	const secret = "SENTINEL-PRIVATE-KEY-MATERIAL"
	key := "-----BEGIN PRIVATE KEY-----\n" + secret + strings.Repeat("A", 900<<10)
	credsQuery := `mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }`
	full, _ := json.Marshal(vars{"query": credsQuery, "variables": vars{"in": vars{"apns": vars{"bundleId": "b", "keyId": "k", "teamId": "t", "p8": key}}}})
	truncated := full[:len(full)-40]
	typo := bytes.Replace(full, []byte(`"bundleId":"b",`), []byte(`"bundleId":"b"`), 1) // a missing comma
	tooBig := `{"query":"{ __typename }","variables":{"x":"` + strings.Repeat("y", 1<<20) + `"}}`
	post := func(body string) func() rawResult {
		return func() rawResult {
			return rawDo(t, http.MethodPost, c.url, c.key, "application/json", strings.NewReader(body))
		}
	}
	cases := []doorCase{
		{"900 KB truncated JSON", post(string(truncated)), 400, "BAD_USER_INPUT", "JSON"},
		{"credentials with a JSON typo", post(string(typo)), 400, "BAD_USER_INPUT", "invalid JSON at byte"},
		{"batch array", post(`[{"query":"{ __typename }"},{"query":"{ __typename }"}]`), 400, "BAD_USER_INPUT", "batched"},
		{"variables an array", post(`{"query":"{ __typename }","variables":[1,2]}`), 400, "BAD_USER_INPUT", "variables"},
		{"variables a string", post(`{"query":"{ __typename }","variables":"{}"}`), 400, "BAD_USER_INPUT", "variables"},
		{"query a number", post(`{"query":42}`), 400, "BAD_USER_INPUT", "query"},
		{"body null", post(`null`), 400, "BAD_USER_INPUT", "null"},
		{"unknown request field", post(`{"query":"{ __typename }","queryId":"7"}`), 400, "BAD_USER_INPUT", `"queryId"`},
		{"persisted query", post(`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`), 400, "BAD_USER_INPUT", "persisted"},
		{"bad Time inline", post(`{"query":"mutation { trackEvent(input: {personId: \"p\", name: \"n\", timestamp: \"yesterday\"}) }"}`), 200, "BAD_USER_INPUT", "timestamp"},
		{"bad Time variable", post(`{"query":"mutation($t: Time) { trackEvent(input: {personId: \"p\", name: \"n\", timestamp: $t}) }","variables":{"t":"yesterday"}}`), 200, "BAD_USER_INPUT", "timestamp"},
		{"introspection", post(`{"query":"{ __schema { types { name } } }"}`), 403, "FORBIDDEN", "introspection"},
		{"parse error", post(`{"query":"{ person(id: "}`), 400, "BAD_USER_INPUT", ""},
		{"unknown field", post(`{"query":"{ nosuchfield }"}`), 400, "BAD_USER_INPUT", "nosuchfield"},
		{"text/plain body", func() rawResult {
			return rawDo(t, http.MethodPost, c.url, c.key, "text/plain", strings.NewReader(`{"query":"{ __typename }"}`))
		}, 415, "BAD_USER_INPUT", "application/json"},
		{"mutation over GET", func() rawResult {
			return rawDo(t, http.MethodGet, c.url+"?query="+url.QueryEscape(`mutation { removeDevice(personId: "p", token: "t") }`), c.key, "", nil)
		}, 405, "BAD_USER_INPUT", "POST"},
		{"GET with bad variables", func() rawResult {
			return rawDo(t, http.MethodGet, c.url+"?query="+url.QueryEscape(`{ __typename }`)+"&variables=%5B", c.key, "", nil)
		}, 400, "BAD_USER_INPUT", "variables"},
		{"PUT", func() rawResult {
			return rawDo(t, http.MethodPut, c.url, c.key, "application/json", strings.NewReader(`{}`))
		}, 405, "BAD_USER_INPUT", "GET or POST"},
		{"2 MB with Content-Length", post(tooBig + tooBig), 413, "BAD_USER_INPUT", "over"},
		{"1 MB chunked", func() rawResult {
			// Hiding the reader's type makes the client send it chunked.
			return rawDo(t, http.MethodPost, c.url, c.key, "application/json", struct{ io.Reader }{strings.NewReader(tooBig)})
		}, 413, "BAD_USER_INPUT", "over"},
	}
	for _, tc := range cases {
		r := tc.do()
		tc.check(t, r)
		if bytes.Contains(r.body, []byte(secret)) {
			t.Errorf("%s: the response quotes the body", tc.name)
		}
	}
	// A correct request still works, and the server logged short lines.
	if r := c.do(`{ __typename }`, nil); r.code() != "" {
		t.Errorf("a good request after the bad ones: %+v", r.Errors)
	}
	out := logs.String()
	if strings.Contains(out, secret) {
		t.Errorf("the logs hold the request body's secret")
	}
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("a client mistake was logged at ERROR:\n%.2000s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 600 {
			t.Errorf("a log line of %d bytes: %.300s…", len(line), line)
		}
	}
}

// Item 9 of security issue 11: slow bodies and idle keep-alive connections
// were held for ever. Now a request's body must arrive within the read
// timeout and an idle connection is closed after the idle timeout, while a
// websocket lives on past both.
func TestSlowAndIdleConnectionsClosed(t *testing.T) {
	e := newEnv(t, envOptions{readTimeout: 500 * time.Millisecond, idleTimeout: 500 * time.Millisecond})
	c := e.withCredentials(e.workspace("a"))
	addr := strings.TrimPrefix(e.http.URL, "http://")
	// closedWithin reports whether the server ends conn (answers and closes,
	// or closes) within d.
	closedWithin := func(conn net.Conn, d time.Duration) (bool, string) {
		_ = conn.SetReadDeadline(time.Now().Add(d))
		got, err := io.ReadAll(conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false, string(got)
		}
		return true, string(got)
	}
	t.Run("slow body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":", c.key)
		if ok, got := closedWithin(conn, 5*time.Second); !ok {
			t.Fatalf("a body that never arrives held the connection for 5 s (read %q)", got)
		} else if !strings.Contains(got, "408") && !strings.Contains(got, "400") {
			t.Logf("server answered %q", got)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body := `{"query":"{ __typename }"}`
		fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", c.key, len(body), body)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("first request: %d, close %v", resp.StatusCode, resp.Close)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = br.ReadByte()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("an idle keep-alive connection was held for 5 s")
		}
		if err != io.EOF {
			t.Errorf("idle connection: %v, want EOF", err)
		}
	})
	t.Run("websocket outlives the timeouts", func(t *testing.T) {
		c.person("p1", nil, false)
		c.device("p1", "IOS", sim.Token("ac", 1), time.Time{})
		id := c.send(c.message("Hi", "there"), "p1", "ALL_DEVICES", "")
		c.waitFinal(id)
		ws, err := dialWS(t, e.http.URL, "graphql-transport-ws", c.key)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.conn.Close(coderws.StatusNormalClosure, "")
		time.Sleep(1500 * time.Millisecond) // three read timeouts, idle all along
		ws.subscribe("1", deliveryUpdatedQuery, map[string]any{"id": id})
		if _, err := ws.next(10 * time.Second); err != nil {
			t.Fatalf("subscription after 1.5 s: %v", err)
		}
		e.post("/push/events", fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, sim.Token("ac", 1)))
		time.Sleep(700 * time.Millisecond)
		if d, err := ws.next(10 * time.Second); err != nil || get(d, "deliveryUpdated", "status") != "DELIVERED" {
			t.Fatalf("update after the report: %v, %v", d, err)
		}
	})
}

// Item 14 of security issue 11: every request with a bad key cost a
// ClickHouse query. Now an unknown key is remembered as unknown for a
// while, and a client that looks up too many uncached keys gets 429.
func TestBadKeysCostNoLookups(t *testing.T) {
	e := newEnv(t, envOptions{authLookupRate: 5})
	c := e.workspace("a")
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	if r := postQuery(t, c.url, c.key, `{ __typename }`); r.status != 200 {
		t.Fatalf("good key: %d %s", r.status, r.body)
	}
	if r := postQuery(t, c.url, "hk_remembered", `{ __typename }`); r.status != 401 || r.code() != "UNAUTHENTICATED" {
		t.Fatalf("bad key: %d %q", r.status, r.code())
	}
	// With the workspaces table gone, a lookup would fail (503): cached keys
	// need none.
	ctx := context.Background()
	if err := e.app.CH.Exec(ctx, "RENAME TABLE workspaces TO workspaces_away"); err != nil {
		t.Fatal(err)
	}
	restore := func() { _ = e.app.CH.Exec(ctx, "RENAME TABLE workspaces_away TO workspaces") }
	defer restore()
	if r := postQuery(t, c.url, "hk_remembered", `{ __typename }`); r.status != 401 || r.code() != "UNAUTHENTICATED" {
		t.Errorf("the same bad key again: %d %q, want 401 UNAUTHENTICATED from the cache: %s", r.status, r.code(), r.body)
	}
	if r := postQuery(t, c.url, c.key, `{ __typename }`); r.status != 200 {
		t.Errorf("good key again: %d %s", r.status, r.body)
	}
	restore()

	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	limited := 0
	for i := range 20 {
		r := postQuery(t, c.url, fmt.Sprintf("hk_guess_%d", i), `{ __typename }`)
		switch {
		case r.status == http.StatusTooManyRequests && r.code() == "RATE_LIMITED" && r.header.Get("Retry-After") != "":
			limited++
		case r.status == http.StatusUnauthorized && r.code() == "UNAUTHENTICATED":
		default:
			t.Fatalf("guess %d: %d %q %s", i, r.status, r.code(), r.body)
		}
	}
	if limited < 10 {
		t.Errorf("%d of 20 guesses in a second were limited, want at least 10 (5 lookups a second)", limited)
	}
	// The workspace's own, cached key is not limited.
	if r := postQuery(t, c.url, c.key, `{ __typename }`); r.status != 200 {
		t.Errorf("good key during the guesses: %d %s", r.status, r.body)
	}

	// The Track API's Basic auth (site id and key) is cached and limited the
	// same way: it used to look up every unknown site id.
	t.Run("track API", func(t *testing.T) {
		site := e.siteID(c)
		track := func(a auth) int {
			st, _, _ := e.rest(http.MethodPut, "/api/v1/customers/p1", `{"email":"p1@example.com"}`, a)
			return st
		}
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		if st := track(basic(site, c.key)); st != http.StatusOK {
			t.Fatalf("good site id and key: %d", st)
		}
		if st := track(basic(site, "hk_wrong")); st != http.StatusUnauthorized {
			t.Fatalf("wrong key: %d, want 401", st)
		}
		if err := e.app.CH.Exec(ctx, "RENAME TABLE workspaces TO workspaces_away"); err != nil {
			t.Fatal(err)
		}
		defer restore()
		if st := track(basic(site, "hk_wrong")); st != http.StatusUnauthorized {
			t.Errorf("the same wrong key again: %d, want 401 from the cache", st)
		}
		if st := track(basic(site, c.key)); st != http.StatusOK {
			t.Errorf("good site id and key again: %d, want 200 from the cache", st)
		}
		restore()
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		limited := 0
		for i := range 20 {
			switch st := track(basic(fmt.Sprintf("site%d", i), "hk_x")); st {
			case http.StatusTooManyRequests:
				limited++
			case http.StatusUnauthorized:
			default:
				t.Fatalf("guess %d: %d", i, st)
			}
		}
		if limited < 10 {
			t.Errorf("%d of 20 Track API guesses in a second were limited, want at least 10", limited)
		}
	})
}

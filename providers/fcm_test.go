package providers_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/providers/sim"
	"github.com/heraldpush/herald/providers/sim/fcmsim"
)

const testProject = "herald-test"

func startFCM(t *testing.T) *fcmsim.Server {
	t.Helper()
	s := fcmsim.New(nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start fcmsim: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func fcmSender(t *testing.T, s *fcmsim.Server, saJSON []byte, timeout time.Duration) providers.Sender {
	t.Helper()
	creds := providers.FCMCredentials{ServiceAccountJSON: string(saJSON)}
	if err := creds.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	snd, err := providers.NewFCM(context.Background(), creds, providers.FCMOptions{Endpoint: s.URL(), Timeout: timeout, TokenURIs: []string{s.TokenURL()}})
	if err != nil {
		t.Fatalf("NewFCM: %v", err)
	}
	return snd
}

func newAccount(t *testing.T, s *fcmsim.Server, project string) []byte {
	t.Helper()
	sa, err := s.NewServiceAccount(project)
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

func TestFCMPrefixes(t *testing.T) {
	s := startFCM(t)
	snd := fcmSender(t, s, newAccount(t, s, testProject), 2*time.Second)
	for _, tc := range []struct {
		prefix string
		want   providers.Result
	}{
		{"0123", providers.Result{Outcome: providers.Accepted, StatusCode: 200}},
		{"badd", providers.Result{Outcome: providers.BadToken, StatusCode: 400, Reason: "INVALID_ARGUMENT"}},
		{"dead", providers.Result{Outcome: providers.Unregistered, StatusCode: 404, Reason: "UNREGISTERED"}},
		{"f1a1", providers.Result{Outcome: providers.Transient, StatusCode: 503, Reason: "UNAVAILABLE"}},
		{"5030", providers.Result{Outcome: providers.Transient, StatusCode: 503, Reason: "UNAVAILABLE"}},
		{"5100", providers.Result{Outcome: providers.Accepted, StatusCode: 200}},
		{"4030", providers.Result{Outcome: providers.Permanent, StatusCode: 400, Reason: "INVALID_ARGUMENT"}},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			token := sim.Token(tc.prefix, 1)
			got := snd.Send(context.Background(), push(token))
			if diff := cmp.Diff(tc.want, got, ignoreID); diff != "" {
				t.Errorf("Send(%s) mismatch (-want +got):\n%s", token, diff)
			}
			if got.Outcome == providers.Accepted && !strings.HasPrefix(got.MessageID, "projects/"+testProject+"/messages/") {
				t.Errorf("MessageID = %q", got.MessageID)
			}
			if n := s.Count(token); n != 1 {
				t.Errorf("sim Count = %d, want exactly 1 request per Send", n)
			}
			if reqs := s.Requests(token); len(reqs) == 1 {
				var body struct {
					Message struct {
						Data    map[string]string `json:"data"`
						Android struct {
							CollapseKey string `json:"collapse_key"`
						} `json:"android"`
					} `json:"message"`
				}
				if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
					t.Fatal(err)
				}
				if body.Message.Data["CIO-Delivery-ID"] != "dlv-"+token[:8] || body.Message.Android.CollapseKey != "dlv-"+token[:8] {
					t.Errorf("body = %s", reqs[0].Body)
				}
			}
		})
	}
	if got, want := s.Total(), 7; got != want {
		t.Errorf("Total = %d, want %d", got, want)
	}
	if n := s.TokenRequests(); n != 1 {
		t.Errorf("token endpoint hit %d times, want 1 (the access token is cached)", n)
	}
}

func TestFCMOneRequestPerSend(t *testing.T) {
	s := startFCM(t)
	snd := fcmSender(t, s, newAccount(t, s, testProject), 5*time.Second)
	token := sim.Token("f1a2", 9)
	var got []providers.Outcome
	for i := range 3 {
		start := time.Now()
		got = append(got, snd.Send(context.Background(), push(token)).Outcome)
		if n := s.Count(token); n != i+1 {
			t.Errorf("after Send %d the sim saw %d requests, want %d", i+1, n, i+1)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Send %d took %v: the firebase client must not back off and retry", i+1, d)
		}
	}
	want := []providers.Outcome{providers.Transient, providers.Transient, providers.Accepted}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

func TestFCMNetworkErrorNoRetry(t *testing.T) {
	// A port nothing listens on: the firebase client would retry a refused
	// connection four times over about 7 s.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	s := startFCM(t)
	sa := newAccount(t, s, testProject)
	snd, err := providers.NewFCM(context.Background(), providers.FCMCredentials{ServiceAccountJSON: string(sa)},
		providers.FCMOptions{Endpoint: dead, Timeout: 5 * time.Second, TokenURIs: []string{s.TokenURL()}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got := snd.Send(context.Background(), push(sim.Token("0123", 2)))
	if got.Outcome != providers.Transient || got.StatusCode != 0 || !strings.Contains(got.Reason, "refused") {
		t.Errorf("Send = %+v, want Transient, connection refused", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Send took %v, want no retries", d)
	}
}

func TestFCMSlowTimeout(t *testing.T) {
	s := startFCM(t)
	snd := fcmSender(t, s, newAccount(t, s, testProject), 300*time.Millisecond)
	token := sim.Token("5101", 3)
	// Warm the access token so the timeout covers only the send.
	if r := snd.Send(context.Background(), push(sim.Token("0123", 3))); r.Outcome != providers.Accepted {
		t.Fatalf("warm-up Send = %+v", r)
	}
	start := time.Now()
	got := snd.Send(context.Background(), push(token))
	if got.Outcome != providers.Transient || got.StatusCode != 0 {
		t.Errorf("Send = %+v, want Transient", got)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("Send took %v, want it bounded by the timeout", d)
	}
	if n := s.Count(token); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
}

func TestFCMBadCredentials(t *testing.T) {
	s := startFCM(t)
	other := startFCM(t)

	// A key the simulator never issued: the token exchange fails.
	foreign := map[string]any{}
	if err := json.Unmarshal(newAccount(t, other, testProject), &foreign); err != nil {
		t.Fatal(err)
	}
	foreign["token_uri"] = s.URL() + "/token"
	foreignJSON, _ := json.Marshal(foreign)

	// A real account of another project: the send is forbidden.
	wrongProject := map[string]any{}
	if err := json.Unmarshal(newAccount(t, s, "other-project"), &wrongProject); err != nil {
		t.Fatal(err)
	}
	wrongProject["project_id"] = testProject
	wrongProjectJSON, _ := json.Marshal(wrongProject)

	for _, tc := range []struct {
		name   string
		sa     []byte
		status int
	}{
		{"unknown key", foreignJSON, 400},
		{"other project", wrongProjectJSON, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snd := fcmSender(t, s, tc.sa, 2*time.Second)
			got := snd.Send(context.Background(), push(sim.Token("0123", 4)))
			if got.Outcome != providers.Permanent || got.StatusCode != tc.status {
				t.Errorf("Send = %+v, want Permanent with status %d", got, tc.status)
			}
		})
	}
}

func TestFCMTooLarge(t *testing.T) {
	s := startFCM(t)
	snd := fcmSender(t, s, newAccount(t, s, testProject), 2*time.Second)
	p := push(sim.Token("0123", 5))
	p.Data = map[string]string{"blob": strings.Repeat("x", providers.MaxPayloadBytes)}
	got := snd.Send(context.Background(), p)
	want := providers.Result{Outcome: providers.Permanent, Reason: "PayloadTooLarge"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Send mismatch (-want +got):\n%s", diff)
	}
	if s.Total() != 0 {
		t.Errorf("sim got %d requests, want none", s.Total())
	}
}

// TestFCMSizeBoundary: the request body the sender measures is
// PayloadJSON's: a message of exactly MaxPayloadBytes is sent, one byte
// more is refused without a request.
func TestFCMSizeBoundary(t *testing.T) {
	s := startFCM(t)
	snd := fcmSender(t, s, newAccount(t, s, testProject), 2*time.Second)
	sized := func(n int) providers.Push {
		p := push(sim.Token("0123", 6))
		p.Data = map[string]string{"blob": ""}
		base, err := providers.PayloadSize(providers.Android, p)
		if err != nil {
			t.Fatal(err)
		}
		p.Data["blob"] = strings.Repeat("x", n-base)
		if got, _ := providers.PayloadSize(providers.Android, p); got != n {
			t.Fatalf("payload of %d bytes, want %d", got, n)
		}
		return p
	}
	if got := snd.Send(context.Background(), sized(providers.MaxPayloadBytes)); got.Outcome != providers.Accepted {
		t.Errorf("a payload of MaxPayloadBytes: %+v, want Accepted", got)
	}
	before := s.Total()
	want := providers.Result{Outcome: providers.Permanent, Reason: "PayloadTooLarge"}
	if diff := cmp.Diff(want, snd.Send(context.Background(), sized(providers.MaxPayloadBytes+1))); diff != "" {
		t.Errorf("a payload one byte over (-want +got):\n%s", diff)
	}
	if n := s.Total() - before; n != 0 {
		t.Errorf("sim got %d requests for the oversized push, want none", n)
	}
}

func TestFCMValidate(t *testing.T) {
	for _, tc := range []struct {
		name, json, want string
	}{
		{"not json", "{", "service account JSON"},
		{"missing fields", `{"type":"service_account","project_id":"p"}`, "client_email, private_key, token_uri"},
		{"wrong type", `{"type":"authorized_user"}`, "service_account"},
		{"bad key", `{"project_id":"p","client_email":"a@p.iam.gserviceaccount.com","private_key":"nope","token_uri":"http://x/token"}`, "PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := providers.FCMCredentials{ServiceAccountJSON: tc.json}.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestFCMKeepsConnections: 100 concurrent sends, five times over, through
// a counting TCP proxy to the simulator (HTTP/1.1): the sender keeps its
// connections between rounds, so it opens about 100 in all, not one for
// most sends (with net/http's defaults, 2 idle per host and 100 in all,
// it opened 491 here).
func TestFCMKeepsConnections(t *testing.T) {
	s := startFCM(t)
	sa := newAccount(t, s, testProject)
	upstream := strings.TrimPrefix(s.URL(), "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	snd, err := providers.NewFCM(context.Background(), providers.FCMCredentials{ServiceAccountJSON: string(sa)},
		providers.FCMOptions{Endpoint: "http://" + ln.Addr().String(), Timeout: 5 * time.Second, TokenURIs: []string{s.TokenURL()}})
	if err != nil {
		t.Fatal(err)
	}
	const concurrent, rounds = 100, 5
	for r := range rounds {
		var wg sync.WaitGroup
		for i := range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got := snd.Send(context.Background(), push(sim.Token("0123", r*concurrent+i))); got.Outcome != providers.Accepted {
					t.Errorf("Send = %+v, want Accepted", got)
				}
			}()
		}
		wg.Wait()
	}
	t.Logf("%d connections for %d sends, %d at a time", accepted.Load(), concurrent*rounds, concurrent)
	if n := accepted.Load(); n > concurrent+concurrent/4 {
		t.Errorf("%d connections for %d rounds of %d concurrent sends, want at most %d: connections are not kept", n, rounds, concurrent, concurrent+concurrent/4)
	}
}

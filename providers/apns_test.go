package providers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/providers/sim"
	"github.com/heraldpush/herald/providers/sim/apnssim"
)

const (
	testTeam   = "TEAM123456"
	testKeyID  = "KEY1234567"
	testBundle = "com.example.herald"
)

func startAPNS(t *testing.T) *apnssim.Server {
	t.Helper()
	s := apnssim.New(nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start apnssim: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func tokenSender(t *testing.T, s *apnssim.Server, timeout time.Duration) providers.Sender {
	t.Helper()
	p8, err := s.NewTokenKey(testTeam, testKeyID)
	if err != nil {
		t.Fatal(err)
	}
	creds := providers.APNSCredentials{KeyID: testKeyID, TeamID: testTeam, BundleID: testBundle, P8: string(p8)}
	if err := creds.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	snd, err := providers.NewAPNS(creds, providers.APNSOptions{Host: s.URL(), RootCAs: s.RootCAs(), Timeout: timeout})
	if err != nil {
		t.Fatalf("NewAPNS: %v", err)
	}
	return snd
}

func push(token string) providers.Push {
	return providers.Push{DeliveryID: "dlv-" + token[:8], Token: token, Title: "Hi", Body: "there"}
}

// ignoreID drops the random message id after checking it is there.
var ignoreID = cmpopts.IgnoreFields(providers.Result{}, "MessageID")

func TestAPNSPrefixes(t *testing.T) {
	s := startAPNS(t)
	snd := tokenSender(t, s, 2*time.Second)
	for _, tc := range []struct {
		prefix string
		want   providers.Result
	}{
		{"0123", providers.Result{Outcome: providers.Accepted, StatusCode: 200}},
		{"badd", providers.Result{Outcome: providers.BadToken, StatusCode: 400, Reason: "BadDeviceToken"}},
		{"dead", providers.Result{Outcome: providers.Unregistered, StatusCode: 410, Reason: "Unregistered"}},
		{"f1a1", providers.Result{Outcome: providers.Transient, StatusCode: 503, Reason: "ServiceUnavailable"}},
		{"5030", providers.Result{Outcome: providers.Transient, StatusCode: 503, Reason: "ServiceUnavailable"}},
		{"5100", providers.Result{Outcome: providers.Accepted, StatusCode: 200}},
		{"4030", providers.Result{Outcome: providers.Permanent, StatusCode: 413, Reason: "PayloadTooLarge"}},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			token := sim.Token(tc.prefix, 1)
			got := snd.Send(context.Background(), push(token))
			if diff := cmp.Diff(tc.want, got, ignoreID); diff != "" {
				t.Errorf("Send(%s) mismatch (-want +got):\n%s", token, diff)
			}
			if (got.Outcome == providers.Accepted) != (got.MessageID != "") {
				t.Errorf("MessageID = %q for outcome %v", got.MessageID, got.Outcome)
			}
			if n := s.Count(token); n != 1 {
				t.Errorf("sim Count = %d, want 1", n)
			}
			reqs := s.Requests(token)
			if len(reqs) == 1 {
				h := reqs[0].Headers
				if h.Get("apns-topic") != testBundle || h.Get("apns-collapse-id") != "dlv-"+token[:8] ||
					h.Get("apns-push-type") != "alert" || h.Get("apns-priority") != "10" {
					t.Errorf("headers = %v", h)
				}
				if !strings.Contains(string(reqs[0].Body), `"CIO-Delivery-ID":"dlv-`) {
					t.Errorf("body = %s", reqs[0].Body)
				}
			}
		})
	}
	if got, want := s.Total(), 7; got != want {
		t.Errorf("Total = %d, want %d", got, want)
	}
	s.Reset()
	if s.Total() != 0 || s.Count(sim.Token("0123", 1)) != 0 {
		t.Errorf("Reset left counts")
	}
}

func TestAPNSFlaky(t *testing.T) {
	s := startAPNS(t)
	snd := tokenSender(t, s, 2*time.Second)
	token := sim.Token("f1a2", 7)
	var got []providers.Outcome
	for range 3 {
		got = append(got, snd.Send(context.Background(), push(token)).Outcome)
	}
	want := []providers.Outcome{providers.Transient, providers.Transient, providers.Accepted}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if n := s.Count(token); n != 3 {
		t.Errorf("Count = %d, want 3", n)
	}
}

func TestAPNSSlowTimeout(t *testing.T) {
	s := startAPNS(t)
	snd := tokenSender(t, s, 150*time.Millisecond)
	token := sim.Token("5101", 1) // waits 1 s
	start := time.Now()
	got := snd.Send(context.Background(), push(token))
	if got.Outcome != providers.Transient || got.StatusCode != 0 || got.Reason == "" {
		t.Errorf("Send = %+v, want Transient with no status and a reason", got)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("Send took %v, want it bounded by the 150ms timeout", d)
	}
}

func TestAPNSBadJWT(t *testing.T) {
	s := startAPNS(t)
	other := apnssim.New(nil) // its keys are unknown to s
	unknownP8, err := other.NewTokenKey(testTeam, "UNKNOWNKEY")
	if err != nil {
		t.Fatal(err)
	}
	knownP8, err := s.NewTokenKey(testTeam, testKeyID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		creds providers.APNSCredentials
	}{
		{"unknown key", providers.APNSCredentials{KeyID: "UNKNOWNKEY", TeamID: testTeam, BundleID: testBundle, P8: string(unknownP8)}},
		{"wrong team", providers.APNSCredentials{KeyID: testKeyID, TeamID: "OTHERTEAM1", BundleID: testBundle, P8: string(knownP8)}},
		{"wrong signing key", providers.APNSCredentials{KeyID: testKeyID, TeamID: testTeam, BundleID: testBundle, P8: string(unknownP8)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snd, err := providers.NewAPNS(tc.creds, providers.APNSOptions{Host: s.URL(), RootCAs: s.RootCAs(), Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			got := snd.Send(context.Background(), push(sim.Token("0123", 2)))
			want := providers.Result{Outcome: providers.Permanent, StatusCode: 403, Reason: "InvalidProviderToken"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Send mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAPNSCertificate(t *testing.T) {
	s := startAPNS(t)
	pemBytes, err := s.IssueClientCert(testBundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bundle string
		want   providers.Result
	}{
		{testBundle, providers.Result{Outcome: providers.Accepted, StatusCode: 200}},
		{"com.example.other", providers.Result{Outcome: providers.Permanent, StatusCode: 400, Reason: "TopicDisallowed"}},
	} {
		t.Run(tc.bundle, func(t *testing.T) {
			creds := providers.APNSCredentials{BundleID: tc.bundle, CertPEM: string(pemBytes)}
			if err := creds.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			snd, err := providers.NewAPNS(creds, providers.APNSOptions{Host: s.URL(), RootCAs: s.RootCAs(), Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			got := snd.Send(context.Background(), push(sim.Token("0123", 3)))
			if diff := cmp.Diff(tc.want, got, ignoreID); diff != "" {
				t.Errorf("Send mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAPNSForeignCertificate(t *testing.T) {
	s := startAPNS(t)
	// A certificate signed by another CA: the server refuses it during the
	// TLS handshake, as Apple does with a revoked push certificate.
	other := apnssim.New(nil)
	if err := other.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	pemBytes, err := other.IssueClientCert(testBundle)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := providers.NewAPNS(providers.APNSCredentials{BundleID: testBundle, CertPEM: string(pemBytes)},
		providers.APNSOptions{Host: s.URL(), RootCAs: s.RootCAs(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := snd.Send(context.Background(), push(sim.Token("0123", 4)))
	if got.Outcome != providers.Permanent || got.StatusCode != 0 || !strings.Contains(got.Reason, "certificate") {
		t.Errorf("Send with a foreign certificate = %+v, want Permanent", got)
	}
}

func TestAPNSUntrustedServer(t *testing.T) {
	s := startAPNS(t)
	p8, err := s.NewTokenKey(testTeam, testKeyID)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := providers.NewAPNS(providers.APNSCredentials{KeyID: testKeyID, TeamID: testTeam, BundleID: testBundle, P8: string(p8)},
		providers.APNSOptions{Host: s.URL(), Timeout: 2 * time.Second}) // system roots: the sim's CA is unknown
	if err != nil {
		t.Fatal(err)
	}
	got := snd.Send(context.Background(), push(sim.Token("0123", 5)))
	if got.Outcome != providers.Permanent || got.StatusCode != 0 {
		t.Errorf("Send = %+v, want Permanent (untrusted server certificate)", got)
	}
}

func TestAPNSConnectionRefused(t *testing.T) {
	s := startAPNS(t)
	snd := tokenSender(t, s, 2*time.Second)
	s.Close()
	got := snd.Send(context.Background(), push(sim.Token("0123", 6)))
	if got.Outcome != providers.Transient || got.StatusCode != 0 {
		t.Errorf("Send = %+v, want Transient", got)
	}
}

func TestAPNSTooLarge(t *testing.T) {
	s := startAPNS(t)
	snd := tokenSender(t, s, 2*time.Second)
	p := push(sim.Token("0123", 7))
	p.Body = strings.Repeat("x", providers.MaxPayloadBytes)
	got := snd.Send(context.Background(), p)
	want := providers.Result{Outcome: providers.Permanent, Reason: "PayloadTooLarge"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Send mismatch (-want +got):\n%s", diff)
	}
	if s.Total() != 0 {
		t.Errorf("sim got %d requests, want none", s.Total())
	}
}

func TestAPNSValidate(t *testing.T) {
	s := startAPNS(t)
	p8, _ := s.NewTokenKey(testTeam, testKeyID)
	for _, tc := range []struct {
		name  string
		creds providers.APNSCredentials
		want  string // substring of the error
	}{
		{"no bundle", providers.APNSCredentials{KeyID: "K", TeamID: "T", P8: string(p8)}, "bundle id"},
		{"nothing", providers.APNSCredentials{BundleID: testBundle}, "need a .p8 key"},
		{"both", providers.APNSCredentials{BundleID: testBundle, P8: string(p8), CertPEM: "x"}, "not both"},
		{"no key id", providers.APNSCredentials{BundleID: testBundle, TeamID: "T", P8: string(p8)}, "key id and team id"},
		{"bad p8", providers.APNSCredentials{BundleID: testBundle, KeyID: "K", TeamID: "T", P8: "garbage"}, ".p8 key"},
		{"cert without key", providers.APNSCredentials{BundleID: testBundle, CertPEM: string(s.CACertPEM())}, "certificate PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.creds.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

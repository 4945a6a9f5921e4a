package providers_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/providers/sim"
)

// secretBody stands for what an internal service answers: it must never
// reach a Result's Reason, which the workspace reads as lastError.
const secretBody = "SECRET-7f3a internal answer"

// leakyServer answers every request with status and a non-JSON body
// holding secretBody, and counts requests.
func leakyServer(t *testing.T, status int, tls bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(secretBody))
	})
	var s *httptest.Server
	if tls {
		s = httptest.NewUnstartedServer(h)
		s.EnableHTTP2 = true
		s.StartTLS()
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s, &n
}

// withTokenURI rewrites a service account's token_uri.
func withTokenURI(t *testing.T, sa []byte, uri string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(sa, &m); err != nil {
		t.Fatal(err)
	}
	m["token_uri"] = uri
	b, _ := json.Marshal(m)
	return b
}

func TestFCMTokenURIAllowList(t *testing.T) {
	s := startFCM(t)
	leaky, hits := leakyServer(t, http.StatusBadRequest, false)
	creds := providers.FCMCredentials{ServiceAccountJSON: string(withTokenURI(t, newAccount(t, s, testProject), leaky.URL+"/token"))}
	if err := creds.CheckTokenURI([]string{s.TokenURL()}); !errors.Is(err, providers.ErrTokenURINotAllowed) {
		t.Errorf("CheckTokenURI(another host) = %v, want ErrTokenURINotAllowed", err)
	}
	if err := creds.CheckTokenURI(nil); !errors.Is(err, providers.ErrTokenURINotAllowed) {
		t.Errorf("CheckTokenURI(default list) = %v, want ErrTokenURINotAllowed", err)
	}
	google := providers.FCMCredentials{ServiceAccountJSON: string(withTokenURI(t, newAccount(t, s, testProject), "https://oauth2.googleapis.com/token"))}
	if err := google.CheckTokenURI(nil); err != nil {
		t.Errorf("CheckTokenURI(Google's endpoint) = %v, want nil", err)
	}
	// At send time too: credentials stored before the check was made.
	_, err := providers.NewFCM(context.Background(), creds, providers.FCMOptions{Endpoint: s.URL(), TokenURIs: []string{s.TokenURL()}})
	if !errors.Is(err, providers.ErrTokenURINotAllowed) {
		t.Errorf("NewFCM(another host) = %v, want ErrTokenURINotAllowed", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the disallowed token endpoint got %d requests, want 0", n)
	}
}

func TestFCMTokenEndpointBodyNotInReason(t *testing.T) {
	s := startFCM(t)
	leaky, hits := leakyServer(t, http.StatusBadRequest, false)
	uri := leaky.URL + "/token"
	creds := providers.FCMCredentials{ServiceAccountJSON: string(withTokenURI(t, newAccount(t, s, testProject), uri))}
	snd, err := providers.NewFCM(context.Background(), creds, providers.FCMOptions{Endpoint: s.URL(), Timeout: 2 * time.Second, TokenURIs: []string{uri}})
	if err != nil {
		t.Fatal(err)
	}
	got := snd.Send(context.Background(), push(sim.Token("0123", 3)))
	if hits.Load() == 0 {
		t.Fatal("the token endpoint got no request")
	}
	if got.Outcome != providers.Permanent || got.StatusCode != http.StatusBadRequest || strings.Contains(got.Reason, "SECRET") {
		t.Errorf("Send = %+v, want Permanent, status 400, a Reason without the token endpoint's body", got)
	}
}

func TestFCMErrorBodyNotInReason(t *testing.T) {
	s := startFCM(t)
	leaky, _ := leakyServer(t, http.StatusForbidden, false)
	snd, err := providers.NewFCM(context.Background(), providers.FCMCredentials{ServiceAccountJSON: string(newAccount(t, s, testProject))},
		providers.FCMOptions{Endpoint: leaky.URL, Timeout: 2 * time.Second, TokenURIs: []string{s.TokenURL()}})
	if err != nil {
		t.Fatal(err)
	}
	got := snd.Send(context.Background(), push(sim.Token("0123", 4)))
	if got.Outcome != providers.Permanent || got.StatusCode != http.StatusForbidden || strings.Contains(got.Reason, "SECRET") || got.Reason == "" {
		t.Errorf("Send = %+v, want Permanent, status 403, a reason code without the body", got)
	}
}

func TestAPNSNonJSONBodyNotInReason(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   providers.Outcome
	}{
		{http.StatusInternalServerError, providers.Transient},
		{http.StatusBadRequest, providers.Permanent},
	} {
		leaky, _ := leakyServer(t, tc.status, true)
		roots := x509.NewCertPool()
		roots.AddCert(leaky.Certificate())
		a := startAPNS(t)
		p8, err := a.NewTokenKey(testTeam, testKeyID)
		if err != nil {
			t.Fatal(err)
		}
		snd, err := providers.NewAPNS(providers.APNSCredentials{KeyID: testKeyID, TeamID: testTeam, BundleID: testBundle, P8: string(p8)},
			providers.APNSOptions{Host: leaky.URL, RootCAs: roots, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		got := snd.Send(context.Background(), push(sim.Token("0123", 5)))
		want := providers.Result{Outcome: tc.want, StatusCode: tc.status, Reason: http.StatusText(tc.status)}
		if got != want {
			t.Errorf("Send to a %d with a text body = %+v, want %+v", tc.status, got, want)
		}
	}
}

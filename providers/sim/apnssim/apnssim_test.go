package apnssim

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"golang.org/x/net/http2"

	"github.com/heraldpush/herald/providers/sim"
)

// TestRawAnswers drives the simulator with a bare HTTP/2 client to check
// answers the apns2-based tests in package providers cannot reach.
func TestRawAnswers(t *testing.T) {
	s := New(nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p8, err := s.NewTokenKey("TEAM", "KID")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(p8)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(iat time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "TEAM", "iat": iat.Unix()})
		tok.Header["kid"] = "KID"
		str, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return str
	}
	client := &http.Client{Transport: &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}}}
	good := sign(time.Now())
	body := []byte(`{"aps":{"alert":"hi"}}`)
	for _, tc := range []struct {
		name       string
		path, auth string
		body       []byte
		status     int
		reason     string
	}{
		{"no credentials", "/3/device/" + sim.Token("0123", 1), "", body, 403, "MissingProviderToken"},
		{"expired jwt", "/3/device/" + sim.Token("0123", 1), sign(time.Now().Add(-2 * time.Hour)), body, 403, "ExpiredProviderToken"},
		{"garbage jwt", "/3/device/" + sim.Token("0123", 1), "abc.def.ghi", body, 403, "InvalidProviderToken"},
		{"not hex", "/3/device/not-a-token", good, body, 400, "BadDeviceToken"},
		{"too large", "/3/device/" + sim.Token("0123", 1), good, bytes.Repeat([]byte("x"), sim.MaxPayloadBytes+1), 413, "PayloadTooLarge"},
		{"empty", "/3/device/" + sim.Token("0123", 1), good, nil, 400, "PayloadEmpty"},
		{"bad path", "/2/device/x", good, body, 404, "BadPath"},
		{"unregistered", "/3/device/" + sim.Token("dead", 1), good, body, 410, "Unregistered"},
		{"ok", "/3/device/" + sim.Token("0123", 1), good, body, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.URL()+tc.path, bytes.NewReader(tc.body))
			req.Header.Set("apns-topic", "com.example")
			if tc.auth != "" {
				req.Header.Set("authorization", "bearer "+tc.auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("proto = %s, want HTTP/2", resp.Proto)
			}
			var got struct {
				Reason    string `json:"reason"`
				Timestamp int64  `json:"timestamp"`
			}
			json.NewDecoder(resp.Body).Decode(&got)
			if resp.StatusCode != tc.status || got.Reason != tc.reason {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, got.Reason, tc.status, tc.reason)
			}
			if (tc.status == 410) != (got.Timestamp != 0) {
				t.Errorf("timestamp = %d for status %d", got.Timestamp, tc.status)
			}
			if id := resp.Header.Get("apns-id"); len(id) != 36 || strings.Count(id, "-") != 4 {
				t.Errorf("apns-id = %q", id)
			}
		})
	}
}

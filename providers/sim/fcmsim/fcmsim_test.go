package fcmsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/providers/sim"
)

// TestRawAnswers checks the answers the firebase-client tests in package
// providers cannot reach.
func TestRawAnswers(t *testing.T) {
	s := New(nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	resp, err := http.PostForm(s.URL()+"/token", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {"a.b.c"}})
	if err != nil {
		t.Fatal(err)
	}
	var oauth struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&oauth)
	resp.Body.Close()
	if resp.StatusCode != 400 || oauth.Error != "invalid_grant" {
		t.Errorf("bad assertion: got %d %q, want 400 invalid_grant", resp.StatusCode, oauth.Error)
	}

	for _, tc := range []struct {
		name, auth, body string
		status           int
		code             string
	}{
		{"no bearer", "", `{"message":{"token":"abc"}}`, 401, "UNAUTHENTICATED"},
		{"unknown bearer", "Bearer ya29.nope", `{"message":{"token":"abc"}}`, 401, "UNAUTHENTICATED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/projects/p/messages:send", strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got struct {
				Error struct {
					Code   int
					Status string
				}
			}
			json.NewDecoder(resp.Body).Decode(&got)
			if resp.StatusCode != tc.status || got.Error.Status != tc.code || got.Error.Code != tc.status {
				t.Errorf("got %d %+v, want %d %s", resp.StatusCode, got.Error, tc.status, tc.code)
			}
		})
	}
	if s.Count("abc") != 2 {
		t.Errorf("Count = %d, want 2", s.Count("abc"))
	}
}

// TestTooLarge sends an authorized oversized message.
func TestTooLarge(t *testing.T) {
	s := New(nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.mu.Lock()
	s.tokens["ya29.test"] = accessToken{projectID: "p", expires: farFuture()}
	s.mu.Unlock()
	body := `{"message":{"token":"abc","data":{"x":"` + strings.Repeat("x", sim.MaxPayloadBytes) + `"}}}`
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/projects/p/messages:send", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer ya29.test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
}

func farFuture() time.Time { return time.Now().Add(time.Hour) }

package server_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/redistest"
)

// FuzzGraphQLRequest feeds raw HTTP requests to /graphql of a Herald on the
// real ClickHouse and Redis: whatever the bytes, the handler never panics,
// never answers 5xx or INTERNAL, never logs at ERROR, and answers within
// its bounds. "$KEY" in an input stands for a valid API key, so inputs get
// past the key check. Seeds: testdata/fuzz/FuzzGraphQLRequest.
// Run: go test -run '^$' -fuzz FuzzGraphQLRequest -parallel 1 ./server/
func FuzzGraphQLRequest(f *testing.F) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	a := openHerald(f, app.Config{
		RedisAddr: redistest.Addr(), RedisDB: redistest.New(f).Options().DB, SecretKey: testSecretKey(f),
		SendRate: -1, ReportRate: -1, AuthLookupRate: -1,
	}, logger)
	_, key := newWorkspace(f, a.Store, "fuzz")
	h := a.Handler()
	f.Add([]byte("POST /graphql HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer $KEY\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"query\":\"{ __typename }\"}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = bytes.ReplaceAll(raw, []byte("$KEY"), []byte(key))
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return // not HTTP: net/http answers 400 before any handler
		}
		if req.Header.Get("Upgrade") != "" {
			return // websockets need a real connection: subscriptions_e2e_test.go
		}
		req.URL.Path, req.RemoteAddr = "/graphql", "192.0.2.1:4321"
		rec := httptest.NewRecorder()
		before := len(logs.String())
		start := time.Now()
		h.ServeHTTP(rec, req)
		took := time.Since(start)
		body := rec.Body.String()
		if rec.Code >= 500 || strings.Contains(body, `"INTERNAL"`) {
			t.Fatalf("%d %.500s", rec.Code, body)
		}
		if got := logs.String()[before:]; strings.Contains(got, "level=ERROR") {
			t.Fatalf("logged at ERROR: %.500s", got)
		}
		// Generous bounds: a refusal costs milliseconds, a quadratic
		// validation seconds.
		if took > 2*time.Second {
			t.Fatalf("took %s", took)
		}
		if rec.Body.Len() > 1<<20 {
			t.Fatalf("answer of %d bytes", rec.Body.Len())
		}
		if req.ContentLength > 1<<20 && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("a body of %d bytes got %d", req.ContentLength, rec.Code)
		}
		_, _ = io.Copy(io.Discard, req.Body)
	})
}

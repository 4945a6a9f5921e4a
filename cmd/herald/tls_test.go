package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coderws "github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/providers/sim"
	"github.com/heraldpush/herald/providers/sim/apnssim"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir; it returns their paths and a pool trusting only that
// certificate.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "herald test " + name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// logWatcher is a logger that sends the URL of "herald API listening" to
// the first channel it returns, and the messages of errors (with their
// attributes) to the second. HERALD_TEST_LOG=1 also prints the logs.
func logWatcher(t *testing.T) (*slog.Logger, <-chan string, <-chan string) {
	urls, errs := make(chan string, 1), make(chan string, 100)
	var h slog.Handler = slog.DiscardHandler
	if os.Getenv("HERALD_TEST_LOG") != "" {
		h = slog.NewTextHandler(os.Stderr, nil)
	}
	return slog.New(urlHandler{Handler: h, urls: urls, errs: errs}), urls, errs
}

type urlHandler struct {
	slog.Handler
	urls, errs chan string
}

func (h urlHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h urlHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "herald API listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "url" {
				h.urls <- a.Value.String()
			}
			return true
		})
	}
	if r.Level >= slog.LevelError {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
		select {
		case h.errs <- msg:
		default:
		}
	}
	if h.Handler.Enabled(ctx, r.Level) {
		return h.Handler.Handle(ctx, r)
	}
	return nil
}

func (h urlHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return urlHandler{Handler: h.Handler.WithAttrs(as), urls: h.urls, errs: h.errs}
}

func (h urlHandler) WithGroup(g string) slog.Handler {
	return urlHandler{Handler: h.Handler.WithGroup(g), urls: h.urls, errs: h.errs}
}

// openTestApp opens Herald with cfg on a new ClickHouse database (dropped
// at the end) and a Redis database of its own.
func openTestApp(ctx context.Context, t *testing.T, cfg app.Config) *app.App {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "herald_e2e_" + hex.EncodeToString(b)
	cfg.ClickHouseAddr, cfg.ClickHouseDatabase = chtest.Addr(), db
	cfg.RedisAddr, cfg.RedisDB = redistest.Addr(), redistest.New(t).Options().DB
	a, err := app.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open herald: %v", err)
	}
	t.Cleanup(func() {
		_ = a.CH.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		a.Close()
	})
	return a
}

// startCommand runs `herald args…` in this process on a's databases until
// the test ends (as main does, with a context that ends instead of a
// signal) and returns the URL it logged on urls.
func startCommand(ctx context.Context, t *testing.T, a *app.App, logger *slog.Logger, urls <-chan string, args ...string) string {
	t.Helper()
	args = append(args, "--clickhouse", a.Cfg.ClickHouseAddr, "--database", a.Cfg.ClickHouseDatabase,
		"--redis", a.Cfg.RedisAddr, "--redis-db", fmt.Sprint(a.Cfg.RedisDB))
	sctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- run(sctx, args, logger) }()
	t.Cleanup(func() {
		stop()
		if err := <-errc; err != nil {
			t.Errorf("herald %s: %v", args[0], err)
		}
	})
	select {
	case url := <-urls:
		return url
	case err := <-errc:
		errc <- err
		t.Fatalf("herald %s ended before listening: %v", args[0], err)
	case <-ctx.Done():
		t.Fatalf("herald %s did not listen", args[0])
	}
	return ""
}

// `herald serve` with HERALD_TLS_CERT_FILE and HERALD_TLS_KEY_FILE serves
// HTTPS (HTTP/2 through ALPN) and wss: a push sent with a GraphQL mutation
// over HTTPS is followed over a wss subscription while an SDK report over
// HTTPS moves it to DELIVERED. The clients trust only the test's certificate.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir, "herald")
	secretKey := secret.NewKey()
	t.Setenv("HERALD_SECRET_KEY", secretKey)

	// The worker runs beside serve in this process (as `herald worker`
	// would), sending to the APNS simulator.
	apns := apnssim.New(slog.New(slog.DiscardHandler))
	if err := apns.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(apns.Close)
	key, _ := secret.ParseKey(secretKey)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := openTestApp(ctx, t, app.Config{
		SecretKey: key, APNSHost: apns.URL(), APNSRootCAs: apns.RootCAs(),
		RetryBase: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond, PollInterval: 20 * time.Millisecond, EventClaimIdle: time.Second,
	})
	w, err := a.StartWorker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	_, apiKey, _, err := createWorkspace(ctx, a.Store, "tls")
	if err != nil {
		t.Fatal(err)
	}

	logger, urls, errs := logWatcher(t)
	url := startCommand(ctx, t, a, logger, urls, "serve", "--addr", "127.0.0.1:0",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--report-rate", "-1", "--send-rate", "-1")
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("logged url %q, want https://…", url)
	}

	// HTTP/2 through ALPN, TLS 1.2 or later.
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := h2.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("GET /healthz: %s %s, TLS %v; want 200 over HTTP/2 and TLS ≥ 1.2", resp.Proto, resp.Status, resp.TLS != nil)
	}
	// A client that trusts only the system roots refuses the certificate:
	// what it got was the test's.
	if _, err := http.Get(url + "/healthz"); !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("GET with the system roots: %v, want a certificate verification error", err)
	}
	// Plain HTTP on the TLS port gets 400.
	if resp, err := http.Get("http" + strings.TrimPrefix(url, "https") + "/healthz"); err != nil {
		t.Errorf("plain HTTP on the TLS port: %v, want 400", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS port: %s, want 400", resp.Status)
		}
	}

	// GraphQL with the key, over HTTPS.
	gql := &gqlClient{url: url + "/graphql", key: apiKey, http: h2}
	p8, err := apns.NewTokenKey("TEAM000001", "KEY0000001")
	if err != nil {
		t.Fatal(err)
	}
	must := func(q string, v map[string]any) map[string]any {
		t.Helper()
		d, err := gql.do(ctx, q, v)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return d
	}
	must(`mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }`, map[string]any{"in": map[string]any{
		"apns": map[string]any{"bundleId": "com.example.app", "keyId": "KEY0000001", "teamId": "TEAM000001", "p8": string(p8)}}})
	tok := sim.Token("5101", 1) // slow (1 s): the subscriber sees the push before it is SENT
	must(`mutation { identifyPerson(input: {id: "p1"}) { id } }`, nil)
	must(`mutation($t: String!) { registerDevice(input: {personId: "p1", platform: IOS, token: $t}) { token } }`, map[string]any{"t": tok})
	camp := must(`mutation { createCampaign(input: {name: "TLS"}) { id } }`, nil)
	msg := must(`mutation($c: ID!) { createPushMessage(input: {campaignId: $c, name: "m", title: "Hello", body: "over TLS"}) { id } }`,
		map[string]any{"c": camp["createCampaign"].(map[string]any)["id"]})
	sent := must(`mutation($m: ID!) { sendPush(input: {messageId: $m, personId: "p1"}) { id } }`,
		map[string]any{"m": msg["createPushMessage"].(map[string]any)["id"]})
	id := sent["sendPush"].(map[string]any)["id"].(string)

	// graphql-transport-ws over wss (HTTP/1.1 upgrade).
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	conn, _, err := coderws.Dial(ctx, "wss"+strings.TrimPrefix(url, "https")+"/graphql",
		&coderws.DialOptions{HTTPClient: h1, Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatalf("dial wss: %v", err)
	}
	defer conn.Close(coderws.StatusNormalClosure, "")
	type wsMsg struct {
		ID      string          `json:"id,omitempty"`
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload,omitempty"`
	}
	send := func(m wsMsg) {
		t.Helper()
		if err := wsjson.Write(ctx, conn, m); err != nil {
			t.Fatal(err)
		}
	}
	auth, _ := json.Marshal(map[string]string{"Authorization": "Bearer " + apiKey})
	send(wsMsg{Type: "connection_init", Payload: auth})
	sub, _ := json.Marshal(map[string]any{"query": `subscription($id: ID!) { deliveryUpdated(id: $id) { status } }`, "variables": map[string]any{"id": id}})
	var seen []string
	reported := false
	for len(seen) == 0 || seen[len(seen)-1] != "DELIVERED" {
		var m wsMsg
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			t.Fatalf("read wss after statuses %v: %v", seen, err)
		}
		switch m.Type {
		case "connection_ack":
			send(wsMsg{ID: "1", Type: "subscribe", Payload: sub})
		case "ping":
			send(wsMsg{Type: "pong"})
		case "next":
			var p struct {
				Data struct {
					DeliveryUpdated struct{ Status string } `json:"deliveryUpdated"`
				} `json:"data"`
				Errors []struct{ Message string } `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
				t.Fatalf("next %s: %v", m.Payload, err)
			}
			st := p.Data.DeliveryUpdated.Status
			if len(seen) == 0 || seen[len(seen)-1] != st {
				seen = append(seen, st)
			}
			if st == "SENT" && !reported {
				// The SDK's report, over HTTPS.
				reported = true
				resp, err := h2.Post(url+"/push/events", "application/json",
					strings.NewReader(fmt.Sprintf(`{"delivery_id":%q,"event":"delivered","device_id":%q}`, id, tok)))
				if err != nil {
					t.Fatalf("POST /push/events over https: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					t.Fatalf("POST /push/events: %s %s", resp.Status, body)
				}
			}
		default:
			t.Fatalf("unexpected %s %s after statuses %v", m.Type, m.Payload, seen)
		}
	}
	t.Logf("statuses over wss: %v", seen)
	if !reported {
		t.Errorf("statuses %v: DELIVERED without a report", seen)
	}

	// SIGHUP reads the pair again. A new certificate without its key is
	// refused and the old one stays; with its key it is served.
	get := func(pool *x509.CertPool) error { // a new connection each time
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := c.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	newCert, newKey, newPool := selfSigned(t, dir, "renewed")
	replace := func(dst, src string) {
		t.Helper()
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			t.Fatal(err)
		}
	}
	replace(certFile, newCert)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-errs:
		if !strings.Contains(msg, "not reloaded") || !strings.Contains(msg, "private key does not match public key") {
			t.Errorf("after SIGHUP with a mismatched key: logged %q", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP with a mismatched key: nothing logged")
	}
	if err := get(pool); err != nil {
		t.Errorf("after a refused reload, the old certificate: %v", err)
	}
	replace(keyFile, newKey)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for get(newPool) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the renewed certificate is not served: %v", get(newPool))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := get(pool); !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("after the reload, a client trusting only the old certificate: %v, want a verification error", err)
	}
}

// A TLS setting without the other, an unreadable file, or a key that is
// not the certificate's stops serve and dev at start with a message naming
// the settings.
func TestServeTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "a")
	_, otherKey, _ := selfSigned(t, dir, "b")
	t.Setenv("HERALD_SECRET_KEY", secret.NewKey())
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"cert without key", []string{"--tls-cert-file", certFile}, []string{"HERALD_TLS_CERT_FILE (--tls-cert-file) is set but HERALD_TLS_KEY_FILE (--tls-key-file) is not", "set both"}},
		{"key without cert", []string{"--tls-key-file", keyFile}, []string{"HERALD_TLS_KEY_FILE (--tls-key-file) is set but HERALD_TLS_CERT_FILE (--tls-cert-file) is not"}},
		{"key of another cert", []string{"--tls-cert-file", certFile, "--tls-key-file", otherKey}, []string{"HERALD_TLS_CERT_FILE " + certFile, "HERALD_TLS_KEY_FILE " + otherKey, "private key does not match public key", "give a PEM certificate"}},
		{"missing file", []string{"--tls-cert-file", filepath.Join(dir, "nope.crt"), "--tls-key-file", keyFile}, []string{"HERALD_TLS_CERT_FILE", "no such file"}},
	} {
		for _, cmd := range []string{"serve", "dev"} {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				// An address nothing listens on: had the check passed,
				// start-up would fail on the connection instead.
				args := []string{cmd, "--addr", "127.0.0.1:0", "--redis", "127.0.0.1:1", "--clickhouse", "127.0.0.1:1"}
				if cmd == "dev" {
					args = append(args, "--state-dir", t.TempDir(), "--apns-sim", "127.0.0.1:0", "--fcm-sim", "127.0.0.1:0")
				}
				args = append(args, tc.args...)
				err := run(ctx, args, slog.New(slog.DiscardHandler))
				if err == nil {
					t.Fatal("started, want an error")
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			})
		}
	}
}

// `herald dev` with the TLS settings serves HTTPS, and its own clients —
// the demo seeding over GraphQL and the simulated phones' SDK reports —
// reach it through TLS: the demo's pushes are reported delivered.
func TestDevTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "dev")
	t.Setenv("HERALD_SECRET_KEY", "") // dev makes its own
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := openTestApp(ctx, t, app.Config{})
	logger, urls, errs := logWatcher(t)
	url := startCommand(ctx, t, a, logger, urls, "dev", "--addr", "127.0.0.1:0",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--apns-sim", "127.0.0.1:0", "--fcm-sim", "127.0.0.1:0", "--state-dir", filepath.Join(dir, "state"),
		"--sim-delivered-rate", "1", "--sim-report-delay", "20ms")
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("logged url %q, want https://…", url)
	}
	for {
		var n uint64
		if err := a.CH.QueryRow(ctx, "SELECT count() FROM events WHERE kind = 'delivered'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case msg := <-errs:
			t.Fatalf("dev logged an error: %s", msg)
		case <-ctx.Done():
			t.Fatal("no delivered report from the simulated phones")
		case <-time.After(100 * time.Millisecond):
		}
	}
	env := readEnvFile(filepath.Join(dir, "state", "dev.env"))
	if !strings.HasPrefix(env["HERALD_URL"], "https://") {
		t.Errorf("dev.env HERALD_URL %q, want https://…", env["HERALD_URL"])
	}
}

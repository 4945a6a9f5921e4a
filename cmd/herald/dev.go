package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/providers/sim"
	"github.com/heraldpush/herald/providers/sim/apnssim"
	"github.com/heraldpush/herald/providers/sim/devicesim"
	"github.com/heraldpush/herald/providers/sim/fcmsim"
	"github.com/heraldpush/herald/server"
)

// dev runs everything in one process: the APNS and FCM simulators, the API,
// the worker, and a demo workspace whose key and site id are written to
// <state>/dev.env.
func dev(ctx context.Context, cfg app.Config, d *devFlags, logger *slog.Logger) error {
	cert, err := cfg.LoadCertificate()
	if err != nil {
		return err
	}
	// dev's own clients of the API trust exactly the certificate it serves.
	var clientTLS *tls.Config
	if cert != nil {
		clientTLS = cert.PinnedClientTLS()
	}
	// The device simulator learns Herald's URL once the API listens.
	var phones atomic.Pointer[devicesim.Simulator]
	onAccepted := func(token string, body []byte) {
		if p := phones.Load(); p != nil {
			p.Accepted(token, body)
		}
	}
	apns := apnssim.New(logger.With("component", "apnssim"))
	apns.OnAccepted = onAccepted
	if err := apns.Start(d.apnsSimAddr); err != nil {
		return fmt.Errorf("apns simulator on %s: %w", d.apnsSimAddr, err)
	}
	defer apns.Close()
	fcm := fcmsim.New(logger.With("component", "fcmsim"))
	fcm.OnAccepted = onAccepted
	if err := fcm.Start(d.fcmSimAddr); err != nil {
		return fmt.Errorf("fcm simulator on %s: %w", d.fcmSimAddr, err)
	}
	defer fcm.Close()
	cfg.APNSHost, cfg.APNSRootCAs, cfg.FCMEndpoint = apns.URL(), apns.RootCAs(), fcm.URL()
	cfg.FCMTokenURIs = append(cfg.FCMTokenURIs, fcm.TokenURL())
	if os.Getenv("HERALD_RETRY_BASE") == "" {
		cfg.RetryBase = 500 * time.Millisecond
	}
	if os.Getenv("HERALD_POLL_INTERVAL") == "" {
		cfg.PollInterval = 200 * time.Millisecond
	}

	if cfg.SecretKey == nil { // dev keeps its own key beside dev.env
		if cfg.SecretKey, err = devSecret(filepath.Join(d.stateDir, "secret.key")); err != nil {
			return err
		}
	}
	a, err := app.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()

	envFile := filepath.Join(d.stateDir, "dev.env")
	key, writeKey := readEnvFile(envFile)["HERALD_API_KEY"], readEnvFile(envFile)["HERALD_WRITE_KEY"]
	var ws clickhouse.Workspace
	if key != "" {
		if ws, err = a.Store.WorkspaceByKeyHash(ctx, server.HashKey(key)); errors.Is(err, clickhouse.ErrNotFound) {
			key = ""
		} else if err != nil {
			return err
		} else if wk, err := a.Store.WorkspaceByWriteKeyHash(ctx, server.HashKey(writeKey)); writeKey == "" || err != nil || wk.ID != ws.ID {
			// A demo workspace from before write keys: give it one.
			if writeKey, err = rotateWriteKey(ctx, a.Store, ws.ID); err != nil {
				return err
			}
		}
	}
	if key == "" {
		ws, key, writeKey, err = createWorkspace(ctx, a.Store, "demo")
		if err != nil {
			return err
		}
		logger.Info("created the demo workspace", "id", ws.ID)
	}

	return serveApp(ctx, a, cert, true, func(url string) {
		phones.Store(devicesim.New(devicesim.Options{URL: url, DeliveredRate: d.deliveredRate, OpenedRate: d.openedRate, Delay: d.reportDelay, TLS: clientTLS},
			logger.With("component", "devicesim")))
		if err := os.MkdirAll(d.stateDir, 0o700); err != nil {
			logger.Error("cannot write dev.env", "err", err)
		}
		// HERALD_SITE_ID beside the key: the Track API's Basic auth (and
		// Customer.io's clients) need both.
		env := fmt.Sprintf("HERALD_URL=%s\nHERALD_API_KEY=%s\nHERALD_SITE_ID=%s\nHERALD_WRITE_KEY=%s\nHERALD_APNS_SIM=%s\nHERALD_FCM_SIM=%s\n",
			url, key, ws.SiteID, writeKey, apns.URL(), fcm.URL())
		if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
			logger.Error("cannot write dev.env", "err", err)
		}
		go func() {
			// The simulators make new keys at every start, so the demo
			// workspace gets fresh credentials each time.
			c := &gqlClient{url: url + "/graphql", key: key, http: http.DefaultClient}
			if clientTLS != nil {
				c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
			}
			if err := setSimCredentials(ctx, c, apns, fcm); err != nil {
				logger.Error("dev: set simulator credentials", "err", err)
				return
			}
			if d.demo {
				if err := seedDemo(ctx, c); err != nil {
					logger.Error("dev: demo data", "err", err)
					return
				}
			}
			fmt.Printf("\nHerald is running at %s (dashboard at %s/, GraphiQL at %s/graphiql)\nAPI key: %s\n(written to %s)\n\n", url, url, url, key, envFile)
		}()
	})
}

// devSecret reads the dev secret key from path, making one the first time.
func devSecret(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		return secret.ParseKey(string(b))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	k := secret.NewKey()
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return secret.ParseKey(k)
}

func readEnvFile(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

func setSimCredentials(ctx context.Context, c *gqlClient, apns *apnssim.Server, fcm *fcmsim.Server) error {
	p8, err := apns.NewTokenKey("DEMOTEAM01", "DEMOKEY001")
	if err != nil {
		return err
	}
	sa, err := fcm.NewServiceAccount("herald-demo")
	if err != nil {
		return err
	}
	_, err = c.do(ctx, `mutation($in: PushCredentialsInput!) { setPushCredentials(input: $in) }`, map[string]any{"in": map[string]any{
		"apns": map[string]any{"bundleId": "com.example.herald", "keyId": "DEMOKEY001", "teamId": "DEMOTEAM01", "p8": string(p8)},
		"fcm":  map[string]any{"serviceAccountJson": string(sa)},
	}})
	return err
}

// seedDemo creates a campaign, a message and people whose tokens show each
// simulator behaviour, then sends the message to each of them once.
func seedDemo(ctx context.Context, c *gqlClient) error {
	if res, err := c.do(ctx, `query { person(id: "demo-alice") { id } }`, nil); err == nil && res != nil {
		return nil // already seeded
	}
	camp, err := c.do(ctx, `mutation { createCampaign(input: {name: "Welcome series", conversionGoal: {event: "purchase", windowHours: 168}}) { id } }`, nil)
	if err != nil {
		return err
	}
	campID := camp["createCampaign"].(map[string]any)["id"].(string)
	msg, err := c.do(ctx, `mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"campaignId": campID, "name": "Welcome",
		"title": "Welcome, {{ customer.first_name | default: \"friend\" }}!",
		"body":  "Your {{ customer.plan | default: \"free\" }} plan is ready.",
		"link":  "herald://welcome", "sound": "default",
	}})
	if err != nil {
		return err
	}
	msgID := msg["createPushMessage"].(map[string]any)["id"].(string)
	people := []struct {
		id, name string
		devices  [][2]string // platform, token
		unsub    bool
	}{
		{"demo-alice", "Alice", [][2]string{{"IOS", sim.Token("a1ce", 1)}, {"ANDROID", sim.Token("a1ce", 2)}}, false},
		{"demo-bob", "Bob", [][2]string{{"IOS", sim.Token("badd", 1)}}, false},
		{"demo-carol", "Carol", [][2]string{{"IOS", sim.Token("f1a2", 1)}, {"ANDROID", sim.Token("dead", 1)}}, false},
		{"demo-dan", "Dan", nil, true},
		{"demo-erin", "Erin", [][2]string{{"IOS", sim.Token("5030", 1)}}, false},
	}
	for _, p := range people {
		if _, err := c.do(ctx, `mutation($in: IdentifyPersonInput!) { identifyPerson(input: $in) { id } }`, map[string]any{"in": map[string]any{
			"id": p.id, "attributes": map[string]any{"first_name": p.name, "plan": "pro"}, "unsubscribed": p.unsub}}); err != nil {
			return err
		}
		for _, dv := range p.devices {
			if _, err := c.do(ctx, `mutation($in: RegisterDeviceInput!) { registerDevice(input: $in) { token } }`, map[string]any{"in": map[string]any{
				"personId": p.id, "platform": dv[0], "token": dv[1]}}); err != nil {
				return err
			}
		}
		if _, err := c.do(ctx, `mutation($in: SendPushInput!) { sendPush(input: $in) { id } }`, map[string]any{"in": map[string]any{
			"messageId": msgID, "personId": p.id}}); err != nil {
			return err
		}
	}
	return nil
}

// gqlClient is a minimal GraphQL-over-HTTP client for the demo seeding.
type gqlClient struct {
	url, key string
	http     *http.Client
}

func (c *gqlClient) do(ctx context.Context, query string, vars map[string]any) (map[string]any, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Data   map[string]any `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("graphql: %s: %w", resp.Status, err)
	}
	if len(out.Errors) > 0 {
		return nil, fmt.Errorf("graphql: %s", out.Errors[0].Message)
	}
	return out.Data, nil
}

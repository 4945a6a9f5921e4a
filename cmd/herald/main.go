// Command herald is Herald's one binary:
//
//	herald serve              the GraphQL/REST API
//	herald worker             the Asynq worker that sends pushes
//	herald migrate            apply ClickHouse migrations
//	herald dev                API + worker + APNS/FCM simulators + demo data
//	herald workspace create NAME   create a workspace and print its API key and write key
//	herald workspace rotate-write-key ID   give a workspace a new Data Pipelines write key
//	herald clickhouse serve   the embedded ClickHouse (chDB's engine, supervised)
//
// Configuration comes from HERALD_* environment variables, overridden by
// flags; `herald <command> -h` lists them.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/render"
	"github.com/heraldpush/herald/server"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], logger); err != nil {
		stop()
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

const usage = `usage: herald <command> [flags]

commands:
  serve                   run the API (GraphQL at /graphql)
  worker                  run the send worker
  migrate                 apply ClickHouse migrations
  dev                     API + worker + simulators + demo data, for trying Herald
  workspace create NAME   create a workspace; prints its API key, site id and write key
  workspace rotate-write-key ID
                          give workspace ID a new Data Pipelines write key (the old one stops working)
  clickhouse serve        run the embedded ClickHouse (scripts/services.sh starts it)
  clickhouse version      print the version of the ClickHouse at --addr`

// run runs one command until it ends or ctx does (main's ends on SIGINT or
// SIGTERM).
func run(ctx context.Context, args []string, logger *slog.Logger) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		cfg, _, err := parseConfig("serve", rest)
		if err != nil {
			return err
		}
		if cfg.SecretKey == nil {
			return errNoSecret
		}
		return serve(ctx, cfg, logger, false)
	case "worker":
		cfg, _, err := parseConfig("worker", rest)
		if err != nil {
			return err
		}
		if cfg.SecretKey == nil {
			return errNoSecret
		}
		return worker(ctx, cfg, logger)
	case "migrate":
		cfg, _, err := parseConfig("migrate", rest)
		if err != nil {
			return err
		}
		a, err := app.Open(ctx, cfg, logger)
		if err != nil {
			return err
		}
		a.Close()
		fmt.Println("migrations applied to", cfg.ClickHouseAddr, "database", cfg.ClickHouseDatabase)
		return nil
	case "dev":
		cfg, fs, err := parseConfig("dev", rest)
		if err != nil {
			return err
		}
		return dev(ctx, cfg, fs, logger)
	case "workspace":
		if len(rest) >= 2 && rest[0] == "rotate-write-key" {
			return rotateWriteKeyCmd(ctx, rest[1], rest[2:], logger)
		}
		if len(rest) < 2 || rest[0] != "create" {
			return errors.New("usage: herald workspace create NAME | herald workspace rotate-write-key ID")
		}
		a, err := openWorkspaceApp(ctx, "workspace create", rest[2:], logger)
		if err != nil {
			return err
		}
		defer a.Close()
		ws, key, writeKey, err := createWorkspace(ctx, a.Store, rest[1])
		if err != nil {
			return err
		}
		fmt.Printf("workspace: %s (%s)\nsite id:   %s\napi key:   %s\nwrite key: %s\n", ws.Name, ws.ID, ws.SiteID, key, writeKey)
		fmt.Println("the keys are shown once; Herald stores only their hashes")
		return nil
	case "clickhouse":
		return clickhouseCmd(ctx, rest, logger)
	case "-h", "--help", "help":
		fmt.Println(usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// errNoSecret: serve and worker seal and open push credentials with it.
var errNoSecret = errors.New("HERALD_SECRET_KEY is not set: it encrypts push credentials at rest; make one with `openssl rand -hex 32` and give the same key to every serve and worker process")

// devFlags are the extra settings of `herald dev`.
type devFlags struct {
	apnsSimAddr, fcmSimAddr, stateDir string
	demo                              bool
	deliveredRate, openedRate         float64
	reportDelay                       time.Duration
}

// parseConfig reads HERALD_* variables, then flags.
func parseConfig(name string, args []string) (app.Config, *devFlags, error) {
	var c app.Config
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	str := func(p *string, flagName, env, def, help string) {
		fs.StringVar(p, flagName, envOr(env, def), help+" ($"+env+")")
	}
	dur := func(p *time.Duration, flagName, env string, def time.Duration, help string) {
		d := def
		if v := os.Getenv(env); v != "" {
			if x, err := time.ParseDuration(v); err == nil {
				d = x
			}
		}
		fs.DurationVar(p, flagName, d, help+" ($"+env+")")
	}
	num := func(p *int, flagName, env string, def int, help string) {
		fs.IntVar(p, flagName, envInt(env, def), help+" ($"+env+")")
	}
	str(&c.Addr, "addr", "HERALD_ADDR", "127.0.0.1:8080", "HTTP listen address")
	str(&c.TLSCertFile, "tls-cert-file", "HERALD_TLS_CERT_FILE", "", "PEM certificate (and chain) of the API; with --tls-key-file it serves HTTPS")
	str(&c.TLSKeyFile, "tls-key-file", "HERALD_TLS_KEY_FILE", "", "PEM private key of --tls-cert-file")
	str(&c.ClickHouseAddr, "clickhouse", "HERALD_CLICKHOUSE_ADDR", "127.0.0.1:9000", "ClickHouse native address")
	str(&c.ClickHouseDatabase, "database", "HERALD_CLICKHOUSE_DATABASE", "herald", "ClickHouse database")
	str(&c.RedisAddr, "redis", "HERALD_REDIS_ADDR", "127.0.0.1:6379", "Redis address")
	num(&c.RedisDB, "redis-db", "HERALD_REDIS_DB", 0, "Redis database number")
	num(&c.Concurrency, "concurrency", "HERALD_CONCURRENCY", 50, "tasks a worker runs at once")
	num(&c.MaxRetry, "max-retry", "HERALD_MAX_RETRY", 10, "retries of a device send on transient errors")
	dur(&c.RetryBase, "retry-base", "HERALD_RETRY_BASE", time.Second, "first retry delay (doubles each retry)")
	dur(&c.RetryMax, "retry-max", "HERALD_RETRY_MAX", 10*time.Minute, "longest retry delay")
	dur(&c.PollInterval, "poll-interval", "HERALD_POLL_INTERVAL", time.Second, "how often due retries are queued")
	dur(&c.SendTimeout, "send-timeout", "HERALD_SEND_TIMEOUT", 10*time.Second, "timeout of one provider request")
	dur(&c.EventInterval, "event-interval", "HERALD_EVENT_INTERVAL", 50*time.Millisecond, "how often the event buffer (Redis) is polled")
	dur(&c.EventMaxDelay, "event-max-delay", "HERALD_EVENT_MAX_DELAY", time.Second, "longest buffered events wait to be inserted into ClickHouse with more (20,000 go at once)")
	dur(&c.EventClaimIdle, "event-claim-idle", "HERALD_EVENT_CLAIM_IDLE", 30*time.Second, "idle time after which a dead process's buffered events are taken over")
	num(&c.BroadcastBatch, "broadcast-batch", "HERALD_BROADCAST_BATCH", 5000, "deliveries one broadcast fan-out task creates")
	num(&c.SendRate, "send-rate", "HERALD_SEND_RATE", 500, "sends per workspace per second (-1: no limit)")
	num(&c.ReportRate, "report-rate", "HERALD_REPORT_RATE", 200, "SDK reports per client IP per second (-1: no limit)")
	dur(&c.HTTPReadTimeout, "http-read-timeout", "HERALD_HTTP_READ_TIMEOUT", server.DefaultReadTimeout, "longest time to read one HTTP request with its body (websockets exempt)")
	dur(&c.HTTPIdleTimeout, "http-idle-timeout", "HERALD_HTTP_IDLE_TIMEOUT", server.DefaultIdleTimeout, "longest idle time of a keep-alive HTTP connection")
	num(&c.GraphQLMaxTokens, "graphql-max-tokens", "HERALD_GRAPHQL_MAX_TOKENS", graph.DefaultMaxTokens, "most tokens in a GraphQL document")
	num(&c.GraphQLMaxFields, "graphql-max-fields", "HERALD_GRAPHQL_MAX_FIELDS", graph.DefaultMaxFields, "most fields in a GraphQL document, fragments expanded")
	dur(&c.BadKeyTTL, "bad-key-ttl", "HERALD_BAD_KEY_TTL", server.DefaultBadKeyTTL, "how long an unknown API key is remembered as unknown")
	num(&c.AuthLookupRate, "auth-lookup-rate", "HERALD_AUTH_LOOKUP_RATE", server.DefaultAuthLookupRate, "lookups of uncached API keys per client IP per second (-1: no limit)")
	num(&c.Template.MaxBytes, "template-max-bytes", "HERALD_TEMPLATE_MAX_BYTES", render.DefaultMaxBytes, "most bytes one push's Liquid templates may produce (output, assigned and captured values; also any one filter's result)")
	num(&c.Template.MaxIterations, "template-max-iterations", "HERALD_TEMPLATE_MAX_ITERATIONS", render.DefaultMaxIterations, "most loop iterations one push's Liquid templates may run")
	dur(&c.Template.CPUTime, "template-cpu-time", "HERALD_TEMPLATE_CPU_TIME", render.DefaultCPUTime, "most CPU time one push's Liquid templates may use to render")
	num(&c.ClickHouseMaxConns, "clickhouse-max-conns", "HERALD_CLICKHOUSE_MAX_CONNS", 20, "ClickHouse connection pool size")
	num(&c.QueryConcurrencyRequest, "query-concurrency-request", "HERALD_QUERY_CONCURRENCY_REQUEST", 4, "ClickHouse reads one GraphQL request runs at once")
	num(&c.QueryConcurrencyWorkspace, "query-concurrency-workspace", "HERALD_QUERY_CONCURRENCY_WORKSPACE", 8, "ClickHouse reads one workspace runs at once (per process)")
	dur(&c.QueryWait, "query-wait", "HERALD_QUERY_WAIT", 10*time.Second, "longest wait for a workspace's query slot before RATE_LIMITED")
	num(&c.SubscriptionsPerSocket, "subscriptions-per-socket", "HERALD_SUBSCRIPTIONS_PER_SOCKET", 100, "live subscriptions per websocket")
	num(&c.SubscriptionsPerWorkspace, "subscriptions-per-workspace", "HERALD_SUBSCRIPTIONS_PER_WORKSPACE", 1000, "live subscriptions per workspace (per process)")
	var bufMax int
	num(&bufMax, "event-buffer-max", "HERALD_EVENT_BUFFER_MAX", 1_000_000, "most buffered events before reports get 503")
	str(&c.APNSHost, "apns-host", "HERALD_APNS_HOST", "", "APNS endpoint (default Apple's production host)")
	var caFile string
	str(&caFile, "apns-ca-file", "HERALD_APNS_CA_FILE", "", "PEM file of extra roots trusted for APNS (a simulator's CA)")
	str(&c.FCMEndpoint, "fcm-endpoint", "HERALD_FCM_ENDPOINT", "", "FCM API base URL (default Google's)")
	var tokenURIs string
	str(&tokenURIs, "fcm-token-uris", "HERALD_FCM_TOKEN_URIS", strings.Join(providers.DefaultFCMTokenURIs, ","),
		"comma-separated token endpoints an FCM service account's token_uri may name")
	d := &devFlags{}
	if name == "dev" {
		str(&d.apnsSimAddr, "apns-sim", "HERALD_APNS_SIM_ADDR", "127.0.0.1:2197", "APNS simulator listen address")
		str(&d.fcmSimAddr, "fcm-sim", "HERALD_FCM_SIM_ADDR", "127.0.0.1:8097", "FCM simulator listen address")
		str(&d.stateDir, "state-dir", "HERALD_STATE_DIR", ".herald", "folder for dev.env")
		fs.BoolVar(&d.demo, "demo", true, "create the demo campaign, people and sends")
		flt := func(p *float64, flagName, env string, def float64, help string) {
			f := def
			if v := os.Getenv(env); v != "" {
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					f = x
				}
			}
			fs.Float64Var(p, flagName, f, help+" ($"+env+")")
		}
		flt(&d.deliveredRate, "sim-delivered-rate", "HERALD_SIM_DELIVERED_RATE", 0.9, "share of accepted pushes the simulated phones report delivered")
		flt(&d.openedRate, "sim-opened-rate", "HERALD_SIM_OPENED_RATE", 0.5, "share of delivered pushes the simulated phones report opened")
		dur(&d.reportDelay, "sim-report-delay", "HERALD_SIM_REPORT_DELAY", 2*time.Second, "mean delay before each simulated report")
		c.Dev = true
	}
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	c.EventBufferMax = int64(bufMax)
	for _, u := range strings.Split(tokenURIs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.FCMTokenURIs = append(c.FCMTokenURIs, u)
		}
	}
	if v := os.Getenv("HERALD_SECRET_KEY"); v != "" {
		key, err := secret.ParseKey(v)
		if err != nil {
			return c, nil, fmt.Errorf("HERALD_SECRET_KEY: %w", err)
		}
		c.SecretKey = key
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return c, nil, fmt.Errorf("config: apns ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return c, nil, fmt.Errorf("config: %s holds no PEM certificate", caFile)
		}
		c.APNSRootCAs = pool
	}
	return c, d, c.Validate()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// envInt is the integer in $name, or def when it is unset or not a number.
func envInt(name string, def int) int {
	if x, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return x
	}
	return def
}

func serve(ctx context.Context, cfg app.Config, logger *slog.Logger, withWorker bool) error {
	// The certificate is checked before anything connects, so a bad pair
	// fails at once.
	cert, err := cfg.LoadCertificate()
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	return serveApp(ctx, a, cert, withWorker, nil)
}

// serveApp runs the HTTP API (and the worker) until ctx ends: HTTPS with
// cert when it is set (read again on SIGHUP), else HTTP. ready, when set,
// runs once the listener is open.
func serveApp(ctx context.Context, a *app.App, cert *app.Certificate, withWorker bool, ready func(url string)) error {
	if withWorker {
		w, err := a.StartWorker()
		if err != nil {
			return err
		}
		defer w.Shutdown()
	}
	ln, err := net.Listen("tcp", a.Cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another herald running? stop it or pass --addr)", a.Cfg.Addr, err)
	}
	srv := a.HTTPServer()
	// net/http's own messages (TLS handshake failures, a client speaking
	// plain HTTP to the HTTPS port) go to the one logger, at INFO like
	// Herald's other refusals.
	srv.ErrorLog = slog.NewLogLogger(a.Logger.With("component", "http").Handler(), slog.LevelInfo)
	errc := make(chan error, 1)
	url := "http://" + ln.Addr().String()
	if cert != nil {
		reloadOnHangup(ctx, cert, a.Logger.With("component", "tls"))
		srv.TLSConfig = cert.ServerTLS()
		url = "https://" + ln.Addr().String()
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	a.Logger.Info("herald API listening", "url", url)
	if ready != nil {
		ready(url)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// reloadOnHangup reads the certificate again on each SIGHUP until ctx ends;
// a pair that does not load is logged and the one in use stays.
func reloadOnHangup(ctx context.Context, cert *app.Certificate, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := cert.Reload(); err != nil {
					logger.Error("SIGHUP: TLS certificate not reloaded; the one in use stays", "err", err)
				} else {
					logger.Info("SIGHUP: TLS certificate reloaded")
				}
			}
		}
	}()
}

func worker(ctx context.Context, cfg app.Config, logger *slog.Logger) error {
	a, err := app.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	w, err := a.StartWorker()
	if err != nil {
		return err
	}
	logger.Info("herald worker running", "concurrency", cfg.Concurrency)
	<-ctx.Done()
	w.Shutdown()
	return nil
}

// createWorkspace stores a new workspace and returns its one-time API key
// and Data Pipelines write key.
func createWorkspace(ctx context.Context, store *clickhouse.Store, name string) (ws clickhouse.Workspace, key, writeKey string, err error) {
	if name == "" {
		return clickhouse.Workspace{}, "", "", errors.New("workspace name is empty")
	}
	key, hash := server.NewAPIKey()
	writeKey, writeHash := server.NewWriteKey()
	ws = clickhouse.Workspace{ID: "ws_" + server.NewSiteID(), Name: name, KeyHash: hash, SiteID: server.NewSiteID(),
		WriteKeyHash: writeHash, CreatedAt: time.Now().UTC()}
	if err := store.CreateWorkspace(ctx, ws); err != nil {
		return ws, "", "", err
	}
	return ws, key, writeKey, nil
}

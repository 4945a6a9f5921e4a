// Package app wires Herald's parts together from one Config: the ClickHouse
// and Redis connections, the store and event writer, the GraphQL server and
// the Asynq worker. cmd/herald and the end-to-end tests both build on it.
package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph"
	"github.com/heraldpush/herald/internal/ratelimit"
	"github.com/heraldpush/herald/internal/secret"
	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/render"
	"github.com/heraldpush/herald/server"
)

// Config is Herald's configuration. cmd/herald fills it from HERALD_*
// variables and flags; the defaults are in the field comments.
type Config struct {
	// Addr is the HTTP listen address. Default 127.0.0.1:8080.
	Addr string
	// ClickHouseAddr is the native-protocol address. Default 127.0.0.1:9000.
	ClickHouseAddr string
	// ClickHouseDatabase is created if missing. Default herald.
	ClickHouseDatabase string
	// RedisAddr holds the queues. Default 127.0.0.1:6379.
	RedisAddr string
	// RedisDB is the Redis database number. Default 0.
	RedisDB int
	// Concurrency is the number of tasks a worker runs at once. Default 50.
	Concurrency int
	// MaxRetry is the number of retries of a device send after its first
	// attempt on transient errors. Default 10.
	MaxRetry int
	// RetryBase and RetryMax bound the exponential backoff. Defaults 1s and 10m.
	RetryBase, RetryMax time.Duration
	// PollInterval is how often an idle worker looks for new tasks (at most
	// every 100ms) and moves due retries to the queue (at most every
	// 250ms). Default 1s.
	PollInterval time.Duration
	// SendTimeout bounds one provider request. Default 10s.
	SendTimeout time.Duration
	// APNSHost and FCMEndpoint override the providers' endpoints (the
	// simulators in dev and tests); APNSRootCAs trusts the APNS simulator.
	APNSHost    string
	APNSRootCAs *x509.CertPool
	FCMEndpoint string
	// FCMTokenURIs are the only token endpoints (exact URLs) a workspace's
	// FCM service account may name in token_uri: the worker POSTs there.
	// Default Google's (providers.DefaultFCMTokenURIs); dev adds its
	// simulator's.
	FCMTokenURIs []string
	// EventInterval is how often the event writer polls its Redis stream.
	// Default 50ms.
	EventInterval time.Duration
	// EventMaxDelay is the longest buffered events wait for more to make a
	// large insert (clickhouse.StreamOptions.MaxDelay; 20,000 events are
	// inserted at once). Default 1s.
	EventMaxDelay time.Duration
	// EventBufferMax is the most events the Redis buffer holds; above it the
	// report endpoints answer 503 with Retry-After. Default 1,000,000.
	EventBufferMax int64
	// EventClaimIdle is how long a crashed process's unacknowledged events
	// wait before another process inserts them. Default 30s.
	EventClaimIdle time.Duration
	// BroadcastBatch is how many deliveries one broadcast fan-out task
	// creates. Default 5000.
	BroadcastBatch int
	// SendRate bounds sends (sendPush, REST send, broadcast) per workspace
	// per second; ReportRate bounds SDK reports per client IP per second.
	// Defaults 500 and 200; negative means no limit.
	SendRate, ReportRate int
	// Template bounds the rendering of one push's Liquid templates: bytes
	// produced, loop iterations and CPU time. Defaults 64 KiB, 10000 and 100ms
	// (render.Limits).
	Template render.Limits
	// ClickHouseMaxConns is the ClickHouse connection pool's size; a query
	// waits up to 5s for a free connection. Default 20; it must exceed
	// QueryConcurrencyWorkspace so that a busy workspace leaves room for
	// the others.
	ClickHouseMaxConns int
	// QueryConcurrencyRequest and QueryConcurrencyWorkspace bound the
	// ClickHouse reads one GraphQL request, and all requests of one
	// workspace (per process), run at once. Defaults 4 and 8.
	QueryConcurrencyRequest, QueryConcurrencyWorkspace int
	// QueryWait is how long a read waits for its workspace's slot before
	// the request fails with RATE_LIMITED. Default 10s.
	QueryWait time.Duration
	// SubscriptionsPerSocket and SubscriptionsPerWorkspace cap the live
	// subscriptions of one websocket and of one workspace (per process);
	// over a cap a subscription gets LIMIT_EXCEEDED. Defaults 100 and 1000.
	SubscriptionsPerSocket, SubscriptionsPerWorkspace int
	// SecretKey (32 bytes, from HERALD_SECRET_KEY) seals push credentials at
	// rest. serve and worker refuse to start without it; dev makes one.
	SecretKey []byte
	// Dev turns on GraphiQL and introspection.
	Dev bool
	// HTTPReadTimeout bounds reading one request with its body (default
	// 30s); HTTPIdleTimeout a keep-alive connection between requests
	// (default 60s). Websockets are exempt once upgraded.
	HTTPReadTimeout, HTTPIdleTimeout time.Duration
	// GraphQLMaxTokens and GraphQLMaxFields bound a GraphQL document before
	// it is validated. Defaults 5,000 tokens and 500 fields.
	GraphQLMaxTokens, GraphQLMaxFields int
	// BadKeyTTL is how long an unknown API key is remembered as unknown
	// (default 10s); AuthLookupRate bounds the lookups of uncached API keys
	// per client IP per second (default 20; negative: no limit).
	BadKeyTTL      time.Duration
	AuthLookupRate int
	// TLSCertFile and TLSKeyFile are PEM files of the API's certificate
	// (with its chain) and private key; with both, the API serves HTTPS
	// only (LoadCertificate). Both or neither; default neither, plain HTTP.
	TLSCertFile, TLSKeyFile string
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Addr, "127.0.0.1:8080")
	def(&c.ClickHouseAddr, "127.0.0.1:9000")
	def(&c.ClickHouseDatabase, "herald")
	def(&c.RedisAddr, "127.0.0.1:6379")
	if c.Concurrency <= 0 {
		c.Concurrency = 50
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = 10
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.SendRate == 0 {
		c.SendRate = 500
	}
	if c.ReportRate == 0 {
		c.ReportRate = 200
	}
	if c.ClickHouseMaxConns <= 0 {
		c.ClickHouseMaxConns = 20
	}
	if c.QueryConcurrencyRequest <= 0 {
		c.QueryConcurrencyRequest = 4
	}
	if c.QueryConcurrencyWorkspace <= 0 {
		c.QueryConcurrencyWorkspace = 8
	}
	if c.QueryWait <= 0 {
		c.QueryWait = 10 * time.Second
	}
	if c.SubscriptionsPerSocket <= 0 {
		c.SubscriptionsPerSocket = graph.DefaultSubscriptionsPerSocket
	}
	if c.SubscriptionsPerWorkspace <= 0 {
		c.SubscriptionsPerWorkspace = graph.DefaultSubscriptionsPerWorkspace
	}
	if c.EventInterval <= 0 {
		c.EventInterval = 50 * time.Millisecond
	}
	if c.EventBufferMax <= 0 {
		c.EventBufferMax = 1_000_000
	}
	if len(c.FCMTokenURIs) == 0 {
		c.FCMTokenURIs = providers.DefaultFCMTokenURIs
	}
}

// Validate checks the configuration once, after defaults.
func (c *Config) Validate() error {
	c.setDefaults()
	if c.RetryMax < c.RetryBase {
		return fmt.Errorf("config: retry max %s is below retry base %s", c.RetryMax, c.RetryBase)
	}
	if c.GraphQLMaxTokens < 0 || c.GraphQLMaxFields < 0 {
		return fmt.Errorf("config: graphql max tokens %d and max fields %d must be positive", c.GraphQLMaxTokens, c.GraphQLMaxFields)
	}
	if c.QueryConcurrencyRequest > c.QueryConcurrencyWorkspace {
		return fmt.Errorf("config: query concurrency per request %d is above the per-workspace %d", c.QueryConcurrencyRequest, c.QueryConcurrencyWorkspace)
	}
	if c.QueryConcurrencyWorkspace >= c.ClickHouseMaxConns {
		return fmt.Errorf("config: query concurrency per workspace %d must be below the ClickHouse pool's %d connections, or one workspace can take them all", c.QueryConcurrencyWorkspace, c.ClickHouseMaxConns)
	}
	if c.RedisDB < 0 || c.RedisDB > 15 {
		return fmt.Errorf("config: redis db %d is not in 0..15", c.RedisDB)
	}
	return c.checkTLS()
}

// App holds Herald's open connections and services.
type App struct {
	Cfg     Config
	CH      driver.Conn
	Redis   *redis.Client
	Store   *clickhouse.Store
	Events  *clickhouse.StreamWriter
	Asynq   *asynq.Client
	Secrets *secret.Box
	Logger  *slog.Logger
	// Queries bounds ClickHouse reads per request and per workspace.
	Queries *clickhouse.Limiter
	// Live is the process's one Redis pub/sub connection for
	// subscriptions, and their caps.
	Live *graph.Live

	// stop ends the background loops started with the worker.
	stop context.CancelFunc
}

// Open connects to ClickHouse and Redis and applies the migrations.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, DB: cfg.RedisDB})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis at %s does not answer (%v): start it with `bash scripts/services.sh`", cfg.RedisAddr, err)
	}
	ch, err := clickhouse.Open(ctx, clickhouse.Options{Addr: cfg.ClickHouseAddr, Database: cfg.ClickHouseDatabase, MaxOpenConns: cfg.ClickHouseMaxConns})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	if err := clickhouse.Migrate(ctx, ch, clickhouse.NewRedisLocker(rdb), logger.With("component", "migrate")); err != nil {
		ch.Close()
		rdb.Close()
		return nil, err
	}
	// Every event goes through one durable writer: a Redis stream that a
	// consumer loop drains into ClickHouse, acknowledging entries only after
	// the insert succeeded.
	events, err := clickhouse.NewStreamWriter(rdb, ch, clickhouse.StreamOptions{
		Stream: "herald:events:" + cfg.ClickHouseDatabase, Interval: cfg.EventInterval, MaxDelay: cfg.EventMaxDelay, MaxLen: cfg.EventBufferMax,
		ClaimIdle:  cfg.EventClaimIdle,
		OnInserted: jobs.PublishChanges(rdb, logger.With("component", "changes")),
	}, logger.With("component", "events"))
	if err != nil {
		ch.Close()
		rdb.Close()
		return nil, err
	}
	var box *secret.Box
	if cfg.SecretKey != nil {
		if box, err = secret.New(cfg.SecretKey); err != nil {
			ch.Close()
			rdb.Close()
			return nil, err
		}
	}
	a := &App{
		Secrets: box,
		Cfg:     cfg, CH: ch, Redis: rdb, Store: clickhouse.NewStore(ch),
		Events:  events,
		Asynq:   asynq.NewClientFromRedisClient(rdb),
		Logger:  logger,
		Queries: clickhouse.NewLimiter(cfg.QueryConcurrencyRequest, cfg.QueryConcurrencyWorkspace, cfg.QueryWait),
		Live:    graph.NewLive(jobs.NewChangeFeed(rdb, logger.With("component", "live")), cfg.SubscriptionsPerSocket, cfg.SubscriptionsPerWorkspace),
		stop:    func() {},
	}
	return a, nil
}

// Close flushes the event writer and closes the connections.
func (a *App) Close() {
	a.stop()
	a.Live.Feed.Close()
	a.Events.Close()
	a.CH.Close()
	a.Redis.Close()
}

// Handler is the HTTP API.
func (a *App) Handler() http.Handler {
	limiter := ratelimit.New(a.Redis, "herald:rate")
	return server.New(server.Options{
		Limiter: limiter, ReportRatePerIP: a.Cfg.ReportRate,
		Resolver: &graph.Resolver{Store: a.Store, Queue: jobs.NewQueue(a.Asynq, a.Redis), Render: render.New(a.Cfg.Template), Events: a.Events, Targets: jobs.NewTargetCache(a.Redis, 0), Redis: a.Redis, Secrets: a.Secrets, Limiter: limiter, SendRate: a.Cfg.SendRate, FCMTokenURIs: a.Cfg.FCMTokenURIs, Queries: a.Queries, Live: a.Live, Logger: a.Logger.With("component", "graph")},
		Store:    a.Store,
		Logger:   a.Logger.With("component", "server"),
		Dev:      a.Cfg.Dev,
		Health:   a.Health,
		Stats:    a.Events.Stats,

		MaxTokens: a.Cfg.GraphQLMaxTokens, MaxFields: a.Cfg.GraphQLMaxFields,
		BadKeyTTL: a.Cfg.BadKeyTTL, AuthLookupRate: a.Cfg.AuthLookupRate,
	})
}

// HTTPServer is the API's http.Server, with the configured timeouts.
func (a *App) HTTPServer() *http.Server {
	return server.HTTPServer(a.Handler(), server.Timeouts{Read: a.Cfg.HTTPReadTimeout, Idle: a.Cfg.HTTPIdleTimeout})
}

// Health pings ClickHouse and Redis.
func (a *App) Health(ctx context.Context) error {
	if err := a.CH.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	if err := a.Redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// scheduledPoll bounds how often the worker moves due scheduled tasks
// (sendAt) to their queues, so that a scheduled send goes within a second
// of its time (Asynq's default is 5 s).
const scheduledPoll = 250 * time.Millisecond

// taskPoll bounds how long an idle worker sleeps before it asks Redis for a
// task again (asynq sleeps half of it plus up to all of it after finding
// none). A broadcast's fan-out enqueues its next batch while the first
// runs, after the worker found the queue empty: with a 1 s poll its batches
// started about a second apart, which capped a broadcast at a batch a
// second (2,000 pushes/s in bench/send), and a transactional send waited
// up to 1.5 s for pickup. Idle, this is 3 small scripts (one per queue)
// every 50-150 ms.
const taskPoll = 100 * time.Millisecond

// StartWorker starts an Asynq server running Herald's tasks; stop it with Shutdown.
func (a *App) StartWorker() (*asynq.Server, error) {
	w := jobs.NewWorker(a.Store, a.Events, a.Redis, a.Asynq, jobs.Config{
		MaxRetry: a.Cfg.MaxRetry, APNSHost: a.Cfg.APNSHost, APNSRootCAs: a.Cfg.APNSRootCAs,
		FCMEndpoint: a.Cfg.FCMEndpoint, FCMTokenURIs: a.Cfg.FCMTokenURIs, SendTimeout: a.Cfg.SendTimeout, BroadcastBatch: a.Cfg.BroadcastBatch, Secrets: a.Secrets,
		Concurrency: a.Cfg.Concurrency, RetryBase: a.Cfg.RetryBase, RetryMax: a.Cfg.RetryMax,
		Template: a.Cfg.Template,
	}, a.Logger.With("component", "worker"))
	srv := asynq.NewServerFromRedisClient(a.Redis, asynq.Config{
		Concurrency:              a.Cfg.Concurrency,
		Queues:                   map[string]int{jobs.QueueDeliver: 3, jobs.QueueSend: 6, "default": 1},
		RetryDelayFunc:           jobs.RetryDelay(a.Cfg.RetryBase, a.Cfg.RetryMax),
		DelayedTaskCheckInterval: min(a.Cfg.PollInterval, scheduledPoll),
		TaskCheckInterval:        min(a.Cfg.PollInterval, taskPoll),
		Logger:                   asynqLogger{a.Logger.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
		IsFailure: func(err error) bool {
			return err != nil && !errors.Is(err, context.Canceled)
		},
	})
	mux := asynq.NewServeMux()
	w.Register(mux)
	if err := srv.Start(mux); err != nil {
		return nil, fmt.Errorf("worker: start: %w", err)
	}
	return srv, nil
}

// asynqLogger adapts slog to asynq's logger.
type asynqLogger struct{ l *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.l.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.l.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.l.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.l.Error(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.l.Error(fmt.Sprint(args...)) }

// Package server is Herald's HTTP layer: GraphQL at /graphql (with the
// workspace's API key as a Bearer token), the dashboard at / (package web),
// GraphiQL at /graphiql in dev, the SDK metric
// endpoints of Customer.io's REST API, and /healthz.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	coderws "github.com/coder/websocket"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph"
	"github.com/heraldpush/herald/graph/generated"
	"github.com/heraldpush/herald/internal/ratelimit"
	"github.com/heraldpush/herald/web"
)

// Options configure the HTTP handler.
type Options struct {
	Resolver *graph.Resolver
	Store    *clickhouse.Store
	Logger   *slog.Logger
	// Dev turns on introspection and GraphiQL.
	Dev bool
	// Health reports whether the services Herald needs answer.
	Health func(ctx context.Context) error
	// Limiter and ReportRatePerIP bound the unauthenticated report
	// endpoints per client IP per second (0: no limit).
	Limiter         *ratelimit.Limiter
	ReportRatePerIP int
	// WebsocketOrigins are the host patterns of other origins allowed to
	// open subscriptions (same-origin and origin-less clients always are).
	WebsocketOrigins []string
	// Stats reports the event writer's buffer, for /metrics.
	Stats func(ctx context.Context) (clickhouse.StreamStats, error)
	// MaxTokens and MaxFields bound a GraphQL document before it is
	// validated (0: graph.DefaultMaxTokens, graph.DefaultMaxFields).
	MaxTokens, MaxFields int
	// BadKeyTTL is how long an unknown API key is remembered as unknown
	// (0: DefaultBadKeyTTL); AuthLookupRate bounds the lookups of uncached
	// keys per client IP per second (0: DefaultAuthLookupRate, < 0: none).
	BadKeyTTL      time.Duration
	AuthLookupRate int
}

// New returns Herald's HTTP handler.
func New(o Options) http.Handler {
	gql := handler.New(generated.NewExecutableSchema(generated.Config{Resolvers: o.Resolver, Complexity: graph.Complexity()}))
	limit := graph.DocumentLimit{MaxTokens: orDefault(o.MaxTokens, graph.DefaultMaxTokens), MaxFields: orDefault(o.MaxFields, graph.DefaultMaxFields)}
	gql.SetParserTokenLimit(limit.MaxTokens)
	gql.Use(limit) // first: it runs before gqlgen parses and validates
	gql.Use(extension.FixedComplexityLimit(graph.MaxComplexity))
	gql.Use(graph.DepthLimit{Max: graph.MaxDepth})
	gql.Use(graph.RequestScope{Resolver: o.Resolver})
	auth := newAuthenticator(o)
	// Subscriptions: graphql-transport-ws and the legacy graphql-ws, the
	// key in connection_init's payload ({"Authorization": "Bearer <key>"}).
	gql.AddTransport(transport.Websocket{
		KeepAlivePingInterval: 10 * time.Second,
		InitTimeout:           10 * time.Second,
		Implementation: transport.CoderWebsocketImplementation{AcceptOptions: coderws.AcceptOptions{
			OriginPatterns: o.WebsocketOrigins,
		}},
		InitFunc: func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			key := p.Authorization()
			if key == "" {
				key = p.GetString("authorization")
			}
			if key == "" {
				key = p.GetString("apiKey")
			}
			key = strings.TrimSpace(strings.TrimPrefix(key, "Bearer "))
			// 4403 Forbidden: graphql-transport-ws's close code for a refused
			// connection_init; clients do not retry it.
			refuse := func() (context.Context, *transport.InitPayload, error) {
				ctx = transport.WithWebsocketCloseCode(ctx, 4403)
				ctx = transport.AppendCloseReason(ctx, "Forbidden: missing or invalid API key")
				return ctx, nil, graph.ErrUnauthenticated
			}
			if key == "" {
				return refuse()
			}
			ws, err := auth.workspace(ctx, key, clientIPOf(ctx))
			if err != nil {
				return refuse()
			}
			return graph.WithSocket(graph.WithWorkspace(ctx, ws)), nil, nil
		},
	})
	gql.AddTransport(transport.Options{})
	gql.AddTransport(httpTransport{logger: o.Logger})
	gql.SetErrorPresenter(graph.ErrorPresenter(o.Logger))
	gql.SetRecoverFunc(graph.Recover(o.Logger))
	if o.Dev {
		gql.Use(extension.Introspection{})
	} else {
		gql.Use(graph.IntrospectionOff{})
	}
	sdk := &sdkHandler{resolver: o.Resolver, logger: o.Logger.With("component", "sdk"), limiter: o.Limiter, perIP: o.ReportRatePerIP}

	mux := http.NewServeMux()
	mux.Handle("/graphql", auth.guard(gql, maxGraphQLBody))
	mux.HandleFunc("POST /push/events", sdk.pushEvents)
	mux.HandleFunc("POST /api/v1/push/events", sdk.pushEvents)
	mux.HandleFunc("POST /api/v1/metrics", sdk.metrics)
	registerTrack(mux, o, auth)
	registerCDP(mux, o, auth)
	if o.Dev {
		mux.Handle("GET /graphiql", playground.Handler("Herald", "/graphql"))
	}
	app := web.Handler()
	for _, route := range web.Routes {
		mux.Handle("GET "+route, app)
	}
	mux.Handle("GET /assets/", app)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if o.Stats == nil {
			writeError(w, http.StatusNotFound, "no metrics")
			return
		}
		st, err := o.Stats(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP herald_event_buffer_length Events in the Redis buffer not yet inserted into ClickHouse.\n# TYPE herald_event_buffer_length gauge\nherald_event_buffer_length %d\n", st.Length)
		fmt.Fprintf(w, "# HELP herald_event_buffer_pending Events read by a writer and not yet acknowledged.\n# TYPE herald_event_buffer_pending gauge\nherald_event_buffer_pending %d\n", st.Pending)
		fmt.Fprintf(w, "# HELP herald_event_lag_seconds Age of the oldest event not yet in ClickHouse.\n# TYPE herald_event_lag_seconds gauge\nherald_event_lag_seconds %g\n", st.OldestAge.Seconds())
		fmt.Fprintf(w, "# HELP herald_events_inserted_total Events this process inserted into ClickHouse.\n# TYPE herald_events_inserted_total counter\nherald_events_inserted_total %d\n", st.Inserted)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if o.Health != nil {
			if err := o.Health(ctx); err != nil {
				writeError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// maxGraphQLBody bounds a GraphQL request (a query and its variables).
const maxGraphQLBody = 1 << 20

// Timeouts bound how long a client may hold a connection: ReadHeader its
// request's headers, Read the whole request with its body (a websocket is
// exempt once upgraded), Idle a keep-alive connection between requests.
// Zero takes the default.
type Timeouts struct{ ReadHeader, Read, Idle time.Duration }

// Default timeouts of HTTPServer.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
)

// HTTPServer is the http.Server that serves h with Herald's timeouts. It
// sets no write timeout: subscriptions and slow queries write for long.
func HTTPServer(h http.Handler, t Timeouts) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(t.ReadHeader, DefaultReadHeaderTimeout),
		ReadTimeout:       or(t.Read, DefaultReadTimeout),
		IdleTimeout:       or(t.Idle, DefaultIdleTimeout),
	}
}

// NewAPIKey returns a new random API key and its hash; only the hash is stored.
func NewAPIKey() (key, hash string) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	key = "hk_" + hex.EncodeToString(b)
	return key, HashKey(key)
}

// NewSiteID returns a random site id for the Track API's Basic auth.
func NewSiteID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// HashKey is the SHA-256 hex of an API key, as stored in workspaces.key_hash.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func orDefault(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError is the one way REST errors leave Herald: {"error": message}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/graph"
	"github.com/heraldpush/herald/graph/model"
	"github.com/heraldpush/herald/internal/ratelimit"
)

// The Data Pipelines API: Customer.io's CDP API, which follows Segment's
// HTTP tracking API (https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/)
// and which current Customer.io SDKs (iOS ≥ 3, Android ≥ 4, React Native,
// Flutter) and Segment-compatible libraries call. A workspace's write key
// authenticates it: as the Basic auth user (empty password) or as
// "writeKey" in the body.

// Segment's limits: 32 KB per event (a single call's body) and 500 KB per
// batch, both measured on the decompressed JSON; over them is 400.
const (
	maxCDPEventBytes = 32 << 10
	maxCDPBatchBytes = 500 << 10
)

// cdpDedupTTL is how long an event's messageId is remembered, so that a
// retried batch counts once (Segment de-duplicates over about a day too).
const cdpDedupTTL = 24 * time.Hour

// cdpIgnored are the Segment calls Herald accepts (200) and drops: it has
// no pages, screens, groups or aliases.
var cdpIgnored = []string{"screen", "page", "group", "alias"}

// cdpHandler serves /v1/track, /v1/identify, /v1/batch, /v1/b (and the
// ignored calls) and /v1/projects/{writeKey}/settings.
type cdpHandler struct {
	resolver *graph.Resolver
	auth     *authenticator
	redis    redis.UniversalClient // nil: no messageId de-duplication
	logger   *slog.Logger
	// limiter and perIP bound requests per client IP per second, as the
	// SDK report endpoints' HERALD_REPORT_RATE (0: no limit).
	limiter *ratelimit.Limiter
	perIP   int
}

// registerCDP adds the Data Pipelines API to mux.
func registerCDP(mux *http.ServeMux, o Options, auth *authenticator) {
	h := &cdpHandler{resolver: o.Resolver, auth: auth, logger: o.Logger.With("component", "cdp"), limiter: o.Limiter, perIP: o.ReportRatePerIP}
	if o.Resolver != nil {
		h.redis = o.Resolver.Redis
	}
	mux.HandleFunc("POST /v1/track", h.single("track"))
	mux.HandleFunc("POST /v1/identify", h.single("identify"))
	for _, t := range cdpIgnored {
		mux.HandleFunc("POST /v1/"+t, h.single(t))
	}
	mux.HandleFunc("POST /v1/batch", h.batch)
	mux.HandleFunc("POST /v1/b", h.batch)
	mux.HandleFunc("GET /v1/projects/{writeKey}/settings", h.settings)
}

// NewWriteKey returns a new random Data Pipelines write key and its hash;
// only the hash is stored.
func NewWriteKey() (key, hash string) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	key = "wk" + hex.EncodeToString(b) // letters and digits: it goes in URL paths
	return key, HashKey(key)
}

// writeKeyWorkspace resolves a write key to its workspace through the
// authenticator's caches and per-IP lookup limit. The cache is keyed apart
// from API keys, so an API key is never taken for a write key.
func (a *authenticator) writeKeyWorkspace(ctx context.Context, key, ip string) (string, error) {
	return a.resolve(ctx, HashKey("writekey:"+key), ip, func(ctx context.Context) (string, error) {
		w, err := a.store.WorkspaceByWriteKeyHash(ctx, HashKey(key))
		return w.ID, err
	})
}

// writeSegment answers in Segment's shape: {"success":true} or
// {"success":false,"code":…,"message":…}.
func writeSegment(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusOK {
		writeJSON(w, status, map[string]any{"success": true})
		return
	}
	writeJSON(w, status, map[string]any{"success": false, "code": code, "message": msg})
}

// cdpEvent is one Segment call.
type cdpEvent struct {
	Type        string          `json:"type"`
	Event       string          `json:"event"`
	UserID      json.RawMessage `json:"userId"`
	AnonymousID json.RawMessage `json:"anonymousId"`
	MessageID   string          `json:"messageId"`
	Timestamp   string          `json:"timestamp"`
	SentAt      string          `json:"sentAt"` // the batch's when the event has none
	Properties  map[string]any  `json:"properties"`
	Traits      map[string]any  `json:"traits"`
	WriteKey    string          `json:"writeKey"`
	Context     struct {
		Device struct {
			Token string `json:"token"`
			Type  string `json:"type"`
		} `json:"device"`
	} `json:"context"`

	at time.Time // Timestamp corrected by SentAt (eventTime); zero means now
}

// cdpBatch is a /v1/batch or /v1/b body.
type cdpBatch struct {
	Batch    []json.RawMessage `json:"batch"`
	WriteKey string            `json:"writeKey"`
	SentAt   string            `json:"sentAt"`
}

// readCDPBody reads the body, gunzipping it for Content-Encoding: gzip, and
// bounds both the bytes on the wire and the decompressed ones by limit. Any
// Content-Type is read as JSON (Android sends text/plain).
func readCDPBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, string) {
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		gz, err := gzip.NewReader(src)
		if err != nil {
			return nil, "body is not valid gzip: " + err.Error()
		}
		defer gz.Close()
		src = gz
	default:
		return nil, fmt.Sprintf("Content-Encoding %q is not supported: send gzip or none", enc)
	}
	raw, err := io.ReadAll(io.LimitReader(src, limit+1))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, fmt.Sprintf("body over %d bytes", limit)
		}
		return nil, "cannot read the body: " + err.Error()
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Sprintf("body over %d bytes decompressed", limit)
	}
	return raw, ""
}

// decodeStrict decodes one JSON object from raw, with nothing after it.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// limited answers 429 when the client IP is over its rate; Redis being
// away lets the request through.
func (h *cdpHandler) limited(w http.ResponseWriter, r *http.Request) bool {
	if h.limiter == nil {
		return false
	}
	ok, retry, err := h.limiter.Allow(r.Context(), "cdp:"+clientIP(r), h.perIP)
	if err != nil || ok {
		return false
	}
	rl := &graph.RateLimitError{RetryAfter: retry}
	w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
	writeSegment(w, http.StatusTooManyRequests, "rate_limited", rl.Error())
	return true
}

// read checks the client IP's rate, reads the body within limit and
// decodes it into v; it answers 429 or 400 itself and returns false.
func (h *cdpHandler) read(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if h.limited(w, r) {
		return false
	}
	raw, msg := readCDPBody(w, r, limit)
	if msg != "" {
		writeSegment(w, http.StatusBadRequest, "invalid_request", msg)
		return false
	}
	if err := decodeStrict(raw, v); err != nil {
		writeSegment(w, http.StatusBadRequest, "invalid_request", "Invalid JSON: "+err.Error())
		return false
	}
	return true
}

// single serves /v1/track, /v1/identify and the ignored calls: the body is
// one event of type typ.
func (h *cdpHandler) single(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		var ev cdpEvent
		if !h.read(w, r, maxCDPEventBytes, &ev) {
			return
		}
		ev.Type = typ
		ev.at = eventTime(ev.Timestamp, ev.SentAt, received)
		ws, ok := h.authenticate(w, r, ev.WriteKey)
		if !ok {
			return
		}
		h.process(w, r, ws, []cdpEvent{ev})
	}
}

// batch serves /v1/batch and /v1/b.
func (h *cdpHandler) batch(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	var b cdpBatch
	if !h.read(w, r, maxCDPBatchBytes, &b) {
		return
	}
	events := make([]cdpEvent, 0, len(b.Batch))
	for i, item := range b.Batch {
		if len(item) > maxCDPEventBytes {
			writeSegment(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("batch[%d]: event over %d bytes", i, maxCDPEventBytes))
			return
		}
		var ev cdpEvent
		if err := json.Unmarshal(item, &ev); err != nil {
			writeSegment(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("batch[%d]: Invalid JSON: %v", i, err))
			return
		}
		if ev.SentAt == "" {
			ev.SentAt = b.SentAt
		}
		ev.at = eventTime(ev.Timestamp, ev.SentAt, received)
		events = append(events, ev)
	}
	ws, ok := h.authenticate(w, r, b.WriteKey)
	if !ok {
		return
	}
	h.process(w, r, ws, events)
}

// authenticate finds the workspace of the request's write key: the Basic
// auth user, else bodyKey. It answers 401/429/503 itself and returns false.
func (h *cdpHandler) authenticate(w http.ResponseWriter, r *http.Request, bodyKey string) (string, bool) {
	key, _, _ := r.BasicAuth()
	if key == "" {
		key = bodyKey
	}
	if key == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="herald"`)
		writeSegment(w, http.StatusUnauthorized, "unauthorized", "missing write key: send it as the Basic auth username or as writeKey in the body")
		return "", false
	}
	ws, err := h.auth.writeKeyWorkspace(r.Context(), key, clientIP(r))
	var rl *graph.RateLimitError
	switch {
	case err == nil:
		return ws, true
	case errors.Is(err, clickhouse.ErrNotFound):
		w.Header().Set("WWW-Authenticate", `Basic realm="herald"`)
		writeSegment(w, http.StatusUnauthorized, "unauthorized", "invalid write key")
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
		writeSegment(w, http.StatusTooManyRequests, "rate_limited", "too many lookups of unknown write keys from this address; retry later")
	default:
		h.logger.ErrorContext(r.Context(), "cdp auth failed", "err", err)
		writeSegment(w, http.StatusServiceUnavailable, "unavailable", "cannot check the write key now; retry later")
	}
	return "", false
}

// process applies the events in order. An event that cannot count (bad
// input, an unknown delivery, no userId) is dropped and the rest go on, as
// Segment answers 200 for a well-formed request; an error worth retrying
// (Herald overloaded, a store failure) stops there with 503/500, and the
// events already applied are skipped on the retry by their messageId.
func (h *cdpHandler) process(w http.ResponseWriter, r *http.Request, ws string, events []cdpEvent) {
	ctx := graph.WithWorkspace(r.Context(), ws)
	for _, ev := range events {
		first, dedupKey := h.firstTime(ctx, ws, ev.MessageID)
		if !first {
			continue
		}
		err := h.apply(ctx, ws, ev)
		if err == nil {
			continue
		}
		var in *graph.InputError
		var nf *graph.NotFoundError
		if errors.As(err, &in) || errors.As(err, &nf) {
			h.logger.DebugContext(ctx, "cdp event dropped", "type", ev.Type, "event", ev.Event, "err", err)
			continue
		}
		if dedupKey != "" {
			_ = h.redis.Del(context.WithoutCancel(ctx), dedupKey).Err() // let the retry apply it
		}
		if isOverloaded(err) {
			w.Header().Set("Retry-After", "1")
			writeSegment(w, http.StatusServiceUnavailable, "unavailable", "Herald is catching up; retry after 1 second")
			return
		}
		h.logger.ErrorContext(ctx, "cdp event failed", "type", ev.Type, "event", ev.Event, "err", err)
		writeSegment(w, http.StatusInternalServerError, "internal", "internal error; retry later")
		return
	}
	writeSegment(w, http.StatusOK, "", "")
}

// firstTime claims the event's messageId in Redis (SET NX for
// cdpDedupTTL, keyed by workspace and messageId) and reports whether this
// is its first arrival, with the key it set. No messageId, or Redis away,
// counts as a first arrival: the events' own identities keep a duplicate
// from changing a figure.
func (h *cdpHandler) firstTime(ctx context.Context, ws, messageID string) (bool, string) {
	if h.redis == nil || messageID == "" || len(messageID) > maxEventIDLen {
		return true, ""
	}
	key := "cdp:msg:" + ws + ":" + messageID
	ok, err := h.redis.SetNX(ctx, key, 1, cdpDedupTTL).Result()
	if err != nil {
		return true, ""
	}
	return ok, key
}

// cdpEventIDSpace is the UUIDv5 namespace of trackEvent ids made from a
// Segment messageId (workspace and messageId).
var cdpEventIDSpace = uuid.MustParse("4b0f3c56-8d2e-4f7a-a1b9-3e6c5d7f9a20")

// Event names of the Customer.io SDKs (customerio-android
// core/src/main/kotlin/io/customer/sdk/util/EventNames.kt) and Segment's
// mobile spec (https://segment.com/docs/connections/spec/mobile/).
const (
	evDeviceUpdate   = "Device Created or Updated"
	evDeviceDelete   = "Device Deleted"
	evMetricDelivery = "Report Delivery Event"
	evPushReceived   = "Push Notification Received"
	evPushTapped     = "Push Notification Tapped"
	evPushBounced    = "Push Notification Bounced"
)

// apply maps one Segment call onto Herald, by the rules of the GraphQL
// mutations and the SDK report endpoints.
func (h *cdpHandler) apply(ctx context.Context, ws string, ev cdpEvent) error {
	user := idString(ev.UserID)
	at := ev.at
	switch ev.Type {
	case "identify":
		if user == "" {
			return badCDP("identify without a userId: Herald's people have ids")
		}
		in := model.IdentifyPersonInput{ID: user, Attributes: map[string]any{}}
		for k, v := range ev.Traits {
			if b, ok := v.(bool); ok && k == "unsubscribed" { // the flag, as the Track API's identify
				in.Unsubscribed = &b
				continue
			}
			in.Attributes[k] = v
		}
		_, err := h.resolver.Mutation().IdentifyPerson(ctx, in)
		return err
	case "track":
	default: // screen, page, group, alias and unknown types: accepted, ignored
		return nil
	}
	switch ev.Event {
	case evDeviceUpdate:
		if user == "" {
			return badCDP("device registration without a userId")
		}
		var platform model.Platform
		switch strings.ToLower(ev.Context.Device.Type) {
		case "ios":
			platform = model.PlatformIos
		case "android":
			platform = model.PlatformAndroid
		default:
			return badCDP(fmt.Sprintf("context.device.type %q: want ios or android", ev.Context.Device.Type))
		}
		_, err := h.resolver.Mutation().RegisterDevice(ctx, model.RegisterDeviceInput{PersonID: user, Token: ev.Context.Device.Token,
			Platform: platform, Attributes: ev.Properties})
		return err
	case evDeviceDelete:
		if user == "" {
			return badCDP("device removal without a userId")
		}
		_, err := h.resolver.Mutation().RemoveDevice(ctx, user, ev.Context.Device.Token)
		return err
	case evMetricDelivery, evPushReceived, evPushTapped:
		deliveryID := propString(ev.Properties, "deliveryId", "delivery_id", "CIO-Delivery-ID")
		if deliveryID == "" {
			return badCDP(ev.Event + " without a delivery id")
		}
		token := propString(ev.Properties, "recipient", "deviceToken", "CIO-Delivery-Token")
		if token == "" {
			token = ev.Context.Device.Token
		}
		metricName := "delivered"
		switch ev.Event {
		case evMetricDelivery:
			metricName = propString(ev.Properties, "metric")
		case evPushTapped:
			metricName = "opened"
		}
		metric, err := domain.ParseMetric(metricName)
		if err != nil {
			return badCDP("properties.metric: " + err.Error())
		}
		return h.resolver.ReportMetric(ctx, graph.MetricReport{Workspace: ws, DeliveryID: deliveryID, Metric: metric, Token: token, At: at})
	case evPushBounced:
		// Bounces are the providers' answers (APNS/FCM), recorded by the
		// worker; an app's report of one is not evidence enough.
		return nil
	}
	if user == "" {
		return badCDP("track without a userId: events belong to people")
	}
	e := graph.TrackedEvent{Workspace: ws, PersonID: user, Name: ev.Event, Data: ev.Properties, At: at}
	if ev.MessageID != "" {
		e.ID = uuid.NewSHA1(cdpEventIDSpace, []byte(ws+"\x00"+ev.MessageID)).String()
	}
	return h.resolver.TrackEvent(ctx, e)
}

// badCDP is an event dropped for its content.
func badCDP(msg string) error { return &graph.InputError{Field: "event", Message: msg} }

// idString reads a Segment id: a string, or a number (some clients send
// numeric user ids); anything else is "".
func idString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// propString is the first of the keys of props that holds a non-empty string.
func propString(props map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := props[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// eventTime is an event's time: its timestamp corrected for the sender's
// clock as Segment does, timestamp + (received − sentAt), so a phone whose
// clock is two hours slow reports the time it meant; the timestamp as it
// is without a readable sentAt; zero (now) without a readable timestamp.
func eventTime(timestamp, sentAt string, received time.Time) time.Time {
	t, sent := parseISOTime(timestamp), parseISOTime(sentAt)
	if t.IsZero() || sent.IsZero() {
		return t
	}
	return t.Add(received.Sub(sent))
}

// parseISOTime reads an ISO-8601 timestamp; absent or unreadable is zero
// (now), as Segment replaces an invalid timestamp with the time received.
func parseISOTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// settings serves GET /v1/projects/{writeKey}/settings, which the SDKs
// fetch at start: the Customer.io destination's settings with the write key
// as its apiKey. No apiHost: the SDK keeps the host it was configured with
// (customerio-android CustomerIODestination.update sets apiHost only when
// the settings carry one).
func (h *cdpHandler) settings(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("writeKey")
	if _, ok := h.authenticate(w, r, key); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"integrations": map[string]any{
			"Customer.io Data Pipelines": map[string]any{"apiKey": key},
		},
		"plan":         map[string]any{},
		"edgeFunction": map[string]any{},
	})
}

package server

import (
	"bytes"
	"encoding/base64"
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

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph"
	"github.com/heraldpush/herald/graph/model"
	"github.com/heraldpush/herald/jobs"
)

// maxTrackBytes bounds a Track or send request's body. Customer.io allows
// 32 KB of attributes per call; 64 KB leaves room for JSON overhead.
const maxTrackBytes = 64 << 10

// trackHandler serves Customer.io's Track API (HTTP Basic auth: site id and
// API key) and its transactional push API (Bearer API key), with
// Customer.io's error shape {"meta":{"error":"…"}}:
// https://docs.customer.io/integrations/api/track/ and
// https://docs.customer.io/integrations/api/app/tag/send-messages/sendPush/
type trackHandler struct {
	resolver *graph.Resolver
	store    *clickhouse.Store
	bearer   *authenticator
	logger   *slog.Logger
}

// registerTrack adds the Track API and the transactional send to mux.
func registerTrack(mux *http.ServeMux, o Options, bearer *authenticator) {
	h := &trackHandler{resolver: o.Resolver, store: o.Store, logger: o.Logger.With("component", "track"),
		bearer: bearer}
	mux.HandleFunc("PUT /api/v1/customers/{id}", h.basic(h.identify))
	mux.HandleFunc("PUT /api/v1/customers/{id}/devices", h.basic(h.addDevice))
	mux.HandleFunc("DELETE /api/v1/customers/{id}/devices/{token}", h.basic(h.deleteDevice))
	mux.HandleFunc("POST /api/v1/customers/{id}/events", h.basic(h.event))
	mux.HandleFunc("DELETE /api/v1/customers/{id}", h.basic(h.deletePerson))
	mux.HandleFunc("POST /api/v1/events", h.basic(h.anonymousEvent))
	mux.HandleFunc("POST /api/v1/merge_customers", h.basic(h.merge))
	// Anything else under /api/ (a route Herald lacks, or a method a route
	// does not take) answers in Customer.io's shape, not Go's plain text,
	// so a client that decodes {"meta":{"error"}} shows the reason.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeMeta(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	mux.HandleFunc("POST /v1/send/push", h.sendPush)
}

// writeMeta is how errors leave the Customer.io-compatible Track and send
// endpoints: Customer.io's {"meta":{"error": message}}.
func writeMeta(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"meta": map[string]string{"error": msg}})
}

// basic authenticates HTTP Basic site id : API key; both must belong to one
// workspace. The workspace goes into the context as GraphQL's Bearer does.
func (h *trackHandler) basic(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		unauthorized := func(msg string) {
			w.Header().Set("WWW-Authenticate", `Basic realm="herald"`)
			writeMeta(w, http.StatusUnauthorized, msg)
		}
		site, key, ok := basicAuth(r)
		if !ok || site == "" || key == "" {
			unauthorized("missing credentials: use HTTP Basic auth with your site id as the username and your API key as the password")
			return
		}
		ws, err := h.bearer.siteWorkspace(r.Context(), site, key, clientIP(r))
		var rl *graph.RateLimitError
		switch {
		case err == nil:
			next(w, r.WithContext(graph.WithWorkspace(r.Context(), ws)))
		case errors.Is(err, clickhouse.ErrNotFound):
			unauthorized("unauthorized: the site id and API key do not match a workspace")
		case errors.As(err, &rl):
			w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
			writeMeta(w, http.StatusTooManyRequests, "too many credential lookups from this address; retry later")
		default:
			h.logger.ErrorContext(r.Context(), "track auth failed", "err", err)
			writeMeta(w, http.StatusServiceUnavailable, "cannot check the credentials now; retry later")
		}
	}
}

// basicAuth reads HTTP Basic credentials in standard base64 or in the
// URL-safe alphabet: go-customerio v3 encodes them with
// base64.URLEncoding (customerio.go, CustomerIO.auth), which net/http's
// BasicAuth does not decode when the encoding holds '-' or '_'.
func basicAuth(r *http.Request) (site, key string, ok bool) {
	if site, key, ok = r.BasicAuth(); ok {
		return site, key, true
	}
	enc, found := strings.CutPrefix(r.Header.Get("Authorization"), "Basic ")
	if !found {
		return "", "", false
	}
	raw, err := base64.URLEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// decodeTrack reads one JSON value into v; on failure it answers 413 or 400
// (naming the field of a wrongly typed value) and returns false.
func decodeTrack(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeBody(w, r, v, nil)
}

// decodeBody is decodeTrack that, when unknown is set, refuses a field v
// lacks with a 400 saying unknown(field).
func decodeBody(w http.ResponseWriter, r *http.Request, v any, unknown func(field string) string) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTrackBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeMeta(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxTrackBytes))
		} else {
			writeMeta(w, http.StatusBadRequest, "cannot read the body: "+err.Error())
		}
		return false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		writeMeta(w, http.StatusBadRequest, "body is empty: send a JSON object")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if unknown != nil {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		// encoding/json names an unknown field only in its message.
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok && unknown != nil {
			writeMeta(w, http.StatusBadRequest, unknown(strings.Trim(field, `"`)))
			return false
		}
		writeDecodeError(w, err)
		return false
	}
	if dec.More() {
		writeMeta(w, http.StatusBadRequest, "body has data after the JSON object")
		return false
	}
	return true
}

// writeDecodeError answers 400 for a body that does not decode.
func writeDecodeError(w http.ResponseWriter, err error) {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && te.Field != "":
		writeMeta(w, http.StatusBadRequest, fmt.Sprintf("%s: must be %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value))
	case errors.As(err, &te):
		writeMeta(w, http.StatusBadRequest, "body must be a JSON object, got "+te.Value)
	default:
		writeMeta(w, http.StatusBadRequest, "body is not valid JSON: "+err.Error())
	}
}

// jsonKind names a Go kind as a JSON type.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "float64", "uint16":
		return "a number"
	}
	return kind
}

// fail answers a resolver error: bad input 400 (the field renamed to the
// REST body's name by fields), not found 404, a full event buffer 503, and
// anything else 500 (logged, not shown).
func (h *trackHandler) fail(w http.ResponseWriter, r *http.Request, err error, fields map[string]string) {
	var in *graph.InputError
	var nf *graph.NotFoundError
	var rl *graph.RateLimitError
	switch {
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
		writeMeta(w, http.StatusTooManyRequests, rl.Error())
	case errors.As(err, &in):
		field := in.Field
		if f, ok := fields[field]; ok {
			field = f
		} else {
			for from, to := range map[string]string{"input.overrides.data.": "custom_data.",
				"input.overrides.options.iosPayload.": "custom_payload.ios.", "input.overrides.options.androidPayload.": "custom_payload.android.message."} {
				if rest, ok := strings.CutPrefix(field, from); ok {
					field = to + rest
				}
			}
		}
		writeMeta(w, http.StatusBadRequest, field+": "+in.Message)
	case errors.As(err, &nf):
		writeMeta(w, http.StatusNotFound, nf.Error())
	case errors.Is(err, graph.ErrUnauthenticated):
		writeMeta(w, http.StatusUnauthorized, err.Error())
	case isOverloaded(err):
		w.Header().Set("Retry-After", "1")
		writeMeta(w, http.StatusServiceUnavailable, "Herald is catching up; retry after 1 second")
	default:
		h.logger.ErrorContext(r.Context(), "track request failed", "path", r.URL.Path, "err", err)
		writeMeta(w, http.StatusInternalServerError, "internal error; retry later")
	}
}

// identify is PUT /api/v1/customers/{id}: the body's top-level keys are the
// person's attributes, merged into the stored ones (null removes a key);
// "unsubscribed" sets the flag; "_update": true only updates an existing
// person. The person is created when new.
func (h *trackHandler) identify(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if !decodeTrack(w, r, &body) {
		return
	}
	// body null (go-customerio's Identify(id, nil)) is no attributes: the
	// person is created or left as is.
	id := r.PathValue("id")
	in := model.IdentifyPersonInput{ID: id, Attributes: map[string]any{}}
	for k, v := range body {
		switch k {
		case "unsubscribed":
			if v == nil {
				continue
			}
			b, ok := v.(bool)
			if !ok {
				writeMeta(w, http.StatusBadRequest, fmt.Sprintf("unsubscribed: must be true or false, got %v", v))
				return
			}
			in.Unsubscribed = &b
		case "id":
			if s, ok := v.(string); !ok || s != id {
				writeMeta(w, http.StatusBadRequest, "id: differs from the identifier in the path; changing a customer's id is not supported")
				return
			}
		case "_update":
		default:
			in.Attributes[k] = v
		}
	}
	if update, _ := body["_update"].(bool); update {
		if _, err := h.store.Person(r.Context(), mustWorkspace(r), id); errors.Is(err, clickhouse.ErrNotFound) {
			writeJSON(w, http.StatusOK, map[string]any{}) // as Customer.io: no person is created
			return
		} else if err != nil {
			h.fail(w, r, err, nil)
			return
		}
	}
	if _, err := h.resolver.Mutation().IdentifyPerson(r.Context(), in); err != nil {
		h.fail(w, r, err, map[string]string{"input.id": "identifier", "input.attributes": "body"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// mustWorkspace is the workspace basic put in the context.
func mustWorkspace(r *http.Request) string {
	return graph.WorkspaceOf(r.Context())
}

// deviceBody is PUT /api/v1/customers/{id}/devices.
type deviceBody struct {
	Device *struct {
		ID         *string         `json:"id"`
		Platform   *string         `json:"platform"`
		LastUsed   json.RawMessage `json:"last_used"`
		Attributes map[string]any  `json:"attributes"`
	} `json:"device"`
}

// addDevice is PUT /api/v1/customers/{id}/devices: adds or updates a device
// (registering a token again clears its bounced/suppressed state); the
// person is created when new, as Customer.io does.
func (h *trackHandler) addDevice(w http.ResponseWriter, r *http.Request) {
	var b deviceBody
	if !decodeTrack(w, r, &b) {
		return
	}
	if b.Device == nil {
		writeMeta(w, http.StatusBadRequest, `device: required: {"device": {"id": "<token>", "platform": "ios"|"android"}}`)
		return
	}
	in, msg := deviceInput(r.PathValue("id"), "device", "id", b.Device.ID, b.Device.Platform, b.Device.LastUsed, b.Device.Attributes)
	if msg != "" {
		writeMeta(w, http.StatusBadRequest, msg)
		return
	}
	if _, err := h.resolver.Mutation().RegisterDevice(r.Context(), in); err != nil {
		h.fail(w, r, err, map[string]string{"input.personId": "identifier", "input.token": "device.id", "input.attributes": "device.attributes", "input.lastUsedAt": "device.last_used"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// deviceInput checks a Track API device (under field, its token in
// tokenKey: "id" for PUT …/devices, "token" for custom_device) and returns
// it as registerDevice's input, or a 400 message.
func deviceInput(personID, field, tokenKey string, token, platform *string, lastUsed json.RawMessage, attrs map[string]any) (model.RegisterDeviceInput, string) {
	switch {
	case token == nil || *token == "":
		return model.RegisterDeviceInput{}, field + "." + tokenKey + ": required (the device token)"
	case platform == nil:
		return model.RegisterDeviceInput{}, field + `.platform: required ("ios" or "android")`
	}
	var p model.Platform
	switch strings.ToLower(*platform) {
	case "ios":
		p = model.PlatformIos
	case "android":
		p = model.PlatformAndroid
	default:
		return model.RegisterDeviceInput{}, fmt.Sprintf(`%s.platform: must be "ios" or "android", got %q`, field, *platform)
	}
	in := model.RegisterDeviceInput{PersonID: personID, Token: *token, Platform: p, Attributes: attrs}
	at, err := parseUnixSeconds(unquoteNumber(lastUsed))
	if err != nil {
		return model.RegisterDeviceInput{}, field + ".last_used: " + err.Error()
	}
	if !at.IsZero() {
		in.LastUsedAt = &at
	}
	return in, ""
}

// deleteDevice is DELETE /api/v1/customers/{id}/devices/{token}. An unknown
// (or already removed) device is 404, as GraphQL removeDevice's NOT_FOUND:
// a caller that deletes the wrong token learns it.
func (h *trackHandler) deleteDevice(w http.ResponseWriter, r *http.Request) {
	if _, err := h.resolver.Mutation().RemoveDevice(r.Context(), r.PathValue("id"), r.PathValue("token")); err != nil {
		h.fail(w, r, err, map[string]string{"personId": "identifier"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// unquoteNumber turns a JSON string holding a number ("1514764800") into
// that number, and leaves anything else as is: go-customerio v3 sends a
// device's last_used as a string (device.go, newDeviceV1: fmt.Sprintf("%v")).
func unquoteNumber(raw json.RawMessage) json.RawMessage {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return raw
	}
	if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
		return raw
	}
	return json.RawMessage(strings.TrimSpace(s))
}

// deletePerson is DELETE /api/v1/customers/{id}: the person's devices are
// removed and the person deleted (person(id) is NOT_FOUND afterwards);
// their past deliveries and events stay. An unknown person is 404.
func (h *trackHandler) deletePerson(w http.ResponseWriter, r *http.Request) {
	if err := h.resolver.DeletePerson(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, err, map[string]string{"personId": "identifier"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// anonymousEventBody is POST /api/v1/events: a person's event's fields and
// the anonymous id.
type anonymousEventBody struct {
	eventBody
	AnonymousID *string `json:"anonymous_id"`
}

// anonymousEvent is POST /api/v1/events, Customer.io's anonymous event. It
// is checked like a person's event and answered 200, but nothing is
// recorded: Herald has no anonymous people, and recording the event under
// its anonymous_id as a person id would let an anonymous id equal to a
// person's id convert that person's delivery. Customer.io attaches such
// events to a person when one is later identified with the anonymous id;
// Herald has no such link, so there is nothing the event could later count
// for.
func (h *trackHandler) anonymousEvent(w http.ResponseWriter, r *http.Request) {
	var b anonymousEventBody
	if !decodeTrack(w, r, &b) {
		return
	}
	if _, ok := b.check(w); !ok {
		return
	}
	if strings.TrimSpace(*b.Name) == "" {
		writeMeta(w, http.StatusBadRequest, "name: required (the event's name)")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// mergeBody is POST /api/v1/merge_customers.
type mergeBody struct {
	Primary   map[string]json.RawMessage `json:"primary"`
	Secondary map[string]json.RawMessage `json:"secondary"`
}

// merge is POST /api/v1/merge_customers: the secondary person is merged
// into the primary (graph.Resolver.MergePeople). Both are named by id
// (email and cio_id are refused with 400); an unknown person is 404.
func (h *trackHandler) merge(w http.ResponseWriter, r *http.Request) {
	var b mergeBody
	if !decodeTrack(w, r, &b) {
		return
	}
	primary, msg := mergeIdentifier(b.Primary)
	if msg != "" {
		writeMeta(w, http.StatusBadRequest, strings.Replace(msg, "identifiers", "primary", 1))
		return
	}
	secondary, msg := mergeIdentifier(b.Secondary)
	if msg != "" {
		writeMeta(w, http.StatusBadRequest, strings.Replace(msg, "identifiers", "secondary", 1))
		return
	}
	if err := h.resolver.MergePeople(r.Context(), primary, secondary); err != nil {
		h.fail(w, r, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// eventBody is POST /api/v1/customers/{id}/events.
type eventBody struct {
	Name      *string         `json:"name"`
	Data      map[string]any  `json:"data"`
	Timestamp json.RawMessage `json:"timestamp"`
	ID        *string         `json:"id"`
}

// check answers 400 for a missing name, a bad timestamp or an overlong id
// and returns false; otherwise it returns the event's time (zero: now).
func (b *eventBody) check(w http.ResponseWriter) (time.Time, bool) {
	if b.Name == nil {
		writeMeta(w, http.StatusBadRequest, "name: required (the event's name)")
		return time.Time{}, false
	}
	at, err := parseUnixSeconds(b.Timestamp)
	if err != nil {
		writeMeta(w, http.StatusBadRequest, "timestamp: "+err.Error())
		return time.Time{}, false
	}
	if b.ID != nil && len(*b.ID) > maxEventIDLen {
		writeMeta(w, http.StatusBadRequest, fmt.Sprintf("id: at most %d characters", maxEventIDLen))
		return time.Time{}, false
	}
	return at, true
}

// event is POST /api/v1/customers/{id}/events: the same path as GraphQL
// trackEvent, conversions included. Customer.io's event id (a ULID by their
// advice) deduplicates: a UUID is used as is, any other id is mapped to a
// UUIDv5, so the same id twice is one event.
func (h *trackHandler) event(w http.ResponseWriter, r *http.Request) {
	var b eventBody
	if !decodeTrack(w, r, &b) {
		return
	}
	at, ok := b.check(w)
	if !ok {
		return
	}
	e := graph.TrackedEvent{Workspace: mustWorkspace(r), PersonID: r.PathValue("id"), Name: *b.Name, Data: b.Data, At: at}
	if b.ID != nil && *b.ID != "" {
		if u, err := uuid.Parse(*b.ID); err == nil {
			e.ID = u.String()
		} else {
			e.ID = uuid.NewSHA1(eventIDSpace, []byte(*b.ID)).String()
		}
	}
	if err := h.resolver.TrackEvent(r.Context(), e); err != nil {
		h.fail(w, r, err, map[string]string{"input.personId": "identifier", "input.name": "name", "input.timestamp": "timestamp", "input.data": "data", "input.id": "id"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// maxEventIDLen bounds a Track API event id (Customer.io's are 26-character ULIDs).
const maxEventIDLen = 255

// eventIDSpace is the UUIDv5 namespace of Track API event ids that are not UUIDs.
var eventIDSpace = uuid.MustParse("6f1d0a8e-2b7c-4d51-9a63-0c4e8b2f7d10")

// sendPushBody is POST /v1/send/push, Customer.io's transactional push.
type sendPushBody struct {
	TransactionalMessageID json.RawMessage            `json:"transactional_message_id"`
	MessageID              json.RawMessage            `json:"message_id"`
	Identifiers            map[string]json.RawMessage `json:"identifiers"`
	To                     *string                    `json:"to"`
	Title                  *string                    `json:"title"`
	Message                *string                    `json:"message"`
	ImageURL               *string                    `json:"image_url"`
	Link                   *string                    `json:"link"`
	Sound                  *string                    `json:"sound"`
	CustomData             map[string]any             `json:"custom_data"`
	CustomPayload          map[string]json.RawMessage `json:"custom_payload"`
	SendAt                 *int64                     `json:"send_at"`
	SendToUnsubscribed     *bool                      `json:"send_to_unsubscribed"`
	QueueDraft             *bool                      `json:"queue_draft"`
	CustomDevice           *struct {
		Token      *string         `json:"token"`
		Platform   *string         `json:"platform"`
		LastUsed   json.RawMessage `json:"last_used"`
		Attributes map[string]any  `json:"attributes"`
	} `json:"custom_device"`
	MessageData map[string]any `json:"message_data"`
}

// sendPushUnsupported are fields of Customer.io's transactional push
// (go-customerio's SendPushRequest) that Herald does not do yet: a request
// with one is refused by name rather than sent without it.
var sendPushUnsupported = map[string]string{
	"language":                  "translations are not supported",
	"disable_message_retention": "not supported: Herald keeps every delivery",
}

// sendPushUnknown is the 400 message for a field sendPushBody lacks (at
// the top level or inside custom_device).
func sendPushUnknown(field string) string {
	if why, ok := sendPushUnsupported[field]; ok {
		return field + ": " + why
	}
	return field + ": not a field of /v1/send/push"
}

// customPayload reads custom_payload as Customer.io documents it: ios is
// an APNS payload ({"aps": …, "CIO": …, custom keys}) or, for an app on
// FCM, {"message": {"apns": {"payload": {…}}}}; android is {"message":
// {"data": …, "notification": …, "android": …}}. It returns the iOS and
// Android payloads for the overrides, or a 400 message naming the field.
func customPayload(cp map[string]json.RawMessage) (ios, android map[string]any, msg string) {
	for k, raw := range cp {
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			if k == "ios" || k == "android" {
				return nil, nil, "custom_payload." + k + ": must be an object"
			}
		}
		switch k {
		case "ios":
			m, ok := obj["message"]
			if !ok {
				ios = obj
				continue
			}
			fcm, _ := m.(map[string]any)
			for mk := range fcm {
				if mk != "apns" {
					return nil, nil, "custom_payload.ios.message." + mk + ": Herald takes only message.apns.payload for iOS (the notification comes from title and message)"
				}
			}
			apns, _ := fcm["apns"].(map[string]any)
			for ak := range apns {
				if ak != "payload" {
					return nil, nil, "custom_payload.ios.message.apns." + ak + ": not supported; set priority, time to live and collapse key in the message's options"
				}
			}
			if ios, _ = apns["payload"].(map[string]any); ios == nil {
				return nil, nil, "custom_payload.ios.message.apns.payload: required, an object"
			}
		case "android":
			m, ok := obj["message"].(map[string]any)
			if !ok {
				return nil, nil, `custom_payload.android.message: required, an object (FCM's {"message": {"data", "notification", "android"}})`
			}
			for mk := range obj {
				if mk != "message" {
					return nil, nil, "custom_payload.android." + mk + ": not a field (the payload goes in message)"
				}
			}
			android = m
		default:
			return nil, nil, "custom_payload." + k + ": not a platform (ios, android)"
		}
	}
	return ios, android, ""
}

// sendPush is POST /v1/send/push with Authorization: Bearer <API key>. It
// makes the same delivery as GraphQL sendPush, with the overrides applied
// by the worker, and answers {"delivery_id", "queued_at"}.
func (h *trackHandler) sendPush(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		writeMeta(w, http.StatusUnauthorized, "missing credentials: send Authorization: Bearer <workspace API key>")
		return
	}
	ws, err := h.bearer.workspace(r.Context(), key, clientIP(r))
	if errors.Is(err, clickhouse.ErrNotFound) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		writeMeta(w, http.StatusUnauthorized, "unauthorized: unknown API key")
		return
	}
	var rl *graph.RateLimitError
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
		writeMeta(w, http.StatusTooManyRequests, "too many lookups of unknown API keys from this address: "+rl.Error())
		return
	}
	if err != nil {
		h.logger.ErrorContext(r.Context(), "send auth failed", "err", err)
		writeMeta(w, http.StatusServiceUnavailable, "cannot check the API key now; retry later")
		return
	}
	var b sendPushBody
	if !decodeBody(w, r, &b, sendPushUnknown) {
		return
	}
	iosPayload, androidPayload, msg := customPayload(b.CustomPayload)
	if msg != "" {
		writeMeta(w, http.StatusBadRequest, msg)
		return
	}
	msgField, rawID := "transactional_message_id", b.TransactionalMessageID
	if rawID == nil && b.MessageID != nil {
		msgField, rawID = "message_id", b.MessageID
	}
	ref, msg := messageRef(msgField, rawID)
	if msg != "" {
		writeMeta(w, http.StatusBadRequest, msg)
		return
	}
	msgID, err := h.resolver.MessageIDOf(r.Context(), ws, ref)
	if errors.Is(err, graph.ErrMessageNotFound) {
		writeMeta(w, http.StatusNotFound, fmt.Sprintf("%s: no push message with id or alias %s", msgField, ref))
		return
	}
	if err != nil {
		h.fail(w, r, err, nil)
		return
	}
	person, email, msg := personIdentifier(b.Identifiers)
	if msg != "" {
		writeMeta(w, http.StatusBadRequest, msg)
		return
	}
	if email != "" {
		ids, err := h.resolver.Store.PersonIDsByEmail(r.Context(), ws, email)
		if err != nil {
			h.fail(w, r, err, nil)
			return
		}
		switch len(ids) {
		case 0:
			writeMeta(w, http.StatusNotFound, fmt.Sprintf("identifiers.email: no person has the email %q", email))
			return
		case 1:
			person = ids[0]
		default:
			writeMeta(w, http.StatusBadRequest, fmt.Sprintf("identifiers.email: %d people have the email %q; identify the person by id", len(ids), email))
			return
		}
	}
	req := graph.SendRequest{Workspace: ws, MessageID: msgID, PersonID: person, Audience: model.AudienceAllDevices, Data: b.MessageData}
	if b.To != nil {
		switch *b.To {
		case "", "all":
		case "last_used":
			req.Audience = model.AudienceLastUsed
		default:
			req.Audience, req.Token = model.AudienceCustomToken, *b.To
		}
	}
	req.Overrides = jobs.Overrides{Title: strOr(b.Title), Body: strOr(b.Message), Link: strOr(b.Link), Image: strOr(b.ImageURL),
		Sound: strOr(b.Sound), Data: b.CustomData, IOSPayload: iosPayload, AndroidPayload: androidPayload}
	if b.SendAt != nil {
		req.SendAt = time.Unix(*b.SendAt, 0)
	}
	req.Draft = b.QueueDraft != nil && *b.QueueDraft
	if cd := b.CustomDevice; cd != nil {
		// The device is added to (or updated on) the person, as PUT
		// …/devices does, and the push goes to it unless "to" says otherwise.
		in, msg := deviceInput(person, "custom_device", "token", cd.Token, cd.Platform, cd.LastUsed, cd.Attributes)
		if msg != "" {
			writeMeta(w, http.StatusBadRequest, msg)
			return
		}
		if _, err := h.resolver.Mutation().RegisterDevice(graph.WithWorkspace(r.Context(), ws), in); err != nil {
			h.fail(w, r, err, map[string]string{"input.personId": "identifiers.id", "input.token": "custom_device.token",
				"input.attributes": "custom_device.attributes", "input.lastUsedAt": "custom_device.last_used"})
			return
		}
		if b.To == nil {
			req.Audience, req.Token = model.AudienceCustomToken, in.Token
		}
	}
	// Customer.io's transactional API sends to unsubscribed people unless
	// send_to_unsubscribed is false.
	req.SendToUnsubscribed = b.SendToUnsubscribed == nil || *b.SendToUnsubscribed
	d, err := h.resolver.Send(graph.WithWorkspace(r.Context(), ws), req)
	if errors.Is(err, graph.ErrMessageNotFound) {
		// Customer.io's App API answers 404 "The transactional message does
		// not exist" for an unknown id: the body is well-formed, the
		// message it names is missing.
		writeMeta(w, http.StatusNotFound, fmt.Sprintf("%s: no push message with id %s", msgField, msgID))
		return
	}
	if err != nil {
		h.fail(w, r, err, map[string]string{"input.messageId": msgField, "input.personId": "identifiers.id", "input.token": "to",
			"input.data": "message_data", "input.sendAt": "send_at", "input.draft": "queue_draft", "input.overrides.title": "title", "input.overrides.body": "message", "input.overrides.link": "link",
			"input.overrides.image": "image_url", "input.overrides.sound": "sound", "input.overrides.data": "custom_data",
			"input.overrides.options.iosPayload": "custom_payload.ios", "input.overrides.options.androidPayload": "custom_payload.android.message",
			"input.overrides": "body"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"delivery_id": d.ID.String(), "queued_at": d.CreatedAt.Unix()})
}

// messageRef reads transactional_message_id: a message id or alias as a
// string, or a number (Customer.io's numeric ids; an alias here). It
// returns it, or a 400 message.
func messageRef(field string, raw json.RawMessage) (string, string) {
	if raw == nil || string(raw) == "null" {
		return "", field + ": required (a Herald push message id, or a message's alias)"
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return "", field + ": required (a Herald push message id, or a message's alias)"
		}
		return s, ""
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err == nil {
		if _, err := n.Int64(); err == nil {
			return n.String(), ""
		}
	}
	return "", field + ": must be a string or a whole number, got " + string(raw)
}

// personIdentifier reads identifiers: exactly one of id and email (the
// person's email attribute; Herald has no cio_id). It returns the id or
// the email, or an error message for a 400.
func personIdentifier(ids map[string]json.RawMessage) (id, email, msg string) {
	if len(ids) == 0 {
		return "", "", `identifiers: required: {"id": "<person id>"} or {"email": "<email attribute>"}`
	}
	if len(ids) > 1 {
		return "", "", "identifiers: give one of id and email, not both"
	}
	for k, raw := range ids {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil || v == "" {
			return "", "", fmt.Sprintf("identifiers.%s: must be a non-empty string, got %s", k, raw)
		}
		switch k {
		case "id":
			return v, "", ""
		case "email":
			if len(v) > maxEmailLen {
				return "", "", fmt.Sprintf("identifiers.email: over %d bytes", maxEmailLen)
			}
			return "", v, ""
		case "cio_id":
			return "", "", "identifiers.cio_id: Herald has no cio_id; identify the person by id or email"
		default:
			return "", "", fmt.Sprintf("identifiers.%s: not an identifier (id, email)", k)
		}
	}
	return "", "", ""
}

// mergeIdentifier is personIdentifier for merge_customers, which takes ids only.
func mergeIdentifier(ids map[string]json.RawMessage) (string, string) {
	id, email, msg := personIdentifier(ids)
	if email != "" {
		return "", "identifiers.email: only id is supported here; identify the person by id"
	}
	return id, msg
}

// maxEmailLen bounds identifiers.email (RFC 5321's longest path).
const maxEmailLen = 256

func strOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

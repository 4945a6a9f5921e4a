package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"
)

// defaultFCMEndpoint is Google's FCM HTTP v1 API without the /v1 suffix.
const defaultFCMEndpoint = "https://fcm.googleapis.com"

// DefaultFCMTokenURIs are the token endpoints a service account's token_uri
// may name when no allow-list is configured: Google's OAuth2 token
// endpoint, which the Firebase console writes into every service account
// JSON, and its older address. The worker POSTs a signed JWT there, so any
// other address would let a workspace make Herald call a host of its choice.
var DefaultFCMTokenURIs = []string{"https://oauth2.googleapis.com/token", "https://accounts.google.com/o/oauth2/token"}

// ErrTokenURINotAllowed is wrapped by the error for a service account whose
// token_uri is not on the allow-list.
var ErrTokenURINotAllowed = errors.New("token_uri is not an allowed token endpoint")

// CheckTokenURI checks the service account's token_uri against allowed
// (exact URLs; empty means DefaultFCMTokenURIs), after Validate's checks.
func (c FCMCredentials) CheckTokenURI(allowed []string) error {
	sa, err := c.parse()
	if err != nil {
		return err
	}
	return checkTokenURI(sa.TokenURI, allowed)
}

func checkTokenURI(uri string, allowed []string) error {
	if len(allowed) == 0 {
		allowed = DefaultFCMTokenURIs
	}
	if slices.Contains(allowed, uri) {
		return nil
	}
	return fmt.Errorf("fcm credentials: %w: want %s", ErrTokenURINotAllowed, strings.Join(allowed, " or "))
}

// FCMCredentials are one workspace's Firebase credentials: the service
// account JSON downloaded from the Firebase console.
type FCMCredentials struct {
	ServiceAccountJSON string
}

// serviceAccount is the part of the JSON Herald checks.
type serviceAccount struct {
	Type        string `json:"type"`
	ProjectID   string `json:"project_id"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
	TokenURI    string `json:"token_uri"`
}

// Validate checks that the JSON parses and names a project, an account, a
// private key and a token endpoint.
func (c FCMCredentials) Validate() error {
	_, err := c.parse()
	return err
}

func (c FCMCredentials) parse() (serviceAccount, error) {
	var sa serviceAccount
	if err := json.Unmarshal([]byte(c.ServiceAccountJSON), &sa); err != nil {
		return sa, fmt.Errorf("fcm credentials: service account JSON: %w", err)
	}
	if sa.Type != "" && sa.Type != "service_account" {
		return sa, fmt.Errorf("fcm credentials: type is %q, want \"service_account\"", sa.Type)
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"project_id", sa.ProjectID}, {"client_email", sa.ClientEmail},
		{"private_key", sa.PrivateKey}, {"token_uri", sa.TokenURI},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return sa, fmt.Errorf("fcm credentials: service account JSON lacks %s", strings.Join(missing, ", "))
	}
	if !strings.Contains(sa.PrivateKey, "PRIVATE KEY-----") {
		return sa, errors.New("fcm credentials: private_key is not a PEM private key")
	}
	return sa, nil
}

// FCMOptions say where and how to reach FCM.
type FCMOptions struct {
	Endpoint string        // base URL of the FCM API, e.g. http://127.0.0.1:PORT; empty means Google's
	Timeout  time.Duration // per push; zero means DefaultTimeout
	// TokenURIs are the token endpoints a service account may name (exact
	// URLs); empty means DefaultFCMTokenURIs. The simulators need theirs here.
	TokenURIs []string
}

type fcmSender struct {
	client  *messaging.Client
	timeout time.Duration
}

// NewFCM returns a Sender that pushes through the firebase v4 messaging
// client with c. The OAuth token exchange goes to the service account's
// token_uri. Keep one per workspace: it caches the access token.
//
// One Send is one HTTP request. The firebase client retries 503s and
// network errors itself (internal.WithDefaultRetryConfig: up to 4 retries,
// about 7 s), and its RetryConfig is unexported, but Herald counts and
// schedules attempts in its own jobs. So the client gets an http.Client whose
// outermost RoundTripper (singleShot, below) knows the Send it belongs to
// through the request context, and:
//   - on an error answer, sets Retry-After far beyond the client's 2-minute
//     MaxDelay; RetryConfig.retryDelay then declines to retry ("If the
//     Retry-After header requires a longer delay than MaxDelay, retries are
//     not attempted") and the SDK builds its usual error from the answer;
//   - on a transport error (which has no answer to carry a header), records
//     the error and cancels the Send's context, so the SDK's waitForRetry
//     returns at once; Send then classifies the recorded error;
//   - refuses any further request in the same Send, as a last guard.
//
// The authenticating transport (and its token endpoint calls) sits under
// singleShot, so a failed token exchange is not retried either.
func NewFCM(ctx context.Context, c FCMCredentials, o FCMOptions) (Sender, error) {
	sa, err := c.parse()
	if err != nil {
		return nil, err
	}
	// Checked again here, not only when the credentials were set: stored
	// credentials may predate the allow-list, or the list may have shrunk.
	if err := checkTokenURI(sa.TokenURI, o.TokenURIs); err != nil {
		return nil, err
	}
	// The transport may keep ctx for token refreshes: it must outlive this call.
	ctx = context.WithoutCancel(ctx)
	base := http.DefaultTransport.(*http.Transport).Clone()
	// Keep the connections of concurrent sends: over HTTP/1.1 (a proxy,
	// the simulator) the defaults (2 idle per host, 100 in all) made a
	// worker open and close a connection for most sends. Google's endpoint
	// speaks HTTP/2, one connection for all.
	base.MaxIdleConnsPerHost, base.MaxIdleConns = maxIdlePerHost, maxIdlePerHost
	authed, err := htransport.NewTransport(ctx, base,
		option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(c.ServiceAccountJSON)),
		// The scopes the firebase SDK asks for when it builds its own transport.
		option.WithScopes("https://www.googleapis.com/auth/cloud-platform",
			"https://www.googleapis.com/auth/firebase.messaging"),
		// No OpenTelemetry wrapper: Herald exports no traces, and hashing
		// its metric attributes cost about 18 CPU-µs a send.
		option.WithTelemetryDisabled())
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	endpoint := strings.TrimRight(o.Endpoint, "/")
	if endpoint == "" {
		endpoint = defaultFCMEndpoint
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: sa.ProjectID},
		option.WithHTTPClient(&http.Client{Transport: &singleShot{next: authed}}),
		option.WithEndpoint(endpoint+"/v1"))
	if err != nil {
		return nil, fmt.Errorf("fcm: app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: messaging client: %w", err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &fcmSender{client: client, timeout: timeout}, nil
}

// maxIdlePerHost is the most idle HTTP/1.1 connections an FCM sender
// keeps to its endpoint: a worker's concurrent sends' worth.
const maxIdlePerHost = 256

// Send pushes p with exactly one HTTP request (see NewFCM).
func (s *fcmSender) Send(ctx context.Context, p Push) Result {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	st := &sendState{cancel: cancel}
	name, err := s.client.Send(context.WithValue(ctx, sendStateKey{}, st), FCMMessage(p))
	if err == nil {
		return Result{Outcome: Accepted, MessageID: name, StatusCode: http.StatusOK}
	}
	if tErr := st.transportErr(); errors.Is(tErr, errTooLarge) {
		return tooLarge()
	} else if tErr != nil {
		return classifyTransport(tErr)
	}
	return classifyFCM(err)
}

// classifyTransport classifies a request that got no answer from FCM. Its
// Reason never holds what the other side sent: a token endpoint's error
// body, or the bytes of a server that does not speak HTTP, end up in the
// error's text, and the Reason is shown to the workspace.
func classifyTransport(err error) Result {
	// A token endpoint that refuses the service account will keep refusing.
	var authErr *auth.Error
	var retrieveErr *oauth2.RetrieveError
	status := 0
	switch {
	case errors.As(err, &authErr) && authErr.Response != nil:
		status = authErr.Response.StatusCode
	case errors.As(err, &retrieveErr) && retrieveErr.Response != nil:
		status = retrieveErr.Response.StatusCode
	}
	if status != 0 {
		r := Result{Outcome: Permanent, StatusCode: status, Reason: fmt.Sprintf("token endpoint: HTTP %d", status)}
		if status == http.StatusTooManyRequests || status >= 500 {
			r.Outcome = Transient
		}
		return r
	}
	return Result{Outcome: Transient, Reason: transportReason(err)}
}

// fcmCodes name the canonical error codes of Google APIs that firebase's
// errorutils recognises, for errors classifyFCM does not map itself.
var fcmCodes = []struct {
	is   func(error) bool
	name string
}{
	{errorutils.IsInvalidArgument, "INVALID_ARGUMENT"}, {errorutils.IsFailedPrecondition, "FAILED_PRECONDITION"},
	{errorutils.IsOutOfRange, "OUT_OF_RANGE"}, {errorutils.IsUnauthenticated, "UNAUTHENTICATED"},
	{errorutils.IsPermissionDenied, "PERMISSION_DENIED"}, {errorutils.IsNotFound, "NOT_FOUND"},
	{errorutils.IsConflict, "CONFLICT"}, {errorutils.IsAborted, "ABORTED"},
	{errorutils.IsAlreadyExists, "ALREADY_EXISTS"}, {errorutils.IsResourceExhausted, "RESOURCE_EXHAUSTED"},
	{errorutils.IsCancelled, "CANCELLED"}, {errorutils.IsDataLoss, "DATA_LOSS"},
	{errorutils.IsInternal, "INTERNAL"}, {errorutils.IsUnavailable, "UNAVAILABLE"},
	{errorutils.IsDeadlineExceeded, "DEADLINE_EXCEEDED"},
}

// fcmCode is the error's canonical code, or "HTTP <status>", or "UNKNOWN":
// never the error's text, which holds the answer's body when it is not
// Google's error JSON.
func fcmCode(err error, status int) string {
	for _, c := range fcmCodes {
		if c.is(err) {
			return c.name
		}
	}
	if status != 0 {
		return fmt.Sprintf("HTTP %d", status)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "UNKNOWN"
}

// classifyFCM maps the firebase client's error to an Outcome, per
// https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode. It must
// see the SDK's own error: the messaging.IsXxx helpers use a type
// assertion, so a wrapped error would match nothing.
func classifyFCM(err error) Result {
	var r Result
	if resp := errorutils.HTTPResponse(err); resp != nil {
		r.StatusCode = resp.StatusCode
	}
	r.Reason = fcmCode(err, r.StatusCode)
	switch {
	case messaging.IsUnregistered(err):
		r.Outcome, r.Reason = Unregistered, "UNREGISTERED"
	case messaging.IsSenderIDMismatch(err):
		r.Outcome, r.Reason = BadToken, "SENDER_ID_MISMATCH"
	case (messaging.IsInvalidArgument(err) || errorutils.IsInvalidArgument(err)) &&
		strings.Contains(strings.ToLower(err.Error()), "registration token"):
		r.Outcome, r.Reason = BadToken, "INVALID_ARGUMENT"
	case messaging.IsQuotaExceeded(err):
		r.Outcome, r.Reason = Transient, "QUOTA_EXCEEDED"
	case messaging.IsUnavailable(err):
		r.Outcome, r.Reason = Transient, "UNAVAILABLE"
	case messaging.IsInternal(err):
		r.Outcome, r.Reason = Transient, "INTERNAL"
	case messaging.IsThirdPartyAuthError(err):
		r.Outcome, r.Reason = Permanent, "THIRD_PARTY_AUTH_ERROR"
	case messaging.IsInvalidArgument(err):
		r.Outcome, r.Reason = Permanent, "INVALID_ARGUMENT"
	case errorutils.IsUnavailable(err), errorutils.IsInternal(err), errorutils.IsResourceExhausted(err),
		errorutils.IsDeadlineExceeded(err), errors.Is(err, context.DeadlineExceeded),
		errorutils.IsUnknown(err) && r.StatusCode == 0:
		r.Outcome = Transient
	default: // 401/403, other INVALID_ARGUMENT, anything else
		r.Outcome = Permanent
	}
	if r.StatusCode == http.StatusTooManyRequests || r.StatusCode >= 500 {
		r.Outcome = Transient
	}
	return r
}

// sendStateKey carries a Send's *sendState in the request context.
type sendStateKey struct{}

// sendState is what singleShot knows about one Send.
type sendState struct {
	cancel context.CancelFunc

	mu       sync.Mutex
	requests int
	err      error // the transport error of the one request, if any
}

func (st *sendState) transportErr() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// errTooLarge is returned for a message whose request body is over
// MaxPayloadBytes (or of unknown size), which is not sent.
var errTooLarge = errors.New("fcm: request body over MaxPayloadBytes")

// errSecondRequest is returned if the SDK tries a second request in one Send.
var errSecondRequest = errors.New("fcm: the firebase client tried a second request in one Send; Herald retries on its own")

// retryAfterBeyondMaxDelay is larger than the SDK's 2-minute RetryConfig.MaxDelay.
const retryAfterBeyondMaxDelay = "86400"

// singleShot lets one request through per Send and makes sure the firebase
// client does not retry it (see NewFCM). Requests without a sendState pass
// through untouched.
type singleShot struct {
	next http.RoundTripper
}

func (t *singleShot) RoundTrip(req *http.Request) (*http.Response, error) {
	st, ok := req.Context().Value(sendStateKey{}).(*sendState)
	if !ok {
		return t.next.RoundTrip(req)
	}
	st.mu.Lock()
	st.requests++
	first := st.requests == 1
	st.mu.Unlock()
	if !first {
		st.cancel()
		return nil, errSecondRequest
	}
	// The request's body is PayloadJSON(Android, p), which the client has
	// just encoded: its size is measured here rather than by encoding the
	// message a second time.
	if req.ContentLength < 0 || req.ContentLength > MaxPayloadBytes {
		st.mu.Lock()
		st.err = errTooLarge
		st.mu.Unlock()
		st.cancel()
		return nil, errTooLarge
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		st.mu.Lock()
		st.err = err
		st.mu.Unlock()
		st.cancel()
		return nil, err
	}
	if resp.StatusCode >= 400 {
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			resp.Header.Set("X-Herald-Provider-Retry-After", ra)
		}
		resp.Header.Set("Retry-After", retryAfterBeyondMaxDelay)
	}
	return resp, nil
}

// Package fcmsim is a local Firebase Cloud Messaging HTTP v1 API
// (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send)
// with its own Google OAuth 2.0 token endpoint for service accounts
// (https://developers.google.com/identity/protocols/oauth2/service-account#httprest),
// so the real firebase.google.com/go/v4 client runs its whole wire protocol
// against it: it signs a JWT with the service account key, trades it for an
// access token at token_uri, then posts messages with that bearer token.
// Errors use Google's JSON error format with FcmError details
// (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode). A
// device token's fate is chosen by its prefix, see package sim.
package fcmsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v4"

	"github.com/heraldpush/herald/providers/sim"
)

// Request is one request the simulator received.
type Request = sim.Request

const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	tokenLifetime  = time.Hour
)

// Server is a running (or not yet started) FCM simulator. Its request
// counters (Count, Requests, Total, Reset) count messages:send requests by
// device token and are safe for concurrent use.
type Server struct {
	sim.Recorder

	// OnAccepted, when set before Start, is called (on the request's
	// goroutine, after the answer is written) with each accepted push's
	// token and body: the device simulator of `herald dev` uses it.
	OnAccepted func(token string, body []byte)

	outage atomic.Bool

	logger *slog.Logger

	mu       sync.Mutex
	accounts map[string]account     // by client_email
	tokens   map[string]accessToken // by access token
	srv      *http.Server
	url      string
	tokenReq int
}

type account struct {
	projectID string
	pub       *rsa.PublicKey
}

type accessToken struct {
	projectID string
	expires   time.Time
}

// New returns a simulator that is not listening yet. A nil logger discards logs.
func New(logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		logger:   logger.With("component", "fcmsim"),
		accounts: make(map[string]account),
		tokens:   make(map[string]accessToken),
	}
}

// SetOutage makes every push request answer 503 (counted as usual) while
// on, as a provider outage would.
func (s *Server) SetOutage(on bool) { s.outage.Store(on) }

// Start serves plain HTTP on addr ("127.0.0.1:0" picks a free port).
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("fcmsim: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fcmsim: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("POST /v1/projects/{project}/{method}", s.serveSend)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server.", "")
	})
	s.srv = &http.Server{
		Handler:           mux,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.url = "http://" + ln.Addr().String()
	srv := s.srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("serve", "err", err)
		}
	}()
	s.logger.Info("listening", "url", s.url)
	return nil
}

// URL returns the base URL: the FCM endpoint is URL()+"/v1", the token
// endpoint URL()+"/token".
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Close stops the server at once.
func (s *Server) Close() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// TokenRequests returns how many access tokens were asked for.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenReq
}

// TokenURL is the simulator's OAuth2 token endpoint, the token_uri of its
// service accounts: Herald must be told to allow it (FCMOptions.TokenURIs).
func (s *Server) TokenURL() string { return s.URL() + "/token" }

// NewServiceAccount generates an RSA key for a new service account of
// projectID, remembers its public half, and returns the service account JSON
// Google's console would download, with token_uri pointing at this
// simulator. Start must have been called.
func (s *Server) NewServiceAccount(projectID string) ([]byte, error) {
	s.mu.Lock()
	url := s.url
	n := len(s.accounts) + 1
	s.mu.Unlock()
	if url == "" {
		return nil, errors.New("fcmsim: NewServiceAccount before Start")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("fcmsim: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("fcmsim: marshal key: %w", err)
	}
	email := fmt.Sprintf("herald-sim-%d@%s.iam.gserviceaccount.com", n, projectID)
	sa := map[string]string{
		"type":                        "service_account",
		"project_id":                  projectID,
		"private_key_id":              randomHex(20),
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                email,
		"client_id":                   fmt.Sprintf("1%020d", n),
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   url + "/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + email,
		"universe_domain":             "googleapis.com",
	}
	out, err := json.MarshalIndent(sa, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("fcmsim: marshal service account: %w", err)
	}
	s.mu.Lock()
	s.accounts[email] = account{projectID: projectID, pub: &key.PublicKey}
	s.mu.Unlock()
	return out, nil
}

// serveToken is Google's OAuth 2.0 token endpoint for the JWT-bearer grant
// (RFC 7523): the assertion must be an RS256 JWT signed by a known service
// account, with aud equal to this endpoint and a valid exp.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenReq++
	s.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "Malformed request body.")
		return
	}
	if r.PostForm.Get("grant_type") != jwtBearerGrant {
		oauthError(w, "unsupported_grant_type", "Invalid grant_type: "+r.PostForm.Get("grant_type"))
		return
	}
	var acct account
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(t *jwt.Token) (any, error) {
		iss, _ := claims["iss"].(string)
		s.mu.Lock()
		a, ok := s.accounts[iss]
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("unknown service account %q", iss)
		}
		acct = a
		return a.pub, nil
	}, jwt.WithValidMethods([]string{"RS256"}))
	if err != nil {
		oauthError(w, "invalid_grant", "Invalid JWT Signature.")
		return
	}
	if !claims.VerifyAudience(s.URL()+"/token", true) {
		oauthError(w, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
		return
	}
	if _, ok := claims["exp"]; !ok {
		oauthError(w, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
		return
	}
	tok := "ya29.sim-" + randomHex(24)
	s.mu.Lock()
	s.tokens[tok] = accessToken{projectID: acct.projectID, expires: time.Now().Add(tokenLifetime)}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(tokenLifetime.Seconds()),
	})
}

// sendRequest is the body of messages:send, only as far as the simulator reads it.
type sendRequest struct {
	ValidateOnly bool `json:"validate_only"`
	Message      *struct {
		Token string `json:"token"`
	} `json:"message"`
}

// rawRequest holds the message as sent, for sim.CheckFCM.
type rawRequest struct {
	Message json.RawMessage `json:"message"`
}

// serveSend is POST /v1/projects/{project}/messages:send.
func (s *Server) serveSend(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("project")
	if r.PathValue("method") != "messages:send" {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server.", "")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var req sendRequest
	jsonErr := json.Unmarshal(body, &req)
	token := ""
	if jsonErr == nil && req.Message != nil {
		token = req.Message.Token
	}
	nth := s.Record(token, Request{Headers: r.Header.Clone(), Body: body, Time: time.Now()})
	log := s.logger.With("token", token, "n", nth)

	if s.outage.Load() {
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")
		return
	}
	if status, code, msg := s.authorize(r, project); status != 0 {
		log.Debug("auth failed", "status", code)
		writeError(w, status, code, msg, "")
		return
	}
	switch {
	case jsonErr != nil || req.Message == nil:
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received.", "INVALID_ARGUMENT")
		return
	case token == "":
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT")
		return
	case len(body) > sim.MaxPayloadBytes:
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Android message is too big", "INVALID_ARGUMENT")
		return
	}
	var raw rawRequest
	_ = json.Unmarshal(body, &raw)
	if msg := sim.CheckFCM(raw.Message); msg != "" {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg, "INVALID_ARGUMENT")
		return
	}

	b := sim.Classify(token)
	switch {
	case b.Kind == sim.BadToken:
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT")
		return
	case b.Kind == sim.Unregistered:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
		return
	case b.Kind == sim.Permanent:
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT")
		return
	case b.Fails(nth):
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")
		return
	case b.Kind == sim.Slow:
		t := time.NewTimer(b.Delay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			log.Debug("client gave up", "after", b.Delay)
			return
		case <-t.C:
		}
	}
	name := fmt.Sprintf("projects/%s/messages/%s", project, randomDigits(16))
	if req.ValidateOnly {
		name = fmt.Sprintf("projects/%s/messages/fake_message_id", project)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(map[string]string{"name": name})
	log.Debug("accepted", "name", name)
	if s.OnAccepted != nil {
		s.OnAccepted(token, body)
	}
}

// authorize checks the bearer token: issued here, unexpired, and for a
// service account of project.
func (s *Server) authorize(r *http.Request, project string) (int, string, string) {
	const unauth = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
		return http.StatusUnauthorized, "UNAUTHENTICATED", unauth
	}
	s.mu.Lock()
	tok, ok := s.tokens[auth[7:]]
	s.mu.Unlock()
	if !ok || time.Now().After(tok.expires) {
		return http.StatusUnauthorized, "UNAUTHENTICATED", unauth
	}
	if tok.projectID != project {
		return http.StatusForbidden, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/" + project + "' (or it may not exist)."
	}
	return 0, "", ""
}

// writeError writes Google's JSON error; fcmCode, when set, adds the FcmError detail.
func writeError(w http.ResponseWriter, status int, code, msg, fcmCode string) {
	e := map[string]any{"code": status, "message": msg, "status": code}
	if fcmCode != "" {
		details := []any{map[string]any{"@type": fcmErrorType, "errorCode": fcmCode}}
		if strings.Contains(msg, "registration token") {
			details = append(details, map[string]any{
				"@type": "type.googleapis.com/google.rpc.BadRequest",
				"fieldViolations": []any{map[string]string{
					"field": "message.token", "description": msg,
				}},
			})
		}
		e["details"] = details
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func oauthError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomDigits(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

// Package apnssim is a local Apple Push Notification service: HTTP/2 over
// TLS with a self-signed CA, provider-token (JWT) and client-certificate
// authentication, and Apple's answers ("Sending notification requests to
// APNs", https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns,
// and "Handling notification responses from APNs"). A device token's fate is
// chosen by its prefix, see package sim.
//
// The real sideshow/apns2 client talks to it when its Host is URL() and its
// TLS config trusts RootCAs().
package apnssim

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v4"

	"github.com/heraldpush/herald/providers/sim"
)

// Request is one request the simulator received.
type Request = sim.Request

// certSubjectPrefix is how Apple names push certificates; the bundle id
// follows it in the subject's common name.
const certSubjectPrefix = "Apple Push Services: "

// Server is a running (or not yet started) APNS simulator. Its request
// counters (Count, Requests, Total, Reset) are safe for concurrent use.
type Server struct {
	sim.Recorder

	// OnAccepted, when set before Start, is called (on the request's
	// goroutine, after the answer is written) with each accepted push's
	// token and body: the device simulator of `herald dev` uses it.
	OnAccepted func(token string, body []byte)

	outage atomic.Bool

	logger *slog.Logger

	mu     sync.Mutex
	keys   map[string]tokenKey // by key id
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	srv    *http.Server
	ln     net.Listener
	url    string
	serial int64
}

type tokenKey struct {
	teamID string
	pub    *ecdsa.PublicKey
}

// New returns a simulator that is not listening yet. A nil logger discards logs.
func New(logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{logger: logger.With("component", "apnssim"), keys: make(map[string]tokenKey)}
}

// SetOutage makes every push request answer 503 (counted as usual) while
// on, as a provider outage would.
func (s *Server) SetOutage(on bool) { s.outage.Store(on) }

// Start generates the CA and the server certificate and serves HTTP/2 over
// TLS on addr ("127.0.0.1:0" picks a free port).
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("apnssim: already started")
	}
	if err := s.makeCA(); err != nil {
		return err
	}
	serverCert, err := s.signLeaf(pkix.Name{CommonName: "localhost"}, x509.ExtKeyUsageServerAuth,
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.ca)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("apnssim: listen: %w", err)
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(s.serveHTTP),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    pool,
			NextProtos:   []string{"h2"},
			MinVersion:   tls.VersionTLS12,
		},
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.ln = ln
	s.url = "https://" + ln.Addr().String()
	srv := s.srv
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("serve", "err", err)
		}
	}()
	s.logger.Info("listening", "url", s.url)
	return nil
}

// URL returns the base URL to use as the apns2 client's Host.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// RootCAs returns a pool holding the simulator's CA, for the client's TLS config.
func (s *Server) RootCAs() *x509.CertPool {
	s.mu.Lock()
	defer s.mu.Unlock()
	pool := x509.NewCertPool()
	if s.ca != nil {
		pool.AddCert(s.ca)
	}
	return pool
}

// CACertPEM returns the simulator's CA certificate as PEM.
func (s *Server) CACertPEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.caPEM...)
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

// NewTokenKey generates a P-256 signing key for teamID/keyID, remembers its
// public half, and returns the private key as the PKCS#8 PEM Apple hands out
// in a .p8 file.
func (s *Server) NewTokenKey(teamID, keyID string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("apnssim: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("apnssim: marshal key: %w", err)
	}
	s.mu.Lock()
	s.keys[keyID] = tokenKey{teamID: teamID, pub: &key.PublicKey}
	s.mu.Unlock()
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// IssueClientCert signs a push certificate for bundleID with the simulator's
// CA and returns the certificate and its private key as PEM blocks, the
// form certificate.FromPemBytes reads. Start must have been called.
func (s *Server) IssueClientCert(bundleID string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ca == nil {
		return nil, errors.New("apnssim: IssueClientCert before Start")
	}
	cert, err := s.signLeaf(pkix.Name{CommonName: certSubjectPrefix + bundleID, OrganizationalUnit: []string{"SIMTEAM"}},
		x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("apnssim: marshal key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	return out, nil
}

// makeCA creates the self-signed CA; s.mu is held.
func (s *Server) makeCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("apnssim: generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Herald APNS simulator CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("apnssim: create CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("apnssim: parse CA: %w", err)
	}
	s.ca, s.caKey, s.serial = ca, key, 1
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return nil
}

// signLeaf issues a certificate signed by the CA; s.mu is held.
func (s *Server) signLeaf(name pkix.Name, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("apnssim: generate key: %w", err)
	}
	s.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(s.serial),
		Subject:      name,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, &key.PublicKey, s.caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("apnssim: sign certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serveHTTP answers POST /3/device/{token} as APNS does.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok || token == "" || strings.Contains(token, "/") {
		s.fail(w, http.StatusNotFound, "BadPath", "")
		return
	}
	if r.Method != http.MethodPost {
		s.fail(w, http.StatusMethodNotAllowed, "MethodNotAllowed", token)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return // the client went away
	}
	nth := s.Record(token, Request{Headers: r.Header.Clone(), Body: body, Time: time.Now()})
	log := s.logger.With("token", token, "n", nth)

	if s.outage.Load() {
		s.fail(w, http.StatusServiceUnavailable, "ServiceUnavailable", token)
		return
	}
	if status, reason := s.authenticate(r); status != 0 {
		log.Debug("auth failed", "reason", reason)
		s.fail(w, status, reason, token)
		return
	}
	switch {
	case !sim.IsHex(token):
		s.fail(w, http.StatusBadRequest, "BadDeviceToken", token)
		return
	case len(body) == 0:
		s.fail(w, http.StatusBadRequest, "PayloadEmpty", token)
		return
	case len(body) > sim.MaxPayloadBytes:
		s.fail(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", token)
		return
	case !json.Valid(body):
		s.fail(w, http.StatusBadRequest, "BadPayload", token) // not in Apple's list; Apple closes with 400 too
		return
	}
	if reason := sim.CheckAPNS(r.Header.Get, body); reason != "" {
		s.fail(w, http.StatusBadRequest, reason, token)
		return
	}

	b := sim.Classify(token)
	switch {
	case b.Kind == sim.BadToken:
		s.fail(w, http.StatusBadRequest, "BadDeviceToken", token)
		return
	case b.Kind == sim.Unregistered:
		s.fail(w, http.StatusGone, "Unregistered", token)
		return
	case b.Kind == sim.Permanent:
		s.fail(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", token)
		return
	case b.Fails(nth):
		s.fail(w, http.StatusServiceUnavailable, "ServiceUnavailable", token)
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
	id := r.Header.Get("apns-id")
	if id == "" {
		id = newUUID()
	}
	w.Header().Set("apns-id", id)
	w.WriteHeader(http.StatusOK)
	log.Debug("accepted", "apns-id", id)
	if s.OnAccepted != nil {
		s.OnAccepted(token, body)
	}
}

// authenticate checks the provider token or the client certificate and
// returns a non-zero status and Apple's reason when neither is good.
func (s *Server) authenticate(r *http.Request) (int, string) {
	if auth := r.Header.Get("authorization"); auth != "" {
		raw, ok := cutPrefixFold(auth, "bearer ")
		if !ok {
			return http.StatusForbidden, "MissingProviderToken"
		}
		if r.Header.Get("apns-topic") == "" {
			return http.StatusBadRequest, "MissingTopic"
		}
		return s.checkJWT(raw)
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		cn := r.TLS.PeerCertificates[0].Subject.CommonName
		bundle, ok := strings.CutPrefix(cn, certSubjectPrefix)
		if !ok {
			return http.StatusForbidden, "BadCertificate"
		}
		if topic := r.Header.Get("apns-topic"); topic != "" && topic != bundle {
			// A certificate is issued for one topic; Apple answers
			// TopicDisallowed rather than blaming the device token.
			return http.StatusBadRequest, "TopicDisallowed"
		}
		return 0, ""
	}
	return http.StatusForbidden, "MissingProviderToken"
}

// checkJWT verifies an ES256 provider token: a known kid, iss equal to that
// key's team, and an iat no older than an hour (Apple's rule).
func (s *Server) checkJWT(raw string) (int, string) {
	var key tokenKey
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		s.mu.Lock()
		k, ok := s.keys[kid]
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		key = k
		return k.pub, nil
	}, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		return http.StatusForbidden, "InvalidProviderToken"
	}
	if iss, _ := claims["iss"].(string); iss != key.teamID {
		return http.StatusForbidden, "InvalidProviderToken"
	}
	iat, ok := claims["iat"].(float64)
	if !ok {
		return http.StatusForbidden, "InvalidProviderToken"
	}
	age := time.Since(time.Unix(int64(iat), 0))
	if age > time.Hour {
		return http.StatusForbidden, "ExpiredProviderToken"
	}
	if age < -5*time.Minute {
		return http.StatusForbidden, "InvalidProviderToken"
	}
	return 0, ""
}

// fail writes Apple's error body; 410 carries the time the token stopped
// being valid, in milliseconds since the epoch.
func (s *Server) fail(w http.ResponseWriter, status int, reason, token string) {
	body := map[string]any{"reason": reason}
	if status == http.StatusGone {
		body["timestamp"] = time.Now().UnixMilli()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("apns-id", newUUID())
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
	s.logger.Debug("rejected", "token", token, "status", status, "reason", reason)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := strings.ToUpper(hex.EncodeToString(b[:]))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

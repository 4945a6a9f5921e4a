package providers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/certificate"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
)

// DefaultTimeout bounds one push when the options leave Timeout at zero.
const DefaultTimeout = 10 * time.Second

// maxCollapseID is Apple's limit for apns-collapse-id, in bytes.
const maxCollapseID = 64

// APNSCredentials are one workspace's Apple credentials: either a provider
// token key (P8 with KeyID and TeamID) or a push certificate (CertPEM holding
// the certificate and its private key as PEM blocks). BundleID is the app's
// topic either way.
type APNSCredentials struct {
	KeyID, TeamID, BundleID, P8 string
	CertPEM                     string
}

// Validate parses the key or the certificate and reports the first problem.
func (c APNSCredentials) Validate() error {
	_, _, err := c.parse()
	return err
}

// parse returns the token or the certificate the credentials hold.
func (c APNSCredentials) parse() (*token.Token, *tls.Certificate, error) {
	if c.BundleID == "" {
		return nil, nil, errors.New("apns credentials: bundle id is required")
	}
	switch {
	case c.P8 != "" && c.CertPEM != "":
		return nil, nil, errors.New("apns credentials: set either a .p8 key or a certificate, not both")
	case c.P8 != "":
		if c.KeyID == "" || c.TeamID == "" {
			return nil, nil, errors.New("apns credentials: key id and team id are required with a .p8 key")
		}
		key, err := token.AuthKeyFromBytes([]byte(c.P8))
		if err != nil {
			return nil, nil, fmt.Errorf("apns credentials: .p8 key: %w", err)
		}
		return &token.Token{AuthKey: key, KeyID: c.KeyID, TeamID: c.TeamID}, nil, nil
	case c.CertPEM != "":
		cert, err := certificate.FromPemBytes([]byte(c.CertPEM), "")
		if err != nil {
			return nil, nil, fmt.Errorf("apns credentials: certificate PEM (want the certificate and its unencrypted private key): %w", err)
		}
		if cert.Leaf == nil {
			return nil, nil, errors.New("apns credentials: certificate PEM: cannot parse the certificate")
		}
		if now := time.Now(); now.After(cert.Leaf.NotAfter) {
			return nil, nil, fmt.Errorf("apns credentials: certificate expired on %s", cert.Leaf.NotAfter.Format(time.DateOnly))
		}
		return nil, &cert, nil
	}
	return nil, nil, errors.New("apns credentials: need a .p8 key (with key id and team id) or a certificate PEM")
}

// APNSOptions say where and how to reach APNS.
type APNSOptions struct {
	Host    string         // e.g. https://127.0.0.1:2197; empty means apns2.HostProduction
	RootCAs *x509.CertPool // trusted roots; nil means the system's
	Timeout time.Duration  // per push; zero means DefaultTimeout
}

type apnsSender struct {
	client   *apns2.Client
	bundleID string
	timeout  time.Duration
}

// NewAPNS returns a Sender that pushes through sideshow/apns2 with c.
// Keep one per workspace and reuse it: it holds the HTTP/2 connection.
func NewAPNS(c APNSCredentials, o APNSOptions) (Sender, error) {
	tok, cert, err := c.parse()
	if err != nil {
		return nil, err
	}
	var client *apns2.Client
	if tok != nil {
		client = apns2.NewTokenClient(tok)
	} else {
		client = apns2.NewClient(*cert)
	}
	// NewTokenClient leaves TLSClientConfig nil; NewClient's holds the
	// client certificate, which must be kept.
	tr, ok := client.HTTPClient.Transport.(*http2.Transport)
	if !ok {
		return nil, fmt.Errorf("apns: unexpected transport %T", client.HTTPClient.Transport)
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.RootCAs = o.RootCAs
	if cert != nil {
		// With TLS 1.3 the server checks a client certificate after the
		// client's handshake has finished, so a refused certificate shows
		// up later as a broken pipe (which looks transient). TLS 1.2, which
		// APNS accepts, refuses it inside the handshake, with the alert we
		// classify as a permanent credentials error.
		tr.TLSClientConfig.MaxVersion = tls.VersionTLS12
	}
	client.HTTPClient.Transport = &statusRecorder{next: tr}
	client.Host = o.Host
	if client.Host == "" {
		client.Host = apns2.HostProduction
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &apnsSender{client: client, bundleID: c.BundleID, timeout: timeout}, nil
}

// Send pushes p once; apns2 does not retry.
func (s *apnsSender) Send(ctx context.Context, p Push) Result {
	payload, err := APNSPayload(p)
	if err != nil {
		return Result{Outcome: Permanent, Reason: err.Error()}
	}
	if len(payload) > MaxPayloadBytes {
		return tooLarge()
	}
	pushType, suffix := p.Options.apnsPushType()
	n := &apns2.Notification{
		DeviceToken: p.Token,
		Topic:       s.bundleID + suffix,
		CollapseID:  p.collapseID(),
		PushType:    pushType,
		Priority:    p.Options.apnsPriority(),
		Expiration:  p.Options.expiration(time.Now()),
		Payload:     payload,
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	status := new(int)
	ctx = context.WithValue(ctx, statusKey{}, status)
	if n.Expiration.Equal(time.Unix(0, 0)) {
		// apns2 leaves out an expiration of 0 (now or never); the transport sets it.
		ctx = context.WithValue(ctx, expireNowKey{}, true)
	}
	res, err := s.client.PushWithContext(ctx, n)
	if err != nil {
		// Push also fails, with an empty Response and an error quoting it,
		// on an answer whose body is not JSON: classify by its status alone.
		if *status != 0 {
			return classifyAPNS(&apns2.Response{StatusCode: *status})
		}
		return Result{Outcome: apnsErrorOutcome(err), Reason: transportReason(err)}
	}
	return classifyAPNS(res)
}

// classifyAPNS maps Apple's answer to an Outcome, per
// https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns.
func classifyAPNS(res *apns2.Response) Result {
	r := Result{StatusCode: res.StatusCode, Reason: providerReason(res.Reason)}
	switch {
	case res.StatusCode == http.StatusOK:
		r.Outcome, r.MessageID = Accepted, res.ApnsID
	case res.StatusCode == http.StatusBadRequest &&
		(res.Reason == apns2.ReasonBadDeviceToken || res.Reason == apns2.ReasonDeviceTokenNotForTopic):
		r.Outcome = BadToken
	case res.StatusCode == http.StatusGone: // Unregistered, ExpiredToken
		r.Outcome = Unregistered
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
		r.Outcome = Transient
	default: // 413 PayloadTooLarge, 403 credentials, other 4xx
		r.Outcome = Permanent
	}
	if r.Reason == "" && r.Outcome != Accepted {
		r.Reason = http.StatusText(res.StatusCode)
	}
	return r
}

// apnsErrorOutcome classifies a failed request. Certificate trouble will
// not fix itself: a server certificate Herald cannot trust, or APNS
// refusing the client certificate during the handshake (Apple rejects a
// revoked or unknown push certificate with a TLS alert, whose Go type is
// unexported, hence the text match). Timeouts, refused or dropped
// connections and unreadable answers are worth a retry.
func apnsErrorOutcome(err error) Outcome {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return Permanent
	}
	msg := err.Error()
	for _, alert := range tlsAlerts {
		if strings.Contains(msg, "remote error: tls: "+alert) {
			return Permanent
		}
	}
	return Transient
}

// statusKey carries a Send's *int in the request context, where
// statusRecorder writes the answer's HTTP status.
type statusKey struct{}

// expireNowKey marks a push whose apns-expiration is 0, which apns2
// cannot send: statusRecorder sets the header.
type expireNowKey struct{}

// statusRecorder notes the HTTP status of each answer: apns2 drops it when
// the body is not JSON. It also sets apns-expiration 0 (expireNowKey).
type statusRecorder struct{ next http.RoundTripper }

func (t *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if now, _ := req.Context().Value(expireNowKey{}).(bool); now {
		req = req.Clone(req.Context())
		req.Header.Set("apns-expiration", "0")
	}
	resp, err := t.next.RoundTrip(req)
	if p, ok := req.Context().Value(statusKey{}).(*int); ok && err == nil {
		*p = resp.StatusCode
	}
	return resp, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

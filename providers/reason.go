package providers

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"syscall"
)

// transportReason describes a request that got no usable answer, for a
// Result's Reason, which the workspace reads (devices.lastError,
// failureReason). It names the kind of failure only: a transport error's
// text can carry the bytes the other side sent (net/http quotes a
// malformed response, an OAuth error quotes the token endpoint's body), and
// a workspace must not be able to read what an address it chose answered.
func transportReason(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	var netErr net.Error
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.As(err, &dnsErr):
		return "DNS lookup failed"
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid):
		return "TLS: server certificate not trusted"
	}
	// Go's TLS alerts have an unexported type; their text is Go's own.
	if i := strings.Index(msg, "remote error: tls: "); i >= 0 {
		for _, alert := range tlsAlerts {
			if strings.HasPrefix(msg[i+len("remote error: tls: "):], alert) {
				return "TLS: remote error: " + alert
			}
		}
		return "TLS: remote error"
	}
	return "connection error"
}

// tlsAlerts are the TLS alerts that mean the client certificate was refused.
var tlsAlerts = []string{"bad certificate", "unknown certificate authority", "certificate revoked",
	"certificate expired", "unsupported certificate", "certificate required", "access denied"}

// providerReason keeps a provider's reason code (Apple's "BadDeviceToken",
// Google's "UNREGISTERED") and drops anything else: a reason is an
// identifier of at most 64 letters, digits and underscores.
func providerReason(s string) string {
	if s == "" || len(s) > 64 {
		return ""
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_') {
			return ""
		}
	}
	return s
}

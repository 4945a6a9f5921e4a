package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
)

// Certificate is the API's certificate and key, read from TLSCertFile and
// TLSKeyFile; Reload reads them again (herald serve does on SIGHUP), so a
// renewed certificate needs no restart.
type Certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCertificate reads c.TLSCertFile and c.TLSKeyFile, or returns nil
// when neither is set (plain HTTP). It is called at start, so a missing
// file or a key that does not match the certificate stops the process
// before it listens.
func (c *Config) LoadCertificate() (*Certificate, error) {
	if err := c.checkTLS(); err != nil || c.TLSCertFile == "" {
		return nil, err
	}
	cert := &Certificate{certFile: c.TLSCertFile, keyFile: c.TLSKeyFile}
	if err := cert.Reload(); err != nil {
		return nil, err
	}
	return cert, nil
}

// Reload reads the pair again; on an error the certificate in use stays.
func (c *Certificate) Reload() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("config: HERALD_TLS_CERT_FILE %s and HERALD_TLS_KEY_FILE %s: %w (give a PEM certificate, its chain after it, and the PEM private key of that certificate)", c.certFile, c.keyFile, err)
	}
	c.cur.Store(&pair)
	return nil
}

// ServerTLS is the API's TLS configuration: the current certificate, TLS
// 1.2 or later; http.Server.ServeTLS adds HTTP/2 through ALPN.
func (c *Certificate) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// PinnedClientTLS is a client TLS configuration that trusts exactly the
// certificate being served, whatever its names and issuer: herald dev's
// own clients (the device simulator, the demo seeding) call the API it
// serves, which may have a certificate for another host name or a private CA.
func (c *Certificate) PinnedClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is checked below, against the one certificate trusted.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], c.cur.Load().Certificate[0]) {
				return errors.New("tls: the server's certificate is not the one herald dev serves")
			}
			return nil
		},
	}
}

// checkTLS: the certificate and its key come together.
func (c *Config) checkTLS() error {
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return errors.New("config: HERALD_TLS_CERT_FILE (--tls-cert-file) is set but HERALD_TLS_KEY_FILE (--tls-key-file) is not: set both to serve HTTPS, or neither for plain HTTP")
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		return errors.New("config: HERALD_TLS_KEY_FILE (--tls-key-file) is set but HERALD_TLS_CERT_FILE (--tls-cert-file) is not: set both to serve HTTPS, or neither for plain HTTP")
	}
	return nil
}

// Package devicesim plays the phones of `herald dev`: for each push a
// provider simulator accepted, it reports "delivered" and then "opened" back
// to Herald through POST /push/events — the endpoint Customer.io's SDKs
// call — at set rates and after set delays, so the demo's statuses move from
// SENT to DELIVERED to OPENED.
package devicesim

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"
)

// Options set the simulated app's behaviour.
type Options struct {
	// URL is Herald's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// DeliveredRate is the share of accepted pushes reported delivered (0–1).
	DeliveredRate float64
	// OpenedRate is the share of delivered pushes reported opened (0–1).
	OpenedRate float64
	// Delay is the mean wait before each report (uniform in [Delay/2, 3·Delay/2]).
	Delay time.Duration
	// TLS, when URL is https, is the client's TLS configuration (herald dev
	// trusts exactly the certificate it serves); nil uses the system roots.
	TLS *tls.Config
}

// Simulator reports metrics for accepted pushes.
type Simulator struct {
	opts   Options
	client *http.Client
	logger *slog.Logger
}

// New returns a simulator; a nil logger discards logs.
func New(o Options, logger *slog.Logger) *Simulator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if o.TLS != nil {
		client.Transport = &http.Transport{TLSClientConfig: o.TLS}
	}
	return &Simulator{opts: o, client: client, logger: logger}
}

// DeliveryID finds Customer.io's CIO-Delivery-ID in an APNS payload (a
// top-level key) or an FCM request body (a key of message.data).
func DeliveryID(body []byte) string {
	var p struct {
		APNS    string `json:"CIO-Delivery-ID"`
		Message struct {
			Data map[string]string `json:"data"`
		} `json:"message"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	if p.APNS != "" {
		return p.APNS
	}
	return p.Message.Data["CIO-Delivery-ID"]
}

// Accepted is the provider simulators' OnAccepted hook.
func (s *Simulator) Accepted(token string, body []byte) {
	id := DeliveryID(body)
	if id == "" || rand.Float64() >= s.opts.DeliveredRate {
		return
	}
	time.AfterFunc(s.delay(), func() {
		if !s.report(id, token, "delivered") || rand.Float64() >= s.opts.OpenedRate {
			return
		}
		time.AfterFunc(s.delay(), func() { s.report(id, token, "opened") })
	})
}

func (s *Simulator) delay() time.Duration {
	if s.opts.Delay <= 0 {
		return 0
	}
	return s.opts.Delay/2 + time.Duration(rand.Int64N(int64(s.opts.Delay)))
}

func (s *Simulator) report(deliveryID, token, event string) bool {
	body, _ := json.Marshal(map[string]any{"delivery_id": deliveryID, "event": event, "device_id": token, "timestamp": time.Now().Unix()})
	resp, err := s.client.Post(s.opts.URL+"/push/events", "application/json", bytes.NewReader(body))
	if err != nil {
		s.logger.Warn("report failed", "event", event, "err", err)
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.logger.Warn("report refused", "event", event, "status", fmt.Sprint(resp.StatusCode))
		return false
	}
	return true
}

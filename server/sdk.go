package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/graph"
	"github.com/heraldpush/herald/internal/ratelimit"
)

// maxReportBytes bounds an SDK report's body; real ones are ~150 bytes.
const maxReportBytes = 16 << 10

// sdkHandler serves the metric endpoints Customer.io's SDKs call. Legacy
// SDKs send HTTP Basic auth (site id : API key), newer ones none; Herald
// ignores it either way: a report counts only for a device token the
// delivery targeted, and a 401 would pause every request of a legacy SDK.
type sdkHandler struct {
	resolver *graph.Resolver
	logger   *slog.Logger
	// limiter and perIP bound reports per client IP per second (0: no limit).
	limiter *ratelimit.Limiter
	perIP   int
}

func (h *sdkHandler) pushEvents(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, pushEventsFormat)
}

func (h *sdkHandler) metrics(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, metricsFormat)
}

// reportFormat names the fields of one of the report endpoints' bodies.
type reportFormat int

const (
	pushEventsFormat reportFormat = iota // {"delivery_id","event","device_id","timestamp"}
	metricsFormat                        // {"delivery_id","metric","recipient","timestamp"}
)

// reportError is a 400 with the message to show.
type reportError string

func (e reportError) Error() string { return string(e) }

// parseReport checks a report body and returns what it reports. It is pure
// (no I/O), so it is fuzzed on its own: it never panics, and what it
// accepts has a delivery id, a known metric, a token and a sane time.
func parseReport(raw []byte, f reportFormat) (graph.MetricReport, error) {
	var body struct {
		DeliveryID string          `json:"delivery_id"`
		Event      string          `json:"event"`
		Metric     string          `json:"metric"`
		DeviceID   string          `json:"device_id"`
		Recipient  string          `json:"recipient"`
		Timestamp  json.RawMessage `json:"timestamp"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&body); err != nil {
		return graph.MetricReport{}, reportError("body is not a valid JSON object: " + err.Error())
	}
	if dec.More() {
		return graph.MetricReport{}, reportError("body has data after the JSON object")
	}
	event, eventField, token, tokenField := body.Event, "event", body.DeviceID, "device_id"
	if f == metricsFormat {
		event, eventField, token, tokenField = body.Metric, "metric", body.Recipient, "recipient"
	}
	if body.DeliveryID == "" {
		return graph.MetricReport{}, reportError("delivery_id is required")
	}
	if token == "" {
		return graph.MetricReport{}, reportError(tokenField + " is required (the device token the push was sent to)")
	}
	if len(token) > maxTokenLen || len(body.DeliveryID) > maxTokenLen {
		return graph.MetricReport{}, reportError(fmt.Sprintf("delivery_id and %s are at most %d characters", tokenField, maxTokenLen))
	}
	if strings.EqualFold(strings.TrimSpace(event), "clicked") {
		// Legacy SDKs (customerio-android 3.x) report a tapped push as
		// "clicked"; it is Herald's opened.
		event = "opened"
	}
	metric, err := domain.ParseMetric(event)
	if err != nil {
		return graph.MetricReport{}, reportError(eventField + ": " + err.Error())
	}
	at, err := parseUnixSeconds(body.Timestamp)
	if err != nil {
		return graph.MetricReport{}, reportError("timestamp: " + err.Error())
	}
	return graph.MetricReport{DeliveryID: body.DeliveryID, Metric: metric, Token: token, At: at}, nil
}

// maxTokenLen bounds ids and tokens in reports (FCM tokens are the longest).
const maxTokenLen = 4096

func (h *sdkHandler) serve(w http.ResponseWriter, r *http.Request, f reportFormat) {
	if h.limiter != nil {
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		ok, retry, err := h.limiter.Allow(r.Context(), "report:"+ip, h.perIP)
		if err == nil && !ok {
			rl := &graph.RateLimitError{RetryAfter: retry}
			w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
			writeError(w, http.StatusTooManyRequests, rl.Error())
			return
		}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReportBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxReportBytes))
		return
	}
	m, err := parseReport(raw, f)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	err = h.resolver.ReportMetric(r.Context(), m)
	var in *graph.InputError
	var nf *graph.NotFoundError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{})
	case errors.As(err, &in):
		writeError(w, http.StatusBadRequest, in.Error())
	case errors.As(err, &nf):
		// An unmatched report (unknown delivery, another workspace's, or a
		// token it did not target) is 400, not 404: the legacy SDKs
		// (customerio-android 3.x QueueRunRequest, customerio-ios 2.x
		// queue runner) delete a queued request on 400 and retry every
		// other 4xx, so a 404 came back forever. One body for all three
		// cases, so the answer tells nothing about which.
		writeError(w, http.StatusBadRequest, nf.Error())
	case isOverloaded(err):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "Herald is catching up; retry after 1 second")
	default:
		h.logger.ErrorContext(r.Context(), "sdk report failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error; retry later")
	}
}

// parseUnixSeconds reads a timestamp in unix seconds (an integer, or a
// number with a fraction); absent, null or 0 means now.
func parseUnixSeconds(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, errors.New("must be a number of unix seconds")
	}
	if f == 0 {
		return time.Time{}, nil
	}
	if f < 0 || f > 1e11 || math.IsNaN(f) {
		return time.Time{}, errors.New("must be unix seconds (not milliseconds), after 1970")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/graph"
)

// maxReportBytes bounds an SDK report's body; real ones are ~150 bytes.
const maxReportBytes = 16 << 10

// sdkHandler serves the metric endpoints Customer.io's SDKs call. They carry
// no auth (as Customer.io's do): a report counts only for a device token the
// delivery targeted.
type sdkHandler struct {
	resolver *graph.Resolver
	logger   *slog.Logger
}

// pushEventBody is POST /push/events and /api/v1/push/events.
type pushEventBody struct {
	DeliveryID string          `json:"delivery_id"`
	Event      string          `json:"event"`
	DeviceID   string          `json:"device_id"`
	Timestamp  json.RawMessage `json:"timestamp"`
}

// metricsBody is POST /api/v1/metrics.
type metricsBody struct {
	DeliveryID string          `json:"delivery_id"`
	Metric     string          `json:"metric"`
	Recipient  string          `json:"recipient"`
	Timestamp  json.RawMessage `json:"timestamp"`
}

func (h *sdkHandler) pushEvents(w http.ResponseWriter, r *http.Request) {
	var b pushEventBody
	if !decodeBody(w, r, &b) {
		return
	}
	h.report(w, r, b.DeliveryID, b.Event, "event", b.DeviceID, "device_id", b.Timestamp)
}

func (h *sdkHandler) metrics(w http.ResponseWriter, r *http.Request) {
	var b metricsBody
	if !decodeBody(w, r, &b) {
		return
	}
	h.report(w, r, b.DeliveryID, b.Metric, "metric", b.Recipient, "recipient", b.Timestamp)
}

func (h *sdkHandler) report(w http.ResponseWriter, r *http.Request, deliveryID, event, eventField, token, tokenField string, ts json.RawMessage) {
	if deliveryID == "" {
		writeError(w, http.StatusBadRequest, "delivery_id is required")
		return
	}
	if token == "" {
		writeError(w, http.StatusBadRequest, tokenField+" is required (the device token the push was sent to)")
		return
	}
	metric, err := domain.ParseMetric(event)
	if err != nil {
		writeError(w, http.StatusBadRequest, eventField+": "+err.Error())
		return
	}
	at, err := parseUnixSeconds(ts)
	if err != nil {
		writeError(w, http.StatusBadRequest, "timestamp: "+err.Error())
		return
	}
	err = h.resolver.ReportMetric(r.Context(), graph.MetricReport{DeliveryID: deliveryID, Metric: metric, Token: token, At: at})
	var in *graph.InputError
	var nf *graph.NotFoundError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{})
	case errors.As(err, &in):
		writeError(w, http.StatusBadRequest, in.Error())
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, nf.Error())
	case isOverloaded(err):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "Herald is catching up; retry after 1 second")
	default:
		h.logger.ErrorContext(r.Context(), "sdk report failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error; retry later")
	}
}

// decodeBody reads one JSON object; on failure it answers 400 and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReportBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxReportBytes))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "body is not a valid JSON object: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "body has data after the JSON object")
		return false
	}
	return true
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

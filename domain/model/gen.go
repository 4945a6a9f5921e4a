package model

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
)

// GenOptions shape Generate's histories.
type GenOptions struct {
	// N is the number of deliveries.
	N int
	// Workspace is every delivery's workspace id.
	Workspace string
	// Campaigns are the campaigns deliveries belong to, chosen uniformly.
	// Empty means one campaign whose id the generator draws.
	Campaigns []uuid.UUID
	// Deliveries are created in [Start, Start+Span), at millisecond precision
	// (a delivery's creation time is its UUIDv7 id's millisecond).
	Start time.Time
	Span  time.Duration
	// Tokens is the size of the shared device token pool that every round
	// draws its devices from, so that tokens recur across deliveries.
	// Default N/3+8; at least 8. About 60% of the tokens belong to apps
	// with the SDK: only those report delivered and opened.
	Tokens int
	// Persons is the number of distinct person ids. Default N/2+4.
	Persons int
}

// Generate returns o.N random delivery histories, oldest first, the same
// for the same rng state. They cover every outcome Herald records: deliveries
// not yet planned (no rows), pre-send failures with each of the five reasons,
// device sends SENT after 1..11 attempts, BOUNCED, FAILED after 11 transient
// attempts or a permanent error, SUPPRESSED, still PENDING after 0..10
// attempts; delivered and opened reports (an open without a delivered
// report, reports from devices whose send is not SENT, reports from retried
// rounds); rounds of 1-5 devices, 3% of 6-12, 0.3% of 60-70; conversions (one or two rows, stamped round 0 or the newest
// round); retry rounds after a FAILED round with a fresh set of devices;
// duplicate rows; and rows in shuffled order.
//
// Rows look like the worker's: a targeted row per device (attempt 0), one
// attempt row per try (attempt 1..n) carrying the provider's status code and
// reason, final rows (sent, bounced, failed, suppressed; attempt 0) at the
// time of the last attempt, device index 65535 only for presend_failed and
// converted, DeliveryCreated = CreatedAt, At after CreatedAt at microsecond
// precision. Every device of a round is listed in Delivery.Devices.
func Generate(rng *rand.Rand, o GenOptions) []Delivery {
	g := newGen(rng, o)
	out := make([]Delivery, 0, o.N)
	for i := 0; i < o.N; i++ {
		out = append(out, g.delivery())
	}
	slices.SortFunc(out, func(a, b Delivery) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out
}

type token struct {
	value, platform string
	sdk             bool
}

type gen struct {
	rng       *rand.Rand
	o         GenOptions
	campaigns []uuid.UUID
	messages  map[uuid.UUID]uuid.UUID
	tokens    []token
	sdk       map[string]bool // tokens of apps with the SDK
	persons   int
}

func newGen(rng *rand.Rand, o GenOptions) *gen {
	g := &gen{rng: rng, o: o, campaigns: o.Campaigns, messages: map[uuid.UUID]uuid.UUID{}, sdk: map[string]bool{}, persons: o.Persons}
	if len(g.campaigns) == 0 {
		g.campaigns = []uuid.UUID{g.uuidAt(o.Start)}
	}
	for _, c := range g.campaigns {
		g.messages[c] = g.uuidAt(o.Start)
	}
	n := o.Tokens
	if n <= 0 {
		n = o.N/3 + 8
	}
	n = max(n, 8)
	for i := 0; i < n; i++ {
		t := token{sdk: rng.Float64() < 0.6}
		if rng.IntN(2) == 0 {
			t.platform, t.value = string(domain.PlatformIOS), g.chars("0123456789abcdef", 64)
		} else {
			const fcm = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			t.platform, t.value = string(domain.PlatformAndroid), g.chars(fcm, 22)+":APA91b"+g.chars(fcm, 134)
		}
		g.tokens = append(g.tokens, t)
		g.sdk[t.value] = t.sdk
	}
	if g.persons <= 0 {
		g.persons = o.N/2 + 4
	}
	return g
}

func (g *gen) chars(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// uuidAt is UUIDAt drawing its random bits from the generator's rng.
func (g *gen) uuidAt(t time.Time) uuid.UUID {
	var u uuid.UUID
	for i := range u {
		u[i] = byte(g.rng.UintN(256))
	}
	setMillis(&u, t)
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}

// between returns a random duration in [lo, hi).
func (g *gen) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.rng.Int64N(int64(hi-lo)))
}

func (g *gen) delivery() Delivery {
	created := g.o.Start
	if g.o.Span > 0 {
		created = created.Add(time.Duration(g.rng.Int64N(int64(g.o.Span))))
	}
	created = created.Truncate(time.Millisecond)
	campaign := g.campaigns[g.rng.IntN(len(g.campaigns))]
	d := Delivery{Delivery: clickhouse.Delivery{
		WorkspaceID: g.o.Workspace, ID: g.uuidAt(created), CampaignID: campaign, MessageID: g.messages[campaign],
		PersonID: fmt.Sprintf("person-%d", g.rng.IntN(g.persons)), Audience: string(domain.AudienceAllDevices),
		CreatedAt: created,
	}}
	if g.rng.Float64() < 0.02 {
		return d // created, not yet planned: no rows at all
	}

	start := created.Add(g.between(time.Millisecond, 500*time.Millisecond))
	var sends []sendOutcome // the newest round's
	for round := uint16(0); ; round++ {
		var end time.Time
		var failed bool
		sends, end, failed = g.round(&d, round, start)
		if !failed || round >= 2 || g.rng.Float64() >= 0.4 {
			break
		}
		start = end.Add(g.between(time.Minute, 2*time.Hour)) // someone pressed retry
		// Now and then the app reports a send of the failed round late,
		// after the retry began: the report keeps its round.
		if dds := d.Devices[round]; len(dds) > 0 && g.rng.Float64() < 0.25 {
			dd := dds[g.rng.IntN(len(dds))]
			if g.sdk[dd.Token] {
				d.Events = append(d.Events, g.event(d, round, dd.Index, clickhouse.KindDelivered, 0, start.Add(g.between(time.Second, time.Minute))))
			}
		}
	}

	// Conversions go to a delivery with a device the provider accepted
	// (the nearest sent delivery), stamped round 0 by trackEvent or the
	// device's round by the SDK's converted metric.
	var firstSent time.Time
	for _, s := range sends {
		if s.status == domain.DeviceSendSent && (firstSent.IsZero() || s.at.Before(firstSent)) {
			firstSent = s.at
		}
	}
	if !firstSent.IsZero() && g.rng.Float64() < 0.25 {
		newest := uint16(len(d.Devices) - 1)
		for range 1 + g.rng.IntN(2) {
			round := newest
			if g.rng.IntN(2) == 0 {
				round = 0
			}
			goal := []string{"purchase", "signup"}[g.rng.IntN(2)]
			at := firstSent.Add(g.between(time.Minute, 48*time.Hour))
			d.Events = append(d.Events, g.event(d, round, clickhouse.DeliveryLevel, clickhouse.KindConverted, 0, at))
			d.Events[len(d.Events)-1].Reason = goal
		}
	}

	// At-least-once writers and SDKs that report twice duplicate rows; an
	// SDK's second report may carry another time.
	for _, e := range d.Events {
		if g.rng.Float64() >= 0.06 {
			continue
		}
		switch e.Kind {
		case clickhouse.KindDelivered, clickhouse.KindOpened, clickhouse.KindConverted:
			if g.rng.IntN(2) == 0 {
				e.At = e.At.Add(g.between(time.Second, time.Hour)).Truncate(time.Microsecond)
			}
		}
		d.Events = append(d.Events, e)
	}
	g.rng.Shuffle(len(d.Events), func(i, j int) { d.Events[i], d.Events[j] = d.Events[j], d.Events[i] })
	return d
}

type outcome int

const (
	outSent outcome = iota
	outBounced
	outFailedTransient
	outFailedPermanent
	outSuppressed
	outPending
)

// pickOutcome draws a device outcome, SENT most often.
func (g *gen) pickOutcome() outcome {
	switch x := g.rng.IntN(100); {
	case x < 53:
		return outSent
	case x < 65:
		return outBounced
	case x < 71:
		return outFailedTransient
	case x < 78:
		return outFailedPermanent
	case x < 88:
		return outSuppressed
	default:
		return outPending
	}
}

type sendOutcome struct {
	status domain.DeviceSendStatus
	at     time.Time // of the sent row when SENT
}

var presendReasons = []string{
	domain.ReasonVariableMissing + ": customer.first_name",
	domain.ReasonCustomerNotFound,
	domain.ReasonCustomerUnsubscribed,
	domain.ReasonCredentialsNotFound,
	domain.ReasonNoDevices,
}

// round writes one round's devices and rows, starting at t0. It returns the
// device sends, the time of the round's last send row, and whether its send
// state is FAILED (so it may be retried).
func (g *gen) round(d *Delivery, round uint16, t0 time.Time) ([]sendOutcome, time.Time, bool) {
	if g.rng.Float64() < 0.1 {
		d.Devices = append(d.Devices, nil)
		e := g.event(*d, round, clickhouse.DeliveryLevel, clickhouse.KindPresendFailed, 0, t0)
		e.Reason = presendReasons[g.rng.IntN(len(presendReasons))]
		d.Events = append(d.Events, e)
		return nil, t0, true
	}
	n := 1 + g.rng.IntN(5)
	switch x := g.rng.Float64(); {
	case x < 0.003:
		n = 60 + g.rng.IntN(11) // 60-70: far beyond the 6 devices delivery_states.bits holds
	case x < 0.033:
		n = 6 + g.rng.IntN(7) // 6-12: across the 6 devices delivery_states.bits holds
	}
	n = min(n, len(g.tokens)) // distinct tokens
	var picked []int          // token indexes, distinct within the round
	var dds []clickhouse.DeliveryDevice
	for len(dds) < n {
		i := g.rng.IntN(len(g.tokens))
		if slices.Contains(picked, i) {
			continue
		}
		picked = append(picked, i)
		dds = append(dds, clickhouse.DeliveryDevice{Index: uint16(len(dds)), Token: g.tokens[i].value, Platform: g.tokens[i].platform})
	}
	d.Devices = append(d.Devices, dds)
	same, shared := g.rng.Float64() < 0.35, g.pickOutcome()
	var sends []sendOutcome
	var statuses []domain.DeviceSend
	end := t0
	for i, dd := range dds {
		o := shared
		if !same {
			o = g.pickOutcome()
		}
		s, last := g.device(d, round, dd, o, g.tokens[picked[i]].sdk, t0)
		sends = append(sends, s)
		statuses = append(statuses, domain.DeviceSend{Status: s.status})
		if last.After(end) {
			end = last
		}
	}
	return sends, end, domain.DeliveryStatusOf(false, false, statuses) == domain.DeliveryFailed
}

type providerError struct {
	code   uint16
	reason string
}

var (
	transientErrors = map[string][]providerError{
		"IOS":     {{503, "ServiceUnavailable"}, {429, "TooManyRequests"}, {500, "InternalServerError"}, {0, "context deadline exceeded"}},
		"ANDROID": {{503, "UNAVAILABLE"}, {429, "QUOTA_EXCEEDED"}, {500, "INTERNAL"}, {0, "context deadline exceeded"}},
	}
	bounceErrors = map[string][]providerError{
		"IOS":     {{400, "BadDeviceToken"}, {400, "DeviceTokenNotForTopic"}, {410, "Unregistered"}},
		"ANDROID": {{404, "UNREGISTERED"}, {400, "INVALID_ARGUMENT: The registration token is not a valid FCM registration token"}, {403, "SENDER_ID_MISMATCH"}},
	}
	permanentErrors = map[string][]providerError{
		"IOS":     {{413, "PayloadTooLarge"}, {403, "InvalidProviderToken"}},
		"ANDROID": {{400, "INVALID_ARGUMENT: Message is too big"}, {401, "THIRD_PARTY_AUTH_ERROR"}},
	}
)

// maxAttempts is the worker's one try plus ten retries.
const maxAttempts = 11

// device writes one device send's rows: targeted, its attempts, its final
// row, and the SDK's reports. It returns the send and the time of its last
// attempt (t0 when none).
func (g *gen) device(d *Delivery, round uint16, dd clickhouse.DeliveryDevice, o outcome, sdk bool, t0 time.Time) (sendOutcome, time.Time) {
	ev := func(kind string, attempt uint16, at time.Time, pe providerError) {
		e := g.event(*d, round, dd.Index, kind, attempt, at)
		e.StatusCode, e.Reason = pe.code, pe.reason
		d.Events = append(d.Events, e)
	}
	pick := func(errs map[string][]providerError) providerError {
		list := errs[dd.Platform]
		return list[g.rng.IntN(len(list))]
	}
	// Half the devices with the SDK had reported before this push was
	// targeted: the worker marks their targeted row (status_code 1).
	known := providerError{}
	if sdk && g.rng.IntN(2) == 0 {
		known.code = 1
	}
	ev(clickhouse.KindTargeted, 0, t0, known)

	// attempts writes tries 1..k, the first k-1 transient, the last with
	// lastErr (nil: transient too); it returns the last try's time and
	// error. The worker writes a final attempt as its outcome row, with
	// the attempt number (0007): then, when final and not old, the last
	// try has no attempt row and last is its number for the outcome row.
	// old (a fifth of the devices) writes the earlier shape, an attempt
	// row and an outcome row with attempt 0, which Herald still reads.
	at := t0
	old := g.rng.IntN(5) == 0
	attempts := func(k int, lastErr *providerError, final bool) (time.Time, providerError, uint16) {
		var pe providerError
		var last uint16
		for a := 1; a <= k; a++ {
			at = at.Add(time.Duration(a*a)*time.Second + g.between(time.Microsecond, 5*time.Second))
			pe = pick(transientErrors)
			if a == k && lastErr != nil {
				pe = *lastErr
			}
			if a == k && final && !old {
				last = uint16(a)
				break
			}
			ev(clickhouse.KindAttempt, uint16(a), at, pe)
		}
		return at, pe, last
	}
	few := func(most int) int { // 1 usually, up to most
		if g.rng.Float64() < 0.65 {
			return 1
		}
		return 2 + g.rng.IntN(most-1)
	}

	s := sendOutcome{}
	switch o {
	case outSent:
		ok := providerError{code: 200}
		last, _, n := attempts(few(maxAttempts), &ok, true)
		id := g.chars("0123456789ABCDEF", 32)
		if old {
			d.Events[len(d.Events)-1].ProviderID = id
		}
		ev(clickhouse.KindSent, n, last, ok)
		d.Events[len(d.Events)-1].ProviderID = id
		s = sendOutcome{status: domain.DeviceSendSent, at: last}
	case outBounced:
		pe := pick(bounceErrors)
		last, _, n := attempts(few(4), &pe, true)
		ev(clickhouse.KindBounced, n, last, pe)
		s.status = domain.DeviceSendBounced
	case outFailedTransient:
		last, pe, n := attempts(maxAttempts, nil, true)
		ev(clickhouse.KindFailed, n, last, providerError{pe.code, fmt.Sprintf("retries exhausted after %d attempts: %s", maxAttempts, pe.reason)})
		s.status = domain.DeviceSendFailed
	case outFailedPermanent:
		pe := pick(permanentErrors)
		last, _, n := attempts(few(5), &pe, true)
		ev(clickhouse.KindFailed, n, last, pe)
		s.status = domain.DeviceSendFailed
	case outSuppressed:
		ev(clickhouse.KindSuppressed, 0, t0, providerError{reason: "device is suppressed"})
		s.status = domain.DeviceSendSuppressed
	case outPending:
		attempts(g.rng.IntN(maxAttempts), nil, false)
		s.status = domain.DeviceSendPending
	}

	// The SDK reports from the device itself: mostly after a SENT, now and
	// then for a send whose provider response never came or failed.
	if !sdk {
		return s, at
	}
	metric := func(kind string, after time.Time, lo, hi time.Duration) time.Time {
		t := after.Add(g.between(lo, hi))
		ev(kind, 0, t, providerError{})
		return t
	}
	switch {
	case s.status == domain.DeviceSendSent:
		switch x := g.rng.Float64(); {
		case x < 0.40:
			metric(clickhouse.KindDelivered, at, time.Millisecond, 2*time.Minute)
		case x < 0.65:
			t := metric(clickhouse.KindDelivered, at, time.Millisecond, 2*time.Minute)
			metric(clickhouse.KindOpened, t, time.Second, 6*time.Hour)
		case x < 0.75:
			metric(clickhouse.KindOpened, at, time.Second, 6*time.Hour)
		}
	case s.status == domain.DeviceSendPending || s.status == domain.DeviceSendFailed:
		if g.rng.Float64() < 0.06 {
			t := metric(clickhouse.KindDelivered, at, time.Millisecond, 2*time.Minute)
			if g.rng.IntN(3) == 0 {
				metric(clickhouse.KindOpened, t, time.Second, time.Hour)
			}
		}
	}
	return s, at
}

// event is a row of d with the given identity at time at (microseconds).
func (g *gen) event(d Delivery, round uint16, index uint16, kind string, attempt uint16, at time.Time) clickhouse.Event {
	return clickhouse.Event{WorkspaceID: d.WorkspaceID, CampaignID: d.CampaignID, DeliveryID: d.ID, Round: round,
		DeviceIndex: index, Kind: kind, Attempt: attempt, DeliveryCreated: d.CreatedAt, At: at.Truncate(time.Microsecond)}
}

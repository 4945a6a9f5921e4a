package model

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
)

func genForTest(t *testing.T, n int) []Delivery {
	t.Helper()
	return Generate(rand.New(rand.NewPCG(42, 7)), GenOptions{
		N: n, Workspace: "ws",
		Campaigns: []uuid.UUID{uuid.MustParse("0190c0de-0000-7000-8000-0000000000a1"), uuid.MustParse("0190c0de-0000-7000-8000-0000000000a2")},
		Start:     t0, Span: 72 * time.Hour,
	})
}

// TestGenerateCoverage checks that 2000 histories hold every outcome.
func TestGenerateCoverage(t *testing.T) {
	ds := genForTest(t, 2000)
	if len(ds) != 2000 {
		t.Fatalf("Generate gave %d deliveries, want 2000", len(ds))
	}
	counts := map[string]int{}
	tokenDeliveries := map[string]map[uuid.UUID]bool{}
	for _, d := range ds {
		r := Status(d)
		counts["status "+string(r.Status)]++
		counts["send state "+string(r.SendState)]++
		if len(d.Events) == 0 {
			counts["no rows"]++
		}
		if r.Round > 0 {
			counts["retried"]++
		}
		if r.Status == domain.DeliveryAttempted && r.DevicesTargeted > 0 && r.DevicesAttempted < r.DevicesTargeted {
			counts["attempted with an untried device"]++
		}
		for _, dr := range r.Devices {
			counts["device "+string(dr.Status)]++
			switch {
			case dr.Status == domain.DeviceSendSent && dr.Attempts == 1:
				counts["sent at once"]++
			case dr.Status == domain.DeviceSendSent && dr.Attempts == maxAttempts:
				counts["sent after 11 attempts"]++
			case dr.Status == domain.DeviceSendFailed && dr.Attempts == maxAttempts:
				counts["failed after 11 attempts"]++
			case dr.Status == domain.DeviceSendFailed:
				counts["failed permanently"]++
			case dr.Status == domain.DeviceSendPending && dr.Attempts > 0:
				counts["pending after attempts"]++
			case dr.Status == domain.DeviceSendPending:
				counts["pending untried"]++
			}
			if dr.Opened {
				counts["opened"]++
			}
			if dr.Delivered && dr.Status != domain.DeviceSendSent {
				counts["delivered, not sent"]++
			}
		}
		if r.SendState == domain.DeliveryFailed {
			for _, reason := range presendReasons {
				if r.FailureReason == reason {
					counts["presend "+reason]++
				}
			}
		}

		type identity struct {
			round   uint16
			index   uint16
			kind    string
			attempt uint16
		}
		seen := map[clickhouse.Event]bool{}
		ident := map[identity]bool{}
		conversions := 0
		var presendRounds []uint16
		sorted := true
		for i, e := range d.Events {
			id := identity{e.Round, e.DeviceIndex, e.Kind, e.Attempt}
			switch {
			case seen[e]:
				counts["exact duplicate"]++
			case ident[id]:
				counts["same identity, another row"]++
			}
			seen[e], ident[id] = true, true
			if i > 0 && e.At.Before(d.Events[i-1].At) {
				sorted = false
			}
			switch e.Kind {
			case clickhouse.KindConverted:
				conversions++
				if e.Round < r.Round {
					counts["conversion in an older round"]++
				}
			case clickhouse.KindPresendFailed:
				presendRounds = append(presendRounds, e.Round)
			case clickhouse.KindOpened:
				if !hasRow(d, e.Round, e.DeviceIndex, clickhouse.KindDelivered) {
					counts["opened without delivered"]++
				}
			case clickhouse.KindDelivered:
				if e.Round < r.Round {
					counts["report of an older round"]++
				}
			}
			checkRow(t, d, e)
		}
		if !sorted {
			counts["shuffled"]++
		}
		if conversions >= 2 {
			counts["converted twice"]++
		}
		for _, pr := range presendRounds {
			if pr < r.Round {
				counts["presend in an older round"]++
			}
		}
		for round, dds := range d.Devices {
			for _, dd := range dds {
				if !hasRow(d, uint16(round), dd.Index, clickhouse.KindTargeted) {
					t.Errorf("delivery %s round %d device %d: no targeted row", d.ID, round, dd.Index)
				}
				if tokenDeliveries[dd.Token] == nil {
					tokenDeliveries[dd.Token] = map[uuid.UUID]bool{}
				}
				tokenDeliveries[dd.Token][d.ID] = true
			}
		}
		if got, want := clickhouse.DeliveryTime(d.ID).UnixMilli(), d.CreatedAt.UnixMilli(); got != want || d.ID.Version() != 7 {
			t.Errorf("delivery %s: id version %d time %d ms, want v7 at %d ms", d.ID, d.ID.Version(), got, want)
		}
	}
	for _, dd := range tokenDeliveries {
		if len(dd) > 1 {
			counts["token in several deliveries"]++
		}
	}
	if rt := ReportingTokens(ds); len(rt) == 0 || len(rt) >= len(tokenDeliveries) {
		t.Errorf("%d of %d tokens report, want some but not all", len(rt), len(tokenDeliveries))
	}

	var want []string
	for _, s := range domain.DeliveryStatuses() {
		want = append(want, "status "+string(s))
	}
	for _, s := range []domain.DeliveryStatus{domain.DeliveryAttempted, domain.DeliverySent, domain.DeliveryBounced, domain.DeliverySuppressed, domain.DeliveryFailed} {
		want = append(want, "send state "+string(s))
	}
	for _, s := range domain.DeviceSendStatuses() {
		want = append(want, "device "+string(s))
	}
	for _, reason := range presendReasons {
		want = append(want, "presend "+reason)
	}
	want = append(want, "no rows", "retried", "attempted with an untried device", "sent at once", "sent after 11 attempts",
		"failed after 11 attempts", "failed permanently", "pending after attempts", "pending untried", "opened",
		"delivered, not sent", "exact duplicate", "same identity, another row", "conversion in an older round", "opened without delivered",
		"report of an older round", "shuffled", "converted twice", "presend in an older round", "token in several deliveries")
	for _, k := range want {
		if counts[k] == 0 {
			t.Errorf("no %q in 2000 deliveries", k)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("counts: %v", counts)
	}
}

func hasRow(d Delivery, round uint16, index uint16, kind string) bool {
	for _, e := range d.Events {
		if e.Round == round && e.DeviceIndex == index && e.Kind == kind {
			return true
		}
	}
	return false
}

// checkRow checks that a row looks like one Herald writes.
func checkRow(t *testing.T, d Delivery, e clickhouse.Event) {
	t.Helper()
	bad := func(why string) { t.Errorf("delivery %s: %s: %+v", d.ID, why, e) }
	if e.WorkspaceID != d.WorkspaceID || e.CampaignID != d.CampaignID || e.DeliveryID != d.ID {
		bad("row of another delivery")
	}
	if !e.DeliveryCreated.Equal(d.CreatedAt) {
		bad("DeliveryCreated is not CreatedAt")
	}
	if !e.At.After(d.CreatedAt) || e.At.Nanosecond()%1000 != 0 {
		bad("At not after CreatedAt at microsecond precision")
	}
	levelKind := e.Kind == clickhouse.KindPresendFailed || e.Kind == clickhouse.KindConverted
	if levelKind != (e.DeviceIndex == clickhouse.DeliveryLevel) {
		bad("device index 255 is for presend_failed and converted only")
	}
	if e.Kind == clickhouse.KindAttempt && e.Attempt == 0 {
		bad("an attempt row without its number")
	}
	if outcome := e.Kind == clickhouse.KindSent || e.Kind == clickhouse.KindBounced || e.Kind == clickhouse.KindFailed; e.Attempt > 0 && e.Kind != clickhouse.KindAttempt && !outcome {
		bad("an attempt number on a row that is not an attempt or its outcome")
	}
	if e.Attempt > maxAttempts {
		bad("more than 11 attempts")
	}
	if e.Kind == clickhouse.KindPresendFailed && !strings.HasPrefix(e.Reason, "C") && !strings.HasPrefix(e.Reason, domain.ReasonVariableMissing) {
		bad("unknown pre-send reason")
	}
	if e.DeviceIndex != clickhouse.DeliveryLevel {
		listed := false
		for _, dd := range d.RoundDevices(e.Round) {
			listed = listed || dd.Index == e.DeviceIndex
		}
		if !listed {
			bad("device not listed in Devices")
		}
	}
}

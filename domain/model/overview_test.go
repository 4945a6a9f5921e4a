package model

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
)

// devs lists a round's devices with these tokens, indexes 0..n-1.
func devs(tokens ...string) []clickhouse.DeliveryDevice {
	out := make([]clickhouse.DeliveryDevice, len(tokens))
	for i, tok := range tokens {
		out[i] = clickhouse.DeliveryDevice{Index: uint16(i), Token: tok, Platform: "IOS"}
	}
	return out
}

// mk builds a delivery of campaign created at t with rounds of devices and rows.
func mk(campaign uuid.UUID, created time.Time, rounds [][]clickhouse.DeliveryDevice, events ...clickhouse.Event) Delivery {
	d := Delivery{Delivery: clickhouse.Delivery{WorkspaceID: "ws", ID: UUIDAt(created), CampaignID: campaign, PersonID: "p", CreatedAt: created},
		Devices: rounds}
	for _, e := range events {
		e.CampaignID, e.DeliveryID, e.DeliveryCreated = campaign, d.ID, created
		d.Events = append(d.Events, e)
	}
	return d
}

func TestComputeOverview(t *testing.T) {
	c := uuid.MustParse("0190c0de-0000-7000-8000-00000000000c")
	other := uuid.MustParse("0190c0de-0000-7000-8000-00000000000f")
	at := func(h, m, s, ms int) time.Time {
		return time.Date(2026, 3, 2, h, m, s, ms*int(time.Millisecond), time.UTC)
	}
	deliveries := []Delivery{
		// Before the range once truncated to the second.
		mk(c, at(9, 59, 59, 900), [][]clickhouse.DeliveryDevice{devs("Z")}, ev(0, 0, kSent, 0, 1)),
		// d1, first second of the range: SENT, A opened (and reports), B bounced.
		mk(c, at(10, 0, 0, 500), [][]clickhouse.DeliveryDevice{devs("A", "B")},
			ev(0, 0, kTargeted, 0, 0), ev(0, 0, kAttempt, 1, 1), ev(0, 0, kSent, 0, 1), ev(0, 0, kDelivered, 0, 2), ev(0, 0, kOpened, 0, 3),
			ev(0, 1, kTargeted, 0, 0), ev(0, 1, kAttempt, 1, 1), ev(0, 1, kBounced, 0, 1), ev(0, 0, kOpened, 0, 3)),
		// d2: SENT to C, converted; C had reported before it was targeted.
		mk(c, at(10, 30, 0, 0), [][]clickhouse.DeliveryDevice{devs("C")},
			sdkKnown(ev(0, 0, kTargeted, 0, 0)), ev(0, 0, kAttempt, 1, 1), ev(0, 0, kSent, 0, 1), ev(0, lvl, kConverted, 0, 60), ev(0, lvl, kConverted, 0, 60)),
		// d3: pre-send failure.
		mk(c, at(11, 10, 0, 0), [][]clickhouse.DeliveryDevice{nil}, why(ev(0, lvl, kPresend, 0, 0), domain.ReasonCustomerNotFound)),
		// d4: D failed permanently, E suppressed.
		mk(c, at(11, 20, 0, 0), [][]clickhouse.DeliveryDevice{devs("D", "E")},
			ev(0, 0, kTargeted, 0, 0), why(ev(0, 0, kAttempt, 1, 1), "PayloadTooLarge"), why(ev(0, 0, kFailed, 0, 1), "PayloadTooLarge"),
			ev(0, 1, kTargeted, 0, 0), why(ev(0, 1, kSuppressed, 0, 0), "device is suppressed")),
		// d5: F bounced.
		mk(c, at(11, 40, 0, 0), [][]clickhouse.DeliveryDevice{devs("F")},
			ev(0, 0, kTargeted, 0, 0), ev(0, 0, kAttempt, 1, 1), why(ev(0, 0, kBounced, 0, 1), "Unregistered")),
		// d6: G suppressed.
		mk(c, at(12, 0, 0, 0), [][]clickhouse.DeliveryDevice{devs("G")}, ev(0, 0, kTargeted, 0, 0), ev(0, 0, kSuppressed, 0, 0)),
		// d7, last second of the range: H pending after 2 attempts, A sent: ATTEMPTED.
		mk(c, at(12, 59, 59, 900), [][]clickhouse.DeliveryDevice{devs("H", "A")},
			ev(0, 0, kTargeted, 0, 0), ev(0, 0, kAttempt, 1, 1), ev(0, 0, kAttempt, 2, 5),
			ev(0, 1, kTargeted, 0, 0), ev(0, 1, kAttempt, 1, 1), ev(0, 1, kSent, 0, 1)),
		// d8: round 0 J failed yet reported delivered; round 1 K sent.
		mk(c, at(12, 30, 0, 0), [][]clickhouse.DeliveryDevice{devs("J"), devs("K")},
			ev(0, 0, kTargeted, 0, 0), ev(0, 0, kAttempt, 1, 1), why(ev(0, 0, kFailed, 0, 1), "PayloadTooLarge"), ev(0, 0, kDelivered, 0, 2),
			ev(1, 0, kTargeted, 0, 100), ev(1, 0, kAttempt, 1, 101), ev(1, 0, kSent, 0, 101)),
		// After the range once truncated.
		mk(c, at(13, 0, 0, 200), [][]clickhouse.DeliveryDevice{devs("Y")}, ev(0, 0, kSent, 0, 1)),
		// Another campaign: C reports; a report on an unlisted index names no token.
		mk(other, at(10, 10, 0, 0), [][]clickhouse.DeliveryDevice{devs("C")},
			ev(0, 0, kSent, 0, 1), ev(0, 0, kDelivered, 0, 2), ev(0, 7, kDelivered, 0, 2)),
	}

	tokens := ReportingTokens(deliveries)
	if diff := cmp.Diff(map[string]bool{"A": true, "C": true, "J": true}, tokens); diff != "" {
		t.Fatalf("ReportingTokens mismatch (-want +got):\n%s", diff)
	}

	from, to := at(10, 0, 0, 0), at(13, 0, 0, 0)
	want := clickhouse.Overview{
		From: from, To: to,
		Created: 8, Attempted: 1, Sent: 3, Bounced: 1, Suppressed: 1, Failed: 2,
		Sends: 5, Recipients: 3, Delivered: 1, Opened: 1, Converted: 1,
		DeliveryRate: 1.0 / 3, OpenRate: 1, ConversionRate: 1.0 / 3, BounceRate: 1.0 / 5,
		FailuresByReason: map[string]uint64{domain.ReasonCustomerNotFound: 1, "PayloadTooLarge": 1},
		Devices:          clickhouse.DeviceTotals{Targeted: 10, Sent: 4, Bounced: 2, Failed: 1, Suppressed: 2, Pending: 1, Delivered: 1, Opened: 1},
		SDKRecipients:    2, SDKCoverage: 2.0 / 3,
		Series: []clickhouse.Bucket{
			{Start: at(10, 0, 0, 0), Created: 2, Sent: 2, Delivered: 1, Opened: 1, Converted: 1},
			{Start: at(11, 0, 0, 0), Created: 3, Bounced: 1, Failed: 2},
			{Start: at(12, 0, 0, 0), Created: 3, Sent: 1, Suppressed: 1},
		},
	}
	got := ComputeOverview(deliveries, c, from, to, clickhouse.Hour)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ComputeOverview by hour mismatch (-want +got):\n%s", diff)
	}

	want.Series = []clickhouse.Bucket{{Start: at(0, 0, 0, 0), Created: 8, Sent: 3, Bounced: 1, Suppressed: 1, Failed: 2, Delivered: 1, Opened: 1, Converted: 1}}
	got = ComputeOverview(deliveries, c, from, to, clickhouse.Day)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ComputeOverview by day mismatch (-want +got):\n%s", diff)
	}

	// Sub-second bounds are truncated like the creation times.
	got = ComputeOverview(deliveries, c, from.Add(700*time.Millisecond), to.Add(300*time.Millisecond), clickhouse.Day)
	if got.Created != 8 {
		t.Errorf("ComputeOverview with sub-second bounds: Created = %d, want 8", got.Created)
	}

	empty := ComputeOverview(deliveries, c, to, to, clickhouse.Hour)
	if diff := cmp.Diff(clickhouse.Overview{From: to, To: to}, empty); diff != "" {
		t.Errorf("ComputeOverview of an empty range mismatch (-want +got):\n%s", diff)
	}
}

// TestOverviewInvariants checks identities that hold for any histories.
func TestOverviewInvariants(t *testing.T) {
	ds := genForTest(t, 2000)
	camp := ds[0].CampaignID
	ov := ComputeOverview(ds, camp, t0, t0.Add(7*24*time.Hour), clickhouse.Hour)
	if ov.Created == 0 {
		t.Fatal("no deliveries in the range")
	}
	if got := ov.Attempted + ov.Sent + ov.Bounced + ov.Suppressed + ov.Failed; got != ov.Created {
		t.Errorf("send states sum to %d, want Created %d", got, ov.Created)
	}
	var reasons uint64
	for _, n := range ov.FailuresByReason {
		reasons += n
	}
	if reasons != ov.Failed {
		t.Errorf("FailuresByReason sums to %d, want Failed %d", reasons, ov.Failed)
	}
	d := ov.Devices
	if got := d.Sent + d.Bounced + d.Failed + d.Suppressed + d.Pending; got != d.Targeted {
		t.Errorf("device states sum to %d, want Targeted %d", got, d.Targeted)
	}
	var sum clickhouse.Bucket
	for i, b := range ov.Series {
		if i > 0 && !ov.Series[i-1].Start.Before(b.Start) {
			t.Errorf("series not sorted at %d", i)
		}
		if b.Created == 0 {
			t.Errorf("empty bucket %v", b.Start)
		}
		sum.Created += b.Created
		sum.Sent += b.Sent
		sum.Bounced += b.Bounced
		sum.Suppressed += b.Suppressed
		sum.Failed += b.Failed
		sum.Delivered += b.Delivered
		sum.Opened += b.Opened
		sum.Converted += b.Converted
	}
	wantSum := clickhouse.Bucket{Created: ov.Created, Sent: ov.Sent, Bounced: ov.Bounced, Suppressed: ov.Suppressed, Failed: ov.Failed,
		Delivered: ov.Delivered, Opened: ov.Opened, Converted: ov.Converted}
	if diff := cmp.Diff(wantSum, sum); diff != "" {
		t.Errorf("series totals mismatch (-want +got):\n%s", diff)
	}
	if ov.SDKRecipients == 0 || ov.SDKRecipients >= ov.Recipients {
		t.Errorf("SDKRecipients = %d of %d recipients, want some but not all", ov.SDKRecipients, ov.Recipients)
	}
	// The whole range by day gives the same totals.
	byDay := ComputeOverview(ds, camp, t0, t0.Add(7*24*time.Hour), clickhouse.Day)
	if diff := cmp.Diff(ov, byDay, cmpopts.IgnoreFields(clickhouse.Overview{}, "Series")); diff != "" {
		t.Errorf("by day differs beyond the series (-hour +day):\n%s", diff)
	}
}

// sdkKnown marks a targeted row of a token that had reported a metric before.
func sdkKnown(e clickhouse.Event) clickhouse.Event {
	e.StatusCode = 1
	return e
}

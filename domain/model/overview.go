package model

import (
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
)

// ReportingTokens returns the tokens that have ever reported a metric: a
// token reports when a delivered or opened row of any round of any of the
// deliveries sits on a device index (below 65535) that the delivery's
// Devices of that same round list with that token. Pass one workspace's
// deliveries: the set is per workspace. Rows on an index the round does not
// list name no token and are ignored.
func ReportingTokens(all []Delivery) map[string]bool {
	out := map[string]bool{}
	for _, d := range all {
		for _, e := range d.Events {
			if e.Kind != clickhouse.KindDelivered && e.Kind != clickhouse.KindOpened {
				continue
			}
			if e.DeviceIndex == clickhouse.DeliveryLevel {
				continue
			}
			for _, dd := range d.RoundDevices(e.Round) {
				if dd.Index == e.DeviceIndex {
					out[dd.Token] = true
				}
			}
		}
	}
	return out
}

// ComputeOverview computes a campaign's overview as clickhouse.Overview's
// comments define it, over the deliveries of campaignID whose CreatedAt,
// truncated to the second as a ClickHouse DateTime keeps it, lies in
// [from, to); from and to are truncated to the second too (a DateTime
// parameter is). reportingTokens is ReportingTokens of the workspace's
// deliveries.
//
// Per delivery (see Status): Created counts it; Attempted, Sent, Bounced,
// Suppressed and Failed count it by its SendState; Delivered, Opened and
// Converted count it when some device of its newest round is Delivered or
// Opened, or it has a converted row, whatever its send state. Recipients is
// Sends − Suppressed − Bounced, which is Sent. FailuresByReason counts the
// SendState FAILED deliveries by FailureReason and is nil when there are
// none. Devices totals the device sends of the newest rounds. SDKRecipients
// counts SendState SENT deliveries with a device listed in Devices of their
// newest round whose token is in reportingTokens. Series holds one bucket
// per hour or day (g; any value but clickhouse.Hour means a day) that has a
// delivery, bucket starts in UTC, oldest first; nil when there are none.
func ComputeOverview(deliveries []Delivery, campaignID uuid.UUID, from, to time.Time, g clickhouse.Granularity) clickhouse.Overview {
	ov := clickhouse.Overview{From: from, To: to}
	lo, hi := from.Truncate(time.Millisecond), to.Truncate(time.Millisecond)
	buckets := map[time.Time]*clickhouse.Bucket{}
	for _, d := range deliveries {
		if d.CampaignID != campaignID {
			continue
		}
		created := d.CreatedAt.Truncate(time.Millisecond)
		if created.Before(lo) || !created.Before(hi) {
			continue
		}
		r := Status(d)
		b := buckets[bucketStart(created, g)]
		if b == nil {
			b = &clickhouse.Bucket{Start: bucketStart(created, g)}
			buckets[b.Start] = b
		}

		ov.Created++
		b.Created++
		switch r.SendState {
		case domain.DeliveryAttempted:
			ov.Attempted++
		case domain.DeliverySent:
			ov.Sent++
			b.Sent++
		case domain.DeliveryBounced:
			ov.Bounced++
			b.Bounced++
		case domain.DeliverySuppressed:
			ov.Suppressed++
			b.Suppressed++
		case domain.DeliveryFailed:
			ov.Failed++
			b.Failed++
			if ov.FailuresByReason == nil {
				ov.FailuresByReason = map[string]uint64{}
			}
			ov.FailuresByReason[r.FailureReason]++
		}

		var delivered, opened bool
		for _, dr := range r.Devices {
			delivered = delivered || dr.Delivered
			opened = opened || dr.Opened
			ov.Devices.Targeted++
			switch dr.Status {
			case domain.DeviceSendSent:
				ov.Devices.Sent++
			case domain.DeviceSendBounced:
				ov.Devices.Bounced++
			case domain.DeviceSendFailed:
				ov.Devices.Failed++
			case domain.DeviceSendSuppressed:
				ov.Devices.Suppressed++
			case domain.DeviceSendPending:
				ov.Devices.Pending++
			}
			if dr.Delivered {
				ov.Devices.Delivered++
			}
			if dr.Opened {
				ov.Devices.Opened++
			}
		}
		if delivered {
			ov.Delivered++
			b.Delivered++
		}
		if opened {
			ov.Opened++
			b.Opened++
		}
		if r.Converted {
			ov.Converted++
			b.Converted++
		}

		if r.SendState == domain.DeliverySent {
			for _, dr := range r.Devices {
				if dr.SDK {
					ov.SDKRecipients++
					break
				}
			}
		}
	}

	ov.Sends = ov.Sent + ov.Bounced + ov.Suppressed
	ov.Recipients = ov.Sends - ov.Suppressed - ov.Bounced
	ov.DeliveryRate = rate(ov.Delivered, ov.Recipients)
	ov.OpenRate = rate(ov.Opened, ov.Delivered)
	ov.ConversionRate = rate(ov.Converted, ov.Recipients)
	ov.BounceRate = rate(ov.Bounced, ov.Sends)
	ov.SDKCoverage = rate(ov.SDKRecipients, ov.Recipients)

	for _, b := range buckets {
		ov.Series = append(ov.Series, *b)
	}
	slices.SortFunc(ov.Series, func(a, b clickhouse.Bucket) int { return a.Start.Compare(b.Start) })
	return ov
}

// bucketStart is the start of t's hour or day in UTC.
func bucketStart(t time.Time, g clickhouse.Granularity) time.Time {
	t = t.UTC()
	if g == clickhouse.Hour {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// rate is n/d, 0 when d is 0.
func rate(n, d uint64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

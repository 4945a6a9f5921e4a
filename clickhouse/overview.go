package clickhouse

import "time"

// Overview is a campaign's funnel over the deliveries created in [From, To),
// by DESIGN.md's "Campaign overview". Person-level figures count
// deliveries; Devices counts device sends. A delivery's send state is its
// status by DESIGN.md's table with the delivered/opened/converted rows
// ignored: ATTEMPTED, SENT, BOUNCED, SUPPRESSED or FAILED.
type Overview struct {
	From, To time.Time

	Created    uint64 // deliveries created in the range
	Attempted  uint64 // send state ATTEMPTED (still in flight)
	Sent       uint64 // send state SENT
	Bounced    uint64 // send state BOUNCED
	Suppressed uint64 // send state SUPPRESSED
	Failed     uint64 // send state FAILED (pre-send failures included)
	Sends      uint64 // Sent + Bounced + Suppressed
	Recipients uint64 // Sends − Suppressed − Bounced
	Delivered  uint64 // some device delivered or opened
	Opened     uint64 // some device opened
	Converted  uint64 // the delivery converted

	// Rates; 0 when the denominator is 0.
	DeliveryRate   float64 // Delivered / Recipients
	OpenRate       float64 // Opened / Delivered
	ConversionRate float64 // Converted / Recipients
	BounceRate     float64 // Bounced / Sends

	// FailuresByReason counts FAILED deliveries by failure reason: the
	// pre-send reason, else the failed-event reason of the FAILED device
	// with the smallest device index.
	FailuresByReason map[string]uint64

	// Devices totals the device sends of those deliveries' newest rounds.
	Devices DeviceTotals

	// SDKRecipients counts recipients (send state SENT) with a targeted
	// device token that has ever reported delivered or opened in the
	// workspace; SDKCoverage = SDKRecipients / Recipients.
	SDKRecipients uint64
	SDKCoverage   float64

	// Series buckets the person-level figures by the deliveries' creation
	// time (start of the hour or day, UTC), oldest first, empty buckets left out.
	Series []Bucket
}

// DeviceTotals counts device sends by state.
type DeviceTotals struct {
	Targeted, Sent, Bounced, Failed, Suppressed, Pending, Delivered, Opened uint64
}

// Bucket is one time-series point.
type Bucket struct {
	Start                                                                    time.Time
	Created, Sent, Bounced, Suppressed, Failed, Delivered, Opened, Converted uint64
}

// Granularity is a time-series bucket size.
type Granularity string

// The bucket sizes.
const (
	Hour Granularity = "HOUR"
	Day  Granularity = "DAY"
)

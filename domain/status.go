package domain

// DeviceSend is what DeliveryStatusOf needs to know about one delivery to one
// device: its send status and the metrics the app's SDK reported for it.
type DeviceSend struct {
	Status    DeviceSendStatus
	Delivered bool
	Opened    bool
}

// DeliveryStatusOf computes a delivery's status from its pre-send outcome,
// its conversion and its device sends. The first matching row wins (furthest
// stage first):
//
//	| status     | rule                                                      |
//	|------------|-----------------------------------------------------------|
//	| FAILED     | presendFailed (the delivery failed before any device)     |
//	| CONVERTED  | converted (the person met the goal, attributed to it)     |
//	| OPENED     | any device reported opened                                |
//	| DELIVERED  | any device reported delivered (an open implies delivered) |
//	| ATTEMPTED  | no device sends yet, or any device is still PENDING       |
//	| SENT       | every device is final and at least one is SENT            |
//	| SUPPRESSED | every device is SUPPRESSED                                |
//	| BOUNCED    | none SENT, and the non-suppressed ones are all BOUNCED    |
//	| FAILED     | none SENT, and some FAILED                                |
//
// Metrics win over send states because the SDK reports them from the device
// itself: an opened notification was delivered and sent, whatever a slower
// provider response says. An unknown device status counts as FAILED.
func DeliveryStatusOf(presendFailed, converted bool, devices []DeviceSend) DeliveryStatus {
	switch {
	case presendFailed:
		return DeliveryFailed
	case converted:
		return DeliveryConverted
	}
	var delivered, pending, sent, bounced, suppressed, failed bool
	for _, d := range devices {
		if d.Opened {
			return DeliveryOpened
		}
		delivered = delivered || d.Delivered
		switch d.Status {
		case DeviceSendPending:
			pending = true
		case DeviceSendSent:
			sent = true
		case DeviceSendBounced:
			bounced = true
		case DeviceSendSuppressed:
			suppressed = true
		default: // DeviceSendFailed, or a status this code does not know
			failed = true
		}
	}
	switch {
	case delivered:
		return DeliveryDelivered
	case len(devices) == 0 || pending:
		return DeliveryAttempted
	case sent:
		return DeliverySent
	case suppressed && !bounced && !failed:
		return DeliverySuppressed
	case bounced && !failed:
		return DeliveryBounced
	default:
		return DeliveryFailed
	}
}

// Package domain holds Herald's pure rules: the words of the design (delivery
// and device-send statuses, platforms, audiences), how a delivery's status
// follows from its device sends, how bounces change a device's state, which
// devices a send targets, and what a valid push token looks like.
//
// The package does no I/O and imports no other Herald package, so that the
// GraphQL resolvers, the workers and the ClickHouse queries can all be checked
// against the same rules.
package domain

// DeliveryStatus is the status of a delivery: one message to one person.
// Its values match the GraphQL enum DeliveryStatus.
type DeliveryStatus string

// The delivery statuses, in the order of the GraphQL enum.
const (
	DeliveryAttempted  DeliveryStatus = "ATTEMPTED"
	DeliverySent       DeliveryStatus = "SENT"
	DeliveryDelivered  DeliveryStatus = "DELIVERED"
	DeliveryOpened     DeliveryStatus = "OPENED"
	DeliveryConverted  DeliveryStatus = "CONVERTED"
	DeliveryFailed     DeliveryStatus = "FAILED"
	DeliveryBounced    DeliveryStatus = "BOUNCED"
	DeliverySuppressed DeliveryStatus = "SUPPRESSED"
)

// DeliveryStatuses lists every DeliveryStatus in the order of the GraphQL enum.
func DeliveryStatuses() []DeliveryStatus {
	return []DeliveryStatus{
		DeliveryAttempted, DeliverySent, DeliveryDelivered, DeliveryOpened,
		DeliveryConverted, DeliveryFailed, DeliveryBounced, DeliverySuppressed,
	}
}

// Valid reports whether s is one of the DeliveryStatus values.
func (s DeliveryStatus) Valid() bool {
	for _, v := range DeliveryStatuses() {
		if s == v {
			return true
		}
	}
	return false
}

// DeviceSendStatus is the send state of one delivery to one device.
// Its values match the GraphQL enum DeviceSendStatus.
type DeviceSendStatus string

// The device send statuses. Every status but DeviceSendPending is final.
const (
	// DeviceSendPending: targeted, no final outcome yet; retries may be in flight.
	DeviceSendPending DeviceSendStatus = "PENDING"
	// DeviceSendSent: the provider accepted the notification.
	DeviceSendSent DeviceSendStatus = "SENT"
	// DeviceSendFailed: a permanent error, or the retries were exhausted.
	DeviceSendFailed DeviceSendStatus = "FAILED"
	// DeviceSendBounced: the provider rejected the token.
	DeviceSendBounced DeviceSendStatus = "BOUNCED"
	// DeviceSendSuppressed: filtered out before sending, the device is suppressed.
	DeviceSendSuppressed DeviceSendStatus = "SUPPRESSED"
)

// DeviceSendStatuses lists every DeviceSendStatus in the order of the GraphQL enum.
func DeviceSendStatuses() []DeviceSendStatus {
	return []DeviceSendStatus{
		DeviceSendPending, DeviceSendSent, DeviceSendFailed, DeviceSendBounced, DeviceSendSuppressed,
	}
}

// Valid reports whether s is one of the DeviceSendStatus values.
func (s DeviceSendStatus) Valid() bool {
	for _, v := range DeviceSendStatuses() {
		if s == v {
			return true
		}
	}
	return false
}

// Final reports whether s is a final outcome, that is anything but PENDING.
func (s DeviceSendStatus) Final() bool { return s != DeviceSendPending }

// DeviceState is a device's send state, kept with the device between
// deliveries. The zero value is not valid; new devices are DeviceOK.
type DeviceState string

// The device states.
const (
	// DeviceOK: the token is usable.
	DeviceOK DeviceState = "ok"
	// DeviceBounced: the last send to the token bounced.
	DeviceBounced DeviceState = "bounced"
	// DeviceSuppressed: two sends in a row bounced; the device is no longer sent to.
	DeviceSuppressed DeviceState = "suppressed"
)

// Valid reports whether s is one of the DeviceState values.
func (s DeviceState) Valid() bool {
	switch s {
	case DeviceOK, DeviceBounced, DeviceSuppressed:
		return true
	}
	return false
}

// Platform is a device's push platform. Its values match the GraphQL enum Platform.
type Platform string

// The platforms: IOS devices are sent to through APNS, ANDROID devices through FCM.
const (
	PlatformIOS     Platform = "IOS"
	PlatformAndroid Platform = "ANDROID"
)

// Valid reports whether p is one of the Platform values.
func (p Platform) Valid() bool { return p == PlatformIOS || p == PlatformAndroid }

// Audience selects which of a person's devices a delivery targets.
// Its values match the GraphQL enum Audience.
type Audience string

// The audiences.
const (
	// AudienceAllDevices targets every device of the person.
	AudienceAllDevices Audience = "ALL_DEVICES"
	// AudienceLastUsed targets the device with the newest last used time.
	AudienceLastUsed Audience = "LAST_USED"
	// AudienceCustomToken targets one given token, if the person has it.
	AudienceCustomToken Audience = "CUSTOM_TOKEN"
)

// Valid reports whether a is one of the Audience values.
func (a Audience) Valid() bool {
	switch a {
	case AudienceAllDevices, AudienceLastUsed, AudienceCustomToken:
		return true
	}
	return false
}

// Pre-send failure reasons. A pre-send failure fails the whole delivery before
// any device is tried; the delivery's failure reason is one of these, exactly
// (ReasonVariableMissing is followed by ": " and the variable's path;
// ReasonLiquidError by ": " and what went wrong).
const (
	// ReasonLiquidError: a template failed to render for another reason (a
	// filter's error, such as a division by zero, or a render over its budget).
	ReasonLiquidError = "Liquid error"
	// ReasonVariableMissing: a template variable has no value and no default filter.
	ReasonVariableMissing = "Liquid error: variable is missing"
	// ReasonCustomerNotFound: the person does not exist in the workspace.
	ReasonCustomerNotFound = "Customer doesn't exist"
	// ReasonCustomerUnsubscribed: the person is unsubscribed.
	ReasonCustomerUnsubscribed = "Customer is unsubscribed"
	// ReasonCanceled: a scheduled send was canceled before its time.
	ReasonCanceled = "Canceled before its send time"
	// ReasonCredentialsNotFound: the workspace has no credentials for the device's platform.
	ReasonCredentialsNotFound = "Credentials not found"
	// ReasonNoDevices: the person has no device that the audience selects.
	ReasonNoDevices = "Customer has no devices"
)

package domain

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ds builds device sends from statuses, without metrics.
func ds(statuses ...DeviceSendStatus) []DeviceSend {
	out := make([]DeviceSend, len(statuses))
	for i, s := range statuses {
		out[i] = DeviceSend{Status: s}
	}
	return out
}

const (
	pending    = DeviceSendPending
	sent       = DeviceSendSent
	failed     = DeviceSendFailed
	bounced    = DeviceSendBounced
	suppressed = DeviceSendSuppressed
)

func TestDeliveryStatusOf(t *testing.T) {
	tests := []struct {
		name          string
		presendFailed bool
		converted     bool
		devices       []DeviceSend
		want          DeliveryStatus
	}{
		// Pre-send failure and conversion.
		{"pre-send failure, no devices", true, false, nil, DeliveryFailed},
		{"pre-send failure wins over everything", true, true, []DeviceSend{{Status: sent, Delivered: true, Opened: true}}, DeliveryFailed},
		{"converted", false, true, ds(sent), DeliveryConverted},
		{"converted wins over opened", false, true, []DeviceSend{{Status: sent, Opened: true}}, DeliveryConverted},
		{"converted without device sends", false, true, nil, DeliveryConverted},

		// Metrics.
		{"opened", false, false, []DeviceSend{{Status: sent, Delivered: true, Opened: true}}, DeliveryOpened},
		{"opened without delivered", false, false, []DeviceSend{{Status: sent, Opened: true}}, DeliveryOpened},
		{"opened on one device, delivered on another", false, false, []DeviceSend{{Status: sent, Delivered: true}, {Status: sent, Opened: true}}, DeliveryOpened},
		{"opened while pending", false, false, []DeviceSend{{Status: pending, Opened: true}}, DeliveryOpened},
		{"opened on a failed device", false, false, []DeviceSend{{Status: failed, Opened: true}, {Status: bounced}}, DeliveryOpened},
		{"delivered", false, false, []DeviceSend{{Status: sent, Delivered: true}}, DeliveryDelivered},
		{"delivered with pending", false, false, []DeviceSend{{Status: sent, Delivered: true}, {Status: pending}}, DeliveryDelivered},
		{"delivered with bounced", false, false, []DeviceSend{{Status: bounced}, {Status: sent, Delivered: true}}, DeliveryDelivered},
		{"delivered while pending", false, false, []DeviceSend{{Status: pending, Delivered: true}}, DeliveryDelivered},

		// Attempted.
		{"no device sends yet", false, false, nil, DeliveryAttempted},
		{"empty device sends", false, false, []DeviceSend{}, DeliveryAttempted},
		{"pending", false, false, ds(pending), DeliveryAttempted},
		{"pending and sent", false, false, ds(pending, sent), DeliveryAttempted},
		{"sent and pending", false, false, ds(sent, pending), DeliveryAttempted},
		{"pending and failed", false, false, ds(pending, failed), DeliveryAttempted},
		{"pending and bounced", false, false, ds(pending, bounced), DeliveryAttempted},
		{"pending and suppressed", false, false, ds(suppressed, pending), DeliveryAttempted},

		// Sent.
		{"sent", false, false, ds(sent), DeliverySent},
		{"sent twice", false, false, ds(sent, sent), DeliverySent},
		{"sent and bounced", false, false, ds(sent, bounced), DeliverySent},
		{"bounced and sent", false, false, ds(bounced, sent), DeliverySent},
		{"sent and failed", false, false, ds(sent, failed), DeliverySent},
		{"sent and suppressed", false, false, ds(suppressed, sent), DeliverySent},
		{"sent among all outcomes", false, false, ds(failed, bounced, suppressed, sent), DeliverySent},

		// Suppressed.
		{"suppressed", false, false, ds(suppressed), DeliverySuppressed},
		{"suppressed twice", false, false, ds(suppressed, suppressed), DeliverySuppressed},

		// Bounced.
		{"bounced", false, false, ds(bounced), DeliveryBounced},
		{"bounced twice", false, false, ds(bounced, bounced), DeliveryBounced},
		{"bounced and suppressed", false, false, ds(bounced, suppressed), DeliveryBounced},
		{"suppressed and bounced", false, false, ds(suppressed, suppressed, bounced), DeliveryBounced},

		// Failed after sending.
		{"failed", false, false, ds(failed), DeliveryFailed},
		{"failed and bounced", false, false, ds(failed, bounced), DeliveryFailed},
		{"bounced and failed", false, false, ds(bounced, failed), DeliveryFailed},
		{"failed and suppressed", false, false, ds(suppressed, failed), DeliveryFailed},
		{"failed, bounced and suppressed", false, false, ds(failed, bounced, suppressed), DeliveryFailed},
		{"unknown device status counts as failed", false, false, ds("WEIRD"), DeliveryFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DeliveryStatusOf(tt.presendFailed, tt.converted, tt.devices)
			if got != tt.want {
				t.Errorf("DeliveryStatusOf(%v, %v, %+v) = %s, want %s", tt.presendFailed, tt.converted, tt.devices, got, tt.want)
			}
		})
	}
}

// TestDeliveryStatusOfAllPairs checks every combination of two device
// statuses against the rules written out independently of the implementation.
func TestDeliveryStatusOfAllPairs(t *testing.T) {
	for _, a := range DeviceSendStatuses() {
		for _, b := range DeviceSendStatuses() {
			var want DeliveryStatus
			has := func(s DeviceSendStatus) bool { return a == s || b == s }
			switch {
			case has(pending):
				want = DeliveryAttempted
			case has(sent):
				want = DeliverySent
			case a == suppressed && b == suppressed:
				want = DeliverySuppressed
			case has(failed):
				want = DeliveryFailed
			default:
				want = DeliveryBounced
			}
			t.Run(fmt.Sprintf("%s,%s", a, b), func(t *testing.T) {
				if got := DeliveryStatusOf(false, false, ds(a, b)); got != want {
					t.Errorf("DeliveryStatusOf([%s %s]) = %s, want %s", a, b, got, want)
				}
				if got := DeliveryStatusOf(false, false, ds(b, a)); got != want {
					t.Errorf("DeliveryStatusOf([%s %s]) = %s, want %s (order must not matter)", b, a, got, want)
				}
			})
		}
	}
}

func TestEnums(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"DeliveryStatus", strs(DeliveryStatuses()), []string{"ATTEMPTED", "SENT", "DELIVERED", "OPENED", "CONVERTED", "FAILED", "BOUNCED", "SUPPRESSED"}},
		{"DeviceSendStatus", strs(DeviceSendStatuses()), []string{"PENDING", "SENT", "FAILED", "BOUNCED", "SUPPRESSED"}},
		{"DeviceState", strs([]DeviceState{DeviceOK, DeviceBounced, DeviceSuppressed}), []string{"ok", "bounced", "suppressed"}},
		{"Platform", strs([]Platform{PlatformIOS, PlatformAndroid}), []string{"IOS", "ANDROID"}},
		{"Audience", strs([]Audience{AudienceAllDevices, AudienceLastUsed, AudienceCustomToken}), []string{"ALL_DEVICES", "LAST_USED", "CUSTOM_TOKEN"}},
		{"pre-send failure reasons", []string{ReasonVariableMissing, ReasonCustomerNotFound, ReasonCustomerUnsubscribed, ReasonCredentialsNotFound, ReasonNoDevices},
			[]string{"Liquid error: variable is missing", "Customer doesn't exist", "Customer is unsubscribed", "Credentials not found", "Customer has no devices"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("values mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"DeliveryStatus OPENED", DeliveryOpened.Valid(), true},
		{"DeliveryStatus lower case", DeliveryStatus("opened").Valid(), false},
		{"DeviceSendStatus PENDING", DeviceSendPending.Valid(), true},
		{"DeviceSendStatus empty", DeviceSendStatus("").Valid(), false},
		{"DeviceState ok", DeviceOK.Valid(), true},
		{"DeviceState empty", DeviceState("").Valid(), false},
		{"Platform IOS", PlatformIOS.Valid(), true},
		{"Platform ios", Platform("ios").Valid(), false},
		{"Audience LAST_USED", AudienceLastUsed.Valid(), true},
		{"Audience bogus", Audience("SOME").Valid(), false},
		{"PENDING is not final", DeviceSendPending.Final(), false},
		{"SENT is final", DeviceSendSent.Final(), true},
		{"SUPPRESSED is final", DeviceSendSuppressed.Final(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func strs[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

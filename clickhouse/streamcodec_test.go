package clickhouse

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func randomEvent(r *rand.Rand) Event {
	kinds := []string{KindTargeted, KindAttempt, KindSent, KindBounced, KindFailed, KindSuppressed,
		KindDelivered, KindOpened, KindConverted, KindPresendFailed}
	str := func() string {
		if r.IntN(3) == 0 {
			return ""
		}
		return strings.Repeat("é x", r.IntN(40))
	}
	e := Event{
		WorkspaceID: str(), CampaignID: uuid.New(), DeliveryID: uuid.New(),
		Round: uint16(r.IntN(1 << 16)), DeviceIndex: uint16(r.IntN(1 << 16)), Kind: kinds[r.IntN(len(kinds))],
		Attempt: uint16(r.IntN(1 << 16)), StatusCode: uint16(r.IntN(600)),
		Reason: str(), ProviderID: str(), Token: str(),
	}
	if r.IntN(4) != 0 {
		e.DeliveryCreated = time.UnixMilli(r.Int64N(4e12)).UTC()
	}
	if r.IntN(4) != 0 {
		e.At = time.Unix(0, r.Int64N(4e18)).UTC()
	}
	return e
}

// TestEventCodecRoundTrip: random events, every field and kind, zero
// times included, decode to themselves, also when several encodings are
// concatenated (as writeGroups joins concurrent Writes).
func TestEventCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var want []Event
		var b []byte
		for range r.IntN(20) {
			e := randomEvent(r)
			want = append(want, e)
			b = appendEvent(b, e)
		}
		got, err := decodeEvents(b, nil)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	}
}

// TestEventCodecRefusesDamage: every truncation of an encoding, and an
// unknown kind, is an error, never a panic or a short event.
func TestEventCodecRefusesDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	e := randomEvent(r)
	e.WorkspaceID, e.Reason, e.Round, e.DeviceIndex = "ws", "why", 1, 2
	b := appendEvent(nil, e)
	for n := 1; n < len(b); n++ {
		if got, err := decodeEvents(b[:n], nil); err == nil {
			t.Fatalf("decode of %d of %d bytes: no error, %d events", n, len(b), len(got))
		}
	}
	bad := append([]byte(nil), b...)
	bad[1+2+32+1+1] = 99 // the kind byte: len, "ws", two UUIDs, round, device
	if _, err := decodeEvents(bad, nil); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Errorf("decode of kind 99 = %v, want an unknown kind error", err)
	}
}

// FuzzDecodeEvents: whatever an entry holds, decoding returns (events or
// an error) without panicking or allocating beyond the input's bound.
func FuzzDecodeEvents(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	f.Add(appendEvent(appendEvent(nil, randomEvent(r)), randomEvent(r)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := decodeEvents(b, nil)
		if err == nil {
			var again []byte
			for _, e := range evs {
				again = appendEvent(again, e)
			}
			if _, err := decodeEvents(again, nil); err != nil {
				t.Fatalf("re-encoding of decoded events does not decode: %v", err)
			}
		}
	})
}

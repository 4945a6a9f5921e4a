package jobs

import (
	"testing"

	"github.com/google/uuid"
)

// A change message names the deliveries that changed, 16 bytes each; any
// other payload (an older Herald's "1") names every delivery.
func TestMentions(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	both := string(a[:]) + string(b[:])
	for _, tc := range []struct {
		name    string
		payload string
		id      uuid.UUID
		want    bool
	}{
		{"first", both, a, true},
		{"second", both, b, true},
		{"absent", both, c, false},
		{"empty", "", a, false},
		{"older Herald's message", "1", c, true},
		// c's bytes across the boundary of two ids are not c.
		{"unaligned", string(a[:8]) + string(c[:]) + string(b[8:]), c, false},
	} {
		if got := mentions(tc.payload, tc.id); got != tc.want {
			t.Errorf("%s: mentions = %v, want %v", tc.name, got, tc.want)
		}
	}
}

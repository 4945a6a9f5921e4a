package jobs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// A change message names the deliveries that changed, 16 bytes each; any
// other payload (an older Herald's "1") names every delivery.
func TestChanged(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	for _, tc := range []struct {
		name    string
		payload string
		ids     map[uuid.UUID]bool
		all     bool
	}{
		{"two ids", string(a[:]) + string(b[:]), map[uuid.UUID]bool{a: true, b: true}, false},
		{"empty", "", map[uuid.UUID]bool{}, false},
		{"older Herald's message", "1", nil, true},
		// c's bytes across the boundary of two ids are not c.
		{"unaligned", string(a[:8]) + string(c[:]) + string(b[8:]), map[uuid.UUID]bool{
			uuid.UUID([]byte(string(a[:8]) + string(c[:8]))): true, uuid.UUID([]byte(string(c[8:]) + string(b[8:]))): true}, false},
	} {
		ids, all := changed(tc.payload)
		if all != tc.all || !cmp.Equal(ids, tc.ids) {
			t.Errorf("%s: changed = %v, %v; want %v, %v", tc.name, ids, all, tc.ids, tc.all)
		}
	}
}

// notify passes a message on to the campaign's listeners and to the
// listeners of the deliveries it names, and a resubscription to everyone.
func TestNotify(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	campaign, ofA, ofB := &Listener{C: make(chan struct{}, 1)}, &Listener{C: make(chan struct{}, 1), only: &a}, &Listener{C: make(chan struct{}, 1), only: &b}
	c := &feedChannel{listeners: map[*Listener]struct{}{campaign: {}, ofA: {}, ofB: {}}}
	told := func() (got []bool) {
		for _, l := range []*Listener{campaign, ofA, ofB} {
			select {
			case <-l.C:
				got = append(got, true)
			default:
				got = append(got, false)
			}
		}
		return got
	}
	onlyA, old := string(a[:]), "1"
	for _, tc := range []struct {
		name    string
		payload *string
		want    []bool
	}{
		{"a message naming a", &onlyA, []bool{true, true, false}},
		{"an older Herald's message", &old, []bool{true, true, true}},
		{"a resubscription", nil, []bool{true, true, true}},
	} {
		c.notify(tc.payload)
		if got := told(); !cmp.Equal(got, tc.want) {
			t.Errorf("%s: campaign, a, b told %v, want %v", tc.name, got, tc.want)
		}
	}
}

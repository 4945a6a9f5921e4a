package clickhouse

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMergeSpans(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	h := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }
	sp := func(a, b float64) span { return span{h(a), h(b)} }
	tests := []struct {
		name string
		in   []span
		max  int
		want []span
	}{
		{"none", nil, 4, nil},
		{"one", []span{sp(3, 4)}, 4, []span{sp(3, 4)}},
		{"unsorted neighbours join", []span{sp(5, 6), sp(3, 4), sp(4, 5)}, 4, []span{sp(3, 6)}},
		{"gap under 6 h joins", []span{sp(0, 1), sp(6.5, 7)}, 4, []span{sp(0, 7)}},
		{"gap of 6 h stays", []span{sp(0, 1), sp(7, 8)}, 4, []span{sp(0, 1), sp(7, 8)}},
		{"partial edges", []span{sp(0.25, 1), sp(100, 100.5), sp(50, 51)}, 4, []span{sp(0.25, 1), sp(50, 51), sp(100, 100.5)}},
		{"contained", []span{sp(0, 10), sp(2, 3)}, 4, []span{sp(0, 10)}},
		{"over the limit: closest join first", []span{sp(0, 1), sp(20, 21), sp(100, 101), sp(110, 111), sp(300, 301)}, 3,
			[]span{sp(0, 21), sp(100, 111), sp(300, 301)}},
		{"limit one", []span{sp(0, 1), sp(20, 21), sp(100, 101)}, 1, []span{sp(0, 101)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeSpans(tc.in, overviewSpanGap, tc.max)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(span{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

package jobs

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldpush/herald/clickhouse"
)

func TestRetryDelayDoublesAndCaps(t *testing.T) {
	f := RetryDelay(100*time.Millisecond, time.Second)
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{0, 100 * time.Millisecond, 120 * time.Millisecond},
		{1, 200 * time.Millisecond, 240 * time.Millisecond},
		{3, 800 * time.Millisecond, 960 * time.Millisecond},
		{4, time.Second, 1200 * time.Millisecond},
		{9, time.Second, 1200 * time.Millisecond},
	} {
		for i := 0; i < 50; i++ {
			if d := f(tc.n, nil, nil); d < tc.min || d > tc.max {
				t.Fatalf("RetryDelay(n=%d) = %s, want in [%s, %s]", tc.n, d, tc.min, tc.max)
			}
		}
	}
}

func TestMessageFields(t *testing.T) {
	m := clickhouse.Message{Title: "Hi {{ customer.name }}", Body: "b", Link: "l",
		Data: `{"screen":"{{ event.screen }}","count":3,"flags":{"a":true}}`}
	fields, custom, err := MessageFields(m)
	if err != nil {
		t.Fatal(err)
	}
	wantFields := map[string]string{"title": "Hi {{ customer.name }}", "body": "b", "link": "l", "image": "", "sound": "",
		"data.screen": "{{ event.screen }}"}
	if diff := cmp.Diff(wantFields, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"count": "3", "flags": `{"a":true}`}, custom); diff != "" {
		t.Errorf("custom (-want +got):\n%s", diff)
	}
	if _, _, err := MessageFields(clickhouse.Message{Data: "{not json"}); err == nil {
		t.Error("bad data JSON: no error")
	}
}

func TestTaskIDsAreStable(t *testing.T) {
	a, _ := NewDeliverTask(DeliverPayload{WorkspaceID: "w", DeliveryID: "d", Round: 2})
	b, _ := NewSendTask(SendPayload{DeliveryID: "d", Round: 2, DeviceIndex: 3}, 10)
	if a.Type() != TypeDeliver || b.Type() != TypeSend {
		t.Errorf("types %s, %s", a.Type(), b.Type())
	}
	if got, want := planKey("d", 2), "herald:plan:d:2"; got != want {
		t.Errorf("planKey = %s, want %s", got, want)
	}
	if got, want := finalKey("d", 2, 3), "herald:final:d:2:3"; got != want {
		t.Errorf("finalKey = %s, want %s", got, want)
	}
}

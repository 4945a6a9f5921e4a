package devicesim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestDeliveryID(t *testing.T) {
	for body, want := range map[string]string{
		`{"aps":{},"CIO-Delivery-ID":"d1","CIO-Delivery-Token":"t"}`: "d1",
		`{"message":{"token":"t","data":{"CIO-Delivery-ID":"d2"}}}`:  "d2",
		`{"aps":{}}`: "",
		`not json`:   "",
	} {
		if got := DeliveryID([]byte(body)); got != want {
			t.Errorf("DeliveryID(%s) = %q, want %q", body, got, want)
		}
	}
}

func TestReportsDeliveredThenOpened(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		got = append(got, r.URL.Path+" "+m["event"].(string)+" "+m["delivery_id"].(string)+" "+m["device_id"].(string))
		mu.Unlock()
	}))
	defer srv.Close()
	s := New(Options{URL: srv.URL, DeliveredRate: 1, OpenedRate: 1, Delay: time.Millisecond}, nil)
	s.Accepted("tok", []byte(`{"CIO-Delivery-ID":"d1"}`))
	none := New(Options{URL: srv.URL, DeliveredRate: 0, OpenedRate: 1}, nil)
	none.Accepted("tok2", []byte(`{"CIO-Delivery-ID":"d2"}`))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	want := []string{"/push/events delivered d1 tok", "/push/events opened d1 tok"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("reports = %q, want %q", got, want)
	}
}

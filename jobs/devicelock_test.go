package jobs

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/clickhouse/chtest"
	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/providers"
)

// TestConcurrentBouncesSuppress: two bounces of one token at the same time
// (two deliveries to one person) make the device suppressed, as two in a
// row do: the device lock serializes the read-change-write of its row.
func TestConcurrentBouncesSuppress(t *testing.T) {
	ctx := context.Background()
	conn := chtest.New(t)
	rdb := redistest.New(t)
	store := clickhouse.NewStore(conn)
	w := &Worker{store: store, rdb: rdb, locks: clickhouse.NewRedisLocker(rdb)}

	const devices = 8
	ws := "ws_lock"
	for i := 0; i < devices; i++ {
		if err := store.PutDevice(ctx, clickhouse.Device{WorkspaceID: ws, PersonID: "p", Token: fmt.Sprintf("tok%d", i), Platform: "IOS",
			LastUsed: time.Now().UTC(), Attributes: "{}", State: string(domain.DeviceOK)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*devices)
	for i := 0; i < devices; i++ {
		p := SendPayload{WorkspaceID: ws, PersonID: "p", DeviceState: string(domain.DeviceOK), Push: providers.Push{Token: fmt.Sprintf("tok%d", i)}}
		for j := 0; j < 2; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- w.updateDevice(ctx, p, providers.BadToken)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < devices; i++ {
		d, err := store.Device(ctx, ws, "p", fmt.Sprintf("tok%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if d.State != string(domain.DeviceSuppressed) {
			t.Errorf("tok%d after two bounces at once: %s, want %s", i, d.State, domain.DeviceSuppressed)
		}
	}
}

package jobs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain/model"
	"github.com/heraldpush/herald/internal/redistest"
)

// TestTargetCache: each targeted token of a delivery's newest round is
// found with its index, round and delivery; other tokens, other
// deliveries and tokens only an older round targeted are misses; the key
// expires.
func TestTargetCache(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.New(t)
	c := NewTargetCache(rdb, time.Hour)
	created := time.Now().UTC().Truncate(time.Millisecond)
	d := clickhouse.Delivery{WorkspaceID: "ws1", ID: model.UUIDAt(created), CampaignID: uuid.New(), CreatedAt: created}
	devices := []clickhouse.DeliveryDevice{{Index: 0, Token: "aa01"}, {Index: 1, Token: "fcm:tok-en_1"}, {Index: 2, Token: "aa03"}}
	if err := c.Put(ctx, d, 0, devices); err != nil {
		t.Fatal(err)
	}
	for _, dd := range devices {
		got, ok, err := c.Get(ctx, d.ID, dd.Token)
		want := Target{WorkspaceID: "ws1", CampaignID: d.CampaignID, DeliveryCreated: created, Round: 0, DeviceIndex: dd.Index}
		if err != nil || !ok || !cmp.Equal(got, want) {
			t.Errorf("Get(%s) = %+v, %v, %v; want %+v", dd.Token, got, ok, err, want)
		}
	}
	for _, miss := range []struct {
		id    uuid.UUID
		token string
	}{{d.ID, "aa0"}, {d.ID, "aa01|0"}, {uuid.New(), "aa01"}} {
		if got, ok, err := c.Get(ctx, miss.id, miss.token); ok || err != nil {
			t.Errorf("Get(%s, %q) = %+v, %v, %v; want a miss", miss.id, miss.token, got, ok, err)
		}
	}
	// A retry round replaces the record: its tokens are found with round 1.
	if err := c.Put(ctx, d, 1, []clickhouse.DeliveryDevice{{Index: 0, Token: "aa03"}}); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := c.Get(ctx, d.ID, "aa03"); !ok || got.Round != 1 || got.DeviceIndex != 0 {
		t.Errorf("after round 1: Get(aa03) = %+v, %v; want round 1, index 0", got, ok)
	}
	if _, ok, _ := c.Get(ctx, d.ID, "aa01"); ok {
		t.Error("after round 1: a token only round 0 targeted is still found")
	}
	if ttl := rdb.TTL(ctx, targetsKey(d.ID)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL = %v, want (0, 1h]", ttl)
	}
}

// TestTargetCacheBatch: a fan-out batch's 2,000 deliveries (one
// broadcast, so one millisecond) go to at most 64 hashes, and each is
// found with its own round and index.
func TestTargetCacheBatch(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.New(t)
	c := NewTargetCache(rdb, time.Hour)
	created := time.Now().UTC().Truncate(time.Millisecond)
	b := uuid.New()
	var all []TargetsOf
	for i := range 2000 {
		id := BroadcastDeliveryID(b, created, fmt.Sprintf("p%d", i))
		d := clickhouse.Delivery{WorkspaceID: "ws1", ID: id, CampaignID: b, CreatedAt: created}
		all = append(all, TargetsOf{Delivery: d, Round: 0, Devices: []clickhouse.DeliveryDevice{{Index: uint16(i % 3), Token: fmt.Sprintf("tok%d", i)}}})
	}
	if err := c.PutAll(ctx, all); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "herald:targets:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 || len(keys) > 64 {
		t.Errorf("%d hashes for one batch, want 1 to 64", len(keys))
	}
	for i, to := range all {
		got, ok, err := c.Get(ctx, to.Delivery.ID, fmt.Sprintf("tok%d", i))
		if err != nil || !ok || got.DeviceIndex != uint16(i%3) || got.WorkspaceID != "ws1" {
			t.Fatalf("delivery %d: Get = %+v, %v, %v", i, got, ok, err)
		}
		if _, ok, _ := c.Get(ctx, to.Delivery.ID, fmt.Sprintf("tok%d", i+1)); ok {
			t.Fatalf("delivery %d: another delivery's token is found", i)
		}
	}
	for _, k := range keys {
		if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s: TTL %v, want (0, 1h]", k, ttl)
		}
	}
}

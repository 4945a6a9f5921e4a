package jobs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/providers"
)

// TestUnplannedRoundFollowsStoredPlan: a round marked unplanned (a fan-out
// batch's first run) does not read stored plans, but one stored by another
// run still wins its SET NX, and that plan is carried out, not the new one.
func TestUnplannedRoundFollowsStoredPlan(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.New(t)
	w := NewWorker(nil, nil, rdb, nil, Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ws := "ws_plans"
	msg := clickhouse.Message{WorkspaceID: ws, ID: uuid.New(), CampaignID: uuid.New(), Title: "Hello {{ customer.first_name }}", Body: "b", Data: "{}"}
	w.messages.get(ws+"/"+msg.ID.String(), func() (clickhouse.Message, error) { return msg, nil })
	w.creds.get(ws, func() (map[string]clickhouse.Credentials, error) {
		return map[string]clickhouse.Credentials{"IOS": {Platform: "IOS", Version: 3}}, nil
	})
	roundOf := func(name, token string, unplanned bool) round {
		id, _ := uuid.NewV7()
		d := clickhouse.Delivery{WorkspaceID: ws, ID: id, CampaignID: msg.CampaignID, MessageID: msg.ID, PersonID: name, Audience: "ALL_DEVICES", Data: "{}", CreatedAt: clickhouse.DeliveryTime(id)}
		snap := &Snapshot{Delivery: d, PersonFound: true,
			Person:  clickhouse.Person{WorkspaceID: ws, ID: name, Attributes: `{"first_name":"` + name + `"}`},
			Devices: []clickhouse.Device{{WorkspaceID: ws, PersonID: name, Token: token, Platform: "IOS", LastUsed: time.Now()}}}
		return round{d: d, unplanned: unplanned, p: DeliverPayload{WorkspaceID: ws, DeliveryID: id.String(), Snapshot: snap}}
	}
	stored, unstored := roundOf("ada", "token-a", true), roundOf("bob", "token-b", true)
	earlier := plan{Push: providers.Push{Title: "an earlier run's title"}, Devices: []planDevice{{Index: 0, Token: "token-earlier", Platform: "IOS"}},
		CredVersions: map[string]uint64{"IOS": 2}}
	b, _ := json.Marshal(earlier)
	if err := rdb.Set(ctx, planKey(stored.d.ID.String(), 0), b, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	errs := make([]error, 2)
	plans, fresh := w.loadOrMakePlans(ctx, []round{stored, unstored}, errs)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if fresh[0] || plans[0].Push.Title != "an earlier run's title" || len(plans[0].Devices) != 1 || plans[0].Devices[0].Token != "token-earlier" {
		t.Errorf("round with a stored plan: fresh %v, plan %+v; want the stored plan, not fresh", fresh[0], plans[0])
	}
	if !fresh[1] || plans[1].Push.Title != "Hello bob" || len(plans[1].Devices) != 1 || plans[1].Devices[0].Token != "token-b" {
		t.Errorf("round without one: fresh %v, plan %+v; want a fresh plan for bob's device", fresh[1], plans[1])
	}
	got, err := rdb.Get(ctx, planKey(unstored.d.ID.String(), 0)).Result()
	if err != nil {
		t.Fatalf("the new plan was not stored: %v", err)
	}
	var back plan
	if err := json.Unmarshal([]byte(got), &back); err != nil || back.Push.Title != "Hello bob" {
		t.Errorf("stored plan %s (%v), want bob's", got, err)
	}
}

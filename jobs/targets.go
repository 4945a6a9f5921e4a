package jobs

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/clickhouse"
)

// Target is what a metric report needs to know about a targeted device.
type Target struct {
	WorkspaceID     string
	CampaignID      uuid.UUID
	DeliveryCreated time.Time
	Round           uint16
	DeviceIndex     uint16
}

// TargetCache keeps, per delivery, the devices it targeted, so the
// unauthenticated SDK endpoints check a report with one Redis read instead of
// two ClickHouse queries, and keep accepting reports while ClickHouse is
// down. It is a cache: on a miss (expired, or Redis was flushed) callers
// fall back to the delivery's targeted events in ClickHouse.
//
// A delivery's record is a field of a hash shared by the deliveries made
// in the same millisecond (a delivery id is a UUIDv7: its first 6 bytes;
// a broadcast's deliveries all carry the broadcast's time), split into 64
// buckets by the id's last byte so that no hash grows too large to free
// at once: key herald:targets:{ms}:{bucket}, field the id's 16 bytes,
// value the line "workspace|campaign|created_us|round" of the delivery's
// newest round, then a line "token|index" per device it targeted. A
// fan-out batch writes its records with one HSET per bucket and an EXPIRE
// per hash, instead of one SET per delivery (a device that only an older
// round targeted is a miss). Records of the earlier layout (one string key
// per delivery) are misses.
type TargetCache struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

// NewTargetCache returns a cache; ttl 0 means 7 days.
func NewTargetCache(rdb redis.UniversalClient, ttl time.Duration) *TargetCache {
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	return &TargetCache{rdb: rdb, ttl: ttl}
}

// targetsKey names the hash that holds a delivery's record.
func targetsKey(id uuid.UUID) string {
	return "herald:targets:" + hex.EncodeToString(id[:6]) + ":" + strconv.Itoa(int(id[15]&63))
}

// Put records a round's targeted devices.
func (c *TargetCache) Put(ctx context.Context, d clickhouse.Delivery, round uint16, devices []clickhouse.DeliveryDevice) error {
	return c.PutAll(ctx, []TargetsOf{{Delivery: d, Round: round, Devices: devices}})
}

// TargetsOf is a delivery round's targeted devices.
type TargetsOf struct {
	Delivery clickhouse.Delivery
	Round    uint16
	Devices  []clickhouse.DeliveryDevice
}

// PutAll records several rounds' targeted devices in one pipeline: an
// HSET of all their fields and an EXPIRE per hash.
func (c *TargetCache) PutAll(ctx context.Context, all []TargetsOf) error {
	fields := map[string][]any{}
	var keys []string
	for _, t := range all {
		if len(t.Devices) == 0 {
			continue
		}
		d := t.Delivery
		b := make([]byte, 0, 64+len(d.WorkspaceID)+len(t.Devices)*80)
		b = append(append(b, d.WorkspaceID...), '|')
		b = append(append(b, d.CampaignID.String()...), '|')
		b = strconv.AppendInt(b, d.CreatedAt.UnixMicro(), 10)
		b = strconv.AppendUint(append(b, '|'), uint64(t.Round), 10)
		for _, dd := range t.Devices {
			b = append(append(append(b, '\n'), dd.Token...), '|')
			b = strconv.AppendUint(b, uint64(dd.Index), 10)
		}
		k := targetsKey(d.ID)
		if _, ok := fields[k]; !ok {
			keys = append(keys, k)
		}
		fields[k] = append(fields[k], string(d.ID[:]), b)
	}
	if len(keys) == 0 {
		return nil
	}
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.HSet(ctx, k, fields[k]...)
			p.Expire(ctx, k, c.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("jobs: cache targets: %w", err)
	}
	return nil
}

// Get finds a targeted device; ok is false on a miss.
func (c *TargetCache) Get(ctx context.Context, deliveryID uuid.UUID, token string) (t Target, ok bool, err error) {
	v, err := c.rdb.HGet(ctx, targetsKey(deliveryID), string(deliveryID[:])).Result()
	if errors.Is(err, redis.Nil) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("jobs: read targets: %w", err)
	}
	head, devices, _ := strings.Cut(v, "\n")
	parts := strings.Split(head, "|")
	if len(parts) != 4 {
		return t, false, nil
	}
	idx := -1
	for devices != "" && idx < 0 {
		var line string
		line, devices, _ = strings.Cut(devices, "\n")
		if tok, n, found := strings.Cut(line, "|"); found && tok == token {
			if i, err := strconv.ParseUint(n, 10, 16); err == nil {
				idx = int(i)
			}
		}
	}
	if idx < 0 {
		return t, false, nil
	}
	camp, err1 := uuid.Parse(parts[1])
	us, err2 := strconv.ParseInt(parts[2], 10, 64)
	round, err3 := strconv.ParseUint(parts[3], 10, 16)
	if err := errors.Join(err1, err2, err3); err != nil {
		return t, false, nil
	}
	return Target{WorkspaceID: parts[0], CampaignID: camp, DeliveryCreated: time.UnixMicro(us).UTC(), Round: uint16(round), DeviceIndex: uint16(idx)}, true, nil
}

// reportingKey: a set of the device tokens of a workspace that have
// reported a metric (delivered/opened) at least once.
func reportingKey(workspaceID string) string { return "herald:reporting:" + workspaceID }

// MarkReporting remembers that a token reported a metric.
func (c *TargetCache) MarkReporting(ctx context.Context, workspaceID, token string) error {
	if err := c.rdb.SAdd(ctx, reportingKey(workspaceID), token).Err(); err != nil {
		return fmt.Errorf("jobs: mark reporting token: %w", err)
	}
	return nil
}

// Reporting tells which of tokens have ever reported a metric.
func (c *TargetCache) Reporting(ctx context.Context, workspaceID string, tokens []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(tokens) == 0 {
		return out, nil
	}
	members := make([]any, len(tokens))
	for i, t := range tokens {
		members[i] = t
	}
	is, err := c.rdb.SMIsMember(ctx, reportingKey(workspaceID), members...).Result()
	if err != nil {
		return nil, fmt.Errorf("jobs: read reporting tokens: %w", err)
	}
	for i, ok := range is {
		out[tokens[i]] = ok
	}
	return out, nil
}

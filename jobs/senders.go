package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/providers"
)

// senderCache keeps one provider client per workspace, platform and
// credentials version, so connections (HTTP/2 to Apple, OAuth tokens for
// Google) are reused across sends and replaced when credentials change.
// One build per workspace and platform runs at a time: the sends that
// miss meanwhile wait for it (a broadcast's first 200 sends make one
// credentials read, not 200).
type senderCache struct {
	store *clickhouse.Store
	cfg   Config

	mu       sync.Mutex
	senders  map[senderKey]providers.Sender
	building map[[2]string]chan struct{}
}

type senderKey struct {
	workspace, platform string
	version             uint64
}

func newSenderCache(store *clickhouse.Store, cfg Config) *senderCache {
	return &senderCache{store: store, cfg: cfg, senders: map[senderKey]providers.Sender{}, building: map[[2]string]chan struct{}{}}
}

func (c *senderCache) get(ctx context.Context, workspace, platform string, version uint64) (providers.Sender, error) {
	k := senderKey{workspace, platform, version}
	b := [2]string{workspace, platform}
	for {
		c.mu.Lock()
		if s, ok := c.senders[k]; ok {
			c.mu.Unlock()
			return s, nil
		}
		wait, busy := c.building[b]
		if !busy {
			wait = make(chan struct{})
			c.building[b] = wait
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		select { // another send is building this client: look again after it
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer func() {
		c.mu.Lock()
		close(c.building[b])
		delete(c.building, b)
		c.mu.Unlock()
	}()
	creds, err := c.store.Credentials(ctx, workspace)
	if err != nil {
		return nil, err
	}
	cr, ok := creds[platform]
	if !ok {
		return nil, fmt.Errorf("credentials for %s were removed", platform)
	}
	s, err := BuildSender(ctx, workspace, platform, cr.Data, c.cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for old := range c.senders { // drop clients of older versions
		if old.workspace == workspace && old.platform == platform {
			delete(c.senders, old)
		}
	}
	c.senders[senderKey{workspace, platform, cr.Version}] = s
	c.mu.Unlock()
	return s, nil
}

// CredentialsAAD binds sealed credentials to their workspace and platform.
func CredentialsAAD(workspace, platform string) []byte { return []byte(workspace + "/" + platform) }

// BuildSender makes a provider client from stored (sealed) credentials.
func BuildSender(ctx context.Context, workspace, platform, sealed string, cfg Config) (providers.Sender, error) {
	if cfg.Secrets == nil {
		return nil, fmt.Errorf("no secret key: set HERALD_SECRET_KEY to open push credentials")
	}
	plain, err := cfg.Secrets.Open(sealed, CredentialsAAD(workspace, platform))
	if err != nil {
		return nil, fmt.Errorf("%s credentials: %w", platform, err)
	}
	data := string(plain)
	switch providers.Platform(platform) {
	case providers.IOS:
		var c providers.APNSCredentials
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return nil, fmt.Errorf("apns credentials: %w", err)
		}
		return providers.NewAPNS(c, providers.APNSOptions{Host: cfg.APNSHost, RootCAs: cfg.APNSRootCAs, Timeout: cfg.SendTimeout})
	case providers.Android:
		var c providers.FCMCredentials
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return nil, fmt.Errorf("fcm credentials: %w", err)
		}
		// The app outlives this task: its OAuth token source must not use the task context.
		return providers.NewFCM(context.WithoutCancel(ctx), c, providers.FCMOptions{Endpoint: cfg.FCMEndpoint, Timeout: cfg.SendTimeout, TokenURIs: cfg.FCMTokenURIs})
	}
	return nil, fmt.Errorf("unknown platform %q", platform)
}

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
type senderCache struct {
	store *clickhouse.Store
	cfg   Config

	mu      sync.Mutex
	senders map[senderKey]providers.Sender
}

type senderKey struct {
	workspace, platform string
	version             uint64
}

func newSenderCache(store *clickhouse.Store, cfg Config) *senderCache {
	return &senderCache{store: store, cfg: cfg, senders: map[senderKey]providers.Sender{}}
}

func (c *senderCache) get(ctx context.Context, workspace, platform string, version uint64) (providers.Sender, error) {
	k := senderKey{workspace, platform, version}
	c.mu.Lock()
	s, ok := c.senders[k]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	creds, err := c.store.Credentials(ctx, workspace)
	if err != nil {
		return nil, err
	}
	cr, ok := creds[platform]
	if !ok {
		return nil, fmt.Errorf("credentials for %s were removed", platform)
	}
	s, err = BuildSender(ctx, workspace, platform, cr.Data, c.cfg)
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

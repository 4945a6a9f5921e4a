package graph

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph/model"
	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/render"
)

// sampleToken stands in for a device token when estimating a payload's size:
// the longest APNS token Herald accepts is 200 hex characters.
var sampleToken = strings.Repeat("0", 200)

// newMessage validates a push message: its campaign exists, every Liquid
// field parses, and the payload (templates unrendered) fits in 4 KB on both
// platforms.
func (r *Resolver) newMessage(ctx context.Context, ws string, in model.CreatePushMessageInput) (clickhouse.Message, error) {
	id, _ := uuid.NewV7()
	m := clickhouse.Message{WorkspaceID: ws, ID: id, Name: in.Name, Title: in.Title, Body: in.Body,
		Link: strOr(in.Link), Image: strOr(in.Image), Sound: strOr(in.Sound), Badge: -1, CreatedAt: time.Now().UTC()}
	if in.Name == "" {
		return m, badInput("input.name", "name is empty")
	}
	if err := checkLen("input.name", in.Name, maxNameLen); err != nil {
		return m, err
	}
	if in.Alias != nil && *in.Alias != "" {
		if err := r.checkAlias(ctx, ws, *in.Alias); err != nil {
			return m, err
		}
		m.Alias = *in.Alias
	}
	if in.Title == "" && in.Body == "" && (in.Options == nil || !in.Options.Silent) {
		return m, badInput("input.body", "a push needs a title or a body (or options.silent)")
	}
	if in.Badge != nil {
		if *in.Badge < 0 {
			return m, badInput("input.badge", "badge must be 0 or more")
		}
		m.Badge = int32(*in.Badge)
	}
	if in.CampaignID != nil && *in.CampaignID != "" {
		cid, err := parseID("input.campaignId", *in.CampaignID)
		if err != nil {
			return m, err
		}
		if _, err := r.Store.Campaign(ctx, ws, cid); errors.Is(err, clickhouse.ErrNotFound) {
			return m, badInput("input.campaignId", "no campaign with id %s", *in.CampaignID)
		} else if err != nil {
			return m, err
		}
		m.CampaignID = cid
	}
	data, err := encodeJSON("input.data", in.Data)
	if err != nil {
		return m, err
	}
	m.Data = data
	var opts providers.Options
	if in.Options != nil {
		opts = *in.Options
	}
	fields, custom, err := jobs.MessageFields(m)
	if err != nil {
		return m, badInput("input.data", "%v", err)
	}
	if err := checkOptions("input.options", opts, hasAlert(fields, m.Badge)); err != nil {
		return m, err
	}
	if m.Options, err = opts.Encode(); err != nil {
		return m, badInput("input.options", "%v", err)
	}
	jobs.AddOptionFields(fields, opts)
	if err := r.Render.Check(fields); err != nil {
		var fe *render.FieldError
		if errors.As(err, &fe) {
			return m, badInput("input."+fe.Field, "%v", fe.Err)
		}
		return m, badInput("input", "%v", err)
	}
	p := providers.Push{DeliveryID: id.String(), Token: sampleToken, Title: m.Title, Body: m.Body,
		Link: m.Link, Image: m.Image, Sound: m.Sound, Data: map[string]string{}, Options: opts}
	for k, v := range custom {
		p.Data[k] = v
	}
	for k, v := range fields {
		if name, ok := strings.CutPrefix(k, "data."); ok {
			p.Data[name] = v
		}
	}
	if m.Badge >= 0 {
		b := int(m.Badge)
		p.Badge = &b
	}
	for _, pl := range []providers.Platform{providers.IOS, providers.Android} {
		n, err := providers.PayloadSize(pl, p)
		if err != nil {
			return m, badInput("input", "%v", err)
		}
		if n > providers.MaxPayloadBytes {
			return m, badInput("input", "the %s payload would be %d bytes, over the %d-byte limit", pl, n, providers.MaxPayloadBytes)
		}
	}
	return m, nil
}

// maxAliasLen bounds a message alias.
const maxAliasLen = 100

// checkAlias refuses an alias that is a UUID (ids and aliases share
// transactional_message_id), too long, has control characters, or names
// another message of the workspace already.
func (r *Resolver) checkAlias(ctx context.Context, ws, alias string) error {
	if _, err := uuid.Parse(alias); err == nil {
		return badInput("input.alias", "an alias cannot be a UUID: those are message ids")
	}
	if err := checkLen("input.alias", alias, maxAliasLen); err != nil {
		return err
	}
	if strings.TrimSpace(alias) != alias || strings.ContainsFunc(alias, unicode.IsControl) {
		return badInput("input.alias", "an alias has no leading or trailing spaces and no control characters")
	}
	id, err := r.Store.MessageIDByAlias(ctx, ws, alias)
	if err == nil {
		return badInput("input.alias", "alias %q names message %s already", alias, id)
	}
	if !errors.Is(err, clickhouse.ErrNotFound) {
		return err
	}
	return nil
}

// MessageIDOf resolves a transactional_message_id: a message id (a UUID),
// else a message alias of the workspace. ErrMessageNotFound when neither.
func (r *Resolver) MessageIDOf(ctx context.Context, ws, ref string) (string, error) {
	if _, err := uuid.Parse(ref); err == nil {
		return ref, nil
	}
	id, err := r.Store.MessageIDByAlias(ctx, ws, ref)
	if errors.Is(err, clickhouse.ErrNotFound) {
		return "", ErrMessageNotFound
	}
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// enumOrNil is a stored enum option for GraphQL: nil when unset.
func enumOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// campaignByID loads a campaign of the caller's workspace; nil when id is empty or unknown.
func (r *Resolver) campaignByID(ctx context.Context, id string) (*model.Campaign, error) {
	ws, err := workspace(ctx)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, nil
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, nil
	}
	c, err := r.Store.Campaign(ctx, ws, u)
	if errors.Is(err, clickhouse.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return campaignModel(c), nil
}

package graph

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/domain"
	"github.com/heraldpush/herald/graph/model"
	"github.com/heraldpush/herald/jobs"
	"github.com/heraldpush/herald/providers"
	"github.com/heraldpush/herald/render"
)

// SendRequest is one message to one person: GraphQL sendPush and the REST
// transactional send (POST /v1/send/push) both make one.
type SendRequest struct {
	Workspace string
	MessageID string
	PersonID  string
	Audience  model.Audience // "" = ALL_DEVICES
	Token     string         // the CUSTOM_TOKEN target
	// Data is bound as event.* and trigger.* in the templates.
	Data map[string]any
	// Overrides replace the message's fields and options. Their Liquid is
	// checked here; an error names the field as "input.overrides.<title|body|…>".
	Overrides jobs.Overrides
	// SendAt schedules the send (zero: at once); checkSendAt bounds it.
	SendAt time.Time
	// SendToUnsubscribed sends even if the person is unsubscribed.
	SendToUnsubscribed bool
	// Draft records the delivery without sending it; SendDraft sends it.
	Draft bool
}

// maxSchedule is how far ahead a send can be scheduled.
const maxSchedule = 90 * 24 * time.Hour

// checkSendAt refuses a send time in the past or more than 90 days ahead.
func checkSendAt(field string, at time.Time) error {
	now := time.Now()
	switch {
	case at.IsZero():
		return nil
	case at.Before(now):
		return badInput(field, "%s is in the past (now is %s)", at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case at.After(now.Add(maxSchedule)):
		return badInput(field, "%s is more than 90 days ahead", at.UTC().Format(time.RFC3339))
	}
	return nil
}

// ErrMessageNotFound is wrapped by Send's error for an unknown message id (a
// BAD_USER_INPUT on input.messageId in GraphQL; REST answers 404).
var ErrMessageNotFound = errors.New("push message not found")

// messageNotFound is bad input on field that also matches ErrMessageNotFound.
type messageNotFound struct{ *InputError }

func (e messageNotFound) Unwrap() []error { return []error{e.InputError, ErrMessageNotFound} }

// Send validates a send, records the delivery and queues its deliver task;
// the worker then renders, checks and sends (README "How a push is sent").
// Input errors are *InputError with GraphQL's field names (input.messageId,
// input.personId, input.token, input.data).
func (r *Resolver) Send(ctx context.Context, req SendRequest) (clickhouse.Delivery, error) {
	ws := req.Workspace
	if err := r.allowSend(ctx, ws); err != nil {
		return clickhouse.Delivery{}, err
	}
	msgID, err := parseID("input.messageId", req.MessageID)
	if err != nil {
		return clickhouse.Delivery{}, err
	}
	if err := validPersonID("input.personId", req.PersonID); err != nil {
		return clickhouse.Delivery{}, err
	}
	audience := req.Audience
	if audience == "" {
		audience = model.AudienceAllDevices
	}
	if !audience.IsValid() {
		return clickhouse.Delivery{}, badInput("input.audience", "unknown audience %q", audience)
	}
	if audience == model.AudienceCustomToken && req.Token == "" {
		return clickhouse.Delivery{}, badInput("input.token", "CUSTOM_TOKEN needs a token")
	}
	if audience != model.AudienceCustomToken && req.Token != "" {
		return clickhouse.Delivery{}, badInput("input.token", "a token is only used with audience CUSTOM_TOKEN")
	}
	if len(req.Token) > domain.MaxFCMTokenLen {
		return clickhouse.Delivery{}, badInput("input.token", "must be at most %d characters", domain.MaxFCMTokenLen)
	}
	req.Token = domain.CanonicalToken(req.Token)
	data, err := encodeJSON("input.data", req.Data)
	if err != nil {
		return clickhouse.Delivery{}, err
	}
	if err := checkSendAt("input.sendAt", req.SendAt); err != nil {
		return clickhouse.Delivery{}, err
	}
	if req.Draft && !req.SendAt.IsZero() {
		return clickhouse.Delivery{}, badInput("input.draft", "a draft has no send time: send it with sendDraft when it should go")
	}
	msg, err := r.Store.Message(ctx, ws, msgID)
	if errors.Is(err, clickhouse.ErrNotFound) {
		return clickhouse.Delivery{}, messageNotFound{&InputError{Field: "input.messageId", Message: "no push message with id " + req.MessageID}}
	}
	if err != nil {
		return clickhouse.Delivery{}, err
	}
	overrides, err := r.checkOverrides(req.Overrides, msg)
	if err != nil {
		return clickhouse.Delivery{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return clickhouse.Delivery{}, err
	}
	d := clickhouse.Delivery{WorkspaceID: ws, ID: id, CampaignID: msg.CampaignID, MessageID: msg.ID, PersonID: req.PersonID,
		Audience: string(audience), Token: req.Token, Data: data, Overrides: overrides, SendAt: req.SendAt.UTC().Truncate(time.Millisecond),
		SendToUnsubscribed: req.SendToUnsubscribed, Draft: req.Draft, CreatedAt: clickhouse.DeliveryTime(id).UTC()}
	if err := r.Store.CreateDelivery(ctx, d); err != nil {
		return clickhouse.Delivery{}, err
	}
	p := jobs.DeliverPayload{WorkspaceID: ws, DeliveryID: id.String()}
	switch {
	case d.Draft:
		err = nil // SendDraft queues it
	case d.SendAt.IsZero():
		err = r.Queue.Deliver(ctx, p)
	default:
		err = r.Queue.Schedule(ctx, p, d.SendAt)
	}
	if err != nil {
		return clickhouse.Delivery{}, err
	}
	return d, nil
}

// checkOverrides parses every overriding template, checks the delivery
// options in effect against the content in effect (Options.Validate), and
// returns the overrides as stored ("" when none). Errors name the field as
// "input.overrides.<title|body|…|options.priority|…>".
func (r *Resolver) checkOverrides(o jobs.Overrides, msg clickhouse.Message) (string, error) {
	if o.IsZero() {
		return "", nil
	}
	fields, custom := map[string]string{}, map[string]string{}
	if err := o.Apply(fields, custom); err != nil {
		return "", badInput("input.overrides.data", "%v", err)
	}
	msgOpts, err := providers.DecodeOptions(msg.Options)
	if err != nil {
		return "", err
	}
	opts := o.EffectiveOptions(msgOpts)
	jobs.AddOptionFields(fields, opts)
	if err := r.Render.Check(fields); err != nil {
		var fe *render.FieldError
		if errors.As(err, &fe) {
			return "", badInput("input.overrides."+fe.Field, "%v", fe.Err)
		}
		return "", badInput("input.overrides", "%v", err)
	}
	content, _, err := jobs.MessageFields(msg)
	if err != nil {
		return "", err
	}
	if err := o.Apply(content, map[string]string{}); err != nil {
		return "", badInput("input.overrides.data", "%v", err)
	}
	if err := checkOptions("input.overrides.options", opts, hasAlert(content, msg.Badge)); err != nil {
		return "", err
	}
	s, err := o.Encode()
	if err != nil {
		return "", badInput("input.overrides", "%v", err)
	}
	return s, nil
}

// hasAlert reports whether a push with these Liquid fields (MessageFields)
// and badge (-1 = none) shows an alert: a title, body, sound, image or badge.
func hasAlert(fields map[string]string, badge int32) bool {
	return badge >= 0 || fields["title"] != "" || fields["body"] != "" || fields["sound"] != "" || fields["image"] != ""
}

// checkOptions validates delivery options for content with or without an
// alert; an error names the option under prefix.
func checkOptions(prefix string, opts providers.Options, hasAlert bool) error {
	err := opts.Validate(hasAlert)
	var oe *providers.OptionError
	if errors.As(err, &oe) {
		return badInput(prefix+"."+oe.Field, "%s", oe.Msg)
	}
	if err != nil {
		return badInput(prefix, "%v", err)
	}
	return nil
}

// WorkspaceOf returns the workspace WithWorkspace put in ctx ("" when none).
func WorkspaceOf(ctx context.Context) string {
	id, _ := workspace(ctx)
	return id
}

// sealCredentials encrypts credentials JSON with AES-GCM under
// HERALD_SECRET_KEY, bound to the workspace and platform; only the worker
// opens them, and no API returns them.
func (r *Resolver) sealCredentials(ws, platform, data string) (string, error) {
	if r.Secrets == nil {
		return "", errors.New("no secret key configured: cannot store credentials")
	}
	return r.Secrets.Seal([]byte(data), jobs.CredentialsAAD(ws, platform)), nil
}

// allowSend applies the per-workspace send rate (sendPush, the REST send
// API and broadcasts), shared by every server process through Redis.
func (r *Resolver) allowSend(ctx context.Context, ws string) error {
	if r.Limiter == nil {
		return nil
	}
	ok, retry, err := r.Limiter.Allow(ctx, "send:"+ws, r.SendRate)
	if err != nil {
		return err
	}
	if !ok {
		return &RateLimitError{RetryAfter: retry}
	}
	return nil
}

package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldpush/herald/clickhouse"
)

// Error codes carried in extensions.code.
const (
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeNotFound        = "NOT_FOUND"
	CodeForbidden       = "FORBIDDEN"
	CodeInternal        = "INTERNAL"
)

// ErrUnauthenticated is returned when a request carries no valid API key.
var ErrUnauthenticated = errors.New("missing or invalid API key: send Authorization: Bearer <workspace API key>")

// InputError is bad input; Field is the argument path, e.g. "input.token".
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

func badInput(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// CodeRateLimited is extensions.code for a request over a rate limit;
// extensions.retryAfter says in how many seconds to retry.
const CodeRateLimited = "RATE_LIMITED"

// RateLimitError is a request over a per-workspace rate limit.
type RateLimitError struct{ RetryAfter time.Duration }

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limit exceeded: retry in %s", e.RetryAfter.Round(time.Millisecond))
}

// RetryAfterSeconds is the Retry-After header's value (at least 1).
func (e *RateLimitError) RetryAfterSeconds() int {
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// CodeLimitExceeded is extensions.code for a request over a documented cap
// (subscriptions per connection or per workspace); extensions.limit is the cap.
const CodeLimitExceeded = "LIMIT_EXCEEDED"

// LimitError is a request over a cap.
type LimitError struct {
	What  string
	Limit int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("too many %s: the limit is %d", e.What, e.Limit)
}

// NotFoundError is a missing object (or one of another workspace).
type NotFoundError struct{ What, ID string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q not found", e.What, e.ID) }

func notFound(what, id string) error { return &NotFoundError{What: what, ID: id} }

// ErrorPresenter maps errors to extensions.code once, at the edge, and hides
// internal details: an unexpected error is logged and shown as INTERNAL.
func ErrorPresenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var in *InputError
		var nf *NotFoundError
		var rl *RateLimitError
		var le *LimitError
		switch {
		case errors.As(err, &le):
			gerr.Message = le.Error()
			setCode(gerr, CodeLimitExceeded)
			gerr.Extensions["limit"] = le.Limit
		case errors.Is(err, clickhouse.ErrBusy):
			// The workspace's own queries hold its slots: retry shortly.
			gerr.Message = clickhouse.ErrBusy.Error()
			setCode(gerr, CodeRateLimited)
			gerr.Extensions["retryAfter"] = 1
		case errors.As(err, &rl):
			gerr.Message = rl.Error()
			setCode(gerr, CodeRateLimited)
			gerr.Extensions["retryAfter"] = rl.RetryAfterSeconds()
		case errors.As(err, &in):
			gerr.Message = in.Error()
			setCode(gerr, CodeBadUserInput)
			gerr.Extensions["field"] = in.Field
		case errors.As(err, &nf):
			gerr.Message = nf.Error()
			setCode(gerr, CodeNotFound)
		case errors.Is(err, clickhouse.ErrNotFound):
			gerr.Message = "not found"
			setCode(gerr, CodeNotFound)
		case errors.Is(err, ErrUnauthenticated):
			gerr.Message = ErrUnauthenticated.Error()
			setCode(gerr, CodeUnauthenticated)
		default:
			var ge *gqlerror.Error
			if errors.As(err, &ge) && ge.Extensions != nil && ge.Extensions["code"] != nil {
				// gqlgen's own parse/validation errors: bad input from the client.
				if c, _ := ge.Extensions["code"].(string); c == "GRAPHQL_VALIDATION_FAILED" || c == "GRAPHQL_PARSE_FAILED" || c == "COMPLEXITY_LIMIT_EXCEEDED" {
					setCode(gerr, CodeBadUserInput)
					if len(gerr.Path) > 0 { // a variable's value: name it
						field := gerr.Path.String()
						gerr.Extensions["field"] = field
						gerr.Message = field + ": " + gerr.Message
					}
				}
				return gerr
			}
			if errors.As(err, &ge) && ge.Rule != "" {
				setCode(gerr, CodeBadUserInput)
				return gerr
			}
			if isInputCoercion(err) {
				setCode(gerr, CodeBadUserInput)
				field := gerr.Path.String()
				gerr.Extensions["field"] = field
				gerr.Message = field + ": " + gerr.Message
				return gerr
			}
			logger.ErrorContext(ctx, "graphql: internal error", "path", gerr.Path.String(), "err", Truncate(err.Error(), maxLoggedError))
			gerr.Message = "internal error"
			setCode(gerr, CodeInternal)
		}
		return gerr
	}
}

// isInputCoercion reports errors gqlgen raises while decoding arguments
// (an unknown enum value in variables, a wrong scalar type, a Time that is
// not RFC 3339): a *gqlerror.Error on the argument's path, wrapping the
// scalar's own error, if any. Resolvers return plain errors, never these.
func isInputCoercion(err error) bool {
	ge, ok := err.(*gqlerror.Error)
	return ok && len(ge.Path) > 0 && ge.Extensions == nil
}

// maxLoggedError bounds an error logged at ERROR level: an error can carry
// a client's input, and a log line is no place for a megabyte of it.
const maxLoggedError = 2000

// Truncate cuts s to at most n bytes (on a rune boundary), marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + fmt.Sprintf("… (%d bytes)", len(s))
}

func setCode(e *gqlerror.Error, code string) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions["code"] = code
}

// Recover turns a panic in a resolver into INTERNAL.
func Recover(logger *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "graphql: panic", "panic", p)
		return errors.New("internal error")
	}
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph"
)

// The GraphQL front door: what /graphql does before gqlgen parses a byte.
// A request without a valid key is refused before its body is read; an
// oversized body gets 413 however it is sent (Content-Length or chunked);
// a body that is not one GraphQL request gets 400 naming what is wrong.
// None of these is logged with its body.

// guard authenticates /graphql requests in front of gqlgen. Websocket
// upgrades pass: they authenticate in connection_init, and live on past
// the server's read timeout. OPTIONS (a CORS preflight) carries no key.
func (a *authenticator) guard(next http.Handler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocket(r) {
			// net/http clears the read deadline when a connection is
			// hijacked (today); clearing it here keeps it so.
			_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
			next.ServeHTTP(w, r.WithContext(withClientIP(r.Context(), clientIP(r))))
			return
		}
		if r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > maxBody {
			writeGraphQLError(w, http.StatusRequestEntityTooLarge, graph.CodeBadUserInput, bodyTooLarge(maxBody))
			return
		}
		key := bearerKey(r)
		if key == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			writeGraphQLError(w, http.StatusUnauthorized, graph.CodeUnauthenticated, graph.ErrUnauthenticated.Error())
			return
		}
		ws, err := a.workspace(r.Context(), key, clientIP(r))
		var rl *graph.RateLimitError
		switch {
		case err == nil:
		case errors.Is(err, clickhouse.ErrNotFound):
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
			writeGraphQLError(w, http.StatusUnauthorized, graph.CodeUnauthenticated, graph.ErrUnauthenticated.Error())
			return
		case errors.As(err, &rl):
			w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
			writeGraphQLError(w, http.StatusTooManyRequests, graph.CodeRateLimited, "too many lookups of unknown API keys from this address: "+rl.Error())
			return
		default:
			writeGraphQLError(w, http.StatusServiceUnavailable, graph.CodeInternal, "cannot check the API key now; retry later")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r.WithContext(graph.WithWorkspace(r.Context(), ws)))
	})
}

func isWebsocket(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func bodyTooLarge(n int64) string { return fmt.Sprintf("request body over %d bytes", n) }

// writeGraphQLError answers a request refused before gqlgen ran, in the
// shape of a GraphQL response.
func writeGraphQLError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, graphql.Response{Errors: gqlerror.List{{Message: msg, Extensions: map[string]any{"code": code}}}})
}

// httpTransport is GraphQL over HTTP (GET and POST with a JSON body) in
// place of gqlgen's transport.GET and transport.POST, which answer a body
// they cannot decode with 200 or an uncoded error that quotes the body.
type httpTransport struct{ logger *slog.Logger }

var _ graphql.Transport = httpTransport{}

// Supports every plain HTTP request but OPTIONS and HEAD (transport.Options).
func (httpTransport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && r.Method != http.MethodOptions && r.Method != http.MethodHead
}

// requestError is a request that is not one GraphQL operation.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// Do reads the operation, runs it and writes the response.
func (t httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	start := graphql.Now()
	params, rerr := readParams(r)
	if rerr != nil {
		if rerr.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "OPTIONS, GET, POST")
		}
		t.refused(r, rerr.status, graph.CodeBadUserInput, rerr.msg)
		writeGraphQLError(w, rerr.status, graph.CodeBadUserInput, rerr.msg)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	oc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, oc), errs)
		status, code := statusOf(resp.Errors)
		t.refused(r, status, code, resp.Errors[0].Message)
		t.write(w, r, status, resp)
		return
	}
	if r.Method == http.MethodGet && oc.Operation.Operation != ast.Query {
		w.Header().Set("Allow", "POST")
		msg := fmt.Sprintf("GET runs only queries; send a %s with POST", oc.Operation.Operation)
		t.refused(r, http.StatusMethodNotAllowed, graph.CodeBadUserInput, msg)
		writeGraphQLError(w, http.StatusMethodNotAllowed, graph.CodeBadUserInput, msg)
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, oc)
	t.write(w, r, http.StatusOK, responses(ctx))
}

// write sends a GraphQL response as application/json, or as
// application/graphql-response+json to a client that asks for it.
func (httpTransport) write(w http.ResponseWriter, r *http.Request, status int, resp *graphql.Response) {
	ct := "application/json"
	if strings.Contains(r.Header.Get("Accept"), "application/graphql-response+json") {
		ct = "application/graphql-response+json"
	}
	b, err := json.Marshal(resp)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}`)
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// refused logs a refused request in one short line, without its body.
func (t httpTransport) refused(r *http.Request, status int, code, msg string) {
	t.logger.InfoContext(r.Context(), "graphql: request refused", "status", status, "code", code, "method", r.Method, "reason", graph.Truncate(msg, 200))
}

// statusOf is the HTTP status of an operation refused before it ran.
func statusOf(errs gqlerror.List) (int, string) {
	code, _ := errs[0].Extensions["code"].(string)
	switch code {
	case graph.CodeUnauthenticated:
		return http.StatusUnauthorized, code
	case graph.CodeForbidden:
		return http.StatusForbidden, code
	case graph.CodeRateLimited:
		return http.StatusTooManyRequests, code
	case graph.CodeInternal:
		return http.StatusInternalServerError, code
	}
	return http.StatusBadRequest, code
}

// readParams reads one GraphQL request from the URL (GET) or a JSON body (POST).
func readParams(r *http.Request) (*graphql.RawParams, *requestError) {
	switch r.Method {
	case http.MethodGet:
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, badRequest("the query string does not parse: %v", err)
		}
		fields := map[string]json.RawMessage{}
		for name, vs := range q {
			if len(vs) > 1 {
				return nil, badRequest("parameter %q is given %d times", name, len(vs))
			}
			switch name {
			case "query", "operationName":
				fields[name], _ = json.Marshal(vs[0])
			default: // variables and extensions are JSON; the rest is refused below
				fields[name] = json.RawMessage(vs[0])
			}
		}
		return paramsOf(fields, "parameter")
	case http.MethodPost:
	default:
		return nil, &requestError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s: GraphQL takes GET or POST", r.Method)}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &requestError{http.StatusUnsupportedMediaType, "send the request as Content-Type: application/json"}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &tooBig):
			return nil, &requestError{http.StatusRequestEntityTooLarge, bodyTooLarge(tooBig.Limit)}
		case errors.As(err, &ne) && ne.Timeout():
			return nil, &requestError{http.StatusRequestTimeout, "the request body did not arrive in time"}
		}
		return nil, badRequest("the request body could not be read")
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return nil, badRequest("batched requests (a JSON array of operations) are not supported: send one operation per request")
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, badRequest("the request body is not a JSON object: %s", jsonProblem(err))
	}
	if fields == nil {
		return nil, badRequest("the request body is null, not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("the request body has more after its JSON object")
	}
	return paramsOf(fields, "field")
}

// paramsOf checks each member of a request: query and operationName are
// strings, variables and extensions objects; anything else is refused.
func paramsOf(fields map[string]json.RawMessage, what string) (*graphql.RawParams, *requestError) {
	p := &graphql.RawParams{}
	for name, raw := range fields {
		null := string(bytes.TrimSpace(raw)) == "null"
		switch name {
		case "query", "operationName":
			var s string
			if !null && json.Unmarshal(raw, &s) != nil {
				return nil, badRequest("%s: must be a string", name)
			}
			if name == "query" {
				p.Query = s
			} else {
				p.OperationName = s
			}
		case "variables", "extensions":
			var m map[string]any
			if !null {
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.UseNumber() // gqlgen coerces Int and Float from json.Number
				if err := dec.Decode(&m); err != nil || m == nil {
					return nil, badRequest("%s: must be a JSON object (%s)", name, jsonProblem(err))
				}
				if _, err := dec.Token(); err != io.EOF {
					return nil, badRequest("%s: has more after its JSON object", name)
				}
			}
			if name == "variables" {
				p.Variables = m
			} else {
				if _, ok := m["persistedQuery"]; ok {
					return nil, badRequest("extensions.persistedQuery: persisted queries are not supported; send the query")
				}
				p.Extensions = m
			}
		default:
			return nil, badRequest("unknown request %s %q: a GraphQL request has query, operationName, variables and extensions", what, graph.Truncate(name, 64))
		}
	}
	return p, nil
}

// jsonProblem describes a JSON decoding error without quoting the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "null"
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return "a JSON " + typ.Value
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	return "invalid JSON"
}

package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph/generated"
	"github.com/heraldpush/herald/graph/model"
)

// Query cost limits. A field costs the ClickHouse work it does: queryCost
// per query it may run, plus its children times the rows it may return (a
// list field's `first`). MaxComplexity / queryCost bounds the queries of
// one operation. person(id) and Person.devices are batched per operation
// (loader.go): a lookup costs 1 plus its children, not a query.
const (
	// MaxComplexity bounds one operation's cost.
	MaxComplexity = 5000
	// MaxDepth bounds how deeply selections nest.
	MaxDepth = 12
	// queryCost is one ClickHouse query of a few rows by primary key.
	queryCost = 10
	// overviewCost: a campaign overview runs up to 4 aggregations over the
	// campaign's events (clickhouse.Store.Overview), each scanning many rows.
	overviewCost = 4 * 5 * queryCost
	// historyCost: one read of a delivery's events.
	historyCost = queryCost
)

// Complexity returns the cost functions for generated.Config.
func Complexity() generated.ComplexityRoot {
	var c generated.ComplexityRoot
	page := func(first *int, def int) int {
		if first == nil {
			return def
		}
		if *first < 1 {
			return 1
		}
		return *first
	}
	one := func(child int) int { return queryCost + child }
	c.Query.Campaigns = func(child int, first *int, _ *string) int { return queryCost + page(first, 20)*(child+1) }
	c.Query.Deliveries = func(child int, f *model.DeliveryFilter, first *int, _ *string) int {
		return queryCost*clickhouse.LogQueries(f != nil && len(f.Status) > 0) + page(first, 20)*(child+1)
	}
	c.Query.PushMessages = func(child int, _ *string, first *int, _ *string) int { return queryCost + page(first, 20)*(child+1) }
	c.Query.Campaign = func(child int, _ string) int { return one(child) }
	c.Query.PushMessage = func(child int, _ string) int { return one(child) }
	c.Query.Broadcast = func(child int, _ string) int { return one(child) }
	// delivery(id): the delivery's row, its events and its device tokens.
	c.Query.Delivery = func(child int, _ string) int { return 3*queryCost + child }
	c.Delivery.Message = one
	c.Delivery.Campaign = one
	c.DeliveryLog.Message = one
	c.DeliveryLog.Campaign = one
	c.PushMessage.Campaign = one
	c.Broadcast.Message = one
	c.Campaign.Overview = func(child int, _ *time.Time, _ *time.Time, _ *model.Granularity) int { return overviewCost + child }
	c.Delivery.History = func(child int) int { return historyCost + 10*child }
	c.Person.Devices = func(child int, first *int) int { return 1 + page(first, maxDevicesPage)*(child+1) }
	return c
}

// RequestScope is a gqlgen extension that gives each operation of an
// authenticated workspace its ClickHouse gate (bounded concurrent queries
// per request and per workspace, counted) and its loaders, and reports the
// work done in extensions.cost of query and mutation responses:
// complexity, clickhouseQueries, queryWaits (reads that waited for a
// slot) and workspaceConcurrencyPeak.
type RequestScope struct{ Resolver *Resolver }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = RequestScope{}

// ExtensionName names the extension.
func (RequestScope) ExtensionName() string { return "RequestScope" }

// Validate checks the schema (nothing to check).
func (RequestScope) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation attaches the gate and the loaders.
func (s RequestScope) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	ws, err := workspace(ctx)
	if err != nil || s.Resolver == nil || s.Resolver.Store == nil {
		return next(ctx)
	}
	if l := s.Resolver.Queries; l != nil {
		ctx = clickhouse.WithGate(ctx, l.Gate(ws))
	}
	ctx = context.WithValue(ctx, loadersKey{}, newLoaders(ctx, s.Resolver.Store, ws))
	return next(ctx)
}

// InterceptResponse reports the operation's cost.
func (RequestScope) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	g := clickhouse.GateFrom(ctx)
	if resp == nil || g == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	if op := graphql.GetOperationContext(ctx).Operation; op == nil || op.Operation == ast.Subscription {
		return resp
	}
	st := g.Stats()
	cost := map[string]any{"clickhouseQueries": st.Queries, "queryWaits": st.Waits, "workspaceConcurrencyPeak": st.WorkspacePeak}
	if cs := extension.GetComplexityStats(ctx); cs != nil {
		cost["complexity"] = cs.Complexity
	}
	if resp.Extensions == nil {
		resp.Extensions = map[string]any{}
	}
	resp.Extensions["cost"] = cost
	return resp
}

// DepthLimit is a gqlgen extension that refuses operations nested deeper
// than Max (before any resolver runs), with BAD_USER_INPUT.
type DepthLimit struct{ Max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = DepthLimit{}

// ExtensionName names the extension.
func (DepthLimit) ExtensionName() string { return "DepthLimit" }

// Validate checks the schema (nothing to check).
func (DepthLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext measures the operation's depth.
func (d DepthLimit) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	if depth := selectionDepth(oc.Operation.SelectionSet, oc.Doc.Fragments, 0); depth > d.Max {
		err := gqlerror.Errorf("operation is nested %d levels deep, over the limit of %d", depth, d.Max)
		err.Extensions = map[string]any{"code": CodeBadUserInput}
		return err
	}
	return nil
}

func selectionDepth(set ast.SelectionSet, frags ast.FragmentDefinitionList, seen int) int {
	if seen > 64 { // fragment cycles are rejected by validation; stay bounded anyway
		return seen
	}
	best := 0
	for _, s := range set {
		var d int
		switch s := s.(type) {
		case *ast.Field:
			d = 1 + selectionDepth(s.SelectionSet, frags, seen+1)
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, frags, seen+1)
		case *ast.FragmentSpread:
			if f := frags.ForName(s.Name); f != nil {
				d = selectionDepth(f.SelectionSet, frags, seen+1)
			}
		}
		if d > best {
			best = d
		}
	}
	return best
}

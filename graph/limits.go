package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldpush/herald/graph/generated"
	"github.com/heraldpush/herald/graph/model"
)

// Query cost limits. A list field costs its `first` times its children; a
// campaign overview (a ClickHouse aggregation) costs overviewCost.
const (
	// MaxComplexity bounds one operation's cost.
	MaxComplexity = 5000
	// MaxDepth bounds how deeply selections nest.
	MaxDepth     = 12
	overviewCost = 100
	historyCost  = 20
)

// Complexity returns the cost functions for generated.Config.
func Complexity() generated.ComplexityRoot {
	var c generated.ComplexityRoot
	page := func(first *int) int {
		if first == nil {
			return 20
		}
		if *first < 1 {
			return 1
		}
		return *first
	}
	c.Query.Campaigns = func(child int, first *int, _ *string) int { return 1 + page(first)*child }
	c.Query.Deliveries = func(child int, _ *model.DeliveryFilter, first *int, _ *string) int { return 1 + page(first)*child }
	c.Campaign.Overview = func(child int, _ *time.Time, _ *time.Time, _ *model.Granularity) int { return overviewCost + child }
	c.Delivery.History = func(child int) int { return historyCost * (1 + child) }
	return c
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

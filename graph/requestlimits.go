package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Document size limits, checked before validation. gqlparser's validation
// compares every pair of same-named fields of a selection set
// (OverlappingFieldsCanBeMerged), so its cost grows with the square of the
// fields: 16,000 fields cost seconds. Bounding the tokens and the fields (with
// fragments expanded) bounds that work; both checks are linear.
const (
	// DefaultMaxTokens bounds the lexical tokens of a document.
	DefaultMaxTokens = 5000
	// DefaultMaxFields bounds the field selections of a document, each
	// fragment spread counting the fields of its fragment.
	DefaultMaxFields = 500
)

// DocumentLimit is a gqlgen extension that parses the query with a token
// limit and counts its fields before gqlgen validates it, refusing an
// oversized document with BAD_USER_INPUT. Give the server the same token
// limit (handler.Server.SetParserTokenLimit) so that its own parse stops
// there too.
type DocumentLimit struct{ MaxTokens, MaxFields int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = DocumentLimit{}

// ExtensionName names the extension.
func (DocumentLimit) ExtensionName() string { return "DocumentLimit" }

// Validate checks the schema (nothing to check).
func (DocumentLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters refuses a document over the limits.
func (d DocumentLimit) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, d.MaxTokens)
	if err != nil {
		gerr, ok := err.(*gqlerror.Error)
		if !ok {
			gerr = gqlerror.Wrap(err)
		}
		errcode.Set(gerr, errcode.ParseFailed)
		return gerr
	}
	if n := countFields(doc, d.MaxFields); n > d.MaxFields {
		return clientErrorf(CodeBadUserInput, "the document selects more than %d fields (fragments expanded); split it into smaller requests", d.MaxFields)
	}
	return nil
}

// countFields counts the field selections of doc's operations, a fragment
// spread counting its fragment's fields; it stops counting above limit, so
// fragments that spread each other many times cost no more than that.
func countFields(doc *ast.QueryDocument, limit int) int {
	memo := map[string]int{}
	var inSet func(set ast.SelectionSet, depth int) int
	inFragment := func(name string, depth int) int {
		if n, ok := memo[name]; ok {
			return n
		}
		f := doc.Fragments.ForName(name)
		if f == nil || depth > 64 { // unknown or cyclic: validation refuses it
			return 0
		}
		memo[name] = 0 // a cycle counts nothing more
		n := inSet(f.SelectionSet, depth+1)
		memo[name] = n
		return n
	}
	inSet = func(set ast.SelectionSet, depth int) int {
		n := 0
		for _, s := range set {
			switch s := s.(type) {
			case *ast.Field:
				n += 1 + inSet(s.SelectionSet, depth+1)
			case *ast.InlineFragment:
				n += inSet(s.SelectionSet, depth+1)
			case *ast.FragmentSpread:
				n += inFragment(s.Name, depth)
			}
			if n > limit {
				return limit + 1
			}
		}
		return n
	}
	total := 0
	for _, op := range doc.Operations {
		total += inSet(op.SelectionSet, 0)
		if total > limit {
			return limit + 1
		}
	}
	// Fragments no operation uses are validated too.
	for _, f := range doc.Fragments {
		total += inSet(f.SelectionSet, 0)
		if total > limit {
			return limit + 1
		}
	}
	return total
}

// IntrospectionOff is a gqlgen extension for servers without
// extension.Introspection: it refuses __schema and __type with FORBIDDEN
// before anything runs (gqlgen itself would fail them as an internal
// error while executing).
type IntrospectionOff struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = IntrospectionOff{}

// ExtensionName names the extension.
func (IntrospectionOff) ExtensionName() string { return "IntrospectionOff" }

// Validate checks the schema (nothing to check).
func (IntrospectionOff) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext refuses an operation that asks for the schema.
func (IntrospectionOff) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil || !oc.DisableIntrospection {
		return nil
	}
	if name := introspects(oc.Operation.SelectionSet, oc.Doc.Fragments, 0); name != "" {
		return clientErrorf(CodeForbidden, "%s: introspection is off on this server (the schema is schema.graphql in Herald's source; `herald dev` turns it on)", name)
	}
	return nil
}

// introspects names the first __schema or __type field of a root selection.
func introspects(set ast.SelectionSet, frags ast.FragmentDefinitionList, depth int) string {
	if depth > 64 {
		return ""
	}
	for _, s := range set {
		switch s := s.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				return s.Name
			}
		case *ast.InlineFragment:
			if n := introspects(s.SelectionSet, frags, depth+1); n != "" {
				return n
			}
		case *ast.FragmentSpread:
			if f := frags.ForName(s.Name); f != nil {
				if n := introspects(f.SelectionSet, frags, depth+1); n != "" {
					return n
				}
			}
		}
	}
	return ""
}

// clientErrorf is a request-level client mistake with its code.
func clientErrorf(code, format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": code}
	return err
}

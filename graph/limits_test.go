package graph

import (
	"context"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph/model"
)

func TestDepthLimit(t *testing.T) {
	nested := "{ __type(name: \"Query\") { fields { type " + strings.Repeat("{ ofType ", 12) + "{ name }" + strings.Repeat(" }", 12) + " } } }"
	for _, tc := range []struct {
		query string
		depth int
	}{
		{`{ delivery(id: "x") { id } }`, 2},
		{`{ delivery(id: "x") { message { campaign { overview { series { start } } } } } }`, 6},
		{`query { ...F } fragment F on Query { delivery(id: "x") { devices { token } } }`, 3},
		{nested, 16},
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.query})
		if err != nil {
			t.Fatal(err)
		}
		op := doc.Operations[0]
		if got := selectionDepth(op.SelectionSet, doc.Fragments, 0); got != tc.depth {
			t.Errorf("depth of %q = %d, want %d", tc.query, got, tc.depth)
		}
		err2 := DepthLimit{Max: MaxDepth}.MutateOperationContext(context.Background(), &graphql.OperationContext{Doc: doc, Operation: op})
		if (tc.depth > MaxDepth) != (err2 != nil) {
			t.Errorf("depth %d: limit error %v", tc.depth, err2)
		}
		if err2 != nil && err2.Extensions["code"] != CodeBadUserInput {
			t.Errorf("code %v", err2.Extensions["code"])
		}
	}
}

func TestComplexityCostsListsByFirst(t *testing.T) {
	c := Complexity()
	n := 100
	logs := queryCost * clickhouse.LogQueries(false)
	if got := c.Query.Deliveries(10, nil, &n, nil); got != logs+100*11 {
		t.Errorf("deliveries(first: 100) with child 10 = %d, want %d", got, logs+100*11)
	}
	if got := c.Query.Deliveries(10, nil, nil, nil); got != logs+20*11 {
		t.Errorf("deliveries() with child 10 = %d (default page 20), want %d", got, logs+20*11)
	}
	filtered := &model.DeliveryFilter{Status: []model.DeliveryStatus{model.DeliveryStatusConverted}}
	if got, want := c.Query.Deliveries(1, filtered, &n, nil), queryCost*clickhouse.LogQueries(true)+100*2; got != want {
		t.Errorf("deliveries(status filter, first: 100) = %d, want %d", got, want)
	}
	if got := c.Campaign.Overview(5, nil, nil, nil); got != overviewCost+5 {
		t.Errorf("overview = %d", got)
	}
	two := 2
	if got := c.Person.Devices(3, &two); got != 1+2*4 {
		t.Errorf("devices(first: 2) with child 3 = %d", got)
	}
	if got := c.Person.Devices(3, nil); got != 1+maxDevicesPage*4 {
		t.Errorf("devices() with child 3 = %d (default %d)", got, maxDevicesPage)
	}
}

package clickhouse

import (
	"os"
	"strings"
	"testing"
)

// The analysts' delivery_status view must be the API's SQL, word for word.
func TestDeliveryStatusViewIsTheAPISQL(t *testing.T) {
	b, err := os.ReadFile("migrations/0007_fast_overview.sql")
	if err != nil {
		t.Fatal(err)
	}
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	if !strings.Contains(norm(string(b)), norm(sprintfCore("1"))) {
		t.Error("migrations/0007_fast_overview.sql's delivery_status differs from deliverySendsCore: write a new migration that recreates the view from the current SQL")
	}
}

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/wyehq/wye/indexer"
)

// oneRow is a source holding one row of table, whose key column "id" is 7.
type oneRow struct{ table string }

func (s oneRow) View(context.Context) (indexer.View, error) { return s, nil }
func (s oneRow) Rows(_ context.Context, table string, _ []string, _ string, values []indexer.Value, _ indexer.Filter) ([]indexer.Row, error) {
	for _, v := range values {
		if table == s.table && v == "7" {
			return []indexer.Row{indexer.RowOf("id", "7", "title", `"Seven"`)}, nil
		}
	}
	return nil, nil
}
func (s oneRow) Each(ctx context.Context, table string, cols []string, where string, values []indexer.Value, f indexer.Filter, fn func(indexer.Row)) error {
	rows, _ := s.Rows(ctx, table, cols, where, values, f)
	for _, r := range rows {
		fn(r)
	}
	return nil
}
func (s oneRow) Scan(context.Context, string, []string, string, indexer.Value, int) ([]indexer.Row, error) {
	return nil, nil
}
func (s oneRow) Close() error { return nil }

// TestEntityShowOfAMissingRowSaysSoInsteadOfPrintingADelete prevents `wye entity show` from
// printing nothing (the denormalizer's answer for a missing root row is a delete) or a
// document for a row that is not there: the id given on the command line finds the integer
// key, and a missing one is "no row <id> in <table>".
func TestEntityShowOfAMissingRowSaysSoInsteadOfPrintingADelete(t *testing.T) {
	model, err := indexer.NewModel([]indexer.EntityDef{{Name: "program", Index: "programs", Table: "c.programs", Key: "id",
		Columns: []indexer.Column{{Name: "id", Field: "id"}, {Name: "title", Field: "title"}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := model.Entity("program")
	src := oneRow{table: "c.programs"}
	doc, err := showDocument(t.Context(), model, src, e, "7")
	if err != nil || string(doc) != `{"id":7,"title":"Seven","wye_version":0}` {
		t.Fatalf("show 7: %s, %v", doc, err)
	}
	if _, err := showDocument(t.Context(), model, src, e, "8"); err == nil || !strings.Contains(err.Error(), "no row 8 in c.programs") {
		t.Fatalf("show 8: %v, want no row 8 in c.programs", err)
	}
}

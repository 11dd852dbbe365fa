package sql

import "testing"

// TestCatalogFindsTablesAsTheServerNamesThem prevents a start check that refuses a table the
// server would read (another case under lower_case_table_names) or accepts one it would not
// (another case where names are case-sensitive).
func TestCatalogFindsTablesAsTheServerNamesThem(t *testing.T) {
	tables := map[string]catalogTable{"shop.programs": {typ: "BASE TABLE"}}
	for _, c := range []struct {
		fold  bool
		name  string
		found bool
	}{
		{false, "shop.programs", true},
		{false, "shop.Programs", false},
		{true, "shop.Programs", true},
		{true, "shop.program", false},
	} {
		if _, got := (catalog{tables: tables, fold: c.fold}).table(c.name); got != c.found {
			t.Errorf("lower_case_table_names set %v, %s: found %v, want %v", c.fold, c.name, got, c.found)
		}
	}
}

package indexer

import (
	"fmt"
	"strings"
	"testing"
)

// TestNeedsNameEveryTableAndColumnWithItsConfigPath prevents a start check that misses a
// column the indexer reads, or that reports one under a path the user cannot find in the
// configuration: every selected and link column is listed on the table that holds it, with
// the key that names it, and a node without columns is marked as reading every column.
func TestNeedsNameEveryTableAndColumnWithItsConfigPath(t *testing.T) {
	var got []string
	for _, n := range catalogModel(t).Needs() {
		var cols []string
		for _, c := range n.Columns {
			link := ""
			if c.Link {
				link = "*"
			}
			cols = append(cols, c.Field+"="+c.Name+link)
		}
		got = append(got, fmt.Sprintf("%s (%s) %s join=%v all=%v [%s]", n.Path, n.Name, n.Table, n.Join, n.AllColumns, strings.Join(cols, " ")))
	}
	sameStrings(t, "needs", got,
		"entities[0].root (program) cat.programs join=false all=false [entities[0].root.columns[0]=id entities[0].root.columns[1]=title "+
			"entities[0].root.columns[2]=channel_id entities[0].root.key=id* entities[0].relations[0].from=channel_id*]",
		"entities[0].relations[0] (program.channel) cat.channels join=false all=false [entities[0].relations[0].columns[0]=id "+
			"entities[0].relations[0].columns[1]=name entities[0].relations[0].key=id* entities[0].relations[0].relations[0].from=network_id*]",
		"entities[0].relations[0].relations[0] (program.channel.network) cat.networks join=false all=true [entities[0].relations[0].relations[0].key=id*]",
		"entities[0].relations[1] (program.episodes) cat.episodes join=false all=false [entities[0].relations[1].columns[0]=id "+
			"entities[0].relations[1].columns[1]=title entities[0].relations[1].key=id* entities[0].relations[1].parent_key=program_id*]",
		"entities[0].relations[1].relations[0] (program.episodes.credits) cat.credits join=false all=true "+
			"[entities[0].relations[1].relations[0].key=id* entities[0].relations[1].relations[0].parent_key=episode_id*]",
		"entities[0].relations[2] (program.tags) cat.tags join=false all=true [entities[0].relations[2].key=id*]",
		"entities[0].relations[2].through (program.tags.through) cat.program_tags join=true all=false "+
			"[entities[0].relations[2].through.parent_key=program_id* entities[0].relations[2].through.key=tag_id*]")
}

// TestNeedsCoverEveryLinkColumn prevents the start check from letting a join column through
// that the indexer matches on: every LinkColumn is a link column of a need on its table.
func TestNeedsCoverEveryLinkColumn(t *testing.T) {
	m := catalogModel(t)
	listed := map[string]bool{}
	for _, n := range m.Needs() {
		for _, c := range n.Columns {
			if c.Link {
				listed[n.Table+"."+c.Name] = true
			}
		}
	}
	for _, l := range m.LinkColumns() {
		if !listed[l.Table+"."+l.Column] {
			t.Errorf("link column %s (%s.%s) is in no need", l.Path, l.Table, l.Column)
		}
	}
}

// TestFaultReadsLikeAConfigurationError prevents a fault the user cannot map to the file.
func TestFaultReadsLikeAConfigurationError(t *testing.T) {
	f := Fault{Path: "entities[0].relations[1].columns[2]", Name: "program.channel", Value: "nmae", Msg: "no such column"}
	if got, want := f.Error(), `entities[0].relations[1].columns[2] (program.channel): "nmae": no such column`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestNeedsCheckEveryColumnOfACompositeKeyAnOrderAndAFilter prevents a start check that lets
// a relation's composite key, order_by column or where predicate through unchecked: each
// would otherwise fail only when a change arrives (SQL 1054), not at start.
func TestNeedsCheckEveryColumnOfACompositeKeyAnOrderAndAFilter(t *testing.T) {
	m, err := NewModel([]EntityDef{{Name: "employee", Index: "employees", Table: "hr.employees", Key: "emp_no",
		Columns: []Column{{Name: "emp_no", Field: "emp_no"}},
		Relations: []RelationDef{{Name: "titles", Table: "hr.titles", Key: []string{"emp_no", "title", "from_date"},
			ParentKey: "emp_no", Many: true, Where: "to_date = '9999-01-01'", OrderBy: []Order{{Column: "from_date", Desc: true}},
			Columns: []Column{{Name: "title", Field: "title"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	needs := m.Needs()
	if len(needs) != 2 {
		t.Fatalf("needs: %d, want 2", len(needs))
	}
	rel := needs[1]
	if rel.Where != "to_date = '9999-01-01'" {
		t.Errorf("where: %q", rel.Where)
	}
	var cols []string
	for _, c := range rel.Columns {
		cols = append(cols, c.Field+"="+c.Name)
	}
	sameStrings(t, "titles columns", cols,
		"entities[0].relations[0].columns[0]=title", "entities[0].relations[0].key[0]=emp_no",
		"entities[0].relations[0].key[1]=title", "entities[0].relations[0].key[2]=from_date",
		"entities[0].relations[0].order_by[0]=from_date", "entities[0].relations[0].parent_key=emp_no")
}

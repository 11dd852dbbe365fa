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

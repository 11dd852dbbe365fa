package main

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wyehq/wye/indexer"
)

// TestStartCheckPrintsEveryFaultAndOnlyFaultsStopTheStart prevents a start check that reports
// only the first fault, or that refuses to start on a warning.
func TestStartCheckPrintsEveryFaultAndOnlyFaultsStopTheStart(t *testing.T) {
	found := []indexer.Fault{
		{Path: "entities[0].root.columns[1]", Name: "program", Value: "titel", Msg: "no such column in db.programs"},
		{Path: "entities[0].relations[0].columns", Name: "program.channel", Msg: "not set", Warning: true},
		{Path: "entities[0].relations[1].table", Name: "program.studio", Value: "db.studios", Msg: "no such table"},
	}
	var out bytes.Buffer
	var warned []string
	err := faultsError(found, &out, func(f indexer.Fault) { warned = append(warned, f.Path) })
	want := `entities[0].root.columns[1] (program): "titel": no such column in db.programs` + "\n" +
		`entities[0].relations[1].table (program.studio): "db.studios": no such table` + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	if len(warned) != 1 || warned[0] != "entities[0].relations[0].columns" {
		t.Errorf("warnings %v, want the relation without columns", warned)
	}
	if !errors.As(err, new(usageError)) || err.Error() != "the source lacks what the entities read: 2 faults" {
		t.Errorf("err = %v, want a usage error counting 2 faults", err)
	}
	if err := faultsError(found[1:2], &out, func(indexer.Fault) {}); err != nil {
		t.Errorf("only a warning: err = %v, want nil", err)
	}
}

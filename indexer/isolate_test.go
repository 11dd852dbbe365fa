package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// twoEntities is the catalog's program and a network entity of its own: one table
// (cat.networks) is read by both.
func twoEntities(t *testing.T) *Model {
	t.Helper()
	m, err := NewModel([]EntityDef{catalogEntity(), {Name: "network", Index: "networks", VersionField: "wye_version",
		Table: "cat.networks", Key: "id", Columns: cols("id", "name")}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var errUnknownColumn = &SourceError{Permanent: true, Code: 1054, Err: errors.New("Error 1054 (42S22): Unknown column 'title' in 'field list'")}

// TestDroppedColumnParksOnlyTheChangesOfTheEntityThatShowsIt prevents a column dropped under
// the indexer from stalling every table: the changes of the entity that reads it are parked,
// with the reason naming the column, and another entity's changes in the same batch are written.
func TestDroppedColumnParksOnlyTheChangesOfTheEntityThatShowsIt(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.refuse = func(table string, _ []Value) error {
		if table == "cat.programs" {
			return errUnknownColumn
		}
		return nil
	}
	db.set("cat.networks", "id", r("id", 1, "name", "ARD1"))
	db.set("cat.networks", "id", r("id", 2, "name", "ZDF"))
	p := NewPipeline(twoEntities(t), db, w, Options{})
	prog := r("id", 100, "title", "News", "channel_id", 10)
	progChange := change("cat.programs", "update", 9, prog, r("id", 100, "title", "News!", "channel_id", 10))
	out, err := p.Process(context.Background(), msgs(batch(
		progChange,
		change("cat.networks", "insert", 10, Row{}, r("id", 2, "name", "ZDF")),
	), batch(change("cat.networks", "update", 11, r("id", 1, "name", "ARD"), r("id", 1, "name", "ARD1")))))
	if err != nil {
		t.Fatalf("Process: %v (the batch must not stall on one entity's refused read)", err)
	}
	sameStrings(t, "written", slices.Compact(slices.Sorted(slices.Values(w.written()))), "1@11", "2@10")
	if len(out.Parked) != 1 {
		t.Fatalf("parked %d messages, want 1: %+v", len(out.Parked), out.Parked)
	}
	pk := out.Parked[0]
	if pk.ErrType != "source" || !strings.Contains(pk.Reason, "Unknown column 'title'") || !strings.Contains(pk.Reason, "program") {
		t.Errorf("parked with type %q reason %q; want source, naming the entity and the column", pk.ErrType, pk.Reason)
	}
	// Parked as it came (replayable), each change once: the program change, and the network
	// changes too, which concern programs as well (programs show their network); written for
	// the network entity, they re-index the programs when replayed.
	var env struct{ Changes []json.RawMessage }
	if err := json.Unmarshal(pk.Body, &env); err != nil {
		t.Fatalf("parked body is not a message: %v: %s", err, pk.Body)
	}
	if len(env.Changes) != 3 || string(env.Changes[0]) != string(progChange) {
		t.Errorf("parked changes:\n%s\nwant the program change as it came, then the two network changes", pk.Body)
	}
}

// TestCollationErrorParksOnlyTheChangeWithTheBadValue prevents one key the server cannot
// compare (a latin1 key 'café' in an IN list) from parking or stalling the changes beside it.
func TestCollationErrorParksOnlyTheChangeWithTheBadValue(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	bad := Value(`"café"`)
	db.refuse = func(table string, values []Value) error {
		if slices.Contains(values, bad) {
			return &SourceError{Permanent: true, ValueDependent: true, Code: 1267, Err: errors.New("Error 1267: Illegal mix of collations")}
		}
		return nil
	}
	p := NewPipeline(catalogModel(t), db, w, Options{})
	var changes [][]byte
	for i := range 9 {
		changes = append(changes, change("cat.programs", "update", int64(20+i), r("id", 100+i%3), r("id", 100+i%3, "title", i)))
	}
	changes = slices.Insert(changes, 4, change("cat.programs", "update", 30, r("id", "café"), r("id", "café", "title", "x")))
	out, err := p.Process(context.Background(), msgs(batch(changes...)))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if len(out.Parked) != 1 || !strings.Contains(string(out.Parked[0].Body), "café") || strings.Count(string(out.Parked[0].Body), `"table"`) != 1 {
		t.Fatalf("parked %+v; want the one change with the bad key", out.Parked)
	}
	var ids []string
	for _, b := range w.batches {
		for _, d := range b {
			ids = append(ids, d.ID)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(slices.Compact(ids), []string{"100", "101", "102"}) {
		t.Errorf("written %v; want every program but the bad key", ids)
	}
}

// TestRefusedConnectionParksNothing prevents a source that refuses the indexer itself (access
// denied when the view opens) from parking every change: the whole batch is kept instead.
func TestRefusedConnectionParksNothing(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.fail = &SourceError{Permanent: true, Code: 1045, Err: errors.New("Access denied")}
	p := NewPipeline(catalogModel(t), db, w, Options{})
	out, err := p.Process(context.Background(), msgs(event("cat.programs", "update", 3, r("id", 100), r("id", 100, "title", "x"))))
	if err == nil || len(out.Parked) != 0 {
		t.Fatalf("err %v, parked %d; want the batch kept (an error) and nothing parked", err, len(out.Parked))
	}
}

// TestRefusedRetryIsParkedWithItsAttempts prevents a retry of an entity the source refuses
// from looping: it is parked with its attempts, a change of another entity is written.
func TestRefusedRetryIsParkedWithItsAttempts(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.refuse = func(table string, _ []Value) error {
		if table == "cat.programs" {
			return errUnknownColumn
		}
		return nil
	}
	db.set("cat.networks", "id", r("id", 2, "name", "ZDF"))
	p := NewPipeline(twoEntities(t), db, w, Options{})
	retry := Message{Body: EncodeRetry(Retry{Entity: "program", Key: "100", Version: 5}), Attempt: 3, Cluster: "es7"}
	out, err := p.Process(context.Background(), []Message{retry,
		{Body: batch(change("cat.networks", "insert", 10, Row{}, r("id", 2, "name", "ZDF")))}})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "written", slices.Compact(slices.Sorted(slices.Values(w.written()))), "2@10")
	// The network insert concerns programs too (parked for them, written for networks).
	if len(out.Parked) != 2 || out.Parked[1].Attempt != 3 || string(out.Parked[1].Body) != string(retry.Body) {
		t.Fatalf("parked %d: %+v; want the network insert, then the retry as it came with attempt 3", len(out.Parked), out.Parked)
	}
}

package indexer

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wyehq/wye/cdc"
)

// The tests of this file feed the pipeline updates as cdc encodes them by default: images that
// carry only the primary key, the key and link columns and the changed columns (docs/cdc.md,
// "Update images"). A column absent from both images reads as the same zero Value in both:
// unchanged, which it is.

// catalogTables are cdc's descriptions of the catalog's tables; programs has a column no
// document shows (views).
var catalogTables = map[string]*cdc.Table{
	"cat.programs": {Schema: "cat", Name: "programs", PK: []int{0}, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt},
		{Name: "title", Kind: cdc.KindText}, {Name: "channel_id", Kind: cdc.KindInt}, {Name: "views", Kind: cdc.KindInt}}},
	"cat.episodes": {Schema: "cat", Name: "episodes", PK: []int{0}, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt},
		{Name: "title", Kind: cdc.KindText}, {Name: "program_id", Kind: cdc.KindInt}}},
	"cat.credits": {Schema: "cat", Name: "credits", PK: []int{0}, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt},
		{Name: "episode_id", Kind: cdc.KindInt}, {Name: "person", Kind: cdc.KindText}}},
}

// trimmedUpdate is the message cdc publishes for one update of table from before to after
// (values in column order), with the model's key and link columns whole, as `wye cdc` sends
// them; it fails the test unless the images leave out the columns named absent.
func trimmedUpdate(t *testing.T, m *Model, table string, version int64, before, after []any, absent ...string) Message {
	t.Helper()
	whole := cdc.WholeColumns{}
	for _, l := range m.LinkColumns() {
		whole[l.Table] = append(whole[l.Table], l.Column)
	}
	bt := cdc.Batch{Whole: whole}
	c := cdc.Change{Table: catalogTables[table], Op: cdc.OpUpdate, Before: before, After: after,
		Version: cdc.Version(version), CommitTS: time.Unix(1700000000, 0), Pos: cdc.Position{File: "f.000001", Pos: 4}}
	if err := bt.Add(&c); err != nil {
		t.Fatal(err)
	}
	body := bt.Take().Body
	for _, col := range absent {
		if bytes.Contains(body, []byte(`"`+col+`":`)) {
			t.Fatalf("the update's images carry the unchanged column %s: %s", col, body)
		}
	}
	return Message{Body: body}
}

func processMessages(t *testing.T, m *Model, db *fakeDB, w *fakeWriter, ms ...Message) Outcome {
	t.Helper()
	out, err := NewPipeline(m, db, w, Options{}).Process(context.Background(), ms)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTrimmedUpdateOfAColumnNoDocumentShowsReindexesNothing prevents re-indexing on every
// update of an unshown column once its unchanged shown columns leave the images.
func TestTrimmedUpdateOfAColumnNoDocumentShowsReindexesNothing(t *testing.T) {
	m, db, w := catalogModel(t), catalogDB(), &fakeWriter{}
	msg := trimmedUpdate(t, m, "cat.programs", 9, []any{int64(100), "News", int64(10), int64(1)},
		[]any{int64(100), "News", int64(10), int64(2)}, "title")
	processMessages(t, m, db, w, msg)
	if len(w.written()) != 0 || len(db.queries) != 0 {
		t.Errorf("wrote %v after %v: the update changed only views, which no document shows", w.written(), db.queries)
	}
}

// TestTrimmedUpdateOfAShownColumnReindexesTheEntity prevents losing an update whose images
// carry only the changed column besides the keys: the root's shown title, a nested credit
// (a relation showing every column) of a program.
func TestTrimmedUpdateOfAShownColumnReindexesTheEntity(t *testing.T) {
	m, db, w := catalogModel(t), catalogDB(), &fakeWriter{}
	db.set("cat.programs", "id", r("id", 100, "title", "News!", "channel_id", 10))
	db.set("cat.credits", "id", r("id", 5, "episode_id", 1000, "person", "Bob"))
	processMessages(t, m, db, w,
		trimmedUpdate(t, m, "cat.programs", 9, []any{int64(100), "News", int64(10), int64(1)},
			[]any{int64(100), "News!", int64(10), int64(1)}, "views"),
		trimmedUpdate(t, m, "cat.credits", 10, []any{int64(5), int64(1000), "Ann"}, []any{int64(5), int64(1000), "Bob"}))
	sameStrings(t, "written", w.written(), "100@10")
}

// TestTrimmedChildMoveReindexesBothParents prevents a moved child from leaving its old parent's
// document stale (invariant 5) when its unchanged columns leave the images: the link column
// is whole, in both images.
func TestTrimmedChildMoveReindexesBothParents(t *testing.T) {
	m, db, w := catalogModel(t), catalogDB(), &fakeWriter{}
	db.set("cat.episodes", "id", r("id", 1002, "title", "e3", "program_id", 100))
	processMessages(t, m, db, w, trimmedUpdate(t, m, "cat.episodes", 42, []any{int64(1002), "e3", int64(101)},
		[]any{int64(1002), "e3", int64(100)}, "title"))
	sameStrings(t, "written", w.written(), "100@42", "101@42")
}

// TestTrimmedUpdateReadBehindIsStillRetried prevents the read-fresh check (invariant 4) from
// passing a read that still holds the before value of the changed column.
func TestTrimmedUpdateReadBehindIsStillRetried(t *testing.T) {
	m, db, w := catalogModel(t), catalogDB(), &fakeWriter{}
	out := processMessages(t, m, db, w, trimmedUpdate(t, m, "cat.programs", 9, []any{int64(100), "News", int64(10), int64(1)},
		[]any{int64(100), "News!", int64(10), int64(1)}, "views"))
	if len(w.written()) != 0 || out.Behind != 1 || len(out.Retries) != 1 {
		t.Errorf("wrote %v, behind %d, retries %d: want the read holding the old title retried", w.written(), out.Behind, len(out.Retries))
	}
}

// BenchmarkDecodeBatchOfItemUpdates measures decoding the message of 2048 updates of the e2e
// benchmark's flat table (10 columns, `UPDATE items SET qty = qty + 1, note = '...',
// updated_at = NOW(6)`), as cdc encodes them with full images and with the default images:
// go test -run - -bench DecodeBatch -benchmem ./indexer
func BenchmarkDecodeBatchOfItemUpdates(b *testing.B) {
	m := catalogModel(b)
	items := &cdc.Table{Schema: "cat", Name: "programs", PK: []int{0}, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt},
		{Name: "title", Kind: cdc.KindText}, {Name: "code", Kind: cdc.KindText}, {Name: "qty", Kind: cdc.KindInt},
		{Name: "price", Kind: cdc.KindDecimal}, {Name: "active", Kind: cdc.KindInt}, {Name: "mark", Kind: cdc.KindInt},
		{Name: "note", Kind: cdc.KindText}, {Name: "created_at", Kind: cdc.KindDateTime},
		{Name: "updated_at", Kind: cdc.KindDateTime, Frac: 6}}}
	created := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	for _, full := range []bool{true, false} {
		bt := cdc.Batch{Whole: cdc.WholeColumns{"cat.programs": {"id", "channel_id"}}, FullImages: full}
		for i := range 2048 {
			row := func(qty int, note string, updated time.Time) []any {
				return []any{int32(i), fmt.Sprintf("item number %d of the flat bench", i), fmt.Sprintf("C%06d", i), int32(qty),
					fmt.Sprintf("%d.%02d", i%1000, i%100), int8(i % 2), int64(0), note, created, updated}
			}
			at := created.Add(time.Duration(i) * 37 * time.Microsecond)
			c := cdc.Change{Table: items, Op: cdc.OpUpdate, Before: row(i%50, fmt.Sprintf("changed %d", i*7919), at),
				After: row(i%50+1, fmt.Sprintf("changed %d", i*104729), at.Add(time.Second)), Version: cdc.Version(1000 + i),
				CommitTS: time.Unix(1795000000, 0), Pos: cdc.Position{File: "f.000001", Pos: uint32(4 + i)}, Epoch: 1}
			if err := bt.Add(&c); err != nil {
				b.Fatal(err)
			}
		}
		body := bt.Take().Body
		name := "images=changed"
		if full {
			name = "images=full"
		}
		b.Run(name, func(b *testing.B) {
			benchDecode(b, m, body, 2048)
			b.ReportMetric(float64(len(body))/2048, "B/change")
		})
	}
}

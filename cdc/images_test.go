package cdc

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// itemsTable is shaped like the e2e benchmark's table, with a link column (parent_id).
var itemsTable = &Table{Schema: "d", Name: "items", PK: []int{0}, Columns: []Column{
	{Name: "id", Kind: KindInt}, {Name: "parent_id", Kind: KindInt}, {Name: "title", Kind: KindText},
	{Name: "price", Kind: KindDecimal}, {Name: "raw", Kind: KindBinary}, {Name: "note", Kind: KindText},
	{Name: "created_at", Kind: KindDateTime}, {Name: "updated_at", Kind: KindDateTime, Frac: 6},
	{Name: "ratio", Kind: KindFloat64},
}}

func itemRow() []any {
	at := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	return []any{int32(1), int64(10), "a title", "12.50", []byte{1, 2, 3}, "a note", at, at.Add(time.Microsecond), 0.5}
}

// updateImages encodes an update of itemsTable from before to after and returns its images.
func updateImages(t *testing.T, bt Batch, before, after []any) (b, a map[string]json.RawMessage) {
	t.Helper()
	bt.Whole = WholeColumns{"d.items": {"parent_id"}}
	c := Change{Table: itemsTable, Op: OpUpdate, Before: before, After: after, Pos: Position{File: "f.000001", Pos: 4}}
	if err := bt.Add(&c); err != nil {
		t.Fatal(err)
	}
	var m struct {
		Changes []struct{ Before, After map[string]json.RawMessage }
	}
	if err := json.Unmarshal(bt.Take().Body, &m); err != nil {
		t.Fatal(err)
	}
	b, a = m.Changes[0].Before, m.Changes[0].After
	if kb, ka := slices.Sorted(maps.Keys(b)), slices.Sorted(maps.Keys(a)); !slices.Equal(kb, ka) {
		t.Fatalf("images carry different columns: before %v, after %v", kb, ka)
	}
	return b, a
}

func columns(img map[string]json.RawMessage) string {
	return strings.Join(slices.Sorted(maps.Keys(img)), ",")
}

// TestUpdateImagesCarryOnlyKeysWholeColumnsAndChangedColumns prevents sending every column of
// every update (issue #12): an update that changed one column carries the primary key, the
// whole (link) columns and that column, in both images, with its two values.
func TestUpdateImagesCarryOnlyKeysWholeColumnsAndChangedColumns(t *testing.T) {
	after := itemRow()
	after[5] = "another note"
	b, a := updateImages(t, Batch{}, itemRow(), after)
	if got := columns(b); got != "id,note,parent_id" {
		t.Errorf("images carry %s, want id,note,parent_id", got)
	}
	if string(b["note"]) != `"a note"` || string(a["note"]) != `"another note"` {
		t.Errorf("note: before %s, after %s", b["note"], a["note"])
	}
}

// TestUnchangedWholeColumnIsStillInBothImages prevents an update the indexer cannot place: a
// key or link column is read from the images (which parent a child belongs to) even when the
// update did not change it.
func TestUnchangedWholeColumnIsStillInBothImages(t *testing.T) {
	after := itemRow()
	after[2] = "another title"
	b, a := updateImages(t, Batch{}, itemRow(), after)
	for _, img := range []map[string]json.RawMessage{b, a} {
		if string(img["parent_id"]) != "10" || string(img["id"]) != "1" {
			t.Errorf("image %v lacks the unchanged key or link column", img)
		}
	}
}

// TestColumnSetToOrFromNullCountsAsChanged prevents losing a change to or from NULL.
func TestColumnSetToOrFromNullCountsAsChanged(t *testing.T) {
	toNull := itemRow()
	toNull[5] = nil
	b, a := updateImages(t, Batch{}, itemRow(), toNull)
	if string(b["note"]) != `"a note"` || string(a["note"]) != "null" {
		t.Errorf("set to NULL: before %s, after %s", b["note"], a["note"])
	}
	b, a = updateImages(t, Batch{}, toNull, itemRow())
	if string(b["note"]) != "null" || string(a["note"]) != `"a note"` {
		t.Errorf("set from NULL: before %s, after %s", b["note"], a["note"])
	}
	b, _ = updateImages(t, Batch{}, toNull, slices.Clone(toNull))
	if _, ok := b["note"]; ok {
		t.Errorf("NULL left NULL is in the images: %v", b)
	}
}

// TestEqualBytesTimesAndDecimalsAreLeftOut prevents comparing values by identity: equal
// []byte in two slices, the same instant, the same DECIMAL text are unchanged. A value whose
// encoding could differ (-0 and 0, one instant in two locations) is sent.
func TestEqualBytesTimesAndDecimalsAreLeftOut(t *testing.T) {
	before, after := itemRow(), itemRow() // raw: two slices of equal bytes; price: "12.50" twice
	after[5] = "another note"
	after[6] = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC) // another time.Time, the same instant
	b, _ := updateImages(t, Batch{}, before, after)
	if got := columns(b); got != "id,note,parent_id" {
		t.Errorf("images carry %s, want id,note,parent_id", got)
	}
	before[8], after[8] = negZero(), 0.0
	after[7] = after[7].(time.Time).In(time.FixedZone("x", 3600))
	b, a := updateImages(t, Batch{}, before, after)
	if got := columns(b); got != "id,note,parent_id,ratio,updated_at" {
		t.Errorf("images carry %s, want id,note,parent_id,ratio,updated_at", got)
	}
	if string(b["updated_at"]) != string(a["updated_at"]) {
		t.Errorf("one instant encoded as %s and %s", b["updated_at"], a["updated_at"])
	}
}

func negZero() float64 { z := 0.0; return -z }

// TestUnknownValueTypeIsSentNotCompared prevents a panic (== on an uncomparable value) and a
// change lost to a comparison the encoder does not know: such a column is sent.
func TestUnknownValueTypeIsSentNotCompared(t *testing.T) {
	type opaque struct{ n int }
	before, after := itemRow(), itemRow()
	before[2], after[2] = []string{"x"}, []string{"x"} // uncomparable
	before[5], after[5] = opaque{1}, opaque{1}
	b, _ := updateImages(t, Batch{}, before, after)
	if got := columns(b); got != "id,note,parent_id,title" {
		t.Errorf("images carry %s, want id,note,parent_id,title", got)
	}
}

// TestFullUpdateImagesKeepEveryColumn prevents cdc.update_images: full from trimming: a
// consumer other than wye's indexer gets every column of both images.
func TestFullUpdateImagesKeepEveryColumn(t *testing.T) {
	after := itemRow()
	after[5] = "another note"
	b, _ := updateImages(t, Batch{FullImages: true}, itemRow(), after)
	if got := columns(b); got != "created_at,id,note,parent_id,price,ratio,raw,title,updated_at" {
		t.Errorf("full images carry %s", got)
	}
	r := NewReader(Options{UpdateImages: UpdateImagesFull}, nil, nil, nil, nil)
	if !newBatcher(r, nil, nil, Checkpoint{}).batch.FullImages {
		t.Error("Options.UpdateImages full did not reach the batch")
	}
	r = NewReader(Options{}, nil, nil, nil, nil)
	if r.opts.UpdateImages != DefaultUpdateImages || newBatcher(r, nil, nil, Checkpoint{}).batch.FullImages {
		t.Error("the default sends full update images")
	}
}

// TestInsertAndDeleteKeepEveryColumn prevents trimming a row image that is the whole row.
func TestInsertAndDeleteKeepEveryColumn(t *testing.T) {
	for _, c := range []Change{{Table: itemsTable, Op: OpInsert, After: itemRow()}, {Table: itemsTable, Op: OpDelete, Before: itemRow()}} {
		raw, err := encodeOne(&c)
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Before, After map[string]json.RawMessage }
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if n := len(m.Before) + len(m.After); n != len(itemsTable.Columns) {
			t.Errorf("%s carries %d columns, want %d", c.Op, n, len(itemsTable.Columns))
		}
	}
}

package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// images are the before and after images of every change of a decoded message.
func images(t *testing.T, body []byte) []Row {
	t.Helper()
	w, ok := fastWire(body, false)
	if !ok {
		t.Fatalf("the fast path gave up on %s", body)
	}
	var out []Row
	for i := range w.Changes {
		b, a := w.Changes[i].images()
		out = append(out, b, a)
	}
	return out
}

// TestAnImageWithOtherColumnsThanThePreviousOneKeepsItsOwn prevents the reuse of the previous
// image's columns from giving an image names it does not have, or in another order than its
// values: every image reads exactly its own columns.
func TestAnImageWithOtherColumnsThanThePreviousOneKeepsItsOwn(t *testing.T) {
	body := []byte(`{"schema":2,"changes":[` +
		`{"table":"cat.programs","op":"update","version":1,"before":{"id":1,"title":"a","channel_id":10},"after":{"id":1,"title":"b","channel_id":10}},` +
		`{"table":"cat.programs","op":"update","version":2,"before":{"id":2,"channel_id":11,"title":"c"},"after":{"id":2,"title":"d"}},` +
		`{"table":"cat.programs","op":"update","version":3,"before":{"id":3,"title":"e","channel_id":12,"extra":null},"after":{"id":3,"title":"f","channel_id":12}}]}`)
	want := []map[string]Value{
		{"id": "1", "title": `"a"`, "channel_id": "10"}, {"id": "1", "title": `"b"`, "channel_id": "10"},
		{"id": "2", "channel_id": "11", "title": `"c"`}, {"id": "2", "title": `"d"`},
		{"id": "3", "title": `"e"`, "channel_id": "12", "extra": "null"}, {"id": "3", "title": `"f"`, "channel_id": "12"},
	}
	got := images(t, body)
	for i, img := range got {
		if img.Len() != len(want[i]) {
			t.Errorf("image %d: %s, want %d columns", i, img, len(want[i]))
		}
		for col, v := range want[i] {
			if g, ok := img.Lookup(col); !ok || g != v {
				t.Errorf("image %d: %s = %q (held: %v), want %q", i, col, g, ok, v)
			}
		}
		for _, col := range []string{"id", "title", "channel_id", "extra"} {
			if _, ok := want[i][col]; !ok && img.Get(col) != "" {
				t.Errorf("image %d holds %s it does not have: %s", i, col, img)
			}
		}
	}
	if got[0].Columns() != got[1].Columns() {
		t.Errorf("the images of one change with the same columns do not share them")
	}
}

// TestAnImageThatRepeatsAColumnReadsItsLastValue prevents the fast path from reading a
// repeated column otherwise than encoding/json does (its last value, once).
func TestAnImageThatRepeatsAColumnReadsItsLastValue(t *testing.T) {
	body := []byte(`{"schema":2,"changes":[{"table":"cat.programs","op":"insert","version":1,"after":{"id":1,"title":"a","title":"b"}}]}`)
	if _, ok := fastWire(body, false); ok {
		t.Errorf("the fast path read an image that repeats a column")
	}
	d, err := catalogModel(t).decode(body)
	if err != nil || len(d.changes) != 1 {
		t.Fatalf("decode: %v %v", d, err)
	}
	if a := d.changes[0].After; a.Len() != 2 || a.Get("title") != `"b"` {
		t.Errorf("after %s, want title \"b\" once", a)
	}
}

// TestAnEmptyImageIsNotAMissingOne prevents an image of no column from reading as no image:
// an insert with "after":{} decodes, one with "after":null is poison.
func TestAnEmptyImageIsNotAMissingOne(t *testing.T) {
	m := catalogModel(t)
	d, err := m.decode([]byte(`{"schema":2,"changes":[{"table":"cat.programs","op":"insert","version":1,"after":{}}]}`))
	if err != nil || len(d.changes) != 1 || len(d.bad) != 0 || d.changes[0].After.IsNil() || d.changes[0].After.Len() != 0 {
		t.Fatalf("insert of an empty image: %+v %v", d, err)
	}
	d, err = m.decode([]byte(`{"schema":2,"changes":[{"table":"cat.programs","op":"insert","version":1,"after":null}]}`))
	if err == nil && len(d.bad) == 0 {
		t.Errorf("an insert without its image was read: %+v", d)
	}
}

// TestImagesOfTheSameValuesInAnotherColumnOrderAreEqual prevents the column order of an image
// from counting as a change: equal rows hold the same columns and values, nil only equals nil.
func TestImagesOfTheSameValuesInAnotherColumnOrderAreEqual(t *testing.T) {
	a, b := RowOf("id", "1", "title", `"x"`), RowOf("title", `"x"`, "id", "1")
	if !a.Equal(b) || !b.Equal(a) {
		t.Errorf("%s and %s differ", a, b)
	}
	for _, c := range []Row{RowOf("id", "1"), RowOf("id", "1", "title", `"y"`), RowOf("id", "1", "name", `"x"`), RowOf(), {}} {
		if a.Equal(c) || c.Equal(a) {
			t.Errorf("%s equals %s", a, c)
		}
	}
	if (Row{}).Equal(RowOf()) || !(Row{}).Equal(Row{}) {
		t.Errorf("the nil row and a row of no column compare wrong")
	}
}

// wideRow is row id of a table of n columns c0..c(n-1), c0 the key, in the given column order.
func wideRow(id, n int, reversed bool) Row {
	var kv []string
	for i := range n {
		c := i
		if reversed {
			c = n - 1 - i
		}
		v := fmt.Sprintf(`"v%d.%d"`, id, c)
		if c == 0 {
			v = fmt.Sprint(id)
		}
		kv = append(kv, fmt.Sprintf("c%d", c), v)
	}
	return RowOf(kv...)
}

// TestAWideRowFindsEveryColumn prevents the lookups of rows wider than a scan reads (an index
// by name) from missing a column or finding one the row does not hold.
func TestAWideRowFindsEveryColumn(t *testing.T) {
	row := wideRow(7, 3*linearColumns, false)
	for i := range 3 * linearColumns {
		want := Value(fmt.Sprintf(`"v7.%d"`, i))
		if i == 0 {
			want = "7"
		}
		if v, ok := row.Lookup(fmt.Sprintf("c%d", i)); !ok || v != want {
			t.Errorf("c%d = %q (held: %v), want %q", i, v, ok, want)
		}
	}
	if v, ok := row.Lookup("c999"); ok || v != "" {
		t.Errorf("a column the row does not hold reads %q", v)
	}
}

// TestRowsOfTheSameColumnsInAnotherOrderEncodeTheirOwnValues prevents a layout resolved for
// rows of one column order from encoding rows of another with the first one's positions: every
// document holds its own row's values, narrow or wide.
func TestRowsOfTheSameColumnsInAnotherOrderEncodeTheirOwnValues(t *testing.T) {
	for _, n := range []int{3, 3 * linearColumns} {
		t.Run(fmt.Sprint(n, " columns"), func(t *testing.T) {
			m, err := NewModel([]EntityDef{{Name: "w", Index: "ws", VersionField: "wye_version", Table: "db.wide", Key: "c0"}})
			if err != nil {
				t.Fatal(err)
			}
			db := &fakeDB{tables: map[string][]Row{"db.wide": {wideRow(1, n, false), wideRow(2, n, true), wideRow(3, n-1, false)}}}
			for _, ids := range [][]Value{{"1", "2", "3"}, {"2"}, {"3", "1"}} {
				refs := map[Ref]int64{}
				for _, id := range ids {
					refs[Ref{Entity: "w", Key: id}] = 5
				}
				docs, err := m.Denormalize(context.Background(), db, refs)
				if err != nil || len(docs) != len(ids) {
					t.Fatalf("docs %d: %v", len(docs), err)
				}
				for _, d := range docs {
					var id int
					fmt.Sscan(d.ID, &id)
					row := wideRow(id, n, false)
					if id == 3 {
						row = wideRow(id, n-1, false)
					}
					want := map[string]any{"wye_version": 5}
					for c, v := range row.All() {
						want[c] = v
					}
					b, _ := json.Marshal(want)
					if string(d.Source) != string(b) {
						t.Errorf("document %s:\n got %s\nwant %s", d.ID, d.Source, b)
					}
				}
			}
		})
	}
}

// TestRowOfRepeatedNamesKeepsTheLastValue prevents a fake's row from holding a column twice.
func TestRowOfRepeatedNamesKeepsTheLastValue(t *testing.T) {
	row := RowOf("id", "1", "title", `"a"`, "title", `"b"`)
	if row.Len() != 2 || row.Get("title") != `"b"` || !strings.Contains(row.String(), `"title":"b"`) {
		t.Errorf("row %s", row)
	}
}

// TestAColumnInOneImageOnlyIsAChangeAndTheColumnOrderIsNone prevents the comparison of an
// update's images from depending on their column lists: a column the documents show that only
// one image holds is a change; the same values in another column order are none.
func TestAColumnInOneImageOnlyIsAChangeAndTheColumnOrderIsNone(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	process(t, db, w, event("cat.programs", "update", 80, r("id", 100, "channel_id", 10), r("id", 100, "title", "News", "channel_id", 10)))
	sameStrings(t, "written", w.written(), "100@80")
	db, w = catalogDB(), &fakeWriter{}
	process(t, db, w, []byte(`{"schema":2,"changes":[{"table":"cat.programs","op":"update","version":81,"commit_ts":"2026-01-02T03:04:05Z",`+
		`"before":{"id":100,"title":"News","channel_id":10},"after":{"channel_id":10,"title":"News","id":100}}]}`))
	sameStrings(t, "written", w.written())
}

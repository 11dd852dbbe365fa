package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
)

// refMap is the document as the indexer built it before it encoded objects itself: a map
// per object, columns then relations then the version, for json.Marshal.
func refMap(n *node, o *obj, version int64) map[string]any {
	out := map[string]any{}
	if n.cols == nil {
		for k, v := range o.row.All() {
			out[k] = v
		}
	}
	for _, c := range n.cols {
		if v, ok := o.row.Lookup(c.Name); ok {
			out[c.Field] = v
		} else {
			out[c.Field] = NullValue
		}
	}
	for i, ch := range n.children {
		switch rel := o.rels[i].(type) {
		case *obj:
			out[ch.name] = refMap(ch, rel, 0)
		case []*obj:
			list := make([]any, len(rel))
			for j, c := range rel {
				list[j] = refMap(ch, c, 0)
			}
			out[ch.name] = list
		default:
			out[ch.name] = nil
		}
	}
	if n.parent == nil {
		out[n.entity.VersionField] = version
	}
	return out
}

// TestDocumentBytesAreWhatEncodingJSONWrites: the hand-written encoder must not change one
// byte of a document (clusters compare sources, and a changed byte is a changed document).
func TestDocumentBytesAreWhatEncodingJSONWrites(t *testing.T) {
	clash := catalogEntity()
	clash.VersionField = "title"                                                              // the version replaces a column
	clash.Columns = append(cols("id", "title"), Column{Name: "channel_id", Field: "channel"}) // the relation replaces a column
	for name, e := range map[string]EntityDef{"catalog": catalogEntity(), "name clashes": clash} {
		t.Run(name, func(t *testing.T) {
			m, err := NewModel([]EntityDef{e})
			if err != nil {
				t.Fatal(err)
			}
			db := catalogDB()
			db.set("cat.programs", "id", r("id", 103, "title", "<b>\"A&B\"</b>\n\tü \u2028 \x01", "channel_id", nil))
			db.set("cat.programs", "id", r("id", 104, "title", "x", "channel_id", 99)) // channel missing
			db.set("cat.channels", "id", r("id", 12, "name", "Solo", "network_id", nil, "meta", map[string]any{"k": []any{1, "<", nil}}))
			db.set("cat.episodes", "id", r("id", 1003, "title", nil, "program_id", 103))
			// A JSON column as SQL reads it: compact, not HTML-escaped.
			db.set("cat.credits", "id", RowOf("id", "6", "episode_id", "1003", "person", `{"a":"<&> "}`, "note", `"x<y"`))
			root := m.entities[0].root
			rows, err := db.Rows(context.Background(), root.table, root.fetch(), root.col(), []Value{"100", "101", "102", "103", "104"}, Filter{})
			if err != nil || len(rows) != 5 {
				t.Fatalf("rows: %v %v", rows, err)
			}
			objs := newObjs(root, rows)
			if err := fill(context.Background(), count(db), root, objs); err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				want, err := json.Marshal(refMap(root, o, 1<<62+5))
				if err != nil {
					t.Fatal(err)
				}
				got := root.encode([]byte("prefix"), o, 1<<62+5)
				if !bytes.Equal(got[len("prefix"):], want) {
					t.Errorf("document %s:\n got %s\nwant %s", o.row.Get("id"), got[len("prefix"):], want)
				}
				if !json.Valid(got[len("prefix"):]) {
					t.Errorf("document %s is not JSON", o.row.Get("id"))
				}
			}
		})
	}
}

// TestRangeReadsEveryRootRowOnceInKeyOrderWithTheSameBytes prevents a resync from building a
// document other than the stream's: pages of DenormalizeRange cover every root row once, in
// key order, with the bytes Denormalize gives the same row, and never a delete.
func TestRangeReadsEveryRootRowOnceInKeyOrderWithTheSameBytes(t *testing.T) {
	m, db := catalogModel(t), catalogDB()
	ctx := context.Background()
	var got []Doc
	after := NullValue
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("range never ends")
		}
		page, err := m.DenormalizeRange(ctx, db, "program", after, 2, 7)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Key
	}
	var ids []string
	refs := map[Ref]int64{}
	for _, d := range got {
		ids = append(ids, d.ID)
		refs[Ref{Entity: "program", Key: d.Key}] = 7
		if d.Source == nil || d.Version != 7 {
			t.Errorf("doc %s: version %d, source %q", d.ID, d.Version, d.Source)
		}
	}
	if want := []string{"100", "101", "102"}; !slices.Equal(ids, want) {
		t.Fatalf("range ids %v, want %v", ids, want)
	}
	byKey, err := m.Denormalize(ctx, db, refs)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range byKey {
		if !bytes.Equal(d.Source, got[i].Source) {
			t.Errorf("doc %s: range built %s, by key %s", d.ID, got[i].Source, d.Source)
		}
	}
	if _, err := m.DenormalizeRange(ctx, db, "nope", NullValue, 2, 7); err == nil {
		t.Error("an unknown entity was accepted")
	}
}

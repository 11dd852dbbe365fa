package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/wyehq/wye/config"
)

// refMap is the document as the indexer built it before it encoded objects itself: a map
// per object, columns then relations then the version, for json.Marshal.
func refMap(n *node, o *obj, version int64) map[string]any {
	out := map[string]any{}
	if n.cols == nil {
		for k, v := range o.row {
			out[k] = v
		}
	}
	for _, c := range n.cols {
		if v, ok := o.row[c.name]; ok {
			out[c.field] = v
		} else {
			out[c.field] = NullValue
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
	clash.VersionField = "title"                                          // the version replaces a column
	clash.Root.Columns = []string{"id", "title", "channel_id as channel"} // the relation replaces a column
	for name, e := range map[string]config.Entity{"catalog": catalogEntity(), "name clashes": clash} {
		t.Run(name, func(t *testing.T) {
			m, err := NewModel([]config.Entity{e})
			if err != nil {
				t.Fatal(err)
			}
			db := catalogDB()
			db.set("cat.programs", "id", r("id", 103, "title", "<b>\"A&B\"</b>\n\tü \u2028 \x01", "channel_id", nil))
			db.set("cat.programs", "id", r("id", 104, "title", "x", "channel_id", 99)) // channel missing
			db.set("cat.channels", "id", r("id", 12, "name", "Solo", "network_id", nil, "meta", map[string]any{"k": []any{1, "<", nil}}))
			db.set("cat.episodes", "id", r("id", 1003, "title", nil, "program_id", 103))
			// A JSON column as SQL reads it: compact, not HTML-escaped.
			db.set("cat.credits", "id", Row{"id": "6", "episode_id": "1003", "person": `{"a":"<&> "}`, "note": `"x<y"`})
			root := m.entities[0].root
			rows, err := db.Rows(context.Background(), root.table, root.fetch(), root.key, []Value{"100", "101", "102", "103", "104"})
			if err != nil || len(rows) != 5 {
				t.Fatalf("rows: %v %v", rows, err)
			}
			var objs []*obj
			for _, row := range rows {
				objs = append(objs, newObj(root, row))
			}
			if err := fill(context.Background(), &counter{r: db}, root, objs); err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				want, err := json.Marshal(refMap(root, o, 1<<62+5))
				if err != nil {
					t.Fatal(err)
				}
				got := root.encode([]byte("prefix"), o, 1<<62+5)
				if !bytes.Equal(got[len("prefix"):], want) {
					t.Errorf("document %s:\n got %s\nwant %s", o.row["id"], got[len("prefix"):], want)
				}
				if !json.Valid(got[len("prefix"):]) {
					t.Errorf("document %s is not JSON", o.row["id"])
				}
			}
		})
	}
}

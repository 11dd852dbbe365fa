package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// Doc is one write: a document to index, or a delete when Source is nil. The same Doc (and
// the same bytes) goes to every cluster.
type Doc struct {
	Entity  string
	Index   string // alias or index from the entity; see Writer for per-cluster targets
	ID      string
	Key     Value // root key, for retry messages and the repair ledger
	Version int64
	Source  []byte // nil: delete
}

// obj is one row being turned into a JSON object.
type obj struct {
	row Row
	out map[string]any
}

// denormalize reads every entity of refs (one query per node of the entity tree, per
// maxIn ids) and returns one Doc per ref, in a stable order: a document for a root row that
// exists, a versioned delete for one that does not.
func (m *Model) denormalize(ctx context.Context, q *counter, refs map[Ref]int64) ([]Doc, error) {
	var docs []Doc
	for _, e := range m.entities {
		ids := versions{}
		for ref, v := range refs {
			if ref.Entity == e.Name {
				ids[ref.Key] = v
			}
		}
		if len(ids) == 0 {
			continue
		}
		rows, err := q.rows(ctx, e.root.table, e.root.fetch(), e.root.key, ids.keys())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name, err)
		}
		found := map[Value]*obj{}
		var objs []*obj
		for _, r := range rows {
			o := &obj{row: r, out: e.root.project(r)}
			found[r[e.root.key]] = o
			objs = append(objs, o)
		}
		if err := fill(ctx, q, e.root, objs); err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name, err)
		}
		for _, key := range ids.keys() {
			d := Doc{Entity: e.Name, Index: e.Index, ID: key.ID(), Key: key, Version: ids[key]}
			if o := found[key]; o != nil {
				o.out[e.VersionField] = d.Version
				if d.Source, err = json.Marshal(o.out); err != nil {
					return nil, fmt.Errorf("encode %s %s: %w", e.Name, d.ID, err)
				}
			}
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// project keeps the selected columns of r under their field names (all when none are).
func (n *node) project(r Row) map[string]any {
	out := map[string]any{}
	if n.cols == nil {
		for k, v := range r {
			out[k] = v
		}
		return out
	}
	for _, c := range n.cols {
		if v, ok := r[c.name]; ok {
			out[c.field] = v
		} else {
			out[c.field] = NullValue
		}
	}
	return out
}

// fill reads the relations of parents, one query per relation (two through a join table),
// and recurses into nested relations with all children of the level at once.
func fill(ctx context.Context, q *counter, parent *node, parents []*obj) error {
	if len(parents) == 0 {
		return nil
	}
	for _, n := range parent.children {
		var children []*obj
		switch n.kind() {
		case linkFrom:
			want := versions{}
			for _, p := range parents {
				want.add(p.row[n.from], 1)
			}
			byKey := map[Value]*obj{}
			if len(want) > 0 {
				rows, err := q.rows(ctx, n.table, n.fetch(), n.key, want.keys())
				if err != nil {
					return fmt.Errorf("read %s: %w", n.name, err)
				}
				for _, r := range rows {
					o := &obj{row: r, out: n.project(r)}
					byKey[r[n.key]] = o
					children = append(children, o)
				}
			}
			for _, p := range parents {
				if o := byKey[p.row[n.from]]; o != nil {
					p.out[n.name] = o.out
				} else {
					p.out[n.name] = nil
				}
			}
		case linkParentKey, linkThrough:
			want := versions{}
			for _, p := range parents {
				want.add(p.row[parent.key], 1)
			}
			// groups: parent key -> child keys (through) or child rows (parent_key)
			groups := map[Value][]*obj{}
			if len(want) > 0 {
				var err error
				children, err = readChildren(ctx, q, n, want.keys(), groups)
				if err != nil {
					return fmt.Errorf("read %s: %w", n.name, err)
				}
			}
			for _, p := range parents {
				g := groups[p.row[parent.key]]
				slices.SortStableFunc(g, func(a, b *obj) int { return compareValues(a.row[n.key], b.row[n.key]) })
				switch {
				case n.many:
					list := make([]any, len(g))
					for i, o := range g {
						list[i] = o.out
					}
					p.out[n.name] = list
				case len(g) > 0:
					p.out[n.name] = g[0].out
				default:
					p.out[n.name] = nil
				}
			}
		}
		if err := fill(ctx, q, n, children); err != nil {
			return err
		}
	}
	return nil
}

// readChildren reads the rows of a one-to-many or many-to-many node for the parent keys and
// groups them by parent key. A row shared by several parents (many-to-many) is one obj, so
// its nested relations are read once.
func readChildren(ctx context.Context, q *counter, n *node, parentKeys []Value, groups map[Value][]*obj) ([]*obj, error) {
	var children []*obj
	if n.kind() == linkParentKey {
		rows, err := q.rows(ctx, n.table, n.fetch(), n.parentKey, parentKeys)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			o := &obj{row: r, out: n.project(r)}
			groups[r[n.parentKey]] = append(groups[r[n.parentKey]], o)
			children = append(children, o)
		}
		return children, nil
	}
	links, err := q.rows(ctx, n.through.Table, []string{n.through.ParentKey, n.through.Key}, n.through.ParentKey, parentKeys)
	if err != nil {
		return nil, err
	}
	want := versions{}
	for _, l := range links {
		want.add(l[n.through.Key], 1)
	}
	if len(want) == 0 {
		return nil, nil
	}
	rows, err := q.rows(ctx, n.table, n.fetch(), n.key, want.keys())
	if err != nil {
		return nil, err
	}
	byKey := map[Value]*obj{}
	for _, r := range rows {
		o := &obj{row: r, out: n.project(r)}
		byKey[r[n.key]] = o
		children = append(children, o)
	}
	for _, l := range links {
		if o := byKey[l[n.through.Key]]; o != nil { // a join row may point at a missing row
			groups[l[n.through.ParentKey]] = append(groups[l[n.through.ParentKey]], o)
		}
	}
	return children, nil
}

package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Exists returns which of ids (document ids of entity) have a root row in the view: one query
// per maxIn ids on the root key. A resync deletes the documents the view does not hold
// (orphans); a diff against MySQL reports them.
func (m *Model) Exists(ctx context.Context, v View, entity string, ids []string) (map[string]bool, error) {
	e := m.entity(entity)
	if e == nil {
		return nil, fmt.Errorf("exists %s: no such entity", entity)
	}
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]Value, len(ids))
	for i, id := range ids {
		keys[i] = IDValue(id)
	}
	q := count(v)
	err := q.Each(ctx, e.root.table, []string{e.root.col()}, e.root.col(), keys, Filter{}, func(r Row) {
		out[r.Get(e.root.col()).ID()] = true
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.Name, err)
	}
	return out, nil
}

// IDValue is the key value of a document id, as a read binds it (the inverse of Value.ID up to
// the column's type, which the SQL adapter applies): a binary key's id is its value
// ({"$base64":"..."}), any other id is the string it is; the adapter binds "42" to an
// integer column as 42.
func IDValue(id string) Value {
	if strings.HasPrefix(id, base64Head) && strings.HasSuffix(id, base64Tail) {
		return Value(id)
	}
	b, _ := json.Marshal(id)
	return Value(b)
}

// Table is the entity's root table ("db.table"): a row of it is a document.
func (e *Entity) Table() string { return e.root.table }

// Tables lists every table the entity reads, join tables included, sorted.
func (e *Entity) Tables() []string {
	var out []string
	var walk func(n *node)
	walk = func(n *node) {
		out = append(out, n.table)
		if n.through.Table != "" {
			out = append(out, n.through.Table)
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(e.root)
	slices.Sort(out)
	return slices.Compact(out)
}

// Entity returns the entity named name, nil when there is none.
func (m *Model) Entity(name string) *Entity { return m.entity(name) }

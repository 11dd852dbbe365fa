package indexer

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// Ref is one entity document: the entity and its root key.
type Ref struct {
	Entity string
	Key    Value
}

// versions maps key values to the highest version of a change that touched them.
type versions map[Value]int64

func (vs versions) add(v Value, version int64) {
	if v.IsNull() {
		return
	}
	if v = v.match(); version > vs[v] {
		vs[v] = version
	}
}

func (vs versions) keys() []Value { return slices.SortedFunc(maps.Keys(vs), compareValues) }

// resolver turns the changes of one batch into the entity documents they affect.
type resolver struct {
	m    *Model
	only *Entity // nil: every entity; else the changes are resolved for this entity alone
	// pending holds, per node, the key values of that node's rows that changed or whose
	// rows are affected, with their highest version. Root values are entity ids.
	pending map[*node]versions
	// latest is, per root row, the batch's latest change of it: what the read must show
	// (fresh.go).
	latest map[Ref]*Change
}

// newResolver is the resolver of about changes changes: the latest change per root row is
// sized for them at once, instead of growing through every power of two.
func newResolver(m *Model, only *Entity, changes int) *resolver {
	return &resolver{m: m, only: only, pending: map[*node]versions{}, latest: make(map[Ref]*Change, changes)}
}

func (r *resolver) at(n *node) versions {
	vs := r.pending[n]
	if vs == nil {
		vs = versions{}
		r.pending[n] = vs
	}
	return vs
}

// add records one change. It reads nothing: what the event's images tell is recorded where
// it is known, what they cannot tell is left for resolve's lookups.
func (r *resolver) add(c *Change) {
	images := []Row{c.Before, c.After}
	for _, n := range r.m.byTable[c.Table] {
		if r.only != nil && n.entity != r.only {
			continue
		}
		if c.Op == "update" && !n.changed(c.Before, c.After) {
			continue // a column no document shows: nothing to re-index
		}
		if n.kind() == linkRoot {
			r.expect(n, c)
		}
		for _, img := range images {
			if img.IsNil() {
				continue
			}
			switch n.kind() {
			case linkRoot, linkFrom, linkThrough:
				// Root: the id itself. from/through: this row's key, which parents hold;
				// which parents hold it takes a lookup.
				r.at(n).add(img.Get(n.col()), c.Version)
			case linkParentKey:
				// The image names its parent: before AND after, so a child moved from
				// parent A to B re-indexes both (invariant 5).
				r.at(n.parent).add(img.Get(n.parentKey), c.Version)
			}
		}
	}
	for _, n := range r.m.byJoin[c.Table] {
		if r.only != nil && n.entity != r.only {
			continue
		}
		for _, img := range images {
			if !img.IsNil() {
				r.at(n.parent).add(img.Get(n.through.ParentKey), c.Version)
			}
		}
	}
}

// changed reports whether an update touched a column the node's documents show, link,
// order or filter by. The columns a where predicate reads are not known (it is SQL, not
// parsed): any change to a filtered table's row counts, since it can move the row in or out.
func (n *node) changed(before, after Row) bool {
	if n.cols == nil || n.where != "" {
		return !before.Equal(after)
	}
	if before.cols == after.cols { // the usual images of one update: one lookup per column
		for _, c := range n.read {
			if i := before.cols.at(c); i >= 0 && before.vals[i] != after.vals[i] {
				return true
			}
		}
		return false
	}
	for _, c := range n.read {
		if before.Get(c) != after.Get(c) {
			return true
		}
	}
	return false
}

// resolve climbs every pending value up to its entity's root, deepest nodes first, with one
// query per node (per maxIn values), and returns the entities with their highest version.
func (r *resolver) resolve(ctx context.Context, q *counted) (map[Ref]int64, error) {
	nodes := slices.Collect(maps.Keys(r.pending))
	// Deepest first, so a node's lookups have all been added before it is climbed.
	for len(nodes) > 0 {
		slices.SortFunc(nodes, func(a, b *node) int { return b.depth - a.depth })
		n := nodes[0]
		if n.parent == nil {
			break
		}
		nodes = nodes[1:]
		vs := r.pending[n]
		delete(r.pending, n)
		if len(vs) == 0 {
			continue
		}
		to, err := r.up(ctx, q, n, vs)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(nodes, to) {
			nodes = append(nodes, to)
		}
	}
	out := map[Ref]int64{}
	for n, vs := range r.pending {
		for v, ver := range vs {
			ref := Ref{Entity: n.entity.Name, Key: v}
			out[ref] = max(out[ref], ver)
		}
	}
	return out, nil
}

// up maps key values of node n to key values of an ancestor, which it returns: the lookup
// query for changes the event alone cannot place (a tag renamed -> every program with that
// tag). A lookup reads the rows that link the values, and from those very rows the value
// one level up; through a parent_key parent it reads the parent's parent_key column at once,
// so a nested change climbs by the rows that hold it (its full identity, whatever the
// parent's key: a department renamed -> the dept_emp rows of that dept_no -> exactly their
// emp_no), never by a key value that other rows may share. A filtered parent's lookup holds
// its where: a row outside it is in no document.
func (r *resolver) up(ctx context.Context, q *counted, n *node, vs versions) (*node, error) {
	var table, match, parent string
	var filter Filter
	to := n.parent
	switch n.kind() {
	case linkFrom: // parent rows whose from column holds these keys
		table, match, parent, filter = n.parent.table, n.from, n.parent.col(), Filter{Where: n.parent.where}
		if n.parent.kind() == linkParentKey { // those rows name their own parents
			parent, to = n.parent.parentKey, n.parent.parent
		}
	case linkParentKey: // these rows' parent column
		table, match, parent, filter = n.table, n.col(), n.parentKey, Filter{Where: n.where}
	case linkThrough: // join rows pointing at these keys
		table, match, parent = n.through.Table, n.through.Key, n.through.ParentKey
	}
	// A shared row renamed can match every parent: the rows are not held, only the keys.
	up := r.at(to)
	err := q.Each(ctx, table, []string{match, parent}, match, vs.keys(), filter, func(row Row) {
		// MySQL's comparison may return rows that hold none of the values byte for byte
		// (another case under a _ci collation): they are not linked in any document.
		if ver, ok := vs[row.Get(match).match()]; ok {
			up.add(row.Get(parent), ver)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("look up %s of %s.%s: %w", n.entity.Name, n.parent.table, n.name, err)
	}
	return to, nil
}

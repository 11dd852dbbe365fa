package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// obj is one row being turned into a JSON object: its columns, and per child of its node
// (node.children order) nil (JSON null), one *obj, or a []*obj.
type obj struct {
	row  Row
	lay  *rowLayout // n's members for the row's columns
	rels []any
	enc  []byte // the object's JSON once encoded: a channel shared by many programs is encoded once
}

// newObjs are the objs of rows of node n, in rows order, in two allocations whatever their
// number. The members are laid out once per Columns of the rows: once per read.
func newObjs(n *node, rows []Row) []*obj {
	if len(rows) == 0 {
		return nil
	}
	objs := make([]obj, len(rows))
	rels := make([]any, len(rows)*len(n.children))
	out := make([]*obj, len(rows))
	var lay *rowLayout
	for i, r := range rows {
		if lay == nil || lay.cols != r.cols {
			lay = n.layoutFor(r)
		}
		k := i * len(n.children)
		objs[i] = obj{row: r, lay: lay, rels: rels[k : k+len(n.children) : k+len(n.children)]}
		out[i] = &objs[i]
	}
	return out
}

// Denormalize reads the documents of refs (entity and root key -> version) from one
// consistent view: one query per node of each entity's tree, per maxIn keys, however many
// clusters the documents go to (docs/architecture.md, invariant 3). It returns one Doc per
// ref, by entity then key: a document for a root row that exists, a versioned delete for one
// that does not. The stream, and a repair of ledgered ids, call it.
func (m *Model) Denormalize(ctx context.Context, v View, refs map[Ref]int64) ([]Doc, error) {
	docs, _, err := m.denormalize(ctx, v, refs, nil)
	return docs, err
}

// denormalize is Denormalize that leaves out the documents whose root row is older than
// their latest change (latest, by entity and matched key; fresh.go) and returns their refs.
func (m *Model) denormalize(ctx context.Context, v View, refs map[Ref]int64, latest map[Ref]*Change) ([]Doc, []Ref, error) {
	q := count(v)
	var docs []Doc
	var behind []Ref
	for _, e := range m.entities {
		ids := versions{}
		for ref, ver := range refs {
			if k := ref.Key.match(); ref.Entity == e.Name {
				ids[k] = max(ids[k], ver)
			}
		}
		if len(ids) == 0 {
			continue
		}
		out, late, err := e.read(ctx, q, ids.keys(), func(k Value) int64 { return ids[k] }, latest)
		if err != nil {
			return nil, nil, err
		}
		docs, behind = append(docs, out...), append(behind, late...)
	}
	return docs, behind, nil
}

// denormalizeSorted is denormalize of refs of one entity in compareRefs order, each with its
// version in of: a chunk of the pipeline, read without another map or sort of its keys. The
// pipeline builds such chunks: one entity per chunk (writeChunks), every entity known and
// every key matched (decode for retries, the resolver for changes); anything else is a bug,
// refused here rather than read wrong.
func (m *Model) denormalizeSorted(ctx context.Context, v View, refs []Ref, of map[Ref]int64, latest map[Ref]*Change) ([]Doc, []Ref, error) {
	e := m.entity(refs[0].Entity)
	keys := make([]Value, len(refs))
	for i, ref := range refs {
		if e == nil || ref.Entity != e.Name || ref.Key.match() != ref.Key {
			return nil, nil, fmt.Errorf("denormalize %s %s: a chunk must be of one known entity with matched keys", ref.Entity, ref.Key)
		}
		keys[i] = ref.Key
	}
	return e.read(ctx, count(v), keys, func(k Value) int64 { return of[Ref{Entity: e.Name, Key: k}] }, latest)
}

// read reads the documents of keys (matched, distinct, in compareValues order) of entity e,
// each with its version, but those whose root row is older than their latest change: their
// refs are returned apart.
func (e *Entity) read(ctx context.Context, q *counted, keys []Value, version func(Value) int64, latest map[Ref]*Change) ([]Doc, []Ref, error) {
	rows, err := q.Rows(ctx, e.root.table, e.root.read, e.root.col(), keys, Filter{})
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", e.Name, err)
	}
	var lag func(Value, Row) bool
	if len(latest) > 0 {
		lag = func(k Value, row Row) bool {
			c := latest[Ref{Entity: e.Name, Key: k}]
			return c != nil && e.root.behind(c, row)
		}
	}
	docs, late, err := e.documents(ctx, q, rows, keys, version, lag)
	if err != nil {
		return nil, nil, err
	}
	var behind []Ref
	for _, k := range late {
		behind = append(behind, Ref{Entity: e.Name, Key: k})
	}
	return docs, behind, nil
}

// DenormalizeRange reads the documents of up to limit root rows of entity whose key is
// greater than after (from the first row when after is null), in the source's key order,
// every one with version: keyset pagination for a resync, which passes the last Doc's Key
// as the next after. Fewer than limit documents means the table ends there. It never
// returns a delete: a row that is not there is not in the range.
func (m *Model) DenormalizeRange(ctx context.Context, v View, entity string, after Value, limit int, version int64) ([]Doc, error) {
	e := m.entity(entity)
	if e == nil {
		return nil, fmt.Errorf("denormalize %s: no such entity", entity)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("denormalize %s: limit %d: want at least 1", entity, limit)
	}
	q := count(v)
	rows, err := q.Scan(ctx, e.root.table, e.root.read, e.root.col(), after, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.Name, err)
	}
	keys := make([]Value, len(rows))
	for i, r := range rows {
		keys[i] = r.Get(e.root.col())
	}
	docs, _, err := e.documents(ctx, q, rows, keys, func(Value) int64 { return version }, nil)
	return docs, err
}

// documents reads the relations of the root rows and returns one Doc per key, in keys order:
// the document of the row holding that key, or a delete when no row does; except the keys
// for which behind (nil: none) says the row read is older than the change, returned apart.
func (e *Entity) documents(ctx context.Context, q *counted, rows []Row, keys []Value, version func(Value) int64,
	behind func(key Value, row Row) bool) ([]Doc, []Value, error) {
	found := make(map[Value]*obj, len(rows))
	objs := newObjs(e.root, rows)
	for _, o := range objs {
		found[o.row.Get(e.root.col()).match()] = o
	}
	if err := fill(ctx, q, e.root, objs); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", e.Name, err)
	}
	docs := make([]Doc, 0, len(keys))
	var late []Value
	// Sources share one growing buffer: a slice of it stays valid when it moves.
	var buf []byte
	for _, key := range keys {
		o := found[key.match()]
		if behind != nil {
			var row Row
			if o != nil {
				row = o.row
			}
			if behind(key, row) {
				late = append(late, key)
				continue
			}
		}
		d := Doc{Entity: e.Name, Index: e.Index, ID: key.ID(), Key: key, Version: version(key)}
		if o != nil {
			start := len(buf)
			buf = e.root.encode(buf, o, d.Version)
			d.Source = buf[start:len(buf):len(buf)]
			if start == 0 {
				// Room for the rest at about the first one's size, bounded: a large first
				// document does not reserve memory for thousands more like it.
				buf = slices.Grow(buf, min(len(buf)*9/8*(len(keys)-len(docs)-1), maxGrow))
			}
		}
		docs = append(docs, d)
	}
	return docs, late, nil
}

// maxGrow bounds the bytes documents reserves for the sources at once, from the first one's size.
const maxGrow = 4 << 20

// field is one member of a node's JSON object.
type field struct {
	name   string
	quoted string // the name as a JSON string, as encoding/json writes a map key
	kind   fieldKind
	column string // fieldColumn: the column read
	child  int    // fieldRelation: index in node.children
}

type fieldKind int

const (
	fieldColumn fieldKind = iota
	fieldRelation
	fieldVersion
)

// fields lays out the members of the node's objects in the order encoding/json gives a
// map (sorted by name); a later source of one name replaces an earlier one, as assignments
// to a map would: columns in configured order, then relations, then the version (root).
// row is only read when every column is selected (cols nil).
func (n *node) fields(row Row) []field {
	byName := map[string]field{}
	if n.cols == nil {
		for c := range row.All() {
			byName[c] = field{name: c, kind: fieldColumn, column: c}
		}
	}
	for _, c := range n.cols {
		byName[c.Field] = field{name: c.Field, kind: fieldColumn, column: c.Name}
	}
	for i, ch := range n.children {
		byName[ch.name] = field{name: ch.name, kind: fieldRelation, child: i}
	}
	if n.parent == nil {
		byName[n.entity.VersionField] = field{name: n.entity.VersionField, kind: fieldVersion}
	}
	out := make([]field, 0, len(byName))
	for _, f := range byName {
		q, _ := json.Marshal(f.name)
		f.quoted = string(q)
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b field) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return out
}

// rowLayout is a node's members for rows of the columns cols: fields, and at[i] the position
// in cols of the column of fields[i] (-1: the rows do not hold it, or the member is no column).
// Encoding a row then looks no column up by name, however wide the rows.
type rowLayout struct {
	cols   *Columns
	fields []field
	at     []int
}

// layoutFor is the node's members laid out for rows of row's columns: n.layout, or
// n.fields(row) for a node that reads every column (the same for rows of the same names in
// any order). The last one is reused while the rows share its Columns (one read, or images of
// one table).
func (n *node) layoutFor(row Row) *rowLayout {
	last := n.seen.Load()
	if last != nil && last.cols == row.cols {
		return last
	}
	fs := n.layout
	switch {
	case fs != nil:
	case last != nil && last.cols.sameSet(row.cols):
		fs = last.fields
	default:
		fs = n.fields(row)
	}
	l := &rowLayout{cols: row.cols, fields: fs, at: make([]int, len(fs))}
	for i, f := range fs {
		l.at[i] = -1
		if f.kind == fieldColumn {
			l.at[i] = row.cols.at(f.column)
		}
	}
	n.seen.Store(l)
	return l
}

// encode appends o as the JSON object of node n, byte for byte what encoding/json made of
// the same members in a map (a test holds it to that): keys sorted, values as read (compact
// JSON), HTML-escaped as encoding/json escapes them. version is written on the root only.
// It builds no map and uses no reflection: on the benchmark of issue 4, json.Marshal of the
// documents cost a quarter of wye's CPU.
func (n *node) encode(b []byte, o *obj, version int64) []byte {
	if o.enc != nil {
		return append(b, o.enc...)
	}
	start := len(b)
	b = append(b, '{')
	for i, f := range o.lay.fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f.quoted...)
		b = append(b, ':')
		switch f.kind {
		case fieldColumn:
			if j := o.lay.at[i]; j >= 0 && o.row.vals[j] != "" {
				b = appendHTMLSafe(b, o.row.vals[j])
			} else {
				b = append(b, NullValue...)
			}
		case fieldVersion:
			b = strconv.AppendInt(b, version, 10)
		case fieldRelation:
			ch := n.children[f.child]
			switch rel := o.rels[f.child].(type) {
			case *obj:
				b = ch.encode(b, rel, 0)
			case []*obj:
				b = append(b, '[')
				for j, c := range rel {
					if j > 0 {
						b = append(b, ',')
					}
					b = ch.encode(b, c, 0)
				}
				b = append(b, ']')
			default:
				b = append(b, NullValue...)
			}
		}
	}
	b = append(b, '}')
	if n.parent != nil {
		o.enc = b[start:len(b):len(b)]
	}
	return b
}

// fill reads the relations of parents, one query per relation (two through a join table),
// and recurses into nested relations with all children of the level at once.
func fill(ctx context.Context, q *counted, parent *node, parents []*obj) error {
	if len(parents) == 0 {
		return nil
	}
	for ci, n := range parent.children {
		var children []*obj
		switch n.kind() {
		case linkFrom:
			want := versions{}
			for _, p := range parents {
				want.add(p.row.Get(n.from), 1)
			}
			byKey := map[Value]*obj{}
			if len(want) > 0 {
				rows, err := q.Rows(ctx, n.table, n.read, n.col(), want.keys(), Filter{Where: n.where})
				if err != nil {
					return fmt.Errorf("read %s: %w", n.name, err)
				}
				children = newObjs(n, rows)
				for _, o := range children {
					byKey[o.row.Get(n.col()).match()] = o
				}
			}
			for _, p := range parents {
				if o := byKey[p.row.Get(n.from).match()]; o != nil {
					p.rels[ci] = o
				}
			}
		case linkParentKey, linkThrough:
			want := versions{}
			for _, p := range parents {
				want.add(p.row.Get(parent.col()), 1)
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
				g := groups[p.row.Get(parent.col()).match()]
				slices.SortStableFunc(g, func(a, b *obj) int { return n.compare(a.row, b.row) })
				switch {
				case n.many:
					p.rels[ci] = append([]*obj{}, g...)
				case len(g) > 0:
					p.rels[ci] = g[0]
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
func readChildren(ctx context.Context, q *counted, n *node, parentKeys []Value, groups map[Value][]*obj) ([]*obj, error) {
	var children []*obj
	if n.kind() == linkParentKey {
		rows, err := q.Rows(ctx, n.table, n.read, n.parentKey, parentKeys, n.filter())
		if err != nil {
			return nil, err
		}
		children = newObjs(n, rows)
		for _, o := range children {
			k := o.row.Get(n.parentKey).match()
			groups[k] = append(groups[k], o)
		}
		return children, nil
	}
	links, err := q.Rows(ctx, n.through.Table, []string{n.through.ParentKey, n.through.Key}, n.through.ParentKey, parentKeys, Filter{})
	if err != nil {
		return nil, err
	}
	want := versions{}
	for _, l := range links {
		want.add(l.Get(n.through.Key), 1)
	}
	if len(want) == 0 {
		return nil, nil
	}
	rows, err := q.Rows(ctx, n.table, n.read, n.col(), want.keys(), n.filter())
	if err != nil {
		return nil, err
	}
	byKey := map[Value]*obj{}
	children = newObjs(n, rows)
	for _, o := range children {
		byKey[o.row.Get(n.col()).match()] = o
	}
	for _, l := range links {
		if o := byKey[l.Get(n.through.Key).match()]; o != nil { // a join row may point at a missing row
			k := l.Get(n.through.ParentKey).match()
			groups[k] = append(groups[k], o)
		}
	}
	return children, nil
}

// filter is the node's where and order_by, for the reads of its rows. The order goes into
// the SQL as configured; the rows are ordered again by compare, which a read split into
// several queries (maxIn) or a many-to-many read needs.
func (n *node) filter() Filter { return Filter{Where: n.where, Order: n.order} }

// compare orders two rows of a parent_key or through node: by its order_by columns, then by
// its key (ascending), so that rows equal in the configured order keep one order from read
// to read. Values compare as wye reads them, not by the column's collation: null first,
// numbers and numeric text (DECIMAL) numerically, other text (dates, times, strings) byte
// for byte (docs/indexer.md).
func (n *node) compare(a, b Row) int {
	for _, o := range n.order {
		if c := compareOrder(a.Get(o.Column), b.Get(o.Column)); c != 0 {
			if o.Desc {
				return -c
			}
			return c
		}
	}
	for _, k := range n.key {
		if c := compareValues(a.Get(k), b.Get(k)); c != 0 {
			return c
		}
	}
	return 0
}

// compareOrder compares two values of an order_by column: null first (as MySQL orders
// ascending), then numbers, quoted numbers (DECIMAL as read) included, then other values.
func compareOrder(a, b Value) int {
	switch an, bn := a.IsNull(), b.IsNull(); {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	}
	return compareValues(unquoteNumber(a), unquoteNumber(b))
}

// unquoteNumber is the number a quoted decimal holds ("12.50" -> 12.50), else v.
func unquoteNumber(v Value) Value {
	if len(v) > 2 && v[0] == '"' && v[len(v)-1] == '"' {
		s := string(v[1 : len(v)-1])
		if _, err := strconv.ParseFloat(s, 64); err == nil && strings.Trim(s, "0123456789.-") == "" {
			return Value(s)
		}
	}
	return v
}

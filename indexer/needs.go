package indexer

import (
	"fmt"
	"strings"
)

// Need is what the source must have for one table an entity reads: the table, every column
// read from it and the predicate its reads add. A source adapter checks every need at once
// before anything is consumed (docs/indexer.md, "Checks at start"), so a configuration that
// names a column or table the source lacks fails at start, with every fault, instead of
// parking every change that reads it.
type Need struct {
	// Path is the configuration path of the node that reads Table: "entities[0].root",
	// "entities[0].relations[1]", or a join table's "entities[0].relations[2].through". Its
	// keys (Path+".table", Path+".columns", Path+".where") are where a fault is reported.
	Path string
	// Name is the same node by its names, for a reader of the message: "program.channel",
	// "program.tags.through".
	Name  string
	Table string // "db.table"
	// Join: Table is the join table of a many-to-many relation.
	Join bool
	// Columns are the columns read, each with the configuration path that names it: the
	// selected ones and every link column. With AllColumns, only the link columns.
	Columns []NeedColumn
	// AllColumns: no columns are listed, so every column of Table is read, and a DDL on the
	// table (ALTER TABLE ... ADD COLUMN) changes the documents.
	AllColumns bool
	// Where is a fixed SQL predicate on Table that every read of it adds ("": none).
	Where string
}

// NeedColumn is one column a Need reads.
type NeedColumn struct {
	Field string // the configuration path naming it: "entities[0].root.columns[2]", "entities[0].relations[0].from"
	Name  string // the column
	// Link: the indexer matches the column's values itself, byte for byte (a key or a foreign
	// key, see LinkColumn), so its collation matters.
	Link bool
}

// Fault is one thing a source lacks for a Need, or, with Warning, a risk in the configuration
// that does not stop a start.
type Fault struct {
	Path    string // the configuration key at fault: "entities[0].relations[1].columns[2]"
	Name    string // the node by its names: "program.channel"
	Value   string // the configured value at fault ("" when none): a column, a table
	Msg     string
	Warning bool
}

// Error reads like a configuration error: `path (name): "value": message`.
func (f Fault) Error() string {
	var b strings.Builder
	b.WriteString(f.Path)
	if f.Name != "" {
		b.WriteString(" (" + f.Name + ")")
	}
	if f.Value != "" {
		fmt.Fprintf(&b, ": %q", f.Value)
	}
	b.WriteString(": " + f.Msg)
	return b.String()
}

// Needs lists what the source must have for every entity, node by node in configuration order.
// A link column is listed on the node whose table holds it: a relation's `from` on its parent's
// table, under the relation's path.
func (m *Model) Needs() []Need {
	var out []Need
	var walk func(n *node, path, name string)
	walk = func(n *node, path, name string) {
		need := Need{Path: path, Name: name, Table: n.table, AllColumns: n.cols == nil, Where: n.where}
		add := func(field, col string, link bool) {
			need.Columns = append(need.Columns, NeedColumn{Field: field, Name: col, Link: link})
		}
		for i, c := range n.cols {
			add(fmt.Sprintf("%s.columns[%d]", path, i), c.Name, false)
		}
		if len(n.key) == 1 {
			add(path+".key", n.key[0], true)
		} else { // a composite key identifies and orders rows; no climb matches it (resolve.go)
			for i, k := range n.key {
				add(fmt.Sprintf("%s.key[%d]", path, i), k, false)
			}
		}
		for i, o := range n.order {
			add(fmt.Sprintf("%s.order_by[%d]", path, i), o.Column, false)
		}
		if n.parentKey != "" {
			add(path+".parent_key", n.parentKey, true)
		}
		for i, c := range n.children {
			if c.from != "" {
				add(fmt.Sprintf("%s.relations[%d].from", relationsOf(path), i), c.from, true)
			}
		}
		out = append(out, need)
		if n.kind() == linkThrough {
			out = append(out, Need{Path: path + ".through", Name: name + ".through", Table: n.through.Table, Join: true,
				Columns: []NeedColumn{
					{Field: path + ".through.parent_key", Name: n.through.ParentKey, Link: true},
					{Field: path + ".through.key", Name: n.through.Key, Link: true},
				}})
		}
		for i, c := range n.children {
			walk(c, fmt.Sprintf("%s.relations[%d]", relationsOf(path), i), name+"."+c.name)
		}
	}
	for i, e := range m.entities {
		walk(e.root, fmt.Sprintf("entities[%d].root", i), e.Name)
	}
	return out
}

// relationsOf is the configuration path that holds a node's relations: an entity's are beside
// its root ("entities[0].relations"), a relation's are its own.
func relationsOf(path string) string { return strings.TrimSuffix(path, ".root") }

package indexer

import (
	"fmt"
	"slices"
	"sync/atomic"
)

// EntityDef defines one entity: a root table whose rows become documents of Index, and the
// relations nested in them. cmd builds it from the validated configuration (config.Entity
// documents each field); the indexer imports no configuration package.
type EntityDef struct {
	Name         string
	Index        string
	VersionField string // "": DefaultVersionField
	Table        string // "db.table" of the root
	Key          string // the root's primary key column
	Columns      []Column
	Relations    []RelationDef
}

// RelationDef nests the rows of Table in the parent's documents. Exactly one of From,
// ParentKey or Through.Table says how a row links to its parent.
//
// Key is the columns that identify a row of Table: the default order of the rows, and (one
// column) the value a parent's From, a join table's Through.Key, or a nested parent_key or
// through relation refers to. Only a ParentKey relation may have a composite key, and then
// it has no nested ParentKey or Through relation (their parent key would be composite): the
// configuration refuses the rest, and NewModel too.
type RelationDef struct {
	Name      string
	Table     string
	Key       []string
	From      string  // many-to-one: the parent's column holding Key
	ParentKey string  // one-to-many: this table's column holding the parent's key
	Through   Through // many-to-many: a join table holding both keys
	Many      bool
	// Where is a fixed SQL predicate on Table's own columns, ANDed (in parentheses) into
	// every read of Table for this relation: only the rows it holds are nested. "": none.
	Where string
	// OrderBy orders the rows of a ParentKey or Through relation (nil: by Key); with Many
	// false the first row in this order is the one nested.
	OrderBy   []Order
	Columns   []Column // nil: every column
	Relations []RelationDef
}

// Order is one column of an ORDER BY.
type Order struct {
	Column string
	Desc   bool
}

// Through is the join table of a many-to-many relation.
type Through struct {
	Table     string
	ParentKey string // holds the parent's key
	Key       string // holds the related table's key
}

// Column is one column read into a document, under the field name Field.
type Column struct{ Name, Field string }

// Model is the entity definitions as the indexer walks them: a tree of tables per entity,
// and for every followed table the places it appears in.
type Model struct {
	entities []*Entity
	byTable  map[string][]*node // table -> nodes reading it
	byJoin   map[string][]*node // join table -> many-to-many nodes going through it
}

// Entity is one configured entity.
type Entity struct {
	Name         string
	Index        string
	VersionField string
	root         *node
}

// node is the root or one relation of an entity.
type node struct {
	entity    *Entity
	parent    *node // nil for the root
	name      string
	table     string
	key       []string // one column but for a parent_key relation (RelationDef.Key)
	from      string   // many-to-one: parent's column holding key
	parentKey string   // one-to-many: own column holding the parent's key
	through   Through  // many-to-many
	many      bool
	where     string   // RelationDef.Where: ANDed into the reads of table; "": none
	order     []Order  // RelationDef.OrderBy: the rows' order before the key; nil: the key
	cols      []Column // nil: every column
	children  []*node
	depth     int
	layout    []field  // members of its JSON objects; nil when every column is read (cols nil)
	read      []string // columns to read (fetch), fixed with the layout: read for every change and row
	// seen is the layout of the last rows' columns: the rows of one table mostly have the same
	// columns, and laying them out is costly (denorm.go layoutFor).
	seen atomic.Pointer[rowLayout]
}

// link is how a node's rows attach to their parent's.
type link int

const (
	linkRoot      link = iota // the entity's own table
	linkFrom                  // many-to-one: the parent's column holds this key
	linkParentKey             // one-to-many: this table's column holds the parent's key
	linkThrough               // many-to-many: a join table holds both keys
)

func (n *node) kind() link {
	switch {
	case n.parent == nil:
		return linkRoot
	case n.from != "":
		return linkFrom
	case n.parentKey != "":
		return linkParentKey
	default:
		return linkThrough
	}
}

// fetch is the columns to read from the node's table: the selected ones plus every column a
// link needs (nil when every column is read anyway).
func (n *node) fetch() []string {
	if n.cols == nil {
		return nil
	}
	var out []string
	add := func(c string) {
		if c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	for _, c := range n.cols {
		add(c.Name)
	}
	for _, c := range n.key {
		add(c)
	}
	for _, o := range n.order {
		add(o.Column)
	}
	add(n.parentKey)
	for _, ch := range n.children {
		add(ch.from)
	}
	return out
}

// NewModel builds the model of validated entity definitions.
func NewModel(entities []EntityDef) (*Model, error) {
	m := &Model{byTable: map[string][]*node{}, byJoin: map[string][]*node{}}
	for _, ce := range entities {
		if ce.VersionField == "" {
			ce.VersionField = DefaultVersionField
		}
		e := &Entity{Name: ce.Name, Index: ce.Index, VersionField: ce.VersionField}
		e.root = &node{entity: e, table: ce.Table, key: []string{ce.Key}, cols: ce.Columns}
		m.add(e.root)
		if err := m.relations(e.root, ce.Relations); err != nil {
			return nil, fmt.Errorf("build entity model: %s: %w", ce.Name, err)
		}
		e.root.setLayout()
		m.entities = append(m.entities, e)
	}
	if len(m.entities) == 0 {
		return nil, fmt.Errorf("build entity model: no entities configured")
	}
	return m, nil
}

func (m *Model) relations(parent *node, rels []RelationDef) error {
	for _, r := range rels {
		n := &node{entity: parent.entity, parent: parent, name: r.Name, table: r.Table, key: r.Key,
			from: r.From, parentKey: r.ParentKey, through: r.Through, many: r.Many || r.Through.Table != "",
			where: r.Where, order: r.OrderBy, cols: r.Columns, depth: parent.depth + 1}
		switch {
		case len(n.key) == 0:
			return fmt.Errorf("relation %s: no key", r.Name)
		case len(n.key) > 1 && n.kind() != linkParentKey:
			return fmt.Errorf("relation %s: a composite key is for a parent_key relation only", r.Name)
		case len(parent.key) > 1 && n.kind() != linkFrom:
			return fmt.Errorf("relation %s: its parent %s has a composite key: only a from relation can nest in it", r.Name, parent.name)
		}
		parent.children = append(parent.children, n)
		m.add(n)
		if n.through.Table != "" {
			m.byJoin[n.through.Table] = append(m.byJoin[n.through.Table], n)
		}
		if err := m.relations(n, r.Relations); err != nil {
			return err
		}
	}
	return nil
}

// col is the key column of a node whose key is one column: the root, a from or through
// relation, and the parent of a parent_key or through relation (NewModel refuses a
// composite key there).
func (n *node) col() string { return n.key[0] }

// setLayout fixes the JSON members and the columns to read of the node and its descendants,
// once the tree is built.
func (n *node) setLayout() {
	if n.cols != nil {
		n.layout = n.fields(Row{})
	}
	n.read = n.fetch()
	for _, c := range n.children {
		c.setLayout()
	}
}

func (m *Model) add(n *node) { m.byTable[n.table] = append(m.byTable[n.table], n) }

// Entities lists the configured entities.
func (m *Model) Entities() []*Entity { return m.entities }

// Tables lists every table the model reads, join tables included: what cdc must follow.
func (m *Model) Tables() []string {
	var out []string
	for t := range m.byTable {
		out = append(out, t)
	}
	for t := range m.byJoin {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

func (m *Model) entity(name string) *Entity {
	for _, e := range m.entities {
		if e.Name == name {
			return e
		}
	}
	return nil
}

func (m *Model) follows(table string) bool { return m.byTable[table] != nil || m.byJoin[table] != nil }

// LinkColumn is a column whose values the indexer matches itself, byte for byte: a key or
// a foreign key that joins two tables of an entity. MySQL compares the same values with the
// column's collation ('ABC' = 'abc' = 'abc ' under utf8mb4_general_ci), so a link column with
// a non-binary collation can join rows that wye does not.
type LinkColumn struct {
	Path   string // where the link is configured: "program.channel.key"
	Table  string // "db.table"
	Column string
}

// LinkColumns lists every column an entity joins on, once per place it is configured.
func (m *Model) LinkColumns() []LinkColumn {
	var out []LinkColumn
	var walk func(n *node, path string)
	walk = func(n *node, path string) {
		add := func(field, table, col string) {
			out = append(out, LinkColumn{Path: path + "." + field, Table: table, Column: col})
		}
		switch n.kind() {
		case linkRoot:
			add("key", n.table, n.col())
		case linkFrom:
			add("from", n.parent.table, n.from)
			add("key", n.table, n.col())
		case linkParentKey:
			add("parent_key", n.table, n.parentKey)
			if len(n.key) == 1 { // a composite key is no link: nothing nested refers to it
				add("key", n.table, n.col())
			}
		case linkThrough:
			add("through.parent_key", n.through.Table, n.through.ParentKey)
			add("through.key", n.through.Table, n.through.Key)
			add("key", n.table, n.col())
		}
		for _, c := range n.children {
			walk(c, path+"."+c.name)
		}
	}
	for _, e := range m.entities {
		walk(e.root, e.Name)
	}
	return out
}

// DefaultVersionField is the document field carrying the change version when an entity
// names none. mapping maps it as long; config shows it.
const DefaultVersionField = "wye_version"

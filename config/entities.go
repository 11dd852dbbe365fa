package config

import "github.com/wyehq/wye/indexer"

// EntityDefs turns validated entities into the indexer's own definitions: the indexer
// imports no configuration package.
func EntityDefs(entities []Entity) []indexer.EntityDef {
	defs := make([]indexer.EntityDef, len(entities))
	for i, e := range entities {
		defs[i] = indexer.EntityDef{Name: e.Name, Index: e.Index, VersionField: e.VersionField,
			Table: e.Root.Table, Key: e.Root.Key, Columns: columns(e.Root.Columns), Relations: relations(e.Relations)}
	}
	return defs
}

func relations(rs []Relation) []indexer.RelationDef {
	if len(rs) == 0 {
		return nil
	}
	out := make([]indexer.RelationDef, len(rs))
	for i, r := range rs {
		out[i] = indexer.RelationDef{Name: r.Name, Table: r.Table, Key: r.Key, From: r.From, ParentKey: r.ParentKey,
			Through: indexer.Through{Table: r.Through.Table, ParentKey: r.Through.ParentKey, Key: r.Through.Key},
			Many:    r.Many, Where: r.Where, OrderBy: orders(r.OrderBy), Columns: columns(r.Columns), Relations: relations(r.Relations)}
	}
	return out
}

// orders reads an order_by list ("from_date desc", "emp_no"); none means by key.
func orders(entries []string) []indexer.Order {
	if len(entries) == 0 {
		return nil
	}
	out := make([]indexer.Order, len(entries))
	for i, e := range entries {
		out[i].Column, out[i].Desc, _ = SplitOrder(e)
	}
	return out
}

// columns reads a columns list ("title", "name as channel_name"); none means every column.
func columns(entries []string) []indexer.Column {
	if len(entries) == 0 {
		return nil
	}
	out := make([]indexer.Column, len(entries))
	for i, e := range entries {
		out[i].Name, out[i].Field = SplitColumn(e)
	}
	return out
}

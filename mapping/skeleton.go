package mapping

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/wyehq/wye/indexer"
)

// Column is one source column as information_schema.COLUMNS describes it: what Skeleton
// chooses a field type from. The SQL adapter reads it (indexer/sql Source.Columns); mapping
// holds no SQL.
type Column struct {
	Name       string
	DataType   string // DATA_TYPE, lower case: "int", "varchar", "datetime"
	ColumnType string // COLUMN_TYPE: "int(10) unsigned", "tinyint(1)"
	MaxLength  int64  // CHARACTER_MAXIMUM_LENGTH of text types; 0 otherwise
	Precision  int64  // DATETIME_PRECISION (fractional digits) of DATETIME, TIMESTAMP and TIME
}

// Columns are the columns of each table ("db.table"), in table order. A nil Columns means
// the columns are not known (no source was read).
type Columns map[string][]Column

// Document is the shape of the documents one entity writes: its fields as the denormalizer
// lays them out (docs/indexer.md, "Entities").
type Document struct {
	Entity string
	Index  string
	Object
}

// Object is the shape of one JSON object: a root row or a related row.
type Object struct {
	Table string
	// Open: the object holds every column of Table ("columns" omitted) and Table's columns
	// were not given, so its column fields are not known. Relations are known anyway.
	Open   bool
	Fields []DocField // by name
}

// DocField is one member of an Object.
type DocField struct {
	Name string
	// Column is the column read into the field; nil for a relation and the version field.
	// Its DataType is "" when the table's columns were not given.
	Column *Column
	// Key: the column identifies rows (the entity's key, a relation's key or a column a
	// relation links through, or a column named id or *_id).
	Key      bool
	Version  bool    // the version field (the root only)
	Relation *Object // the related rows' objects; nil for a column
	Many     bool    // a relation written as an array
}

// DocumentOf lays out the documents of def as the denormalizer does (a relation replaces a
// column of the same name, the version field is on the root). links are the model's link
// columns (indexer.Model.LinkColumns); cols the source's columns, nil when not known.
func DocumentOf(def indexer.EntityDef, links []indexer.LinkColumn, cols Columns) Document {
	keys := map[string]bool{}
	for _, l := range links {
		keys[l.Table+"."+l.Column] = true
	}
	vf := def.VersionField
	if vf == "" {
		vf = indexer.DefaultVersionField
	}
	root := object(def.Table, def.Columns, def.Relations, keys, cols)
	root.Fields = setField(root.Fields, DocField{Name: vf, Version: true})
	return Document{Entity: def.Name, Index: def.Index, Object: root}
}

func object(table string, selected []indexer.Column, rels []indexer.RelationDef, keys map[string]bool, cols Columns) Object {
	o := Object{Table: table}
	known := cols[table]
	column := func(name string) *Column {
		for _, c := range known {
			if c.Name == name {
				return &c
			}
		}
		return &Column{Name: name}
	}
	isKey := func(name string) bool {
		return keys[table+"."+name] || name == "id" || strings.HasSuffix(name, "_id")
	}
	switch {
	case selected != nil:
		for _, c := range selected {
			o.Fields = setField(o.Fields, DocField{Name: c.Field, Column: column(c.Name), Key: isKey(c.Name)})
		}
	case known != nil:
		for _, c := range known {
			o.Fields = setField(o.Fields, DocField{Name: c.Name, Column: column(c.Name), Key: isKey(c.Name)})
		}
	default:
		o.Open = true
	}
	for _, r := range rels {
		child := object(r.Table, r.Columns, r.Relations, keys, cols)
		// A relation through a join table is always a list (indexer.NewModel).
		o.Fields = setField(o.Fields, DocField{Name: r.Name, Relation: &child, Many: r.Many || r.Through.Table != ""})
	}
	return o
}

// setField adds f, replacing a field of the same name, keeping fields sorted by name.
func setField(fs []DocField, f DocField) []DocField {
	i, found := slices.BinarySearchFunc(fs, f.Name, func(a DocField, name string) int { return strings.Compare(a.Name, name) })
	if found {
		fs[i] = f
		return fs
	}
	return slices.Insert(fs, i, f)
}

// Skeleton settings: one shard, one replica (set 0 on a one-node cluster, or the index stays
// yellow), delete tombstones kept an hour (docs/architecture.md, invariant 6).
const (
	SkeletonShards    = 1
	SkeletonReplicas  = 1
	SkeletonGCDeletes = "1h"
	// SkeletonKeywordMax is the longest CHAR/VARCHAR mapped as keyword alone; a longer one is
	// text with a keyword sub-field "raw".
	SkeletonKeywordMax = 64
	// SkeletonIgnoreAbove bounds the "raw" keyword sub-field of text: longer values are not
	// indexed in it (Lucene refuses terms above 32 KB).
	SkeletonIgnoreAbove = 256
)

// Skeleton returns a strict mapping for doc's documents, as the body of
// mappings/<index>/<vN>/mapping.json (docs/mapping.md, "Start from a skeleton"). Every column
// must have its type: an error lists the columns the source does not have. The rules:
//
//   - keys and link columns, and columns named id or *_id: keyword (term lookups; ids are
//     not summed), whatever their SQL type;
//   - TINYINT, SMALLINT, MEDIUMINT, INT, YEAR: integer; INT UNSIGNED, BIGINT, BIT: long;
//     BIGINT UNSIGNED: double (unsigned_long needs x-pack on Elasticsearch);
//   - FLOAT: float; DOUBLE: double; DECIMAL: double with coerce (wye sends "4.50" as a
//     string; scaled_float would be exact but needs the mapper-extras module);
//   - CHAR/VARCHAR up to SkeletonKeywordMax characters, ENUM, SET, TIME: keyword; longer
//     VARCHAR: text + keyword sub-field "raw"; TEXT types: text;
//   - DATE: date "yyyy-MM-dd"; DATETIME(p): date "yyyy-MM-dd HH:mm:ss" with p fraction
//     digits; TIMESTAMP: date strict_date_optional_time (wye sends UTC ISO 8601 with Z);
//   - JSON: object with enabled false (kept in _source, not indexed: any shape is accepted;
//     replace it with declared properties, flattened or flat_object to search in it);
//   - BLOB, BINARY, VARBINARY, GEOMETRY: an object {"$base64": binary} (keyword for a key), as
//     wye sends them;
//   - a many-to-one relation, or one-to-many without many: object; a list: nested, so that a
//     query can match two fields of the same related row (use object when queries only ever
//     test one field of the rows: cheaper, and plain queries work);
//   - the version field: long; dynamic strict at the root.
func Skeleton(doc Document) (map[string]any, error) {
	if doc.Open {
		return nil, fmt.Errorf("skeleton %s: the columns of %s are not known", doc.Entity, doc.Table)
	}
	var missing []string
	props := skeletonProps(doc.Object, &missing)
	if len(missing) > 0 {
		return nil, fmt.Errorf("skeleton %s: no such column in the source: %s", doc.Entity, strings.Join(missing, ", "))
	}
	return map[string]any{
		"settings": map[string]any{"index": map[string]any{
			"number_of_shards": SkeletonShards, "number_of_replicas": SkeletonReplicas, "gc_deletes": SkeletonGCDeletes,
		}},
		"mappings": map[string]any{"dynamic": "strict", "properties": props},
	}, nil
}

// SkeletonJSON is Skeleton as the indented file it is written to.
func SkeletonJSON(doc Document) ([]byte, error) {
	m, err := Skeleton(doc)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode skeleton %s: %w", doc.Entity, err)
	}
	return append(b, '\n'), nil
}

func skeletonProps(o Object, missing *[]string) map[string]any {
	if o.Open {
		*missing = append(*missing, o.Table+".* (columns not known)")
	}
	props := map[string]any{}
	for _, f := range o.Fields {
		switch {
		case f.Version:
			props[f.Name] = map[string]any{"type": "long"}
		case f.Relation != nil:
			m := map[string]any{"properties": skeletonProps(*f.Relation, missing)}
			if f.Many {
				m["type"] = "nested"
			}
			props[f.Name] = m
		case f.Column.DataType == "":
			*missing = append(*missing, o.Table+"."+f.Column.Name)
		default:
			props[f.Name] = fieldType(*f.Column, f.Key)
		}
	}
	return props
}

// fieldType is the mapping of one column's values as wye encodes them (docs/cdc.md,
// "Values"; indexer/sql encode).
func fieldType(c Column, key bool) map[string]any {
	t := func(typ string) map[string]any { return map[string]any{"type": typ} }
	unsigned := strings.Contains(c.ColumnType, "unsigned")
	switch c.DataType {
	case "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		inner := "binary"
		if key {
			inner = "keyword"
		}
		return map[string]any{"properties": map[string]any{"$base64": t(inner)}}
	}
	if key {
		return t("keyword")
	}
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "year":
		return t("integer")
	case "int", "integer":
		if unsigned {
			return t("long")
		}
		return t("integer")
	case "bigint":
		if unsigned {
			// unsigned_long is an x-pack type on Elasticsearch, absent from minimal builds:
			// double takes every value (exact in _source, rounded above 2^53 in queries).
			return t("double")
		}
		return t("long")
	case "bit":
		return t("long")
	case "float":
		return t("float")
	case "double", "real":
		return t("double")
	case "decimal", "numeric":
		return map[string]any{"type": "double", "coerce": true}
	case "char", "varchar":
		if c.MaxLength <= SkeletonKeywordMax {
			return t("keyword")
		}
		return map[string]any{"type": "text",
			"fields": map[string]any{"raw": map[string]any{"type": "keyword", "ignore_above": SkeletonIgnoreAbove}}}
	case "tinytext", "text", "mediumtext", "longtext":
		return t("text")
	case "date":
		return map[string]any{"type": "date", "format": "yyyy-MM-dd"}
	case "datetime":
		return map[string]any{"type": "date", "format": DatetimeFormat(c.Precision)}
	case "timestamp":
		return map[string]any{"type": "date", "format": "strict_date_optional_time"}
	case "json":
		return map[string]any{"type": "object", "enabled": false}
	}
	return t("keyword") // enum, set, time and anything else wye sends as a string
}

// DatetimeFormat is the date format of a DATETIME(precision) as wye sends it: the server's
// text form, "2026-05-01 20:00:00" or with exactly precision fraction digits.
func DatetimeFormat(precision int64) string {
	f := "yyyy-MM-dd HH:mm:ss"
	if precision > 0 {
		f += "." + strings.Repeat("S", int(precision))
	}
	return f
}

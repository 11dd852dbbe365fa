package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/indexer"
)

// Check compares what the entities need with the source, in one pass over
// information_schema for every table at once, and returns every fault (docs/indexer.md,
// "Checks at start"):
//   - a table the source lacks, reported as a table (its columns are not reported too);
//   - a view as a root, relation or join table: a view writes no binlog events, so the
//     documents built from it would go stale when its base tables change;
//   - every column the source lacks, under the configuration key that names it;
//   - a where predicate the server refuses (SELECT 1 FROM table WHERE (pred) LIMIT 0);
//
// and, as warnings, every node whose columns are omitted (every column is read, so a DDL on
// the table changes the documents) and every link column whose collation is not binary
// (MySQL joins by collation, wye byte for byte: docs/indexer.md, "Link columns"). The error
// is a failure to ask the source (classified: SourceError), not a fault of the configuration.
func (s *Source) Check(ctx context.Context, needs []indexer.Need) ([]indexer.Fault, error) {
	cat, err := s.catalog(ctx, needs)
	if err != nil {
		return nil, classify(err)
	}
	var out []indexer.Fault
	for _, n := range needs {
		t, found := cat.table(n.Table)
		switch {
		case !found:
			out = append(out, indexer.Fault{Path: n.Path + ".table", Name: n.Name, Value: n.Table,
				Msg: "no such table in the source (or the source user has no privilege on it)"})
			continue
		case t.typ == "VIEW" || t.typ == "SYSTEM VIEW":
			out = append(out, indexer.Fault{Path: n.Path + ".table", Name: n.Name, Value: n.Table,
				Msg: "is a view: a view writes no binlog events, so documents built from it would go stale when its " +
					"base tables change; read the base tables (a relation per table, with where to filter its rows)"})
		}
		if n.AllColumns && !n.Join {
			out = append(out, indexer.Fault{Path: n.Path + ".columns", Name: n.Name, Warning: true,
				Msg: fmt.Sprintf("not set: every column of %s is read, so a DDL on the table (ALTER TABLE ... ADD COLUMN) "+
					"changes the documents and a strict mapping refuses them; list the columns", n.Table)})
		}
		for _, c := range n.Columns {
			coll, found := t.cols[strings.ToLower(c.Name)]
			switch {
			case !found:
				out = append(out, indexer.Fault{Path: c.Field, Name: n.Name, Value: c.Name,
					Msg: fmt.Sprintf("no such column in %s (or the source user cannot see it)", n.Table)})
			case c.Link && coll != "" && coll != "binary" && !strings.HasSuffix(coll, "_bin"):
				out = append(out, indexer.Fault{Path: c.Field, Name: n.Name, Value: c.Name, Warning: true,
					Msg: fmt.Sprintf("link column %s.%s has the collation %s: wye matches its values byte for byte, MySQL "+
						"by collation, so values that differ only in case, accents or trailing spaces would not join "+
						"(use a _bin collation, or keep the values canonical)", n.Table, c.Name, coll)})
			}
		}
		if n.Where != "" {
			f, err := s.checkWhere(ctx, n)
			if err != nil {
				return nil, err
			}
			out = append(out, f...)
		}
	}
	return out, nil
}

// checkWhere has the server parse and resolve n's predicate on its table, without reading a
// row: a syntax error or an unknown column is a fault of the configuration, any other
// failure one of the source.
func (s *Source) checkWhere(ctx context.Context, n indexer.Need) ([]indexer.Fault, error) {
	stmt := "SELECT 1 FROM " + qualified(n.Table) + " WHERE (" + n.Where + ") LIMIT 0"
	rows, err := s.db.QueryContext(ctx, stmt)
	if err == nil {
		return nil, rows.Close()
	}
	se, _ := classify(err).(*indexer.SourceError)
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok && se.Permanent {
		return []indexer.Fault{{Path: n.Path + ".where", Name: n.Name, Value: n.Where,
			Msg: fmt.Sprintf("refused by the source on %s: %s", n.Table, me.Message)}}, nil
	}
	return nil, fmt.Errorf("check the where of %s: %w", n.Path, se)
}

// catalog is what information_schema says of the tables of needs.
type catalog struct {
	tables map[string]catalogTable // "db.table" as the server names it
	fold   bool                    // lower_case_table_names is set: table names compare in any case
}

type catalogTable struct {
	typ  string            // TABLE_TYPE: BASE TABLE, VIEW, SYSTEM VIEW, SEQUENCE
	cols map[string]string // lower-case column name -> its collation ("" for a non-text column)
}

// table finds a "db.table" as the server would.
func (c catalog) table(name string) (catalogTable, bool) {
	if t, ok := c.tables[name]; ok {
		return t, true
	}
	if c.fold {
		for n, t := range c.tables {
			if strings.EqualFold(n, name) {
				return t, true
			}
		}
	}
	return catalogTable{}, false
}

// catalog reads the tables and columns of every schema and table name the needs mention: two
// statements, whatever the number of tables.
func (s *Source) catalog(ctx context.Context, needs []indexer.Need) (catalog, error) {
	cat := catalog{tables: map[string]catalogTable{}}
	var lower int
	if err := s.db.QueryRowContext(ctx, "SELECT @@lower_case_table_names").Scan(&lower); err != nil {
		return cat, fmt.Errorf("read lower_case_table_names: %w", err)
	}
	cat.fold = lower != 0
	var schemas, names []any
	seenSchema, seenName := map[string]bool{}, map[string]bool{}
	for _, n := range needs {
		db, t, _ := strings.Cut(n.Table, ".")
		if !seenSchema[db] {
			seenSchema[db] = true
			schemas = append(schemas, db)
		}
		if !seenName[t] {
			seenName[t] = true
			names = append(names, t)
		}
	}
	if len(schemas) == 0 {
		return cat, nil
	}
	in := func(vs []any) string { return strings.TrimSuffix(strings.Repeat("?,", len(vs)), ",") }
	where := " WHERE TABLE_SCHEMA IN (" + in(schemas) + ") AND TABLE_NAME IN (" + in(names) + ")"
	args := append(append([]any{}, schemas...), names...)
	err := s.scan(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, NULL FROM information_schema.TABLES"+where, args,
		func(table, typ string, _ sql.NullString) {
			cat.tables[table] = catalogTable{typ: typ, cols: map[string]string{}}
		})
	if err != nil {
		return cat, err
	}
	err = s.scan(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS"+where, args,
		func(table, col string, coll sql.NullString) {
			if t, ok := cat.tables[table]; ok {
				t.cols[strings.ToLower(col)] = coll.String
			}
		})
	return cat, err
}

// scan runs one information_schema statement whose rows are schema, table, a name and a
// nullable string, and calls fn with "schema.table" and the rest.
func (s *Source) scan(ctx context.Context, q string, args []any, fn func(table, name string, extra sql.NullString)) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read information_schema: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var db, t, name string
		var extra sql.NullString
		if err := rows.Scan(&db, &t, &name, &extra); err != nil {
			return fmt.Errorf("read information_schema: %w", err)
		}
		fn(db+"."+t, name, extra)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read information_schema: %w", err)
	}
	return nil
}

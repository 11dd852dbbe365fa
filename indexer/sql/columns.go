package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// TableColumn is one column as information_schema.COLUMNS describes it, in the shape
// mapping.Column has (the skeleton chooses field types from it).
type TableColumn struct {
	Name       string
	DataType   string // DATA_TYPE, lower case
	ColumnType string // COLUMN_TYPE, lower case: "int(10) unsigned"
	MaxLength  int64  // CHARACTER_MAXIMUM_LENGTH; 0 for non-text types
	Precision  int64  // DATETIME_PRECISION; 0 when none
}

// Columns reads the columns of every table ("db.table"), in table order. A table the source
// does not have (or the source user cannot see) is an error naming it.
func (s *Source) Columns(ctx context.Context, tables []string) (map[string][]TableColumn, error) {
	out := map[string][]TableColumn{}
	for _, table := range tables {
		db, t, _ := strings.Cut(table, ".")
		rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE),
			CHARACTER_MAXIMUM_LENGTH, DATETIME_PRECISION FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, t)
		if err != nil {
			return nil, classify(fmt.Errorf("read the columns of %s: %w", table, err))
		}
		var cols []TableColumn
		for rows.Next() {
			var c TableColumn
			var maxLen, prec sql.NullInt64
			if err := rows.Scan(&c.Name, &c.DataType, &c.ColumnType, &maxLen, &prec); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read the columns of %s: %w", table, err)
			}
			c.MaxLength, c.Precision = maxLen.Int64, prec.Int64
			cols = append(cols, c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, classify(fmt.Errorf("read the columns of %s: %w", table, err))
		}
		if len(cols) == 0 {
			return nil, fmt.Errorf("read the columns of %s: %w", table, errNoTable)
		}
		out[table] = cols
	}
	return out, nil
}

// errNoTable: a configured table is not in the source (or the source user cannot see it).
var errNoTable = errors.New("no such table in the source (or the source user cannot see it)")

package sql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/indexer"
)

// Source reads through one *sql.DB. Reads must go to the server whose binlog the events
// come from (docs/architecture.md, invariant 4): a lagging replica would freeze stale data
// under a newer version.
type Source struct{ db *sql.DB }

var (
	_ indexer.Source = (*Source)(nil)
	_ indexer.View   = (*view)(nil)
)

// Open connects with cfg, adjusted for reading: the session time zone is UTC so TIMESTAMP
// values read as the binlog carries them, and parameters are interpolated (one round trip
// per query instead of prepare + execute + close).
func Open(cfg *mysql.Config, maxConns int) (*Source, error) {
	cfg = cfg.Clone()
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.InterpolateParams = true
	cfg.ParseTime = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("configure source: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(max(maxConns, 1))
	db.SetMaxIdleConns(max(maxConns, 1))
	return &Source{db: db}, nil
}

// Ping checks the source answers.
func (s *Source) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close closes the connection pool.
func (s *Source) Close() error { return s.db.Close() }

// View starts a read-only REPEATABLE READ transaction: every query of one batch sees the
// same committed state, so a document never mixes two moments.
func (s *Source) View(ctx context.Context) (indexer.View, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, classify(fmt.Errorf("begin read view: %w", err))
	}
	return &view{tx: tx}, nil
}

type view struct{ tx *sql.Tx }

func (v *view) Close() error { return v.tx.Rollback() }

// Rows runs SELECT cols FROM table WHERE where IN (values). Identifiers come from the
// validated configuration (letters, digits, _ and $) and are quoted anyway.
func (v *view) Rows(ctx context.Context, table string, cols []string, where string, values []indexer.Value) ([]indexer.Row, error) {
	q, args := in(table, cols, where, values)
	return v.query(ctx, table, q, args)
}

// Each is Rows one row at a time, in one map reused for every row.
func (v *view) Each(ctx context.Context, table string, cols []string, where string, values []indexer.Value, fn func(indexer.Row)) error {
	q, args := in(table, cols, where, values)
	return classify(v.each(ctx, table, q, args, true, fn))
}

// in is the statement SELECT cols FROM table WHERE where IN (values) and its arguments.
func in(table string, cols []string, where string, values []indexer.Value) (string, []any) {
	var q strings.Builder
	selectFrom(&q, table, cols)
	q.WriteString(" WHERE " + quote(where) + " IN (")
	args := make([]any, len(values))
	for i, val := range values {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
		args[i] = val.Arg()
	}
	q.WriteByte(')')
	return q.String(), args
}

// Scan runs SELECT cols FROM table [WHERE key > after] ORDER BY key LIMIT limit: keyset
// pagination in the order of the key's index.
func (v *view) Scan(ctx context.Context, table string, cols []string, key string, after indexer.Value, limit int) ([]indexer.Row, error) {
	var q strings.Builder
	selectFrom(&q, table, cols)
	var args []any
	if !after.IsNull() {
		q.WriteString(" WHERE " + quote(key) + " > ?")
		args = append(args, after.Arg())
	}
	q.WriteString(" ORDER BY " + quote(key) + " LIMIT " + strconv.Itoa(limit))
	return v.query(ctx, table, q.String(), args)
}

// selectFrom writes SELECT cols FROM table (every column when cols is nil).
func selectFrom(q *strings.Builder, table string, cols []string) {
	q.WriteString("SELECT ")
	if cols == nil {
		q.WriteString("*")
	}
	for i, c := range cols {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(quote(c))
	}
	db, t, _ := strings.Cut(table, ".")
	q.WriteString(" FROM " + quote(db) + "." + quote(t))
}

// query runs one statement in the view and encodes its rows; every error is classified.
func (v *view) query(ctx context.Context, table, q string, args []any) ([]indexer.Row, error) {
	var out []indexer.Row
	if err := v.each(ctx, table, q, args, false, func(r indexer.Row) { out = append(out, r) }); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// each runs one statement in the view and calls fn with every row, encoded: in one map it
// reuses when reuse is set, else in a map of its own.
func (v *view) each(ctx context.Context, table, q string, args []any, reuse bool, fn func(indexer.Row)) error {
	rows, err := v.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("query %s: %w", table, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return fmt.Errorf("query %s: %w", table, err)
	}
	raw := make([]sql.RawBytes, len(types))
	dest := make([]any, len(types))
	names, typs := make([]string, len(types)), make([]string, len(types))
	for i, ct := range types {
		dest[i] = &raw[i]
		names[i], typs[i] = ct.Name(), ct.DatabaseTypeName()
	}
	r := make(indexer.Row, len(types))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		if !reuse {
			r = make(indexer.Row, len(types))
		}
		for i := range raw {
			r[names[i]] = encode(typs[i], raw[i])
		}
		fn(r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	return nil
}

func quote(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

// encode renders one column value in the cdc message encoding (docs/cdc.md), so a document
// built from SQL and a key taken from an event agree byte for byte.
func encode(typ string, b sql.RawBytes) indexer.Value {
	if b == nil {
		return indexer.NullValue
	}
	switch strings.TrimPrefix(typ, "UNSIGNED ") {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR", "FLOAT", "DOUBLE":
		return indexer.Value(b)
	case "TIMESTAMP":
		s := string(b)
		if len(s) >= 19 && !strings.HasPrefix(s, "0000-00-00") {
			s = s[:10] + "T" + s[11:] + "Z"
		}
		return str(s)
	case "JSON":
		if json.Valid(b) {
			return indexer.Value(compact(b))
		}
		return str(string(b))
	case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "GEOMETRY":
		return indexer.Value(`{"$base64":"` + base64.StdEncoding.EncodeToString(b) + `"}`)
	case "BIT": // big-endian bytes; cdc sends the number
		var n uint64
		for _, c := range b {
			n = n<<8 | uint64(c)
		}
		return indexer.Value(strconv.FormatUint(n, 10))
	}
	return str(string(b)) // DECIMAL, DATE, DATETIME, TIME, text types, ENUM, SET
}

// str quotes s as encoding/json does. Most values need no escape at all: they are only
// framed in quotes, without json.Marshal's reflection and allocations.
func str(s string) indexer.Value {
	if plain(s) {
		return indexer.Value(`"` + s + `"`)
	}
	b, _ := json.Marshal(s)
	return indexer.Value(b)
}

// plain reports a string encoding/json writes unchanged between quotes: valid UTF-8 without
// control characters, '"', '\\', the HTML-escaped '<', '>', '&', nor U+2028 and U+2029.
func plain(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s) && !strings.Contains(s, "\u2028") && !strings.Contains(s, "\u2029")
}

func compact(b []byte) []byte {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return b
	}
	return out.Bytes()
}

// LooseLinks returns the link columns that MySQL compares with a collation that is not
// binary, each with its collation: there, values wye treats as different ('ABC', 'abc',
// 'abc ') can be equal for MySQL, and rows MySQL would join are not joined in the document.
// Integer, binary and *_bin columns are safe. A column that does not exist is an error.
func (s *Source) LooseLinks(ctx context.Context, links []indexer.LinkColumn) ([]LooseLink, error) {
	var out []LooseLink
	for _, l := range links {
		db, table, _ := strings.Cut(l.Table, ".")
		var coll sql.NullString
		err := s.db.QueryRowContext(ctx, `SELECT COLLATION_NAME FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?`, db, table, l.Column).Scan(&coll)
		if err == sql.ErrNoRows {
			return nil, fmt.Errorf("entities: %s: column %s.%s: %w", l.Path, l.Table, l.Column, ErrNoColumn)
		}
		if err != nil {
			return nil, fmt.Errorf("read the collation of %s.%s: %w", l.Table, l.Column, err)
		}
		if coll.Valid && coll.String != "binary" && !strings.HasSuffix(coll.String, "_bin") {
			out = append(out, LooseLink{LinkColumn: l, Collation: coll.String})
		}
	}
	return out, nil
}

// ErrNoColumn: a configured link column is not in the source (or the source user cannot see it).
var ErrNoColumn = errors.New("no such column in the source (or the source user cannot see it)")

// LooseLink is a link column with a non-binary collation.
type LooseLink struct {
	indexer.LinkColumn
	Collation string
}

package sql

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/internal/serverid"
)

// Source reads through one *sql.DB. Reads must go to the server whose binlog the events
// come from (docs/architecture.md, invariant 4): a lagging replica would freeze stale data
// under a newer version.
type Source struct {
	db *sql.DB

	mu     sync.Mutex
	tables map[string]columns // "db.table" -> its columns, as bind last read them

	flavor string        // serverid.MariaDB or serverid.MySQL
	follow func() string // the identity of the server cdc follows; nil or "": not checked
}

// Follow makes every view check that it reads the server cdc follows: follow returns that
// server's identity (serverid, as cdc's checkpoint records it; "" while unknown), flavor says
// how to read it. Call it before the first View.
func (s *Source) Follow(flavor string, follow func() string) { s.flavor, s.follow = flavor, follow }

var (
	_ indexer.Source = (*Source)(nil)
	_ indexer.View   = (*view)(nil)
)

// connLifetime bounds how long one pooled connection to the source is reused.
const connLifetime = time.Minute

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
	db := sql.OpenDB(repeatableRead{conn})
	db.SetMaxOpenConns(max(maxConns, 1))
	db.SetMaxIdleConns(max(maxConns, 1))
	// A pooled connection lives at most connLifetime: after a switchover of the source (a DNS
	// name moved to the new primary), reads leave the old server within that time.
	db.SetConnMaxLifetime(connLifetime)
	return &Source{db: db, tables: map[string]columns{}}, nil
}

// Ping checks the source answers.
func (s *Source) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close closes the connection pool.
func (s *Source) Close() error { return s.db.Close() }

// View opens a read-only REPEATABLE READ transaction with its consistent snapshot taken at
// once: every query of one batch sees the same committed state, so a document never mixes two
// moments. Two round trips (START TRANSACTION, the identity check inside the snapshot) and the
// ROLLBACK at Close: the session is REPEATABLE READ from its connection on (repeatableRead).
func (s *Source) View(ctx context.Context) (indexer.View, error) {
	for tries := 1; ; tries++ {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, classify(fmt.Errorf("begin read view: %w", err))
		}
		done := func() error {
			_, err := conn.ExecContext(context.Background(), "ROLLBACK")
			return errors.Join(err, conn.Close())
		}
		if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
			conn.Close()
			// A pooled connection the server closed (a restart) fails before the statement
			// is sent: another one is tried, as database/sql's BeginTx would.
			if errors.Is(err, driver.ErrBadConn) && tries < badConnTries {
				continue
			}
			return nil, classify(fmt.Errorf("begin read view: %w", err))
		}
		if err := s.same(ctx, conn); err != nil {
			done()
			return nil, err
		}
		return &view{tx: conn, done: done, src: s}, nil
	}
}

// badConnTries is how many pooled connections View tries when each turns out closed.
const badConnTries = 3

// repeatableRead sets every new connection's session to REPEATABLE READ, whatever the
// server's default: the only level at which a transaction reads one consistent snapshot. Once
// per connection, instead of a SET TRANSACTION before each view.
type repeatableRead struct{ driver.Connector }

func (c repeatableRead) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("the MySQL driver's connection cannot execute statements")
	}
	if _, err := ex.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// same checks, inside the view's snapshot, that the view reads the server cdc follows: a
// pooled connection opened before a switchover, or source.host naming a replica, would read
// rows older than the changes (invariant 4). The error is transient: the batch waits until
// the connection is recycled (connLifetime) or cdc follows this server.
func (s *Source) same(ctx context.Context, q serverid.Querier) error {
	if s.follow == nil {
		return nil
	}
	want := s.follow()
	if want == "" {
		return nil // cdc has not saved a checkpoint yet
	}
	got, err := serverid.Read(ctx, q, s.flavor)
	if err != nil {
		return classify(err)
	}
	if got != want {
		return &indexer.SourceError{Err: fmt.Errorf("the source connection reads server %q but cdc follows %q "+
			"(a switchover this connection has not seen, or source.host names another server); the batch waits", got, want)}
	}
	return nil
}

type view struct {
	tx   querier // the view's transaction: a *sql.Tx, or the *sql.Conn of a Snapshot
	done func() error
	src  *Source
}

// querier is what a view reads through.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (v *view) Close() error { return v.done() }

// Rows runs SELECT cols FROM table WHERE where IN (values) [AND (filter.Where)] [ORDER BY
// filter.Order]. Identifiers come from the validated configuration (letters, digits, _ and
// $) and are quoted anyway; the predicate is the configuration's, inserted as given.
func (v *view) Rows(ctx context.Context, table string, cols []string, where string, values []indexer.Value, filter indexer.Filter) ([]indexer.Row, error) {
	q, args, err := v.in(ctx, table, cols, where, values, filter)
	if err != nil || q == "" {
		return nil, classify(err)
	}
	return v.query(ctx, table, q, args)
}

// Each is Rows one row at a time, its values in one slice reused for every row.
func (v *view) Each(ctx context.Context, table string, cols []string, where string, values []indexer.Value, filter indexer.Filter, fn func(indexer.Row)) error {
	q, args, err := v.in(ctx, table, cols, where, values, filter)
	if err != nil || q == "" {
		return classify(err)
	}
	return classify(v.each(ctx, table, q, args, true, fn))
}

// in is the statement SELECT cols FROM table WHERE where IN (values), narrowed and ordered by
// filter, and its arguments, each value bound in the column's type; "" when no value can
// equal one of the column's.
func (v *view) in(ctx context.Context, table string, cols []string, where string, values []indexer.Value, filter indexer.Filter) (string, []any, error) {
	col, err := v.column(ctx, table, where)
	if err != nil {
		return "", nil, err
	}
	var q strings.Builder
	selectFrom(&q, table, cols)
	q.WriteString(" WHERE " + quote(where) + " IN (")
	args := make([]any, 0, len(values))
	for _, val := range values {
		expr, arg, ok := col.bind(val)
		if !ok {
			continue
		}
		if len(args) > 0 {
			q.WriteByte(',')
		}
		q.WriteString(expr)
		args = append(args, arg)
	}
	if len(args) == 0 {
		return "", nil, nil
	}
	q.WriteByte(')')
	if filter.Where != "" {
		q.WriteString(" AND (" + filter.Where + ")")
	}
	for i, o := range filter.Order {
		if i == 0 {
			q.WriteString(" ORDER BY ")
		} else {
			q.WriteByte(',')
		}
		q.WriteString(quote(o.Column))
		if o.Desc {
			q.WriteString(" DESC")
		}
	}
	return q.String(), args, nil
}

// Scan runs SELECT cols FROM table [WHERE key > after] ORDER BY key LIMIT limit: keyset
// pagination in the order of the key's index.
func (v *view) Scan(ctx context.Context, table string, cols []string, key string, after indexer.Value, limit int) ([]indexer.Row, error) {
	var q strings.Builder
	selectFrom(&q, table, cols)
	var args []any
	if !after.IsNull() {
		col, err := v.column(ctx, table, key)
		if err != nil {
			return nil, classify(err)
		}
		expr, arg, ok := col.bind(after)
		if !ok { // a key the column cannot hold: MySQL's own comparison orders it
			expr, arg = "?", after.Arg()
		}
		q.WriteString(" WHERE " + quote(key) + " > " + expr)
		args = append(args, arg)
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
	q.WriteString(" FROM " + qualified(table))
}

// qualified quotes "db.table" as `db`.`table`.
func qualified(table string) string {
	db, t, _ := strings.Cut(table, ".")
	return quote(db) + "." + quote(t)
}

// query runs one statement in the view and encodes its rows; every error is classified.
func (v *view) query(ctx context.Context, table, q string, args []any) ([]indexer.Row, error) {
	var out []indexer.Row
	if err := v.each(ctx, table, q, args, false, func(r indexer.Row) { out = append(out, r) }); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// each runs one statement in the view and calls fn with every row, encoded: every row under
// one Columns, its values in one slice reused for every row when reuse is set, else in room of
// its own (shared with other rows: few allocations for many rows).
func (v *view) each(ctx context.Context, table, q string, args []any, reuse bool, fn func(indexer.Row)) error {
	rows, err := v.tx.QueryContext(ctx, q, args...)
	if err != nil {
		v.src.forget(table) // the columns may have changed (a DDL): bind reads them again
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
	enc := newRowEncoder(names, typs)
	var vals []indexer.Value
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		if !reuse || vals == nil {
			vals = enc.room()
		}
		fn(enc.row(vals, raw))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	return nil
}

func quote(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

// rowEncoder encodes the rows of one query: its columns (names, shared by every row) and
// their database types.
type rowEncoder struct {
	cols   *indexer.Columns
	typs   []string
	buf    []byte          // the row being encoded, reused from row to row
	ends   []int           // where each column's value ends in buf
	shared []indexer.Value // room for the values of the next rows
	rows   int             // rows given room so far
}

// newRowEncoder encodes rows of the columns names of database types typs.
func newRowEncoder(names, typs []string) *rowEncoder {
	return &rowEncoder{cols: indexer.NewColumns(names...), typs: typs, ends: make([]int, len(names))}
}

// maxRowsRoom bounds the rows whose values one allocation holds.
const maxRowsRoom = 256

// room returns room for the values of one row, from one allocation for many rows: as many
// more as were read so far, from 8 up to maxRowsRoom (a read of a few rows reserves little).
func (e *rowEncoder) room() []indexer.Value {
	n := len(e.ends)
	if len(e.shared) < n {
		e.shared = make([]indexer.Value, n*min(max(e.rows, 8), maxRowsRoom))
	}
	e.rows++
	vals := e.shared[:n:n]
	e.shared = e.shared[n:]
	return vals
}

// row is the row of the values of raw, encoded (encode) into one string (one allocation per
// row, not one per value) and set in vals (one per column).
func (e *rowEncoder) row(vals []indexer.Value, raw []sql.RawBytes) indexer.Row {
	e.buf = e.buf[:0]
	for i, b := range raw {
		e.buf = appendValue(e.buf, e.typs[i], b)
		e.ends[i] = len(e.buf)
	}
	s, start := string(e.buf), 0
	for i := range vals {
		vals[i] = indexer.Value(s[start:e.ends[i]])
		start = e.ends[i]
	}
	return indexer.NewRow(e.cols, vals)
}

// encode renders one column value in the cdc message encoding (docs/cdc.md), so a document
// built from SQL and a key taken from an event agree byte for byte.
func encode(typ string, b sql.RawBytes) indexer.Value {
	if b == nil {
		return indexer.NullValue
	}
	return indexer.Value(appendValue(nil, typ, b))
}

// appendValue appends the encoding of one column value (encode) to buf.
func appendValue(buf []byte, typ string, b sql.RawBytes) []byte {
	if b == nil {
		return append(buf, indexer.NullValue...)
	}
	// Integers come as the event has them: the server sends ZEROFILL values and YEAR 0
	// unpadded ("42", "0"; the mysql client pads them itself).
	switch strings.TrimPrefix(typ, "UNSIGNED ") {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR", "FLOAT", "DOUBLE":
		return append(buf, b...)
	case "TIMESTAMP":
		s := unsafeString(b)
		if len(s) >= 19 && !strings.HasPrefix(s, "0000-00-00") {
			if s[10] < utf8.RuneSelf && plain(s) { // "YYYY-MM-DDThh:mm:ss[.ffffff]Z" without a copy
				buf = append(append(append(buf, '"'), s[:10]...), 'T')
				return append(append(buf, s[11:]...), 'Z', '"')
			}
			s = s[:10] + "T" + s[11:] + "Z"
		}
		return appendStr(buf, s)
	case "JSON":
		if json.Valid(b) {
			return append(buf, compact(b)...)
		}
		return appendStr(buf, unsafeString(b))
	case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "GEOMETRY":
		buf = append(buf, `{"$base64":"`...)
		return append(base64.StdEncoding.AppendEncode(buf, b), `"}`...)
	case "BIT": // big-endian bytes; cdc sends the number
		var n uint64
		for _, c := range b {
			n = n<<8 | uint64(c)
		}
		return strconv.AppendUint(buf, n, 10)
	}
	// DECIMAL, DATE, DATETIME, TIME, text types, ENUM, SET: most need no escape and are
	// framed in quotes.
	return appendStr(buf, unsafeString(b))
}

// unsafeString views b as a string for a read that does not outlive b (plain, appendStr).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// str quotes s as encoding/json does. Most values need no escape at all: they are only
// framed in quotes, without json.Marshal's reflection and allocations.
func str(s string) indexer.Value { return indexer.Value(appendStr(nil, s)) }

// appendStr appends s quoted as encoding/json quotes it (str).
func appendStr(buf []byte, s string) []byte {
	if plain(s) {
		return append(append(append(buf, '"'), s...), '"')
	}
	b, _ := json.Marshal(s)
	return append(buf, b...)
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

// columns are one table's columns by name.
type columns map[string]column

// column is what binding a value needs to know of a column (information_schema.COLUMNS).
type column struct {
	typ                string // DATA_TYPE: "int", "varchar", ...; "" when not known
	charset, collation string // of text and ENUM/SET columns
	precision, scale   int64  // of DECIMAL
}

// column describes the column name of table, read once per table and Source (again after a
// read of the table failed, or when the column is new).
func (v *view) column(ctx context.Context, table, name string) (column, error) {
	v.src.mu.Lock()
	c, found := v.src.tables[table][name]
	v.src.mu.Unlock()
	if found {
		return c, nil
	}
	db, t, _ := strings.Cut(table, ".")
	rows, err := v.tx.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, COLLATION_NAME,
		NUMERIC_PRECISION, NUMERIC_SCALE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, db, t)
	if err != nil {
		return column{}, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	defer rows.Close()
	cols := columns{}
	for rows.Next() {
		var n string
		var c column
		var cs, coll sql.NullString
		var prec, scale sql.NullInt64
		if err := rows.Scan(&n, &c.typ, &cs, &coll, &prec, &scale); err != nil {
			return column{}, fmt.Errorf("read the columns of %s: %w", table, err)
		}
		c.typ = strings.ToLower(c.typ)
		c.charset, c.collation, c.precision, c.scale = cs.String, coll.String, prec.Int64, scale.Int64
		cols[n] = c
	}
	if err := rows.Err(); err != nil {
		return column{}, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	v.src.mu.Lock()
	v.src.tables[table] = cols
	v.src.mu.Unlock()
	return cols[name], nil // a column that does not exist binds as typ "": the query names it
}

// forget drops the columns read of table.
func (s *Source) forget(table string) {
	s.mu.Lock()
	delete(s.tables, table)
	s.mu.Unlock()
}

// bind returns the SQL expression comparing v (an event's or a read's value, possibly of
// another column: a foreign key) with the column in the column's own type and character set,
// and its argument; ok is false when no value of the column can equal v. Bound so, the
// server compares in the column's collation and can use its index: a utf8mb4 string compared
// with a latin1 column without conversion fails ("Illegal mix of collations", error 1267/1270)
// as soon as one value of an IN list has no latin1 form, and a string compared with a
// DECIMAL is compared as a double.
func (c column) bind(v indexer.Value) (expr string, arg any, ok bool) {
	if v.IsNull() {
		return "", nil, false
	}
	switch c.typ {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "year", "bit":
		s := number(v)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return "?", n, true
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return "?", n, true
		}
		return "", nil, false
	case "decimal":
		s := number(v)
		if !isDecimal(s) {
			return "", nil, false
		}
		return "CAST(? AS DECIMAL(" + strconv.FormatInt(c.precision, 10) + "," + strconv.FormatInt(c.scale, 10) + "))", s, true
	case "float", "double":
		f, err := strconv.ParseFloat(number(v), 64)
		return "?", f, err == nil
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set":
		s := number(v)
		if b, isBin := v.Bytes(); isBin {
			s = string(b)
		}
		if c.charset == "" || c.charset == "utf8mb4" || !isName(c.charset) || !isName(c.collation) {
			return "?", s, true // the connection's character set: the column's collation wins
		}
		// CONVERT: a character the column's charset lacks becomes '?' (a warning, no error),
		// and the row read back does not match the value byte for byte.
		return "CONVERT(? USING " + c.charset + ") COLLATE " + c.collation, s, true
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		if b, isBin := v.Bytes(); isBin {
			return "?", b, true
		}
		return "?", []byte(number(v)), true
	case "date", "datetime", "time":
		return "?", v.ID(), true
	case "timestamp": // the session is in UTC (Open); cdc writes RFC 3339
		s := v.ID()
		if len(s) >= 20 && s[10] == 'T' && s[len(s)-1] == 'Z' {
			s = s[:10] + " " + s[11:len(s)-1]
		}
		return "?", s, true
	}
	return "?", v.Arg(), true
}

// number is the text of a number or of a string value (its content).
func number(v indexer.Value) string {
	if len(v) > 0 && v[0] == '"' {
		return v.ID()
	}
	return string(v)
}

// isDecimal reports [-]digits[.digits], the text of a DECIMAL.
func isDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	intPart, frac, dot := strings.Cut(s, ".")
	digits := func(d string) bool {
		for i := 0; i < len(d); i++ {
			if d[i] < '0' || d[i] > '9' {
				return false
			}
		}
		return true
	}
	return intPart != "" && digits(intPart) && digits(frac) && (!dot || frac != "")
}

// isName reports a character set or collation name that can be written into a statement.
func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}

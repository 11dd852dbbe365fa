package indexer

import "context"

// Source is the database whose binlog the events come from (docs/architecture.md,
// invariant 4: read fresh).
type Source interface {
	// View opens a consistent read view: every read on it sees the same committed state.
	View(ctx context.Context) (View, error)
}

// View is one consistent view of the source. Each call is one SQL query.
type View interface {
	// Rows returns the rows of table whose column where holds one of values and that
	// filter holds, in filter's order, with the named columns (nil: all), encoded as Values.
	// values is never empty.
	Rows(ctx context.Context, table string, cols []string, where string, values []Value, filter Filter) ([]Row, error)
	// Each is Rows without holding the rows: fn sees one row at a time, and must not keep
	// it (the next row may reuse it). Lookups that fan out to many rows use it, so that
	// memory does not grow with them.
	Each(ctx context.Context, table string, cols []string, where string, values []Value, filter Filter, fn func(Row)) error
	// Scan returns up to limit rows of table in the order of column key, those whose key is
	// greater than after (every row from the first when after is null): keyset pagination,
	// never OFFSET.
	Scan(ctx context.Context, table string, cols []string, key string, after Value, limit int) ([]Row, error)
	Close() error
}

// Filter narrows and orders a read of a relation's table (RelationDef.Where and OrderBy).
// The zero Filter reads every matching row in no particular order.
type Filter struct {
	Where string  // an SQL predicate on the table's own columns, ANDed in parentheses; "": none
	Order []Order // ORDER BY; nil: none
}

// SourceError is a read of the source that failed, as the SQL adapter classified it (one
// classification at the database boundary). The retry loop checks it with errors.As.
type SourceError struct {
	// Permanent: the same read fails again until an operator acts (unknown column or table
	// after a DDL, access denied, illegal mix of collations, packet too large). Otherwise the
	// failure is transient (connection lost, deadlock, lock wait timeout, server gone away).
	Permanent bool
	// ValueDependent: the failure depends on the values the read was given (a collation the
	// server cannot compare them in, a packet too large), so a read of fewer values may pass.
	// Only a permanent error is checked for it.
	ValueDependent bool
	Code           uint16 // the server's error number; 0 when the server gave none
	Err            error
}

func (e *SourceError) Error() string {
	if e.Permanent {
		return "source (permanent): " + e.Err.Error()
	}
	return "source: " + e.Err.Error()
}

func (e *SourceError) Unwrap() error { return e.Err }

// maxIn bounds one IN list; longer lists are split into several queries.
const maxIn = 1000

// counted is a View that counts its queries (wye_indexer_sql_queries_per_batch) and splits
// IN lists longer than maxIn.
type counted struct {
	View
	queries int
}

func (c *counted) Rows(ctx context.Context, table string, cols []string, where string, values []Value, filter Filter) ([]Row, error) {
	var out []Row
	for chunk := range chunks(values, maxIn) {
		c.queries++
		rows, err := c.View.Rows(ctx, table, cols, where, chunk, filter)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

func (c *counted) Each(ctx context.Context, table string, cols []string, where string, values []Value, filter Filter, fn func(Row)) error {
	for chunk := range chunks(values, maxIn) {
		c.queries++
		if err := c.View.Each(ctx, table, cols, where, chunk, filter, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *counted) Scan(ctx context.Context, table string, cols []string, key string, after Value, limit int) ([]Row, error) {
	c.queries++
	return c.View.Scan(ctx, table, cols, key, after, limit)
}

// count wraps v so that its queries are counted, unless it already is.
func count(v View) *counted {
	if c, ok := v.(*counted); ok {
		return c
	}
	return &counted{View: v}
}

func chunks(vs []Value, n int) func(func([]Value) bool) {
	return func(yield func([]Value) bool) {
		for len(vs) > 0 {
			k := min(n, len(vs))
			if !yield(vs[:k]) {
				return
			}
			vs = vs[k:]
		}
	}
}

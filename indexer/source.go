package indexer

import "context"

// Source reads the database whose binlog the events come from (invariant 4: read fresh).
type Source interface {
	// Snapshot opens a consistent read view: every Rows call on it sees the same state.
	Snapshot(ctx context.Context) (Reader, error)
}

// Reader is one consistent view of the source. Each Rows call is one SQL query.
type Reader interface {
	// Rows returns the rows of table whose column where holds one of values, with the
	// named columns (nil: all), encoded as Values. values is never empty.
	Rows(ctx context.Context, table string, cols []string, where string, values []Value) ([]Row, error)
	Close() error
}

// maxIn bounds one IN list; longer lists are split into several queries.
const maxIn = 1000

// counter counts the queries one batch makes (wye_indexer_sql_queries_per_batch).
type counter struct {
	r       Reader
	queries int
}

func (c *counter) rows(ctx context.Context, table string, cols []string, where string, values []Value) ([]Row, error) {
	var out []Row
	for chunk := range chunks(values, maxIn) {
		c.queries++
		rows, err := c.r.Rows(ctx, table, cols, where, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
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

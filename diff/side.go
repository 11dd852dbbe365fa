package diff

import (
	"context"
	"errors"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
)

// side is one side of a comparison: a cluster's index, or the documents built from MySQL.
type side interface {
	name() string
	// pages calls fn with every document of the side in pages of at most size, with their
	// _source when source is true. fn must not keep the slice.
	pages(ctx context.Context, size int, source bool, fn func([]cluster.Hit) error) error
	// get reads ids now: the ones found, with their _source when source is true.
	get(ctx context.Context, ids []string, source bool) (map[string]cluster.Hit, error)
	// count is about how many documents the side holds (progress, sampling); -1: unknown.
	count(ctx context.Context) int64
}

// clusterSide is one cluster's index of an entity.
type clusterSide struct {
	cluster string
	r       Reader
	index   string
}

func (c *clusterSide) name() string { return c.cluster }

func (c *clusterSide) pages(ctx context.Context, size int, source bool, fn func([]cluster.Hit) error) error {
	return c.r.Scan(ctx, c.index, size, source, fn)
}

func (c *clusterSide) get(ctx context.Context, ids []string, source bool) (map[string]cluster.Hit, error) {
	var hits map[string]cluster.Hit
	err := retry(ctx, func() (err error) {
		hits, err = c.r.Get(ctx, c.index, ids, source)
		return err
	})
	return hits, err
}

func (c *clusterSide) count(ctx context.Context) int64 {
	n, err := c.r.Count(ctx, c.index)
	if err != nil {
		return -1
	}
	return n
}

// readTries bounds the tries of one read of a cluster that fails retryable (no answer, 429,
// 5xx): a busy cluster must not fail a whole diff on one timeout.
const readTries = 4

func retry(ctx context.Context, read func() error) error {
	wait := 500 * time.Millisecond
	for try := 1; ; try++ {
		err := read()
		if err == nil || ctx.Err() != nil || try == readTries || cluster.ClassOf(err) != cluster.Retryable {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait *= 2
	}
}

// mysqlSide is the documents wye builds from MySQL now, by the indexer's own denormalizer: the
// bytes the stream would write. They carry no version.
type mysqlSide struct {
	model  *indexer.Model
	src    indexer.Source
	entity *indexer.Entity
}

func (m *mysqlSide) name() string { return "mysql" }

// pages reads the entity in key order, each page in its own consistent view.
func (m *mysqlSide) pages(ctx context.Context, size int, _ bool, fn func([]cluster.Hit) error) error {
	var after indexer.Value
	hits := make([]cluster.Hit, 0, size)
	for {
		var docs []indexer.Doc
		err := m.view(ctx, func(v indexer.View) (err error) {
			docs, err = m.model.DenormalizeRange(ctx, v, m.entity.Name, after, size, 0)
			return err
		})
		if err != nil {
			return err
		}
		hits = hits[:0]
		for _, d := range docs {
			hits = append(hits, cluster.Hit{ID: d.ID, Source: d.Source})
		}
		if len(hits) > 0 {
			if err := fn(hits); err != nil {
				return err
			}
		}
		if len(docs) < size {
			return nil
		}
		after = docs[len(docs)-1].Key
	}
}

func (m *mysqlSide) get(ctx context.Context, ids []string, source bool) (map[string]cluster.Hit, error) {
	out := make(map[string]cluster.Hit, len(ids))
	err := m.view(ctx, func(v indexer.View) error {
		if !source {
			have, err := m.model.Exists(ctx, v, m.entity.Name, ids)
			for id, ok := range have {
				if ok {
					out[id] = cluster.Hit{ID: id}
				}
			}
			return err
		}
		refs := make(map[indexer.Ref]int64, len(ids))
		for _, id := range ids {
			refs[indexer.Ref{Entity: m.entity.Name, Key: indexer.IDValue(id)}] = 0
		}
		docs, err := m.model.Denormalize(ctx, v, refs)
		for _, d := range docs {
			if d.Source != nil {
				out[d.ID] = cluster.Hit{ID: d.ID, Source: d.Source}
			}
		}
		return err
	})
	return out, err
}

// estimator is a source that can tell about how many rows a table holds (*indexersql.Source).
type estimator interface {
	Estimate(ctx context.Context, table string) (int64, error)
}

func (m *mysqlSide) count(ctx context.Context) int64 {
	if e, ok := m.src.(estimator); ok {
		if n, err := e.Estimate(ctx, m.entity.Table()); err == nil {
			return n
		}
	}
	return -1
}

// view runs fn in a new consistent view, again with backoff while the source fails
// transiently.
func (m *mysqlSide) view(ctx context.Context, fn func(indexer.View) error) error {
	wait := 500 * time.Millisecond
	for try := 1; ; try++ {
		err := func() error {
			v, err := m.src.View(ctx)
			if err != nil {
				return err
			}
			defer v.Close()
			return fn(v)
		}()
		var se *indexer.SourceError
		if err == nil || ctx.Err() != nil || !errors.As(err, &se) || se.Permanent || try == readTries {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait *= 2
	}
}

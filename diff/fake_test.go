package diff

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
)

// fakeCluster holds documents by id; onGet (when set) runs before each Get, under no lock.
type fakeCluster struct {
	mu    sync.Mutex
	docs  map[string]cluster.Hit
	gets  int
	onGet func(n int, c *fakeCluster)
	down  bool
}

func newCluster() *fakeCluster { return &fakeCluster{docs: map[string]cluster.Hit{}} }

func (c *fakeCluster) put(id string, version int64, source string) {
	c.mu.Lock()
	c.docs[id] = cluster.Hit{ID: id, Version: version, Source: []byte(source)}
	c.mu.Unlock()
}

func (c *fakeCluster) Get(_ context.Context, _ string, ids []string, source bool) (map[string]cluster.Hit, error) {
	c.mu.Lock()
	c.gets++
	n, hook := c.gets, c.onGet
	c.mu.Unlock()
	if hook != nil {
		hook(n, c)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errors.New("connection refused")
	}
	out := map[string]cluster.Hit{}
	for _, id := range ids {
		if h, ok := c.docs[id]; ok {
			if !source {
				h.Source = nil
			}
			out[id] = h
		}
	}
	return out, nil
}

func (c *fakeCluster) Count(context.Context, string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.docs)), nil
}

func (c *fakeCluster) Scan(_ context.Context, _ string, size int, source bool, fn func([]cluster.Hit) error) error {
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		return errors.New("connection refused")
	}
	var all []cluster.Hit
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range c.docs {
			if !yield(id) {
				return
			}
		}
	}) {
		h := c.docs[id]
		if !source {
			h.Source = nil
		}
		all = append(all, h)
	}
	c.mu.Unlock()
	for len(all) > 0 {
		n := min(size, len(all))
		if err := fn(all[:n]); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

func model() *indexer.Model {
	m, err := indexer.NewModel([]indexer.EntityDef{{Name: "program", Index: "programs", Table: "db.programs", Key: "id",
		Columns: []indexer.Column{{Name: "id", Field: "id"}, {Name: "title", Field: "title"}}}})
	if err != nil {
		panic(err)
	}
	return m
}

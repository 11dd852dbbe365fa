package nightly

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
)

// fakeSource is a one-table source: rows by integer id, every snapshot at version.
type fakeSource struct {
	mu        sync.Mutex
	titles    map[int]string
	version   int64
	snapshots int
	failAfter int // >0: the Snapshot after this many fails permanently (a kill)
	scanned   int // root rows read in key order
}

func newSource(n int) *fakeSource {
	s := &fakeSource{titles: map[int]string{}, version: 1000}
	for i := 1; i <= n; i++ {
		s.titles[i] = "t" + strconv.Itoa(i)
	}
	return s
}

var errKilled = errors.New("killed")

func (s *fakeSource) Snapshot(context.Context) (indexer.View, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshots++
	if s.failAfter > 0 && s.snapshots > s.failAfter {
		return nil, 0, errKilled
	}
	rows := map[int]string{}
	for k, v := range s.titles {
		rows[k] = v
	}
	return &fakeView{rows: rows, src: s}, s.version, nil
}

func (s *fakeSource) Estimate(context.Context, string) (int64, error) {
	return int64(len(s.titles)), nil
}

type fakeView struct {
	rows map[int]string
	src  *fakeSource
}

func (v *fakeView) row(id int) indexer.Row {
	return indexer.RowOf("id", strconv.Itoa(id), "title", strconv.Quote(v.rows[id]))
}

func (v *fakeView) Rows(ctx context.Context, table string, cols []string, where string, values []indexer.Value, filter indexer.Filter) ([]indexer.Row, error) {
	var out []indexer.Row
	err := v.Each(ctx, table, cols, where, values, filter, func(r indexer.Row) { out = append(out, r) })
	return out, err
}

func (v *fakeView) Each(_ context.Context, _ string, _ []string, _ string, values []indexer.Value, _ indexer.Filter, fn func(indexer.Row)) error {
	for _, val := range values {
		id, err := strconv.Atoi(val.ID())
		if err != nil {
			return err
		}
		if _, ok := v.rows[id]; ok {
			fn(v.row(id))
		}
	}
	return nil
}

func (v *fakeView) Scan(_ context.Context, _ string, _ []string, _ string, after indexer.Value, limit int) ([]indexer.Row, error) {
	from := 0
	if !after.IsNull() {
		from, _ = strconv.Atoi(after.ID())
	}
	var ids []int
	for id := range v.rows {
		if id > from {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []indexer.Row
	for _, id := range ids[:min(limit, len(ids))] {
		out = append(out, v.row(id))
	}
	v.src.mu.Lock()
	v.src.scanned += len(out)
	v.src.mu.Unlock()
	return out, nil
}

func (v *fakeView) Close() error { return nil }

// fakeCluster holds documents by id with versions; it is a Reader and a ClusterWriter.
type fakeCluster struct {
	name   string
	mu     sync.Mutex
	docs   map[string]cluster.Hit
	down   bool
	writes int // documents written or deleted
}

func newCluster(name string) *fakeCluster {
	return &fakeCluster{name: name, docs: map[string]cluster.Hit{}}
}

var errDown = errors.New("connection refused")

func (c *fakeCluster) Name() string { return c.name }

func (c *fakeCluster) Get(_ context.Context, _ string, ids []string, _ bool) (map[string]cluster.Hit, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errDown
	}
	out := map[string]cluster.Hit{}
	for _, id := range ids {
		if h, ok := c.docs[id]; ok {
			out[id] = h
		}
	}
	return out, nil
}

func (c *fakeCluster) Refresh(context.Context, string) error { return nil }

func (c *fakeCluster) Count(context.Context, string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return 0, errDown
	}
	return int64(len(c.docs)), nil
}

func (c *fakeCluster) Scan(_ context.Context, _ string, size int, _ bool, fn func([]cluster.Hit) error) error {
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		return errDown
	}
	var all []cluster.Hit
	for _, h := range c.docs {
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

// Write applies external versioning: a write or delete with a version not above the held one
// is Stale.
func (c *fakeCluster) Write(_ context.Context, docs []indexer.Doc) []indexer.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]indexer.Result, len(docs))
	for i, d := range docs {
		if c.down {
			out[i] = indexer.Result{Class: indexer.Retryable, Unavailable: true, Reason: "down"}
			continue
		}
		if h, ok := c.docs[d.ID]; ok && h.Version >= d.Version {
			out[i] = indexer.Result{Class: indexer.Stale, Status: 409}
			continue
		}
		c.writes++
		if d.Source == nil {
			delete(c.docs, d.ID)
			continue
		}
		c.docs[d.ID] = cluster.Hit{ID: d.ID, Version: d.Version, Source: d.Source}
	}
	return out
}

func (c *fakeCluster) put(id string, version int64, source string) {
	c.docs[id] = cluster.Hit{ID: id, Version: version, Source: []byte(source)}
}

func (c *fakeCluster) cluster() Cluster {
	return Cluster{Name: c.name, Reader: c, Writer: c, Index: func(_ context.Context, alias string) (string, error) { return alias, nil }}
}

// fakeStore is the control schema's nightly tables in memory.
type fakeStore struct {
	mu       sync.Mutex
	runs     []control.NightlyRun
	progress map[int64]map[string]control.NightlyProgress
	marks    []control.ResyncMark
	resolved []int64
}

func newStore() *fakeStore {
	return &fakeStore{progress: map[int64]map[string]control.NightlyProgress{}}
}

func (s *fakeStore) Unfinished(context.Context) (control.NightlyRun, bool, error) {
	for i := len(s.runs) - 1; i >= 0; i-- {
		if s.runs[i].Status == control.RunRunning {
			return s.runs[i], true, nil
		}
	}
	return control.NightlyRun{}, false, nil
}

func (s *fakeStore) Start(_ context.Context, scope string) (control.NightlyRun, error) {
	r := control.NightlyRun{ID: int64(len(s.runs) + 1), Scope: scope, Status: control.RunRunning, Started: time.Now()}
	s.runs = append(s.runs, r)
	return r, nil
}

func (s *fakeStore) Resume(_ context.Context, id int64) (control.NightlyRun, error) {
	s.runs[id-1].Resumes++
	return s.runs[id-1], nil
}

func (s *fakeStore) Abandon(_ context.Context, id int64) error {
	s.runs[id-1].Status = control.RunAbandoned
	return nil
}

func (s *fakeStore) Finish(_ context.Context, id int64, status, summary string) error {
	s.runs[id-1].Status, s.runs[id-1].Summary = status, summary
	return nil
}

func (s *fakeStore) Progress(_ context.Context, id int64) ([]control.NightlyProgress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []control.NightlyProgress
	for _, p := range s.progress[id] {
		out = append(out, p)
	}
	return out, nil
}

func (s *fakeStore) Save(_ context.Context, id int64, p control.NightlyProgress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progress[id] == nil {
		s.progress[id] = map[string]control.NightlyProgress{}
	}
	s.progress[id][p.Entity+"/"+p.Step] = p
	return nil
}

func (s *fakeStore) ResyncMarks(context.Context) ([]control.ResyncMark, error) { return s.marks, nil }

func (s *fakeStore) Resolve(_ context.Context, ids []int64) error {
	s.resolved = append(s.resolved, ids...)
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

// doc is the document the model builds for id with title at version.
func doc(id int, title string, version int64) string {
	return fmt.Sprintf(`{"id":%d,"title":%q,"wye_version":%d}`, id, title, version)
}

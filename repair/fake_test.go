package repair

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
)

// source is a one-table source (db.programs: id, title); every snapshot is at version.
type source struct {
	titles  map[int]string
	version int64
}

func (s *source) Snapshot(context.Context) (indexer.View, int64, error) { return s, s.version, nil }

func (s *source) Rows(ctx context.Context, table string, cols []string, where string, values []indexer.Value, f indexer.Filter) ([]indexer.Row, error) {
	var out []indexer.Row
	err := s.Each(ctx, table, cols, where, values, f, func(r indexer.Row) { out = append(out, r) })
	return out, err
}

func (s *source) Each(_ context.Context, _ string, _ []string, _ string, values []indexer.Value, _ indexer.Filter, fn func(indexer.Row)) error {
	for _, v := range values {
		id, err := strconv.Atoi(v.ID())
		if err != nil {
			return err
		}
		if t, ok := s.titles[id]; ok {
			fn(indexer.RowOf("id", strconv.Itoa(id), "title", strconv.Quote(t)))
		}
	}
	return nil
}

func (s *source) Scan(context.Context, string, []string, string, indexer.Value, int) ([]indexer.Row, error) {
	return nil, nil
}

func (s *source) Close() error { return nil }

// ledger is repair_ledger in memory, with MarkRepaired's compare-and-set.
type ledger struct {
	mu       sync.Mutex
	entries  map[string]*control.LedgerEntry // cluster/entity/id
	repaired map[string]bool
	// beforeMark runs before each MarkRepaired (a miss recorded meanwhile).
	beforeMark func()
}

func newLedger() *ledger {
	return &ledger{entries: map[string]*control.LedgerEntry{}, repaired: map[string]bool{}}
}

func key(cluster, entity, id string) string { return cluster + "/" + entity + "/" + id }

// record is control.Store.Record: the highest version kept, repaired_at cleared.
func (l *ledger) record(cluster, id string, version int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := key(cluster, "program", id)
	e := l.entries[k]
	if e == nil {
		e = &control.LedgerEntry{Cluster: cluster, Entity: "program", ID: id, Class: "retryable"}
		l.entries[k] = e
	}
	e.Version = max(e.Version, version)
	l.repaired[k] = false
}

func (l *ledger) pending(cluster string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, e := range l.entries {
		if e.Cluster == cluster && !l.repaired[k] {
			out = append(out, e.ID)
		}
	}
	slices.Sort(out)
	return out
}

func (l *ledger) Pending(_ context.Context, cluster string, from control.LedgerKey, limit int) ([]control.LedgerEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []control.LedgerEntry
	for k, e := range l.entries {
		if e.Cluster == cluster && !l.repaired[k] && cmp.Or(strings.Compare(e.Entity, from.Entity), strings.Compare(e.ID, from.ID)) > 0 {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(a, b control.LedgerEntry) int {
		return cmp.Or(strings.Compare(a.Entity, b.Entity), strings.Compare(a.ID, b.ID))
	})
	return out[:min(limit, len(out))], nil
}

func (l *ledger) MarkRepaired(_ context.Context, cluster string, done []control.Repaired) (int, error) {
	if l.beforeMark != nil {
		l.beforeMark()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range done {
		k := key(cluster, d.Entity, d.ID)
		if e := l.entries[k]; e != nil && !l.repaired[k] && e.Version <= d.Version {
			l.repaired[k] = true
			n++
		}
	}
	return n, nil
}

func (l *ledger) LedgerStats(context.Context, time.Duration) (map[string]control.LedgerStats, error) {
	out := map[string]control.LedgerStats{}
	for _, c := range []string{"os2", "es8"} {
		out[c] = control.LedgerStats{Pending: int64(len(l.pending(c)))}
	}
	return out, nil
}

// slave holds documents by id with external versions; it is a Reader and a ClusterWriter.
type slave struct {
	name       string
	docs       map[string]cluster.Hit
	down       bool
	lies       bool             // Get answers an older version than it holds (a write that did not stick)
	tombstones map[string]int64 // deletes the fetch does not show
	// afterWrite runs after each Write (the stream writing meanwhile).
	afterWrite func()
	writes     []indexer.Doc
}

func newSlave(name string) *slave { return &slave{name: name, docs: map[string]cluster.Hit{}} }

func (c *slave) Name() string { return c.name }

func (c *slave) Write(_ context.Context, docs []indexer.Doc) []indexer.Result {
	out := make([]indexer.Result, len(docs))
	for i, d := range docs {
		switch h, ok := c.docs[d.ID]; {
		case c.down:
			out[i] = indexer.Result{Class: indexer.Retryable, Unavailable: true, Reason: "connection refused"}
		case ok && h.Version >= d.Version, c.tombstones[d.ID] >= d.Version:
			out[i] = indexer.Result{Class: indexer.Stale, Status: 409}
		case d.Source == nil:
			c.writes = append(c.writes, d)
			delete(c.docs, d.ID)
		default:
			c.writes = append(c.writes, d)
			c.docs[d.ID] = cluster.Hit{ID: d.ID, Version: d.Version, Source: d.Source}
		}
	}
	if c.afterWrite != nil {
		c.afterWrite()
	}
	return out
}

func (c *slave) Get(_ context.Context, _ string, ids []string, _ bool) (map[string]cluster.Hit, error) {
	out := map[string]cluster.Hit{}
	for _, id := range ids {
		if h, ok := c.docs[id]; ok {
			if c.lies {
				h.Version = 1
			}
			out[id] = h
		}
	}
	return out, nil
}

func model() *indexer.Model {
	m, err := indexer.NewModel([]indexer.EntityDef{{Name: "program", Index: "programs", Table: "db.programs", Key: "id",
		Columns: []indexer.Column{{Name: "id", Field: "id"}, {Name: "title", Field: "title"}}}})
	if err != nil {
		panic(err)
	}
	return m
}

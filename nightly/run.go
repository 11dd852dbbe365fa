package nightly

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/compare"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/internal/defaults"
	"github.com/wyehq/wye/internal/reason"
	"github.com/wyehq/wye/internal/runreport"
	"github.com/wyehq/wye/internal/snapshot"
)

// Steps of an entity, as progress records them.
const (
	stepRows    = "rows"    // the source in key order, compared chunk by chunk
	stepOrphans = "orphans" // each cluster's ids, checked against the source
)

// scope is what a run covers; a killed run is resumed only by a run of the same scope.
type scope struct {
	Entities     []string `json:"entities"`
	Clusters     []string `json:"clusters"`
	DryRun       bool     `json:"dry_run"`
	RewriteAll   bool     `json:"rewrite_all"`
	IntoNewIndex bool     `json:"into_new_index"`
}

// rowsState is the saved progress of an entity's rows step.
type rowsState struct {
	Rows    int64             `json:"rows"`
	Chunks  int               `json:"chunks"`
	FirstV  int64             `json:"first_v"`
	LastV   int64             `json:"last_v"`
	Seconds float64           `json:"seconds"`
	Tallies map[string]*Tally `json:"tallies"`
}

// run is one run's state.
type run struct {
	opts     Options
	row      control.NightlyRun
	rep      *Report
	ids      *ids
	log      *slog.Logger
	prog     *progress
	mu       sync.Mutex
	failures map[string]int    // cluster -> chunks failed in a row
	down     map[string]string // cluster -> why the run left it out
	bytes    *runreport.Pacer  // bulk bytes written, every cluster together
}

// Run resyncs opts.Entities on opts.Clusters and returns the report; its Status says whether
// every cluster equals MySQL. An error means the run could not go on (the control schema, the
// source failing for good, cancellation): what it did is saved, and the next run resumes it.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.ChunkRows = defaults.Positive(opts.ChunkRows, DefaultChunkRows)
	opts.ScanPage = defaults.Positive(opts.ScanPage, DefaultScanPage)
	opts.MaxDeleteShare = defaults.Positive(opts.MaxDeleteShare, DefaultMaxDeleteShare)
	opts.LogEvery = defaults.Positive(opts.LogEvery, DefaultLogEvery)
	opts.Metrics = cmp.Or(opts.Metrics, NewMetrics(nil))
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	entities, err := pick(opts.Model, opts.Entities)
	if err != nil {
		return nil, err
	}
	if len(opts.Clusters) == 0 {
		return nil, errors.New("nightly: no clusters")
	}
	r := &run{opts: opts, log: opts.Logger, failures: map[string]int{}, down: map[string]string{},
		bytes: runreport.NewPacer(opts.BytesPerSecond)}
	sc := scope{DryRun: opts.DryRun, RewriteAll: opts.RewriteAll, IntoNewIndex: opts.IntoNewIndex}
	for _, e := range entities {
		sc.Entities = append(sc.Entities, e.Name)
	}
	for _, c := range opts.Clusters {
		sc.Clusters = append(sc.Clusters, c.Name)
	}
	done, err := r.begin(ctx, sc)
	if err != nil {
		return nil, err
	}
	r.rep = &Report{Run: r.row.ID, Resumes: r.row.Resumes, Started: r.row.Started, DryRun: opts.DryRun,
		RewriteAll: opts.RewriteAll, IntoNewIndex: opts.IntoNewIndex}
	if opts.Report != "" {
		path := idsPath(opts.Report, r.row.Resumes)
		if r.ids, err = openIDs(path); err != nil {
			return nil, err
		}
		for a := 0; a <= r.row.Resumes; a++ {
			if p := idsPath(opts.Report, a); a == r.row.Resumes || exists(p) {
				r.rep.IDsFiles = append(r.rep.IDsFiles, p)
			}
		}
	}
	opts.Metrics.Running.Set(1)
	defer opts.Metrics.Running.Set(0)
	r.prog = newProgress(opts.Terminal, opts.LogEvery, r.log)
	stopProgress := r.prog.start(ctx)

	for _, e := range entities {
		rep, err := r.entity(ctx, e, done[e.Name])
		if rep != nil {
			r.rep.Entities = append(r.rep.Entities, rep)
		}
		if err != nil {
			stopProgress()
			r.ids.close()
			return r.rep, err
		}
	}
	stopProgress()
	if err := r.ids.close(); err != nil {
		r.rep.Problems = append(r.rep.Problems, err.Error())
	}
	return r.rep, r.finish(ctx, entities)
}

// pick returns the entities named (every entity when names is empty), in the model's order.
func pick(m *indexer.Model, names []string) ([]*indexer.Entity, error) {
	if len(names) == 0 {
		return m.Entities(), nil
	}
	var out []*indexer.Entity
	for _, e := range m.Entities() {
		if slices.Contains(names, e.Name) {
			out = append(out, e)
		}
	}
	for _, n := range names {
		if m.Entity(n) == nil {
			return nil, fmt.Errorf("nightly: entity %q is not configured", n)
		}
	}
	return out, nil
}

// begin resumes the unfinished run of the same scope, or starts a new one (abandoning an
// unfinished run of another scope), and returns the saved progress by entity and step.
func (r *run) begin(ctx context.Context, sc scope) (map[string]map[string]control.NightlyProgress, error) {
	b, _ := json.Marshal(sc)
	st := r.opts.Store
	old, ok, err := st.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case ok && old.Scope == string(b) && !r.opts.NoResume:
		if r.row, err = st.Resume(ctx, old.ID); err != nil {
			return nil, err
		}
		r.log.Info("resuming the nightly run killed before it finished", "run", old.ID, "started", old.Started, "resumes", r.row.Resumes)
	case ok:
		why := "its scope differs"
		if r.opts.NoResume {
			why = "--resume=false"
		}
		r.log.Info("abandoning an unfinished nightly run", "run", old.ID, "why", why, "its_scope", old.Scope)
		if err := st.Abandon(ctx, old.ID); err != nil {
			return nil, err
		}
		fallthrough
	default:
		if r.row, err = st.Start(ctx, string(b)); err != nil {
			return nil, err
		}
	}
	saved, err := st.Progress(ctx, r.row.ID)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]control.NightlyProgress{}
	for _, p := range saved {
		if out[p.Entity] == nil {
			out[p.Entity] = map[string]control.NightlyProgress{}
		}
		out[p.Entity][p.Step] = p
	}
	return out, nil
}

// target is one cluster as one entity's resync sees it.
type target struct {
	Cluster
	index string // the index compared
	empty bool   // it held no document when the entity started: nothing to compare
}

// entity resyncs one entity: its rows in key order, then each cluster's orphans.
func (r *run) entity(ctx context.Context, e *indexer.Entity, saved map[string]control.NightlyProgress) (*Entity, error) {
	rep := &Entity{Name: e.Name}
	st := rowsState{Tallies: map[string]*Tally{}}
	rowsStep, orphanStep := saved[stepRows], saved[stepOrphans]
	if len(rowsStep.Counts) > 0 {
		if err := json.Unmarshal(rowsStep.Counts, &st); err != nil {
			return nil, fmt.Errorf("nightly: saved progress of %s: %w", e.Name, err)
		}
		rep.Resumed = !(rowsStep.Done && orphanStep.Done)
	}
	var targets []*target
	for _, c := range r.opts.Clusters {
		t := st.Tallies[c.Name]
		if t == nil {
			t = &Tally{Cluster: c.Name}
			st.Tallies[c.Name] = t
		}
		if why := r.downReason(c.Name); why != "" {
			t.Error = "left out of the run: " + why
			continue
		}
		var index string
		err := r.retry(ctx, c.Name, "indices", func() (err error) {
			index, err = c.Index(ctx, e.Index)
			return err
		})
		if err == nil {
			t.Index = index
			var empty bool
			err = r.retry(ctx, c.Name, "count", func() (err error) {
				empty, err = isEmpty(ctx, c.Reader, index)
				return err
			})
			if err == nil {
				targets = append(targets, &target{Cluster: c, index: index, empty: empty})
				continue
			}
		}
		t.Error = reason.Cut("", err.Error())
		r.problem("cluster %s, entity %s: %s", c.Name, e.Name, t.Error)
	}

	// The orphan scans run beside the rows step: they need no order, and a cluster's scan then
	// costs no time of its own. A cluster that was empty when the entity started holds no
	// document from before the run, so no orphan: it is not scanned. The breaker's share is of
	// the larger of the index and the root table (InnoDB's estimate): an index half loaded before
	// the run must not make every orphan a mass delete, and a source that lost its rows (or the
	// wrong database) still trips it.
	began, base := time.Now(), st.Seconds
	expected, _ := r.opts.Source.Estimate(ctx, e.Table())
	orphans := map[string]*Tally{}
	var scan sync.WaitGroup
	var rowsErr, orphanErr error
	if !orphanStep.Done {
		var full []*target
		for _, t := range targets {
			if !t.empty {
				full = append(full, t)
			}
		}
		scan.Go(func() { orphanErr = r.orphans(ctx, e, full, expected, orphans) })
	} else if err := json.Unmarshal(orphanStep.Counts, &orphans); err != nil {
		return nil, fmt.Errorf("nightly: saved orphan counts of %s: %w", e.Name, err)
	}
	if !rowsStep.Done {
		r.prog.entity(e.Name, expected, st.Rows)
		rowsErr = r.rows(ctx, e, targets, &st, &rowsStep)
	}
	scan.Wait()
	if err := errors.Join(rowsErr, orphanErr); err != nil {
		rep.fill(st, r.opts.Clusters)
		return rep, err
	}
	if !orphanStep.Done {
		b, _ := json.Marshal(orphans)
		if err := r.opts.Store.Save(ctx, r.row.ID, control.NightlyProgress{Entity: e.Name, Step: stepOrphans, Done: true, Counts: b}); err != nil {
			return rep, err
		}
	}
	for name, o := range orphans {
		if t := st.Tallies[name]; t != nil {
			t.add(o)
		}
	}
	st.Seconds = base + time.Since(began).Seconds()
	rep.fill(st, r.opts.Clusters)
	return rep, nil
}

// isEmpty reports an index that holds no document at all, so that an initial load reads
// nothing back. Count sees only what the last refresh made visible, and a run right after a
// load would take a full index for an empty one (and rewrite it): the index is refreshed first,
// and one that cannot be refreshed (a role without the privilege) is compared as usual.
func isEmpty(ctx context.Context, r Reader, index string) (bool, error) {
	n, err := r.Count(ctx, index)
	if err != nil || n > 0 {
		return false, err
	}
	if r.Refresh(ctx, index) != nil {
		return false, nil
	}
	n, err = r.Count(ctx, index)
	return n == 0, err
}

// fill copies the saved state into the report.
func (e *Entity) fill(st rowsState, clusters []Cluster) {
	names := make([]string, len(clusters))
	for i, c := range clusters {
		names[i] = c.Name
	}
	e.Rows, e.Chunks, e.FirstV, e.LastV, e.Seconds = st.Rows, st.Chunks, st.FirstV, st.LastV, st.Seconds
	e.Clusters = sortedTallies(st.Tallies, names)
}

// chunk is one snapshot's documents.
type chunk struct {
	docs    []indexer.Doc
	version int64
	err     error
}

// rows reads the entity in key order, one snapshot per chunk, one chunk ahead of the clusters
// (two chunks in memory at most), compares and writes each chunk on every cluster at once and
// saves the progress after it: a killed run repeats at most one chunk. The clusters move in
// step on purpose: letting a fast cluster run ahead would let it finish chunks past the saved
// position, and a resume would compare them again (a per-cluster position cannot skip them
// safely: rows inserted or deleted meanwhile move the chunk boundaries).
func (r *run) rows(ctx context.Context, e *indexer.Entity, targets []*target, st *rowsState, p *control.NightlyProgress) error {
	started := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	after := indexer.Value(p.After)
	chunks := make(chan chunk, 1)
	go r.read(ctx, e, after, chunks)
	base := st.Seconds
	rows := runreport.NewPacer(r.opts.RowsPerSecond)
	for c := range chunks {
		if c.err != nil {
			return c.err
		}
		if len(c.docs) > 0 {
			var wg sync.WaitGroup
			tallies := make([]*Tally, len(targets))
			for i, t := range targets {
				wg.Go(func() { tallies[i] = r.chunk(ctx, e, t, c) })
			}
			wg.Wait()
			for i, t := range targets {
				if tallies[i] != nil {
					st.Tallies[t.Name].add(tallies[i])
					r.opts.Metrics.record(t.Name, e.Name, tallies[i])
					r.prog.add(tallies[i])
				}
			}
			st.Rows += int64(len(c.docs))
			st.FirstV = cmp.Or(st.FirstV, c.version)
			st.LastV = c.version
			r.opts.Metrics.Rows.WithLabelValues(e.Name).Add(float64(len(c.docs)))
			r.prog.rows(int64(len(c.docs)))
			p.After = string(c.docs[len(c.docs)-1].Key)
		}
		p.Chunks++
		st.Chunks = p.Chunks
		p.Done = len(c.docs) < r.opts.ChunkRows
		st.Seconds = base + time.Since(started).Seconds()
		b, _ := json.Marshal(st)
		p.Entity, p.Step, p.Counts = e.Name, stepRows, b
		if err := r.opts.Store.Save(ctx, r.row.ID, *p); err != nil {
			return err
		}
		if p.Done {
			return nil
		}
		if err := rows.Wait(ctx, int64(len(c.docs))); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// read sends the entity's chunks in key order from after, each read in its own snapshot with
// that snapshot's version, until the table ends, an error, or ctx ends.
func (r *run) read(ctx context.Context, e *indexer.Entity, after indexer.Value, out chan<- chunk) {
	defer close(out)
	for {
		var c chunk
		c.err = r.source(ctx, func(v indexer.View, version int64) error {
			docs, err := r.opts.Model.DenormalizeRange(ctx, v, e.Name, after, r.opts.ChunkRows, version)
			c.docs, c.version = docs, version
			return err
		})
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
		if c.err != nil || len(c.docs) < r.opts.ChunkRows {
			return
		}
		after = c.docs[len(c.docs)-1].Key
	}
}

// source runs fn in a new snapshot, trying again with backoff while the source fails
// transiently (a restart, a lost connection); a permanent failure ends the run.
func (r *run) source(ctx context.Context, fn func(v indexer.View, version int64) error) error {
	if err := snapshot.Read(ctx, r.opts.Source.Snapshot, 10, 30*time.Second, r.log, fn); err != nil {
		return fmt.Errorf("nightly: source: %w", err)
	}
	return nil
}

// chunk compares one chunk with one cluster and writes what differs; nil when the cluster is
// left out of the run.
func (r *run) chunk(ctx context.Context, e *indexer.Entity, t *target, c chunk) *Tally {
	if r.isDown(t.Name) {
		return nil
	}
	tally := &Tally{}
	var hits map[string]cluster.Hit
	if !t.empty && !r.opts.RewriteAll {
		ids := make([]string, len(c.docs))
		for i, d := range c.docs {
			ids[i] = d.ID
		}
		err := r.retry(ctx, t.Name, "mget", func() (err error) {
			hits, err = get(ctx, t.Reader, t.index, ids)
			return err
		})
		if err != nil {
			r.failedChunk(t.Name, e.Name, err)
			tally.fail("unavailable", int64(len(c.docs)))
			r.ids.add("failed:unavailable", t.Name, e.Name, ids)
			return tally
		}
	}
	var write []indexer.Doc
	var missing, different []string
	for _, d := range c.docs {
		if r.opts.RewriteAll {
			write = append(write, d)
			continue
		}
		h, found := hits[d.ID]
		switch compare.Doc(d.Source, d.Version, found, h.Source, h.Version, e.VersionField) {
		case compare.Equal:
			tally.Equal++
		case compare.Newer:
			tally.Skipped++
		case compare.Missing:
			tally.Missing++
			missing = append(missing, d.ID)
			write = append(write, d)
		case compare.Different:
			tally.Different++
			different = append(different, d.ID)
			write = append(write, d)
		}
	}
	r.ids.add("missing", t.Name, e.Name, missing)
	r.ids.add("different", t.Name, e.Name, different)
	if r.opts.DryRun || len(write) == 0 {
		r.okChunk(t.Name)
		return tally
	}
	r.write(ctx, e, t, write, tally)
	return tally
}

// getParts is how many _mget requests one chunk's ids are split into, sent at once: an _mget
// runs on one thread per shard, and the compare of a chunk waits for it.
const getParts = 4

// get reads ids with getParts concurrent _mget requests.
func get(ctx context.Context, r Reader, index string, ids []string) (map[string]cluster.Hit, error) {
	size := (len(ids) + getParts - 1) / getParts
	parts := make([]map[string]cluster.Hit, getParts)
	errs := make([]error, getParts)
	var wg sync.WaitGroup
	for i := range getParts {
		lo, hi := min(i*size, len(ids)), min((i+1)*size, len(ids))
		if lo == hi {
			continue
		}
		wg.Go(func() { parts[i], errs[i] = r.Get(ctx, index, ids[lo:hi], true) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make(map[string]cluster.Hit, len(ids))
	for _, p := range parts {
		maps.Copy(out, p)
	}
	return out, nil
}

// write writes docs to one cluster, again while it answers retryable (429, 5xx), counts each
// document's last class, and returns the ids the cluster took.
func (r *run) write(ctx context.Context, e *indexer.Entity, t *target, docs []indexer.Doc, tally *Tally) (took []string) {
	r.paceBytes(ctx, docs)
	wait := time.Second
	var last indexer.Result
	for try := 1; len(docs) > 0; try++ {
		results := t.Writer.Write(ctx, docs)
		var again []indexer.Doc
		unavailable := true
		for i, res := range results {
			unavailable = unavailable && res.Unavailable
			switch {
			case res.Class == indexer.OK:
				if docs[i].Source == nil {
					tally.Deleted++
				} else {
					tally.Written++
				}
				took = append(took, docs[i].ID)
			case res.Class == indexer.Stale:
				tally.Skipped++
			case res.Class == indexer.Retryable && try < DefaultWriteTries && ctx.Err() == nil:
				again = append(again, docs[i])
				last = res
			default:
				tally.fail(res.Class.String(), 1)
				r.ids.add("failed:"+res.Class.String(), t.Name, e.Name, []string{docs[i].ID})
				last = res
			}
		}
		if unavailable && len(results) > 0 {
			r.failedChunk(t.Name, e.Name, errors.New(last.Reason))
		} else {
			r.okChunk(t.Name)
		}
		if len(again) > 0 {
			r.log.Warn("cluster refused some writes for now; trying them again", "cluster", t.Name, "entity", e.Name,
				"documents", len(again), "in", wait, "reason", last.Reason)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			wait = min(2*wait, 10*time.Second)
		}
		docs = again
	}
	if tally.Failed > 0 {
		r.log.Warn("documents not written", "cluster", t.Name, "entity", e.Name, "failed", tally.Failed, "reason", last.Reason)
	}
	return took
}

// orphans scans each cluster's documents of the entity (all clusters at once) and deletes
// those whose root row the source does not hold, with the version of the snapshot that said
// so: a stream write after it survives. Unless AllowMassDelete, the deletes wait for the end of
// the scan and are refused when they exceed MaxDeleteShare of the index.
func (r *run) orphans(ctx context.Context, e *indexer.Entity, targets []*target, expected int64, out map[string]*Tally) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make([]error, len(targets))
	for i, t := range targets {
		wg.Go(func() {
			tally := &Tally{}
			errs[i] = r.orphansOf(ctx, e, t, expected, tally)
			r.prog.add(tally)
			mu.Lock()
			out[t.Name] = tally
			mu.Unlock()
			r.opts.Metrics.record(t.Name, e.Name, tally)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) orphansOf(ctx context.Context, e *indexer.Entity, t *target, expected int64, tally *Tally) error {
	if r.isDown(t.Name) {
		return nil
	}
	var total int64
	err := r.retry(ctx, t.Name, "count", func() (err error) {
		total, err = t.Reader.Count(ctx, t.index)
		return err
	})
	if err != nil {
		r.failedChunk(t.Name, e.Name, err)
		tally.Error = reason.Cut("", "orphan scan: "+err.Error())
		r.problem("cluster %s, entity %s: %s", t.Name, e.Name, tally.Error)
		return nil
	}
	limit := int64(r.opts.MaxDeleteShare * float64(max(total, expected)))
	// Orphans wait here for the end of the scan unless mass deletes are allowed; past the
	// limit they are only counted, so memory stays bounded by the limit.
	var pending []indexer.Doc
	var deleted int64 // orphans counted and deleted by an earlier try of the scan
	err = r.retry(ctx, t.Name, "scan", func() error {
		// A scan tried again starts over: what an earlier try found but did not delete is
		// found again.
		pending, tally.Orphans = nil, deleted
		return t.Reader.Scan(ctx, t.index, r.opts.ScanPage, false, func(hits []cluster.Hit) error {
			ids := make([]string, len(hits))
			for i, h := range hits {
				ids[i] = h.ID
			}
			var gone []indexer.Doc
			err := r.source(ctx, func(v indexer.View, version int64) error {
				have, err := r.opts.Model.Exists(ctx, v, e.Name, ids)
				for _, h := range hits {
					// A copy at a version above the snapshot was written after it: not an orphan.
					if err == nil && !have[h.ID] && h.Version < version {
						gone = append(gone, indexer.Doc{Entity: e.Name, Index: e.Index, ID: h.ID, Key: indexer.IDValue(h.ID), Version: version})
					}
				}
				return err
			})
			if err != nil {
				return err
			}
			tally.Orphans += int64(len(gone))
			switch {
			case r.opts.AllowMassDelete && !r.opts.DryRun:
				r.ids.add("deleted", t.Name, e.Name, r.write(ctx, e, t, gone, tally))
				deleted += int64(len(gone))
			case tally.Orphans <= limit || r.opts.AllowMassDelete:
				pending = append(pending, gone...)
			default:
				pending = nil
			}
			return ctx.Err()
		})
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.As(err, new(*indexer.SourceError)) {
			return err
		}
		r.failedChunk(t.Name, e.Name, err)
		tally.Error = reason.Cut("", "orphan scan: "+err.Error())
		r.problem("cluster %s, entity %s: %s", t.Name, e.Name, tally.Error)
		return nil
	}
	if !r.opts.AllowMassDelete && tally.Orphans > limit {
		tally.Refused = true
		r.problem("cluster %s, index %s: %d orphans of %d documents (%.1f%%), over the limit of %.1f%%: none deleted; "+
			"if MySQL really lost them, run again with --allow-mass-delete", t.Name, t.index, tally.Orphans, max(total, expected),
			100*float64(tally.Orphans)/float64(max(total, expected, 1)), 100*r.opts.MaxDeleteShare)
		return nil
	}
	for len(pending) > 0 {
		n := min(len(pending), r.opts.ChunkRows)
		if r.opts.DryRun {
			for _, d := range pending[:n] {
				r.ids.add("orphan", t.Name, e.Name, []string{d.ID})
			}
		} else {
			r.ids.add("deleted", t.Name, e.Name, r.write(ctx, e, t, pending[:n], tally))
		}
		pending = pending[n:]
	}
	return nil
}

// retry runs read, again with backoff while it fails with a retryable cluster error (no
// answer, 429, 5xx, a shard that timed out), DefaultReadTries times at most: a slow or
// restarting cluster must not fail a whole run on its first timeout.
func (r *run) retry(ctx context.Context, name, what string, read func() error) error {
	wait := time.Second
	for try := 1; ; try++ {
		err := read()
		if err == nil || ctx.Err() != nil || try == DefaultReadTries || cluster.ClassOf(err) != cluster.Retryable {
			return err
		}
		r.log.Warn("cluster read failed; trying again", "cluster", name, "read", what, "try", try, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// failedChunk counts a chunk the cluster failed; DefaultClusterFailures in a row leave the
// cluster out of the rest of the run.
func (r *run) failedChunk(cluster, entity string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures[cluster]++
	r.log.Warn("cluster failed a chunk", "cluster", cluster, "entity", entity, "in_a_row", r.failures[cluster], "err", err)
	if r.failures[cluster] >= DefaultClusterFailures && r.down[cluster] == "" {
		r.down[cluster] = reason.Cut("", err.Error())
		r.rep.Problems = append(r.rep.Problems, fmt.Sprintf("cluster %s left out of the run after %d failed chunks in a row: %s",
			cluster, DefaultClusterFailures, r.down[cluster]))
		r.log.Error("cluster left out of the nightly run; the others go on", "cluster", cluster, "err", err)
	}
}

func (r *run) okChunk(cluster string) {
	r.mu.Lock()
	r.failures[cluster] = 0
	r.mu.Unlock()
}

func (r *run) isDown(cluster string) bool { return r.downReason(cluster) != "" }

// downReason is why the run left cluster out; "" while it is in.
func (r *run) downReason(cluster string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down[cluster]
}

func (r *run) problem(format string, args ...any) {
	r.mu.Lock()
	r.rep.Problems = append(r.rep.Problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// paceBytes waits while the bulk bytes written exceed BytesPerSecond.
func (r *run) paceBytes(ctx context.Context, docs []indexer.Doc) {
	if r.opts.BytesPerSecond <= 0 {
		return
	}
	var n int64
	for _, d := range docs {
		n += int64(d.BulkSize())
	}
	r.bytes.Wait(ctx, n)
}

// finish closes the run: resolves the resync marks it covered, records its status and
// summary, writes the report.
func (r *run) finish(ctx context.Context, entities []*indexer.Entity) error {
	rep := r.rep
	for _, e := range rep.Entities {
		for _, t := range e.Clusters {
			if t.Failed > 0 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("cluster %s, entity %s: %d documents not written (%v)", t.Cluster, e.Name, t.Failed, t.Failures))
			}
			// A dry run writes nothing: what it found is what keeps the clusters apart.
			if n := t.Missing + t.Different + t.Orphans; r.opts.DryRun && n > 0 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("cluster %s, entity %s: %d documents differ from MySQL (dry run: %d missing, %d different, %d orphans)",
					t.Cluster, e.Name, n, t.Missing, t.Different, t.Orphans))
			}
		}
	}
	rep.Status = control.RunEqual
	if rep.failed() {
		rep.Status = control.RunFailed
	}
	if rep.Status == control.RunEqual && !r.opts.DryRun && r.opts.AllClusters {
		n, err := r.resolveMarks(ctx, entities)
		if err != nil {
			return err
		}
		rep.MarksResolved = n
	}
	rep.Finished = time.Now()
	rep.Seconds = rep.Finished.Sub(rep.Started).Seconds()
	summary, _ := json.Marshal(struct {
		Status   string   `json:"status"`
		Entities int      `json:"entities"`
		Problems []string `json:"problems,omitempty"`
	}{rep.Status, len(rep.Entities), rep.Problems})
	if err := r.opts.Store.Finish(ctx, r.row.ID, rep.Status, reason.Cut("", string(summary))); err != nil {
		return err
	}
	m := r.opts.Metrics
	m.LastSeconds.Set(rep.Seconds)
	if rep.Status == control.RunEqual {
		m.LastStatus.Set(0)
		m.LastSuccess.SetToCurrentTime()
	} else {
		m.LastStatus.Set(1)
	}
	if r.opts.Report != "" {
		return rep.Write(r.opts.Report)
	}
	return nil
}

// resolveMarks resolves the resync marks made before the run started whose table every entity
// reading it was resynced ("*": every entity of the model was).
func (r *run) resolveMarks(ctx context.Context, entities []*indexer.Entity) (int, error) {
	marks, err := r.opts.Store.ResyncMarks(ctx)
	if err != nil {
		return 0, err
	}
	covered := map[string]bool{}
	for _, e := range entities {
		covered[e.Name] = true
	}
	all := len(entities) == len(r.opts.Model.Entities())
	var ids []int64
	for _, m := range marks {
		if !m.Created.Before(r.row.Started) {
			continue
		}
		ok := all
		if m.Table != "*" {
			ok = true
			for _, e := range r.opts.Model.Entities() {
				if slices.Contains(e.Tables(), m.Table) && !covered[e.Name] {
					ok = false
				}
			}
		}
		if ok {
			ids = append(ids, m.ID)
		}
	}
	if err := r.opts.Store.Resolve(ctx, ids); err != nil {
		return 0, err
	}
	return len(ids), nil
}

// idsPath is the id list of attempt a of the run whose report is at report.
func idsPath(report string, a int) string {
	base := strings.TrimSuffix(report, ".json")
	if a == 0 {
		return base + ".ids.gz"
	}
	return fmt.Sprintf("%s.ids.%d.gz", base, a)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

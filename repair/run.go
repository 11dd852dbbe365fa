package repair

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/internal/defaults"
	"github.com/wyehq/wye/internal/reason"
	"github.com/wyehq/wye/internal/runreport"
	"github.com/wyehq/wye/internal/snapshot"
)

// Failure classes of an entry left pending (Tally.Failures).
const (
	FailRetryable   = "retryable"      // the cluster answered 429/5xx (or no index) every try
	FailPermanent   = "permanent"      // the cluster refused the document (mapping, parsing)
	FailUnavailable = "unavailable"    // the cluster took no write at all (down, blocked)
	FailVerify      = "verify"         // written, but the fetch did not show the written version
	FailBehind      = "behind"         // the snapshot's version is below the entry's missed version
	FailEntity      = "unknown_entity" // the entry's entity is not configured any more
	FailSource      = "source"         // the source refused the entity's reads for good
)

// Run repairs the pending ledger entries of every cluster of opts, one cluster after the
// other, and returns what it did. An error means the repair could not go on (the control
// schema, the source failing, cancellation); what it marked is marked.
//
// Per page of entries: one snapshot of the source with its version V (Source.Snapshot); the
// entries whose missed version is above V are left pending (class FailBehind: the snapshot
// cannot be newer than a change cdc already published unless cdc's checkpoint lags a source
// change or the snapshot reads another server; writing V would put a version below the miss).
// The rest are denormalized in that snapshot with version V (a row gone: a delete with V),
// written, fetched back, and marked repaired only where the cluster holds V or a newer version
// (control.Store.MarkRepaired, a compare-and-set on the missed version).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Model == nil || opts.Source == nil || opts.Ledger == nil {
		return nil, errors.New("repair: model, source and ledger are required")
	}
	if len(opts.Clusters) == 0 {
		return nil, errors.New("repair: no clusters")
	}
	opts.Page = defaults.Positive(opts.Page, DefaultPage)
	opts.LogEvery = defaults.Positive(opts.LogEvery, DefaultLogEvery)
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	if opts.Rate == 0 {
		opts.Rate = DefaultRate
	}
	rep := &Report{Started: time.Now(), DryRun: opts.DryRun}
	stats, err := opts.Ledger.LedgerStats(ctx, 0)
	if err != nil {
		return nil, err
	}
	prog := &progress{term: opts.Terminal, log: opts.Logger}
	stop := runreport.Tick(ctx, opts.Terminal != nil, opts.LogEvery, prog.show)
	defer func() {
		stop()
		prog.end()
	}()
	pace := runreport.NewPacer(opts.Rate)
	for _, c := range opts.Clusters {
		t := &Tally{Cluster: c.Name, Failures: map[string]int64{}}
		rep.Clusters = append(rep.Clusters, t)
		prog.cluster(t, stats[c.Name].Pending)
		if c.Err != nil {
			t.Error = reason.Cut("", c.Err.Error())
			continue
		}
		r := &repair{opts: opts, c: c, t: t, prog: prog}
		if err := r.run(ctx, pace); err != nil {
			rep.Seconds = time.Since(rep.Started).Seconds()
			return rep, err
		}
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

// repair is the repair of one cluster.
type repair struct {
	opts Options
	c    Cluster
	t    *Tally
	prog *progress
}

func (r *repair) run(ctx context.Context, pace *runreport.Pacer) error {
	var from control.LedgerKey
	for {
		entries, err := r.opts.Ledger.Pending(ctx, r.c.Name, from, r.opts.Page)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		r.prog.mu.Lock()
		r.t.Pending += int64(len(entries))
		r.prog.mu.Unlock()
		if err := r.page(ctx, entries); err != nil {
			return err
		}
		last := entries[len(entries)-1]
		from = control.LedgerKey{Entity: last.Entity, ID: last.ID}
		if len(entries) < r.opts.Page {
			return nil
		}
		if err := pace.Wait(ctx, int64(len(entries))); err != nil {
			return err
		}
	}
}

// page repairs one page of entries.
func (r *repair) page(ctx context.Context, entries []control.LedgerEntry) error {
	var docs []indexer.Doc
	var version int64
	read := time.Now()
	defer func() {
		r.opts.Logger.Debug("repair page", "cluster", r.c.Name, "entries", len(entries), "took", time.Since(read))
	}()
	err := r.source(ctx, func(v indexer.View, snap int64) error {
		version = snap
		refs := map[indexer.Ref]int64{}
		for _, e := range entries {
			switch {
			case r.opts.Model.Entity(e.Entity) == nil:
				r.fail(FailEntity, 1)
			case e.Version > snap:
				r.fail(FailBehind, 1)
				r.opts.Logger.Warn("snapshot version below the missed version: entry left pending; "+
					"cdc's checkpoint lags a source change, or the snapshot reads another server than cdc follows",
					"cluster", r.c.Name, "entity", e.Entity, "id", e.ID, "missed", e.Version, "snapshot", snap)
			default:
				refs[indexer.Ref{Entity: e.Entity, Key: indexer.IDValue(e.ID)}] = snap
			}
		}
		if len(refs) == 0 || r.opts.DryRun {
			docs = nil
			for ref := range refs {
				docs = append(docs, indexer.Doc{Entity: ref.Entity, ID: ref.Key.ID(), Version: snap})
			}
			return nil
		}
		var err error
		docs, err = r.opts.Model.Denormalize(ctx, v, refs)
		return err
	})
	var se *indexer.SourceError
	if errors.As(err, &se) && se.Permanent {
		// The entity's reads are refused for good (a DDL, a grant): its entries stay pending.
		r.opts.Logger.Error("source refuses the reads of this page; entries left pending", "cluster", r.c.Name, "err", err)
		r.fail(FailSource, int64(len(entries)))
		return nil
	}
	if err != nil {
		return err
	}
	if r.opts.DryRun {
		r.prog.mu.Lock()
		r.t.Would += int64(len(docs))
		r.prog.mu.Unlock()
		return nil
	}
	began := time.Now()
	done := r.write(ctx, docs, version)
	r.opts.Logger.Debug("repair page written and fetched", "cluster", r.c.Name, "entries", len(entries), "documents", len(docs),
		"verified", len(done), "version", version, "took", time.Since(began))
	if len(done) == 0 {
		return nil
	}
	marks := make([]control.Repaired, len(done))
	for i, d := range done {
		marks[i] = control.Repaired{Entity: d.Entity, ID: d.ID, Version: version}
	}
	began = time.Now()
	n, err := r.opts.Ledger.MarkRepaired(ctx, r.c.Name, marks)
	r.opts.Logger.Debug("repair page marked", "cluster", r.c.Name, "marked", n, "took", time.Since(began))
	r.prog.mu.Lock()
	r.t.Grew += int64(len(done) - n)
	r.prog.mu.Unlock()
	return err
}

// source runs fn in a new snapshot, again with backoff while the source fails transiently.
func (r *repair) source(ctx context.Context, fn func(v indexer.View, version int64) error) error {
	if err := snapshot.Read(ctx, r.opts.Source.Snapshot, DefaultSourceTries, 10*time.Second, r.opts.Logger, fn); err != nil {
		return fmt.Errorf("repair: source: %w", err)
	}
	return nil
}

// outcome is how one document's write ended before the fetch.
type outcome struct {
	doc   indexer.Doc
	stale bool // the cluster already held a version at least as high
}

// write writes docs (again while the cluster answers retryable), then fetches the ones the
// cluster took and returns those it holds at version or higher: the entries to mark.
func (r *repair) write(ctx context.Context, docs []indexer.Doc, version int64) []indexer.Doc {
	var took []outcome
	wait := time.Second
	for try := 1; len(docs) > 0; try++ {
		results := indexer.WriteAll(ctx, []indexer.ClusterWriter{r.c.Writer}, docs)[r.c.Writer.Name()]
		var again []indexer.Doc
		var last indexer.Result
		for i, res := range results {
			switch {
			case res.Class == indexer.OK || res.Class == indexer.Stale:
				took = append(took, outcome{doc: docs[i], stale: res.Class == indexer.Stale})
			case res.Unavailable:
				// The cluster took no write at all (down, blocked): trying again now only delays
				// the summary; the entry stays pending for the next repair.
				r.fail(FailUnavailable, 1)
				last = res
			case res.Class == indexer.Retryable && try < DefaultWriteTries && ctx.Err() == nil:
				again = append(again, docs[i])
				last = res
			case res.Class == indexer.Retryable:
				r.fail(FailRetryable, 1)
				last = res
			default:
				r.fail(FailPermanent, 1)
				last = res
			}
		}
		if len(again) > 0 {
			r.opts.Logger.Warn("cluster refused some writes for now; trying them again", "cluster", r.c.Name,
				"documents", len(again), "in", wait, "reason", last.Reason)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			wait = min(2*wait, 10*time.Second)
		} else if last.Reason != "" {
			r.opts.Logger.Warn("documents not repaired; their entries stay pending", "cluster", r.c.Name, "reason", last.Reason)
		}
		docs = again
	}
	return r.verify(ctx, took, version)
}

// verify fetches the documents written and returns those the cluster holds at version or
// higher (a document) or does not hold below it (a delete).
//
// A document not found is not a lost write when a newer delete is there: the fetch shows no
// tombstone. So one whose root row a new snapshot no longer holds is current (the stream
// deletes it with a higher version), and the others are written once more, with the same
// version: a version conflict proves the cluster holds a newer version (a delete, and the
// stream's insert on its way), and a write taken is fetched again.
func (r *repair) verify(ctx context.Context, took []outcome, version int64) []indexer.Doc {
	byIndex := map[string][]outcome{}
	for _, o := range took {
		idx := r.opts.Model.Entity(o.doc.Entity).Index
		byIndex[idx] = append(byIndex[idx], o)
	}
	var ok []indexer.Doc
	held := func(o outcome) {
		r.prog.mu.Lock()
		switch {
		case o.stale:
			r.t.Current++
		case o.doc.Source == nil:
			r.t.Deleted++
		default:
			r.t.Repaired++
		}
		r.prog.mu.Unlock()
		ok = append(ok, o.doc)
	}
	for _, idx := range slices.Sorted(maps.Keys(byIndex)) {
		group := byIndex[idx]
		hits, err := r.fetch(ctx, idx, group)
		if err != nil {
			continue
		}
		gone := r.goneSince(ctx, group, hits)
		var probe []outcome
		for _, o := range group {
			h, found := hits[o.doc.ID]
			switch {
			case o.doc.Source == nil && (!found || h.Version > version):
				held(o)
			case o.doc.Source != nil && found && h.Version >= version:
				held(o)
			case o.doc.Source != nil && !found && gone[o.doc.Entity+"\x00"+o.doc.ID]:
				o.stale = true
				held(o)
			case o.doc.Source != nil && !found:
				probe = append(probe, o)
			default:
				r.lost(o, version, h)
			}
		}
		if len(probe) == 0 {
			continue
		}
		docs := make([]indexer.Doc, len(probe))
		for i, o := range probe {
			docs[i] = o.doc
		}
		var again []outcome
		for i, res := range r.c.Writer.Write(ctx, docs) {
			switch {
			case res.Class == indexer.Stale:
				probe[i].stale = true
				held(probe[i])
			case res.Class == indexer.OK:
				again = append(again, probe[i])
			default:
				r.fail(FailVerify, 1)
			}
		}
		if hits, err = r.fetch(ctx, idx, again); err != nil {
			continue
		}
		for _, o := range again {
			if h, found := hits[o.doc.ID]; found && h.Version >= version {
				held(o)
			} else {
				r.lost(o, version, h)
			}
		}
	}
	return ok
}

// fetch reads the documents of group back from idx; an error fails them all (verify).
func (r *repair) fetch(ctx context.Context, idx string, group []outcome) (map[string]cluster.Hit, error) {
	if len(group) == 0 {
		return nil, nil
	}
	ids := make([]string, len(group))
	for i, o := range group {
		ids[i] = o.doc.ID
	}
	hits, err := r.c.Reader.Get(ctx, idx, ids, false)
	if err != nil {
		r.opts.Logger.Warn("fetch to verify the repair failed; entries stay pending", "cluster", r.c.Name, "index", idx, "err", err)
		r.fail(FailVerify, int64(len(group)))
	}
	return hits, err
}

// lost counts a write the fetch does not show.
func (r *repair) lost(o outcome, version int64, h cluster.Hit) {
	r.fail(FailVerify, 1)
	r.opts.Logger.Warn("the fetch does not show the repair's write; the entry stays pending", "cluster", r.c.Name,
		"entity", o.doc.Entity, "id", o.doc.ID, "written", version, "delete", o.doc.Source == nil, "held", h.Version)
}

// goneSince returns, of the documents written that the fetch did not find, those whose root
// row a new snapshot of the source no longer holds: a _mget shows no tombstone, and a row
// deleted after the repair's snapshot is written as a delete by the stream.
func (r *repair) goneSince(ctx context.Context, group []outcome, hits map[string]cluster.Hit) map[string]bool {
	byEntity := map[string][]string{}
	for _, o := range group {
		if _, found := hits[o.doc.ID]; !found && o.doc.Source != nil {
			byEntity[o.doc.Entity] = append(byEntity[o.doc.Entity], o.doc.ID)
		}
	}
	if len(byEntity) == 0 {
		return nil
	}
	gone := map[string]bool{}
	err := r.source(ctx, func(v indexer.View, _ int64) error {
		for entity, ids := range byEntity {
			have, err := r.opts.Model.Exists(ctx, v, entity, ids)
			if err != nil {
				return err
			}
			for _, id := range ids {
				gone[entity+"\x00"+id] = !have[id]
			}
		}
		return nil
	})
	if err != nil {
		r.opts.Logger.Warn("read the source again to verify the repair; the documents not found stay pending", "cluster", r.c.Name, "err", err)
		return nil
	}
	return gone
}

func (r *repair) fail(class string, n int64) {
	r.prog.mu.Lock()
	defer r.prog.mu.Unlock()
	r.t.Failed += n
	r.t.Failures[class] += n
}

// progress shows the repair: a line redrawn every second on a terminal, else a log line every
// LogEvery. Tallies are written under mu.
type progress struct {
	term  io.Writer
	log   *slog.Logger
	mu    sync.Mutex
	t     *Tally
	total int64
	since time.Time
}

func (p *progress) cluster(t *Tally, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.t != nil {
		p.line(true)
	}
	p.t, p.total, p.since = t, total, time.Now()
}

func (p *progress) show() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(false)
}

func (p *progress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(true)
}

func (p *progress) line(final bool) {
	if p.t == nil {
		return
	}
	t := p.t
	done := t.Repaired + t.Deleted + t.Current + t.Failed + t.Would
	rate := float64(done) / max(time.Since(p.since).Seconds(), 1e-3)
	w := p.term
	if w == nil {
		if !final {
			p.log.Info("repair progress", "cluster", t.Cluster, "done", done, "of_about", p.total, "ids_per_second", int64(rate),
				"repaired", t.Repaired, "deleted", t.Deleted, "current", t.Current, "failed", t.Failed)
		}
		return
	}
	fmt.Fprintf(w, "\rrepair %-12s %d/~%d ids  %d ids/s  repaired %d  deleted %d  current %d  failed %d   ",
		t.Cluster, done, p.total, int64(rate), t.Repaired, t.Deleted, t.Current, t.Failed)
	if final {
		fmt.Fprintln(w)
	}
}

package diff

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/internal/defaults"
	"github.com/wyehq/wye/internal/reason"
)

// Docs compares the documents of opts.Entities on every cluster with the reference and returns
// the report; its Status says whether they are equal. Memory does not grow with the indices:
// pages of the reference are compared as they are read, and a pair holds at most maxSuspects
// ids waiting for a recheck. An error means the diff could not go on (cancellation, a source
// failing for good); a cluster that cannot be read is reported failed and the others go on.
//
// How (docs/diff.md): the reference is scanned (ids and versions; with _source when the
// content of all documents is compared) and each page is looked up by id (_mget) on every
// other cluster; then each other cluster is scanned (ids only) and the ids the reference lacks
// are its extra documents. Only where versions differ, and for the sample, are the sources
// read. A difference that may be lag (missing, extra, another version) is read again on both
// sides after Recheck, Rechecks times at most, before it is reported.
func Docs(ctx context.Context, opts Options) (*Report, error) {
	opts.ScanPage = defaults.Positive(opts.ScanPage, DefaultScanPage)
	opts.Recheck = defaults.Positive(opts.Recheck, DefaultRecheck)
	opts.Rechecks = defaults.Positive(opts.Rechecks, DefaultRechecks)
	opts.Workers = defaults.Positive(opts.Workers, DefaultWorkers)
	opts.LogEvery = defaults.Positive(opts.LogEvery, DefaultLogEvery)
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	entities, err := pick(opts.Model, opts.Entities)
	if err != nil {
		return nil, err
	}
	others := opts.Clusters
	rep := &Report{Started: time.Now(), Content: opts.Content.String(), Reference: "mysql"}
	if opts.Source == nil {
		if len(opts.Clusters) < 2 {
			return nil, errors.New("diff: at least two clusters to compare")
		}
		rep.Reference, others = opts.Clusters[0].Name, opts.Clusters[1:]
	} else {
		if len(opts.Clusters) == 0 {
			return nil, errors.New("diff: no cluster to compare with MySQL")
		}
		rep.Content = "all"
	}
	r := &run{opts: opts, rep: rep, log: opts.Logger}
	if opts.Report != "" {
		rep.IDsFile = idsPath(opts.Report)
		if r.ids, err = openIDs(rep.IDsFile); err != nil {
			return nil, err
		}
	}
	r.prog = newProgress(opts.Terminal, opts.LogEvery, opts.Logger)
	stop := r.prog.start(ctx)
	for _, e := range entities {
		ent, err := r.entity(ctx, e, others)
		if ent != nil {
			rep.Entities = append(rep.Entities, ent)
		}
		if err != nil {
			stop()
			r.ids.close()
			return rep, err
		}
	}
	stop()
	if err := r.ids.close(); err != nil {
		r.problem("%s", err.Error())
	}
	rep.Finished = time.Now()
	rep.Seconds = rep.Finished.Sub(rep.Started).Seconds()
	rep.Fetched = r.fetched.Load()
	rep.Status = StatusEqual
	for _, e := range rep.Entities {
		for _, t := range e.Pairs {
			if t.Differences() > 0 {
				rep.Status = StatusDifferent
			}
		}
	}
	if len(rep.Problems) > 0 {
		rep.Status = StatusFailed
	}
	if opts.Report != "" {
		return rep, rep.Write(opts.Report)
	}
	return rep, nil
}

// pick returns the entities named (every entity when names is empty), in the model's order.
func pick(m *indexer.Model, names []string) ([]*indexer.Entity, error) {
	for _, n := range names {
		if m.Entity(n) == nil {
			return nil, fmt.Errorf("diff: entity %q is not configured", n)
		}
	}
	var out []*indexer.Entity
	for _, e := range m.Entities() {
		if len(names) == 0 || slices.Contains(names, e.Name) {
			out = append(out, e)
		}
	}
	return out, nil
}

// run is one diff's state.
type run struct {
	opts    Options
	rep     *Report
	ids     *ids
	log     *slog.Logger
	prog    *progress
	fetched atomic.Int64
	mu      sync.Mutex
}

func (r *run) problem(format string, args ...any) {
	r.mu.Lock()
	r.rep.Problems = append(r.rep.Problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// pair is one compared cluster against the reference, for one entity.
type pair struct {
	other    side
	mu       sync.Mutex
	t        *Tally
	suspects []seen       // lag differences waiting for a recheck
	last     time.Time    // when the newest suspect was found
	found    atomic.Int64 // the reference's documents the cluster held when first looked up
	failed   bool
}

// entity compares one entity on every cluster of others with the reference.
func (r *run) entity(ctx context.Context, e *indexer.Entity, others []Cluster) (*Entity, error) {
	began := time.Now()
	ent := &Entity{Name: e.Name, Index: e.Index}
	var ref side
	if r.opts.Source != nil {
		ref = &mysqlSide{model: r.opts.Model, src: r.opts.Source, entity: e}
	} else {
		c := r.opts.Clusters[0]
		index, err := resolve(ctx, c, e.Index)
		if err != nil {
			r.problem("reference %s, entity %s: %s", c.Name, e.Name, reason.Cut("", err.Error()))
			return ent, nil
		}
		ref = &clusterSide{cluster: c.Name, r: c.Reader, index: index}
	}
	var pairs []*pair
	for _, c := range others {
		t := &Tally{Reference: ref.name(), Cluster: c.Name}
		ent.Pairs = append(ent.Pairs, t)
		index, err := resolve(ctx, c, e.Index)
		if err != nil {
			t.Error = reason.Cut("", err.Error())
			r.problem("cluster %s, entity %s: %s", c.Name, e.Name, t.Error)
			continue
		}
		pairs = append(pairs, &pair{other: &clusterSide{cluster: c.Name, r: c.Reader, index: index}, t: t})
	}
	total := max(0, ref.count(ctx))
	r.prog.entity(e.Name, total)
	// Every sample-th document (by a hash of its id, so every cluster picks the same ones) has
	// its content compared; 1: every document; 0: none.
	sample := uint64(0)
	switch {
	case r.opts.Source != nil || r.opts.Content.All:
		sample = 1
	case r.opts.Content.Sample > 0:
		sample = uint64(max(1, total/int64(r.opts.Content.Sample)))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	refErr := r.reference(ctx, e, ref, pairs, sample)
	r.log.Debug("diff: reference read", "entity", e.Name, "seconds", time.Since(began).Seconds())
	// A cluster holding as many documents as it had of the reference's holds no other: it is
	// not scanned for extra documents. The count sees the last refresh and the lookups were
	// real-time, so under writes they seldom agree and the cluster is scanned.
	var wg sync.WaitGroup
	for _, p := range pairs {
		if refErr != nil || p.isFailed() {
			continue
		}
		wg.Go(func() {
			if n := p.other.count(ctx); n >= 0 && n == p.found.Load() {
				return
			}
			r.extras(ctx, e, ref, p)
		})
	}
	wg.Wait()
	r.log.Debug("diff: clusters scanned for extra documents", "entity", e.Name, "seconds", time.Since(began).Seconds())
	if refErr != nil {
		if ctx.Err() != nil {
			return ent, ctx.Err()
		}
		var se *indexer.SourceError
		if errors.As(refErr, &se) {
			return ent, fmt.Errorf("diff: source: %w", refErr)
		}
		r.problem("reference %s, entity %s: %s", ref.name(), e.Name, reason.Cut("", refErr.Error()))
	}
	for _, p := range pairs {
		if err := r.recheck(ctx, e, ref, p); err != nil {
			r.fail(e, p, err)
		}
	}
	ent.Seconds = time.Since(began).Seconds()
	return ent, ctx.Err()
}

func resolve(ctx context.Context, c Cluster, alias string) (string, error) {
	if c.Index == nil {
		return alias, nil
	}
	return c.Index(ctx, alias)
}

// reference scans the reference and compares each page with every pair, Workers pages at once
// besides the scan: the scan reads the next page while the clusters answer for this one.
func (r *run) reference(ctx context.Context, e *indexer.Entity, ref side, pairs []*pair, sample uint64) error {
	pages := make(chan []cluster.Hit, r.opts.Workers)
	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() {
			for page := range pages {
				var pw sync.WaitGroup
				for _, p := range pairs {
					pw.Go(func() { r.page(ctx, e, ref, p, page, sample) })
				}
				pw.Wait()
				r.prog.add(int64(len(page)))
			}
		})
	}
	withSource := sample == 1
	err := ref.pages(ctx, r.opts.ScanPage, withSource, func(hits []cluster.Hit) error {
		if _, isCluster := ref.(*clusterSide); withSource && isCluster {
			r.fetched.Add(int64(len(hits)))
		}
		select {
		case pages <- slices.Clone(hits):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(pages)
	wg.Wait()
	return err
}

// page compares one page of the reference with one cluster.
func (r *run) page(ctx context.Context, e *indexer.Entity, ref side, p *pair, page []cluster.Hit, sample uint64) {
	if p.isFailed() {
		return
	}
	ids := make([]string, len(page))
	for i, h := range page {
		ids[i] = h.ID
	}
	all := sample == 1
	got, err := p.other.get(ctx, ids, all)
	if err != nil {
		r.fail(e, p, err)
		return
	}
	if all {
		r.fetched.Add(int64(len(got)))
	}
	p.found.Add(int64(len(got)))
	t := Tally{Compared: int64(len(page))}
	var suspects []seen
	var content []string
	for _, h := range page {
		o, found := got[h.ID]
		rc := Copy{Found: true, Version: h.Version, Source: h.Source}
		oc := Copy{Found: found, Version: o.Version, Source: o.Source}
		switch {
		case !found || (h.Version != 0 && o.Version != h.Version):
			suspects = append(suspects, seenOf(h.ID, rc, oc)) // lag, or a difference: read again on both sides
		case all:
			c, d := Classify(rc, oc, e.VersionField)
			t.ContentChecked++
			if r.again(c, rc, oc) {
				suspects = append(suspects, seenOf(h.ID, rc, oc))
				continue
			}
			t.count(c)
			r.list(c, p, e, h.ID, d, rc, oc)
		case sample > 1 && hash(h.ID)%sample == 0:
			content = append(content, h.ID)
		default:
			t.Equal++ // same version: the same write (content not asked for)
		}
	}
	if len(content) > 0 {
		if err := r.compareNow(ctx, e, ref, p, content, &t); err != nil {
			r.fail(e, p, err)
			return
		}
	}
	p.add(&t, suspects)
	if p.full() {
		if err := r.recheck(ctx, e, ref, p); err != nil {
			r.fail(e, p, err)
		}
	}
}

// compareNow reads the sources of ids on both sides and classifies them; lag goes to the
// suspects.
func (r *run) compareNow(ctx context.Context, e *indexer.Entity, ref side, p *pair, ids []string, t *Tally) error {
	items := make([]seen, len(ids))
	for i, id := range ids {
		items[i] = seen{id: id}
	}
	lag, err := r.classify(ctx, e, ref, p, items, t, func(seen, seen) bool { return true })
	p.add(&Tally{}, lag)
	return err
}

// seen is one document as a comparison last read it on both sides: a recheck reads it again
// while the difference moves (a stream delivering), and reports it once it stays.
type seen struct {
	id     string
	rf, of bool  // found on the reference, on the other
	rv, ov int64 // their versions
}

func seenOf(id string, r, o Copy) seen {
	return seen{id: id, rf: r.Found, of: o.Found, rv: r.Version, ov: o.Version}
}

// classify reads items on both sides with their sources and counts each in its class, except
// the differences that may be lag (again) and that more says to read once more: those are
// returned as they were read now.
func (r *run) classify(ctx context.Context, e *indexer.Entity, ref side, p *pair, items []seen, t *Tally,
	more func(was, now seen) bool) (lag []seen, err error) {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.id
	}
	var rs, os map[string]cluster.Hit
	var errR, errO error
	var wg sync.WaitGroup
	wg.Go(func() { rs, errR = ref.get(ctx, ids, true) })
	wg.Go(func() { os, errO = p.other.get(ctx, ids, true) })
	wg.Wait()
	if err := errors.Join(errR, errO); err != nil {
		return nil, err
	}
	n := int64(len(os))
	if _, isMySQL := ref.(*mysqlSide); !isMySQL {
		n += int64(len(rs))
	}
	r.fetched.Add(n)
	t.Fetched += n
	for i, id := range ids {
		h, rf := rs[id]
		o, of := os[id]
		rc := Copy{Found: rf, Version: h.Version, Source: h.Source}
		oc := Copy{Found: of, Version: o.Version, Source: o.Source}
		c, d := Classify(rc, oc, e.VersionField)
		if rf && of {
			t.ContentChecked++
		}
		if now := seenOf(id, rc, oc); r.again(c, rc, oc) && more(items[i], now) {
			lag = append(lag, now)
			continue
		}
		t.count(c)
		r.list(c, p, e, id, d, rc, oc)
	}
	return lag, nil
}

// recheck reads the lag differences again after Recheck, and again (Rechecks times at most)
// those that moved meanwhile (a version or a presence changed on either side: a stream at
// work); those still different and still, or after the last read, are reported in their class.
// A difference that stays costs one wait, however many there are.
func (r *run) recheck(ctx context.Context, e *indexer.Entity, ref side, p *pair) error {
	ids, last := p.take()
	for round := 1; len(ids) > 0; round++ {
		wait := r.opts.Recheck
		if round == 1 {
			wait = time.Until(last.Add(r.opts.Recheck))
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		var t Tally
		var again []seen
		last := round == r.opts.Rechecks
		for chunk := range slices.Chunk(ids, r.opts.ScanPage) {
			lag, err := r.classify(ctx, e, ref, p, chunk, &t, func(was, now seen) bool { return !last && was != now })
			if err != nil {
				return err
			}
			again = append(again, lag...)
		}
		t.Rechecked = int64(len(ids))
		p.add(&t, nil)
		ids = again
	}
	return nil
}

// extras scans the cluster of p (ids and versions) and looks its ids up in the reference: those
// the reference lacks are suspects of extra documents.
func (r *run) extras(ctx context.Context, e *indexer.Entity, ref side, p *pair) {
	err := p.other.pages(ctx, r.opts.ScanPage, false, func(hits []cluster.Hit) error {
		ids := make([]string, len(hits))
		for i, h := range hits {
			ids[i] = h.ID
		}
		have, err := ref.get(ctx, ids, false)
		if err != nil {
			return fmt.Errorf("look up %s's ids in %s: %w", p.other.name(), ref.name(), err)
		}
		var extra []seen
		for _, h := range hits {
			if _, ok := have[h.ID]; !ok {
				extra = append(extra, seen{id: h.ID, of: true, ov: h.Version})
			}
		}
		p.add(&Tally{}, extra)
		if p.full() {
			return r.recheck(ctx, e, ref, p)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		r.fail(e, p, err)
	}
}

// again says a difference may be a write on its way, to be read again before it is reported:
// missing, extra, copies at different versions, and against MySQL (no versions) every one.
// Other content at the same version is final: one write never has two contents.
func (r *run) again(c Class, rc, oc Copy) bool {
	return c != Equal && (r.opts.Source != nil || c.lag() || rc.Version != oc.Version)
}

// list writes one difference to the id list.
func (r *run) list(c Class, p *pair, e *indexer.Entity, id string, d Delta, rc, oc Copy) {
	var detail string
	switch c {
	case Equal:
		return
	case Different:
		detail = paths(d.Paths)
	case EmptyNull:
		detail = paths(d.Empty)
	case Behind, Ahead:
		detail = fmt.Sprintf("%s:%d %s:%d %s", p.t.Reference, rc.Version, p.t.Cluster, oc.Version, paths(d.Paths))
	}
	r.ids.add(c.String(), p.t.Cluster, e.Name, id, strings.TrimSpace(detail))
}

// paths joins at most 20 paths.
func paths(ps []string) string {
	if len(ps) > 20 {
		return strings.Join(ps[:20], ",") + ",...(" + strconv.Itoa(len(ps)-20) + " more)"
	}
	return strings.Join(ps, ",")
}

func (r *run) fail(e *indexer.Entity, p *pair, err error) {
	p.mu.Lock()
	first := !p.failed
	p.failed = true
	if first {
		p.t.Error = reason.Cut("", err.Error())
	}
	p.mu.Unlock()
	if first {
		r.log.Warn("cluster left out of the diff", "cluster", p.t.Cluster, "entity", e.Name, "err", err)
		r.problem("cluster %s, entity %s: %s", p.t.Cluster, e.Name, p.t.Error)
	}
}

func (p *pair) isFailed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// add adds counts and suspects.
func (p *pair) add(t *Tally, suspects []seen) {
	p.mu.Lock()
	defer p.mu.Unlock()
	x := p.t
	x.Compared += t.Compared
	x.Equal += t.Equal
	x.ContentChecked += t.ContentChecked
	x.Missing += t.Missing
	x.Extra += t.Extra
	x.Different += t.Different
	x.EmptyNull += t.EmptyNull
	x.Behind += t.Behind
	x.Ahead += t.Ahead
	x.Rechecked += t.Rechecked
	x.Fetched += t.Fetched
	if len(suspects) > 0 {
		p.suspects = append(p.suspects, suspects...)
		p.last = time.Now()
	}
}

func (p *pair) full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.suspects) >= maxSuspects
}

// take returns the suspects (cleared) and when the newest was found.
func (p *pair) take() ([]seen, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.suspects
	p.suspects = nil
	return s, p.last
}

func hash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

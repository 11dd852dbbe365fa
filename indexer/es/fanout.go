package es

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
)

// Bulker sends one _bulk body to one cluster; *cluster.Client is one.
type Bulker interface {
	Bulk(ctx context.Context, body []byte, opts ...cluster.BulkOption) ([]cluster.BulkItem, error)
}

var _ Bulker = (*cluster.Client)(nil)

// Roles says which cluster is the master now; it may change at any time (promote).
type Roles interface {
	Master() string
}

// Ledger remembers entity ids a slave missed, for a targeted repair.
type Ledger interface {
	Record(ctx context.Context, cluster string, missed []Missed) error
}

// Missed is one document a slave did not take.
type Missed struct {
	Entity  string
	ID      string
	Version int64
	Class   string // retryable, permanent, dropped (backlog full or shut down)
	Reason  string
}

// TargetResolver lists the concrete indices one cluster must receive every document of alias
// in: every <alias>_vN that exists, in version order (mapping.WriteTargets; two while a
// mapping version bump runs, issue 5). An error means there is nothing safe to write to: the
// alias name itself must not be written, or the engine would auto-create a dynamic index.
type TargetResolver interface {
	WriteTargets(ctx context.Context, cluster, alias string) ([]string, error)
}

// Target is one cluster.
type Target struct {
	Name    string
	Client  Bulker
	Timeout time.Duration // bounds one _bulk on this cluster; each cluster has its own
}

// Options configure a FanOut.
type Options struct {
	Targets []Target
	Roles   Roles
	Ledger  Ledger
	Metrics *indexer.Metrics
	Logger  *slog.Logger
	// Backlog bounds the batches waiting for one slave (default 64); a worker sends what
	// waits as one request (at most 8 MiB). When it is full the
	// batch is not sent to that slave: its ids go to the ledger instead, and the master
	// path never waits (invariant 7).
	Backlog int
	// LogEvery rate-limits slave failure logs: one line per cluster per interval (default 10s).
	LogEvery time.Duration
	// Resolver gives the concrete indices of each entity's alias per cluster. nil writes to
	// Doc.Index as configured: only for indices that `wye mapping` does not manage.
	Resolver TargetResolver
	// SlaveInFlight bounds the _bulk requests one slave has in flight (default 2): while one
	// is answered the next is sent, as the master has one per pipeline in flight.
	SlaveInFlight int
	// TargetsTTL is how long resolved targets are reused per (cluster, alias) (default 10s).
	// An index_not_found_exception on a target forgets them at once.
	TargetsTTL time.Duration
}

// FanOut is the indexer's Writer: the master is written in the caller's goroutine, each
// slave by its own worker. With a Resolver, each cluster's body repeats every action once per
// target index of that cluster (same source bytes, same external version), and a document
// counts as written to a cluster only when every one of its target writes is OK or Stale.
type FanOut struct {
	opts    Options
	targets map[string]*worker
	order   []string
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	cache   targetCache
}

// targetCache holds resolved write targets per (cluster, alias). Entries are read by the
// master path and the slave workers concurrently.
type targetCache struct {
	mu sync.Mutex
	m  map[cacheKey]*cached
}

type cacheKey struct{ cluster, alias string }

type cached struct {
	names    []string
	at       time.Time // zero: not resolved (or forgotten)
	failures int       // consecutive failed resolutions
	lastLog  time.Time
}

var _ indexer.Writer = (*FanOut)(nil)

type job struct {
	docs []indexer.Doc
	size int // estimated body bytes, bounds coalescing
}

type worker struct {
	t     Target
	queue chan job
	f     *FanOut

	mu       sync.Mutex
	lastLog  time.Time
	failures map[string]int // class -> count since the last log line
	dropped  []indexer.Doc  // ids of batches the backlog had no room for, for the ledger
	overflow int            // dropped beyond maxDropped, not recorded
}

// New builds a FanOut; Start runs the slave workers.
func New(opts Options) *FanOut {
	if opts.Backlog <= 0 {
		opts.Backlog = 64
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = indexer.NewMetrics(nil)
	}
	if opts.TargetsTTL <= 0 {
		opts.TargetsTTL = 10 * time.Second
	}
	if opts.SlaveInFlight <= 0 {
		opts.SlaveInFlight = 2
	}
	f := &FanOut{opts: opts, targets: map[string]*worker{}, cache: targetCache{m: map[cacheKey]*cached{}}}
	for _, t := range opts.Targets {
		if t.Timeout <= 0 {
			t.Timeout = time.Minute
		}
		f.targets[t.Name] = &worker{t: t, queue: make(chan job, opts.Backlog), f: f, failures: map[string]int{}}
		f.order = append(f.order, t.Name)
	}
	return f
}

// Start runs the workers of every cluster for the slave writes: SlaveInFlight per cluster,
// taking turns at its one bounded backlog.
func (f *FanOut) Start(ctx context.Context) {
	ctx, f.cancel = context.WithCancel(ctx)
	for _, name := range f.order {
		w := f.targets[name]
		for range f.opts.SlaveInFlight {
			f.wg.Go(func() { w.run(ctx) })
		}
	}
}

// Stop must be called after the last Write. It lets the workers finish the queued batches until ctx is done, then cancels them;
// whatever was not written is recorded in the ledger as dropped.
func (f *FanOut) Stop(ctx context.Context) {
	for _, name := range f.order {
		close(f.targets[name].queue)
	}
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		f.cancel()
		<-done
	}
	f.cancel()
}

// Write implements indexer.Writer.
func (f *FanOut) Write(ctx context.Context, docs []indexer.Doc, target string) (string, []indexer.Result, error) {
	// Retries are targeted at the master they failed on. If that cluster is gone or no longer
	// the master (a promote happened), the current master decides: a demoted cluster is a
	// slave and must never hold up the master path (DESIGN.md invariant 7).
	decider := f.opts.Roles.Master()
	if target != "" && target != decider && f.targets[target] != nil {
		f.opts.Logger.Debug("retry targeted at a cluster that is no longer the master; writing to the master",
			"target", target, "master", decider)
	}
	m := f.targets[decider]
	if m == nil {
		return "", nil, fmt.Errorf("write to %q: no such cluster", decider)
	}
	size := 0
	for _, d := range docs {
		if d.Version < 0 {
			return "", nil, fmt.Errorf("build bulk body: %s %s: negative version %d", d.Entity, d.ID, d.Version)
		}
		size += len(d.Source) + len(d.Index) + len(d.ID) + 80
	}
	if target == "" {
		for _, name := range f.order {
			if name != decider {
				f.targets[name].enqueue(job{docs: docs, size: size})
			}
		}
	}
	return decider, m.write(ctx, docs, true), nil
}

// resolve returns the write targets of alias on one cluster: [alias] without a Resolver,
// else the cached answer while it is younger than TargetsTTL, else a fresh one. Failures are
// not cached: the next write asks again. They are logged here, once per LogEvery per
// (cluster, alias), with the count of consecutive failures; the caller turns them into
// retryable results.
func (f *FanOut) resolve(ctx context.Context, cl, alias string) ([]string, error) {
	if f.opts.Resolver == nil {
		return []string{alias}, nil
	}
	k := cacheKey{cl, alias}
	f.cache.mu.Lock()
	e := f.cache.m[k]
	if e == nil {
		e = &cached{}
		f.cache.m[k] = e
	}
	if !e.at.IsZero() && time.Since(e.at) < f.opts.TargetsTTL {
		names := e.names
		f.cache.mu.Unlock()
		return names, nil
	}
	f.cache.mu.Unlock()

	// Two goroutines may resolve the same key at once; both answers are current.
	names, err := f.opts.Resolver.WriteTargets(ctx, cl, alias)
	if err == nil && len(names) == 0 {
		err = errors.New("no index")
	}
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	if err != nil {
		e.failures++
		if time.Since(e.lastLog) >= f.opts.LogEvery {
			e.lastLog = time.Now()
			f.opts.Logger.Warn("no write targets; writes of this index are retried (master) or recorded in the repair ledger (slave) until `wye mapping apply` creates one",
				"cluster", cl, "alias", alias, "consecutive_failures", e.failures, "err", err)
		}
		return nil, fmt.Errorf("resolve write targets of %s on %s: %w", alias, cl, err)
	}
	if e.failures > 0 || !slices.Equal(e.names, names) {
		f.opts.Logger.Info("write targets", "cluster", cl, "alias", alias, "indices", names, "after_failures", e.failures)
	}
	e.names, e.at, e.failures = names, time.Now(), 0
	return names, nil
}

// forget drops the cached targets of alias on a cluster: one of them answered
// index_not_found_exception (`wye mapping gc` removed it).
func (f *FanOut) forget(cl, alias string) {
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	if e := f.cache.m[cacheKey{cl, alias}]; e != nil {
		e.at = time.Time{}
	}
}

// Body renders docs as one _bulk body. Every action carries the external version: a write
// lands only if its version is greater than the stored one, so replays, retries and
// replicas in any order converge (DESIGN.md, invariant 1).
func Body(docs []indexer.Doc) ([]byte, error) {
	return body(docs, nil)
}

// body is Body with the target indices of each doc (targets[i]; nil: docs[i].Index): one
// action per target, each with the same source bytes and version.
func body(docs []indexer.Doc, targets [][]string) ([]byte, error) {
	size := 0
	for i, d := range docs {
		n := 1
		if targets != nil {
			n = len(targets[i])
		}
		size += n * (len(d.Source) + len(d.Index) + len(d.ID) + 80)
	}
	b := make([]byte, 0, size)
	for i, d := range docs {
		if d.Version < 0 {
			return nil, fmt.Errorf("build bulk body: %s %s: negative version %d", d.Entity, d.ID, d.Version)
		}
		op := `{"index":{"_index":`
		if d.Source == nil {
			op = `{"delete":{"_index":`
		}
		indices := []string{d.Index}
		if targets != nil {
			indices = targets[i]
		}
		for _, index := range indices {
			b = append(b, op...)
			b = appendJSON(b, index)
			b = append(b, `,"_id":`...)
			b = appendJSON(b, d.ID)
			b = append(b, `,"version":`...)
			b = strconv.AppendInt(b, d.Version, 10)
			b = append(b, `,"version_type":"external"}}`+"\n"...)
			if d.Source != nil {
				b = append(b, d.Source...)
				b = append(b, '\n')
			}
		}
	}
	return b, nil
}

// appendJSON appends s as encoding/json quotes it; most names and ids need no escape.
func appendJSON(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// write resolves the target indices of docs on this cluster, sends them under the cluster's
// timeout and returns one result per doc. decider: these results decide the batch (the
// body size is observed once per batch).
func (w *worker) write(ctx context.Context, docs []indexer.Doc, decider bool) []indexer.Result {
	ctx, cancel := context.WithTimeout(ctx, w.t.Timeout)
	defer cancel()
	out := make([]indexer.Result, len(docs))
	var send []indexer.Doc
	var at []int // position in docs of send[j]
	var targets [][]string
	byAlias := map[string][]string{}
	failed := map[string]error{}
	for i, d := range docs {
		names, ok := byAlias[d.Index]
		err := failed[d.Index]
		if !ok && err == nil {
			if names, err = w.f.resolve(ctx, w.t.Name, d.Index); err != nil {
				failed[d.Index] = err
			} else {
				byAlias[d.Index] = names
			}
		}
		if err != nil {
			// No index to write to (not applied yet, or being created): retryable on the
			// master, a ledger entry on a slave.
			out[i] = indexer.Result{Class: cluster.Retryable, Reason: err.Error()}
			w.f.opts.Metrics.Items.WithLabelValues(w.t.Name, "retryable").Inc()
			continue
		}
		send, at, targets = append(send, d), append(at, i), append(targets, names)
	}
	if len(send) > 0 {
		for j, r := range w.send(ctx, send, targets, decider) {
			out[at[j]] = r
		}
	}
	return out
}

// send writes docs, each to its targets, in one _bulk (halved on 413) and folds the results
// of each doc's targets into one.
func (w *worker) send(ctx context.Context, docs []indexer.Doc, targets [][]string, decider bool) []indexer.Result {
	b, err := body(docs, targets)
	if err != nil {
		out := make([]indexer.Result, len(docs))
		for i := range out {
			out[i] = indexer.Result{Class: cluster.Permanent, Reason: err.Error()}
		}
		return out
	}
	if decider {
		w.f.opts.Metrics.BulkBytes.Observe(float64(len(b)))
	}
	start := time.Now()
	items, err := w.t.Client.Bulk(ctx, b)
	w.f.opts.Metrics.BulkSeconds.WithLabelValues(w.t.Name).Observe(time.Since(start).Seconds())
	var se *cluster.StatusError
	if errors.As(err, &se) && se.Status == http.StatusRequestEntityTooLarge && len(docs) > 1 {
		// The body exceeds http.max_content_length: a permanent answer for the request, not
		// for its documents. Halve it rather than park the whole batch.
		h := len(docs) / 2
		return append(w.send(ctx, docs[:h], targets[:h], decider), w.send(ctx, docs[h:], targets[h:], decider)...)
	}
	actions := 0
	for _, t := range targets {
		actions += len(t)
	}
	if err == nil && len(items) != actions {
		err = fmt.Errorf("bulk to %s: %d items for %d actions", w.t.Name, len(items), actions)
	}
	out := make([]indexer.Result, len(docs))
	if err != nil {
		r := indexer.Result{Class: cluster.ClassOf(err), Reason: err.Error()}
		if errors.As(err, &se) {
			r.Status, r.ErrType = se.Status, se.Type
		}
		for i := range out {
			out[i] = r
			w.f.opts.Metrics.Items.WithLabelValues(w.t.Name, className(r.Class)).Add(float64(len(targets[i])))
		}
		return out
	}
	n := 0
	for i, d := range docs {
		first := true
		for _, index := range targets[i] {
			it := items[n]
			n++
			w.f.opts.Metrics.Items.WithLabelValues(w.t.Name, className(it.Class)).Inc()
			r := indexer.Result{Class: it.Class, Status: it.Status, ErrType: it.ErrType, Reason: it.Reason}
			if it.ErrType == "index_not_found_exception" && w.f.opts.Resolver != nil {
				// The target set went stale (gc removed an index): forget it. The document is
				// fine, so this is retryable, not the Permanent Classify gives an index op.
				w.f.forget(w.t.Name, d.Index)
				if r.Class == cluster.Permanent {
					r.Class = cluster.Retryable
				}
			}
			if r.Class == cluster.Retryable || r.Class == cluster.Permanent {
				r.Reason = index + ": " + r.Reason
			}
			// The worst target decides; on a tie the first (lowest version) keeps its answer.
			if first || rank(r.Class) > rank(out[i].Class) {
				out[i] = r
			}
			first = false
		}
	}
	return out
}

// rank orders classes for folding the results of one document's targets: the worst decides.
func rank(c cluster.Class) int {
	switch c {
	case cluster.OK:
		return 0
	case cluster.Stale:
		return 1
	case cluster.Retryable:
		return 2
	default:
		return 3
	}
}

func className(c cluster.Class) string {
	switch c {
	case cluster.OK:
		return "ok"
	case cluster.Stale:
		return "stale"
	case cluster.Retryable:
		return "retryable"
	default:
		return "permanent"
	}
}

// maxDropped bounds the ids of dropped batches held for the ledger per slave; beyond it
// drops are still counted (wye_indexer_items_total{result="dropped"}) but not recorded.
const maxDropped = 100_000

// enqueue hands a batch to a slave without ever blocking: a full backlog means the slave
// misses this batch; its ids are kept for the worker to record in the ledger, so the master
// path never touches the control database either.
func (w *worker) enqueue(j job) {
	select {
	case w.queue <- j:
		w.f.opts.Metrics.SlaveBacklog.WithLabelValues(w.t.Name).Set(float64(len(w.queue)))
		return
	default:
	}
	w.f.opts.Metrics.Items.WithLabelValues(w.t.Name, "dropped").Add(float64(len(j.docs)))
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range j.docs {
		if len(w.dropped) >= maxDropped {
			w.overflow++
			continue
		}
		w.dropped = append(w.dropped, indexer.Doc{Entity: d.Entity, ID: d.ID, Version: d.Version})
	}
}

func (w *worker) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case j, ok := <-w.queue:
			if !ok {
				w.flushDropped(ctx)
				return
			}
			w.f.opts.Metrics.SlaveBacklog.WithLabelValues(w.t.Name).Set(float64(len(w.queue)))
			if ctx.Err() != nil {
				w.f.opts.Metrics.Items.WithLabelValues(w.t.Name, "dropped").Add(float64(len(j.docs)))
				w.missed(ctx, j.docs, nil, "dropped", "shut down before the write")
				continue
			}
			j = w.coalesce(j)
			w.missed(ctx, j.docs, w.write(ctx, j.docs, false), "", "")
		case <-tick.C:
			w.flushDropped(ctx)
		}
	}
}

// maxCoalesce bounds the body of one slave _bulk made of several queued batches.
const maxCoalesce = 8 << 20

// coalesce appends the batches already waiting to j, so a slave that fell behind catches up
// with fewer, larger requests instead of dropping. Order within the body does not matter:
// external versions decide which write of one document wins.
func (w *worker) coalesce(j job) job {
	for j.size < maxCoalesce {
		select {
		case next, ok := <-w.queue:
			if !ok {
				return j
			}
			j = job{size: j.size + next.size, docs: append(j.docs[:len(j.docs):len(j.docs)], next.docs...)}
		default:
			return j
		}
	}
	return j
}

func (w *worker) flushDropped(ctx context.Context) {
	w.mu.Lock()
	docs, overflow := w.dropped, w.overflow
	w.dropped, w.overflow = nil, 0
	w.mu.Unlock()
	if overflow > 0 {
		w.f.opts.Logger.Error("slave backlog overflowed the ledger buffer; a full resync of this cluster is needed",
			"cluster", w.t.Name, "unrecorded", overflow)
	}
	if len(docs) > 0 {
		w.missed(ctx, docs, nil, "dropped", "slave backlog full")
	}
}

// missed counts, logs (rate-limited) and records in the ledger the docs this slave did not
// take: every doc when results is nil, else those whose result is retryable or permanent.
func (w *worker) missed(ctx context.Context, docs []indexer.Doc, results []indexer.Result, class, reason string) {
	var ms []Missed
	for i, d := range docs {
		c, why := class, reason
		if results != nil {
			r := results[i]
			if r.Class != cluster.Retryable && r.Class != cluster.Permanent {
				continue
			}
			c, why = className(r.Class), r.Reason
		}
		ms = append(ms, Missed{Entity: d.Entity, ID: d.ID, Version: d.Version, Class: c, Reason: why})
	}
	if len(ms) == 0 {
		return
	}
	w.mu.Lock()
	for _, m := range ms {
		w.failures[m.Class]++
	}
	var logNow map[string]int
	if time.Since(w.lastLog) >= w.f.opts.LogEvery {
		logNow, w.failures, w.lastLog = w.failures, map[string]int{}, time.Now()
	}
	w.mu.Unlock()
	if logNow != nil {
		w.f.opts.Logger.Warn("slave missed writes; ids recorded in the repair ledger",
			"cluster", w.t.Name, "counts", logNow, "example_reason", ms[0].Reason)
	}
	if w.f.opts.Ledger == nil {
		return
	}
	// The ledger write has its own deadline: a stuck control database must not stall the worker.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.f.opts.Ledger.Record(lctx, w.t.Name, ms); err != nil {
		w.f.opts.Logger.Error("record repair ledger", "cluster", w.t.Name, "ids", len(ms), "err", err)
		return
	}
	w.f.opts.Metrics.Ledger.WithLabelValues(w.t.Name).Add(float64(len(ms)))
}

// Lazy is a Bulker for a cluster that did not answer at start: each Bulk first tries to
// connect (New runs the flavor detection) until it succeeds, so one dead cluster never keeps
// the indexer from starting, and its writes fail as retryable transport errors meanwhile.
type Lazy struct {
	New func() (*cluster.Client, error)

	mu sync.Mutex
	c  *cluster.Client
}

var _ Bulker = (*Lazy)(nil)

// Bulk connects if needed, then sends body.
func (l *Lazy) Bulk(ctx context.Context, body []byte, opts ...cluster.BulkOption) ([]cluster.BulkItem, error) {
	c, err := l.client()
	if err != nil {
		return nil, err
	}
	return c.Bulk(ctx, body, opts...)
}

// Do connects if needed, then performs req; with it a Lazy serves mapping.WriteTargets.
func (l *Lazy) Do(ctx context.Context, req esapi.Request) (int, []byte, error) {
	c, err := l.client()
	if err != nil {
		return 0, nil, err
	}
	return c.Do(ctx, req)
}

func (l *Lazy) client() (*cluster.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return l.c, nil
	}
	c, err := l.New()
	if err != nil {
		var te *cluster.TransportError
		if errors.As(err, &te) {
			return nil, err
		}
		return nil, &cluster.TransportError{Op: "Bulk", Err: err}
	}
	l.c = c
	return c, nil
}

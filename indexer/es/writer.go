package es

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/internal/defaults"
	"github.com/wyehq/wye/internal/lograte"
	"github.com/wyehq/wye/internal/reason"
)

// Defaults of a Writer.
const (
	// DefaultIndicesTTL is how long the resolved indices of an alias are reused.
	DefaultIndicesTTL = 10 * time.Second
)

// Bulker sends one _bulk body to one cluster; *cluster.Client is one.
type Bulker interface {
	Bulk(ctx context.Context, body []byte, opts ...cluster.BulkOption) ([]cluster.BulkItem, error)
}

var _ Bulker = (*cluster.Client)(nil)

// IndexResolver lists the concrete indices the Writer's cluster must receive every document
// of alias in: every <alias>_vN that exists, in version order (mapping.WriteTargets; two while
// a mapping version bump runs). An error means there is nothing safe to write to: the alias
// name itself must not be written, or the engine would auto-create a dynamic index.
type IndexResolver interface {
	WriteTargets(ctx context.Context, alias string) ([]Target, error)
}

// Target is one concrete index that receives the documents of an alias.
type Target struct {
	Name string
	// Alias: the alias points at this index, the one the application reads. When a target
	// of the alias has it, a permanent refusal by any other target decides nothing: it is
	// counted and logged, never parked or ledgered (docs/mapping.md, "Version bump without
	// downtime"). When none has it, every target decides.
	Alias bool
	// Project gives a document's source for this index and how many fields it left out
	// (mapping.Projection.Apply); nil sends every source as it is. Decided once per
	// resolution, so a document is re-encoded only for an index that lacks a field.
	Project func(src []byte) ([]byte, int, error)
}

// Options configure the Writer of one cluster.
type Options struct {
	Name   string
	Client Bulker
	// Timeout bounds one Write on this cluster (resolving its indices and its _bulk, halved
	// or not); cluster.DefaultBulkTimeout. The client bounds each _bulk request by its own
	// BulkTimeout too.
	Timeout time.Duration
	// Resolver gives the concrete indices of each entity's alias. nil writes to Doc.Index as
	// configured: only for indices that `wye mapping` does not manage.
	Resolver IndexResolver
	// IndicesTTL is how long resolved indices are reused per alias (DefaultIndicesTTL). An
	// index_not_found_exception forgets them at once.
	IndicesTTL time.Duration
	LogEvery   time.Duration // rate of the "no indices" log line per alias; indexer.DefaultLogEvery
	Metrics    *indexer.Metrics
	Logger     *slog.Logger
}

// Writer writes documents to one cluster: one _bulk per call (halved while the cluster
// answers that it is too large), each document once per concrete index of its alias (same
// external version; same source bytes unless a version bump makes an index need the document
// projected onto its mapping), and one result per document: the worst of the results of the
// indices that decide it (Target.Alias). It implements indexer.ClusterWriter.
//
// Invariant: every Result.Reason is made here, passing once through reason.Cut (the engine's
// error type, a bounded message, no quoted field value), at most prefixed by the index it
// concerns: it is stored in parked headers and the repair ledger and logged, and an engine's
// message may quote row data (docs/architecture.md, "Error classes").
type Writer struct {
	opts    Options
	mu      sync.Mutex
	cache   map[string]*cached // alias -> its indices, read by the master path and slave workers
	refused *lograte.Limiter   // log lines of refusals that decide nothing, per index
}

var _ indexer.ClusterWriter = (*Writer)(nil)

type cached struct {
	targets  []Target
	at       time.Time // zero: not resolved (or forgotten)
	failures int       // consecutive failed resolutions
	lastLog  time.Time
}

// New builds the Writer of one cluster.
func New(opts Options) *Writer {
	opts.Timeout = defaults.Positive(opts.Timeout, cluster.DefaultBulkTimeout)
	opts.IndicesTTL = defaults.Positive(opts.IndicesTTL, DefaultIndicesTTL)
	opts.LogEvery = defaults.Positive(opts.LogEvery, indexer.DefaultLogEvery)
	opts.Metrics = cmp.Or(opts.Metrics, indexer.NewMetrics(nil))
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	w := &Writer{opts: opts, cache: map[string]*cached{}}
	w.refused = lograte.New(opts.LogEvery, func(index string, n int) {
		opts.Logger.Warn("more documents refused by an index the alias does not point at; nothing parked or ledgered",
			"cluster", opts.Name, "index", index, "count", n)
	})
	return w
}

// write is one document and the indices it goes to, with its source projected for those
// that need it (sources[j] for targets[j]; nil: the document's own source).
type write struct {
	doc     indexer.Doc
	targets []Target
	sources [][]byte
}

func (wr write) source(j int) []byte {
	if wr.sources != nil && wr.sources[j] != nil {
		return wr.sources[j]
	}
	return wr.doc.Source
}

// Name is the cluster's name.
func (w *Writer) Name() string { return w.opts.Name }

// Write resolves the indices of docs on this cluster, sends them under the cluster's timeout
// and returns one result per doc.
func (w *Writer) Write(ctx context.Context, docs []indexer.Doc) []indexer.Result {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	out := make([]indexer.Result, len(docs))
	send := make([]write, 0, len(docs))
	at := make([]int, 0, len(docs)) // position in docs of send[j]
	byAlias := map[string][]Target{}
	failed := map[string]error{}
	for i, d := range docs {
		targets, ok := byAlias[d.Index]
		err := failed[d.Index]
		if !ok && err == nil {
			if targets, err = w.resolve(ctx, d.Index); err != nil {
				failed[d.Index] = err
			} else {
				byAlias[d.Index] = targets
			}
		}
		if err != nil {
			// No index to write to (not applied yet, or being created): retryable on the
			// master, a ledger entry on a slave. A cluster that could not even be asked took
			// no write: unavailable.
			out[i] = indexer.Result{Class: indexer.Retryable, Reason: reason.Cut("", err.Error()), Unavailable: noAnswer(err)}
			w.opts.Metrics.Items.WithLabelValues(w.opts.Name, "retryable").Inc()
			continue
		}
		send, at = append(send, w.project(d, targets)), append(at, i)
	}
	indexer.IndicesFixed(ctx) // the next batch in flight may resolve its indices now (indexer.Turn)
	if len(send) > 0 {
		for j, r := range w.send(ctx, send) {
			out[at[j]] = r
		}
	}
	return out
}

// project is the write of d to targets, its source projected for each target that has a
// Projection and counted per index. A source the projection cannot read goes as it is: the
// index's answer says what is wrong with it.
func (w *Writer) project(d indexer.Doc, targets []Target) write {
	wr := write{doc: d, targets: targets}
	if d.Source == nil {
		return wr
	}
	for j, t := range targets {
		if t.Project == nil {
			continue
		}
		src, n, err := t.Project(d.Source)
		if err != nil || n == 0 {
			continue
		}
		if wr.sources == nil {
			wr.sources = make([][]byte, len(targets))
		}
		wr.sources[j] = src
		w.opts.Metrics.FieldsProjected.WithLabelValues(w.opts.Name, t.Name).Add(float64(n))
	}
	return wr
}

// send writes docs, each to its indices, in one _bulk (halved while the cluster says it is
// too large) and folds the results of each doc's indices into one.
func (w *Writer) send(ctx context.Context, docs []write) []indexer.Result {
	b, err := body(docs)
	if err != nil {
		return same(len(docs), indexer.Result{Class: indexer.Permanent, Reason: reason.Cut("", err.Error())})
	}
	w.opts.Metrics.BulkBytes.WithLabelValues(w.opts.Name).Observe(float64(len(b)))
	start := time.Now()
	// The answer carries each item's outcome only: fold reads nothing else, and a small
	// answer is parsed several times faster.
	items, err := w.opts.Client.Bulk(ctx, b, cluster.OutcomesOnly())
	w.opts.Metrics.BulkSeconds.WithLabelValues(w.opts.Name).Observe(time.Since(start).Seconds())
	if cluster.ClassOf(err) == cluster.TooLarge && len(docs) > 1 {
		h := len(docs) / 2
		return append(w.send(ctx, docs[:h]), w.send(ctx, docs[h:])...)
	}
	actions := 0
	for _, wr := range docs {
		actions += len(wr.targets)
	}
	if err == nil && len(items) != actions {
		err = fmt.Errorf("bulk to %s: %d items for %d actions", w.opts.Name, len(items), actions)
	}
	if err != nil {
		// The request failed as a whole: the cluster took no write of it. Only a single
		// document too large for any request is a verdict on that document.
		c := cluster.ClassOf(err)
		// The error's text carries the engine's type already (cluster.StatusError).
		r := indexer.Result{Class: classOf(c), Reason: reason.Cut("", err.Error()), Unavailable: c != cluster.TooLarge}
		var se *cluster.StatusError
		if errors.As(err, &se) {
			r.Status, r.ErrType = se.Status, se.Type
		}
		w.opts.Metrics.Items.WithLabelValues(w.opts.Name, r.Class.String()).Add(float64(actions))
		return same(len(docs), r)
	}
	return w.fold(docs, items)
}

// fold turns the items of a _bulk into one result per doc: the worst of the items of the
// indices that decide it. A permanent refusal by an index the alias does not point at
// decides nothing (Target.Alias): during a version bump the alias's index, the one the
// application reads, must keep taking changes whatever the new index says; the refusal is
// counted and logged here. Every other class of every index still decides, so a transient
// failure of the new index is retried (master) or ledgered (slave) as before.
func (w *Writer) fold(docs []write, items []cluster.BulkItem) []indexer.Result {
	out := make([]indexer.Result, len(docs))
	var perClass [indexer.Permanent + 1]int // items of each class, counted once per class
	defer func() {
		for c, k := range perClass {
			if k > 0 {
				w.opts.Metrics.Items.WithLabelValues(w.opts.Name, indexer.Class(c).String()).Add(float64(k))
			}
		}
	}()
	n := 0
	for i, wr := range docs {
		anyAlias := slices.ContainsFunc(wr.targets, func(t Target) bool { return t.Alias })
		decided := false
		for _, t := range wr.targets {
			it := items[n]
			n++
			r := indexer.Result{Class: classOf(it.Class), Status: it.Status, ErrType: it.ErrType, Reason: reason.Cut(it.ErrType, it.Reason),
				Unavailable: it.Class == cluster.Unavailable}
			perClass[r.Class]++
			if it.ErrType == "index_not_found_exception" {
				w.forget(wr.doc.Index) // gc removed an index: list them again
			}
			if r.Class.Missed() {
				r.Reason = t.Name + ": " + r.Reason // a configured name, not row data: outside the cut
			}
			switch {
			case it.ErrType == "index_not_found_exception" && anyAlias && !t.Alias:
				// gc deleted an old index the cache still listed: the alias's index decides.
			case r.Class == indexer.Permanent && anyAlias && !t.Alias:
				w.otherRefused(t.Name, r)
			case !decided:
				out[i], decided = r, true
			default:
				out[i] = indexer.Worse(out[i], r)
			}
		}
	}
	return out
}

// otherRefused counts and logs (rate-limited per index) a refusal that decides nothing.
func (w *Writer) otherRefused(index string, r indexer.Result) {
	w.opts.Metrics.OtherIndexRefused.WithLabelValues(w.opts.Name, index).Inc()
	if ok, _ := w.refused.Allow(index, 1); ok {
		w.opts.Logger.Warn("an index the alias does not point at refused a document; the alias's index decides, nothing parked or ledgered "+
			"(a mapping version bump: docs/mapping.md)", "cluster", w.opts.Name, "index", index, "status", r.Status, "type", r.ErrType, "reason", r.Reason)
	}
}

// noAnswer reports an error of a request the cluster failed as a whole (no connection, a
// timeout, a refused request), as opposed to an answer that says there is nothing to write to.
func noAnswer(err error) bool {
	var te *cluster.TransportError
	var se *cluster.StatusError
	return errors.As(err, &te) || errors.As(err, &se)
}

func same(n int, r indexer.Result) []indexer.Result {
	out := make([]indexer.Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// classOf maps the cluster's one classification to the indexer's classes. TooLarge reaches
// here only for a single document that no smaller request can carry: permanent.
func classOf(c cluster.Class) indexer.Class {
	switch c {
	case cluster.OK:
		return indexer.OK
	case cluster.Stale:
		return indexer.Stale
	case cluster.Retryable, cluster.Unavailable:
		return indexer.Retryable
	}
	return indexer.Permanent
}

// resolve returns the indices of alias on this cluster: alias itself without a Resolver, else the
// cached answer while it is younger than IndicesTTL, else a fresh one. Failures are not
// cached: the next write asks again. They are logged here, once per LogEvery per alias, with
// the count of consecutive failures; the caller turns them into retryable results.
func (w *Writer) resolve(ctx context.Context, alias string) ([]Target, error) {
	if w.opts.Resolver == nil {
		return []Target{{Name: alias, Alias: true}}, nil
	}
	w.mu.Lock()
	e := w.cache[alias]
	if e == nil {
		e = &cached{}
		w.cache[alias] = e
	}
	if !e.at.IsZero() && time.Since(e.at) < w.opts.IndicesTTL {
		targets := e.targets
		w.mu.Unlock()
		return targets, nil
	}
	w.mu.Unlock()

	// Two goroutines may resolve the same alias at once; both answers are current.
	targets, err := w.opts.Resolver.WriteTargets(ctx, alias)
	if err == nil && len(targets) == 0 {
		err = errors.New("no index")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		e.failures++
		if time.Since(e.lastLog) >= w.opts.LogEvery {
			e.lastLog = time.Now()
			w.opts.Logger.Warn("no index to write; writes of this alias are retried (master) or recorded in the repair ledger (slave) until `wye mapping apply` creates one",
				"cluster", w.opts.Name, "alias", alias, "consecutive_failures", e.failures, "err", err)
		}
		return nil, fmt.Errorf("resolve indices of %s on %s: %w", alias, w.opts.Name, err)
	}
	if e.failures > 0 || !slices.EqualFunc(e.targets, targets, func(a, b Target) bool {
		return a.Name == b.Name && a.Alias == b.Alias && (a.Project == nil) == (b.Project == nil)
	}) {
		var aliased, projected []string
		for _, t := range targets {
			if t.Alias {
				aliased = append(aliased, t.Name)
			}
			if t.Project != nil {
				projected = append(projected, t.Name)
			}
		}
		w.opts.Logger.Info("write indices", "cluster", w.opts.Name, "alias", alias, "indices", names(targets),
			"alias_on", aliased, "projected", projected, "after_failures", e.failures)
	}
	e.targets, e.at, e.failures = targets, time.Now(), 0
	return targets, nil
}

func names(targets []Target) []string {
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.Name
	}
	return out
}

// forget drops the cached indices of alias: one of them answered index_not_found_exception.
func (w *Writer) forget(alias string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.cache[alias]; e != nil {
		e.at = time.Time{}
	}
}

// Body renders docs as one _bulk body, each to its Doc.Index. Every action carries the
// external version: a write lands only if its version is greater than the stored one, so
// replays, retries and replicas in any order converge (docs/architecture.md, invariant 1).
func Body(docs []indexer.Doc) ([]byte, error) {
	writes := make([]write, len(docs))
	targets := make([]Target, len(docs))
	for i, d := range docs {
		targets[i].Name = d.Index
		writes[i] = write{doc: d, targets: targets[i : i+1 : i+1]}
	}
	return body(writes)
}

// body is Body with the indices of each doc: one action per index, each with the same
// version and the source projected for that index (write.source).
func body(docs []write) ([]byte, error) {
	// The size of the body unless a name or an id needs escapes: one allocation.
	size := 0
	for _, wr := range docs {
		for j, t := range wr.targets {
			size += actionBytes + len(t.Name) + len(wr.doc.ID)
			if wr.doc.Source != nil {
				size += len(wr.source(j)) + 1
			}
		}
	}
	b := make([]byte, 0, size)
	for _, wr := range docs {
		d := wr.doc
		if d.Version < 0 {
			return nil, fmt.Errorf("build bulk body: %s %s: negative version %d", d.Entity, d.ID, d.Version)
		}
		op := `{"index":{"_index":`
		if d.Source == nil {
			op = `{"delete":{"_index":`
		}
		for j, t := range wr.targets {
			b = append(b, op...)
			b = appendJSON(b, t.Name)
			b = append(b, `,"_id":`...)
			b = appendJSON(b, d.ID)
			b = append(b, `,"version":`...)
			b = strconv.AppendInt(b, d.Version, 10)
			b = append(b, `,"version_type":"external"}}`+"\n"...)
			if d.Source != nil {
				b = append(b, wr.source(j)...)
				b = append(b, '\n')
			}
		}
	}
	return b, nil
}

// actionBytes bounds the bytes of an action line besides its index name and id.
const actionBytes = len(`{"delete":{"_index":"","_id":"","version":,"version_type":"external"}}`+"\n") + 20

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

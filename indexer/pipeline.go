package indexer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/wyehq/wye/internal/defaults"
	"github.com/wyehq/wye/internal/reason"
)

// Writer sends one batch of documents to the clusters (Stream).
type Writer interface {
	// Write sends docs to the master and, without waiting for them, to the slaves; or, when
	// cluster is not "", to that cluster alone (a retry). It returns the name of the cluster
	// whose results decide the batch (the master, or the retry's cluster) and one result per
	// doc, in order. A request that failed as a whole gives every doc that request's class.
	Write(ctx context.Context, docs []Doc, cluster string) (decider string, results []Result, err error)
}

// Outcome is what the broker must do with a processed batch before its deliveries are
// acked: publish the retries, park what cannot be written.
type Outcome struct {
	Retries []Outgoing
	Parked  []Outgoing
	Commits []time.Time // commit time of every change event, for the end-to-end lag
	Docs    int         // documents written (deletes included)
	Behind  int         // entities whose read did not show their change yet: retried, not written
	Queries int         // SQL queries the batch made
}

// Error types of parked messages that no cluster gave (Outgoing.ErrType; a cluster's
// refusal carries the engine's own type, such as mapper_parsing_exception).
const (
	ErrTypePoison = "poison" // the message can never be decoded (PoisonError)
	ErrTypeSource = "source" // the source refuses the reads of the change (SourceError)
)

// Outgoing is one message to publish, with its headers' content.
type Outgoing struct {
	Body      []byte
	Encoding  string // content-encoding of Body: "" (plain JSON) unless a body that could not be decompressed is parked as it came
	Attempt   int    // for a retry: the attempt it will be; for parked: attempts made
	Cluster   string // retry: the cluster to write to. parked: the cluster that refused
	Status    int
	ErrType   string
	Reason    string
	FirstSeen time.Time
}

// Defaults of the pipeline (Options).
const (
	// DefaultMaxAttempts is the writes of one entity to the master before it is parked: with
	// the default retry tiers about 13 minutes, more than a cluster restart.
	DefaultMaxAttempts = 10
	// DefaultChunkDocs bounds the documents denormalized and held at once: a change that
	// touches more (a shared row renamed) is read and written a chunk at a time.
	DefaultChunkDocs = 2000
	// DefaultChunkBytes bounds the bytes of the documents held at once; the next chunk is
	// sized from the documents already read to stay under it.
	DefaultChunkBytes = 32 << 20
	// DefaultBulkBytes bounds the documents of one write (one _bulk per cluster, per index):
	// a chunk is sent in as many writes as this takes, a slave merges queued writes up to it.
	DefaultBulkBytes = 8 << 20
	// probeDocs is the first chunk of an entity whose document size is not known yet.
	probeDocs = 100
)

// Options tune the pipeline.
type Options struct {
	MaxAttempts int              // DefaultMaxAttempts
	ChunkDocs   int              // DefaultChunkDocs
	ChunkBytes  int              // DefaultChunkBytes
	BulkBytes   int              // DefaultBulkBytes
	Now         func() time.Time // default time.Now
}

// Pipeline processes one batch at a time: decode, resolve, denormalize once, write, and say
// what to retry and park. It is safe for concurrent use.
type Pipeline struct {
	model  *Model
	source Source
	writer Writer
	opts   Options

	mu       sync.Mutex
	docBytes map[string]int // entity -> bytes of its last documents, on average: sizes chunks
}

// NewPipeline wires the pipeline.
func NewPipeline(m *Model, src Source, w Writer, opts Options) *Pipeline {
	opts.MaxAttempts = defaults.Positive(opts.MaxAttempts, DefaultMaxAttempts)
	opts.ChunkDocs = defaults.Positive(opts.ChunkDocs, DefaultChunkDocs)
	opts.ChunkBytes = defaults.Positive(opts.ChunkBytes, DefaultChunkBytes)
	opts.BulkBytes = defaults.Positive(opts.BulkBytes, DefaultBulkBytes)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Pipeline{model: m, source: src, writer: w, opts: opts, docBytes: map[string]int{}}
}

// work is what a batch asks for: changes to resolve and retries to write again.
type work struct {
	changes []*Change
	retries []retry
}

// retry is one retry message of a batch.
type retry struct {
	Retry
	cluster string    // the cluster it is for (the master that failed)
	attempt int       // attempts made so far
	first   time.Time // first failure
}

func (w work) size() int { return len(w.changes) + len(w.retries) }

// group is the work of one write: "" for change events (every cluster), a cluster name for
// retries.
type group struct {
	refs     map[Ref]int64
	attempts map[Ref]int       // retries: attempts made so far
	first    map[Ref]time.Time // retries: first failure
}

// groups are a batch's writes by cluster ("" for every cluster).
type groups map[string]*group

func (gs groups) get(cluster string) *group {
	if gs[cluster] == nil {
		gs[cluster] = &group{refs: map[Ref]int64{}, attempts: map[Ref]int{}, first: map[Ref]time.Time{}}
	}
	return gs[cluster]
}

func (gs groups) addRetry(r retry) {
	g := gs.get(r.cluster)
	ref := Ref{Entity: r.Entity, Key: r.Key}
	g.refs[ref] = max(g.refs[ref], r.Version)
	g.attempts[ref] = max(g.attempts[ref], r.attempt)
	if f, ok := g.first[ref]; !ok || r.first.Before(f) {
		g.first[ref] = r.first
	}
}

// readError is a read for the batch's changes that failed (resolving or denormalizing), as
// opposed to a failure to open the source at all: only the former can concern some changes
// and not others.
type readError struct{ error }

func (e readError) Unwrap() error { return e.error }

// Process handles one batch. An error means nothing of the batch was decided (the source
// could not be read, no cluster is master, or the master took no write: *UnavailableError):
// the caller keeps the deliveries and tries again later. Otherwise every message is accounted
// for: written, in Retries or in Parked. A read the source refuses for good parks only the
// changes it concerns (isolate); the rest of the batch is written.
func (p *Pipeline) Process(ctx context.Context, msgs []Message) (Outcome, error) {
	return p.ProcessInTurn(ctx, msgs, nil)
}

// ProcessInTurn is Process for a batch processed while the one before it is still written:
// its reads go ahead, its writes wait for turn (Turn). The turn passes once the batch's last
// write knows its indices, or when the batch is decided; a batch that could not be decided
// keeps it, so that the next batch waits for its next try.
func (p *Pipeline) ProcessInTurn(ctx context.Context, msgs []Message, turn *Turn) (Outcome, error) {
	var out Outcome
	w := p.decodeAll(msgs, &out)
	if w.size() == 0 {
		turn.pass()
		return out, nil // only poison
	}
	o, err := p.run(ctx, w, nil, turn)
	if se, ok := errors.AsType[*SourceError](err); ok && se.Permanent && errors.As(err, new(readError)) {
		// A read failed before the batch's last write: the turn is still this batch's.
		if err := turn.wait(ctx); err != nil {
			return Outcome{}, err
		}
		o, err = p.isolate(ctx, w, msgs)
	}
	if err != nil {
		return Outcome{}, err
	}
	turn.pass()
	out.add(o)
	return out, nil
}

// add merges the outcome of part of a batch into o.
func (o *Outcome) add(part Outcome) {
	o.Retries = append(o.Retries, part.Retries...)
	o.Parked = append(o.Parked, part.Parked...)
	o.Commits = append(o.Commits, part.Commits...)
	o.Docs += part.Docs
	o.Behind += part.Behind
	o.Queries += part.Queries
}

// run resolves, denormalizes and writes w, the changes of every entity or of only one. Its
// writes wait for turn, and its last one passes it (nil: no order).
func (p *Pipeline) run(ctx context.Context, w work, only *Entity, turn *Turn) (Outcome, error) {
	var out Outcome
	gs := groups{}
	for _, r := range w.retries {
		gs.addRetry(r)
	}
	res := newResolver(p.model, only, len(w.changes))
	for _, c := range w.changes {
		res.add(c)
	}
	if len(gs) == 0 && len(res.pending) == 0 {
		return out, nil // updates of columns no document shows
	}
	view, err := p.source.View(ctx)
	if err != nil {
		return Outcome{}, fmt.Errorf("open source view: %w", err)
	}
	defer view.Close()
	q := count(view)
	refs, err := res.resolve(ctx, q)
	if err != nil {
		return Outcome{}, readError{err}
	}
	// The changes join the writes to every cluster. That group may already hold retries with
	// no target (a replayed parked retry, a read that was behind its change).
	if all := gs.get(""); len(all.refs) == 0 {
		all.refs = refs // no copy: a fan-out of many documents holds one map of keys
	} else {
		for ref, v := range refs {
			all.refs[ref] = max(all.refs[ref], v)
		}
	}
	gs.mergeRetries()
	err = p.writeChunks(ctx, q, gs, res.latest, &out, turn)
	out.Queries = q.queries
	if err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// decodeAll reads every message into work (changes and retries); what can never be
// processed goes to out.Parked.
func (p *Pipeline) decodeAll(msgs []Message, out *Outcome) work {
	var w work
	for i, m := range msgs {
		body, err := m.plain()
		var msg decoded
		if err == nil {
			// A decompressed body is this batch's alone: its values need no copy.
			msg, err = p.model.decodeBody(body, m.Encoding == "zstd")
		}
		var pe *PoisonError
		if errors.As(err, &pe) {
			o := Outgoing{Body: body, Attempt: m.Attempt, ErrType: ErrTypePoison, Reason: pe.Reason, FirstSeen: p.opts.Now()}
			if body == nil { // parked as it came: still compressed
				o.Body, o.Encoding = m.Body, m.Encoding
			}
			out.Parked = append(out.Parked, o)
			continue
		}
		for _, b := range msg.bad {
			out.Parked = append(out.Parked, Outgoing{Body: b.body, Attempt: m.Attempt, ErrType: ErrTypePoison, Reason: b.reason, FirstSeen: p.opts.Now()})
		}
		if msg.retry != nil {
			w.retries = append(w.retries, retry{Retry: *msg.retry, cluster: m.Cluster, attempt: m.Attempt, first: m.FirstSeen})
			continue
		}
		w.changes = slices.Grow(w.changes, len(msg.changes))
		out.Commits = slices.Grow(out.Commits, len(msg.changes))
		for _, change := range msg.changes {
			change.at.msg = i
			w.changes = append(w.changes, change)
			if !change.CommitTS.IsZero() {
				out.Commits = append(out.Commits, change.CommitTS)
			}
		}
	}
	return w
}

// mergeRetries lets a retry for an entity that also changed in this batch ride with the
// change: the change is written to every cluster, the master included (the retry's cluster,
// or the master that replaced it), with the higher version. Its attempts and first failure
// carry over, so an entity that keeps failing on the master is still parked after MaxAttempts.
func (gs groups) mergeRetries() {
	all := gs[""]
	if all == nil {
		return
	}
	for cluster, g := range gs {
		if cluster == "" {
			continue
		}
		for ref, v := range g.refs {
			if _, ok := all.refs[ref]; !ok {
				continue
			}
			all.refs[ref] = max(all.refs[ref], v)
			all.attempts[ref] = max(all.attempts[ref], g.attempts[ref])
			if f, ok := all.first[ref]; !ok || g.first[ref].Before(f) {
				all.first[ref] = g.first[ref]
			}
			delete(g.refs, ref)
		}
	}
}

// writeChunks denormalizes the documents of every group ONCE (docs/architecture.md,
// invariant 3: the union of the groups, one read per entity) a chunk at a time, and writes
// each chunk before the next is read. Memory holds one chunk, at most ChunkDocs documents
// and about ChunkBytes bytes, whatever the fan-out of the batch.
//
// A document whose root row is older than its latest change in the batch (fresh.go) is not
// written: it goes to a retry for every cluster, whose fresh read is written.
func (p *Pipeline) writeChunks(ctx context.Context, q *counted, gs groups, latest map[Ref]*Change, out *Outcome, turn *Turn) error {
	// A batch that fans out to many documents holds their keys, not their documents: one
	// map of them (the groups' own when there is one group) and their order.
	all := map[Ref]int64{}
	for _, g := range gs {
		if len(gs) == 1 {
			all = g.refs
			break
		}
		for ref, v := range g.refs {
			all[ref] = max(all[ref], v)
		}
	}
	refs := slices.SortedFunc(maps.Keys(all), compareRefs)
	clusters := slices.Sorted(maps.Keys(gs))
	for len(refs) > 0 {
		n := min(p.chunkDocs(refs[0].Entity), len(refs))
		for i := 1; i < n; i++ { // one entity per chunk: its size estimate holds for all of it
			if refs[i].Entity != refs[0].Entity {
				n = i
				break
			}
		}
		chunk := refs[:n]
		refs = refs[n:]
		docs, behind, err := p.model.denormalizeSorted(ctx, q, chunk, all, latest)
		if err != nil {
			return readError{err}
		}
		p.retryBehind(gs[""], behind, all, out)
		p.sized(docs)
		for i, cluster := range clusters {
			o := order{turn: turn, last: len(refs) == 0 && i == len(clusters)-1}
			if err := p.write(ctx, gs[cluster], cluster, docs, out, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// retryBehind sends the entities whose read was older than their change to a retry for every
// cluster (no target): the next read is written, whatever it shows.
func (p *Pipeline) retryBehind(g *group, behind []Ref, versions map[Ref]int64, out *Outcome) {
	for _, ref := range behind {
		attempt := 1
		if g != nil {
			attempt = max(g.attempts[ref], 1)
		}
		out.Retries = append(out.Retries, Outgoing{Body: EncodeRetry(Retry{Entity: ref.Entity, Key: ref.Key, Version: versions[ref]}),
			Attempt: attempt + 1, Reason: ReadBehindReason, FirstSeen: p.opts.Now()})
		out.Behind++
	}
}

// chunkDocs is how many documents of entity the next chunk reads: ChunkDocs, fewer when
// that many of its documents, at their last average size, would pass ChunkBytes.
func (p *Pipeline) chunkDocs(entity string) int {
	p.mu.Lock()
	avg := p.docBytes[entity]
	p.mu.Unlock()
	if avg == 0 {
		return min(probeDocs, p.opts.ChunkDocs)
	}
	return max(1, min(p.opts.ChunkDocs, p.opts.ChunkBytes/avg))
}

// sized records the average size of the documents just read, per entity.
func (p *Pipeline) sized(docs []Doc) {
	if len(docs) == 0 {
		return
	}
	total := 0
	for _, d := range docs {
		total += d.BulkSize()
	}
	p.mu.Lock()
	p.docBytes[docs[0].Entity] = max(1, total/len(docs))
	p.mu.Unlock()
}

// write sends the group's documents of one chunk, in writes of at most BulkBytes, and sorts
// the deciding cluster's results into out: retryable ones retry until MaxAttempts, then park
// with the permanent ones. docs are the chunk's documents as denormalize returns them: of one
// entity, one per key, in key order (compareRefs), the order they are written in.
func (p *Pipeline) write(ctx context.Context, g *group, cluster string, docs []Doc, out *Outcome, o order) error {
	var batch []Doc
	size := 0
	for i, d := range docs {
		if _, ok := g.refs[Ref{Entity: d.Entity, Key: d.Key}]; !ok {
			continue
		}
		// A retry and a change of one entity in one batch share the highest version: the
		// body is read after both were committed, so it reflects both.
		if len(batch) > 0 && size+d.BulkSize() > p.opts.BulkBytes {
			if err := p.send(ctx, g, cluster, batch, out, order{turn: o.turn}); err != nil {
				return err
			}
			batch, size = nil, 0
		}
		if batch == nil { // a new slice: the writer may hold the last one (a slave's queue)
			batch = make([]Doc, 0, len(docs)-i)
		}
		batch = append(batch, d)
		size += d.BulkSize()
	}
	if len(batch) == 0 {
		return nil
	}
	return p.send(ctx, g, cluster, batch, out, o)
}

// order places one write among the batches in flight: it waits for turn, and when it is the
// batch's last write, it passes turn once its indices are fixed.
type order struct {
	turn *Turn
	last bool
}

// send writes one batch of documents and sorts the deciding cluster's results into out.
func (p *Pipeline) send(ctx context.Context, g *group, cluster string, batch []Doc, out *Outcome, o order) error {
	if err := o.turn.wait(ctx); err != nil {
		return err
	}
	wctx := ctx
	if o.last && o.turn != nil {
		wctx = withIndicesFixed(ctx, o.turn.pass)
	}
	decider, results, err := p.writer.Write(wctx, batch, cluster)
	if err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	for _, r := range results {
		if r.Unavailable {
			// An outage of the master is not a verdict on the documents: hold the batch,
			// spend no attempt, park nothing (a retry later rewrites what did land; versions
			// make that harmless).
			return &UnavailableError{Cluster: decider, Reason: r.Reason}
		}
	}
	out.Docs += len(batch)
	for i, r := range results {
		if r.Class != Retryable && r.Class != Permanent {
			continue // written, or a newer version is there: nothing to retry or park
		}
		d := batch[i]
		ref := Ref{Entity: d.Entity, Key: d.Key}
		attempt := max(g.attempts[ref], 1) // this write was attempt number `attempt`
		first := g.first[ref]
		if first.IsZero() {
			first = p.opts.Now()
		}
		o := Outgoing{Body: EncodeRetry(Retry{Entity: d.Entity, Key: d.Key, Version: d.Version}),
			Cluster: decider, Status: r.Status, ErrType: r.ErrType, Reason: r.Reason, FirstSeen: first}
		switch {
		case r.Class == Retryable && attempt < p.opts.MaxAttempts:
			o.Attempt = attempt + 1
			out.Retries = append(out.Retries, o)
		case r.Class == Retryable:
			o.Attempt = attempt
			o.Reason = reason.Cut("", fmt.Sprintf("gave up after %d attempts: %s", attempt, r.Reason))
			out.Parked = append(out.Parked, o)
		case r.Class == Permanent:
			o.Attempt = attempt
			out.Parked = append(out.Parked, o)
		}
	}
	return nil
}

func compareRefs(a, b Ref) int {
	if a.Entity != b.Entity {
		if a.Entity < b.Entity {
			return -1
		}
		return 1
	}
	return compareValues(a.Key, b.Key)
}

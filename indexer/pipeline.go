package indexer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wyehq/wye/internal/defaults"
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
	Queries int         // SQL queries the batch made
}

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

// DefaultMaxAttempts is the writes of one entity to the master before it is parked: with
// the default retry tiers about 13 minutes, more than a cluster restart.
const DefaultMaxAttempts = 10

// Options tune the pipeline.
type Options struct {
	MaxAttempts int              // DefaultMaxAttempts
	Now         func() time.Time // default time.Now
}

// Pipeline processes one batch at a time: decode, resolve, denormalize once, write, and say
// what to retry and park.
type Pipeline struct {
	model  *Model
	source Source
	writer Writer
	opts   Options
}

// NewPipeline wires the pipeline.
func NewPipeline(m *Model, src Source, w Writer, opts Options) *Pipeline {
	opts.MaxAttempts = defaults.Positive(opts.MaxAttempts, DefaultMaxAttempts)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Pipeline{model: m, source: src, writer: w, opts: opts}
}

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

// Process handles one batch. An error means nothing of the batch was decided (the source
// could not be read, no cluster is master, or the master took no write: *UnavailableError):
// the caller keeps the deliveries and tries again later. Otherwise every message is accounted for: written, in Retries or in Parked.
func (p *Pipeline) Process(ctx context.Context, msgs []Message) (Outcome, error) {
	var out Outcome
	gs := groups{}
	res := newResolver(p.model)
	p.decodeAll(msgs, gs, res, &out)
	if len(gs) == 0 && len(res.pending) == 0 {
		return out, nil // only poison, or updates of columns no document shows
	}
	view, err := p.source.View(ctx)
	if err != nil {
		return Outcome{}, fmt.Errorf("open source view: %w", err)
	}
	defer view.Close()
	q := count(view)
	refs, err := res.resolve(ctx, q)
	if err != nil {
		return Outcome{}, err
	}
	if len(refs) > 0 {
		maps.Copy(gs.get("").refs, refs)
	}
	gs.mergeRetries()
	// Denormalize ONCE (docs/architecture.md, invariant 3): the union of every group, one
	// read per entity.
	all := map[Ref]int64{}
	for _, g := range gs {
		for ref, v := range g.refs {
			all[ref] = max(all[ref], v)
		}
	}
	docs, err := p.model.Denormalize(ctx, q, all)
	if err != nil {
		return Outcome{}, err
	}
	out.Queries = q.queries
	byRef := make(map[Ref]Doc, len(docs))
	for _, d := range docs {
		byRef[Ref{Entity: d.Entity, Key: d.Key}] = d
	}
	for _, cluster := range slices.Sorted(maps.Keys(gs)) {
		if err := p.write(ctx, gs[cluster], cluster, byRef, &out); err != nil {
			return Outcome{}, err
		}
	}
	return out, nil
}

// decodeAll reads every message into the groups (retries) and the resolver (changes); what
// can never be processed goes to out.Parked.
func (p *Pipeline) decodeAll(msgs []Message, gs groups, res *resolver, out *Outcome) {
	for _, m := range msgs {
		body, err := m.plain()
		var msg decoded
		if err == nil {
			msg, err = p.model.decode(body)
		}
		var pe *PoisonError
		if errors.As(err, &pe) {
			o := Outgoing{Body: body, Attempt: m.Attempt, ErrType: "poison", Reason: pe.Reason, FirstSeen: p.opts.Now()}
			if body == nil { // parked as it came: still compressed
				o.Body, o.Encoding = m.Body, m.Encoding
			}
			out.Parked = append(out.Parked, o)
			continue
		}
		for _, b := range msg.bad {
			out.Parked = append(out.Parked, Outgoing{Body: b.body, Attempt: m.Attempt, ErrType: "poison", Reason: b.reason, FirstSeen: p.opts.Now()})
		}
		if retry := msg.retry; retry != nil {
			g := gs.get(m.Cluster)
			ref := Ref{Entity: retry.Entity, Key: retry.Key}
			g.refs[ref] = max(g.refs[ref], retry.Version)
			g.attempts[ref] = max(g.attempts[ref], m.Attempt)
			if f, ok := g.first[ref]; !ok || m.FirstSeen.Before(f) {
				g.first[ref] = m.FirstSeen
			}
			continue
		}
		for _, change := range msg.changes {
			res.add(change)
			if !change.CommitTS.IsZero() {
				out.Commits = append(out.Commits, change.CommitTS)
			}
		}
	}
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

// write sends one group's documents and sorts the deciding cluster's results into out:
// retryable ones retry until MaxAttempts, then park with the permanent ones.
func (p *Pipeline) write(ctx context.Context, g *group, cluster string, byRef map[Ref]Doc, out *Outcome) error {
	batch := make([]Doc, 0, len(g.refs))
	for _, ref := range slices.SortedFunc(maps.Keys(g.refs), compareRefs) {
		// A retry and a change of one entity in one batch share the highest version: the
		// body is read after both were committed, so it reflects both.
		batch = append(batch, byRef[ref])
	}
	if len(batch) == 0 {
		return nil
	}
	decider, results, err := p.writer.Write(ctx, batch, cluster)
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
			o.Reason = fmt.Sprintf("gave up after %d attempts: %s", attempt, r.Reason)
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

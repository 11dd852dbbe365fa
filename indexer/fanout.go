package indexer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wyehq/wye/internal/defaults"
	"github.com/wyehq/wye/internal/lograte"
)

// Defaults of the streaming fan-out (StreamOptions).
const (
	// DefaultSlaveBacklog bounds the batches waiting for one slave; past it a batch is not
	// sent to that slave and its ids go to the ledger.
	DefaultSlaveBacklog = 64
	// DefaultSlaveBacklogBytes bounds the document bytes waiting for one slave, whatever the
	// size of the batches: past it a batch is not sent to that slave and goes to the ledger.
	DefaultSlaveBacklogBytes = 64 << 20
	// DefaultSlaveInFlight is the _bulk requests one slave has in flight: while one is
	// answered the next is sent, as the master has one per pipeline in flight.
	DefaultSlaveInFlight = 2
	// DefaultStopTimeout is how long, on shutdown, the slaves may drain their backlog (the
	// deadline of the context given to Stop) before what remains is recorded as dropped.
	DefaultStopTimeout = 10 * time.Second
	// DefaultLogEvery rate-limits slave failure logs: one line per cluster per interval.
	DefaultLogEvery = 10 * time.Second
	// maxDropped bounds the ids of dropped batches held for the ledger per slave; beyond it
	// drops are still counted (wye_indexer_items_total{result="dropped"}) but not recorded.
	maxDropped = 100_000
	// ledgerTimeout bounds the tries of one ledger write: a stuck control database must not
	// stall a slave.
	ledgerTimeout = 10 * time.Second
)

// StreamOptions configure the streaming fan-out.
type StreamOptions struct {
	Clusters      []ClusterWriter
	Roles         Roles
	Ledger        Ledger // nil: misses are counted and logged only
	Metrics       *Metrics
	Logger        *slog.Logger
	Backlog       int           // DefaultSlaveBacklog
	BacklogBytes  int           // DefaultSlaveBacklogBytes
	BulkBytes     int           // bound of one slave write merged from queued batches [DefaultBulkBytes]
	SlaveInFlight int           // DefaultSlaveInFlight
	LogEvery      time.Duration // DefaultLogEvery
}

// Stream is the streaming policy over the per-cluster writers, the pipeline's Writer: the
// master is written in the caller's goroutine and decides the batch; each slave is written by
// its own workers from a bounded backlog, and what a slave misses goes to the ledger. A slave
// can never slow or fail the master path (docs/architecture.md, invariant 7): a full backlog
// drops the batch for that slave instead of waiting.
type Stream struct {
	opts    StreamOptions
	slaves  map[string]*slave
	writers map[string]ClusterWriter
	order   []string
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

var _ Writer = (*Stream)(nil)

type job struct {
	docs []Doc
	size int // estimated body bytes, bounds coalescing
}

// slave is the asynchronous side of one cluster: its backlog, workers and misses.
type slave struct {
	w      ClusterWriter
	queue  chan job
	queued atomic.Int64 // bytes of the jobs in queue: at most BacklogBytes
	s      *Stream

	logs *lograte.Limiter // miss lines: one per class per LogEvery, then a count

	mu       sync.Mutex
	dropped  []Doc // ids of batches the backlog had no room for, for the ledger
	overflow int   // dropped beyond maxDropped, not recorded

	// take is held by one worker from taking the next batch until its write's indices are
	// fixed, so that a slave resolves its indices in queue order, as the master does in batch
	// order (Turn). left is a batch taken that did not fit the last write: the next taken.
	take sync.Mutex
	left *job
}

// NewStream builds the streaming fan-out; Start runs the slave workers.
func NewStream(opts StreamOptions) *Stream {
	opts.Backlog = defaults.Positive(opts.Backlog, DefaultSlaveBacklog)
	opts.BacklogBytes = defaults.Positive(opts.BacklogBytes, DefaultSlaveBacklogBytes)
	opts.BulkBytes = defaults.Positive(opts.BulkBytes, DefaultBulkBytes)
	opts.SlaveInFlight = defaults.Positive(opts.SlaveInFlight, DefaultSlaveInFlight)
	opts.LogEvery = defaults.Positive(opts.LogEvery, DefaultLogEvery)
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	opts.Metrics = cmp.Or(opts.Metrics, NewMetrics(nil))
	s := &Stream{opts: opts, slaves: map[string]*slave{}, writers: map[string]ClusterWriter{}}
	for _, w := range opts.Clusters {
		s.writers[w.Name()] = w
		s.slaves[w.Name()] = &slave{w: w, queue: make(chan job, opts.Backlog), s: s, logs: lograte.New(opts.LogEvery, func(class string, n int) {
			opts.Logger.Warn("more slave misses recorded in the repair ledger", "cluster", w.Name(), "class", class, "count", n)
		})}
		s.order = append(s.order, w.Name())
	}
	return s
}

// Start runs every cluster's slave workers: SlaveInFlight per cluster, taking turns at its one
// bounded backlog. Every cluster has them, so a promote needs no restart.
func (s *Stream) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	for _, name := range s.order {
		sl := s.slaves[name]
		for range s.opts.SlaveInFlight {
			s.wg.Go(func() { sl.run(ctx) })
		}
	}
}

// Stop must be called after the last Write. It lets the workers finish the queued batches
// until ctx is done, then cancels them; whatever was not written is recorded in the ledger
// as dropped.
func (s *Stream) Stop(ctx context.Context) {
	for _, name := range s.order {
		close(s.slaves[name].queue)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
}

// Write implements Writer.
func (s *Stream) Write(ctx context.Context, docs []Doc, cluster string) (string, []Result, error) {
	// Retries are targeted at the master they failed on. If that cluster is gone or no longer
	// the master (a promote happened), the current master decides: a demoted cluster is a
	// slave and must never hold up the master path (docs/architecture.md, invariant 7).
	decider, epoch := s.opts.Roles.Master()
	if cluster != "" && cluster != decider && s.writers[cluster] != nil {
		s.opts.Logger.Debug("retry for a cluster that is no longer the master; writing to the master",
			"cluster", cluster, "master", decider)
	}
	m := s.writers[decider]
	if m == nil {
		return "", nil, fmt.Errorf("write to %q: no such cluster", decider)
	}
	size := 0
	for _, d := range docs {
		if d.Version < 0 {
			return "", nil, fmt.Errorf("write %s %s: negative version %d", d.Entity, d.ID, d.Version)
		}
		size += d.BulkSize()
	}
	if cluster == "" {
		for _, name := range s.order {
			if name != decider {
				s.slaves[name].enqueue(job{docs: docs, size: size})
			}
		}
	}
	results := m.Write(ctx, docs)
	decider, results, err := s.fence(ctx, docs, decider, epoch, results)
	if err != nil {
		return "", nil, err
	}
	taken := 0
	for _, r := range results {
		if !r.Unavailable { // a master that took no write decided nothing: the batch waits
			taken++
		}
	}
	s.opts.Metrics.Decided.WithLabelValues(decider).Add(float64(taken))
	return decider, results, nil
}

// fence keeps a batch from counting as a master write under an epoch that ended while it was
// written (docs/architecture.md, invariant 8): when the promote epoch changed and the master
// is another cluster now, the documents are written again, synchronously, to the current
// master, whose results decide the batch (its retries and parked messages). Until the epoch
// holds across one write. The old master keeps what it took; versions make the second write
// harmless.
func (s *Stream) fence(ctx context.Context, docs []Doc, decider string, epoch int64, results []Result) (string, []Result, error) {
	for {
		now, e := s.opts.Roles.Master()
		if e == epoch || now == decider {
			return decider, results, nil
		}
		m := s.writers[now]
		if m == nil {
			return "", nil, fmt.Errorf("write to %q: no such cluster", now)
		}
		s.opts.Logger.Info("the master changed while a batch was written; writing it to the new master",
			"from", decider, "to", now, "epoch", e, "documents", len(docs))
		s.opts.Metrics.Fenced.WithLabelValues(now).Add(float64(len(docs)))
		decider, epoch, results = now, e, m.Write(ctx, docs)
	}
}

// enqueue hands a batch to a slave without ever blocking: a full backlog (in batches or in
// bytes) means the slave misses this batch; its ids are kept for the worker to record in the
// ledger, so the master path never touches the control database either.
func (sl *slave) enqueue(j job) {
	m := sl.s.opts.Metrics
	// The byte bound is checked before the send: concurrent pipelines may pass it together by
	// at most one batch each. An empty backlog takes any batch, so a document bigger than the
	// bound still reaches the slave.
	if q := sl.queued.Load(); q == 0 || q+int64(j.size) <= int64(sl.s.opts.BacklogBytes) {
		select {
		case sl.queue <- j:
			sl.queued.Add(int64(j.size))
			m.SlaveBacklog.WithLabelValues(sl.w.Name()).Set(float64(len(sl.queue)))
			return
		default:
		}
	}
	m.Items.WithLabelValues(sl.w.Name(), "dropped").Add(float64(len(j.docs)))
	sl.mu.Lock()
	defer sl.mu.Unlock()
	for _, d := range j.docs {
		if len(sl.dropped) >= maxDropped {
			sl.overflow++
			continue
		}
		sl.dropped = append(sl.dropped, Doc{Entity: d.Entity, ID: d.ID, Version: d.Version})
	}
}

func (sl *slave) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	m := sl.s.opts.Metrics
	for {
		sl.take.Lock()
		var j job
		if sl.left != nil {
			j, sl.left = *sl.left, nil
		} else {
			select {
			case next, ok := <-sl.queue:
				if !ok {
					sl.take.Unlock()
					sl.flushDropped(ctx)
					return
				}
				sl.queued.Add(-int64(next.size))
				j = next
			case <-tick.C:
				sl.take.Unlock()
				sl.flushDropped(ctx)
				continue
			}
		}
		m.SlaveBacklog.WithLabelValues(sl.w.Name()).Set(float64(len(sl.queue)))
		if ctx.Err() != nil {
			sl.take.Unlock()
			m.Items.WithLabelValues(sl.w.Name(), "dropped").Add(float64(len(j.docs)))
			sl.missed(ctx, j.docs, nil, "dropped", "shut down before the write")
			continue
		}
		j, sl.left = sl.coalesce(j)
		fixed := sync.OnceFunc(sl.take.Unlock)
		results := sl.w.Write(withIndicesFixed(ctx, fixed), j.docs)
		fixed() // a writer that never fixed its indices
		sl.missed(ctx, j.docs, results, "", "")
	}
}

// coalesce appends the batches already waiting to j while the write stays within BulkBytes,
// so a slave that fell behind catches up with fewer, larger requests instead of dropping; the
// first batch that does not fit is returned for the next write. Order within the body does
// not matter: external versions decide which write of one document wins.
func (sl *slave) coalesce(j job) (job, *job) {
	for {
		select {
		case next, ok := <-sl.queue:
			if !ok {
				return j, nil
			}
			sl.queued.Add(-int64(next.size))
			if j.size+next.size > sl.s.opts.BulkBytes {
				return j, &next
			}
			j = job{size: j.size + next.size, docs: append(j.docs[:len(j.docs):len(j.docs)], next.docs...)}
		default:
			return j, nil
		}
	}
}

func (sl *slave) flushDropped(ctx context.Context) {
	sl.mu.Lock()
	docs, overflow := sl.dropped, sl.overflow
	sl.dropped, sl.overflow = nil, 0
	sl.mu.Unlock()
	if overflow > 0 {
		sl.s.opts.Logger.Error("slave backlog overflowed the ledger buffer; a full resync of this cluster is needed",
			"cluster", sl.w.Name(), "unrecorded", overflow)
	}
	if len(docs) > 0 {
		sl.missed(ctx, docs, nil, "dropped", "slave backlog full")
	}
}

// missed counts, logs (rate-limited) and records in the ledger the docs this slave did not
// take: every doc when results is nil, else those whose result is retryable or permanent.
func (sl *slave) missed(ctx context.Context, docs []Doc, results []Result, class, reason string) {
	var ms []Missed
	for i, d := range docs {
		c, why := class, reason
		if results != nil {
			r := results[i]
			if !r.Class.Missed() {
				continue
			}
			c, why = r.Class.String(), r.Reason
		}
		ms = append(ms, Missed{Entity: d.Entity, ID: d.ID, Version: d.Version, Class: c, Reason: why})
	}
	if len(ms) == 0 {
		return
	}
	sl.logMissed(ms)
	if sl.s.opts.Ledger == nil {
		return
	}
	if err := sl.record(ctx, ms); err != nil {
		sl.s.opts.Metrics.LedgerLost.WithLabelValues(sl.w.Name()).Add(float64(len(ms)))
		sl.s.opts.Logger.Error("record repair ledger; these ids are lost to the ledger (a full resync of the cluster finds them)",
			"cluster", sl.w.Name(), "ids", len(ms), "err", err)
		return
	}
	sl.s.opts.Metrics.Ledger.WithLabelValues(sl.w.Name()).Add(float64(len(ms)))
}

// record writes ms to the ledger, trying again with backoff (a deadlock, a blip of the control
// database) until ledgerTimeout: a stuck control database must not stall the slave for longer.
func (sl *slave) record(ctx context.Context, ms []Missed) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ledgerTimeout)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		err := sl.s.opts.Ledger.Record(lctx, sl.w.Name(), ms)
		if err == nil {
			return nil
		}
		select {
		case <-lctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// logMissed logs misses by class: the first of each class per LogEvery with an example
// reason, then one count of the rest (internal/lograte).
func (sl *slave) logMissed(ms []Missed) {
	counts := map[string]int{}
	example := map[string]string{}
	for _, m := range ms {
		counts[m.Class]++
		example[m.Class] = cmp.Or(example[m.Class], m.Reason)
	}
	for class, n := range counts {
		if ok, _ := sl.logs.Allow(class, n); ok {
			sl.s.opts.Logger.Warn("slave missed writes; ids recorded in the repair ledger",
				"cluster", sl.w.Name(), "class", class, "count", n, "example_reason", example[class])
		}
	}
}

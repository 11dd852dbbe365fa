package cdc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/internal/defaults"
)

// Binlog is the binlog server, as the reader uses it.
type Binlog interface {
	// Status tells who the server is and where its binlog stands now.
	Status(ctx context.Context) (SourceStatus, error)
	// Open streams the binlog from a transaction boundary: from.Pos of this server's binlog,
	// or, when from.ByGTID(), the first transaction not in from.GTIDSet. from.GTIDSet, when
	// set, is the GTID position at from.Pos: the stream's commits carry it forward.
	Open(ctx context.Context, from Checkpoint) (Stream, error)
	// Holds reports whether this server can stream every transaction after gtidSet, a GTID
	// position saved while reading another server: its binlog holds all of gtidSet and has
	// purged nothing after it. why says what is missing when it cannot.
	Holds(ctx context.Context, gtidSet string) (ok bool, why string, err error)
}

// Stream yields the binlog's items in commit order.
type Stream interface {
	// Items delivers the items, sent by the goroutine that reads the binlog: the reader's
	// pace is the binlog's back-pressure, and no goroutine of the reader's sits between. The
	// last value may carry Err (the stream failed or was closed); the channel is closed after.
	Items() <-chan Streamed
	// Close stops the stream; a send pending on Items is dropped.
	Close()
}

// Streamed is one value of Stream.Items: an item, or the error that ended the stream.
type Streamed struct {
	Item
	Err error
}

// SourceStatus identifies the source server and its binlog.
type SourceStatus struct {
	ID      string   // server identity (MySQL server_uuid; MariaDB server_id + binlog basename)
	Current Position // end of the binlog now (SHOW MASTER STATUS / SHOW BINARY LOG STATUS)
	Oldest  string   // oldest binlog file still on the server
	// GTIDSet is the GTID position at Current (MySQL's Executed_Gtid_Set, MariaDB's
	// @@gtid_binlog_pos read the same before and after Current), "" when not known.
	GTIDSet string
}

// Item is one binlog event the reader cares about.
type Item struct {
	Changes []Change    // the rows of one rows event of a followed table (Version/Epoch unset)
	Commit  bool        // the event ends a transaction: Pos is a safe place to resume
	Pos     Position    // end of the event
	GTIDSet string      // on commits: the GTID position after this transaction ("" if none)
	Resync  *ResyncMark // a followed table cannot be streamed faithfully from here
}

// ResyncMark records that a table needs a full resync (TRUNCATE, undecodable rows, ...).
type ResyncMark struct {
	Table  string // "db.table", or "*" for the whole source
	Reason string // short class: truncate, undecodable, no_metadata, source_changed, purged
	Detail string
	Pos    Position
}

// Checkpoint is where a restarted reader resumes: the end of the last transaction whose
// events are all confirmed by the broker (invariant 1).
type Checkpoint struct {
	Name     string
	Epoch    uint32
	SourceID string
	Pos      Position
	// GTIDSet is the GTID position after the transaction at Pos: MariaDB, the last GTID of
	// every domain; MySQL, the set of every executed GTID. "" when unknown.
	GTIDSet string
}

// ByGTID reports whether cp resumes from its GTID set instead of its position: the start point
// of a resume on a new source, saved before the new server's position of that set is known.
// Its Pos is offset 0 of the new server's oldest binlog, where no event ends: the checkpoint
// and the epoch floor move up from there, never past a position the session has not read.
func (cp Checkpoint) ByGTID() bool { return cp.Pos.Pos == 0 && cp.GTIDSet != "" }

// Store keeps checkpoints and resync marks in the control schema.
type Store interface {
	Load(ctx context.Context, name string) (Checkpoint, bool, error)
	// Save writes cp, fenced: it fails unless this process still holds the leader lock. A
	// store that has an EpochFloor raises it to cp in the same write.
	Save(ctx context.Context, cp Checkpoint) error
	MarkResync(ctx context.Context, name string, m ResyncMark) error
}

// EpochFloor reads the control schema's epoch floor: the start point (epoch, source, position)
// of highest version that any of the schema's readers saved, kept apart from every reader's
// checkpoint. Store.Save raises it with every checkpoint and nothing lowers it, so a deleted
// checkpoint row or a new reader name still finds it (FloorEpoch).
type EpochFloor interface {
	// Floor returns the floor; ok is false when the schema has none (no reader ever saved).
	Floor(ctx context.Context) (floor Checkpoint, ok bool, err error)
}

// HighestWritten tells what the search clusters already hold, for a reader that finds no
// epoch floor at all.
type HighestWritten interface {
	// HighestVersion returns the highest version the master cluster holds; ok is false when it
	// holds none.
	HighestVersion(ctx context.Context) (v Version, ok bool, err error)
}

// Leader is the one-active-reader lock.
type Leader interface {
	// Acquire blocks until the lock is held or ctx ends. The returned context is cancelled the
	// moment the lock is lost; release gives the lock up.
	Acquire(ctx context.Context) (held context.Context, release func(), err error)
}

// Publisher opens broker sessions (one AMQP channel with confirms, topology declared).
type Publisher interface {
	Open(ctx context.Context) (Channel, error)
}

// Channel publishes with confirms. Sequence numbers start at 1 per channel.
type Channel interface {
	// Publish sends m and returns its sequence number; it blocks while the in-flight window
	// is full. After a nack, a returned message or a lost connection every call fails.
	Publish(ctx context.Context, m Message) (uint64, error)
	// Confirmed returns the watermark w (every seq <= w is confirmed) and a channel that is
	// signalled when w moves or the channel fails (then Err is non-nil).
	Confirmed() (w uint64, moved <-chan struct{}, err error)
	Close() error
}

// Message is one broker message: a batch of row changes (schema 2, docs/cdc.md).
type Message struct {
	RoutingKey string // "db.table" when every change is of one table, else MixedRoutingKey
	Body       []byte
	MessageID  string
	Changes    int // row changes in Body (header x-wye-changes: consumers batch by it)
	// ContentEncoding is "zstd" when Body is compressed, "" for plain JSON.
	ContentEncoding string
}

// MixedRoutingKey is the routing key of a message whose changes span several tables.
const MixedRoutingKey = "wye.mixed"

// HeaderChanges is the AMQP header that carries Message.Changes.
const HeaderChanges = "x-wye-changes"

// The defaults NewReader gives the zero fields of Options.
const (
	// DefaultName is the checkpoint and lock name of a reader with no Options.Name.
	DefaultName = "default"
	// DefaultCheckpointInterval is how often, at most, confirmed progress is saved. A save is
	// a fenced transaction of five statements on the control schema (and a transaction in
	// the binlog that every reader then reads past): every 200 ms that was about 5% of `wye
	// run`'s CPU at 3,000 changes/s. A crash republishes at most this much more of the
	// binlog: duplicates, which versions make harmless, never losses.
	DefaultCheckpointInterval = time.Second
	// DefaultBatchChanges is the most row changes one message carries.
	DefaultBatchChanges = 2048
	// DefaultBatchBytes is the most uncompressed body bytes of one message (1 MiB); one bigger
	// change still goes alone.
	DefaultBatchBytes = 1 << 20
	// DefaultLinger is how long a partial batch waits for more changes when the binlog is idle.
	DefaultLinger = 5 * time.Millisecond
	// DefaultBackoffMin is the wait after a first failed session.
	DefaultBackoffMin = 200 * time.Millisecond
	// DefaultBackoffMax caps the wait between failed sessions and between failed lock
	// acquisitions.
	DefaultBackoffMax = 10 * time.Second
)

// Options configure a Reader. Zero values take the documented defaults.
type Options struct {
	Name               string        // checkpoint and lock name; default DefaultName
	Tables             []string      // followed tables, "db.table"
	CheckpointInterval time.Duration // default DefaultCheckpointInterval
	BatchChanges       int           // row changes per message at most; default DefaultBatchChanges
	BatchBytes         int           // uncompressed body bytes per message at most (one bigger change still goes alone); default DefaultBatchBytes
	Linger             time.Duration // how long a partial batch waits for more changes when the binlog is idle; default DefaultLinger
	Compress           bool          // zstd message bodies (amqp.compression)
	BackoffMin         time.Duration // default DefaultBackoffMin
	BackoffMax         time.Duration // default DefaultBackoffMax
	Logger             *slog.Logger
	Metrics            *Metrics
	// WholeColumns are the columns, per table, sent whole however large: the keys and link
	// columns of the entities. Any other value over InlineMax is sent as its digest.
	WholeColumns WholeColumns
	// UpdateImages is what an update's images carry: UpdateImagesChanged or UpdateImagesFull;
	// default DefaultUpdateImages.
	UpdateImages string
	// Floor reads the control schema's epoch floor, which Store.Save raises: a reader with no
	// checkpoint starts above it. nil: no floor (benchmarks, tests).
	Floor EpochFloor
	// Written is asked for the highest version the master cluster holds when there is no
	// floor either (a new or recreated control schema); if it cannot answer, the session fails
	// and is retried. nil: such a reader starts at epoch 1.
	Written HighestWritten
	// StopAt, when set, makes Run return once every event up to the first transaction
	// boundary at or after it is confirmed (benchmarks, tests).
	StopAt *Position
}

// errStopAt ends the session that reached Options.StopAt.
var errStopAt = errors.New("reached stop position")

// Reader is the cdc component: it waits for the leader lock, then streams the binlog from the
// checkpoint to the broker until the lock is lost or ctx ends.
type Reader struct {
	opts   Options
	binlog Binlog
	store  Store
	leader Leader
	pub    Publisher
	log    *slog.Logger
	m      *Metrics

	leading    atomic.Bool
	publishing atomic.Bool
	stopped    atomic.Bool
	// highest position published by an earlier session of this process, on highSource: events
	// re-read up to it after a restart from the checkpoint are counted as republished.
	highWater  Position
	highSource string
}

// NewReader wires a reader.
func NewReader(opts Options, binlog Binlog, store Store, leader Leader, pub Publisher) *Reader {
	opts.Name = cmp.Or(opts.Name, DefaultName)
	opts.UpdateImages = cmp.Or(opts.UpdateImages, DefaultUpdateImages)
	opts.CheckpointInterval = defaults.Positive(opts.CheckpointInterval, DefaultCheckpointInterval)
	opts.BatchChanges = defaults.Positive(opts.BatchChanges, DefaultBatchChanges)
	opts.BatchBytes = defaults.Positive(opts.BatchBytes, DefaultBatchBytes)
	opts.Linger = defaults.Positive(opts.Linger, DefaultLinger)
	opts.BackoffMin = defaults.Positive(opts.BackoffMin, DefaultBackoffMin)
	opts.BackoffMax = defaults.Positive(opts.BackoffMax, DefaultBackoffMax)
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	opts.Metrics = cmp.Or(opts.Metrics, NewMetrics(nil))
	return &Reader{opts: opts, binlog: binlog, store: store, leader: leader, pub: pub,
		log: opts.Logger.With("component", "cdc", "name", opts.Name), m: opts.Metrics}
}

// Ready reports whether the reader holds the lock and is streaming to a live broker channel.
func (r *Reader) Ready() bool { return r.leading.Load() && r.publishing.Load() }

// Run blocks until ctx ends. It returns nil on a clean stop; failures of the source or the
// broker are retried with capped exponential backoff, never returned.
func (r *Reader) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		r.log.Info("waiting for the leader lock")
		held, release, err := r.leader.Acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.Error("acquire leader lock", "err", err)
			if !sleep(ctx, r.opts.BackoffMax) {
				return nil
			}
			continue
		}
		r.log.Info("leader lock acquired: this reader publishes")
		r.leading.Store(true)
		r.m.Leader.Set(1)
		r.lead(held)
		r.leading.Store(false)
		r.m.Leader.Set(0)
		release()
		if r.stopped.Load() {
			return nil
		}
		if ctx.Err() == nil {
			r.m.Sessions.WithLabelValues("lock_lost").Inc()
			r.log.Warn("leader lock lost: stopped publishing, back to standby")
		}
	}
	return nil
}

// lead runs sessions until the lock is lost; it decides on every failure (log once, back off).
func (r *Reader) lead(held context.Context) {
	failures := 0
	for held.Err() == nil {
		start := time.Now()
		err := r.session(held)
		if errors.Is(err, errStopAt) {
			r.stopped.Store(true)
			return
		}
		if held.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			failures = 0
		}
		failures++
		wait := r.opts.BackoffMin << min(failures-1, 16)
		if wait > r.opts.BackoffMax || wait <= 0 {
			wait = r.opts.BackoffMax
		}
		r.m.Sessions.WithLabelValues("error").Inc()
		msg := "cdc session failed; restarting from the checkpoint"
		if be, ok := errors.AsType[*broker.Error](err); ok && be.Permanent {
			// Refused credentials, a queue declared with other arguments: the broker will keep
			// refusing until an operator acts; the reader keeps trying meanwhile.
			msg = "cdc session failed: the broker refuses and will until an operator acts; restarting from the checkpoint"
		}
		r.log.Error(msg, "err", err, "consecutive_failures", failures, "backoff", wait)
		if !sleep(held, wait) {
			return
		}
	}
}

// startPoint decides where a session starts and which epoch it publishes under. Epochs never
// go backwards (docs/architecture.md, invariant 2): a reader without a checkpoint starts at
// firstEpoch, a source change takes a new epoch above its checkpoint's and the floor's, and a
// reader whose checkpoint is of an older epoch of the floor's source resumes at the floor's
// epoch. Every start point is saved, which raises the floor, before anything is read.
func (r *Reader) startPoint(ctx context.Context, st SourceStatus) (Checkpoint, error) {
	cp, ok, err := r.store.Load(ctx, r.opts.Name)
	if err != nil {
		return Checkpoint{}, err
	}
	floor, hasFloor, err := r.floor(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	fresh := Checkpoint{Name: r.opts.Name, SourceID: st.ID, Pos: st.Current, GTIDSet: st.GTIDSet}
	if !ok {
		var why string
		if fresh.Epoch, why, err = r.firstEpoch(ctx, st, floor, hasFloor); err != nil {
			return Checkpoint{}, err
		}
		r.log.Warn("no checkpoint: starting at the source's current binlog position; earlier changes are the nightly resync's job",
			"position", st.Current.String(), "gtid_set", st.GTIDSet, "epoch", fresh.Epoch, "epoch_from", why)
		return fresh, r.store.Save(ctx, fresh)
	}
	var reason, detail string
	switch {
	case cp.SourceID != st.ID:
		reason, detail = "source_changed", fmt.Sprintf("checkpoint source %q, now %q", cp.SourceID, st.ID)
	case st.Current.Less(cp.Pos):
		reason, detail = "source_changed", fmt.Sprintf("binlog went back from %s to %s (RESET MASTER?)", cp.Pos, st.Current)
	case st.Oldest != "" && (Position{File: cp.Pos.File}).Less(Position{File: st.Oldest}):
		reason, detail = "purged", fmt.Sprintf("checkpoint file %s purged; oldest is %s", cp.Pos.File, st.Oldest)
	default:
		if hasFloor && floor.SourceID == st.ID && cp.Epoch < floor.Epoch && !st.Current.Less(floor.Pos) {
			// Another reader of this source went on under a later epoch (a renamed reader, a
			// deleted row). Same source and position give the same version in one epoch, so
			// resuming from the checkpoint at the floor's epoch is seamless, while the old epoch
			// would sort every new change below what that reader wrote.
			r.log.Warn("checkpoint epoch below the epoch floor of this source: resuming from the checkpoint at the floor's epoch",
				"position", cp.Pos.String(), "checkpoint_epoch", cp.Epoch, "epoch", floor.Epoch,
				"floor_position", floor.Pos.String(), "floor_by", floor.Name)
			cp.Epoch = floor.Epoch
		}
		if cp.ByGTID() {
			r.log.Info("resuming from checkpoint by its GTID set (a source change's start point)", "gtid_set", cp.GTIDSet, "epoch", cp.Epoch)
		} else {
			r.log.Info("resuming from checkpoint", "position", cp.Pos.String(), "epoch", cp.Epoch, "gtid_set", cp.GTIDSet)
		}
		return cp, nil
	}
	// The old coordinates cannot be compared with the new ones: a new epoch keeps every new
	// version above every old one (NextEpoch: above the effective epoch of the old source's
	// last versions too; FloorEpoch: above what the schema's other readers published).
	if fresh.Epoch, err = NextEpoch(cp.Epoch, cp.Pos.File); err != nil {
		return Checkpoint{}, err
	}
	if hasFloor {
		above, err := FloorEpoch(floor, st.ID, st.Current)
		if err != nil {
			return Checkpoint{}, err
		}
		fresh.Epoch = max(fresh.Epoch, above)
	}
	// With GTIDs the new server can continue exactly after the checkpoint's transaction, in
	// the new epoch (docs/cdc.md, "Source failover"): every version of it is above every
	// version published before (above), and its positions are the new server's, increasing in
	// its commit order. Transactions the old source published past its checkpoint are read
	// again and published with those higher versions: duplicates, never losses.
	gtidWhy := "the checkpoint has no GTID set"
	if cp.GTIDSet != "" && st.Oldest != "" {
		ok, why, err := r.binlog.Holds(ctx, cp.GTIDSet)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("check the checkpoint's GTID set on the source: %w", err)
		}
		if ok {
			fresh.Pos, fresh.GTIDSet = Position{File: st.Oldest}, cp.GTIDSet
			r.log.Warn("source changed: resuming from the checkpoint's GTID set on the new source under a new epoch; nothing is skipped, no resync needed",
				"reason", reason, "detail", detail, "gtid_set", cp.GTIDSet, "old_epoch", cp.Epoch, "new_epoch", fresh.Epoch,
				"floor_epoch", floor.Epoch)
			return fresh, r.store.Save(ctx, fresh)
		}
		gtidWhy = why
	}
	// Without a usable GTID set the changes between the checkpoint and now may be lost: start
	// at the current position and mark a resync.
	detail += "; not resumed by GTID: " + gtidWhy
	r.log.Error("SOURCE CHANGED: starting a new epoch at the current position; a full resync is needed",
		"reason", reason, "detail", detail, "old_epoch", cp.Epoch, "new_epoch", fresh.Epoch,
		"floor_epoch", floor.Epoch, "position", st.Current.String())
	r.m.ResyncNeeded.WithLabelValues(reason).Inc()
	if err := r.store.MarkResync(ctx, r.opts.Name, ResyncMark{Table: "*", Reason: reason, Detail: detail, Pos: st.Current}); err != nil {
		return Checkpoint{}, err
	}
	return fresh, r.store.Save(ctx, fresh)
}

// floor reads the epoch floor, if the reader has one.
func (r *Reader) floor(ctx context.Context) (Checkpoint, bool, error) {
	if r.opts.Floor == nil {
		return Checkpoint{}, false, nil
	}
	f, ok, err := r.opts.Floor.Floor(ctx)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read epoch floor: %w", err)
	}
	return f, ok, nil
}

// firstEpoch decides the epoch of a reader that has no checkpoint, and says why. With a floor:
// FloorEpoch. Without one (a new or recreated control schema) the versions already written
// are the only record: the epoch above the highest one the master holds. A master that cannot
// answer fails the session (retried with backoff) rather than letting it guess: a guess below
// the written versions makes every write a 409 and freezes the index without an error.
func (r *Reader) firstEpoch(ctx context.Context, st SourceStatus, floor Checkpoint, hasFloor bool) (uint32, string, error) {
	if hasFloor {
		e, err := FloorEpoch(floor, st.ID, st.Current)
		if err != nil {
			return 0, "", err
		}
		how := "the floor's epoch: same source, binlog at or past the floor"
		if e != floor.Epoch {
			how = "the epoch after the floor's: another source, or the binlog went back"
		}
		return e, fmt.Sprintf("epoch floor %d at %s of %q (saved by %q): %s", floor.Epoch, floor.Pos, floor.SourceID, floor.Name, how), nil
	}
	if r.opts.Written == nil {
		return 1, "no epoch floor and no cluster to ask: the first epoch", nil
	}
	v, found, err := r.opts.Written.HighestVersion(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("no epoch floor in the control schema, and the master cluster cannot tell the highest version it holds; "+
			"not starting at a guessed epoch, which could sort every new write below it: %w", err)
	}
	if !found {
		return 1, "no epoch floor, and the master holds no version: the first epoch", nil
	}
	e, err := EpochAbove(v)
	if err != nil {
		return 0, "", err
	}
	return e, fmt.Sprintf("no epoch floor: above the highest version the master holds (%d, epoch %d)", v, v.Epoch()), nil
}

// session streams from the checkpoint until an error or the loss of the lock: it decides
// where to start, opens the broker channel and the binlog, starts the checkpoint loop, then
// runs the batcher's read loop; shutdown saves what is confirmed.
func (r *Reader) session(held context.Context) error {
	ctx, cancel := context.WithCancelCause(held)
	defer cancel(nil)

	cp, err := r.begin(ctx)
	if err != nil {
		return err
	}
	ch, err := r.pub.Open(ctx)
	if err != nil {
		return fmt.Errorf("open broker channel: %w", err)
	}
	defer ch.Close()
	stream, err := r.binlog.Open(ctx, cp)
	if err != nil {
		if cp.ByGTID() {
			return fmt.Errorf("open binlog after GTID set %s: %w", cp.GTIDSet, err)
		}
		return fmt.Errorf("open binlog at %s: %w", cp.Pos, err)
	}
	defer stream.Close()

	tr := &tracker{saved: cp, last: cp}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := r.checkpointLoop(ctx, ch, tr); err != nil {
			cancel(err)
		}
	})
	defer r.shutdown(held, cancel, &wg, ch, tr)

	r.publishing.Store(true)
	return newBatcher(r, ch, tr, cp).run(ctx, stream.Items())
}

// begin reads the source's status and decides where the session starts.
func (r *Reader) begin(ctx context.Context) (Checkpoint, error) {
	st, err := r.binlog.Status(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read source status: %w", err)
	}
	cp, err := r.startPoint(ctx, st)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("decide start position: %w", err)
	}
	r.m.Epoch.Set(float64(cp.Epoch))
	r.setCheckpointGauges(cp.Pos)
	if cp.SourceID != r.highSource { // positions of another server say nothing about republishing
		r.highWater, r.highSource = Position{}, cp.SourceID
	}
	return cp, nil
}

// shutdown ends a session: it stops the session's goroutines (wg), then saves the checkpoint
// one last time.
func (r *Reader) shutdown(held context.Context, cancel context.CancelCauseFunc, wg *sync.WaitGroup, ch Channel, tr *tracker) {
	cancel(nil)
	wg.Wait()
	// A last save of what is confirmed, on shutdown too (SIGTERM cancels held before the
	// lock is released): the store fences it, so after a lost lock it is refused, harmless.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(held), 2*time.Second)
	defer fcancel()
	w, _, _ := ch.Confirmed()
	if cp, ok := tr.ready(w); ok {
		if r.store.Save(fctx, cp) == nil {
			r.setCheckpointGauges(cp.Pos)
		}
	}
	r.publishing.Store(false)
}

type eventKey struct {
	table string
	op    Op
}

// batcher batches the changes of one session into messages. Invariant 1: a transaction
// boundary is handed to the tracker with the sequence number of the message that holds the
// transaction's last change, so the checkpoint passes it only once that message is confirmed.
type batcher struct {
	r       *Reader
	ch      Channel
	tr      *tracker
	start   Checkpoint // where the session started: its name, epoch and source stamp every boundary
	batch   Batch
	open    Checkpoint // newest boundary whose last change is in batch, if isOpen
	isOpen  bool
	lastSeq uint64
	lastTS  time.Time
	counts  map[eventKey]int // events in batch, for the metrics at publish
	// runKey, runN: the latest changes, runN of them, all of one table and op, not yet in counts:
	// consecutive changes mostly share both, and cost no map update each.
	runKey eventKey
	runN   int
	// linger is how long the current partial batch waits: Options.Linger, doubled up to
	// maxLingerFactor times it while the binlog keeps going past each linger (adapt).
	linger    time.Duration
	lingerEnd time.Time // when the last batch was published for its linger; zero after another publish
}

// maxLingerFactor bounds the adaptive linger: at most this many times Options.Linger (40 ms by
// default). With 8 instead of 4 and a 20 ms read window instead of 10 (cdc/binlog), `wye run`
// took x0.95 the CPU per change at 3,000 changes/s (docs/cdc.md, "Reading a live stream").
const maxLingerFactor = 8

// newBatcher starts the batcher of a session that starts at start and publishes on ch.
func newBatcher(r *Reader, ch Channel, tr *tracker, start Checkpoint) *batcher {
	b := &batcher{r: r, ch: ch, tr: tr, start: start, counts: map[eventKey]int{}, linger: r.opts.Linger}
	b.batch.Compress, b.batch.Whole = r.opts.Compress, r.opts.WholeColumns
	b.batch.FullImages = r.opts.UpdateImages == UpdateImagesFull
	return b
}

// run is the session's read loop: it hands every binlog item to handle until the binlog, the
// broker or the checkpoint loop fails, the session reaches Options.StopAt, or ctx ends.
func (b *batcher) run(ctx context.Context, items <-chan Streamed) error {
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
	for {
		s, ok, err := b.next(ctx, items, linger)
		if err != nil {
			return err
		}
		if !ok {
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				return c
			}
			return ctx.Err()
		}
		if s.Err != nil {
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				return c
			}
			return fmt.Errorf("read binlog: %w", s.Err)
		}
		if err := b.handle(ctx, s.Item); err != nil {
			return err
		}
	}
}

// next returns the next value of the stream; ok is false once items is closed or ctx ends.
// While it waits, it publishes a partial batch whose linger has run out.
func (b *batcher) next(ctx context.Context, items <-chan Streamed, linger *time.Timer) (s Streamed, ok bool, err error) {
	for {
		select {
		case s, ok = <-items:
			b.adapt()
			return s, ok, nil
		default:
		}
		// The binlog has nothing ready: a partial batch waits a little for company, then goes.
		if b.batch.Len() > 0 {
			wait := b.linger - time.Since(b.batch.firstAt)
			if wait <= 0 {
				if err := b.flush(ctx); err != nil {
					return Streamed{}, false, err
				}
				b.lingerEnd = time.Now()
				continue
			}
			linger.Reset(wait)
		}
		select {
		case s, ok = <-items:
			b.adapt()
			return s, ok, nil
		case <-linger.C:
		case <-ctx.Done():
			return Streamed{}, false, nil
		}
	}
}

// adapt sets the linger of the batch that the item just received starts or joins. A batch
// published for its linger, followed within that linger by more of the binlog, says the
// stream is steady: small messages would cost a publish, a confirm and a delivery each for a
// few changes, so the next batch waits twice as long (at most maxLingerFactor times
// Options.Linger: a bounded latency). A pause longer than the linger says the stream is
// light: back to Options.Linger, the lowest latency.
func (b *batcher) adapt() {
	if b.lingerEnd.IsZero() || b.batch.Len() > 0 {
		return
	}
	if time.Since(b.lingerEnd) < b.linger {
		b.linger = min(2*b.linger, maxLingerFactor*b.r.opts.Linger)
	} else {
		b.linger = b.r.opts.Linger
	}
	b.lingerEnd = time.Time{}
}

// handle passes one binlog item on: its resync mark to the store, its changes to the batch,
// its transaction boundary to the tracker.
func (b *batcher) handle(ctx context.Context, item Item) error {
	r := b.r
	if item.Resync != nil {
		m := *item.Resync
		r.m.ResyncNeeded.WithLabelValues(m.Reason).Inc()
		r.log.Error("followed table needs a resync", "table", m.Table, "reason", m.Reason,
			"detail", m.Detail, "position", m.Pos.String())
		if err := r.store.MarkResync(ctx, r.opts.Name, m); err != nil {
			return fmt.Errorf("mark resync: %w", err)
		}
	}
	for i := range item.Changes {
		if err := b.add(ctx, &item.Changes[i]); err != nil {
			return err
		}
	}
	if item.Commit {
		return b.endTransaction(ctx, item)
	}
	return nil
}

// endTransaction hands the boundary of the transaction that item commits to the tracker, and
// ends the session once every event up to Options.StopAt is confirmed.
func (b *batcher) endTransaction(ctx context.Context, item Item) error {
	w, _, err := b.ch.Confirmed()
	if err != nil {
		return fmt.Errorf("broker channel: %w", err)
	}
	cp := Checkpoint{Name: b.start.Name, Epoch: b.start.Epoch, SourceID: b.start.SourceID, Pos: item.Pos, GTIDSet: item.GTIDSet}
	if b.batch.Len() > 0 {
		b.open, b.isOpen = cp, true // the transaction ends in the batch: its boundary waits for the batch's seq
	} else {
		b.tr.commit(b.lastSeq, cp, w)
	}
	if stop := b.r.opts.StopAt; stop != nil && !item.Pos.Less(*stop) {
		if err := b.flush(ctx); err != nil {
			return err
		}
		return b.r.waitConfirmed(ctx, b.ch, b.lastSeq)
	}
	return nil
}

// add versions c and appends it to the batch, publishing the batch when it is full.
func (b *batcher) add(ctx context.Context, c *Change) error {
	r := b.r
	c.Epoch = b.start.Epoch
	var err error
	if c.Version, err = VersionAt(b.start.Epoch, c.Pos.File, c.Pos.Pos); err != nil {
		return err
	}
	if err := b.batch.Add(c); err != nil {
		// Undecodable value: never drop silently, never crash.
		mark := ResyncMark{Table: c.Table.FullName(), Reason: "undecodable", Detail: err.Error(), Pos: c.Pos}
		r.m.ResyncNeeded.WithLabelValues(mark.Reason).Inc()
		r.log.Error("cannot encode row change; marked for resync", "table", mark.Table, "err", err, "position", c.Pos.String())
		if err := r.store.MarkResync(ctx, r.opts.Name, mark); err != nil {
			return fmt.Errorf("mark resync: %w", err)
		}
		return nil
	}
	if k := (eventKey{b.batch.enc.name, c.Op}); k == b.runKey {
		b.runN++
	} else {
		b.countRun()
		b.runKey, b.runN = k, 1
	}
	b.lastTS = c.CommitTS
	if !r.highWater.Less(c.Pos) {
		r.m.Republished.Inc()
	} else {
		r.highWater = c.Pos
	}
	if b.batch.Len() >= r.opts.BatchChanges || b.batch.Size() >= r.opts.BatchBytes {
		return b.flush(ctx)
	}
	return nil
}

// flush publishes the batch, if any, and hands its boundary to the tracker.
func (b *batcher) flush(ctx context.Context) error {
	if b.batch.Len() == 0 {
		return nil
	}
	// Lock loss cancels ctx: check it before every publish so a deposed reader stops at once.
	if err := ctx.Err(); err != nil {
		return err
	}
	m := b.batch.Take()
	seq, err := b.ch.Publish(ctx, m)
	if err != nil {
		return fmt.Errorf("publish events: %w", err)
	}
	b.lastSeq = seq
	r := b.r
	b.countRun()
	for k, n := range b.counts {
		r.m.Events.WithLabelValues(k.table, string(k.op)).Add(float64(n))
		delete(b.counts, k)
	}
	r.m.Published.Add(float64(m.Changes))
	r.m.LagSeconds.Set(time.Since(b.lastTS).Seconds())
	if b.isOpen {
		w, _, err := b.ch.Confirmed()
		if err != nil {
			return fmt.Errorf("broker channel: %w", err)
		}
		b.tr.commit(seq, b.open, w)
		b.open, b.isOpen = Checkpoint{}, false
	}
	return nil
}

// countRun moves the run of changes of one table and op into counts.
func (b *batcher) countRun() {
	if b.runN > 0 {
		b.counts[b.runKey] += b.runN
		b.runN = 0
	}
}

// waitConfirmed waits until every publish up to seq is confirmed, then ends the session.
func (r *Reader) waitConfirmed(ctx context.Context, ch Channel, seq uint64) error {
	for {
		w, moved, err := ch.Confirmed()
		if err != nil {
			return fmt.Errorf("broker channel: %w", err)
		}
		if w >= seq {
			return errStopAt
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-moved:
		}
	}
}

// checkpointLoop saves the checkpoint as confirms arrive, at most once per interval.
func (r *Reader) checkpointLoop(ctx context.Context, ch Channel, tr *tracker) error {
	// A session's first save comes within firstSave, the next ones every CheckpointInterval:
	// a reader restarted after a crash records progress before it can crash again, so a crash
	// loop still moves forward instead of republishing the same interval every time.
	wait := min(firstSave, r.opts.CheckpointInterval)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		w, _, err := ch.Confirmed()
		if err != nil {
			return fmt.Errorf("broker channel: %w", err)
		}
		if cp, ok := tr.ready(w); ok {
			if err := r.store.Save(ctx, cp); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("save checkpoint: %w", err)
			}
			tr.saved = cp
			r.setCheckpointGauges(cp.Pos)
			wait = r.opts.CheckpointInterval
		}
		t.Reset(wait)
	}
}

// firstSave bounds the wait for a session's first checkpoint save.
const firstSave = 200 * time.Millisecond

func (r *Reader) setCheckpointGauges(p Position) {
	r.m.CheckpointPos.Set(float64(p.Pos))
	if seq, err := FileSeq(p.File); err == nil {
		r.m.CheckpointFile.Set(float64(seq))
	}
}

// tracker holds the transaction boundaries whose events are not all confirmed yet.
// Invariant 1: ready(w) returns only a boundary whose last event seq is <= w, i.e. a
// transaction whose events (and all earlier ones) are confirmed.
type tracker struct {
	mu      sync.Mutex
	pending []boundary // seq strictly increasing
	last    Checkpoint // newest boundary known confirmed
	saved   Checkpoint // owned by the checkpoint loop
}

type boundary struct {
	seq uint64 // sequence number of the transaction's last published event (or of the one before)
	cp  Checkpoint
}

// commit records the end of a transaction whose last event has sequence number seq. The
// watermark w pops confirmed boundaries so the list stays within the in-flight window.
func (t *tracker) commit(seq uint64, cp Checkpoint, w uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.pending); n > 0 && t.pending[n-1].seq == seq {
		t.pending[n-1].cp = cp
	} else {
		t.pending = append(t.pending, boundary{seq: seq, cp: cp})
	}
	t.popLocked(w)
}

func (t *tracker) popLocked(w uint64) {
	i := 0
	for i < len(t.pending) && t.pending[i].seq <= w {
		t.last = t.pending[i].cp
		i++
	}
	if i > 0 {
		t.pending = append(t.pending[:0], t.pending[i:]...)
	}
}

// ready returns the newest fully confirmed boundary if it differs from the saved one.
func (t *tracker) ready(w uint64) (Checkpoint, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.popLocked(w)
	if t.last.Pos == t.saved.Pos && t.last.Epoch == t.saved.Epoch {
		return Checkpoint{}, false
	}
	return t.last, true
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

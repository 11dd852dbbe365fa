package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/internal/defaults"
	"github.com/wyehq/wye/internal/lograte"
	"github.com/wyehq/wye/internal/reason"
)

// Headers the indexer reads and writes. Retry messages carry attempt, target and first-seen;
// parked messages carry all of them plus the failure.
const (
	HeaderAttempt   = "x-wye-attempt"    // which write attempt the message is (retry), or attempts made (parked)
	HeaderTarget    = "x-wye-target"     // retry: the one cluster to write to (the master that failed)
	HeaderFirstSeen = "x-wye-first-seen" // RFC 3339: when the first attempt failed
	HeaderCluster   = "x-wye-cluster"    // parked: the cluster that refused ("" for poison)
	HeaderStatus    = "x-wye-status"     // parked: HTTP status of the item (0: no answer)
	HeaderErrorType = "x-wye-error-type" // parked: the engine's error type, or indexer.ErrTypePoison / ErrTypeSource
	HeaderReason    = "x-wye-reason"     // parked: readable reason
)

// Processor handles one batch (indexer.Pipeline), its writes in turn after the batch before
// it (indexer.Turn).
type Processor interface {
	ProcessInTurn(ctx context.Context, msgs []indexer.Message, turn *indexer.Turn) (indexer.Outcome, error)
}

var _ Processor = (*indexer.Pipeline)(nil)

// Options configure the consumer. Zero values take the defaults in brackets.
type Options struct {
	URL           string          // with the password; never logged
	Exchange      string          // [broker.DefaultExchange]
	Queue         string          // the change queue [broker.DefaultQueue]
	Parked        string          // [broker.DefaultParkedQueue]
	RetryDelays   []time.Duration // the retry tiers, one queue each [DefaultRetryDelays]
	DeliveryLimit int             // x-delivery-limit if this consumer declares the change queue [broker.DefaultDeliveryLimit]
	Prefetch      int             // unacked deliveries in flight [DefaultPrefetch]
	BatchSize     int             // row changes per batch, counted by each message's x-wye-changes header (1 without) [DefaultBatchSize]
	BacklogSize   int             // row changes a full batch may reach with deliveries that already wait [DefaultBacklogBatchSize]
	BatchBytes    int             // message bytes per batch [DefaultBatchBytes]
	BatchWait     time.Duration   // how long a batch waits for more after its first delivery [DefaultBatchWait]
	InFlight      int             // batches processed at once while a backlog lasts [DefaultInFlight]
	Metrics       *indexer.Metrics
	Logger        *slog.Logger
}

const (
	// DefaultBatchSize is the row changes a batch gathers before it is processed. cdc messages
	// carry up to 2048 changes each (fewer when the binlog is quiet), retry messages one entity;
	// a message is never split, so a batch holds at least one whatever its size.
	DefaultBatchSize = 512
	// DefaultBacklogBatchSize is the row changes a batch that reached BatchSize goes on taking
	// while deliveries already wait (a backlog): eight full cdc messages. An entity changed
	// several times in them is read and written once, and the batch's fixed costs (its
	// snapshot, its _bulk requests, its ack) are paid once for all; a live stream's batches
	// close at BatchSize or on their wait as before, so its latency does not grow. Memory does
	// not grow with it: documents are read and written a chunk at a time
	// (indexer.DefaultChunkDocs). Measured as batch_size 16384 against 512, one run, 3
	// alternating rounds of a 50,000-change backlog (docs/indexer.md, "Batch size"): the flat
	// entity drained x1.40 as fast and the catalog entity into three clusters x3.10, at 0.91
	// and 0.65 of the CPU per change, the same peak RSS; but a live stream at about 8,000
	// changes/s, whose batches then closed only on their wait, had its lag p50 go from 129 to
	// 429 ms: hence two sizes. With two sizes against 512 alone (one run, 3 rounds): drain
	// x1.54, every round faster; lag p50 at that rate 194 against 143 ms, within its noise
	// (rounds 319, 140, 194 against 328, 143, 135).
	DefaultBacklogBatchSize = 16384
	// backlogGrace is how long a full batch waits for the next delivery before it closes: a
	// backlog's deliveries wait in the client already and come in microseconds.
	backlogGrace = time.Millisecond
	// DefaultPrefetch is the unacked deliveries the broker sends ahead. It also closes a batch:
	// no more can arrive before an ack.
	DefaultPrefetch = 512
	// DefaultBatchBytes is the message bytes (as delivered, compressed or not) a batch gathers.
	DefaultBatchBytes = 4 << 20
	// DefaultBatchWait is how long a batch waits for more deliveries after its first one: the
	// latency a quiet stream pays for batching.
	DefaultBatchWait = 200 * time.Millisecond
	// DefaultConsumers is the consumers one indexer process runs (indexer.consumers): one, so
	// that a mapping version bump sees the batches in order (docs/indexer.md, "Consumers": two
	// drain a backlog about twice as fast, but concurrent batches can leave the new index an
	// older version of a document than the old one until it is backfilled).
	DefaultConsumers = 1
	// DefaultInFlight is the batches one consumer processes at once while a backlog lasts (a
	// batch that closed full): the next ones are read while the first is written, and the
	// master has up to three _bulk requests in flight. Their writes stay in batch order
	// (indexer.Turn) and their acks too. A batch that closed on its wait is processed alone:
	// the next one gathers what arrives meanwhile. Three drained a backlog x1.17 as fast as two
	// at the same CPU per change (docs/indexer.md, "Batches in flight").
	DefaultInFlight = 3
)

// DefaultRetryDelays are the retry tiers: attempt 2 waits 1s, attempt 3 waits 5s, ...,
// every later attempt 2m. Ten attempts span about 13 minutes, more than a cluster restart.
var DefaultRetryDelays = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

// Consumer runs the batch loop; it reconnects after a broker failure.
type Consumer struct {
	opts  Options
	p     Processor
	ready atomic.Bool
	held  atomic.Int32 // batches in flight that wait for the master, which takes no write
	// wait is how long the next batch waits for company after its first delivery (collect):
	// BatchWait at first, then as long as the last batch took to process (adapt).
	wait atomic.Int64
	// parkedLogs bounds the "parked" lines: one per reason per indexer.DefaultLogEvery, then
	// one count of the rest, so a flood of refusals does not flood the log.
	parkedLogs *lograte.Limiter
}

// minBatchWait is the shortest wait for company (unless BatchWait is shorter): a batch costs
// a source view, a _bulk per cluster and an ack whatever its size, and a steady stream
// brings several cdc messages in this time (their linger is 5 to 20 ms, cdc.DefaultLinger).
const minBatchWait = 50 * time.Millisecond

// New applies the defaults.
func New(opts Options, p Processor) *Consumer {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&opts.Exchange, broker.DefaultExchange)
	def(&opts.Queue, broker.DefaultQueue)
	def(&opts.Parked, broker.DefaultParkedQueue)
	if len(opts.RetryDelays) == 0 {
		opts.RetryDelays = DefaultRetryDelays
	}
	opts.DeliveryLimit = defaults.Positive(opts.DeliveryLimit, broker.DefaultDeliveryLimit)
	opts.Prefetch = defaults.Positive(opts.Prefetch, DefaultPrefetch)
	opts.BatchSize = defaults.Positive(opts.BatchSize, DefaultBatchSize)
	opts.BacklogSize = max(defaults.Positive(opts.BacklogSize, DefaultBacklogBatchSize), opts.BatchSize)
	opts.BatchBytes = defaults.Positive(opts.BatchBytes, DefaultBatchBytes)
	opts.BatchWait = defaults.Positive(opts.BatchWait, DefaultBatchWait)
	opts.InFlight = defaults.Positive(opts.InFlight, DefaultInFlight)
	opts.Metrics = cmp.Or(opts.Metrics, indexer.NewMetrics(nil))
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	c := &Consumer{opts: opts, p: p}
	c.parkedLogs = lograte.New(indexer.DefaultLogEvery, func(reason string, n int) {
		opts.Logger.Warn("more parked", "queue", opts.Parked, "count", n, "reason", reason)
	})
	c.wait.Store(int64(opts.BatchWait))
	return c
}

// adapt sets the next batch's wait for company to the time the last batch took to process,
// between minBatchWait and BatchWait. A light stream then pays little latency for batching:
// waiting longer than the processing takes would delay its changes without saving much. A
// heavy one batches large anyway: its deliveries pile up while a batch is processed, and a
// batch takes all that wait (up to BatchSize, BatchBytes and the prefetch).
func (c *Consumer) adapt(took time.Duration) {
	c.wait.Store(int64(min(max(took, min(minBatchWait, c.opts.BatchWait)), c.opts.BatchWait)))
}

// Ready reports whether the consumer is connected and consuming (/readyz).
// Ready is false while a batch waits for a master that takes no write.
func (c *Consumer) Ready() bool { return c.ready.Load() && c.held.Load() == 0 }

// RetryQueue is the tier queue for a delay: broker.RetryQueue, "<queue>.retry.5s".
func (c *Consumer) RetryQueue(d time.Duration) string { return broker.RetryQueue(c.opts.Queue, d) }

// Run consumes until ctx is done. Broker failures reconnect with capped backoff, permanent
// or not; the error is logged here, once, with its class (broker.Classify) and the count of
// consecutive failures.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.parkedLogs.Flush()
	failures := 0
	for {
		start := time.Now()
		err := broker.Classify("consume", c.session(ctx))
		c.ready.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			failures = 0
		}
		failures++
		wait := min(time.Duration(1<<min(failures-1, 5))*time.Second, 30*time.Second)
		c.logFailure(err, failures, wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// logFailure reports a failed session. A permanent failure (refused credentials or
// permissions, unknown vhost, a queue declared with other arguments) does not clear by
// reconnecting: it says so, for an operator.
func (c *Consumer) logFailure(err error, failures int, wait time.Duration) {
	args := []any{"queue", c.opts.Queue, "failures", failures, "retry_in", wait, "err", err}
	e, ok := errors.AsType[*broker.Error](err)
	if !ok { // session ended without an error while ctx is live: not expected
		c.opts.Logger.Error("consume changes; reconnecting", args...)
		return
	}
	args = append(args, "class", e.Class(), "op", e.Op, "code", e.Code)
	if e.Permanent {
		c.opts.Logger.Error("consume changes: the broker refuses the indexer; this will not clear without operator action; reconnecting", args...)
		return
	}
	c.opts.Logger.Error("consume changes; reconnecting", args...)
}

// Declare creates the topology the indexer needs (idempotent): the exchange, the change
// queue if cdc has not declared it yet (same arguments), the retry tiers and the parked queue.
func (c *Consumer) Declare(conn *amqp.Connection) error {
	ch, err := broker.DeclareExchange(conn, c.opts.Exchange)
	if err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(c.opts.Queue, true, false, false, false, nil); err != nil {
		if ch, err = conn.Channel(); err != nil { // the failed passive declare closed it
			return fmt.Errorf("open channel: %w", err)
		}
		defer ch.Close()
		if _, err := ch.QueueDeclare(c.opts.Queue, true, false, false, false,
			broker.ChangeQueueArgs(c.opts.DeliveryLimit, c.opts.Parked)); err != nil {
			return fmt.Errorf("declare queue %s: %w", c.opts.Queue, err)
		}
	}
	if err := ch.QueueBind(c.opts.Queue, "#", c.opts.Exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", c.opts.Queue, err)
	}
	for _, d := range c.opts.RetryDelays {
		// A tier holds messages for its TTL, then dead-letters them through the default
		// exchange straight back into the change queue.
		if _, err := ch.QueueDeclare(c.RetryQueue(d), true, false, false, false, broker.RetryQueueArgs(c.opts.Queue, d)); err != nil {
			return fmt.Errorf("declare retry queue %s: %w", c.RetryQueue(d), err)
		}
	}
	if _, err := ch.QueueDeclare(c.opts.Parked, true, false, false, false, broker.ParkedQueueArgs()); err != nil {
		return fmt.Errorf("declare parked queue %s: %w", c.opts.Parked, err)
	}
	return nil
}

// dial connects to the broker with a 5 s dial timeout and 5 s heartbeats: the consumer's and
// the parked commands' one way to connect.
func dial(url string) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Heartbeat: 5 * time.Second, Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return nil, fmt.Errorf("dial broker: %w", err)
	}
	return conn, nil
}

// session consumes over one connection until it fails or ctx is done. Its errors are
// classified (broker.Classify) by the step that failed; Run classifies the rest as "consume".
func (c *Consumer) session(ctx context.Context) error {
	conn, err := dial(c.opts.URL)
	if err != nil {
		return broker.Classify("dial", err)
	}
	defer conn.Close()
	if err := c.Declare(conn); err != nil {
		return broker.Classify("declare", err)
	}
	pub, err := conn.Channel()
	if err != nil {
		return broker.Classify("open publish channel", fmt.Errorf("open publish channel: %w", err))
	}
	if err := pub.Confirm(false); err != nil {
		return broker.Classify("open publish channel", fmt.Errorf("enable confirms: %w", err))
	}
	// Retry and parked messages are published mandatory: a missing queue returns them, and
	// the broker then still acks them. amqp091 hands a Return to this channel before it
	// dispatches the matching ack, so once a batch's confirms are in, its returns are here.
	// Buffered: returns only happen on a broken topology, and the first one ends the session.
	returns := pub.NotifyReturn(make(chan amqp.Return, 4096))
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open consume channel: %w", err)
	}
	if err := ch.Qos(c.opts.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	// The session ends as soon as the broker closes the connection or either channel (a
	// consumer timeout closes the consume channel with 406): a batch held for a retry must
	// not go on after its deliveries went back to the queue.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go watchClose(ctx, cancel, conn.NotifyClose(make(chan *amqp.Error, 1)),
		ch.NotifyClose(make(chan *amqp.Error, 1)), pub.NotifyClose(make(chan *amqp.Error, 1)))
	deliveries, err := ch.ConsumeWithContext(ctx, c.opts.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.opts.Queue, err)
	}
	c.ready.Store(true)
	var flights []*flight // oldest first, at most InFlight
	// Batches run on InFlight goroutines that live as long as the session: a goroutine per
	// batch would grow a new stack for each (1.5% of wye run's CPU at 3,000 changes/s).
	work := make(chan func())
	var workers sync.WaitGroup
	for range c.opts.InFlight {
		workers.Go(func() {
			for f := range work {
				f()
			}
		})
	}
	defer func() {
		// A batch still in flight ends with the session, unacked: its deliveries return to
		// the queue when the connection closes.
		cancel(errSessionOver)
		for _, f := range flights {
			<-f.done
		}
		close(work)
		workers.Wait()
	}()
	var sampled time.Time
	for {
		if time.Since(sampled) > 5*time.Second {
			sampled = time.Now()
			if err := c.sampleDepth(conn); err != nil {
				return broker.Classify("inspect queues", err)
			}
		}
		var err error
		if len(flights) == c.opts.InFlight {
			f := flights[0]
			flights = flights[1:]
			<-f.done
			err = f.err
		}
		var batch []amqp.Delivery
		full := false
		if err == nil {
			batch, full, err = c.collect(ctx, deliveries)
		}
		if err == nil && len(batch) > 0 {
			f := c.start(ctx, cancel, pub, ch, returns, batch, flights, work)
			flights = append(flights, f)
			if !full {
				// The stream is light: the next batch gathers what arrives meanwhile.
				for _, f := range flights {
					<-f.done
					err = cmp.Or(err, f.err)
				}
				flights = nil
			}
		}
		if cause := context.Cause(ctx); err == nil && cause != context.Canceled {
			err = cause // closed by the broker; nil while ctx is live
		}
		if err != nil || ctx.Err() != nil {
			return err // nil when the caller's ctx is done: unacked deliveries return to the queue on close
		}
	}
}

// watchClose cancels the session with the first close the broker sends, on the connection
// or on a channel, until ctx is done.
func watchClose(ctx context.Context, cancel context.CancelCauseFunc, conn, consume, publish <-chan *amqp.Error) {
	closed := func(what string, e *amqp.Error) {
		if e == nil { // amqp091 closed the notify channel: a close wye asked for
			cancel(fmt.Errorf("broker %s closed", what))
			return
		}
		cancel(fmt.Errorf("broker %s closed: %w", what, e)) // %w: broker.Classify reads the code
	}
	select {
	case <-ctx.Done():
	case e := <-conn:
		closed("connection", e)
	case e := <-consume:
		closed("consume channel", e)
	case e := <-publish:
		closed("publish channel", e)
	}
}

// sampleDepth records how many messages wait in each of the indexer's queues.
func (c *Consumer) sampleDepth(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	queues := []string{c.opts.Queue, c.opts.Parked}
	for _, d := range c.opts.RetryDelays {
		queues = append(queues, c.RetryQueue(d))
	}
	for _, name := range queues {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("inspect queue %s: %w", name, err)
		}
		c.opts.Metrics.QueueDepth.WithLabelValues(name).Set(float64(q.Messages))
	}
	return nil
}

// collect waits for a first delivery, then gathers more until the batch is full (row changes,
// bytes, or every prefetched delivery: no more can arrive before an ack) or the wait for
// company (at most BatchWait, see adapt) has passed since the first one. full reports the
// former: a backlog. A full batch goes on taking the deliveries that already wait, up to
// BacklogSize row changes.
func (c *Consumer) collect(ctx context.Context, deliveries <-chan amqp.Delivery) (batch []amqp.Delivery, full bool, err error) {
	select {
	case <-ctx.Done():
		return nil, false, nil
	case d, ok := <-deliveries:
		if !ok {
			return nil, false, errors.New("delivery channel closed")
		}
		batch = append(batch, d)
	}
	size, changes := len(batch[0].Body), changesIn(batch[0])
	// take adds the next delivery; false when none came before timeout.
	take := func(timeout <-chan time.Time) bool {
		select {
		case <-ctx.Done():
			return false
		case <-timeout:
			return false
		case d, ok := <-deliveries:
			if !ok {
				return false
			}
			batch = append(batch, d)
			size += len(d.Body)
			changes += changesIn(d)
			return true
		}
	}
	timer := time.NewTimer(time.Duration(c.wait.Load()))
	defer timer.Stop()
	for changes < c.opts.BatchSize && size < c.opts.BatchBytes && len(batch) < c.opts.Prefetch {
		if !take(timer.C) {
			return batch, false, nil
		}
	}
	// Full: while deliveries already wait (a backlog), take them up to BacklogSize. A live
	// stream's next delivery is not there yet, and its batch closes within backlogGrace.
	for changes < c.opts.BacklogSize && size < c.opts.BatchBytes && len(batch) < c.opts.Prefetch {
		timer.Reset(backlogGrace)
		if !take(timer.C) {
			break
		}
	}
	return batch, true, nil
}

// errSessionOver cancels the batches still in flight when a session returns.
var errSessionOver = errors.New("consume session over")

// flight is a batch being handled in a goroutine of its own. done is closed when handle
// returned: err is its error, acked whether the batch was acked.
type flight struct {
	turn  *indexer.Turn
	done  chan struct{}
	err   error
	acked bool
}

// start hands batch to a worker (work; fewer than InFlight batches are in flight, so one is
// free), after the batches in flight (oldest first): its writes wait for the last one's
// turn, its ack for the last one's ack. Its error ends the session (cancel), whatever the
// session is waiting for.
func (c *Consumer) start(ctx context.Context, cancel context.CancelCauseFunc, pub, ch *amqp.Channel, returns <-chan amqp.Return,
	batch []amqp.Delivery, flights []*flight, work chan<- func()) *flight {
	f := &flight{turn: indexer.NewTurn(), done: make(chan struct{})}
	var prev *flight
	if n := len(flights); n > 0 {
		prev = flights[n-1]
		f.turn = prev.turn.Next()
		c.opts.Metrics.Overlapped.Inc()
	}
	work <- func() {
		defer close(f.done)
		f.acked, f.err = c.handle(ctx, pub, ch, returns, batch, f.turn, prev)
		if f.err != nil {
			cancel(f.err)
		}
	}
	return f
}

// changesIn is the row changes a delivery carries (header x-wye-changes; 1 for a retry or a
// schema 1 message).
func changesIn(d amqp.Delivery) int {
	if n, ok := toInt(d.Headers[cdc.HeaderChanges]); ok && n > 0 {
		return n
	}
	return 1
}

// handle processes one batch, publishes its retries and parked messages with confirms, and
// only then acks every delivery of the batch (docs/architecture.md invariant 1). A batch the
// pipeline cannot decide (source down) is kept and tried again with backoff, not requeued:
// requeues count against the queue's delivery limit. prev is the batch before it still in
// flight, if any: this one publishes and acks only after prev was acked (an ack covers every
// earlier delivery), and not at all if prev was not.
func (c *Consumer) handle(ctx context.Context, pub, ch *amqp.Channel, returns <-chan amqp.Return, batch []amqp.Delivery,
	turn *indexer.Turn, prev *flight) (acked bool, err error) {
	start := time.Now()
	out, ok := c.process(ctx, batch, turn)
	if !ok {
		return false, nil // ctx is done: the unacked deliveries return to the queue on close
	}
	if prev != nil {
		<-prev.done // prev ends with ctx at the latest
		if !prev.acked {
			return false, nil // the session ends with prev's error or ctx: this batch returns to the queue too
		}
	}
	// No ack before the broker has confirmed every retry and parked message and returned none.
	if err := c.publishOutcome(ctx, pub, returns, out); err != nil {
		return false, broker.Classify("publish", err)
	}
	if err := ch.Ack(batch[len(batch)-1].DeliveryTag, true); err != nil {
		return false, broker.Classify("ack", fmt.Errorf("ack batch: %w", err))
	}
	c.record(batch, out, start)
	c.adapt(time.Since(start))
	return true, nil
}

// process runs the pipeline on batch until it decides, with capped backoff between tries.
// It reports false when ctx ended first.
func (c *Consumer) process(ctx context.Context, batch []amqp.Delivery, turn *indexer.Turn) (indexer.Outcome, bool) {
	msgs := make([]indexer.Message, len(batch))
	for i, d := range batch {
		msgs[i] = message(d)
	}
	held := false // this batch counts in c.held
	defer func() {
		if held {
			c.hold(-1)
		}
	}()
	for failures := 0; ; failures++ {
		out, err := c.p.ProcessInTurn(ctx, msgs, turn)
		if err == nil {
			return out, true
		}
		if ctx.Err() != nil {
			return indexer.Outcome{}, false
		}
		c.opts.Metrics.Failures.Inc()
		wait := min(time.Duration(200<<min(failures, 7))*time.Millisecond, 15*time.Second)
		msg := "process batch; keeping it for another try"
		if se, ok := errors.AsType[*indexer.SourceError](err); ok && se.Permanent {
			// The source refuses this read for good (a DDL, a grant, a collation): the batch
			// waits for an operator, and says so.
			msg = "process batch: the source refuses the read and will until an operator acts; keeping the batch for another try"
		}
		if _, ok := errors.AsType[*indexer.UnavailableError](err); ok {
			// A master outage holds the batch (no attempt spent, nothing parked), and shows.
			if !held {
				held = true
				c.hold(1)
			}
			msg = "the master takes no write; holding the batch until it does (no attempt spent)"
		}
		// The error may quote a server's message: bounded like every logged reason.
		c.opts.Logger.Error(msg, "messages", len(batch), "failures", failures+1, "retry_in", wait, "err", reason.Cut("", err.Error()))
		select {
		case <-ctx.Done():
			return indexer.Outcome{}, false
		case <-time.After(wait):
		}
	}
}

// hold counts a batch in flight that starts (+1) or stops (-1) waiting for the master: while
// any does, /readyz is false and wye_indexer_master_unavailable is 1 (one batch that goes on
// does not clear what another still waits for).
func (c *Consumer) hold(delta int32) {
	v := 0.0
	if c.held.Add(delta) > 0 {
		v = 1
	}
	c.opts.Metrics.MasterUnavailable.Set(v)
}

// publishOutcome publishes the batch's retries to their tier queues and its parked messages,
// mandatory, and returns nil only once the broker has confirmed every one of them and
// returned none: the caller acks the batch after that, never before.
func (c *Consumer) publishOutcome(ctx context.Context, pub *amqp.Channel, returns <-chan amqp.Return, out indexer.Outcome) error {
	var confirms []*amqp.DeferredConfirmation
	for _, o := range out.Retries {
		d := c.opts.RetryDelays[min(max(o.Attempt-2, 0), len(c.opts.RetryDelays)-1)]
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", c.RetryQueue(d), true, false, retryPublishing(o))
		if err != nil {
			return fmt.Errorf("publish retry: %w", err)
		}
		confirms = append(confirms, dc)
	}
	for _, o := range out.Parked {
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", c.opts.Parked, true, false, parkedPublishing(o))
		if err != nil {
			return fmt.Errorf("publish parked: %w", err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("wait for publish confirm: %w", err)
		}
		if !ok {
			return errors.New("broker refused a retry or parked message (nack); the batch is not acked")
		}
	}
	// amqp091 hands a Return over before the matching ack: once every confirm is in, a
	// returned message of this batch is already here.
	select {
	case r := <-returns:
		return fmt.Errorf("broker returned a message for %q (%d %s): the batch is not acked", r.RoutingKey, r.ReplyCode, r.ReplyText)
	default:
	}
	return nil
}

// retryPublishing is the message that sends o to its retry tier.
func retryPublishing(o indexer.Outgoing) amqp.Publishing {
	return amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: o.Body,
		Headers: amqp.Table{HeaderAttempt: int32(o.Attempt), HeaderTarget: o.Cluster,
			HeaderFirstSeen: o.FirstSeen.UTC().Format(time.RFC3339Nano), HeaderReason: o.Reason},
	}
}

// parkedPublishing is the message that parks o, with the failure in its headers.
func parkedPublishing(o indexer.Outgoing) amqp.Publishing {
	return amqp.Publishing{
		ContentType: "application/json", ContentEncoding: o.Encoding, DeliveryMode: amqp.Persistent, Body: o.Body,
		Headers: amqp.Table{HeaderCluster: o.Cluster, HeaderStatus: int32(o.Status), HeaderErrorType: o.ErrType,
			HeaderReason: o.Reason, HeaderAttempt: int32(o.Attempt), HeaderFirstSeen: o.FirstSeen.UTC().Format(time.RFC3339Nano)},
	}
}

// record counts an acked batch in the metrics and logs its parked messages.
func (c *Consumer) record(batch []amqp.Delivery, out indexer.Outcome, start time.Time) {
	now := time.Now()
	m := c.opts.Metrics
	m.Messages.WithLabelValues("acked").Add(float64(len(batch)))
	m.Messages.WithLabelValues("retried").Add(float64(len(out.Retries)))
	m.Messages.WithLabelValues("parked").Add(float64(len(out.Parked)))
	m.ReadsBehind.Add(float64(out.Behind))
	m.Queries.Observe(float64(out.Queries))
	m.BatchDocs.Observe(float64(out.Docs))
	m.BatchSeconds.Observe(now.Sub(start).Seconds())
	for _, ts := range out.Commits {
		m.LagSeconds.Observe(now.Sub(ts).Seconds())
	}
	for _, p := range out.Parked {
		if ok, _ := c.parkedLogs.Allow(p.Reason, 1); ok {
			c.opts.Logger.Warn("parked", "queue", c.opts.Parked, "cluster", p.Cluster, "status", p.Status, "type", p.ErrType, "reason", p.Reason)
		}
	}
}

// message reads a delivery's headers into an indexer.Message.
func message(d amqp.Delivery) indexer.Message {
	m := indexer.Message{Body: d.Body, Encoding: d.ContentEncoding}
	if n, ok := toInt(d.Headers[HeaderAttempt]); ok {
		m.Attempt = n
	}
	if s, ok := d.Headers[HeaderTarget].(string); ok {
		m.Cluster = s
	}
	if s, ok := d.Headers[HeaderFirstSeen].(string); ok {
		m.FirstSeen, _ = time.Parse(time.RFC3339Nano, s)
	}
	return m
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case int:
		return x, true
	case int16:
		return int(x), true
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	}
	return 0, false
}

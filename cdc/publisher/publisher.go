package publisher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/internal/defaults"
)

// Options configure the publisher. Zero values take the defaults in brackets.
type Options struct {
	URL           string // amqp://user:pass@host:port/vhost
	Exchange      string // topic exchange [broker.DefaultExchange]
	Queue         string // quorum queue bound with "#" [broker.DefaultQueue]; "-" declares none
	DeliveryLimit int    // x-delivery-limit of the queue [broker.DefaultDeliveryLimit]
	Parked        string // where a message past the delivery limit is dead-lettered [broker.DefaultParkedQueue]
	Window        int    // publishes in flight without a confirm [DefaultWindow]
	AppID         string // stamped on every message: which reader published it
	// CloseTimeout bounds the AMQP close handshake, and a write still blocked this long after
	// the session's context ends [DefaultCloseTimeout]. A broker under a resource alarm stops
	// reading from publishing connections, so neither would ever finish.
	CloseTimeout time.Duration
	Metrics      *cdc.Metrics // [cdc.NewMetrics(nil)]
	Logger       *slog.Logger // [slog.Default()]
}

const (
	// DefaultWindow is the publishes in flight without a confirm: enough to keep the broker's
	// confirm round trip off the reader's path, few enough to bound what a lost connection
	// makes the reader publish again.
	DefaultWindow = 1024
	// DefaultCloseTimeout bounds the close handshake and a write blocked after the session ends.
	DefaultCloseTimeout = 5 * time.Second
)

// messageType is the AMQP type property of every change message.
var messageType = "wye.cdc.changes.v" + strconv.Itoa(cdc.SchemaVersion)

// Publisher opens confirm channels. amqp091 does not reconnect: each cdc session opens a new
// connection, re-declares the topology and the reader's session loop supplies the backoff.
type Publisher struct {
	opts    Options
	blocked atomic.Bool // the current connection is blocked by a broker resource alarm
}

var _ cdc.Publisher = (*Publisher)(nil)

// New returns a publisher.
func New(opts Options) *Publisher {
	opts.Exchange = cmp.Or(opts.Exchange, broker.DefaultExchange)
	opts.Queue = cmp.Or(opts.Queue, broker.DefaultQueue)
	opts.DeliveryLimit = defaults.Positive(opts.DeliveryLimit, broker.DefaultDeliveryLimit)
	opts.Window = defaults.Positive(opts.Window, DefaultWindow)
	opts.CloseTimeout = defaults.Positive(opts.CloseTimeout, DefaultCloseTimeout)
	opts.Metrics = cmp.Or(opts.Metrics, cdc.NewMetrics(nil))
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	return &Publisher{opts: opts}
}

// Blocked reports whether the broker blocks the current connection (connection.blocked: a
// memory or disk alarm). Nothing is confirmed meanwhile, so a reader is not ready: readiness
// is reader.Ready() && !Blocked().
func (p *Publisher) Blocked() bool { return p.blocked.Load() }

// Declare declares the exchange and the queue on ch. A queue that already exists (say, declared
// by the indexer with more arguments) is left as it is: only a missing one is created, as a
// quorum queue with reject-publish overflow so that a full queue nacks instead of dropping.
func (p *Publisher) declare(conn *amqp.Connection) error {
	ch, err := broker.DeclareExchange(conn, p.opts.Exchange)
	if err != nil {
		return err
	}
	defer ch.Close()
	if p.opts.Queue == "-" {
		return nil
	}
	if _, err := ch.QueueDeclarePassive(p.opts.Queue, true, false, false, false, nil); err != nil {
		// The passive declare closed the channel (404): use a fresh one.
		if ch, err = conn.Channel(); err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		defer ch.Close()
		_, err = ch.QueueDeclare(p.opts.Queue, true, false, false, false, broker.ChangeQueueArgs(p.opts.DeliveryLimit, p.parked()))
		if err != nil {
			return fmt.Errorf("declare queue %s: %w", p.opts.Queue, err)
		}
	}
	if err := ch.QueueBind(p.opts.Queue, "#", p.opts.Exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", p.opts.Queue, err)
	}
	if _, err := ch.QueueDeclare(p.parked(), true, false, false, false, broker.ParkedQueueArgs()); err != nil {
		return fmt.Errorf("declare parked queue %s: %w", p.parked(), err)
	}
	return nil
}

func (p *Publisher) parked() string {
	if p.opts.Parked == "" {
		return broker.DefaultParkedQueue
	}
	return p.opts.Parked
}

// Open dials, declares the topology and returns a confirm channel. When ctx ends, a write
// blocked on the socket (a broker under a resource alarm reads nothing) fails after
// CloseTimeout, so the session can return and Close. Its errors, and every failure the
// channel reports later (Publish, Confirmed), are a *broker.Error (broker.Classify); only
// the context's own error is returned as it is.
func (p *Publisher) Open(ctx context.Context) (cdc.Channel, error) {
	var sock net.Conn
	dial := amqp.DefaultDial(5 * time.Second)
	conn, err := amqp.DialConfig(p.opts.URL, amqp.Config{Heartbeat: 5 * time.Second,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := dial(network, addr)
			sock = c
			return c, err
		}})
	if err != nil {
		return nil, broker.Classify("dial", fmt.Errorf("dial broker: %w", err))
	}
	if err := p.declare(conn); err != nil {
		conn.CloseDeadline(time.Now().Add(p.opts.CloseTimeout))
		return nil, broker.Classify("declare", err)
	}
	ch, err := conn.Channel()
	err = cmp.Or(err, ch.Confirm(false))
	if err != nil {
		conn.CloseDeadline(time.Now().Add(p.opts.CloseTimeout))
		return nil, broker.Classify("open confirm channel", fmt.Errorf("open confirm channel: %w", err))
	}
	c := &channel{
		p:        p,
		opts:     p.opts,
		conn:     conn,
		sock:     sock,
		ch:       ch,
		slots:    make(chan struct{}, p.opts.Window),
		sent:     make(map[uint64]time.Time, p.opts.Window),
		acked:    map[uint64]bool{},
		moved:    make(chan struct{}, 1),
		failed:   make(chan struct{}),
		done:     make(chan struct{}),
		confirms: ch.NotifyPublish(make(chan amqp.Confirmation, p.opts.Window+1)),
		returns:  ch.NotifyReturn(make(chan amqp.Return, 64)),
		closed:   conn.NotifyClose(make(chan *amqp.Error, 1)),
		chClosed: ch.NotifyClose(make(chan *amqp.Error, 1)),
		blocks:   conn.NotifyBlocked(make(chan amqp.Blocking, 4)),
	}
	c.stopUnstick = context.AfterFunc(ctx, func() { sock.SetWriteDeadline(time.Now().Add(p.opts.CloseTimeout)) })
	c.wg.Add(1)
	go c.watch()
	return c, nil
}

type channel struct {
	p    *Publisher
	opts Options
	conn *amqp.Connection
	sock net.Conn // conn's socket
	ch   *amqp.Channel

	stopUnstick func() bool // stops the write deadline armed for the end of the session

	slots chan struct{} // the in-flight window: one token per unconfirmed publish

	mu    sync.Mutex
	sent  map[uint64]time.Time // seq -> publish time, unconfirmed
	acked map[uint64]bool      // confirmed above the watermark (out of order)
	w     uint64
	err   error // a *broker.Error: fail classifies it

	moved    chan struct{}
	failed   chan struct{} // closed with err set
	done     chan struct{}
	wg       sync.WaitGroup
	confirms chan amqp.Confirmation
	returns  chan amqp.Return
	closed   chan *amqp.Error
	chClosed chan *amqp.Error
	blocks   chan amqp.Blocking
}

var _ cdc.Channel = (*channel)(nil)

func (c *channel) Publish(ctx context.Context, m cdc.Message) (uint64, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.failed:
		return 0, c.Err()
	}
	// amqp091 ignores the context: check it here so a cancelled session never publishes.
	if err := ctx.Err(); err != nil {
		<-c.slots
		return 0, err
	}
	if err := c.Err(); err != nil {
		<-c.slots
		return 0, err
	}
	c.mu.Lock()
	seq := c.ch.GetNextPublishSeqNo()
	c.sent[seq] = time.Now()
	c.mu.Unlock()
	err := c.ch.PublishWithContext(ctx, c.opts.Exchange, m.RoutingKey, true, false, amqp.Publishing{
		DeliveryMode:    amqp.Persistent,
		ContentType:     "application/json",
		ContentEncoding: m.ContentEncoding,
		MessageId:       m.MessageID,
		AppId:           c.opts.AppID,
		Type:            messageType,
		Headers:         amqp.Table{cdc.HeaderChanges: int32(m.Changes)},
		Body:            m.Body,
	})
	if err != nil {
		c.fail("publish", fmt.Errorf("publish: %w", err))
		return 0, c.Err()
	}
	c.opts.Metrics.Pending.Inc()
	return seq, nil
}

func (c *channel) Confirmed() (uint64, <-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w, c.moved, c.err
}

func (c *channel) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail records the channel's first failure, classified: Publish, Confirmed and Err return it.
func (c *channel) fail(op string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = broker.Classify(op, err)
		close(c.failed)
		c.signal()
	}
}

func (c *channel) signal() {
	select {
	case c.moved <- struct{}{}:
	default:
	}
}

// watch drains every notify channel (amqp091 deadlocks if one fills up) and moves the
// watermark over contiguous confirms.
func (c *channel) watch() {
	defer c.wg.Done()
	blocks := c.blocks
	for {
		select {
		case <-c.done:
			return
		case b, ok := <-blocks:
			if !ok { // closed at shutdown; the close notifications follow
				blocks = nil
				continue
			}
			c.setBlocked(b)
		case r := <-c.returns:
			c.fail("publish", fmt.Errorf("message returned by the broker (%d %s): no queue bound for %q on %s",
				r.ReplyCode, r.ReplyText, r.RoutingKey, r.Exchange))
		case e := <-c.closed:
			c.fail("connection", closeError("broker connection closed", e))
			c.drainUntilDone()
			return
		case e := <-c.chClosed:
			c.fail("channel", closeError("broker channel closed", e))
			c.drainUntilDone()
			return
		case cf, ok := <-c.confirms:
			if !ok {
				c.fail("channel", errors.New("broker channel closed"))
				c.drainUntilDone()
				return
			}
			// A basic.return precedes the ack of the same message; it is already queued.
			select {
			case r := <-c.returns:
				c.fail("publish", fmt.Errorf("message returned by the broker (%d %s): no queue bound for %q on %s",
					r.ReplyCode, r.ReplyText, r.RoutingKey, r.Exchange))
			default:
			}
			if !cf.Ack {
				c.fail("confirm", fmt.Errorf("broker nacked message %d (queue full or unavailable)", cf.DeliveryTag))
				continue
			}
			c.ack(cf.DeliveryTag)
		}
	}
}

// closeError wraps the reason amqp091 gives for a closed connection or channel with %w, so that
// broker.Classify reads its code (320 on a broker restart; 404 or 403 when a publish to a
// missing or forbidden exchange closed the channel). amqp091 sends nil on a close wye asked for.
func closeError(what string, e *amqp.Error) error {
	if e == nil {
		return errors.New(what)
	}
	return fmt.Errorf("%s: %w", what, e)
}

// setBlocked records connection.blocked / connection.unblocked. The broker blocks publishing
// connections during a memory or disk alarm: publishes stall in the socket, nothing is
// confirmed, and the checkpoint stays where it is until the alarm clears.
func (c *channel) setBlocked(b amqp.Blocking) {
	if c.p.blocked.Swap(b.Active) == b.Active {
		return
	}
	if b.Active {
		c.opts.Metrics.BrokerBlocked.Set(1)
		c.opts.Logger.Warn("broker blocked the publishing connection (resource alarm): nothing is confirmed until it clears",
			"component", "cdc", "reason", b.Reason)
		return
	}
	c.opts.Metrics.BrokerBlocked.Set(0)
	c.opts.Logger.Info("broker unblocked the publishing connection", "component", "cdc")
}

func (c *channel) ack(tag uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.sent[tag]; ok {
		c.opts.Metrics.ConfirmSeconds.Observe(time.Since(t).Seconds())
		delete(c.sent, tag)
	}
	c.opts.Metrics.Pending.Dec()
	c.opts.Metrics.Confirmed.Inc()
	<-c.slots
	if c.err != nil {
		return // after a failure the watermark stays: later confirms cannot skip the failed one
	}
	c.acked[tag] = true
	moved := false
	for c.acked[c.w+1] {
		delete(c.acked, c.w+1)
		c.w++
		moved = true
	}
	if moved {
		c.signal()
	}
}

// drainUntilDone keeps the notify channels empty until Close; amqp091 closes them on shutdown.
func (c *channel) drainUntilDone() {
	returns, confirms, closed, chClosed, blocks := c.returns, c.confirms, c.closed, c.chClosed, c.blocks
	for {
		select {
		case <-c.done:
			return
		case _, ok := <-blocks:
			if !ok {
				blocks = nil
			}
		case _, ok := <-returns:
			if !ok {
				returns = nil
			}
		case _, ok := <-confirms:
			if !ok {
				confirms = nil
			}
		case _, ok := <-closed:
			if !ok {
				closed = nil
			}
		case _, ok := <-chClosed:
			if !ok {
				chClosed = nil
			}
		}
	}
}

// Close closes the connection within CloseTimeout. Connection.Close waits for close-ok with no
// bound, and a broker that blocks the connection (resource alarm) never reads the close, so it
// hung forever. CloseDeadline puts the deadline on the socket, but amqp091's heartbeater moves
// the read deadline 3 heartbeats ahead on every frame the broker sends (heartbeats keep coming
// during an alarm), so the socket is also closed outright at the deadline.
func (c *channel) Close() error {
	c.fail("close", errors.New("channel closed"))
	c.stopUnstick()
	hard := time.AfterFunc(c.opts.CloseTimeout, func() { c.sock.Close() })
	err := c.conn.CloseDeadline(time.Now().Add(c.opts.CloseTimeout))
	hard.Stop()
	close(c.done)
	c.wg.Wait()
	if c.p.blocked.Swap(false) {
		c.opts.Metrics.BrokerBlocked.Set(0)
	}
	c.mu.Lock()
	c.opts.Metrics.Pending.Sub(float64(len(c.sent)))
	c.mu.Unlock()
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	if err != nil {
		return broker.Classify("close", fmt.Errorf("close broker connection: %w", err))
	}
	return nil
}

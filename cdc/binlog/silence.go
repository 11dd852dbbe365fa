package binlog

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Silence on the replication connection. The server sends a heartbeat every HeartbeatPeriod
// when the binlog is idle, so a read that waits much longer than that has lost the server (a
// host gone without a FIN, a partition): the connection is closed and the session restarts
// from its checkpoint. go-mysql's own ReadTimeout does the same with a read deadline set
// before every packet, three times per binlog event: at the stream's rates that was about a
// tenth of cdc's CPU (the runtime's timer updates). One watchdog per connection, waking once
// per silenceTimeout/10, gives the same bound.

// Defaults of the replication connection.
const (
	// heartbeatPeriod is how often the server sends a heartbeat event on an idle binlog.
	heartbeatPeriod = 2 * time.Second
	// silenceTimeout bounds how long one read may wait for the server: five heartbeats.
	silenceTimeout = 10 * time.Second
	// coalesceWindow is how long a read waits before asking the kernel again once the stream
	// has caught up with the server (the last read returned less than trickleBytes): the
	// events committed meanwhile then come in one read instead of one read, one syscall and
	// one goroutine wake-up each. At 3,000 changes/s (about 6,000 binlog events/s) that is
	// about a hundred events per read, for at most this much more latency: 6 ms instead of 2
	// cut wye run's CPU per change at that rate by 12%, 10 ms instead of 6 by a further 9%, and
	// 20 ms instead of 10 (with the batcher's linger up to 40 ms instead of 20) by 5%
	// (docs/cdc.md, "Reading a live stream").
	coalesceWindow = 20 * time.Millisecond
	// trickleBytes: a read shorter than this found the socket drained, the stream caught up.
	// A backlog fills go-mysql's 64 KiB read buffer and never waits.
	trickleBytes = 16 << 10
)

// watchedDialer is the replication connection's dialer, one per stream: TCP connections whose
// reads are bounded by timeout (watchedConn) and, once the stream is dumping the binlog,
// coalesced over window. Once a connection it made went silent it dials no more: go-mysql's
// close would otherwise open one through the same silent network to KILL the old one and
// wait out the silence bound a second time (the server drops the old connection itself once
// its net_write_timeout passes).
type watchedDialer struct {
	timeout, window time.Duration
	silenced        atomic.Bool
	last            atomic.Pointer[watchedConn]
}

func newWatchedDialer(timeout, window time.Duration) *watchedDialer {
	return &watchedDialer{timeout: timeout, window: window}
}

func (d *watchedDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.silenced.Load() {
		return nil, fmt.Errorf("binlog connection to %s went silent: not dialing it again for this stream", addr)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := watch(conn, d.timeout)
	c.window, c.silenced = d.window, &d.silenced
	d.last.Store(c)
	return c, nil
}

// dumping starts coalescing the reads of the connection dialed last: call it once that
// connection has sent the binlog dump command. Until then every answer (the handshake, the
// registration's statements) is short, and waiting window before each next one made a start
// about 150 ms slower. Connections dialed later (go-mysql's KILL at close) never coalesce.
func (d *watchedDialer) dumping() {
	if c := d.last.Load(); c != nil {
		c.dumping.Store(true)
	}
}

// watchedConn closes its connection once a read has waited longer than timeout; that read
// and every later one fail with an error that says so. Reads that wait for nobody (the
// stream is not reading: back-pressure from the broker) are not bounded, as with a deadline
// set before each read.
//
// Once dumping, a read that follows a short one (the stream caught up with the server) first
// waits window (zero: never), so that a live stream is read in bursts rather than event by
// event.
type watchedConn struct {
	net.Conn
	timeout time.Duration
	window  time.Duration
	dumping atomic.Bool // the binlog dump command was sent: reads may coalesce
	caught  bool        // the last read returned less than trickleBytes; only the reader touches it
	// silenced, when set, is raised with silent: its dialer's other connections are not made.
	silenced *atomic.Bool
	since    atomic.Int64 // UnixNano when the pending read started; 0: no read pending
	silent   atomic.Bool  // closed by the watchdog
	stop     chan struct{}
	once     sync.Once
}

func watch(conn net.Conn, timeout time.Duration) *watchedConn {
	c := &watchedConn{Conn: conn, timeout: timeout, stop: make(chan struct{})}
	go c.watchdog(max(timeout/10, time.Millisecond))
	return c
}

func (c *watchedConn) Read(b []byte) (int, error) {
	if c.caught && c.window > 0 && c.dumping.Load() {
		time.Sleep(c.window)
	}
	c.since.Store(time.Now().UnixNano())
	n, err := c.Conn.Read(b)
	c.since.Store(0)
	c.caught = n < trickleBytes && n < len(b)
	if err != nil && c.silent.Load() {
		err = fmt.Errorf("binlog connection: no data from the server for %s (it sends a heartbeat every %s); closed: %w",
			c.timeout, heartbeatPeriod, err)
	}
	return n, err
}

// Close stops the watchdog and closes the connection.
func (c *watchedConn) Close() error {
	c.once.Do(func() { close(c.stop) })
	return c.Conn.Close()
}

func (c *watchedConn) watchdog(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			if since := c.since.Load(); since != 0 && now.Sub(time.Unix(0, since)) > c.timeout {
				if c.silenced != nil {
					c.silenced.Store(true)
				}
				c.silent.Store(true)
				c.Close()
				return
			}
		}
	}
}

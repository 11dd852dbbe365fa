package publisher

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/cdc"
)

// waitFor polls cond until it holds or a second passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 1s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBlockedBrokerConnectionIsVisible prevents a silent stall: while RabbitMQ blocks the
// publishing connection (memory or disk alarm) nothing is confirmed, so the publisher must say
// so (wye_cdc_broker_blocked, Blocked() for readiness) and clear it when the broker unblocks.
// The notify channel closed by amqp091 at shutdown must neither spin nor clear the state.
func TestBlockedBrokerConnectionIsVisible(t *testing.T) {
	m := cdc.NewMetrics(nil)
	p := New(Options{Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c := &channel{p: p, opts: p.opts, done: make(chan struct{}), blocks: make(chan amqp.Blocking)}
	c.wg.Add(1)
	go c.watch()
	defer func() { close(c.done); c.wg.Wait() }()

	gauge := func() float64 {
		var d dto.Metric
		if err := m.BrokerBlocked.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetGauge().GetValue()
	}
	if p.Blocked() || gauge() != 0 {
		t.Fatal("blocked before any notification")
	}
	c.blocks <- amqp.Blocking{Active: true, Reason: "low on memory"}
	waitFor(t, "blocked after connection.blocked", func() bool { return p.Blocked() && gauge() == 1 })
	c.blocks <- amqp.Blocking{Active: false}
	waitFor(t, "unblocked after connection.unblocked", func() bool { return !p.Blocked() && gauge() == 0 })
	c.blocks <- amqp.Blocking{Active: true, Reason: "low on disk"}
	waitFor(t, "blocked again", func() bool { return p.Blocked() && gauge() == 1 })
	close(c.blocks)
	time.Sleep(10 * time.Millisecond) // give a spinning watch a chance to flip the state
	if !p.Blocked() || gauge() != 1 {
		t.Fatal("closing the notify channel cleared the blocked state")
	}
}

// TestBrokerCloseReasonReachesTheReaderClassified prevents the reader from retrying a broken
// setup in silence: the code of the broker's close (404 when the exchange was deleted, 320 on a
// broker restart) must survive into the channel's error as a *broker.Error, not as text.
func TestBrokerCloseReasonReachesTheReaderClassified(t *testing.T) {
	for _, tc := range []struct {
		name      string
		conn      bool // close the connection, else the channel
		reason    *amqp.Error
		permanent bool
		code      int
	}{
		{"exchange deleted under the publisher", false, &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange 'wye.changes' in vhost '/'", Server: true}, true, 404},
		{"publish permission revoked", false, &amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - write access to exchange 'wye.changes' refused", Server: true}, true, 403},
		{"broker restart", true, &amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED - shutdown", Server: true}, false, 320},
		{"connection closed without a reason", true, nil, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			c := &channel{p: p, opts: p.opts, moved: make(chan struct{}, 1), failed: make(chan struct{}), done: make(chan struct{}),
				closed: make(chan *amqp.Error, 1), chClosed: make(chan *amqp.Error, 1)}
			c.wg.Add(1)
			go c.watch()
			defer func() { close(c.done); c.wg.Wait() }()
			if tc.conn {
				c.closed <- tc.reason
			} else {
				c.chClosed <- tc.reason
			}
			<-c.failed
			_, _, err := c.Confirmed()
			e, ok := errors.AsType[*broker.Error](err)
			if !ok || e.Permanent != tc.permanent || e.Code != tc.code {
				t.Errorf("channel error %v (%#v), want *broker.Error permanent=%v code=%d", err, e, tc.permanent, tc.code)
			}
		})
	}
}

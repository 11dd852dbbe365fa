package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/broker"
)

func TestBatchIsCutByCountBytesOrTimeNeverGrowsUnbounded(t *testing.T) {
	c := New(Options{Prefetch: 100, BatchSize: 3, BacklogSize: 3, BatchBytes: 100, BatchWait: 200 * time.Millisecond}, nil)
	body := func(n int) amqp.Delivery { return amqp.Delivery{Body: []byte(strings.Repeat("x", n))} }

	synctest.Test(t, func(t *testing.T) {
		ch := make(chan amqp.Delivery, 10)
		for range 5 {
			ch <- body(1)
		}
		b, full, err := c.collect(t.Context(), ch)
		if err != nil || len(b) != 3 || !full {
			t.Errorf("count: got %d deliveries (%v, full %v), want 3, full", len(b), err, full)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan amqp.Delivery, 10)
		for range 5 {
			ch <- body(60)
		}
		b, full, _ := c.collect(t.Context(), ch)
		if len(b) != 2 || !full {
			t.Errorf("bytes: got %d deliveries, want 2 (120 bytes >= 100)", len(b))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan amqp.Delivery, 10)
		ch <- body(1)
		start := time.Now()
		b, full, _ := c.collect(t.Context(), ch)
		if len(b) != 1 || time.Since(start) != 200*time.Millisecond || full {
			t.Errorf("time: got %d deliveries after %v (full %v), want 1 after the 200ms batch wait, not full", len(b), time.Since(start), full)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(time.Second); cancel() }()
		b, _, err := c.collect(ctx, make(chan amqp.Delivery))
		if len(b) != 0 || err != nil {
			t.Errorf("shutdown while idle: %d deliveries, %v", len(b), err)
		}
	})
}

// TestABacklogBatchTakesWhatWaitsButALiveOneClosesAtItsSize prevents two failures of the
// backlog size: a backlog cut into small batches (each pays a snapshot, a _bulk and an ack,
// and an entity changed in several is written several times), and a live stream's full batch
// held back waiting for deliveries that have not arrived (its lag would grow).
func TestABacklogBatchTakesWhatWaitsButALiveOneClosesAtItsSize(t *testing.T) {
	c := New(Options{Prefetch: 100, BatchSize: 3, BacklogSize: 10, BatchWait: time.Hour}, nil)
	for _, waiting := range []int{5, 12} {
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan amqp.Delivery, 20)
			for range waiting {
				ch <- amqp.Delivery{Body: []byte("{}")}
			}
			b, full, _ := c.collect(t.Context(), ch)
			if want := min(waiting, 10); len(b) != want || !full {
				t.Errorf("%d deliveries waiting: a batch of %d (full %v), want %d, full", waiting, len(b), full, want)
			}
		})
	}
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan amqp.Delivery, 20)
		for range 3 {
			ch <- amqp.Delivery{Body: []byte("{}")}
		}
		go func() { time.Sleep(10 * time.Millisecond); ch <- amqp.Delivery{Body: []byte("{}")} }()
		start := time.Now()
		b, full, _ := c.collect(t.Context(), ch)
		if len(b) != 3 || !full || time.Since(start) != backlogGrace {
			t.Errorf("a live stream's full batch: %d deliveries after %v (full %v), want 3 after %v, full", len(b), time.Since(start), full, backlogGrace)
		}
		time.Sleep(time.Second) // the late delivery's sender ends
	})
}

// TestABatchThatGoesOnDoesNotClearAnotherStillHeld prevents /readyz and
// wye_indexer_master_unavailable from saying the master is back while a batch in flight still
// waits for it: with batches in flight, another batch that stops waiting must not clear it.
func TestABatchThatGoesOnDoesNotClearAnotherStillHeld(t *testing.T) {
	c := New(Options{}, nil)
	c.ready.Store(true)
	state := func() (bool, float64) { return c.Ready(), testutil.ToFloat64(c.opts.Metrics.MasterUnavailable) }
	c.hold(1)
	c.hold(1)
	c.hold(-1)
	if ready, gauge := state(); ready || gauge != 1 {
		t.Errorf("one of two held batches went on: ready %v, master_unavailable %v; want not ready, 1", ready, gauge)
	}
	c.hold(-1)
	if ready, gauge := state(); !ready || gauge != 0 {
		t.Errorf("no batch held: ready %v, master_unavailable %v; want ready, 0", ready, gauge)
	}
}

// TestBatchNeverWaitsForMoreThanPrefetch prevents a batch from waiting for deliveries the
// broker never sends: with prefetch 3, the third delivery closes the batch whatever its size
// in changes; and a batch of multi-change messages is counted in changes.
func TestBatchNeverWaitsForMoreThanPrefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(Options{Prefetch: 3, BatchSize: 500, BatchWait: time.Hour}, nil)
		ch := make(chan amqp.Delivery, 10)
		for range 5 {
			ch <- amqp.Delivery{Body: []byte("{}")}
		}
		b, _, _ := c.collect(t.Context(), ch)
		if len(b) != 3 {
			t.Errorf("batch of %d deliveries with prefetch 3", len(b))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		c := New(Options{Prefetch: 100, BatchSize: 500, BacklogSize: 500, BatchWait: time.Hour}, nil)
		ch := make(chan amqp.Delivery, 10)
		for range 5 {
			ch <- amqp.Delivery{Body: []byte("{}"), Headers: amqp.Table{"x-wye-changes": int32(200)}}
		}
		b, _, _ := c.collect(t.Context(), ch)
		if len(b) != 3 {
			t.Errorf("batch of %d messages of 200 changes with a batch size of 500 changes, want 3", len(b))
		}
	})
}

func TestRetryHeadersRoundTrip(t *testing.T) {
	seen := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	m := message(amqp.Delivery{Body: []byte("{}"), Headers: amqp.Table{
		HeaderAttempt: int32(4), HeaderTarget: "es7", HeaderFirstSeen: seen.Format(time.RFC3339Nano)}})
	if m.Attempt != 4 || m.Cluster != "es7" || !m.FirstSeen.Equal(seen) {
		t.Errorf("message = %+v", m)
	}
	if m := message(amqp.Delivery{Body: []byte("{}")}); m.Attempt != 0 || m.Cluster != "" {
		t.Errorf("a change event read as a retry: %+v", m)
	}
}

// TestRefusedIndexerIsReportedAsNeedingAnOperator prevents a misconfigured indexer (wrong
// password, a queue declared with other arguments) from reconnecting forever under the same
// log line as a broker restart: the reconnect loop must say which failures will not clear.
func TestRefusedIndexerIsReportedAsNeedingAnOperator(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"wrong password", broker.Classify("dial", fmt.Errorf("dial broker: %w", amqp.ErrCredentials)), true},
		{"queue declared with other arguments", broker.Classify("declare", fmt.Errorf("declare queue wye.index: %w",
			&amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit'", Server: true})), true},
		{"broker restart", broker.Classify("consume", fmt.Errorf("broker connection closed: %w",
			&amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED - shutdown", Server: true})), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := New(Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}, nil)
			c.logFailure(tc.err, 3, 4*time.Second)
			var rec struct {
				Level, Msg, Class string
				Failures          int
			}
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("log %q: %v", buf.String(), err)
			}
			operator := strings.Contains(rec.Msg, "operator action")
			if rec.Level != "ERROR" || rec.Failures != 3 || operator != tc.permanent || (rec.Class == "permanent") != tc.permanent {
				t.Errorf("logged %s", buf.String())
			}
		})
	}
}

// TestSessionEndsWhenTheBrokerClosesAChannel prevents a batch held for a retry from going on
// after the broker closed its channel (a consumer timeout, 406): its deliveries are back in the
// queue, so the session must end and reconnect, with the broker's reason.
func TestSessionEndsWhenTheBrokerClosesAChannel(t *testing.T) {
	for _, which := range []string{"connection", "consume channel", "publish channel"} {
		ctx, cancel := context.WithCancelCause(context.Background())
		conn, consume, publish := make(chan *amqp.Error, 1), make(chan *amqp.Error, 1), make(chan *amqp.Error, 1)
		done := make(chan struct{})
		go func() { watchClose(ctx, cancel, conn, consume, publish); close(done) }()
		e := &amqp.Error{Code: amqp.PreconditionFailed, Reason: "delivery acknowledgement timed out"}
		map[string]chan *amqp.Error{"connection": conn, "consume channel": consume, "publish channel": publish}[which] <- e
		<-done
		cause := context.Cause(ctx)
		if ctx.Err() == nil || !errors.Is(cause, e) || !strings.Contains(cause.Error(), which) {
			t.Errorf("%s closed: session cause %v, want it ended with the broker's error naming the %s", which, cause, which)
		}
	}
}

// TestBatchWaitFollowsProcessingTimeWithinItsBounds prevents a light stream from paying the
// whole BatchWait for each change once batches are known to process quickly, and a slow
// batch from stretching the wait beyond BatchWait.
func TestBatchWaitFollowsProcessingTimeWithinItsBounds(t *testing.T) {
	c := New(Options{Prefetch: 100, BatchSize: 100, BatchWait: 200 * time.Millisecond}, nil)
	for _, tc := range []struct{ took, want time.Duration }{
		{time.Millisecond, minBatchWait}, {80 * time.Millisecond, 80 * time.Millisecond}, {time.Minute, 200 * time.Millisecond},
	} {
		c.adapt(tc.took)
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan amqp.Delivery, 1)
			ch <- amqp.Delivery{Body: []byte("{}")}
			start := time.Now()
			if b, _, _ := c.collect(t.Context(), ch); len(b) != 1 || time.Since(start) != tc.want {
				t.Errorf("after a batch of %v: %d deliveries after %v, want 1 after %v", tc.took, len(b), time.Since(start), tc.want)
			}
		})
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cdc/rabbit"
)

func newCDCBenchCmd(g *globalFlags) *cobra.Command {
	var from, to string
	var tables []string
	var window int
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure raw binlog read rate vs wye's publish rate on one binlog range",
		Long: `bench reads the binlog range [--from, --to] twice: first with go-mysql's BinlogSyncer and a
no-op handler (every followed row decoded, nothing else), then through wye's pipeline (decode,
encode, publish with confirms) to a throw-away exchange and queue that a consumer drains. It
prints both rates and their ratio.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g, "")
			if err != nil {
				return err
			}
			fromPos, err := parsePosition(from)
			if err != nil {
				return usageError{fmt.Errorf("--from: %w", err)}
			}
			toPos, err := parsePosition(to)
			if err != nil {
				return usageError{fmt.Errorf("--to: %w", err)}
			}
			ctx := cmd.Context()
			tables, err = followedTables(cfg, tables)
			if err != nil {
				return usageError{err}
			}
			log := slog.Default()
			src, err := newCDCSource(cfg, tables, log)
			if err != nil {
				return usageError{err}
			}
			defer src.Close()

			t0 := time.Now()
			rawRows, err := src.RawRead(ctx, fromPos, toPos)
			if err != nil {
				return err
			}
			rawDur := time.Since(t0)

			st, err := src.Status(ctx)
			if err != nil {
				return err
			}
			// run drives wye's reader over the range with pub and returns confirmed events/s.
			run := func(pub cdc.Publisher, metrics *cdc.Metrics) (float64, time.Duration, error) {
				store := &memStore{cp: cdc.Checkpoint{Name: "bench", Epoch: 1, SourceID: st.ID, Pos: fromPos}, ok: true}
				reader := cdc.NewReader(cdc.Options{Name: "bench", Tables: tables, StopAt: &toPos,
					Logger: log, Metrics: metrics}, src, store, noLock{}, pub)
				t := time.Now()
				if err := reader.Run(ctx); err != nil {
					return 0, 0, err
				}
				return counterValue(metrics), time.Since(t), nil
			}
			// 1. wye without a broker: decode + encode + confirm tracking, instant confirms.
			nullMetrics := cdc.NewMetrics(nil)
			nullN, nullDur, err := run(&nullPublisher{m: nullMetrics}, nullMetrics)
			if err != nil {
				return err
			}
			// 2. wye with RabbitMQ: persistent, confirmed, to a quorum queue that a consumer drains.
			suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
			exchange, queue := "wye.bench."+suffix, "wye.bench."+suffix
			url := cfg.AMQP.URLWithPassword()
			drained, stopDrain, err := drain(ctx, url, exchange, queue)
			if err != nil {
				return err
			}
			metrics := cdc.NewMetrics(nil)
			published, pubDur, err := run(rabbit.New(rabbit.Options{URL: url, Exchange: exchange, Queue: queue,
				Window: window, AppID: "wye-cdc-bench", Metrics: metrics}), metrics)
			stopDrain()
			if err != nil {
				return err
			}
			rawRate := float64(rawRows) / rawDur.Seconds()
			nullRate := nullN / nullDur.Seconds()
			pubRate := published / pubDur.Seconds()
			fmt.Printf("range %s .. %s, tables %s\n", fromPos, toPos, strings.Join(tables, ","))
			fmt.Printf("raw read (go-mysql, no-op handler): %d row changes in %v = %.0f/s\n", rawRows, rawDur.Round(time.Millisecond), rawRate)
			fmt.Printf("wye pipeline, null broker (decode+encode+confirm tracking): %.0f events in %v = %.0f/s (ratio %.2f)\n",
				nullN, nullDur.Round(time.Millisecond), nullRate, nullRate/rawRate)
			fmt.Printf("wye publish to RabbitMQ (persistent, confirmed, quorum queue): %.0f events in %v = %.0f/s (consumer drained %d)\n",
				published, pubDur.Round(time.Millisecond), pubRate, drained())
			fmt.Printf("ratio publish/raw: %.2f (target >= 0.8)\n", pubRate/rawRate)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "start position file:pos (a transaction boundary)")
	fl.StringVar(&to, "to", "", "end position file:pos")
	fl.StringSliceVar(&tables, "table", nil, "follow this table too (db.table; repeatable)")
	fl.IntVar(&window, "window", 1024, "publishes in flight without a broker confirm")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	return cmd
}

func parsePosition(s string) (cdc.Position, error) {
	file, pos, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(pos, 10, 32)
	if !ok || err != nil || file == "" {
		return cdc.Position{}, fmt.Errorf("%q: want file:pos", s)
	}
	return cdc.Position{File: file, Pos: uint32(n)}, nil
}

func counterValue(m *cdc.Metrics) float64 {
	var d dto.Metric
	if err := m.Confirmed.Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// drain declares the bench topology and consumes it (auto-ack) so the broker never piles up
// the benchmark's messages; stop deletes the queue and the exchange.
func drain(ctx context.Context, url, exchange, queue string) (func() int, func(), error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, nil, fmt.Errorf("dial broker: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("declare exchange: %w", err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum",
		"x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once", "x-delivery-limit": 10}); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.QueueBind(queue, "#", exchange, false, nil); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("bind queue: %w", err)
	}
	ch.Qos(2000, 0, false)
	dl, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("consume: %w", err)
	}
	var mu sync.Mutex
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range dl {
			d.Ack(false)
			mu.Lock()
			n++
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	stop := func() {
		ch2, err := conn.Channel()
		if err == nil {
			ch2.QueueDelete(queue, false, false, false)
			ch2.ExchangeDelete(exchange, false, false)
		}
		conn.Close()
		<-done
	}
	_ = ctx
	return count, stop, nil
}

// memStore keeps the bench checkpoint in memory.
type memStore struct {
	mu sync.Mutex
	cp cdc.Checkpoint
	ok bool
}

func (s *memStore) Load(context.Context, string) (cdc.Checkpoint, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cp, s.ok, nil
}
func (s *memStore) Save(_ context.Context, cp cdc.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cp, s.ok = cp, true
	return nil
}
func (s *memStore) MarkResync(_ context.Context, _ string, m cdc.ResyncMark) error {
	fmt.Fprintf(os.Stderr, "bench: resync mark %+v\n", m)
	return nil
}

// nullPublisher confirms every message at once: it measures wye's own cost without a broker.
type nullPublisher struct {
	m   *cdc.Metrics
	seq uint64
}

func (p *nullPublisher) Open(context.Context) (cdc.Channel, error) { return p, nil }
func (p *nullPublisher) Publish(ctx context.Context, _ cdc.Message) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p.seq++
	p.m.Confirmed.Inc()
	return p.seq, nil
}
func (p *nullPublisher) Confirmed() (uint64, <-chan struct{}, error) { return p.seq, nil, nil }
func (p *nullPublisher) Close() error                                { return nil }

// noLock is a leader lock that is always held: the bench reader is alone on its exchange.
type noLock struct{}

func (noLock) Acquire(ctx context.Context) (context.Context, func(), error) {
	if ctx.Err() != nil {
		return nil, nil, errors.New("cancelled")
	}
	held, cancel := context.WithCancel(ctx)
	return held, cancel, nil
}

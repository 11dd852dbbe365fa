package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	dto "github.com/prometheus/client_model/go"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cdc/publisher"
	"github.com/wyehq/wye/config"
)

func newCDCBenchCmd(g *globalFlags) *cobra.Command {
	var from, to string
	var rounds int
	var cpuProfilePath string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure raw binlog read rate vs wye's publish rate on one binlog range",
		Long: `bench reads the binlog range [--from, --to] three ways: with go-mysql's BinlogSyncer and a
no-op handler (every row decoded, nothing else); through wye's pipeline with a broker that
confirms at once (decode, batch, encode, compress); and through wye's pipeline to RabbitMQ
(persistent messages with confirms, to a throw-away quorum queue that a consumer drains).
The three take turns for --rounds rounds; it prints every round and each path's best rate,
the ratios of the best rates, and the message bytes per change (as sent and as JSON).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g)
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
			if rounds < 1 {
				return usageError{fmt.Errorf("--rounds %d: want at least 1", rounds)}
			}
			stopProfile, err := cpuProfile(cpuProfilePath)
			if err != nil {
				return err
			}
			defer stopProfile()
			ctx := cmd.Context()
			tables, err := followedTables(cfg, cfg.CDC.Tables)
			if err != nil {
				return usageError{err}
			}
			model, err := newModel(cfg)
			if err != nil {
				return usageError{err}
			}
			log := slog.Default()
			src, err := newCDCSource(cfg, tables, model, log)
			if err != nil {
				return usageError{err}
			}
			defer src.Close()

			st, err := src.Status(ctx)
			if err != nil {
				return err
			}
			compress := cfg.AMQP.Compression == "zstd"
			// run drives wye's reader over the range with pub and returns the events published
			// (all confirmed: the reader stops once the last one is).
			run := func(pub cdc.Publisher, metrics *cdc.Metrics) (int, error) {
				store := &memStore{cp: cdc.Checkpoint{Name: "bench", Epoch: 1, SourceID: st.ID, Pos: fromPos}, ok: true}
				reader := cdc.NewReader(cdc.Options{Name: "bench", Tables: tables, StopAt: &toPos, Compress: compress,
					WholeColumns: wholeColumns(model), UpdateImages: cfg.CDC.UpdateImages,
					BatchChanges: cfg.CDC.BatchChanges, BatchBytes: cfg.CDC.BatchBytes, Linger: cfg.CDC.Linger,
					Logger: log, Metrics: metrics}, src, store, noLock{}, pub)
				if err := reader.Run(ctx); err != nil {
					return 0, err
				}
				return int(counterValue(metrics)), nil
			}
			suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
			exchange, queue := "wye.bench."+suffix, "wye.bench."+suffix
			url := cfg.AMQP.URLWithPassword()
			drained, stopDrain, err := drain(ctx, url, exchange, queue)
			if err != nil {
				return err
			}
			defer stopDrain()
			var sizes messageBytes // of the null broker's last round: every round publishes the same bodies
			paths := []benchPath{
				{name: "raw read (go-mysql, no-op handler)", run: func() (int, error) { return src.RawRead(ctx, fromPos, toPos) }},
				{name: "wye, null broker (decode+encode+confirm tracking)", run: func() (int, error) {
					m := cdc.NewMetrics(nil)
					p := &nullPublisher{m: m}
					n, err := run(p, m)
					sizes = p.sizes
					return n, err
				}},
				{name: "wye publish to RabbitMQ (persistent, confirmed, quorum queue)", run: func() (int, error) {
					m := cdc.NewMetrics(nil)
					return run(publisher.New(publisher.Options{URL: url, Exchange: exchange, Queue: queue,
						Window: cfg.CDC.Window, AppID: "wye-cdc-bench", Metrics: m}), m)
				}},
			}
			// The paths take turns, round after round, so that a burst of load from elsewhere on
			// the machine hits all of them alike; each path's best round is its rate.
			for round := 1; round <= rounds; round++ {
				for i := range paths {
					if err := paths[i].measure(); err != nil {
						return fmt.Errorf("%s: %w", paths[i].name, err)
					}
				}
			}
			// Rates of different work are no ratio: every path must have read the same changes.
			for _, p := range paths[1:] {
				if p.n != paths[0].n {
					return fmt.Errorf("%s handled %d row changes, %s %d: the paths did not read the same range",
						p.name, p.n, paths[0].name, paths[0].n)
				}
			}
			raw, null, pub := paths[0].best(), paths[1].best(), paths[2].best()
			fmt.Printf("range %s .. %s, tables %s, compression %s, %d rounds (best of each)\n",
				fromPos, toPos, strings.Join(tables, ","), cfg.AMQP.Compression, rounds)
			for _, p := range paths {
				fmt.Printf("%-64s %s\n", p.name+":", p.report())
			}
			fmt.Printf("message bytes per change: %s\n", sizes.report())
			fmt.Printf("ratio null broker/raw: %.2f\n", null/raw)
			fmt.Printf("ratio publish/raw: %.2f (target >= 0.8); consumer drained %d messages\n", pub/raw, drained())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "start position file:pos (a transaction boundary)")
	fl.StringVar(&to, "to", "", "end position file:pos")
	d := config.Default()
	fl.StringSlice("table", d.CDC.Tables, "follow this table too (db.table; repeatable), besides the entities' tables; replaces the file's list")
	fl.Int("window", d.CDC.Window, "publishes in flight without a broker confirm")
	bindKeys(fl, "table", "cdc.tables", "window", "cdc.window")
	fl.IntVar(&rounds, "rounds", 3, "measure each path this many times, taking turns; report the best")
	fl.StringVar(&cpuProfilePath, "cpuprofile", "", "write a CPU profile of the whole bench (go tool pprof) to this file")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	return cmd
}

// benchPath is one way of reading the range, measured in rounds.
type benchPath struct {
	name  string
	run   func() (int, error) // row changes handled
	n     int
	rates []float64
}

func (p *benchPath) measure() error {
	t := time.Now()
	n, err := p.run()
	if err != nil {
		return err
	}
	if p.n != 0 && n != p.n {
		return fmt.Errorf("handled %d row changes, an earlier round %d", n, p.n)
	}
	p.n = n
	p.rates = append(p.rates, float64(n)/time.Since(t).Seconds())
	return nil
}

func (p *benchPath) best() float64 { return slices.Max(p.rates) }

func (p *benchPath) report() string {
	var each []string
	for _, r := range p.rates {
		each = append(each, fmt.Sprintf("%.0f", r))
	}
	return fmt.Sprintf("%d changes, best %.0f/s (rounds: %s)", p.n, p.best(), strings.Join(each, ", "))
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
	if err := m.Published.Write(&d); err != nil {
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
		"x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once", "x-delivery-limit": broker.DefaultDeliveryLimit}); err != nil {
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
	m     *cdc.Metrics
	seq   uint64
	sizes messageBytes
}

// messageBytes sums the bodies of published messages, as sent and as JSON.
type messageBytes struct {
	messages, changes, body, json int64
}

func (s *messageBytes) add(m cdc.Message) {
	s.messages++
	s.changes += int64(m.Changes)
	s.body += int64(len(m.Body))
	json := int64(len(m.Body))
	// A zstd frame of EncodeAll states its content size in its header: nothing to decompress.
	var h zstd.Header
	if m.ContentEncoding == "zstd" && h.Decode(m.Body) == nil && h.HasFCS {
		json = int64(h.FrameContentSize)
	}
	s.json += json
}

func (s messageBytes) report() string {
	if s.changes == 0 {
		return "no changes"
	}
	return fmt.Sprintf("%.1f as sent, %.1f as JSON (%d messages, %d changes)",
		float64(s.body)/float64(s.changes), float64(s.json)/float64(s.changes), s.messages, s.changes)
}

func (p *nullPublisher) Open(context.Context) (cdc.Channel, error) { return p, nil }
func (p *nullPublisher) Publish(ctx context.Context, m cdc.Message) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p.sizes.add(m)
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

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cdc/binlog"
	"github.com/wyehq/wye/cdc/publisher"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/control"
)

func init() { subcommands = append(subcommands, newCDCCmd) }

func newCDCCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cdc",
		Short: "Read the binlog and publish versioned change events to RabbitMQ (one active reader)",
		Long: "Read the binlog and publish versioned change events to RabbitMQ. Readers of one name " +
			"(cdc.name) are one active reader and its standbys. Tuning keys: cdc.* and amqp.* " +
			"(docs/configuration.md); a flag overrides its key only when given.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			return runCDC(cmd.Context(), cfg, nil)
		},
	}
	d := config.Default()
	fl := cmd.Flags()
	fl.String("name", d.CDC.Name, "reader name: checkpoint row and leader lock wye.cdc.<name>")
	fl.StringSlice("table", d.CDC.Tables, "follow this table too (db.table; repeatable), besides the entities' tables; replaces the file's list")
	fl.Int("window", d.CDC.Window, "publishes in flight without a broker confirm")
	fl.Int("delivery-limit", d.AMQP.DeliveryLimit, "x-delivery-limit of the change queue when cdc creates it")
	fl.Duration("checkpoint-interval", d.CDC.CheckpointInterval, "how often confirmed progress is saved")
	fl.String("metrics-listen", d.Metrics.Listen, "host:port for /metrics, /healthz, /readyz; \"\" disables them")
	bindKeys(fl, "name", "cdc.name", "table", "cdc.tables", "window", "cdc.window",
		"delivery-limit", "amqp.delivery_limit", "checkpoint-interval", "cdc.checkpoint_interval",
		"metrics-listen", "metrics.listen")
	cmd.AddCommand(newCDCBenchCmd(g))
	return cmd
}

// followedTables is every table the entities read (roots, relations, join tables: the
// indexer's model is the one definition of that) plus extra.
func followedTables(cfg *config.Config, extra []string) ([]string, error) {
	model, err := newModel(cfg)
	if err != nil {
		return nil, err
	}
	out := model.Tables()
	slices.Sort(out)
	for _, t := range extra {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// runCDC runs the reader with cfg.CDC's knobs. Its series and readiness go to ep, or to an
// endpoint of its own on metrics.listen when ep is nil.
func runCDC(ctx context.Context, cfg *config.Config, ep *metricsEndpoint) error {
	log := slog.Default()
	c := cfg.CDC
	tables, err := followedTables(cfg, c.Tables)
	if err != nil {
		return usageError{err}
	}
	if len(tables) == 0 {
		return usageError{errors.New("cdc: no table to follow: add entities, or cdc.tables (--table)")}
	}
	ep, stopHTTP, err := endpointFor(ep, cfg.Metrics.Listen)
	if err != nil {
		return err
	}
	defer stopHTTP()
	metrics := cdc.NewMetrics(ep.reg)

	src, err := newCDCSource(cfg, tables, log)
	if err != nil {
		return usageError{err}
	}
	defer src.Close()
	store, err := control.Open(ctx, cfg.Control.MySQLConfig())
	if err != nil {
		return err
	}
	defer store.Close()
	ctl := store.CDC(control.CDCOptions{Name: c.Name, Logger: log})
	host, _ := os.Hostname()
	pub := publisher.New(publisher.Options{
		URL: cfg.AMQP.URLWithPassword(), Exchange: cfg.AMQP.Exchange, Queue: cfg.AMQP.Queue,
		DeliveryLimit: cfg.AMQP.DeliveryLimit, Parked: cfg.AMQP.Parked, Window: c.Window,
		AppID: fmt.Sprintf("wye-cdc/%s/%d", host, os.Getpid()), Metrics: metrics,
	})
	reader := cdc.NewReader(cdc.Options{Name: c.Name, Tables: tables, CheckpointInterval: c.CheckpointInterval,
		BatchChanges: c.BatchChanges, BatchBytes: c.BatchBytes, Linger: c.Linger,
		Compress: cfg.AMQP.Compression == "zstd", Logger: log, Metrics: metrics}, src, ctl, ctl, pub)

	// Ready: holds the lock and streams to a broker that is not blocking it (resource alarm).
	ep.addReady(func() bool { return reader.Ready() && !pub.Blocked() })
	log.Info("cdc starting", "name", c.Name, "tables", tables, "source", cfg.Source.Addr(),
		"broker", cfg.AMQP.Host(), "exchange", cfg.AMQP.Exchange, "queue", cfg.AMQP.Queue, "metrics", cfg.Metrics.Listen)
	return reader.Run(ctx)
}

// metricsEndpoint collects the series and the readiness of the components one /metrics
// endpoint serves: one for `wye cdc` and `wye indexer`, both for `wye run`.
type metricsEndpoint struct {
	reg   *prometheus.Registry
	want  int // components that will report readiness
	mu    sync.Mutex
	ready []func() bool
}

func newMetricsEndpoint(components int) *metricsEndpoint {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &metricsEndpoint{reg: reg, want: components}
}

func (e *metricsEndpoint) addReady(ready func() bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ready = append(e.ready, ready)
}

// Ready reports whether every component has started and is ready.
func (e *metricsEndpoint) Ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.ready) < e.want {
		return false
	}
	for _, r := range e.ready {
		if !r() {
			return false
		}
	}
	return true
}

// endpointFor returns ep or, when ep is nil, a new endpoint of one component served on addr.
func endpointFor(ep *metricsEndpoint, addr string) (*metricsEndpoint, func(), error) {
	if ep != nil {
		return ep, func() {}, nil
	}
	ep = newMetricsEndpoint(1)
	stop, err := serveMetrics(addr, ep.reg, ep.Ready)
	return ep, stop, err
}

// serveMetrics serves /metrics, /healthz (the process runs) and /readyz (every component
// doing its job: see metricsEndpoint). An empty address disables it.
func serveMetrics(addr string, reg *prometheus.Registry, ready func() bool) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: standby, or not connected", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen metrics %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("metrics server stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

// newCDCSource builds the binlog source of cfg.Source following tables.
func newCDCSource(cfg *config.Config, tables []string, log *slog.Logger) (*binlog.Source, error) {
	return binlog.NewSource(binlog.SourceOptions{
		Flavor: string(cfg.Source.Flavor), Host: cfg.Source.Host, Port: uint16(cfg.Source.Port),
		User: cfg.Source.User, Password: cfg.Source.Password.Reveal(), ServerID: cfg.Source.ServerID,
		Tables: tables, Logger: log,
	})
}

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
	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
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
			ep, stop, err := endpointFor(nil, cfg.Metrics.Listen)
			if err != nil {
				return err
			}
			defer stop()
			// Only the logins: cdc reads no entity's columns.
			if err := startCheck(cmd.Context(), cfg, nil, cmd.ErrOrStderr(), slog.Default()); err != nil {
				return cleanStop(cmd.Context(), err)
			}
			return runCDC(cmd.Context(), cfg, ep)
		},
	}
	d := config.Default()
	fl := cmd.Flags()
	fl.String("name", d.CDC.Name, "reader name: checkpoint row and leader lock wye.<control database>.cdc.<name>")
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

// wholeColumns is, per table, every key and link column of the entities: the columns the
// indexer finds and matches rows by, which cdc sends whole however large (docs/cdc.md, "Large
// values").
func wholeColumns(model *indexer.Model) cdc.WholeColumns {
	out := cdc.WholeColumns{}
	for _, l := range model.LinkColumns() {
		if !slices.Contains(out[l.Table], l.Column) {
			out[l.Table] = append(out[l.Table], l.Column)
		}
	}
	return out
}

// runCDC runs the reader with cfg.CDC's knobs. Its series and readiness go to ep, or to an
// endpoint of its own on metrics.listen when ep is nil.
func runCDC(ctx context.Context, cfg *config.Config, ep *metricsEndpoint) error {
	log := slog.Default()
	c := cfg.CDC
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
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

	src, err := newCDCSource(cfg, tables, model, log)
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
		Compress: cfg.AMQP.Compression == "zstd", WholeColumns: wholeColumns(model), UpdateImages: c.UpdateImages,
		Logger: log, Metrics: metrics, Floor: ctl, Written: newMasterVersions(cfg, model, store)}, src, ctl, ctl, pub)

	// Ready: holds the lock and streams to a broker that is not blocking it (resource alarm).
	ep.addReady(func() bool { return reader.Ready() && !pub.Blocked() })
	log.Info("cdc starting", "name", c.Name, "leader_lock", ctl.LockName(), "tables", tables, "source", cfg.Source.Addr(),
		"broker", cfg.AMQP.Host(), "exchange", cfg.AMQP.Exchange, "queue", cfg.AMQP.Queue, "metrics", cfg.Metrics.Listen)
	// How close the checkpoint is to the files the source purges next (docs/cdc.md, "Binlog retention").
	watch, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { cdc.WatchRetention(watch, src, cdc.DefaultRetentionPoll, cdc.NewRetentionMetrics(ep.reg), log) })
	defer wg.Wait()
	defer stopWatch()
	return reader.Run(ctx)
}

// masterVersions is the reader's cdc.HighestWritten: the highest version the master cluster
// holds, by a max aggregation of each entity's version field over the indices the indexer
// writes (the entity's index, as an alias or a concrete index, and its <index>_vN). The
// master is the one cluster_roles names (a promote moves it), else the configured one. It
// connects only when asked, and a reader asks only when the control schema has no epoch
// floor at all (docs/cdc.md, "Epochs"): a cluster that is down costs a normal start nothing.
type masterVersions struct {
	clusters []config.Cluster
	store    *control.Store
	indices  map[string][]string // version field -> the indices that carry it
}

var _ cdc.HighestWritten = (*masterVersions)(nil)

func newMasterVersions(cfg *config.Config, model *indexer.Model, store *control.Store) *masterVersions {
	m := &masterVersions{clusters: cfg.Clusters, store: store, indices: map[string][]string{}}
	for _, e := range model.Entities() {
		m.indices[e.VersionField] = append(m.indices[e.VersionField], e.Index, e.Index+"_v*")
	}
	return m
}

func (m *masterVersions) HighestVersion(ctx context.Context) (cdc.Version, bool, error) {
	if len(m.indices) == 0 {
		return 0, false, nil // no entity: nothing written that versions could sort below
	}
	c, err := m.master(ctx)
	if err != nil {
		return 0, false, err
	}
	client, err := cluster.New(clusterOptions(c))
	if err != nil {
		return 0, false, fmt.Errorf("connect master cluster %s: %w", c.Name, err)
	}
	var high cdc.Version
	found := false
	for field, indices := range m.indices {
		v, ok, err := maxVersion(ctx, client, indices, field)
		if err != nil {
			return 0, false, fmt.Errorf("read the highest %s on master cluster %s: %w", field, c.Name, err)
		}
		if ok && (!found || v > high) {
			high, found = v, true
		}
	}
	return high, found, nil
}

// master returns the master cluster's configuration.
func (m *masterVersions) master(ctx context.Context) (config.Cluster, error) {
	names := make([]string, len(m.clusters))
	want := ""
	for i, c := range m.clusters {
		names[i] = c.Name
		if c.Role == config.RoleMaster {
			want = c.Name
		}
	}
	if name, ok, err := m.store.Master(ctx, names); err != nil {
		return config.Cluster{}, err
	} else if ok {
		want = name
	}
	for _, c := range m.clusters {
		if c.Name == want {
			return c, nil
		}
	}
	return config.Cluster{}, errors.New("find the master cluster: none configured")
}

// maxVersion returns the max aggregation of field over indices (missing ones ignored); ok is
// false when no document carries the field. The aggregation answers a double, exact up to
// 2^53 (epoch 31) and rounded to nearest above: rounding is monotone and every epoch's first
// version, e<<48, is exact, so the epoch of the answer is never below the true one.
func maxVersion(ctx context.Context, client *cluster.Client, indices []string, field string) (cdc.Version, bool, error) {
	v, ok, err := client.Max(ctx, indices, field)
	if err != nil || !ok {
		return 0, ok, err
	}
	if v < 0 || v >= 1<<63 {
		return 0, false, fmt.Errorf("max aggregation: %v is not a version", v)
	}
	return cdc.Version(v), true, nil
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

// newCDCSource builds the binlog source of cfg.Source following tables, decoding of an update
// what the reader's images carry (the whole columns of model, cfg.CDC.UpdateImages).
func newCDCSource(cfg *config.Config, tables []string, model *indexer.Model, log *slog.Logger) (*binlog.Source, error) {
	return binlog.NewSource(binlog.SourceOptions{
		Flavor: string(cfg.Source.Flavor), Host: cfg.Source.Host, Port: uint16(cfg.Source.Port),
		User: cfg.Source.User, Password: cfg.Source.Password.Reveal(), ServerID: cfg.Source.ServerID,
		TLS: cfg.Source.TLSConfig, Tables: tables, Logger: log,
		UpdateImages: cfg.CDC.UpdateImages, WholeColumns: wholeColumns(model),
	})
}

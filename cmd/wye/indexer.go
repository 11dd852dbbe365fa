package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/indexer/consumer"
	"github.com/wyehq/wye/indexer/es"
	indexersql "github.com/wyehq/wye/indexer/sql"
	"github.com/wyehq/wye/mapping"
)

func init() { subcommands = append(subcommands, newIndexerCmd) }

func newIndexerCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "indexer",
		Short: "Consume change events, denormalize each entity once and write it to every cluster",
		Long: "Consume the change queue in batches, resolve row changes to entity ids, read each entity once " +
			"from the source and send the same versioned _bulk to the master and every slave. Master failures " +
			"are retried through TTL queues (master only) or parked; slave failures are counted and recorded " +
			"in the repair ledger. Any number of replicas may run. See docs/indexer.md. Tuning keys: indexer.* " +
			"and amqp.* (docs/configuration.md); a flag overrides its key only when given.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			model, err := newModel(cfg)
			if err != nil {
				return usageError{err}
			}
			// /healthz answers while the start check waits for the source; /readyz does not.
			ep, stop, err := endpointFor(nil, cfg.Metrics.Listen)
			if err != nil {
				return err
			}
			defer stop()
			if err := startCheck(cmd.Context(), cfg, model.Needs(), cmd.ErrOrStderr(), slog.Default()); err != nil {
				return cleanStop(cmd.Context(), err)
			}
			return runIndexer(cmd.Context(), cfg, ep)
		},
	}
	d := config.Default()
	fl := cmd.Flags()
	fl.String("metrics-listen", d.Metrics.Listen, "host:port for /metrics, /healthz, /readyz; \"\" disables them")
	fl.String("parked-queue", d.AMQP.Parked, "the queue for messages that cannot be written (with reason headers)")
	fl.DurationSlice("retry-delays", d.Indexer.RetryDelays, "retry tier delays; attempt n waits the (n-1)th, the last repeats")
	fl.Int("max-attempts", d.Indexer.MaxAttempts, "writes of one entity to the master before it is parked")
	fl.Int("batch-size", d.Indexer.BatchSize, "row changes per batch (at least one message, at most amqp.prefetch messages)")
	fl.Int("batch-bytes", d.Indexer.BatchBytes, "message bytes per batch")
	fl.Duration("batch-wait", d.Indexer.BatchWait, "longest wait for a batch to fill")
	fl.Int("slave-backlog", d.Indexer.SlaveBacklog, "batches queued per slave before its writes are dropped to the repair ledger")
	fl.Duration("roles-poll", d.Indexer.RolesPoll, "how often cluster roles are re-read from the control schema")
	fl.Duration("stop-timeout", d.Indexer.StopTimeout, "on shutdown, how long slaves may drain their backlog")
	fl.String("index-targets", d.Indexer.IndexTargets, "mapping: write every existing <index>_vN (wye mapping); alias: write the entity's index name as is (indices wye mapping does not manage)")
	fl.Duration("indices-ttl", d.Indexer.IndicesTTL, "how long the <index>_vN write targets of a cluster are reused before they are listed again")
	fl.Duration("targets-ttl", d.Indexer.IndicesTTL, "old name of --indices-ttl")
	fl.MarkDeprecated("targets-ttl", "use --indices-ttl (key indexer.indices_ttl)")
	bindKeys(fl, "metrics-listen", "metrics.listen", "parked-queue", "amqp.parked",
		"retry-delays", "indexer.retry_delays", "max-attempts", "indexer.max_attempts",
		"batch-size", "indexer.batch_size", "batch-bytes", "indexer.batch_bytes", "batch-wait", "indexer.batch_wait",
		"slave-backlog", "indexer.slave_backlog", "roles-poll", "indexer.roles_poll", "stop-timeout", "indexer.stop_timeout",
		"index-targets", "indexer.index_targets", "indices-ttl", "indexer.indices_ttl", "targets-ttl", "indexer.indices_ttl")
	return cmd
}

// runIndexer runs the indexer with cfg.Indexer's knobs, once startCheck passed. Its series and
// readiness go to ep, or to an endpoint of its own on metrics.listen when ep is nil.
func runIndexer(ctx context.Context, cfg *config.Config, ep *metricsEndpoint) error {
	log := slog.Default()
	if len(cfg.Entities) == 0 {
		return usageError{errors.New("indexer: no entities configured")}
	}
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	ep, stopHTTP, err := endpointFor(ep, cfg.Metrics.Listen)
	if err != nil {
		return err
	}
	defer stopHTTP()
	metrics := indexer.NewMetrics(ep.reg)

	src, err := indexersql.Open(cfg.Source.MySQLConfig(), max(4, 2*cfg.Indexer.Consumers*cfg.Indexer.InFlight)) // room for every batch in flight
	if err != nil {
		return err
	}
	defer src.Close()
	store, err := control.Open(ctx, cfg.Control.MySQLConfig())
	if err != nil {
		return err
	}
	defer store.Close()
	x := cfg.Indexer
	writers, err := clusterWriters(cfg, metrics, log)
	if err != nil {
		return err
	}
	roles, err := seedRoles(ctx, cfg, store, x.RolesPoll, log)
	if err != nil {
		return err
	}
	// Reads must come from the server cdc follows (docs/architecture.md, invariant 4).
	followed, err := control.NewFollowed(ctx, store, cfg.CDC.Name, x.RolesPoll, log)
	if err != nil {
		return err
	}
	src.Follow(string(cfg.Source.Flavor), followed.Source)
	fan := indexer.NewStream(indexer.StreamOptions{Clusters: writers, Roles: roles, Ledger: store, Metrics: metrics,
		Logger: log, Backlog: x.SlaveBacklog, BacklogBytes: x.SlaveBacklogBytes, BulkBytes: x.BulkBytes,
		SlaveInFlight: x.SlaveInFlight})
	pipe := indexer.NewPipeline(model, src, fan, indexer.Options{MaxAttempts: x.MaxAttempts,
		ChunkDocs: x.ChunkDocs, ChunkBytes: x.ChunkBytes, BulkBytes: x.BulkBytes})
	// Each consumer takes its own batches, as a replica would: the pipeline, the fan-out and the
	// writers serve them concurrently (docs/indexer.md, "Consumers").
	consumers := make([]*consumer.Consumer, x.Consumers)
	for i := range consumers {
		consumers[i] = consumer.New(consumer.Options{
			URL: cfg.AMQP.URLWithPassword(), Exchange: cfg.AMQP.Exchange, Queue: cfg.AMQP.Queue, Parked: cfg.AMQP.Parked,
			DeliveryLimit: cfg.AMQP.DeliveryLimit, RetryDelays: x.RetryDelays, Prefetch: cfg.AMQP.Prefetch,
			BatchSize: x.BatchSize, BacklogSize: x.BacklogBatchSize, BatchBytes: x.BatchBytes, BatchWait: x.BatchWait, InFlight: x.InFlight, Metrics: metrics, Logger: log,
		}, pipe)
		ep.addReady(consumers[i].Ready)
	}
	master, epoch := roles.Master()
	log.Info("indexer starting", "entities", len(cfg.Entities), "tables", model.Tables(), "master", master, "epoch", epoch,
		"index_targets", x.IndexTargets, "consumers", x.Consumers, "batches_in_flight", x.InFlight, "broker", cfg.AMQP.Host(), "queue", cfg.AMQP.Queue, "parked", cfg.AMQP.Parked, "metrics", cfg.Metrics.Listen)

	// The fan-out outlives the consumer: slaves drain what the last batches queued.
	fanCtx, stopFan := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFan()
	fan.Start(fanCtx)
	var wg sync.WaitGroup
	wg.Go(func() { roles.Run(ctx) })
	wg.Go(func() { followed.Run(ctx) })
	gauges := control.NewGaugeMetrics(ep.reg)
	var names []string
	for _, c := range cfg.Clusters {
		names = append(names, c.Name)
	}
	wg.Go(func() { store.WatchGauges(ctx, gauges, names, control.DefaultGaugesPoll, log) })
	errs := make([]error, len(consumers))
	var running sync.WaitGroup
	for i, c := range consumers {
		running.Go(func() { errs[i] = c.Run(ctx) }) // each retries its sessions until ctx ends
	}
	running.Wait()
	err = errors.Join(errs...)
	wg.Wait()
	stop, cancel := context.WithTimeout(context.Background(), x.StopTimeout)
	defer cancel()
	fan.Stop(stop)
	log.Info("indexer stopped")
	return err
}

// clusterWriters connects every configured cluster and builds its writer. A cluster that does
// not answer now is connected on its first write: a dead cluster must not stop the others.
func clusterWriters(cfg *config.Config, metrics *indexer.Metrics, log *slog.Logger) ([]indexer.ClusterWriter, error) {
	var out []indexer.ClusterWriter
	for _, c := range cfg.Clusters {
		var bulker es.Bulker
		var api mapping.Requester
		client, err := cluster.New(clusterOptions(c))
		var te *cluster.TransportError
		switch {
		case errors.As(err, &te):
			// Until it answers, its writes are retryable failures.
			log.Warn("cluster unreachable at start; will connect on write", "name", c.Name, "role", c.Role, "err", err)
			lazy := &es.Lazy{New: func() (*cluster.Client, error) { return cluster.New(clusterOptions(c)) }}
			bulker, api = lazy, lazy
		case err != nil: // refused credentials, not a search engine, unsupported version
			return nil, fmt.Errorf("connect cluster %s: %w", c.Name, err)
		default:
			log.Info("cluster", "name", c.Name, "role", c.Role, "info", client.Info().String())
			bulker, api = client, client
		}
		var resolver es.IndexResolver = mappingIndices{api}
		if cfg.Indexer.IndexTargets == config.IndexTargetsAlias {
			resolver = nil // mapping management explicitly off: write the configured names
		}
		out = append(out, es.New(es.Options{Name: c.Name, Client: bulker, Timeout: c.Timeouts.Bulk,
			Resolver: resolver, IndicesTTL: cfg.Indexer.IndicesTTL, Metrics: metrics, Logger: log}))
	}
	return out, nil
}

// seedRoles writes the configured roles of clusters the control schema does not know yet and
// returns the polled roles (after a promote the control schema, not the file, names the master).
func seedRoles(ctx context.Context, cfg *config.Config, store *control.Store, poll time.Duration, log *slog.Logger) (*control.Roles, error) {
	seed := map[string]string{}
	var names []string
	for _, c := range cfg.Clusters {
		seed[c.Name] = string(c.Role)
		names = append(names, c.Name)
	}
	if err := store.Seed(ctx, seed); err != nil {
		return nil, err
	}
	return control.NewRoles(ctx, store, names, poll, log)
}

func clusterOptions(c config.Cluster) cluster.Options {
	return cluster.Options{
		Name: c.Name, URLs: c.URLs,
		Username: c.Auth.Username, Password: c.Auth.Password.Reveal(),
		APIKey: c.Auth.APIKey.Reveal(), BearerToken: c.Auth.BearerToken.Reveal(),
		TLS: c.TLS, RequestTimeout: c.Timeouts.Request, BulkTimeout: c.Timeouts.Bulk,
	}
}

// mappingIndices resolves the indices of an entity's alias on one cluster with
// mapping.WriteTargets (docs/mapping.md, "Version bump without downtime"): which one the
// alias points at, and the projection of each index that lacks a field of the others.
// Invariant: it never returns a name that no <name>_vN index carries, so a write can never
// auto-create a dynamic index; an index laid out outside `wye mapping` takes
// indexer.index_targets: alias.
type mappingIndices struct{ api mapping.Requester }

var _ es.IndexResolver = mappingIndices{}

func (m mappingIndices) WriteTargets(ctx context.Context, alias string) ([]es.Target, error) {
	ts, err := mapping.WriteTargets(ctx, m.api, alias)
	if err != nil {
		return nil, err
	}
	out := make([]es.Target, len(ts))
	for i, t := range ts {
		out[i] = es.Target{Name: t.Name, Alias: t.Alias}
		if t.Project != nil {
			out[i].Project = t.Project.Apply
		}
	}
	return out, nil
}

// newModel builds the indexer's entity model of the configured entities.
func newModel(cfg *config.Config) (*indexer.Model, error) {
	return indexer.NewModel(config.EntityDefs(cfg.Entities))
}

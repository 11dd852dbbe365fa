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

type indexerFlags struct {
	metricsListen string
	parked        string
	retryDelays   []time.Duration
	maxAttempts   int
	batchSize     int
	batchBytes    int
	batchWait     time.Duration
	slaveBacklog  int
	rolesPoll     time.Duration
	stopTimeout   time.Duration
	indexTargets  string
	targetsTTL    time.Duration
}

// defaultIndexerFlags are the indexer's defaults, for `wye indexer`'s flags and `wye run`.
func defaultIndexerFlags() indexerFlags {
	return indexerFlags{retryDelays: consumer.DefaultRetryDelays, maxAttempts: 10, batchSize: consumer.DefaultBatchSize,
		batchBytes: 4 << 20, batchWait: 200 * time.Millisecond, slaveBacklog: 64, rolesPoll: 2 * time.Second,
		stopTimeout: 10 * time.Second, indexTargets: "mapping", targetsTTL: 10 * time.Second}
}

func newIndexerCmd(g *globalFlags) *cobra.Command {
	f, d := &indexerFlags{}, defaultIndexerFlags()
	cmd := &cobra.Command{
		Use:   "indexer",
		Short: "Consume change events, denormalize each entity once and write it to every cluster",
		Long: "Consume the change queue in batches, resolve row changes to entity ids, read each entity once " +
			"from the source and send the same versioned _bulk to the master and every slave. Master failures " +
			"are retried through TTL queues (master only) or parked; slave failures are counted and recorded " +
			"in the repair ledger. Any number of replicas may run. See docs/indexer.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g, f.metricsListen)
			if err != nil {
				return err
			}
			return runIndexer(cmd.Context(), cfg, f, nil)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "override metrics.listen (host:port for /metrics, /healthz, /readyz)")
	fl.StringVar(&f.parked, "parked-queue", "", "override amqp.parked, the queue for messages that cannot be written (with reason headers)")
	fl.DurationSliceVar(&f.retryDelays, "retry-delays", d.retryDelays, "retry tier delays; attempt n waits the (n-1)th, the last repeats")
	fl.IntVar(&f.maxAttempts, "max-attempts", d.maxAttempts, "writes of one entity to the master before it is parked")
	fl.IntVar(&f.batchSize, "batch-size", d.batchSize, "row changes per batch (at least one message, at most amqp.prefetch messages)")
	fl.IntVar(&f.batchBytes, "batch-bytes", d.batchBytes, "message bytes per batch")
	fl.DurationVar(&f.batchWait, "batch-wait", d.batchWait, "longest wait for a batch to fill")
	fl.IntVar(&f.slaveBacklog, "slave-backlog", d.slaveBacklog, "batches queued per slave before its writes are dropped to the repair ledger")
	fl.DurationVar(&f.rolesPoll, "roles-poll", d.rolesPoll, "how often cluster roles are re-read from the control schema")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", d.stopTimeout, "on shutdown, how long slaves may drain their backlog")
	fl.StringVar(&f.indexTargets, "index-targets", d.indexTargets, "mapping: write every existing <index>_vN (wye mapping); alias: write the entity's index name as is (indices wye mapping does not manage)")
	fl.DurationVar(&f.targetsTTL, "targets-ttl", d.targetsTTL, "how long the <index>_vN write targets of a cluster are reused before they are listed again")
	return cmd
}

// runIndexer runs the indexer. Its series and readiness go to ep, or to an endpoint of its
// own on metrics.listen when ep is nil.
func runIndexer(ctx context.Context, cfg *config.Config, f *indexerFlags, ep *metricsEndpoint) error {
	log := slog.Default()
	if len(cfg.Entities) == 0 {
		return usageError{errors.New("indexer: no entities configured")}
	}
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	if f.indexTargets != "mapping" && f.indexTargets != "alias" {
		return usageError{fmt.Errorf("--index-targets: want mapping or alias, got %q", f.indexTargets)}
	}
	ep, stopHTTP, err := endpointFor(ep, cfg.Metrics.Listen)
	if err != nil {
		return err
	}
	defer stopHTTP()
	metrics := indexer.NewMetrics(ep.reg)

	src, err := indexersql.Open(cfg.Source.MySQLConfig(), 4)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := checkLinks(ctx, src, model, log); err != nil {
		return err
	}
	store, err := control.Open(ctx, cfg.Control.MySQLConfig())
	if err != nil {
		return err
	}
	defer store.Close()
	writers, err := clusterWriters(cfg, f, metrics, log)
	if err != nil {
		return err
	}
	roles, err := seedRoles(ctx, cfg, store, f.rolesPoll, log)
	if err != nil {
		return err
	}
	fan := indexer.NewStream(indexer.StreamOptions{Clusters: writers, Roles: roles, Ledger: store, Metrics: metrics,
		Logger: log, Backlog: f.slaveBacklog})
	pipe := indexer.NewPipeline(model, src, fan, indexer.Options{MaxAttempts: f.maxAttempts})
	if f.parked == "" {
		f.parked = cfg.AMQP.Parked
	}
	cons := consumer.New(consumer.Options{
		URL: cfg.AMQP.URLWithPassword(), Exchange: cfg.AMQP.Exchange, Queue: cfg.AMQP.Queue, Parked: f.parked,
		RetryDelays: f.retryDelays, Prefetch: cfg.AMQP.Prefetch, BatchSize: f.batchSize, BatchBytes: f.batchBytes,
		BatchWait: f.batchWait, Metrics: metrics, Logger: log,
	}, pipe)

	ep.addReady(cons.Ready)
	log.Info("indexer starting", "entities", len(cfg.Entities), "tables", model.Tables(), "master", roles.Master(),
		"index_targets", f.indexTargets, "broker", cfg.AMQP.Host(), "queue", cfg.AMQP.Queue, "parked", f.parked, "metrics", cfg.Metrics.Listen)

	// The fan-out outlives the consumer: slaves drain what the last batches queued.
	fanCtx, stopFan := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFan()
	fan.Start(fanCtx)
	var wg sync.WaitGroup
	wg.Go(func() { roles.Run(ctx) })
	err = cons.Run(ctx)
	wg.Wait()
	stop, cancel := context.WithTimeout(context.Background(), f.stopTimeout)
	defer cancel()
	fan.Stop(stop)
	log.Info("indexer stopped")
	return err
}

// clusterWriters connects every configured cluster and builds its writer. A cluster that does
// not answer now is connected on its first write: a dead cluster must not stop the others.
func clusterWriters(cfg *config.Config, f *indexerFlags, metrics *indexer.Metrics, log *slog.Logger) ([]indexer.ClusterWriter, error) {
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
		if f.indexTargets == "alias" {
			resolver = nil // mapping management explicitly off: write the configured names
		}
		out = append(out, es.New(es.Options{Name: c.Name, Client: bulker, Timeout: c.Timeouts.Bulk,
			Resolver: resolver, IndicesTTL: f.targetsTTL, Metrics: metrics, Logger: log}))
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
		CAFile: c.TLS.CAFile, InsecureSkipVerify: c.TLS.InsecureSkipVerify,
		RequestTimeout: c.Timeouts.Request,
	}
}

// mappingIndices resolves the indices of an entity's alias on one cluster with
// mapping.WriteIndices (docs/mapping.md, "Version bump without downtime"). Invariant: it never
// returns a name that no <name>_vN index carries, so a write can never auto-create a dynamic
// index; an index laid out outside `wye mapping` takes `--index-targets alias`.
type mappingIndices struct{ api mapping.Requester }

var _ es.IndexResolver = mappingIndices{}

func (m mappingIndices) WriteIndices(ctx context.Context, _, alias string) ([]string, error) {
	return mapping.WriteIndices(ctx, m.api, alias)
}

// checkLinks refuses a link column the source does not have, and warns about each one whose
// collation is not binary (docs/indexer.md, "Link columns"). A source that cannot be asked now
// is not fatal: batches wait for it anyway.
func checkLinks(ctx context.Context, src *indexersql.Source, model *indexer.Model, log *slog.Logger) error {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	loose, err := src.LooseLinks(qctx, model.LinkColumns())
	switch {
	case errors.Is(err, indexersql.ErrNoColumn):
		return usageError{err}
	case err != nil:
		log.Warn("could not check the collations of the link columns", "err", err)
		return nil
	}
	for _, l := range loose {
		log.Warn("link column with a non-binary collation: wye matches its values byte for byte, MySQL by collation; "+
			"values that differ only in case, accents or trailing spaces would not join (use a _bin collation, or keep the values canonical)",
			"entity_field", l.Path, "column", l.Table+"."+l.Column, "collation", l.Collation)
	}
	return nil
}

// newModel builds the indexer's entity model of the configured entities.
func newModel(cfg *config.Config) (*indexer.Model, error) {
	return indexer.NewModel(config.EntityDefs(cfg.Entities))
}

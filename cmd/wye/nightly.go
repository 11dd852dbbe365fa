package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/indexer/es"
	indexersql "github.com/wyehq/wye/indexer/sql"
	"github.com/wyehq/wye/mapping"
	"github.com/wyehq/wye/nightly"
)

func init() { subcommands = append(subcommands, newNightlyCmd) }

// nightlyFailed is a run that finished with some cluster not equal to MySQL: exit 1.
type nightlyFailed struct{ status string }

func (e nightlyFailed) Error() string {
	return "nightly: " + e.status + ": some cluster is not equal to MySQL (see the report)"
}
func (e nightlyFailed) ExitCode() int { return exitFailure }

func newNightlyCmd(g *globalFlags) *cobra.Command {
	var entities, clusters []string
	var f nightlyFlags
	cmd := &cobra.Command{
		Use:   "nightly",
		Short: "Resync every cluster from consistent MySQL snapshots: load, repair drift, remove orphans, report",
		Long: `nightly reads each entity from MySQL in key order, a chunk at a time, each chunk in its own
consistent snapshot written with the version of that snapshot's binlog position (a stream write
made later always wins); compares each chunk with every cluster's copies and writes only what is
missing or differs; then scans each cluster's ids and deletes, with a version, the documents
MySQL no longer has (at most nightly.max_delete_share of an index without --allow-mass-delete).
The first run on an existing database is the initial load. A killed run resumes where it stopped.
It writes a small JSON report (--report) and the ids it wrote, deleted or failed beside it
(<report>.ids.gz). Exit 0: every cluster equals MySQL; 1: some cluster failed; 2: usage or
configuration. See docs/nightly.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			f.entities, f.clusters = entities, clusters
			return runNightly(cmd.Context(), cfg, f, cmd.ErrOrStderr(), cmd.OutOrStdout())
		},
	}
	d := config.Default()
	fl := cmd.Flags()
	fl.StringSliceVar(&entities, "entities", nil, "entities to resync (default: all)")
	fl.StringSliceVar(&clusters, "clusters", nil, "clusters to resync (default: all; only a run of all clusters resolves cdc's resync marks)")
	fl.BoolVar(&f.intoNewIndex, "into-new-index", false, "during a mapping bump: compare with and write only the newest <index>_vN (then `wye mapping switch`)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "compare and report; write and delete nothing")
	fl.BoolVar(&f.rewriteAll, "rewrite-all", false, "write every document, equal or not (versions still protect newer stream writes)")
	fl.BoolVar(&f.allowMassDelete, "allow-mass-delete", false, "delete orphans even when they are more than nightly.max_delete_share of an index")
	fl.BoolVar(&f.resume, "resume", true, "resume the unfinished run of the same scope if there is one; --resume=false starts over")
	fl.Int("chunk-rows", d.Nightly.ChunkRows, "root rows per chunk (one snapshot, one _mget and one _bulk per cluster)")
	fl.Float64("rows-per-second", d.Nightly.RowsPerSecond, "limit of root rows read per second (0: none)")
	fl.Float64("bytes-per-second", d.Nightly.BytesPerSecond, "limit of bulk bytes written per second, all clusters (0: none)")
	fl.Float64("max-delete-share", d.Nightly.MaxDeleteShare, "share of an index whose orphans may be deleted without --allow-mass-delete")
	fl.String("report", d.Nightly.Report, "path of the report JSON; the id lists go beside it (.ids.gz)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the run (go tool pprof) to this file")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "host:port serving the run's /metrics while it runs (default: none)")
	bindKeys(fl, "chunk-rows", "nightly.chunk_rows", "rows-per-second", "nightly.rows_per_second",
		"bytes-per-second", "nightly.bytes_per_second", "max-delete-share", "nightly.max_delete_share",
		"report", "nightly.report")
	return cmd
}

type nightlyFlags struct {
	entities, clusters                                        []string
	intoNewIndex, dryRun, rewriteAll, allowMassDelete, resume bool
	metricsListen, cpuProfile                                 string
}

func runNightly(ctx context.Context, cfg *config.Config, f nightlyFlags, stderr, stdout io.Writer) error {
	log := slog.Default()
	if len(cfg.Entities) == 0 {
		return usageError{errors.New("nightly: no entities configured")}
	}
	stopProfile, err := cpuProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	for _, name := range f.entities {
		if model.Entity(name) == nil {
			return usageError{fmt.Errorf("--entities: %q is not a configured entity", name)}
		}
	}
	var picked []config.Cluster
	for _, c := range cfg.Clusters {
		if len(f.clusters) == 0 || slices.Contains(f.clusters, c.Name) {
			picked = append(picked, c)
		}
	}
	for _, name := range f.clusters {
		if !slices.ContainsFunc(cfg.Clusters, func(c config.Cluster) bool { return c.Name == name }) {
			return usageError{fmt.Errorf("--clusters: %q is not a configured cluster", name)}
		}
	}
	if f.intoNewIndex && cfg.Indexer.IndexTargets == config.IndexTargetsAlias {
		return usageError{errors.New("--into-new-index needs indices managed by `wye mapping` (indexer.index_targets: mapping)")}
	}

	store, err := control.Open(ctx, cfg.Control.MySQLConfig())
	if err != nil {
		return err
	}
	defer store.Close()
	lock, err := store.Nightly(ctx)
	if err != nil {
		return err
	}
	defer lock.Release()

	src, err := indexersql.Open(cfg.Source.MySQLConfig(), 4)
	if err != nil {
		return err
	}
	defer src.Close()
	src.Follow(string(cfg.Source.Flavor), nil)
	if err := checkSourceNeeds(ctx, cfg, model.Needs(), stderr, log); err != nil {
		return err
	}
	source := &snapshotSource{src: src, cdc: store.CDC(control.CDCOptions{Name: cfg.CDC.Name}), name: cfg.CDC.Name}

	metrics := nightly.NewMetrics(nil)
	if f.metricsListen != "" {
		ep := newMetricsEndpoint(1)
		metrics = nightly.NewMetrics(ep.reg)
		stop, err := serveMetrics(f.metricsListen, ep.reg, ep.Ready)
		if err != nil {
			return err
		}
		defer stop()
	}
	var term io.Writer
	if fi, ok := stderr.(*os.File); ok && isTerminal(fi) {
		term = stderr
	}
	n := cfg.Nightly
	opts := nightly.Options{
		Model: model, Source: source, Clusters: nightlyClusters(cfg, picked, f.intoNewIndex, log), Store: lock,
		Entities: f.entities, AllClusters: len(picked) == len(cfg.Clusters),
		ChunkRows: n.ChunkRows, ScanPage: n.ScanPage, RowsPerSecond: n.RowsPerSecond, BytesPerSecond: n.BytesPerSecond,
		MaxDeleteShare: n.MaxDeleteShare, AllowMassDelete: f.allowMassDelete, DryRun: f.dryRun, RewriteAll: f.rewriteAll,
		IntoNewIndex: f.intoNewIndex, NoResume: !f.resume, Report: n.Report, Terminal: term, Metrics: metrics, Logger: log,
	}
	log.Info("nightly starting", "entities", cmpOr(f.entities, "all"), "clusters", len(picked), "dry_run", f.dryRun,
		"into_new_index", f.intoNewIndex, "report", n.Report)
	rep, err := nightly.Run(ctx, opts)
	if rep != nil {
		fmt.Fprint(stdout, rep.Summary())
		if len(rep.IDsFiles) > 0 {
			fmt.Fprintf(stdout, "report: %s  ids: %s\n", n.Report, strings.Join(rep.IDsFiles, ", "))
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("nightly: interrupted; its progress is saved and the next run resumes it: %w", err)
		}
		return err
	}
	if rep.Status != control.RunEqual {
		return nightlyFailed{rep.Status}
	}
	return nil
}

func cmpOr(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return strings.Join(list, ",")
}

// nightlyClusters connects the clusters of the run. A cluster that cannot be reached is still
// in the run: every entity reports it failed, and the others go on.
func nightlyClusters(cfg *config.Config, picked []config.Cluster, intoNew bool, log *slog.Logger) []nightly.Cluster {
	var out []nightly.Cluster
	for _, c := range picked {
		client, err := cluster.New(clusterOptions(c))
		if err != nil {
			log.Error("cluster unreachable: the run reports it failed and goes on with the others", "cluster", c.Name, "err", err)
			// Not a retryable error: the run does not wait for a cluster it could not connect.
			failed := fmt.Errorf("cluster %s unreachable at start: %v", c.Name, err)
			out = append(out, nightly.Cluster{Name: c.Name,
				Index: func(context.Context, string) (string, error) { return "", failed }})
			continue
		}
		log.Info("cluster", "name", c.Name, "info", client.Info().String())
		var resolver es.IndexResolver = mappingIndices{client}
		index := func(ctx context.Context, alias string) (string, error) { return alias, nil }
		switch {
		case cfg.Indexer.IndexTargets == config.IndexTargetsAlias:
			resolver = nil
		case intoNew:
			resolver = newestIndex{client}
			index = newestIndex{client}.newest
		}
		w := es.New(es.Options{Name: c.Name, Client: client, Timeout: c.Timeouts.Bulk, Resolver: resolver,
			IndicesTTL: cfg.Indexer.IndicesTTL, Metrics: indexer.NewMetrics(nil), Logger: log})
		out = append(out, nightly.Cluster{Name: c.Name, Reader: client, Writer: w, Index: index})
	}
	return out
}

// newestIndex resolves an alias to its newest <alias>_vN only: a backfill during a mapping bump
// (--into-new-index) compares with and writes the new index alone.
type newestIndex struct{ api mapping.Requester }

func (n newestIndex) WriteTargets(ctx context.Context, alias string) ([]es.Target, error) {
	name, err := n.newest(ctx, alias)
	if err != nil {
		return nil, err
	}
	return []es.Target{{Name: name}}, nil // alone: it decides
}

func (n newestIndex) newest(ctx context.Context, alias string) (string, error) {
	all, err := mapping.WriteIndices(ctx, n.api, alias)
	if err != nil {
		return "", err
	}
	return all[len(all)-1], nil
}

// snapshotSource gives each snapshot the version of its binlog position in the epoch cdc
// writes under now (docs/architecture.md, invariant 2): read from cdc's checkpoint at every
// snapshot, so a source change during the run is seen.
type snapshotSource struct {
	src  *indexersql.Source
	cdc  *control.CDC
	name string
}

func (s *snapshotSource) Estimate(ctx context.Context, table string) (int64, error) {
	return s.src.Estimate(ctx, table)
}

func (s *snapshotSource) Snapshot(ctx context.Context) (indexer.View, int64, error) {
	v, snap, err := s.src.Snapshot(ctx)
	if err != nil {
		return nil, 0, err
	}
	epoch, err := s.epoch(ctx, snap)
	if err == nil {
		var ver cdc.Version
		if ver, err = cdc.VersionAt(epoch, snap.File, snap.Pos); err == nil {
			return v, int64(ver), nil
		}
	}
	v.Close()
	return nil, 0, err
}

// epoch is the epoch of cdc's checkpoint when it follows the server the snapshot reads; without
// a checkpoint, the one a reader would start with here (the epoch floor).
func (s *snapshotSource) epoch(ctx context.Context, snap indexersql.Snapshot) (uint32, error) {
	cp, ok, err := s.cdc.Load(ctx, s.name)
	if err != nil {
		return 0, &indexer.SourceError{Err: err}
	}
	if ok {
		if cp.SourceID != snap.Server {
			return 0, &indexer.SourceError{Permanent: true, Err: fmt.Errorf(
				"the snapshot reads server %q but cdc %q follows %q: a resync must read the server cdc follows (source.host)",
				snap.Server, s.name, cp.SourceID)}
		}
		return cp.Epoch, nil
	}
	floor, ok, err := s.cdc.Floor(ctx)
	if err != nil {
		return 0, &indexer.SourceError{Err: err}
	}
	if !ok {
		return 0, &indexer.SourceError{Permanent: true, Err: fmt.Errorf(
			"no cdc checkpoint %q and no epoch floor in the control schema: start `wye cdc` (or `wye run`) once first; "+
				"the resync writes with versions in cdc's epoch so that the stream's later writes win", s.name)}
	}
	return cdc.FloorEpoch(floor, snap.Server, cdc.Position{File: snap.File, Pos: snap.Pos})
}

// isTerminal reports whether f is a character device (a terminal, not a file or a pipe).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

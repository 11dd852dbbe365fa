package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/control"
	indexersql "github.com/wyehq/wye/indexer/sql"
	"github.com/wyehq/wye/repair"
)

func init() { subcommands = append(subcommands, newRepairCmd) }

// repairFailed is a repair that left some entries pending: exit 1.
type repairFailed struct{}

func (repairFailed) Error() string {
	return "repair: some ledger entries could not be repaired and stay pending (see the summary)"
}
func (repairFailed) ExitCode() int { return exitFailure }

func newRepairCmd(g *globalFlags) *cobra.Command {
	var all, dryRun bool
	var rate string
	var page int
	cmd := &cobra.Command{
		Use:   "repair <cluster> | --all",
		Short: "Re-index exactly the ids a cluster's repair ledger holds, verify them, mark them repaired",
		Long: `repair reads the cluster's pending repair-ledger entries (the writes a slave missed), reads
each id again from MySQL in a consistent snapshot and writes it with the version of that
snapshot's binlog position in cdc's epoch, as the nightly resync does (a row now gone becomes a
versioned delete; a stream write made later always wins). It then fetches the documents back
(_mget) and marks an entry repaired only when the cluster holds the written version or a newer
one, and only if no newer miss was recorded meanwhile. --all repairs every configured cluster
with pending entries (the master has none: its failed writes are retried and parked, never
ledgered; one it has dates from before a promote). Exit 0: every entry repaired (or nothing to
do); 1: some entries stay pending; 2: usage or configuration. See docs/operations.md.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return usageError{errors.New("repair: name one cluster, or --all")}
			}
			perSecond, err := parseRate(rate)
			if err != nil {
				return usageError{err}
			}
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			var names []string
			if !all {
				names = args
			}
			return runRepair(cmd.Context(), cfg, names, repair.Options{Rate: perSecond, Page: page, DryRun: dryRun},
				cmd.ErrOrStderr(), cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&all, "all", false, "repair every configured cluster")
	fl.BoolVar(&dryRun, "dry-run", false, "read the ledger and the source, write and mark nothing")
	fl.StringVar(&rate, "rate", strconv.Itoa(repair.DefaultRate)+"/s", "ledger entries repaired per second, at most (N or N/s; 0: no limit)")
	fl.IntVar(&page, "page", repair.DefaultPage, "ledger entries per page: one snapshot, one _bulk and one _mget")
	return cmd
}

// parseRate reads "N" or "N/s"; 0 means no limit (a negative Rate for repair.Options).
func parseRate(s string) (float64, error) {
	n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--rate: %q: want a number of ids per second, like 500/s (0: no limit)", s)
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}

func runRepair(ctx context.Context, cfg *config.Config, names []string, opts repair.Options, stderr, stdout io.Writer) error {
	log := slog.Default()
	if len(cfg.Entities) == 0 {
		return usageError{errors.New("repair: no entities configured")}
	}
	if opts.Page < 1 {
		return usageError{fmt.Errorf("--page: %d: want 1 or more", opts.Page)}
	}
	var picked []config.Cluster
	for _, name := range names {
		i := slices.IndexFunc(cfg.Clusters, func(c config.Cluster) bool { return c.Name == name })
		if i < 0 {
			return usageError{fmt.Errorf("repair: %q is not a configured cluster", name)}
		}
		picked = append(picked, cfg.Clusters[i])
	}
	if len(names) == 0 {
		picked = cfg.Clusters
	}
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	opts.Model, opts.Logger = model, log
	if fi, ok := stderr.(*os.File); ok && isTerminal(fi) {
		opts.Terminal = stderr
	}
	rep, err := repairClusters(ctx, cfg, picked, opts)
	if rep != nil {
		fmt.Fprint(stdout, rep.Summary())
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return repairFailed{}
	}
	return nil
}

// repairClusters repairs the ledgers of picked with opts (its Model and Logger set): the same
// writers, resolvers and snapshot versions as the nightly resync. `wye promote --repair-first`
// repairs its target with it too.
func repairClusters(ctx context.Context, cfg *config.Config, picked []config.Cluster, opts repair.Options) (*repair.Report, error) {
	store, src, closeAll, err := openStateAndSource(ctx, cfg, 2)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	for _, c := range nightlyClusters(cfg, picked, false, opts.Logger) {
		rc := repair.Cluster{Name: c.Name, Reader: c.Reader, Writer: c.Writer}
		if c.Writer == nil {
			_, rc.Err = c.Index(ctx, "")
		}
		opts.Clusters = append(opts.Clusters, rc)
	}
	opts.Ledger = store
	opts.Source = &snapshotSource{src: src, cdc: store.CDC(control.CDCOptions{Name: cfg.CDC.Name}), name: cfg.CDC.Name}
	return repair.Run(ctx, opts)
}

// openStateAndSource opens the control schema and a pool of conns connections to the source;
// closeAll closes both.
func openStateAndSource(ctx context.Context, cfg *config.Config, conns int) (*control.Store, *indexersql.Source, func(), error) {
	store, err := control.Open(ctx, cfg.Control.MySQLConfig())
	if err != nil {
		return nil, nil, nil, err
	}
	src, err := indexersql.Open(cfg.Source.MySQLConfig(), conns)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	src.Follow(string(cfg.Source.Flavor), nil)
	return store, src, func() { src.Close(); store.Close() }, nil
}

package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/config"
)

func init() { subcommands = append(subcommands, newRunCmd) }

// newRunCmd is `wye run`: the binlog reader and one indexer in one process, for a single
// machine (the demo, a laptop). Production runs `wye cdc` and several `wye indexer`.
func newRunCmd(g *globalFlags) *cobra.Command {
	var cpuProfilePath string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run cdc and the indexer in one process (single machine)",
		Long: "Run the binlog reader (wye cdc) and one indexer (wye indexer) in one process, tuned by the " +
			"same keys (cdc.*, indexer.*, amqp.*). cdc follows every table the entities read, and " +
			"cdc.tables. /metrics on metrics.listen serves both (wye_cdc_*, wye_indexer_*); /readyz is " +
			"ready when both are.",
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
			// The end-to-end benchmark (e2e/e2e_bench_test.go) profiles each phase this way.
			stopProfile, err := cpuProfile(cpuProfilePath)
			if err != nil {
				return err
			}
			defer stopProfile()
			// One endpoint for both: wye_cdc_* and wye_indexer_* series; ready when both are.
			ep := newMetricsEndpoint(2)
			stop, err := serveMetrics(cfg.Metrics.Listen, ep.reg, ep.Ready)
			if err != nil {
				return err
			}
			defer stop()
			// Before cdc publishes or the indexer consumes anything.
			if err := startCheck(cmd.Context(), cfg, model.Needs(), cmd.ErrOrStderr(), slog.Default()); err != nil {
				return cleanStop(cmd.Context(), err)
			}

			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			// Either one ending stops the other: a half-running pipeline only hides the fault.
			wg.Go(func() { defer cancel(); errs[0] = runCDC(ctx, cfg, ep) })
			wg.Go(func() { defer cancel(); errs[1] = runIndexer(ctx, cfg, ep) })
			wg.Wait()
			return errors.Join(errs...)
		},
	}
	d := config.Default()
	cmd.Flags().String("name", d.CDC.Name, "reader name: checkpoint row and leader lock wye.<control database>.cdc.<name>")
	cmd.Flags().String("metrics-listen", d.Metrics.Listen, "host:port for /metrics, /healthz, /readyz; \"\" disables them")
	cmd.Flags().StringVar(&cpuProfilePath, "cpuprofile", "", "write a CPU profile of the whole run (go tool pprof) to this file")
	bindKeys(cmd.Flags(), "name", "cdc.name", "metrics-listen", "metrics.listen")
	return cmd
}

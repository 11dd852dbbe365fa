package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/indexer/rabbit"
)

func init() { subcommands = append(subcommands, newRunCmd) }

// newRunCmd is `wye run`: the binlog reader and one indexer in one process, for a single
// machine (the demo, a laptop). Production runs `wye cdc` and several `wye indexer`.
func newRunCmd(g *globalFlags) *cobra.Command {
	var name, metricsListen string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run cdc and the indexer in one process (single machine)",
		Long: "Run the binlog reader (wye cdc) and one indexer (wye indexer) in one process with their " +
			"defaults. cdc follows every table the entities read. /metrics, /healthz and /readyz on " +
			"metrics.listen serve the indexer; the reader's own metrics are only served by `wye cdc`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g, metricsListen)
			if err != nil {
				return err
			}
			model, err := indexer.NewModel(cfg.Entities)
			if err != nil {
				return usageError{err}
			}
			// Integration point: runCDC serves its metrics on metrics.listen too; until it
			// takes a shared registry, the reader here runs without an endpoint.
			cdcCfg := *cfg
			cdcCfg.Metrics.Listen = ""
			cf := &cdcFlags{name: name, tables: model.Tables(), window: 1024, deliveryLimit: 10, checkpoint: 200 * time.Millisecond}
			xf := &indexerFlags{parked: cfg.AMQP.Parked, retryDelays: rabbit.DefaultRetryDelays, maxAttempts: 10,
				batchSize: 256, batchBytes: 4 << 20, batchWait: 200 * time.Millisecond, slaveBacklog: 64,
				rolesPoll: 2 * time.Second, stopTimeout: 10 * time.Second, indexTargets: "mapping", targetsTTL: 10 * time.Second}

			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			// Either one ending stops the other: a half-running pipeline only hides the fault.
			wg.Go(func() { defer cancel(); errs[0] = runCDC(ctx, &cdcCfg, cf) })
			wg.Go(func() { defer cancel(); errs[1] = runIndexer(ctx, cfg, xf) })
			wg.Wait()
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&name, "name", envOr("WYE_CDC_NAME", "default"), "reader name: checkpoint row and leader lock (env WYE_CDC_NAME)")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "override metrics.listen")
	return cmd
}

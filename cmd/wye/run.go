package main

import (
	"context"
	"errors"
	"sync"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/indexer"
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
			cf, xf := defaultCDCFlags(), defaultIndexerFlags()
			cf.name, cf.tables = name, model.Tables()

			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			// Either one ending stops the other: a half-running pipeline only hides the fault.
			wg.Go(func() { defer cancel(); errs[0] = runCDC(ctx, &cdcCfg, &cf) })
			wg.Go(func() { defer cancel(); errs[1] = runIndexer(ctx, cfg, &xf) })
			wg.Wait()
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&name, "name", defaultCDCFlags().name, "reader name: checkpoint row and leader lock (env WYE_CDC_NAME)")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "override metrics.listen")
	return cmd
}

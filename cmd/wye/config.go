package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/indexer"
	indexersql "github.com/wyehq/wye/indexer/sql"
)

func init() { subcommands = append(subcommands, newConfigCmd) }

// newConfigCmd is `wye config check [--print]`: load and validate the configuration offline
// (no server is contacted) and optionally print it resolved, with secrets redacted.
func newConfigCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration",
		Args:  cobra.NoArgs,
	}
	var print, online bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration file without contacting any server (--online: against the source)",
		Long: "Validate the configuration file, WYE_* environment overrides and secret references " +
			"without contacting any server. Prints one line per fault and exits 2 if there is any. " +
			"--online then checks the entities against the source, as `wye indexer` and `wye run` do at start: " +
			"every table (a view is refused), column, link column and where predicate, all faults at once, " +
			"and warns about entities that read every column. " +
			"--print shows every key with its value, defaults included (docs/configuration.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := checkConfig(cmd, g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if online {
				if err := checkOnline(cmd.Context(), cfg, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if print {
				b, err := cfg.YAML()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), summary(g.configFile, cfg))
			return err
		},
	}
	check.Flags().BoolVar(&online, "online", false, "also check the entities against the source: tables, views, columns, where predicates (one connection, read only)")
	check.Flags().BoolVar(&print, "print", false, "print the resolved configuration as YAML, every key and default included (secrets shown as ***)")
	cmd.AddCommand(check)
	return cmd
}

// checkConfig loads g.configFile with the overrides of the flags of cmd that were given (see
// bindKeys). Faults are written to faults, one per line; the returned usageError only counts
// them, so exitCode's single "wye: ..." line does not repeat them.
func checkConfig(cmd *cobra.Command, g *globalFlags, faults io.Writer) (*config.Config, error) {
	return loadConfigTo(cmd, g, faults, config.NeedAll)
}

// loadConfigTo loads g.configFile with the overrides of the flags of cmd that were given
// (see bindKeys) and the secrets of need. Faults are written to faults, one per line; the
// returned usageError only counts them, so exitCode's single "wye: ..." line does not
// repeat them.
func loadConfigTo(cmd *cobra.Command, g *globalFlags, faults io.Writer, need config.Need) (*config.Config, error) {
	cfg, err := config.Load(g.configFile, config.Options{Overrides: flagOverrides(cmd), Need: need})
	var errs config.Errors
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			fmt.Fprintln(faults, e)
		}
		return nil, usageError{fmt.Errorf("%s: invalid configuration: %d %s", g.configFile, len(errs), plural(len(errs), "fault"))}
	case err != nil:
		return nil, usageError{err}
	}
	return cfg, nil
}

// checkOnline is `config check --online`: the source check of startCheck, tried once. Faults
// and warnings are written to out, one per line; a fault is a usageError, a source that cannot
// be asked a runtime failure.
func checkOnline(ctx context.Context, cfg *config.Config, out io.Writer) error {
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	src, err := indexersql.Open(cfg.Source.MySQLConfig(), 1)
	if err != nil {
		return usageError{err}
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(ctx, startCheckTimeout)
	defer cancel()
	found, err := src.Check(ctx, model.Needs())
	if err != nil {
		return fmt.Errorf("check the entities against source %s as user %q: %w", cfg.Source.Addr(), cfg.Source.User, err)
	}
	return faultsError(found, out, func(f indexer.Fault) { fmt.Fprintln(out, "warning: "+f.Error()) })
}

// loadConfig loads the configuration for a command that runs: like `config check`, one line
// per fault on stderr and exit 2.
func loadConfig(cmd *cobra.Command, g *globalFlags) (*config.Config, error) {
	return checkConfig(cmd, g, cmd.ErrOrStderr())
}

// summary is the one line `config check` prints for a valid configuration.
func summary(file string, c *config.Config) string {
	master, _ := c.Master()
	var slaves []string
	for _, cl := range c.Clusters {
		if cl.Role != config.RoleMaster {
			slaves = append(slaves, cl.Name)
		}
	}
	roles := "master: " + master.Name
	if len(slaves) > 0 {
		roles += "; slaves: " + strings.Join(slaves, ", ")
	}
	return fmt.Sprintf("ok: %s: %d %s (%s), %d %s, source %s %s (server_id %d), control %s/%s, amqp %s",
		file, len(c.Clusters), plural(len(c.Clusters), "cluster"), roles,
		len(c.Entities), plural(len(c.Entities), "entity"),
		c.Source.Flavor, c.Source.Addr(), c.Source.ServerID,
		c.Control.Addr(), c.Control.Database, c.AMQP.Host())
}

func plural(n int, word string) string {
	switch {
	case n == 1:
		return word
	case strings.HasSuffix(word, "y"):
		return strings.TrimSuffix(word, "y") + "ies"
	}
	return word + "s"
}

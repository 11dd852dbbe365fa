package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/mapping"
)

func init() { subcommands = append(subcommands, newMappingCmd) }

// mappingFlags are the options of one invocation; the settings of the mapping files (where
// they are, the index-name prefix, the version field) are the keys mapping.*, which
// --mappings, --index-prefix and --version-field override.
type mappingFlags struct {
	clusters []string
	json     bool
	dryRun   bool
	source   bool // read the entities' columns from the source (information_schema)
}

// driftError is a check that found drift or an incomplete step: exit 1, after the plan or
// the results were printed.
type driftError struct{ msg string }

func (e driftError) Error() string { return e.msg }
func (e driftError) ExitCode() int { return exitFailure }

// newMappingCmd is `wye mapping plan|apply|verify|switch|gc|skeleton`.
func newMappingCmd(g *globalFlags) *cobra.Command {
	f := &mappingFlags{}
	cmd := &cobra.Command{
		Use:   "mapping",
		Short: "Explicit, versioned index mappings on every cluster: plan, apply, verify, switch, gc",
		Long: "Compare the mapping files (mappings/<index>/<vN>/) with every configured cluster and bring\n" +
			"them in line. Each cluster runs the version its configuration names (clusters[].mapping);\n" +
			"concrete indices are <prefix><index>_<vN>, the application queries the alias <prefix><index>.\n" +
			"See docs/mapping.md.",
		Args: cobra.NoArgs,
	}
	d := config.Default()
	pf := cmd.PersistentFlags()
	pf.String("mappings", d.Mapping.Dir, "directory of the mapping files")
	pf.String("index-prefix", d.Mapping.IndexPrefix, "prefix of every managed index and alias name")
	pf.String("version-field", d.Mapping.VersionField, "document field holding the source version, mapped as long")
	bindKeys(pf, "mappings", "mapping.dir", "index-prefix", "mapping.index_prefix", "version-field", "mapping.version_field")
	pf.StringSliceVar(&f.clusters, "cluster", nil, "only these clusters (repeatable; default all)")
	pf.BoolVar(&f.json, "json", false, "print JSON instead of a table")
	pf.BoolVar(&f.source, "source", false, "read the entities' columns from the source's information_schema, so that the fields "+
		"of tables whose columns are omitted are checked too (needs the source's secret)")

	cmd.AddCommand(
		&cobra.Command{
			Use:   "plan",
			Short: "Show per cluster what apply would do, and any drift",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runMapping(cmd, g, f, func(ctx context.Context, w io.Writer, s *mappingSession) error {
					p := mapping.MakePlan(ctx, s.set, s.targets, s.opts)
					if err := writePlan(w, f, p); err != nil {
						return err
					}
					// Drift is a finding, not a failure of plan: verify is the gate.
					if n := p.Failures(); n > 0 {
						return driftError{fmt.Sprintf("mapping plan: %d index %s could not be planned", n, plural(n, "family"))}
					}
					return nil
				})
			},
		},
		&cobra.Command{
			Use:   "verify",
			Short: "Exit 1 unless every cluster matches its mapping version (drift, missing index or alias, unreachable)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runMapping(cmd, g, f, func(ctx context.Context, w io.Writer, s *mappingSession) error {
					p := mapping.MakePlan(ctx, s.set, s.targets, s.opts)
					if err := writePlan(w, f, p); err != nil {
						return err
					}
					if n := p.Problems(); n > 0 {
						return driftError{fmt.Sprintf("mapping verify: %d index %s not as declared", n, plural(n, "family"))}
					}
					return nil
				})
			},
		},
		withDryRun(f, &cobra.Command{
			Use:   "apply",
			Short: "Create missing indices and aliases (idempotent); never touches a drifted index",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runMapping(cmd, g, f, func(ctx context.Context, w io.Writer, s *mappingSession) error {
					p := mapping.MakePlan(ctx, s.set, s.targets, s.opts)
					rs := mapping.Apply(ctx, p, s.targets, f.dryRun)
					if f.json {
						if err := mapping.WriteJSON(w, map[string]any{"plan": p, "results": rs}); err != nil {
							return err
						}
					} else {
						if err := p.WriteTable(w); err != nil {
							return err
						}
						fmt.Fprintln(w)
						if err := mapping.WriteResults(w, rs); err != nil {
							return err
						}
					}
					return resultsError("mapping apply", p, rs)
				})
			},
		}),
		stepsCmd(g, f, "switch", "Move each alias to its cluster's configured version in one atomic call; refuses while the new index has fewer documents", mapping.Switch),
		stepsCmd(g, f, "gc", "Delete the versioned indices an alias no longer points at (after switch)", mapping.GC),
		newSkeletonCmd(g),
	)
	return cmd
}

// newSkeletonCmd is `wye mapping skeleton ENTITY [--out DIR]`: a strict mapping generated
// from the entity and its columns' types (information_schema), to edit before it is
// published (docs/mapping.md, "Start from a skeleton").
func newSkeletonCmd(g *globalFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "skeleton ENTITY",
		Short: "Print a strict mapping.json for ENTITY, from its fields and the source's column types",
		Long: "Generate mappings/<index>/<vN>/mapping.json for ENTITY: every field its documents carry, typed from " +
			"information_schema.COLUMNS by the rules of docs/mapping.md, dynamic strict, the version field long. " +
			"Reads the source (its secrets only); contacts no cluster. --out DIR writes DIR/mapping.json " +
			"(DIR is a version directory, like mappings/programs/v2) and refuses to overwrite it.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfigNeeding(cmd, g, config.NeedSource)
			if err != nil {
				return err
			}
			doc, err := entityDocument(cmd.Context(), cfg, args[0])
			if err != nil {
				return err
			}
			b, err := mapping.SkeletonJSON(doc)
			if err != nil {
				return err
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("write skeleton: %w", err)
			}
			path := filepath.Join(out, "mapping.json")
			fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return fmt.Errorf("write skeleton (a published version is frozen: write a new vN): %w", err)
			}
			if _, err := fh.Write(b); err != nil {
				fh.Close()
				return fmt.Errorf("write skeleton: %w", err)
			}
			if err := fh.Close(); err != nil {
				return fmt.Errorf("write skeleton: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: entity %s, index %s\n", path, doc.Entity, doc.Index)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "version directory to write mapping.json in (default: print it)")
	return cmd
}

// stepsCmd is a subcommand that runs one mapping operation over every target, prints its
// results and exits 1 when a step failed, was refused or was skipped.
func stepsCmd(g *globalFlags, f *mappingFlags, use, short string,
	run func(context.Context, *mapping.Set, []mapping.Cluster, mapping.Options, bool) []mapping.Result) *cobra.Command {
	return withDryRun(f, &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMapping(cmd, g, f, func(ctx context.Context, w io.Writer, s *mappingSession) error {
				rs := run(ctx, s.set, s.targets, s.opts, f.dryRun)
				if err := writeResults(w, f, rs); err != nil {
					return err
				}
				return resultsError("mapping "+use, nil, rs)
			})
		},
	})
}

func withDryRun(f *mappingFlags, c *cobra.Command) *cobra.Command {
	c.Flags().BoolVar(&f.dryRun, "dry-run", false, "show what would be done, change nothing")
	return c
}

func writePlan(w io.Writer, f *mappingFlags, p *mapping.Plan) error {
	if f.json {
		return mapping.WriteJSON(w, p)
	}
	return p.WriteTable(w)
}

func writeResults(w io.Writer, f *mappingFlags, rs []mapping.Result) error {
	if f.json {
		if rs == nil {
			rs = []mapping.Result{}
		}
		return mapping.WriteJSON(w, rs)
	}
	return mapping.WriteResults(w, rs)
}

func resultsError(what string, p *mapping.Plan, rs []mapping.Result) error {
	switch {
	case mapping.Incomplete(rs):
		return driftError{what + ": some steps failed, were refused or skipped (see above)"}
	case p != nil && p.HasDrift():
		return driftError{what + ": drift found (see above)"}
	case p != nil && p.Unmapped() > 0:
		return driftError{what + ": the entities write fields the mappings lack (see above)"}
	}
	return nil
}

// mappingSession is what every mapping subcommand works on.
type mappingSession struct {
	set     *mapping.Set
	targets []mapping.Cluster
	opts    mapping.Options
}

// runMapping loads the configuration and the mapping files, connects to the clusters and
// checks every definition against every reachable engine before fn may write anything.
func runMapping(cmd *cobra.Command, g *globalFlags, f *mappingFlags, fn func(context.Context, io.Writer, *mappingSession) error) error {
	// The mapping commands talk to the clusters only (docs/mapping.md, "Secrets"), and to the
	// source's information_schema with --source.
	need := config.NeedClusters
	if f.source {
		need |= config.NeedSource
	}
	cfg, err := loadConfigNeeding(cmd, g, need)
	if err != nil {
		return err
	}
	var cols mapping.Columns
	if f.source {
		model, err := newModel(cfg)
		if err != nil {
			return usageError{err}
		}
		if cols, err = sourceColumns(cmd.Context(), cfg, model.Tables()); err != nil {
			return err
		}
	}
	m := cfg.Mapping
	set, err := mapping.Load(m.Dir, mapping.LoadOptions{VersionField: m.VersionField})
	if err != nil {
		return usageError{fmt.Errorf("load mappings:\n%w", err)}
	}
	clusters, err := selectClusters(cfg, f.clusters)
	if err != nil {
		return usageError{err}
	}
	if err := checkEntities(cfg, set); err != nil {
		return usageError{err}
	}
	for _, c := range clusters {
		for _, idx := range set.Indices() {
			if !set.Has(idx, c.Mapping) {
				return usageError{fmt.Errorf("clusters %s: mapping %s: no %s/%s/%s directory (have %v)",
					c.Name, c.Mapping, m.Dir, idx, c.Mapping, set.Versions(idx))}
			}
		}
	}
	s := &mappingSession{set: set, opts: mapping.Options{Prefix: m.IndexPrefix, Documents: entityDocuments(cfg, cols)},
		targets: connectMappingClusters(clusters)}
	if err := mapping.Resolve(set, s.targets); err != nil {
		return usageError{fmt.Errorf("check mappings against the clusters:\n%w", err)}
	}
	return fn(cmd.Context(), cmd.OutOrStdout(), s)
}

func selectClusters(cfg *config.Config, names []string) ([]config.Cluster, error) {
	if len(names) == 0 {
		return cfg.Clusters, nil
	}
	var out []config.Cluster
	for _, n := range names {
		i := slices.IndexFunc(cfg.Clusters, func(c config.Cluster) bool { return c.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("--cluster %s: no such cluster in the configuration", n)
		}
		out = append(out, cfg.Clusters[i])
	}
	return out, nil
}

// checkEntities makes sure every configured entity's index has mapping files: without
// them the indexer would write to an index nobody created.
func checkEntities(cfg *config.Config, set *mapping.Set) error {
	var errs []error
	for i, e := range cfg.Entities {
		if !slices.Contains(set.Indices(), e.Index) {
			errs = append(errs, fmt.Errorf("entities[%d].index: %q has no directory in %s", i, e.Index, set.Dir))
		}
	}
	return errors.Join(errs...)
}

// connectMappingClusters connects to every cluster at once (each New is bounded by the
// cluster's request timeout); an unreachable cluster becomes a Target with Err set.
func connectMappingClusters(clusters []config.Cluster) []mapping.Cluster {
	targets := make([]mapping.Cluster, len(clusters))
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Go(func() {
			t := mapping.Cluster{Name: c.Name, Version: c.Mapping}
			cl, err := cluster.New(clusterOptions(c))
			if err != nil {
				t.Err = err
			} else {
				t.API, t.Engine = cl, mapping.EngineOf(cl.Info())
			}
			targets[i] = t
		})
	}
	wg.Wait()
	return targets
}

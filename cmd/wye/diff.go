package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/spf13/cobra"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/diff"
	indexersql "github.com/wyehq/wye/indexer/sql"
)

func init() { subcommands = append(subcommands, newDiffCmd) }

// diffFound is a diff that found differences (or could not compare some cluster): exit 1.
type diffFound struct{ status string }

func (e diffFound) Error() string { return "diff: " + e.status + " (see the report)" }
func (e diffFound) ExitCode() int { return exitFailure }

func newDiffCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Compare the clusters' documents (and MySQL), or their answers to a corpus of queries",
		Long: `diff docs compares every entity's documents on each cluster with a reference (the master,
or the first of --clusters; MySQL with --against-mysql). diff queries runs a corpus of named
searches on every cluster and compares their answers. Exit 0: equal; 1: some difference (or a
cluster that could not be compared); 2: usage or configuration. See docs/diff.md.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newDiffDocsCmd(g), newDiffQueriesCmd(g))
	return cmd
}

type diffDocsFlags struct {
	entities, clusters []string
	againstMySQL, json bool
	content, report    string
	recheck            time.Duration
	page               int
}

func newDiffDocsCmd(g *globalFlags) *cobra.Command {
	var f diffDocsFlags
	cmd := &cobra.Command{
		Use:   "docs",
		Short: "Compare documents across clusters (or with MySQL): missing, extra, different, [] vs null, lag",
		Long: `docs scans the reference (ids and versions, with _source for --content all) and looks each
page up by id on every other cluster; then scans each other cluster's ids for documents the
reference lacks. Where versions differ, and for the content sample, both sources are read. A
difference that may be a write on its way (missing, extra, another version) is read again after
--recheck before it is reported, so a running stream gives no false difference. Classes:
missing, extra, different (same version, other content: corruption; with the JSON paths),
empty_null ([] vs null vs absent), behind / ahead (a lower / higher version that stayed).
The report (--report) is a small JSON; the ids and paths go beside it (<report>.ids.gz).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			return runDiffDocs(cmd.Context(), cfg, f, cmd.ErrOrStderr(), cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.entities, "entities", nil, "entities to compare (default: all)")
	fl.StringSliceVar(&f.clusters, "clusters", nil, "clusters to compare; the first is the reference (default: all, the master the reference)")
	fl.BoolVar(&f.againstMySQL, "against-mysql", false, "compare every cluster with the documents wye builds from MySQL now")
	fl.StringVar(&f.content, "content", "all", "whose content to compare besides ids and versions: all, none, sample:N")
	fl.DurationVar(&f.recheck, "recheck", diff.DefaultRecheck, "wait before a difference that may be lag is read again")
	fl.IntVar(&f.page, "page", diff.DefaultScanPage, "documents per scan page and per _mget")
	fl.StringVar(&f.report, "report", diff.DefaultReport, "path of the report JSON; the id list goes beside it (.ids.gz)")
	fl.BoolVar(&f.json, "json", false, "print the report JSON on standard output instead of the summary")
	return cmd
}

func runDiffDocs(ctx context.Context, cfg *config.Config, f diffDocsFlags, stderr, stdout io.Writer) error {
	log := slog.Default()
	content, err := diff.ParseContent(f.content)
	if err != nil {
		return usageError{fmt.Errorf("--content: %w", err)}
	}
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	for _, name := range f.entities {
		if model.Entity(name) == nil {
			return usageError{fmt.Errorf("--entities: %q is not a configured entity", name)}
		}
	}
	picked, err := diffClusters(cfg, f.clusters)
	if err != nil {
		return err
	}
	if !f.againstMySQL && len(picked) < 2 {
		return usageError{errors.New("diff docs: name at least two clusters (or --against-mysql)")}
	}
	var clusters []diff.Cluster
	for _, c := range picked {
		client, err := cluster.New(clusterOptions(c))
		if err != nil {
			return fmt.Errorf("diff docs: %w", err)
		}
		clusters = append(clusters, diff.Cluster{Name: c.Name, Reader: client})
	}
	opts := diff.Options{Model: model, Clusters: clusters, Entities: f.entities, Content: content,
		ScanPage: f.page, Recheck: f.recheck, Report: f.report, Logger: log}
	if f.againstMySQL {
		src, err := indexersql.Open(cfg.Source.MySQLConfig(), 4)
		if err != nil {
			return err
		}
		defer src.Close()
		src.Follow(string(cfg.Source.Flavor), nil)
		opts.Source = src
	}
	if fi, ok := stderr.(*os.File); ok && isTerminal(fi) {
		opts.Terminal = stderr
	}
	rep, err := diff.Docs(ctx, opts)
	if rep != nil {
		printDiff(stdout, f.json, f.report, rep.IDsFile, rep.Summary())
	}
	if err != nil {
		return err
	}
	if rep.Status != diff.StatusEqual {
		return diffFound{rep.Status}
	}
	return nil
}

// printDiff prints the summary (or, with --json, the report) of a diff.
func printDiff(stdout io.Writer, asJSON bool, report, ids string, summary string) {
	if asJSON {
		if b, err := os.ReadFile(report); err == nil {
			stdout.Write(b)
			return
		}
	}
	fmt.Fprint(stdout, summary)
	if report != "" {
		fmt.Fprintf(stdout, "report: %s  ids: %s\n", report, ids)
	}
}

// diffClusters are the clusters named (in that order), or every cluster with the master first.
func diffClusters(cfg *config.Config, names []string) ([]config.Cluster, error) {
	if len(names) == 0 {
		out := slices.Clone(cfg.Clusters)
		slices.SortStableFunc(out, func(a, b config.Cluster) int {
			switch {
			case a.Role == config.RoleMaster && b.Role != config.RoleMaster:
				return -1
			case b.Role == config.RoleMaster && a.Role != config.RoleMaster:
				return 1
			}
			return 0
		})
		return out, nil
	}
	var out []config.Cluster
	for _, n := range names {
		i := slices.IndexFunc(cfg.Clusters, func(c config.Cluster) bool { return c.Name == n })
		if i < 0 {
			return nil, usageError{fmt.Errorf("--clusters: %q is not a configured cluster (have %s)", n, clusterNamesOf(cfg))}
		}
		out = append(out, cfg.Clusters[i])
	}
	return out, nil
}

func clusterNamesOf(cfg *config.Config) string {
	var n []string
	for _, c := range cfg.Clusters {
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

func newDiffQueriesCmd(g *globalFlags) *cobra.Command {
	var file, report string
	var clusters []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "queries",
		Short: "Run a corpus of named searches on every cluster and compare the answers",
		Long: `queries runs each search of --file (a corpus: docs/diff.md, "A corpus of queries") on every
cluster and compares each answer with the reference's (the master, or the first of --clusters):
the total (track_total_hits: true), the top-k ids and their order (hits of equal score may swap),
the aggregations, and the hits' _source and its JSON shape (an array that became null is a
difference). The report names each query that answered differently, and how.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			corpus, err := diff.LoadCorpus(file)
			if err != nil {
				return usageError{err}
			}
			model, err := newModel(cfg)
			if err != nil {
				return usageError{err}
			}
			for _, q := range corpus.Queries {
				if q.Entity != "" && model.Entity(q.Entity) == nil {
					return usageError{fmt.Errorf("%s: query %q: entity %q is not configured", file, q.Name, q.Entity)}
				}
			}
			picked, err := diffClusters(cfg, clusters)
			if err != nil {
				return err
			}
			if len(picked) < 2 {
				return usageError{errors.New("diff queries: name at least two clusters")}
			}
			var searched []diff.Searched
			for _, c := range picked {
				client, err := cluster.New(clusterOptions(c))
				if err != nil {
					return fmt.Errorf("diff queries: %w", err)
				}
				searched = append(searched, diff.Searched{Name: c.Name, Searcher: clusterSearcher{client}})
			}
			rep, err := diff.RunQueries(cmd.Context(), diff.QueriesOptions{Corpus: corpus, Clusters: searched, Report: report,
				Logger: slog.Default(), Entity: func(name string) (string, string, bool) {
					e := model.Entity(name)
					if e == nil {
						return "", "", false
					}
					return e.Index, e.VersionField, true
				}})
			if rep != nil {
				printDiff(cmd.OutOrStdout(), asJSON, report, rep.DiffFile, rep.Summary())
			}
			if err != nil {
				return err
			}
			if rep.Status != diff.StatusEqual {
				return diffFound{rep.Status}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "file", "queries.yaml", "the corpus of named searches")
	fl.StringSliceVar(&clusters, "clusters", nil, "clusters to compare; the first is the reference (default: all, the master the reference)")
	fl.StringVar(&report, "report", diff.DefaultQueriesReport, "path of the report JSON; every difference goes beside it (.ids.gz)")
	fl.BoolVar(&asJSON, "json", false, "print the report JSON on standard output instead of the summary")
	return cmd
}

// clusterSearcher runs a search on a cluster (diff.Searcher).
type clusterSearcher struct{ c *cluster.Client }

func (s clusterSearcher) Refresh(ctx context.Context, index string) error {
	return s.c.Refresh(ctx, index)
}

var _ diff.Searcher = clusterSearcher{}

func (s clusterSearcher) Search(ctx context.Context, index string, body []byte) ([]byte, error) {
	status, resp, err := s.c.Do(ctx, esapi.SearchRequest{Index: []string{index}, Body: bytes.NewReader(body)})
	if err != nil {
		return nil, err
	}
	if err := s.c.Check("search", status, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/indexer"
	indexersql "github.com/wyehq/wye/indexer/sql"
	"github.com/wyehq/wye/mapping"
)

func init() { subcommands = append(subcommands, newEntityCmd) }

// newEntityCmd is `wye entity list|show`: the configured entities, and the document one of
// them builds for a row, read now (docs/indexer.md, "See a document").
func newEntityCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "entity",
		Short: "The configured entities and the documents they build",
		Args:  cobra.NoArgs,
	}
	var compact bool
	show := &cobra.Command{
		Use:   "show ENTITY ID",
		Short: "Print the document wye writes for one root row, read from the source now",
		Long: "Read the root row ID of ENTITY and its relations from the source in one consistent view, " +
			"through the same denormalizer as the indexer, and print the document as JSON. The version " +
			"field shows 0: the indexer writes the version of the change that produced the document " +
			"(docs/architecture.md). Needs the source's secrets only. Exit 1 when the row does not exist.",
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfigNeeding(cmd, g, config.NeedSource)
			if err != nil {
				return err
			}
			model, e, err := entityOf(cfg, args[0])
			if err != nil {
				return err
			}
			src, err := indexersql.Open(cfg.Source.MySQLConfig(), 1)
			if err != nil {
				return err
			}
			defer src.Close()
			doc, err := showDocument(cmd.Context(), model, src, e, args[1])
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if compact {
				out.Write(doc)
			} else if err := json.Indent(&out, doc, "", "  "); err != nil {
				return fmt.Errorf("indent document: %w", err)
			}
			out.WriteByte('\n')
			fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is 0 here; the indexer writes the version of the change that produced the document\n", e.VersionField)
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	show.Flags().BoolVar(&compact, "compact", false, "one line of JSON: the _source bytes the indexer writes, but for the version (0)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the configured entities: name, index (alias), root table and key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfigNeeding(cmd, g, config.NeedNoSecret)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENTITY\tINDEX\tROOT TABLE\tKEY\tRELATIONS")
			for _, e := range cfg.Entities {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", e.Name, e.Index, e.Root.Table, e.Root.Key, countRelations(e.Relations))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(show, list)
	return cmd
}

func countRelations(rs []config.Relation) int {
	n := len(rs)
	for _, r := range rs {
		n += countRelations(r.Relations)
	}
	return n
}

// entityOf builds the model of the configured entities and finds name in it.
func entityOf(cfg *config.Config, name string) (*indexer.Model, *indexer.Entity, error) {
	if len(cfg.Entities) == 0 {
		return nil, nil, usageError{errors.New("no entities configured")}
	}
	model, err := newModel(cfg)
	if err != nil {
		return nil, nil, usageError{err}
	}
	e := model.Entity(name)
	if e == nil {
		var names []string
		for _, e := range model.Entities() {
			names = append(names, e.Name)
		}
		return nil, nil, usageError{fmt.Errorf("entity %q: not configured (have %v)", name, names)}
	}
	return model, e, nil
}

// showDocument reads the document of root key id of e, with version 0.
func showDocument(ctx context.Context, model *indexer.Model, src indexer.Source, e *indexer.Entity, id string) ([]byte, error) {
	v, err := src.View(ctx)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	docs, err := model.Denormalize(ctx, v, map[indexer.Ref]int64{{Entity: e.Name, Key: indexer.IDValue(id)}: 0})
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 || docs[0].Source == nil {
		return nil, fmt.Errorf("no row %s in %s", id, e.Table())
	}
	return docs[0].Source, nil
}

// entityDocument is the shape of the documents of entity name, with the column types read
// from the source's information_schema.
func entityDocument(ctx context.Context, cfg *config.Config, name string) (mapping.Document, error) {
	_, e, err := entityOf(cfg, name)
	if err != nil {
		return mapping.Document{}, err
	}
	cols, err := sourceColumns(ctx, cfg, e.Tables())
	if err != nil {
		return mapping.Document{}, err
	}
	return entityDocuments(cfg, cols)[e.Index], nil
}

// sourceColumns reads the columns of tables from the source's information_schema.
func sourceColumns(ctx context.Context, cfg *config.Config, tables []string) (mapping.Columns, error) {
	src, err := indexersql.Open(cfg.Source.MySQLConfig(), 1)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	read, err := src.Columns(ctx, tables)
	if err != nil {
		return nil, err
	}
	cols := mapping.Columns{}
	for table, cs := range read {
		for _, c := range cs {
			cols[table] = append(cols[table], mapping.Column(c))
		}
	}
	return cols, nil
}

// entityDocuments are the documents of every configured entity by index. cols are the
// source's columns, nil when not read: then the fields of a table whose columns are omitted
// are not known.
func entityDocuments(cfg *config.Config, cols mapping.Columns) map[string]mapping.Document {
	if len(cfg.Entities) == 0 {
		return nil
	}
	model, err := newModel(cfg)
	if err != nil {
		return nil
	}
	out := map[string]mapping.Document{}
	for _, def := range config.EntityDefs(cfg.Entities) {
		out[def.Index] = mapping.DocumentOf(def, model.LinkColumns(), cols)
	}
	return out
}

// loadConfigNeeding is loadConfig for a command that connects to the servers need names
// only: the secrets of the others may be unset (config.Options.Need).
func loadConfigNeeding(cmd *cobra.Command, g *globalFlags, need config.Need) (*config.Config, error) {
	return loadConfigTo(cmd, g, cmd.ErrOrStderr(), need)
}

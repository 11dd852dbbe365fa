package repair

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
)

// Defaults of a repair.
const (
	DefaultPage     = 500         // ledger entries per page: one snapshot, one _bulk and one _mget
	DefaultRate     = 1000        // ledger entries repaired per second, at most
	DefaultLogEvery = time.Minute // progress log line when not on a terminal
	// DefaultWriteTries bounds the writes of one page's documents that the cluster answers
	// with a retryable class before they count as failed (left pending).
	DefaultWriteTries = 5
	// DefaultSourceTries bounds the tries of one snapshot read that fails transiently.
	DefaultSourceTries = 5
)

// Source is the database the documents are built from (cmd/wye's snapshotSource, shared with
// the nightly resync).
type Source interface {
	// Snapshot opens a consistent view and returns the version of its binlog position in cdc's
	// epoch: every change committed before the view has a lower version, every later one a
	// higher version.
	Snapshot(ctx context.Context) (indexer.View, int64, error)
}

// Ledger is the repair ledger (*control.Store).
type Ledger interface {
	Pending(ctx context.Context, cluster string, from control.LedgerKey, limit int) ([]control.LedgerEntry, error)
	MarkRepaired(ctx context.Context, cluster string, done []control.Repaired) (int, error)
	LedgerStats(ctx context.Context, window time.Duration) (map[string]control.LedgerStats, error)
}

var _ Ledger = (*control.Store)(nil)

// Reader fetches documents back from a cluster to verify a write; *cluster.Client is one.
type Reader interface {
	Get(ctx context.Context, index string, ids []string, source bool) (map[string]cluster.Hit, error)
}

// Cluster is one cluster to repair.
type Cluster struct {
	Name   string
	Reader Reader
	Writer indexer.ClusterWriter
	// Err is why the cluster could not be connected; the cluster is reported failed.
	Err error
}

// Options configure one repair.
type Options struct {
	Model    *indexer.Model
	Source   Source
	Ledger   Ledger
	Clusters []Cluster // repaired one after the other

	Page     int     // DefaultPage
	Rate     float64 // ledger entries per second; 0: DefaultRate, negative: no limit
	DryRun   bool    // list and read, write and mark nothing
	Terminal io.Writer
	LogEvery time.Duration
	Logger   *slog.Logger
}

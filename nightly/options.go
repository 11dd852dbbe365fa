package nightly

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
)

// Defaults of a run; config.Default takes them from here.
const (
	DefaultChunkRows      = 1000 // root rows per chunk: one snapshot, one _mget and one _bulk per cluster
	DefaultScanPage       = 5000 // ids per page of a cluster's orphan scan
	DefaultMaxDeleteShare = 0.05 // orphans deleted from one index without --allow-mass-delete
	DefaultLogEvery       = time.Minute
	// DefaultClusterFailures is how many chunks in a row may fail on one cluster before the run
	// leaves that cluster out (reported failed) and goes on with the others.
	DefaultClusterFailures = 3
	// DefaultReadTries bounds the tries of one read of a cluster (an _mget, a count, a scan)
	// that fails with a retryable class before the chunk counts as failed there.
	DefaultReadTries = 5
	// DefaultWriteTries bounds the writes of one chunk's documents that a cluster answers with a
	// retryable class (429, 5xx) before they count as failed.
	DefaultWriteTries = 5
)

// Source is the database the documents are built from.
type Source interface {
	// Snapshot opens a consistent view and returns the version of its binlog position: every
	// change committed before the view has a lower version, every later one a higher version.
	Snapshot(ctx context.Context) (indexer.View, int64, error)
	// Estimate is about how many rows table holds (for progress; may be off).
	Estimate(ctx context.Context, table string) (int64, error)
}

// Reader reads one cluster's documents; *cluster.Client is one.
type Reader interface {
	Get(ctx context.Context, index string, ids []string, source bool) (map[string]cluster.Hit, error)
	Count(ctx context.Context, index string) (int64, error)
	Refresh(ctx context.Context, index string) error
	Scan(ctx context.Context, index string, size int, source bool, fn func([]cluster.Hit) error) error
}

// Cluster is one cluster the run compares and writes.
type Cluster struct {
	Name   string
	Reader Reader
	// Writer writes to the indices the run targets (every <alias>_vN, or only the newest one
	// with --into-new-index).
	Writer indexer.ClusterWriter
	// Index is the index compared with the source for an entity's alias (the alias, or the
	// newest <alias>_vN with --into-new-index).
	Index func(ctx context.Context, alias string) (string, error)
}

// Store is the control schema's side of the run (*control.Nightly), taken under its lock.
type Store interface {
	Unfinished(ctx context.Context) (control.NightlyRun, bool, error)
	Start(ctx context.Context, scope string) (control.NightlyRun, error)
	Resume(ctx context.Context, id int64) (control.NightlyRun, error)
	Abandon(ctx context.Context, id int64) error
	Finish(ctx context.Context, id int64, status, summary string) error
	Progress(ctx context.Context, id int64) ([]control.NightlyProgress, error)
	Save(ctx context.Context, id int64, p control.NightlyProgress) error
	ResyncMarks(ctx context.Context) ([]control.ResyncMark, error)
	Resolve(ctx context.Context, ids []int64) error
}

var _ Store = (*control.Nightly)(nil)

// Options configure one run.
type Options struct {
	Model    *indexer.Model
	Source   Source
	Clusters []Cluster
	Store    Store

	Entities []string // nil: every entity of the model
	// AllClusters says Clusters are every configured cluster: only such a run resolves the
	// resync marks cdc left.
	AllClusters bool

	ChunkRows       int     // DefaultChunkRows
	ScanPage        int     // DefaultScanPage
	RowsPerSecond   float64 // 0: no limit
	BytesPerSecond  float64 // bulk bytes written per second, all clusters; 0: no limit
	MaxDeleteShare  float64 // DefaultMaxDeleteShare
	AllowMassDelete bool
	DryRun          bool // compare and report only
	RewriteAll      bool // write every document, equal or not
	IntoNewIndex    bool // part of the scope; the caller's Writer and Index target the newest index
	NoResume        bool // start a new run even when an unfinished one of the same scope exists

	Report   string    // path of the report JSON; the id list is written beside it (.ids.gz)
	Terminal io.Writer // a terminal for the progress bar; nil: a log line every LogEvery
	LogEvery time.Duration
	Metrics  *Metrics
	Logger   *slog.Logger
}

package diff

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
)

// Defaults of a diff; the command shows them in its flags.
const (
	DefaultScanPage = 2000            // documents per page of a scan, and ids per _mget
	DefaultRecheck  = 2 * time.Second // wait before a lag difference is read again
	DefaultRechecks = 3               // reads again of a lag difference before it is reported
	DefaultWorkers  = 4               // pages of the reference compared at once (besides the scan itself)
	DefaultLogEvery = time.Minute
	DefaultReport   = "wye-diff.json" // the report of `wye diff docs`
	// DefaultQueriesReport is the report of `wye diff queries`.
	DefaultQueriesReport = "wye-diff-queries.json"
	// maxSuspects bounds the lag differences a pair holds before it rechecks them: memory stays
	// flat however far two clusters are apart.
	maxSuspects = 5000
)

// Reader reads one cluster's documents; *cluster.Client is one.
type Reader interface {
	Get(ctx context.Context, index string, ids []string, source bool) (map[string]cluster.Hit, error)
	Count(ctx context.Context, index string) (int64, error)
	Scan(ctx context.Context, index string, size int, source bool, fn func([]cluster.Hit) error) error
}

var _ Reader = (*cluster.Client)(nil)

// Cluster is one cluster compared. Index names the index (or alias) of an entity's alias on it;
// nil: the alias itself.
type Cluster struct {
	Name   string
	Reader Reader
	Index  func(ctx context.Context, alias string) (string, error)
}

// Content says which documents' content is compared besides their ids and versions.
type Content struct {
	All    bool
	Sample int // with All false: about this many documents per entity and cluster; 0: none
}

// ParseContent reads --content: all, none, or sample:N.
func ParseContent(s string) (Content, error) {
	switch {
	case s == "all":
		return Content{All: true}, nil
	case s == "none":
		return Content{}, nil
	case strings.HasPrefix(s, "sample:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "sample:"))
		if err != nil || n <= 0 {
			return Content{}, fmt.Errorf("content %q: want sample:N with N a positive number", s)
		}
		return Content{Sample: n}, nil
	}
	return Content{}, fmt.Errorf("content %q: want all, none or sample:N", s)
}

func (c Content) String() string {
	switch {
	case c.All:
		return "all"
	case c.Sample > 0:
		return "sample:" + strconv.Itoa(c.Sample)
	}
	return "none"
}

// Options configure one diff of documents.
type Options struct {
	Model *indexer.Model
	// Clusters are compared with the reference: Clusters[0], or MySQL when Source is set.
	Clusters []Cluster
	// Source, when set, is the reference: the documents wye builds from MySQL now, compared
	// with every cluster.
	Source   indexer.Source
	Entities []string // nil: every entity of the model
	Content  Content  // against MySQL the content is always compared

	ScanPage int           // DefaultScanPage
	Recheck  time.Duration // DefaultRecheck
	Rechecks int           // DefaultRechecks
	Workers  int           // DefaultWorkers

	Report   string    // path of the report JSON; the id list goes beside it (.ids.gz); "": none
	Terminal io.Writer // a terminal for the progress line; nil: a log line every LogEvery
	LogEvery time.Duration
	Logger   *slog.Logger
}

package indexer

import (
	"context"
	"fmt"
	"sync"
)

// Class is what the caller does with one document's write on one cluster. The cluster
// adapter derives it from the one classification of the cluster's answers
// (docs/architecture.md, "Error classes").
type Class int

const (
	OK        Class = iota // written, or a delete of a document that is not there
	Stale                  // an external-version conflict: a newer version is already there
	Retryable              // try again later: 429, 5xx, timeout, no connection, no index yet
	Permanent              // the same write fails again: mapping, parsing, illegal argument
)

// classNames are the classes as metrics label them (wye_indexer_items_total{result}).
var classNames = [...]string{OK: "ok", Stale: "stale", Retryable: "retryable", Permanent: "permanent"}

func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Missed reports whether the cluster does not hold the write: a slave's ledger entry.
func (c Class) Missed() bool { return c == Retryable || c == Permanent }

// rank orders classes for folding several results of one document: the worst decides.
func (c Class) rank() int { return int(c) }

// Worse returns the worse of two results of one document (the first on a tie): a document
// written to several indices of one cluster counts as written only if every write is OK or
// Stale.
func Worse(a, b Result) Result {
	if b.Class.rank() > a.Class.rank() {
		return b
	}
	return a
}

// Result is the outcome of one document's write on one cluster.
type Result struct {
	Class   Class
	Status  int // 0 when the request got no answer
	ErrType string
	Reason  string
	// Unavailable: the cluster took no write at all (the request failed as a whole: no
	// connection, a timeout, a 5xx or 401 for the request, an answer that is not a _bulk
	// answer; or the cluster blocks writes). The result says nothing about the document, so
	// on the master it spends no attempt: the batch waits (docs/architecture.md, "Error
	// classes"). On a slave it is a miss like any other: counted and ledgered.
	Unavailable bool
}

// UnavailableError is a batch held because the cluster deciding it took no write: nothing of
// the batch is decided, and the caller tries it again later without spending an attempt.
type UnavailableError struct {
	Cluster string
	Reason  string
}

func (e *UnavailableError) Error() string {
	return "cluster " + e.Cluster + " takes no write: " + e.Reason
}

// ClusterWriter writes documents to one cluster: one _bulk per call (split when the cluster
// says it is too large), under the cluster's own timeout, with one result per document in
// order. A request that failed as a whole gives every document that request's class. The
// streaming fan-out, a resync and a repair compose it with their own policy.
type ClusterWriter interface {
	Name() string
	Write(ctx context.Context, docs []Doc) []Result
}

// Roles says which cluster is the master now and the promote epoch it was read at; both may
// change at any time (promote). The epoch only grows: a change of master always raises it.
type Roles interface {
	Master() (cluster string, epoch int64)
}

// Ledger remembers the documents a slave missed, for a targeted repair.
type Ledger interface {
	Record(ctx context.Context, cluster string, missed []Missed) error
}

// Missed is one document a slave did not take.
type Missed struct {
	Entity  string
	ID      string
	Version int64
	Class   string // retryable, permanent, dropped (backlog full or shut down)
	Reason  string
}

// WriteAll writes docs to every cluster at once and waits for each: the policy of a resync or
// a repair, where nothing is dropped and every cluster's results count. It returns one result
// per doc per cluster, keyed by cluster name.
func WriteAll(ctx context.Context, clusters []ClusterWriter, docs []Doc) map[string][]Result {
	out := make(map[string][]Result, len(clusters))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range clusters {
		wg.Go(func() {
			r := c.Write(ctx, docs)
			mu.Lock()
			out[c.Name()] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// BulkSize estimates the _bulk bytes of the document on one index: its source and its action
// line. It sizes the body buffer and bounds how many batches a slave merges.
func (d Doc) BulkSize() int { return len(d.Source) + len(d.Index) + len(d.ID) + 80 }

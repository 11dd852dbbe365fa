package indexer

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// movingRoles is a Roles that a test (or a cluster's write) changes: a promote.
type movingRoles struct {
	mu     sync.Mutex
	master string
	epoch  int64
}

func (r *movingRoles) Master() (string, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.master, r.epoch
}

func (r *movingRoles) promote(to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.master, r.epoch = to, r.epoch+1
}

// scriptedCluster answers each write with results and runs during (a promote mid-write).
type scriptedCluster struct {
	name    string
	results func(docs []Doc) []Result
	during  func()

	mu     sync.Mutex
	writes [][]Doc
}

func (c *scriptedCluster) Name() string { return c.name }

func (c *scriptedCluster) Write(_ context.Context, docs []Doc) []Result {
	c.mu.Lock()
	c.writes = append(c.writes, docs)
	during := c.during
	c.mu.Unlock()
	if during != nil {
		during()
	}
	return c.results(docs)
}

func (c *scriptedCluster) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes)
}

// TestABatchWrittenWhileTheMasterChangesIsDecidedByTheNewMaster prevents a batch that the old
// master answered after a promote from counting as a master write (docs/architecture.md,
// invariant 8): the old master takes the batch and, during its write, the epoch changes to
// make es8 master. The batch must be written again to es8 at once (not only queued for it as a
// slave), es8's results must decide it (its retries are es8's), and the write that follows,
// and a retry still aimed at es7, go to es8 alone.
func TestABatchWrittenWhileTheMasterChangesIsDecidedByTheNewMaster(t *testing.T) {
	roles := &movingRoles{master: "es7", epoch: 4}
	es7 := &scriptedCluster{name: "es7", results: func(d []Doc) []Result { return sameResults(len(d), Result{Class: OK}) }}
	es7.during = func() {
		roles.promote("es8")
		es7.mu.Lock()
		es7.during = nil
		es7.mu.Unlock()
	}
	es8 := &scriptedCluster{name: "es8", results: func(d []Doc) []Result {
		out := sameResults(len(d), Result{Class: OK})
		out[0] = Result{Class: Retryable, Status: 429, Reason: "es8 busy"}
		return out
	}}
	metrics := NewMetrics(nil)
	// Not started: the slaves' queues are not drained, so every write es8 gets is a master write.
	s := NewStream(StreamOptions{Clusters: []ClusterWriter{es7, es8}, Roles: roles, Metrics: metrics})
	docs := []Doc{{Entity: "program", ID: "1", Version: 10}, {Entity: "program", ID: "2", Version: 10}}

	decider, results, err := s.Write(context.Background(), docs, "")
	if err != nil {
		t.Fatal(err)
	}
	if decider != "es8" {
		t.Fatalf("decider %q, want es8: a write answered under the old epoch counted as the master's", decider)
	}
	if es8.calls() != 1 {
		t.Fatalf("es8 written %d times synchronously, want 1", es8.calls())
	}
	if results[0].Class != Retryable || results[1].Class != OK {
		t.Fatalf("results %+v, want es8's (retryable, ok)", results)
	}
	if got := testutil.ToFloat64(metrics.Fenced.WithLabelValues("es8")); got != 2 {
		t.Errorf("fenced documents %v, want 2", got)
	}

	// The epoch holds now: the next batch and a retry aimed at the old master go to es8 only.
	if decider, _, _ := s.Write(context.Background(), docs, ""); decider != "es8" {
		t.Fatalf("next batch decided by %q, want es8", decider)
	}
	if decider, _, _ := s.Write(context.Background(), docs[:1], "es7"); decider != "es8" {
		t.Fatalf("retry aimed at es7 decided by %q, want es8", decider)
	}
	if es7.calls() != 1 || es8.calls() != 3 {
		t.Errorf("writes es7 %d, es8 %d; want 1 and 3", es7.calls(), es8.calls())
	}
	if got := testutil.ToFloat64(metrics.Decided.WithLabelValues("es8")); got != 5 {
		t.Errorf("documents decided by es8 %v, want 5", got)
	}
	if got := testutil.ToFloat64(metrics.Decided.WithLabelValues("es7")); got != 0 {
		t.Errorf("documents decided by es7 %v, want 0", got)
	}
}

// TestAnEpochChangeThatKeepsTheMasterDoesNotWriteTwice prevents a needless second write when
// the epoch moved but the master did not (a role change of a slave, a promote and its rollback).
func TestAnEpochChangeThatKeepsTheMasterDoesNotWriteTwice(t *testing.T) {
	roles := &movingRoles{master: "es7", epoch: 1}
	es7 := &scriptedCluster{name: "es7", results: func(d []Doc) []Result { return sameResults(len(d), Result{Class: OK}) },
		during: func() { roles.mu.Lock(); roles.epoch++; roles.mu.Unlock() }}
	es8 := &scriptedCluster{name: "es8", results: func(d []Doc) []Result { return sameResults(len(d), Result{Class: OK}) }}
	s := NewStream(StreamOptions{Clusters: []ClusterWriter{es7, es8}, Roles: roles})
	decider, _, err := s.Write(context.Background(), []Doc{{Entity: "program", ID: "1", Version: 1}}, "")
	if err != nil || decider != "es7" || es7.calls() != 1 || es8.calls() != 0 {
		t.Fatalf("decider %q err %v, writes es7 %d es8 %d; want es7 once, es8 only as a slave", decider, err, es7.calls(), es8.calls())
	}
}

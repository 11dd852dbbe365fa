package indexer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeCluster is a ClusterWriter that answers every doc with class, after wait.
type fakeCluster struct {
	name  string
	class Class
	wait  chan struct{} // nil: answer at once

	mu    sync.Mutex
	calls int
}

func (f *fakeCluster) Name() string { return f.name }

func (f *fakeCluster) called() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeCluster) Write(ctx context.Context, docs []Doc) []Result {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.wait != nil {
		select {
		case <-f.wait:
		case <-ctx.Done():
			return sameResults(len(docs), Result{Class: Retryable, Reason: ctx.Err().Error()})
		}
	}
	return sameResults(len(docs), Result{Class: f.class})
}

func sameResults(n int, r Result) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// TestWriteAllWaitsForEveryClusterAndDropsNothing prevents a resync or a repair from taking
// the streaming policy's shortcuts: every cluster is written, slow ones are waited for, and
// each cluster's results come back.
func TestWriteAllWaitsForEveryClusterAndDropsNothing(t *testing.T) {
	slow := &fakeCluster{name: "os2", class: Permanent, wait: make(chan struct{})}
	clusters := []ClusterWriter{&fakeCluster{name: "es7", class: OK}, &fakeCluster{name: "es8", class: Stale}, slow}
	docs := []Doc{{ID: "1", Version: 1}, {ID: "2", Version: 1}}
	done := make(chan map[string][]Result)
	go func() { done <- WriteAll(context.Background(), clusters, docs) }()
	select {
	case <-done:
		t.Fatal("WriteAll returned before the slow cluster answered")
	case <-time.After(50 * time.Millisecond):
	}
	close(slow.wait)
	got := <-done
	want := map[string]Class{"es7": OK, "es8": Stale, "os2": Permanent}
	for name, class := range want {
		if len(got[name]) != len(docs) {
			t.Fatalf("%s: %d results for %d docs", name, len(got[name]), len(docs))
		}
		for _, r := range got[name] {
			if r.Class != class {
				t.Errorf("%s: class %v, want %v", name, r.Class, class)
			}
		}
	}
}

// TestWorstIndexResultDecidesTheDocument prevents a document written to one index of a
// version bump but refused by the other from counting as written.
func TestWorstIndexResultDecidesTheDocument(t *testing.T) {
	ok, stale := Result{Class: OK}, Result{Class: Stale}
	retry, perm := Result{Class: Retryable, Reason: "busy"}, Result{Class: Permanent, Reason: "strict"}
	for _, tt := range []struct{ a, b, want Result }{
		{ok, stale, stale}, {stale, ok, stale}, {ok, retry, retry}, {retry, perm, perm}, {perm, retry, perm},
		{retry, Result{Class: Retryable, Reason: "other"}, retry}, // a tie keeps the first
	} {
		if got := Worse(tt.a, tt.b); got != tt.want {
			t.Errorf("Worse(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// flakyLedger refuses the first fails records, then keeps what it is given.
type flakyLedger struct {
	mu    sync.Mutex
	fails int
	ids   []string
}

func (l *flakyLedger) Record(_ context.Context, _ string, ms []Missed) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails > 0 {
		l.fails--
		return errors.New("Deadlock found when trying to get lock")
	}
	for _, m := range ms {
		l.ids = append(l.ids, m.ID+":"+m.Class)
	}
	return nil
}

// TestLedgerWriteIsRetriedNotDropped prevents a deadlock or a blip of the control database
// from silently losing the ids a slave missed: the write is tried again and lands once.
func TestLedgerWriteIsRetriedNotDropped(t *testing.T) {
	ledger := &flakyLedger{fails: 2}
	metrics := NewMetrics(nil)
	s := NewStream(StreamOptions{Roles: staticRoles("es7"), Ledger: ledger, Metrics: metrics,
		Clusters: []ClusterWriter{&fakeCluster{name: "es7", class: OK}, &fakeCluster{name: "os2", class: Retryable}}})
	s.Start(context.Background())
	if _, _, err := s.Write(context.Background(), []Doc{{ID: "1", Version: 1}, {ID: "2", Version: 1}}, ""); err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Stop(stop)
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	slices.Sort(ledger.ids)
	if want := []string{"1:retryable", "2:retryable"}; !slices.Equal(ledger.ids, want) {
		t.Errorf("ledger %v, want %v", ledger.ids, want)
	}
	if lost := testutil.ToFloat64(metrics.LedgerLost.WithLabelValues("os2")); lost != 0 {
		t.Errorf("%v ids counted lost", lost)
	}
}

type staticRoles string

func (r staticRoles) Master() (string, int64) { return string(r), 0 }

// TestSlaveBacklogIsBoundedInBytes prevents a slow slave from holding a copy of every big
// batch in memory: past BacklogBytes, batches go to the ledger instead of the queue, however
// few batches are queued.
func TestSlaveBacklogIsBoundedInBytes(t *testing.T) {
	metrics := NewMetrics(nil)
	slow := &fakeCluster{name: "os2", class: OK, wait: make(chan struct{})}
	s := NewStream(StreamOptions{Roles: staticRoles("es7"), Metrics: metrics, Backlog: 1000, BacklogBytes: 10_000, SlaveInFlight: 1,
		Clusters: []ClusterWriter{&fakeCluster{name: "es7", class: OK}, slow}})
	s.Start(context.Background())
	doc := Doc{ID: "1", Version: 1, Source: make([]byte, 1_000)} // about 1 kB on the wire
	for i := range 50 {
		if _, _, err := s.Write(context.Background(), []Doc{doc}, ""); err != nil {
			t.Fatal(err)
		}
		for i == 0 && slow.called() == 0 {
			// The worker holds the first batch in its write: the others queue, or drop, and
			// none is merged into that write (which would leave room in the backlog).
			time.Sleep(time.Millisecond)
		}
	}
	queued := s.slaves["os2"].queued.Load()
	dropped := testutil.ToFloat64(metrics.Items.WithLabelValues("os2", "dropped"))
	close(slow.wait)
	stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Stop(stop)
	if queued > 10_000 {
		t.Errorf("%d bytes queued for the slow slave, want at most BacklogBytes=10000", queued)
	}
	if dropped < 30 {
		t.Errorf("%v batches dropped to the ledger, want the ones past the byte bound (about 40)", dropped)
	}
}

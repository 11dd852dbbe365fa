package nightly

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
)

func options(src *fakeSource, st *fakeStore, clusters ...*fakeCluster) Options {
	o := Options{Model: model(), Source: src, Store: st, ChunkRows: 100, ScanPage: 70, AllClusters: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, c := range clusters {
		o.Clusters = append(o.Clusters, c.cluster())
	}
	return o
}

// equalTo fills c with the source's documents at version.
func equalTo(c *fakeCluster, src *fakeSource, version int64) {
	for id, title := range src.titles {
		c.put(strconv.Itoa(id), version, doc(id, title, version))
	}
}

func tally(t *testing.T, rep *Report, cluster string) *Tally {
	t.Helper()
	for _, e := range rep.Entities {
		for _, x := range e.Clusters {
			if x.Cluster == cluster {
				return x
			}
		}
	}
	t.Fatalf("no tally for %s in %+v", cluster, rep)
	return nil
}

func TestEqualClustersGetNoWrite(t *testing.T) {
	src := newSource(250)
	es := newCluster("es7")
	equalTo(es, src, 900)
	rep, err := Run(context.Background(), options(src, newStore(), es))
	if err != nil {
		t.Fatal(err)
	}
	if es.writes != 0 || rep.Status != control.RunEqual {
		t.Fatalf("writes %d, status %s: want 0 writes on equal clusters", es.writes, rep.Status)
	}
	if x := tally(t, rep, "es7"); x.Equal != 250 || x.Written != 0 || x.Orphans != 0 {
		t.Fatalf("tally %+v: want 250 equal, nothing written", x)
	}
	if rep.Entities[0].Rows != 250 || rep.Entities[0].Chunks != 3 {
		t.Fatalf("rows %d chunks %d: want 250 rows in 3 chunks", rep.Entities[0].Rows, rep.Entities[0].Chunks)
	}
}

func TestDivergenceIsRepairedCountedAndANewerStreamWriteKept(t *testing.T) {
	src := newSource(250)
	es := newCluster("es8")
	equalTo(es, src, 900)
	delete(es.docs, "7")                                         // missing
	es.put("8", 901, doc(8, "hand-edited", 901))                 // different, older than the snapshot
	es.put("9", 5000, doc(9, "newer stream write", 5000))        // different but newer: kept
	es.put("10", 900, `{"id":10,"title":"t10","wye_version":1}`) // equal: only the version differs
	es.put("9999", 900, doc(9999, "orphan", 900))                // orphan
	es.put("8888", 5000, doc(8888, "inserted after", 5000))      // not in the snapshot, written after it: kept
	rep, err := Run(context.Background(), options(src, newStore(), es))
	if err != nil {
		t.Fatal(err)
	}
	x := tally(t, rep, "es8")
	want := Tally{Cluster: "es8", Index: "programs", Equal: 247, Missing: 1, Different: 1, Written: 2, Skipped: 1, Orphans: 1, Deleted: 1}
	if x.Equal != want.Equal || x.Missing != want.Missing || x.Different != want.Different || x.Written != want.Written ||
		x.Skipped != want.Skipped || x.Orphans != want.Orphans || x.Deleted != want.Deleted || x.Failed != 0 {
		t.Fatalf("tally %+v, want %+v", *x, want)
	}
	if string(es.docs["7"].Source) != doc(7, "t7", 1000) || string(es.docs["8"].Source) != doc(8, "t8", 1000) {
		t.Fatalf("not repaired: 7=%s 8=%s", es.docs["7"].Source, es.docs["8"].Source)
	}
	if _, ok := es.docs["9999"]; ok {
		t.Fatal("orphan 9999 not deleted")
	}
	if string(es.docs["9"].Source) != doc(9, "newer stream write", 5000) {
		t.Fatalf("the newer stream write was overwritten: %s", es.docs["9"].Source)
	}
	if _, ok := es.docs["8888"]; !ok {
		t.Fatal("a document written after the snapshot was deleted as an orphan")
	}
	again, err := Run(context.Background(), options(src, newStore(), es))
	if err != nil {
		t.Fatal(err)
	}
	if y := tally(t, again, "es8"); y.Written != 0 || y.Deleted != 0 {
		t.Fatalf("second run wrote %d and deleted %d: want nothing", y.Written, y.Deleted)
	}
}

func TestKilledRunResumesRepeatingAtMostOneChunk(t *testing.T) {
	src := newSource(1000)
	src.failAfter = 4 // the 5th snapshot fails: 4 chunks read, at most 3 saved
	es := newCluster("es7")
	st := newStore()
	if _, err := Run(context.Background(), options(src, st, es)); !errors.Is(err, errKilled) {
		t.Fatalf("first run: %v, want the kill", err)
	}
	if st.runs[0].Status != control.RunRunning {
		t.Fatalf("killed run is %s, want running (resumable)", st.runs[0].Status)
	}
	var saved rowsState
	if err := json.Unmarshal(st.progress[1]["program/rows"].Counts, &saved); err != nil || saved.Rows == 0 {
		t.Fatalf("no progress saved before the kill: %v %+v", err, st.progress[1])
	}
	src.failAfter, src.scanned = 0, 0
	rep, err := Run(context.Background(), options(src, st, es))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Run != 1 || rep.Resumes != 1 || !rep.Entities[0].Resumed {
		t.Fatalf("run %d resumes %d resumed %v: want run 1 resumed once", rep.Run, rep.Resumes, rep.Entities[0].Resumed)
	}
	if rep.Entities[0].Rows != 1000 {
		t.Fatalf("rows %d: want the table once (1000)", rep.Entities[0].Rows)
	}
	// The second attempt reads from the last saved chunk on: at most one chunk repeated.
	if left := 1000 - saved.Rows; int64(src.scanned) > left+100 || int64(src.scanned) < left {
		t.Fatalf("second attempt read %d rows, %d were left after the saved progress: want at most one chunk more", src.scanned, left)
	}
	if len(es.docs) != 1000 {
		t.Fatalf("cluster holds %d documents, want 1000", len(es.docs))
	}
}

func TestOrphansOverTheShareAreNotDeletedWithoutTheFlag(t *testing.T) {
	src := newSource(100)
	es := newCluster("os2")
	equalTo(es, src, 900)
	for i := 1; i <= 10; i++ { // 10 of 110: 9%, over 5%
		es.put(strconv.Itoa(5000+i), 900, doc(5000+i, "gone", 900))
	}
	rep, err := Run(context.Background(), options(src, newStore(), es))
	if err != nil {
		t.Fatal(err)
	}
	x := tally(t, rep, "os2")
	if rep.Status != control.RunFailed || !x.Refused || x.Orphans != 10 || x.Deleted != 0 || len(es.docs) != 110 {
		t.Fatalf("status %s tally %+v, %d docs: want failed, 10 orphans refused, none deleted", rep.Status, *x, len(es.docs))
	}
	o := options(src, newStore(), es)
	o.AllowMassDelete = true
	rep, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if x := tally(t, rep, "os2"); rep.Status != control.RunEqual || x.Deleted != 10 || len(es.docs) != 100 {
		t.Fatalf("with --allow-mass-delete: status %s tally %+v, %d docs", rep.Status, *x, len(es.docs))
	}
}

func TestADownClusterIsReportedAndTheOthersRepaired(t *testing.T) {
	src := newSource(300)
	good, bad := newCluster("es7"), newCluster("es8")
	bad.down = true
	rep, err := Run(context.Background(), options(src, newStore(), good, bad))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != control.RunFailed || len(rep.Problems) == 0 {
		t.Fatalf("status %s problems %v: want failed naming es8", rep.Status, rep.Problems)
	}
	if len(good.docs) != 300 || tally(t, rep, "es7").Written != 300 {
		t.Fatalf("the healthy cluster holds %d documents, want 300", len(good.docs))
	}
}

func TestAClusterThatFailsMidRunIsLeftOutAfterThreeChunks(t *testing.T) {
	src := newSource(1000)
	good, flaky := newCluster("es7"), newCluster("os2")
	for id := range src.titles {
		flaky.put(strconv.Itoa(id), 900, doc(id, "stale", 900))
	}
	o := options(src, newStore(), good, flaky)
	reads := 0
	o.Clusters[1].Reader = readerFunc{fakeCluster: flaky, before: func() {
		if reads++; reads == 3 {
			flaky.mu.Lock()
			flaky.down = true
			flaky.mu.Unlock()
		}
	}}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	x := tally(t, rep, "os2")
	if rep.Status != control.RunFailed || x.Failed == 0 || x.Failed > 3*100 {
		t.Fatalf("status %s os2 %+v: want failed with at most 3 chunks failed before it is left out", rep.Status, *x)
	}
	if len(good.docs) != 1000 {
		t.Fatalf("es7 holds %d documents, want 1000", len(good.docs))
	}
}

// readerFunc calls before ahead of every Get, and fails it with err's error when there is one.
type readerFunc struct {
	*fakeCluster
	before func()
	err    func() error
}

func (r readerFunc) Get(ctx context.Context, index string, ids []string, source bool) (map[string]cluster.Hit, error) {
	if r.before != nil {
		r.before()
	}
	if r.err != nil {
		if err := r.err(); err != nil {
			return nil, err
		}
	}
	return r.fakeCluster.Get(ctx, index, ids, source)
}

func TestResyncMarksAreResolvedOnlyByARunThatCoveredThem(t *testing.T) {
	src := newSource(10)
	es := newCluster("es7")
	st := newStore()
	old := time.Now().Add(-time.Hour)
	st.marks = []control.ResyncMark{{ID: 1, Table: "db.programs", Created: old}, {ID: 2, Table: "*", Created: old},
		{ID: 3, Table: "db.programs", Created: time.Now().Add(time.Hour)}}
	o := options(src, st, es)
	o.AllClusters = false
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if len(st.resolved) != 0 {
		t.Fatalf("a run of some clusters resolved marks %v", st.resolved)
	}
	if _, err := Run(context.Background(), options(src, st, es)); err != nil {
		t.Fatal(err)
	}
	if len(st.resolved) != 2 || st.resolved[0] != 1 || st.resolved[1] != 2 {
		t.Fatalf("resolved %v: want 1 and 2 (3 is newer than the run)", st.resolved)
	}
}

func TestReportOfAMillionRowsStaysSmall(t *testing.T) {
	rep := &Report{Run: 1, Status: "failed", Resumes: 3}
	for e := range 5 {
		ent := &Entity{Name: "entity" + strconv.Itoa(e), Rows: 1_000_000, Chunks: 1000, FirstV: 1 << 50, LastV: 1<<50 + 1<<40}
		for _, c := range []string{"es7", "es8", "os2"} {
			ent.Clusters = append(ent.Clusters, &Tally{Cluster: c, Index: "programs_v12", Equal: 990_000, Missing: 5_000,
				Different: 5_000, Written: 10_000, Skipped: 100, Orphans: 1_000, Deleted: 1_000,
				Failures: map[string]int64{"retryable": 10, "permanent": 3}, Failed: 13})
		}
		rep.Entities = append(rep.Entities, ent)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 20<<10 {
		t.Fatalf("report of 5 entities of 1M rows on 3 clusters is %d bytes, want < 20 KB", len(b))
	}
}

func TestDryRunWritesNothingAndSaysTheClustersDiffer(t *testing.T) {
	src := newSource(50)
	es := newCluster("es7")
	equalTo(es, src, 900)
	delete(es.docs, "3")
	es.put("777", 900, doc(777, "orphan", 900))
	o := options(src, newStore(), es)
	o.DryRun = true
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	x := tally(t, rep, "es7")
	if es.writes != 0 || x.Missing != 1 || x.Orphans != 1 || x.Written != 0 || x.Deleted != 0 {
		t.Fatalf("dry run: %d writes, tally %+v: want nothing written, 1 missing and 1 orphan found", es.writes, *x)
	}
	if rep.Status != control.RunFailed {
		t.Fatalf("dry run that found differences: status %s, want failed (exit 1)", rep.Status)
	}
}

func TestASlowReadIsTriedAgainNotCountedFailed(t *testing.T) {
	src := newSource(30)
	es := newCluster("es7")
	equalTo(es, src, 900)
	o := options(src, newStore(), es)
	fails := 1
	o.Clusters[0].Reader = readerFunc{fakeCluster: es, err: func() error {
		if fails > 0 {
			fails--
			return &cluster.TransportError{Cluster: "es7", Op: "Mget", Err: context.DeadlineExceeded}
		}
		return nil
	}}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if x := tally(t, rep, "es7"); rep.Status != control.RunEqual || x.Failed != 0 || x.Equal != 30 {
		t.Fatalf("status %s tally %+v: want the timed-out _mget tried again and every document equal", rep.Status, *x)
	}
}

func TestTheBreakerCountsTheIndexAsTheRowsLeftItNotAsItWasBefore(t *testing.T) {
	src := newSource(1000)
	es := newCluster("es7")
	for id := 1; id <= 50; id++ {
		es.put(strconv.Itoa(id), 900, doc(id, "t"+strconv.Itoa(id), 900))
	}
	for i := 1; i <= 30; i++ { // 30 of 80 before the run, 30 of 1030 after its rows
		es.put(strconv.Itoa(9000+i), 900, doc(9000+i, "gone", 900))
	}
	rep, err := Run(context.Background(), options(src, newStore(), es))
	if err != nil {
		t.Fatal(err)
	}
	if x := tally(t, rep, "es7"); rep.Status != control.RunEqual || x.Refused || x.Deleted != 30 || len(es.docs) != 1000 {
		t.Fatalf("status %s tally %+v, %d docs: want 30 orphans deleted (under 5%% of the loaded index)", rep.Status, *x, len(es.docs))
	}
}

package repair

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/wyehq/wye/cluster"
)

const snap = 5000 // the source snapshot's version in these tests

// world is a source of programs 1..4 (3 deleted since), a ledger and the slave os2.
func world() (*source, *ledger, *slave) {
	src := &source{titles: map[int]string{1: "one", 2: "two", 4: "four"}, version: snap}
	return src, newLedger(), newSlave("os2")
}

func run(t *testing.T, src *source, l *ledger, c *slave, dry bool) *Report {
	t.Helper()
	rep, err := Run(context.Background(), Options{Model: model(), Source: src, Ledger: l, DryRun: dry, Rate: -1, Page: 2,
		Clusters: []Cluster{{Name: c.name, Reader: c, Writer: c}}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRepairWritesExactlyTheLedgeredIdsAtTheSnapshotVersionAndAGoneRowAsADelete(t *testing.T) {
	src, l, os2 := world()
	l.record("os2", "1", 100)
	l.record("os2", "2", 200)
	l.record("os2", "3", 300)
	os2.docs["3"] = cluster.Hit{ID: "3", Version: 250, Source: []byte(`{}`)} // deleted since in MySQL
	os2.docs["2"] = cluster.Hit{ID: "2", Version: snap + 10, Source: []byte(`{}`)}

	rep := run(t, src, l, os2, false)
	tl := rep.Clusters[0]
	if tl.Pending != 3 || tl.Repaired != 1 || tl.Deleted != 1 || tl.Current != 1 || tl.Failed != 0 || !rep.OK() {
		t.Fatalf("tally %+v, want 3 pending: 1 repaired, 1 deleted, 1 already current", tl)
	}
	var written []string
	for _, d := range os2.writes {
		if d.Version != snap {
			t.Errorf("doc %s written at version %d, want the snapshot's %d", d.ID, d.Version, snap)
		}
		written = append(written, d.ID)
	}
	if slices.Sort(written); !slices.Equal(written, []string{"1", "3"}) {
		t.Errorf("written %v, want 1 and 3 (4 is not in the ledger; 2 is newer on the cluster)", written)
	}
	if _, ok := os2.docs["3"]; ok {
		t.Error("program 3, gone from MySQL, is still on the cluster")
	}
	if p := l.pending("os2"); len(p) != 0 {
		t.Errorf("pending after the repair: %v", p)
	}
	again := run(t, src, l, os2, false)
	if again.Clusters[0].Pending != 0 || len(os2.writes) != 2 || !strings.Contains(again.Summary(), "nothing to repair") {
		t.Errorf("second repair: %+v, %d writes\n%s", again.Clusters[0], len(os2.writes), again.Summary())
	}
}

func TestAnEntryMissedAgainDuringTheRepairStaysPending(t *testing.T) {
	src, l, os2 := world()
	l.record("os2", "1", 100)
	l.record("os2", "2", 200)
	// The stream's next write of 2 (after the snapshot) is missed while the repair runs.
	l.beforeMark = func() { l.record("os2", "2", snap+1) }
	rep := run(t, src, l, os2, false)
	if tl := rep.Clusters[0]; tl.Repaired != 2 || tl.Grew != 1 || tl.Marked() != 1 || !rep.OK() {
		t.Fatalf("tally %+v, want 2 repaired of which 1 missed again", tl)
	}
	if p := l.pending("os2"); !slices.Equal(p, []string{"2"}) {
		t.Errorf("pending %v, want [2]: its newer miss is not covered by the repair", p)
	}
}

func TestAWriteTheFetchDoesNotShowLeavesItsEntryPending(t *testing.T) {
	src, l, os2 := world()
	l.record("os2", "1", 100)
	os2.lies = true
	rep := run(t, src, l, os2, false)
	if tl := rep.Clusters[0]; tl.Failures[FailVerify] != 1 || tl.Repaired != 0 || rep.OK() {
		t.Fatalf("tally %+v, want 1 failed verify", tl)
	}
	if p := l.pending("os2"); !slices.Equal(p, []string{"1"}) {
		t.Errorf("pending %v, want [1]", p)
	}
}

func TestADocumentTheStreamDeletedAfterTheSnapshotCountsAsCurrent(t *testing.T) {
	src, l, os2 := world()
	l.record("os2", "1", 100)
	l.record("os2", "2", 100)
	// Program 1 is deleted right after the snapshot; the stream's delete reaches os2 before
	// the fetch. Program 2 is lost by the cluster once, though MySQL still has it: it is
	// written again and fetched.
	first := true
	os2.afterWrite = func() {
		if first {
			delete(src.titles, 1)
			delete(os2.docs, "1")
			delete(os2.docs, "2")
			first = false
		}
	}
	rep := run(t, src, l, os2, false)
	if tl := rep.Clusters[0]; tl.Current != 1 || tl.Repaired != 1 || tl.Failed != 0 {
		t.Fatalf("tally %+v, want 1 current (deleted since) and 1 repaired (written again)", tl)
	}
	if p := l.pending("os2"); len(p) != 0 {
		t.Errorf("pending %v, want none", p)
	}
}

func TestADocumentHiddenByANewerDeleteIsCurrentNotLost(t *testing.T) {
	src, l, os2 := world()
	l.record("os2", "1", 100)
	// A delete after the snapshot (the row is inserted again since): the cluster holds its
	// tombstone, so the repair's second write is a version conflict.
	os2.afterWrite = func() {
		delete(os2.docs, "1")
		os2.tombstones = map[string]int64{"1": snap + 5}
	}
	rep := run(t, src, l, os2, false)
	if tl := rep.Clusters[0]; tl.Current != 1 || tl.Failed != 0 {
		t.Fatalf("tally %+v, want 1 current", tl)
	}
}

func TestAnUnavailableSlaveKeepsEveryEntryPending(t *testing.T) {
	src, l, os2 := world()
	l.record("os2", "1", 100)
	l.record("os2", "3", 100)
	os2.down = true
	rep := run(t, src, l, os2, false)
	if tl := rep.Clusters[0]; tl.Failures[FailUnavailable] != 2 || rep.OK() {
		t.Fatalf("tally %+v, want 2 failed unavailable", tl)
	}
	if p := l.pending("os2"); len(p) != 2 {
		t.Errorf("pending %v, want both", p)
	}
}

func TestASnapshotBelowTheMissedVersionWritesNothing(t *testing.T) {
	src, l, os2 := world()
	l.record("os2", "1", snap+100) // published in an epoch the snapshot's checkpoint does not have yet
	l.record("os2", "2", 100)
	rep := run(t, src, l, os2, false)
	tl := rep.Clusters[0]
	if tl.Failures[FailBehind] != 1 || tl.Repaired != 1 || rep.OK() {
		t.Fatalf("tally %+v, want 1 behind and 1 repaired", tl)
	}
	if len(os2.writes) != 1 || os2.writes[0].ID != "2" {
		t.Errorf("writes %+v, want 2 alone: 1 must not be written below its missed version", os2.writes)
	}
	if !strings.Contains(rep.Summary(), "above the source snapshot") {
		t.Errorf("summary does not explain the entry left pending:\n%s", rep.Summary())
	}
}

func TestADryRunWritesAndMarksNothing(t *testing.T) {
	src, l, os2 := world()
	l.record("os2", "1", 100)
	l.record("os2", "3", 100)
	rep := run(t, src, l, os2, true)
	if tl := rep.Clusters[0]; tl.Would != 2 || len(os2.writes) != 0 || len(l.pending("os2")) != 2 {
		t.Fatalf("dry run: tally %+v, %d writes, pending %v", tl, len(os2.writes), l.pending("os2"))
	}
}

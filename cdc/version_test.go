package cdc

import (
	"math"
	"testing"
)

func mustVersion(t *testing.T, epoch uint32, file string, pos uint32) Version {
	t.Helper()
	v, err := VersionAt(epoch, file, pos)
	if err != nil {
		t.Fatalf("VersionAt(%d, %s, %d): %v", epoch, file, pos, err)
	}
	return v
}

// TestVersionGrowsInCommitOrder prevents an older change overwriting a newer one: binlog order
// is commit order, within a file, across a rotation and across a source change (new epoch).
func TestVersionGrowsInCommitOrder(t *testing.T) {
	order := []struct {
		epoch uint32
		file  string
		pos   uint32
	}{
		{1, "mariadb-bin.000001", 4},
		{1, "mariadb-bin.000001", 500},
		{1, "mariadb-bin.000001", math.MaxUint32}, // the largest offset of a file
		{1, "mariadb-bin.000002", 4},              // rotation: the next file starts low
		{1, "mariadb-bin.065535", 100},
		{1, "mariadb-bin.065536", 4},    // past 16 bits the suffix carries into the epoch bits
		{3, "other-host-bin.000001", 4}, // failover to a server with a younger binlog (NextEpoch)
	}
	var prev Version = -1
	for _, o := range order {
		v := mustVersion(t, o.epoch, o.file, o.pos)
		if v <= prev {
			t.Fatalf("version of %d/%s:%d = %d, not above the previous %d", o.epoch, o.file, o.pos, v, prev)
		}
		prev = v
	}
}

// TestVersionIsIdenticalWhenReReadAfterRestart prevents clock- or counter-based versions: the
// same binlog position must give the same version in another process.
func TestVersionIsIdenticalWhenReReadAfterRestart(t *testing.T) {
	a := mustVersion(t, 3, "mysql-bin.000042", 123456)
	b := mustVersion(t, 3, "mysql-bin.000042", 123456)
	if a != b {
		t.Fatalf("same position gave %d and %d", a, b)
	}
	if a.Epoch() != 3 || a.FileSeq() != 42 || a.Pos() != 123456 {
		t.Fatalf("decomposed %d = epoch %d file %d pos %d", a, a.Epoch(), a.FileSeq(), a.Pos())
	}
}

// TestVersionIsAValidExternalVersion prevents Elasticsearch rejecting versions: external
// versions must be >= 0 and < 2^63, even at the largest epoch, file and offset.
func TestVersionIsAValidExternalVersion(t *testing.T) {
	v := mustVersion(t, maxEpoch, "b.065535", math.MaxUint32)
	if v < 0 || uint64(v) >= 1<<63 {
		t.Fatalf("max version %d is not in [0, 2^63)", v)
	}
}

// TestVersionKeepsGrowingPastBinlogSuffix65535 prevents a reader refused forever (the suffix
// used to be capped at 16 bits) and a silent wrap (masking it to 16 bits would make suffix 65536
// version below suffix 65535): the suffix carries into the epoch bits.
func TestVersionKeepsGrowingPastBinlogSuffix65535(t *testing.T) {
	var prev Version = -1
	for _, f := range []string{"b.065534", "b.065535", "b.065536", "b.065537", "b.131071", "b.131072", "b.999999", "b.1000000"} {
		for _, pos := range []uint32{4, math.MaxUint32} {
			v := mustVersion(t, 1, f, pos)
			if v <= prev {
				t.Fatalf("version of %s:%d = %d, not above the previous %d", f, pos, v, prev)
			}
			prev = v
		}
	}
	v := mustVersion(t, 1, "b.065536", 7)
	if v.Epoch() != 2 || v.FileSeq() != 0 || v.Pos() != 7 {
		t.Fatalf("b.065536:7 in epoch 1 decomposed to effective epoch %d, file %d, pos %d; want 2, 0, 7", v.Epoch(), v.FileSeq(), v.Pos())
	}
	// Identical on re-read: a pure function of the position, whatever the suffix.
	if mustVersion(t, 1, "b.065536", 7) != v {
		t.Fatal("same position, different versions")
	}
}

// TestVersionRefusesToWrap prevents a silent wrap-around into the top bit (negative, and
// refused by Elasticsearch) when the epoch plus the suffix carry exceeds 15 bits.
func TestVersionRefusesToWrap(t *testing.T) {
	if _, err := VersionAt(maxEpoch, "mariadb-bin.065536", 4); err == nil {
		t.Error("file suffix 65536 at the last epoch accepted")
	}
	if _, err := VersionAt(maxEpoch+1, "mariadb-bin.000001", 4); err == nil {
		t.Error("epoch 2^15 accepted")
	}
	if _, err := VersionAt(1, "mariadb-bin", 4); err == nil {
		t.Error("file without suffix accepted")
	}
	if _, err := VersionAt(1, "mariadb-bin.4294967296", 4); err == nil {
		t.Error("file suffix above 32 bits accepted")
	}
}

// TestNextEpochIsAboveEveryVersionOfTheOldSource prevents a source change from publishing
// versions below ones the old source already published: above the checkpoint's effective epoch
// and the unsaved tail after it, even across a 65536-file boundary.
func TestNextEpochIsAboveEveryVersionOfTheOldSource(t *testing.T) {
	for _, c := range []struct {
		epoch    uint32
		cp, tail string // checkpoint file, furthest file the old source may have published
	}{
		{1, "mariadb-bin.000007", "mariadb-bin.000009"},
		{1, "mariadb-bin.065535", "mariadb-bin.065540"}, // the unsaved tail crossed into the next block
		{3, "mariadb-bin.131000", "mariadb-bin.131100"},
	} {
		next, err := NextEpoch(c.epoch, c.cp)
		if err != nil {
			t.Fatal(err)
		}
		old := mustVersion(t, c.epoch, c.tail, math.MaxUint32)
		for _, f := range []string{"new-bin.000000", "new-bin.000001"} {
			if v := mustVersion(t, next, f, 4); v <= old {
				t.Errorf("epoch %d after %d/%s: %s:4 versions %d, not above the old source's %s (%d)", next, c.epoch, c.cp, f, v, c.tail, old)
			}
		}
	}
	if _, err := NextEpoch(maxEpoch-1, "b.000001"); err == nil {
		t.Error("next epoch above 15 bits accepted")
	}
}

// TestSnapshotVersionSeparatesEarlierAndLaterChanges prevents the nightly snapshot from
// overwriting a newer stream write, or a stale stream event overwriting the snapshot: a
// snapshot opened at a commit boundary P has a version above every rows event that ended
// before P and below every one that ends after it.
func TestSnapshotVersionSeparatesEarlierAndLaterChanges(t *testing.T) {
	snap := mustVersion(t, 1, "mariadb-bin.000007", 9000) // end of an XID event
	before := mustVersion(t, 1, "mariadb-bin.000007", 8950)
	after := mustVersion(t, 1, "mariadb-bin.000007", 9120)
	nextFile := mustVersion(t, 1, "mariadb-bin.000008", 300)
	if !(before < snap && snap < after && snap < nextFile) {
		t.Fatalf("before %d, snapshot %d, after %d, next file %d: not ordered", before, snap, after, nextFile)
	}
}

func TestPositionLessComparesFileSuffixFirst(t *testing.T) {
	for _, c := range [][2]Position{
		{{File: "b.000009", Pos: 999999}, {File: "b.000010", Pos: 4}},
		{{File: "b.065535", Pos: 999999}, {File: "b.065536", Pos: 4}},
		{{File: "b.065536", Pos: 999999}, {File: "b.065537", Pos: 4}},
	} {
		a, b := c[0], c[1]
		if !a.Less(b) || b.Less(a) {
			t.Fatalf("%s vs %s ordered wrongly", a, b)
		}
	}
}

// at is a published binlog point in tests: a version's epoch, file and offset.
type at struct {
	epoch uint32
	file  string
	pos   uint32
}

// TestFloorEpochKeepsANewReaderAboveEveryPublishedVersion prevents the silent freeze of a
// reader that has no checkpoint (a new name, a deleted row) after an earlier source change:
// starting at epoch 1 sorted every new version below what the clusters held, and each write
// was a 409. From the floor (the highest start point saved), the epoch FloorEpoch gives sorts
// every later position above what the schema's readers published, their unsaved tails
// included; on the floor's own source without spending an epoch per new reader.
func TestFloorEpochKeepsANewReaderAboveEveryPublishedVersion(t *testing.T) {
	floor := Checkpoint{Name: "old", Epoch: 3, SourceID: "s", Pos: Position{File: "b.000010", Pos: 500}}
	carried := Checkpoint{Name: "old", Epoch: 1, SourceID: "s", Pos: Position{File: "b.065540", Pos: 9}}
	for _, c := range []struct {
		name      string
		floor     Checkpoint
		id        string
		cur       Position
		want      uint32
		published []at
	}{
		{"same source: the floor's epoch", floor, "s", Position{File: "b.000011", Pos: 40}, 3, []at{
			{3, "b.000010", 500}, // the floor itself
			{3, "b.000011", 39},  // the floor reader's unsaved tail, up to the current position
			{2, "b.000011", 30},  // a reader of an older epoch, resumed from its checkpoint
		}},
		{"same source at the floor's very position", floor, "s", floor.Pos, 3, []at{{3, "b.000010", 500}}},
		{"same source, binlog went back (RESET MASTER)", floor, "s", Position{File: "b.000001", Pos: 4}, 5, []at{
			{3, "b.000010", 500}, {3, "b.000012", math.MaxUint32}, // the tail, past a rotation
		}},
		{"another source", floor, "t", Position{File: "b.000001", Pos: 4}, 5, []at{
			{3, "b.000010", 500}, {3, "b.000099", math.MaxUint32},
		}},
		{"another source after suffix 65535", carried, "t", Position{File: "b.000001", Pos: 4}, 4, []at{
			{1, "b.065540", 9}, {1, "b.131072", math.MaxUint32}, // the tail crossed one more 65536-file block
		}},
		{"same source after suffix 65535", carried, "s", Position{File: "b.131073", Pos: 4}, 1, []at{
			{1, "b.065540", 9}, {1, "b.131072", math.MaxUint32},
		}},
	} {
		got, err := FloorEpoch(c.floor, c.id, c.cur)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: epoch %d, want %d", c.name, got, c.want)
		}
		first := mustVersion(t, got, c.cur.File, c.cur.Pos+1) // the first event the reader reads ends after cur
		for _, p := range c.published {
			if old := mustVersion(t, p.epoch, p.file, p.pos); first <= old {
				t.Errorf("%s: epoch %d at %s versions %d, not above the published %d/%s:%d (%d)",
					c.name, got, c.cur, first, p.epoch, p.file, p.pos, old)
			}
		}
	}
}

// TestEpochAboveSortsAboveTheHighestWrittenVersion prevents a reader of a new or recreated
// control schema from starting below the documents already in the clusters: its epoch's
// first version is above the highest version written, also when that one carried binlog
// suffix bits into the epoch bits.
func TestEpochAboveSortsAboveTheHighestWrittenVersion(t *testing.T) {
	for _, p := range []at{{1, "b.000001", 4}, {3, "b.000005", math.MaxUint32}, {1, "b.065536", 1}, {2, "b.999999", 7}} {
		v := mustVersion(t, p.epoch, p.file, p.pos)
		e, err := EpochAbove(v)
		if err != nil {
			t.Fatal(err)
		}
		if first := mustVersion(t, e, "new-bin.000000", 0); first <= v {
			t.Errorf("epoch %d above %d/%s:%d: first version %d, not above %d", e, p.epoch, p.file, p.pos, first, v)
		}
	}
	if _, err := EpochAbove(mustVersion(t, maxEpoch, "b.000001", 4)); err == nil {
		t.Error("an epoch above 15 bits accepted")
	}
}

// TestVersionThroughADoubleKeepsItsEpoch prevents a start epoch below the clusters' versions
// when they are read back through a max aggregation, which answers a double: above 2^53 the
// value is rounded, but never below its epoch's first version (exact), so the epoch read is
// the true one or the next.
func TestVersionThroughADoubleKeepsItsEpoch(t *testing.T) {
	for _, p := range []at{{31, "b.065535", math.MaxUint32}, {32, "b.000000", 0}, {32, "b.000000", 1}, {200, "b.012345", 678},
		{maxEpoch, "b.065535", math.MaxUint32 - 600}, {maxEpoch - 1, "b.065535", math.MaxUint32}} {
		v := mustVersion(t, p.epoch, p.file, p.pos)
		f := float64(v)
		if f >= 1<<63 {
			continue // maxVersion refuses it: no epoch is read at all
		}
		if got := Version(f).Epoch(); got < v.Epoch() || got > v.Epoch()+1 {
			t.Errorf("version %d through a double: epoch %d, want %d or %d", v, got, v.Epoch(), v.Epoch()+1)
		}
	}
}

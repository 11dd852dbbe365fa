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

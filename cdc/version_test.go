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
		{2, "other-host-bin.000001", 4}, // failover to a server with a younger binlog
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

// TestVersionRefusesToWrap prevents a silent wrap-around (a file suffix above 16 bits, an epoch
// above 15 bits) that would make new versions smaller than old ones.
func TestVersionRefusesToWrap(t *testing.T) {
	if _, err := VersionAt(1, "mariadb-bin.065536", 4); err == nil {
		t.Error("file suffix 65536 accepted")
	}
	if _, err := VersionAt(maxEpoch+1, "mariadb-bin.000001", 4); err == nil {
		t.Error("epoch 2^15 accepted")
	}
	if _, err := VersionAt(1, "mariadb-bin", 4); err == nil {
		t.Error("file without suffix accepted")
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
	a := Position{File: "b.000009", Pos: 999999}
	b := Position{File: "b.000010", Pos: 4}
	if !a.Less(b) || b.Less(a) {
		t.Fatalf("%s vs %s ordered wrongly", a, b)
	}
}

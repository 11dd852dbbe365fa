package cdc

import (
	"fmt"
	"strconv"
	"strings"
)

// Version orders the changes of one source. Invariant 2 (docs/cdc.md, "Versions"):
//
//		version = epoch<<48 + fileSeq<<32 + pos
//
//	  - pos (32 bits) is the END offset of the binlog event that carries the change (the rows
//	    event) or, for a snapshot, the binlog offset at which the snapshot was opened. The binlog
//	    event header stores log_pos in 32 bits, so it always fits.
//	  - fileSeq is the numeric suffix of the binlog file (mariadb-bin.000042 -> 42). Files rotate
//	    in order, so (fileSeq, pos) grows in commit order: the binlog IS the commit order.
//	  - epoch lives in the control schema and grows whenever the binlog coordinates stop being
//	    comparable: a new source server (failover), RESET MASTER, a purged checkpoint.
//
// The sum is one 63-bit number: fileSeq is not masked to 16 bits but carried into the epoch
// bits, so past suffix 65535 the versions keep growing (suffix 65536 of epoch e is 65536<<32
// above suffix 0). A server that rotates past suffix 65535 therefore keeps streaming, with no
// gap and no resync; Version.Epoch reports the effective epoch, epoch + fileSeq>>16. The price:
// a new epoch must start above the effective epoch of everything the old one published, which
// NextEpoch computes. Only an effective epoch above 15 bits (the top bit) is refused.
//
// Why not the traps listed in docs/architecture.md: intra-second counters are not reproducible
// after a restart (these positions are: re-reading the same binlog yields the same numbers);
// MariaDB GTID seq_no is not monotonic across a failover and MySQL GTIDs are per server uuid
// (the epoch carries the server change instead). The top bit stays 0, so Elasticsearch's
// external versions (0 <= v < 2^63) accept every value.
//
// All rows of one rows event share its version; a rows event never holds the same row twice,
// and two changes of one row in one transaction sit in two rows events with growing offsets.
type Version int64

const (
	maxEpoch   = 1<<15 - 1 // the largest effective epoch: the top bit of a version stays 0
	maxFileSeq = 1<<16 - 1 // the file bits of a version; larger suffixes carry into the epoch
)

// VersionAt returns the version of binlog position file:pos in epoch. The nightly snapshot uses
// it with the position at which it opened its consistent snapshot: every change committed
// before that point has a smaller version, every later one a greater version.
func VersionAt(epoch uint32, file string, pos uint32) (Version, error) {
	seq, err := FileSeq(file)
	if err != nil {
		return 0, err
	}
	hi := uint64(epoch)<<16 + uint64(seq)
	if hi > maxEpoch<<16|maxFileSeq {
		return 0, fmt.Errorf("compute version: epoch %d at binlog suffix %d exceeds 63 bits (effective epoch %d > %d)",
			epoch, seq, hi>>16, maxEpoch)
	}
	return Version(int64(hi)<<32 | int64(pos)), nil
}

// NextEpoch returns the epoch a reader starts when the source changes (failover, RESET MASTER,
// purged checkpoint) after a checkpoint at file in epoch. Every version of the new epoch is above
// every version published under the old one, which are at most one 65536-file block past the
// checkpoint's: the unsaved tail after a checkpoint spans at most the in-flight window of one
// checkpoint interval, not 65536 rotations. Below suffix 65536 that is epoch+2, one more than
// strictly needed when the tail stayed in the checkpoint's block; epochs cost nothing.
func NextEpoch(epoch uint32, file string) (uint32, error) {
	seq, err := FileSeq(file)
	if err != nil {
		return 0, err
	}
	next := uint64(epoch) + uint64(seq>>16) + 2
	if next > maxEpoch {
		return 0, fmt.Errorf("next epoch after %d at binlog suffix %d: %d exceeds 15 bits", epoch, seq, next)
	}
	return uint32(next), nil
}

// FloorEpoch returns the epoch a reader that has no checkpoint of its own starts at, at
// position cur of the source identified by id, under a control schema whose epoch floor is f:
// the start point (epoch, source, position) of highest version that any reader of the schema
// saved (control raises it with every checkpoint). Invariant (docs/architecture.md, invariant
// 2): every version the reader publishes from cur on is above every version published under
// the schema before, provided its readers follow one source at a time (a failover moves them
// all).
//
// Floor or floor+1? Neither, as a bare number: a version is a function of (epoch, position),
// and positions compare only within one source's binlog.
//   - Same source, binlog not behind f.Pos: f.Epoch itself. Readers of this source published
//     positions its binlog had already written, so at or before cur, under epochs at most
//     f.Epoch; VersionAt(f.Epoch, p) of every p after cur is above them all. Same epoch and
//     position give the same version, so readers that meet on this binlog agree, and a new
//     reader name or a wiped checkpoint costs no epoch (floor+1 would spend one each time and
//     walk the epoch towards its 15 bits).
//   - Another source, or a binlog that went back (RESET MASTER): positions say nothing, and
//     floor+1 is not enough either, since versions under f.Epoch reach effective epoch
//     f.Epoch + suffix>>16, and one more in the unsaved tail after f.Pos: NextEpoch.
func FloorEpoch(f Checkpoint, id string, cur Position) (uint32, error) {
	if f.SourceID == id && !cur.Less(f.Pos) {
		return f.Epoch, nil
	}
	return NextEpoch(f.Epoch, f.Pos.File)
}

// EpochAbove returns the lowest epoch all of whose versions are above v: v's effective epoch
// plus one (v itself may carry binlog suffix bits into the epoch bits).
func EpochAbove(v Version) (uint32, error) {
	next := uint64(v.Epoch()) + 1
	if v < 0 || next > maxEpoch {
		return 0, fmt.Errorf("epoch above version %d: %d exceeds 15 bits", v, next)
	}
	return uint32(next), nil
}

// FileSeq returns the numeric suffix of a binlog file name ("mariadb-bin.000042" -> 42).
func FileSeq(file string) (uint32, error) {
	i := strings.LastIndexByte(file, '.')
	if i < 0 || i == len(file)-1 {
		return 0, fmt.Errorf("parse binlog file %q: no numeric suffix", file)
	}
	n, err := strconv.ParseUint(file[i+1:], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("parse binlog file %q: %w", file, err)
	}
	return uint32(n), nil
}

// Epoch returns the effective epoch of v: the source epoch plus the binlog suffix's carry
// (fileSeq>>16).
func (v Version) Epoch() uint32 { return uint32(v >> 48) }

// FileSeq returns the binlog file suffix of v modulo 65536 (the rest is carried in Epoch).
func (v Version) FileSeq() uint32 { return uint32(v>>32) & maxFileSeq }

// Pos returns the binlog offset part of v.
func (v Version) Pos() uint32 { return uint32(v) }

// Position is a binlog coordinate: the file and the offset just after an event.
type Position struct {
	File string
	Pos  uint32
}

func (p Position) String() string {
	// Once per rows event in the encoder: without fmt's boxing.
	b := make([]byte, 0, len(p.File)+11)
	b = append(append(b, p.File...), ':')
	return string(strconv.AppendUint(b, uint64(p.Pos), 10))
}

// Less orders positions of one server by file suffix, then offset.
func (p Position) Less(q Position) bool {
	a, _ := FileSeq(p.File)
	b, _ := FileSeq(q.File)
	if a != b {
		return a < b
	}
	return p.Pos < q.Pos
}

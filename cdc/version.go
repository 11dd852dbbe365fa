package cdc

import (
	"fmt"
	"strconv"
	"strings"
)

// Version orders the changes of one source. Invariant 2 (docs/cdc.md, "Versions"):
//
//		version = epoch<<48 | fileSeq<<32 | pos
//
//	  - pos (32 bits) is the END offset of the binlog event that carries the change (the rows
//	    event) or, for a snapshot, the binlog offset at which the snapshot was opened. The binlog
//	    event header stores log_pos in 32 bits, so it always fits.
//	  - fileSeq (16 bits) is the numeric suffix of the binlog file (mariadb-bin.000042 -> 42).
//	    Files rotate in order, so (fileSeq, pos) grows in commit order: the binlog IS the commit
//	    order. A suffix above 65535 is refused (bump the epoch, see below) instead of wrapping.
//	  - epoch (15 bits) lives in the control schema and grows whenever the binlog coordinates
//	    stop being comparable: a new source server (failover), RESET MASTER, a purged
//	    checkpoint. Every version of a new epoch is above every version of an older one.
//
// Why not the traps listed in DESIGN.md: intra-second counters are not reproducible after a
// restart (these positions are: re-reading the same binlog yields the same numbers); MariaDB
// GTID seq_no is not monotonic across a failover and MySQL GTIDs are per server uuid (the
// epoch carries the server change instead). The top bit stays 0, so Elasticsearch's external
// versions (0 <= v < 2^63) accept every value.
//
// All rows of one rows event share its version; a rows event never holds the same row twice,
// and two changes of one row in one transaction sit in two rows events with growing offsets.
type Version int64

const (
	maxEpoch   = 1<<15 - 1
	maxFileSeq = 1<<16 - 1
)

// VersionAt returns the version of binlog position file:pos in epoch. The nightly snapshot uses
// it with the position at which it opened its consistent snapshot: every change committed
// before that point has a smaller version, every later one a greater version.
func VersionAt(epoch uint32, file string, pos uint32) (Version, error) {
	seq, err := FileSeq(file)
	if err != nil {
		return 0, err
	}
	if epoch > maxEpoch {
		return 0, fmt.Errorf("compute version: epoch %d exceeds 15 bits", epoch)
	}
	return Version(int64(epoch)<<48 | int64(seq)<<32 | int64(pos)), nil
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
	if n > maxFileSeq {
		return 0, fmt.Errorf("parse binlog file %q: suffix %d exceeds 16 bits; bump the source epoch (docs/cdc.md)", file, n)
	}
	return uint32(n), nil
}

// Epoch returns the epoch part of v.
func (v Version) Epoch() uint32 { return uint32(v >> 48) }

// FileSeq returns the binlog file suffix part of v.
func (v Version) FileSeq() uint32 { return uint32(v>>32) & maxFileSeq }

// Pos returns the binlog offset part of v.
func (v Version) Pos() uint32 { return uint32(v) }

// Position is a binlog coordinate: the file and the offset just after an event.
type Position struct {
	File string
	Pos  uint32
}

func (p Position) String() string { return fmt.Sprintf("%s:%d", p.File, p.Pos) }

// Less orders positions of one server by file suffix, then offset.
func (p Position) Less(q Position) bool {
	a, _ := FileSeq(p.File)
	b, _ := FileSeq(q.File)
	if a != b {
		return a < b
	}
	return p.Pos < q.Pos
}

package binlog

import (
	"bytes"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/wyehq/wye/cdc"
)

// trimmer decodes an update rows event with only the columns the encoder sends in images
// trimmed to the changed columns (cdc.UpdateImagesChanged, docs/cdc.md "Update images"): the
// primary key, the whole columns, and every column whose null bit or bytes differ between the
// before and after image of any row of the event. It measures each column's bytes in the raw
// images and decodes only the kept columns: itself when all of them are of the common types
// decode.go decodes exactly as go-mysql does, else by rewriting the rows without the other
// columns for go-mysql, as if the server had logged a minimal row image. Either way the
// columns left out are nil in both images, which the encoder leaves out as unchanged. An
// event it cannot measure for sure is decoded whole by go-mysql.
//
// It runs in go-mysql's reading goroutine (RowsEventDecodeFunc) and is touched by no other.
// Its plans are kept with the stream's description of each table (cachedTable).
type trimmer struct {
	whole cdc.WholeColumns
	spans []span // scratch: each image's column spans, image after image
	keep  []bool // scratch: per column, decoded
	kept  int    // how many of keep are set (trim)
	// Chunks decodeKept carves each event's rows from (carve), instead of five allocations
	// per event.
	text    []byte
	values  []any
	skips   []int
	rows    [][]any
	skipped [][]int
	months  monthStart // datetime2Value's
}

// trimPlan is how the columns of one table map are measured.
type trimPlan struct {
	ok       bool      // every column has a known size rule
	inline   []bool    // per column: always decoded (cdc.WholeColumns.AppendInline)
	sizes    []colSize // per column
	direct   []int     // per column: how decodeKept decodes it (directNone: it does not)
	unsigned []bool    // per column: an unsigned integer (go-mysql's UnsignedMap)
}

// colSize is how many bytes a non-NULL value of a column takes in a row image: fixed bytes, or
// a little-endian length of prefix bytes followed by that many bytes.
type colSize struct {
	fixed  int
	prefix int
}

// span is where one column's value lies in the row data; start < 0 for NULL.
type span struct{ start, end int }

// decode decodes the rows of e (data from pos) like e.DecodeData, trimmed by p (the plan of
// e's table map) when it can be: the kept columns decoded directly when all of them are of a
// type decodeKept decodes (decode.go), else by go-mysql from the rows rewritten without the
// others.
func (tr *trimmer) decode(e *replication.RowsEvent, pos int, data []byte, p *trimPlan) error {
	bitmap, ok := tr.trim(e, data[pos:], p)
	if !ok {
		return e.DecodeData(pos, data)
	}
	if tr.direct(e, p) && tr.decodeKept(e, data[pos:], bitmap, p) {
		return nil
	}
	rows := tr.rewrite(data[pos:])
	b1, b2 := e.ColumnBitmap1, e.ColumnBitmap2
	e.ColumnBitmap1, e.ColumnBitmap2 = bitmap, bitmap
	if err := e.DecodeData(0, rows); err != nil {
		// Not expected (the kept columns decode as they would in place); decode the event
		// as it came rather than lose it to a measuring mistake.
		e.ColumnBitmap1, e.ColumnBitmap2 = b1, b2
		return e.DecodeData(pos, data)
	}
	return nil
}

// direct reports whether decodeKept decodes every column trim kept of e.
func (tr *trimmer) direct(e *replication.RowsEvent, p *trimPlan) bool {
	for i, k := range tr.keep {
		if k && p.direct[i] == directNone {
			return false
		}
	}
	return directOptions(e)
}

// trim measures the rows of e's row data (into tr.spans) and decides which columns an update
// of the event decodes (tr.keep): the always decoded ones and those some row changes. It
// returns the column bitmap of the kept columns; ok false when e is to be decoded whole: not
// a plain uncompressed update with every column in both images, a column whose size rule is
// not known, data that does not measure up exactly, or nothing to leave out.
func (tr *trimmer) trim(e *replication.RowsEvent, data []byte, p *trimPlan) (bitmap []byte, ok bool) {
	n := int(e.ColumnCount)
	// Type() is Unknown for PARTIAL_UPDATE_ROWS_EVENT; UPDATE_ROWS_EVENTv0 has one bitmap only
	// in go-mysql (no ColumnBitmap2).
	if e.Type() != replication.EnumRowsEventTypeUpdate || e.Version == 0 || n == 0 ||
		n != len(e.Table.ColumnType) || n != len(e.Table.ColumnMeta) ||
		!allSet(e.ColumnBitmap1, n) || !allSet(e.ColumnBitmap2, n) {
		return nil, false
	}
	if c, known := compressed(e); c || !known {
		return nil, false // MariaDB's *_COMPRESSED_EVENT_V1: data is zlib, inflated by DecodeData
	}
	if !p.ok {
		return nil, false
	}
	spans, ok := measure(data, n, p.sizes, tr.spans[:0])
	tr.spans = spans
	if !ok {
		return nil, false
	}
	keep := append(tr.keep[:0], p.inline...)
	tr.keep = keep
	for r := 0; r < len(spans); r += 2 * n {
		before, after := spans[r:r+n], spans[r+n:r+2*n]
		for i := range keep {
			b, a := before[i], after[i]
			keep[i] = keep[i] || (b.start < 0) != (a.start < 0) ||
				(b.start >= 0 && !bytes.Equal(data[b.start:b.end], data[a.start:a.end]))
		}
	}
	kept := 0
	bitmap = make([]byte, (n+7)/8)
	for i, k := range keep {
		if k {
			kept++
			bitmap[i>>3] |= 1 << (i & 7)
		}
	}
	tr.kept = kept
	if kept == n || kept == 0 {
		// All: nothing to leave out. None (no key, no whole column, images alike): images of
		// no bytes would end go-mysql's row loop at once and lose the rows.
		return nil, false
	}
	return bitmap, true
}

// rewrite returns the rows of data, measured and decided by trim, with only the kept columns,
// as a minimal row image would have them, for go-mysql to decode with trim's bitmap.
func (tr *trimmer) rewrite(data []byte) []byte {
	spans, keep, n := tr.spans, tr.keep, len(tr.keep)
	nullLen := (tr.kept + 7) / 8
	size := 0
	for img := 0; img < len(spans); img += n {
		size += nullLen
		for i, s := range spans[img : img+n] {
			if keep[i] && s.start >= 0 {
				size += s.end - s.start
			}
		}
	}
	// A new buffer per event: go-mysql's decoded strings and []byte values point into it.
	rows := make([]byte, 0, size)
	for img := 0; img < len(spans); img += n {
		nulls := len(rows)
		rows = append(rows, make([]byte, nullLen)...)
		bit := 0
		for i, s := range spans[img : img+n] {
			if !keep[i] {
				continue
			}
			if s.start < 0 {
				rows[nulls+(bit>>3)] |= 1 << (bit & 7)
			} else {
				rows = append(rows, data[s.start:s.end]...)
			}
			bit++
		}
	}
	return rows
}

// measure appends to spans where each column of each image of data lies: images of n columns,
// all present (full column bitmaps), each a null bitmap then the non-NULL values. ok false
// when the data does not end exactly after a whole number of before/after pairs.
func measure(data []byte, n int, sizes []colSize, spans []span) (_ []span, ok bool) {
	nullLen := (n + 7) / 8
	at, images := 0, 0
	for at < len(data) {
		if at+nullLen > len(data) {
			return spans, false
		}
		nulls := data[at : at+nullLen]
		at += nullLen
		for i := range n {
			if nulls[i>>3]&(1<<(i&7)) != 0 {
				spans = append(spans, span{start: -1, end: -1})
				continue
			}
			l, ok := sizes[i].of(data[at:])
			if !ok {
				return spans, false
			}
			spans = append(spans, span{at, at + l})
			at += l
		}
		images++
	}
	return spans, images > 0 && images%2 == 0
}

// of is the bytes the value at the start of data takes; ok false when they run past data.
func (s colSize) of(data []byte) (int, bool) {
	if s.prefix == 0 {
		return s.fixed, s.fixed <= len(data)
	}
	if s.prefix > len(data) {
		return 0, false
	}
	var l uint64
	for i := s.prefix - 1; i >= 0; i-- {
		l = l<<8 | uint64(data[i])
	}
	if l > uint64(len(data)-s.prefix) {
		return 0, false
	}
	return s.prefix + int(l), true
}

// plan returns the measuring plan of tme, whose table t describes (tableOf): the stream
// keeps it with t while the table maps of its id describe the table alike.
func (tr *trimmer) plan(tme *replication.TableMapEvent, t *cdc.Table) *trimPlan {
	n := len(tme.ColumnType)
	p := &trimPlan{inline: tr.whole.AppendInline(nil, t), sizes: make([]colSize, n), direct: make([]int, n),
		unsigned: make([]bool, n)}
	if len(tme.ColumnMeta) != n {
		return p
	}
	unsigned := tme.UnsignedMap()
	for i, tp := range tme.ColumnType {
		s, ok := columnSize(tp, tme.ColumnMeta[i])
		if !ok {
			return p
		}
		p.sizes[i], p.direct[i], p.unsigned[i] = s, directKind(tp, tme.ColumnMeta[i]), unsigned[i]
	}
	p.ok = true
	return p
}

// columnSize is the size rule of a column of binlog type tp with table map metadata meta: the
// bytes go-mysql's decodeValue (v1.15) consumes, as MySQL's log_event.cc calc_field_size
// writes them. ok false for a type or metadata whose rule is not certain, or which go-mysql
// would refuse to decode (an event with it is decoded whole, and fails as before).
func columnSize(tp byte, meta uint16) (colSize, bool) {
	fixed := func(n int) (colSize, bool) { return colSize{fixed: n}, true }
	prefixed := func(n int) (colSize, bool) { return colSize{prefix: n}, n >= 1 && n <= 4 }
	if tp == gomysql.MYSQL_TYPE_STRING {
		tp, length := stringType(meta)
		switch tp {
		case gomysql.MYSQL_TYPE_STRING:
			return prefixed(lengthPrefix(length))
		case gomysql.MYSQL_TYPE_ENUM:
			if l := int(meta & 0xFF); l == 1 || l == 2 {
				return fixed(l)
			}
			return colSize{}, false
		case gomysql.MYSQL_TYPE_SET:
			if l := int(meta & 0xFF); l >= 1 && l <= 8 {
				return fixed(l)
			}
			return colSize{}, false
		}
		return colSize{}, false
	}
	switch tp {
	case gomysql.MYSQL_TYPE_TINY, gomysql.MYSQL_TYPE_YEAR:
		return fixed(1)
	case gomysql.MYSQL_TYPE_SHORT:
		return fixed(2)
	case gomysql.MYSQL_TYPE_INT24, gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_TIME:
		return fixed(3)
	case gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_FLOAT, gomysql.MYSQL_TYPE_TIMESTAMP:
		return fixed(4)
	case gomysql.MYSQL_TYPE_LONGLONG, gomysql.MYSQL_TYPE_DOUBLE, gomysql.MYSQL_TYPE_DATETIME:
		return fixed(8)
	case gomysql.MYSQL_TYPE_TIMESTAMP2, gomysql.MYSQL_TYPE_DATETIME2, gomysql.MYSQL_TYPE_TIME2:
		// Whole seconds (TIME2 3 bytes, TIMESTAMP2 4, DATETIME2 5), then (fsp+1)/2 bytes of
		// fraction; meta is fsp, 0 to 6.
		if meta > 6 {
			return colSize{}, false
		}
		base := 3
		switch tp {
		case gomysql.MYSQL_TYPE_TIMESTAMP2:
			base = 4
		case gomysql.MYSQL_TYPE_DATETIME2:
			base = 5
		}
		return fixed(base + int(meta+1)/2)
	case gomysql.MYSQL_TYPE_NEWDECIMAL:
		n, ok := decimalSize(int(meta>>8), int(meta&0xFF))
		return colSize{fixed: n}, ok
	case gomysql.MYSQL_TYPE_BIT:
		// meta: whole bytes in the high byte, remaining bits in the low byte. go-mysql decodes
		// 1 to 8 bytes, and a single bit only as one byte.
		nbits := int(meta>>8)*8 + int(meta&0xFF)
		n := (nbits + 7) / 8
		if n < 1 || n > 8 || (nbits <= 1 && n != 1) {
			return colSize{}, false
		}
		return fixed(n)
	case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING:
		return prefixed(lengthPrefix(int(meta))) // meta: the maximum length in bytes
	case gomysql.MYSQL_TYPE_BLOB, gomysql.MYSQL_TYPE_GEOMETRY, gomysql.MYSQL_TYPE_VECTOR, gomysql.MYSQL_TYPE_JSON:
		return prefixed(int(meta)) // meta: bytes of the length prefix (TINY 1 ... LONG 4)
	}
	return colSize{}, false
}

// lengthPrefix is the bytes of the length before a CHAR or VARCHAR value of at most max bytes.
func lengthPrefix(max int) int {
	if max < 256 {
		return 1
	}
	return 2
}

// decimalSize is the bytes of a DECIMAL(precision, scale) in MySQL's binary format: per side
// of the point, 4 bytes per 9 digits and 0-4 bytes for the rest (strings/decimal.c
// decimal_bin_size).
func decimalSize(precision, scale int) (int, bool) {
	if precision < 1 || precision > 65 || scale < 0 || scale > precision || scale > 38 {
		return 0, false
	}
	digBytes := [10]int{0, 1, 1, 2, 2, 3, 3, 4, 4, 4}
	integral := precision - scale
	return integral/9*4 + digBytes[integral%9] + scale/9*4 + digBytes[scale%9], true
}

// allSet reports whether the first n bits of bitmap are all set.
func allSet(bitmap []byte, n int) bool {
	if len(bitmap) < (n+7)/8 {
		return false
	}
	for i := range n {
		if bitmap[i>>3]&(1<<(i&7)) == 0 {
			return false
		}
	}
	return true
}

// compressedField is go-mysql's unexported RowsEvent.compressed (set for MariaDB's
// *_ROWS_COMPRESSED_EVENT_V1, whose row data DecodeData inflates first); when this go-mysql
// has no such field, no event is trimmed.
var compressedField = rowsEventBool("compressed")

// compressed reports whether e's row data is compressed; known false when it cannot tell.
func compressed(e *replication.RowsEvent) (yes, known bool) {
	if !compressedField.found {
		return false, false
	}
	return compressedField.of(e), true
}

// stringType is the real type and the maximum length in bytes of a column the binlog logs as
// MYSQL_TYPE_STRING (CHAR, BINARY, ENUM and SET), from its table map metadata: the type in
// meta's high byte and the length in its low byte, with bits 4-5 of the high byte (inverted)
// as bits 8-9 of lengths over 255 (MySQL bug 37426), as go-mysql's decodeValue reads them.
func stringType(meta uint16) (tp byte, length int) {
	if meta < 256 {
		return gomysql.MYSQL_TYPE_STRING, int(meta)
	}
	b0 := byte(meta >> 8)
	if b0&0x30 != 0x30 {
		return b0 | 0x30, int(meta&0xFF) | int((b0&0x30)^0x30)<<4
	}
	return b0, int(meta & 0xFF)
}

package binlog

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unsafe"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-mysql-org/go-mysql/utils"
)

// The trimmer decodes the kept columns of an update itself when every one of them has a type
// below (docs/cdc.md, "Update images"): it has measured each value already, and go-mysql would
// first need the rows rewritten. Each value is exactly the one go-mysql v1.15's decodeValue
// returns with the parser options the source sets (syncerConfig: ParseTime, UseDecimal off;
// TimestampStringLocation only formats times ParseTime leaves as text, none of these types):
// the same Go type and value, NULLs and zero dates included
// (TestDirectDecodingYieldsExactlyGoMySQLsValues). Any other kept column, or other parser
// options, and the event goes through go-mysql's own decoding.
const (
	directNone     = iota
	directInt      // TINY, SHORT, INT24, LONG, LONGLONG: signed or unsigned Go ints of the size
	directString   // VARCHAR, VAR_STRING, CHAR/BINARY: a string of the bytes after the length
	directDatetime // DATETIME2: time.Time in UTC, or text where a time.Time does not hold it
	directTime     // TIMESTAMP2: time.Time in time.Local (time.Unix), or the zero date's text
	directDecimal  // NEWDECIMAL: its text with the column's scale
)

// directKind is how a column of binlog type tp and metadata meta is decoded directly, or
// directNone. The sizes are columnSize's, which the plan checked first.
func directKind(tp byte, meta uint16) int {
	if tp == gomysql.MYSQL_TYPE_STRING {
		if tp, _ = stringType(meta); tp == gomysql.MYSQL_TYPE_STRING {
			return directString
		}
		return directNone // ENUM, SET
	}
	switch tp {
	case gomysql.MYSQL_TYPE_TINY, gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_INT24,
		gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_LONGLONG:
		return directInt
	case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING:
		return directString
	case gomysql.MYSQL_TYPE_DATETIME2:
		return directDatetime
	case gomysql.MYSQL_TYPE_TIMESTAMP2:
		return directTime
	case gomysql.MYSQL_TYPE_NEWDECIMAL:
		return directDecimal
	}
	return directNone
}

// boolField is an unexported bool field of go-mysql's RowsEvent: its offset, read without
// reflection per event (found at start by reflect, which checked its type).
type boolField struct {
	off   uintptr
	found bool
}

// rowsEventBool is go-mysql's unexported bool field name of RowsEvent; not found when this
// go-mysql has no such field.
func rowsEventBool(name string) boolField {
	f, ok := reflect.TypeFor[replication.RowsEvent]().FieldByName(name)
	if !ok || len(f.Index) != 1 || f.Type.Kind() != reflect.Bool {
		return boolField{}
	}
	return boolField{off: f.Offset, found: true}
}

// of is the field's value in e; the field was found.
func (f boolField) of(e *replication.RowsEvent) bool {
	return *(*bool)(unsafe.Add(unsafe.Pointer(e), f.off))
}

// The parser options go-mysql copies into each RowsEvent (unexported): a go-mysql without
// them decodes every event itself.
var parseTimeField, useDecimalField = rowsEventBool("parseTime"), rowsEventBool("useDecimal")

// directOptions reports whether e was parsed with the options the direct decoding follows:
// ParseTime on, UseDecimal off.
func directOptions(e *replication.RowsEvent) bool {
	if !parseTimeField.found || !useDecimalField.found {
		return false
	}
	return parseTimeField.of(e) && !useDecimalField.of(e)
}

// decodeKept sets e's rows from data (e's row data, measured into tr.spans) as e.DecodeData
// sets them with bitmap (tr.keep) as both column bitmaps: per image a row of every column, nil
// for NULL and for the columns left out, and the columns left out in SkippedColumns. Text
// points into one copy of the kept values' bytes, as go-mysql's strings point into the rows it
// decodes: the event's data is not kept alive by it. ok false, e's rows unset, for a value
// go-mysql fails to decode (a DECIMAL group over 9 digits): its decoding then fails alike.
func (tr *trimmer) decodeKept(e *replication.RowsEvent, data, bitmap []byte, p *trimPlan) (ok bool) {
	n := int(e.ColumnCount)
	spans, keep := tr.spans, tr.keep
	images := len(spans) / n
	kept, textLen := tr.kept, 0
	for i, k := range keep {
		if k && p.direct[i] == directString {
			for img := i; img < len(spans); img += n {
				if s := spans[img]; s.start >= 0 {
					textLen += s.end - s.start - p.sizes[i].prefix
				}
			}
		}
	}
	text := carve(&tr.text, textLen)[:0]
	values := carve(&tr.values, images*n)
	skips := carve(&tr.skips, images*(n-kept))[:0]
	rows, skipped := carve(&tr.rows, images)[:0], carve(&tr.skipped, images)[:0]
	meta := e.Table.ColumnMeta
	for img := range images {
		row := values[img*n : (img+1)*n : (img+1)*n]
		from := len(skips)
		for i, s := range spans[img*n : (img+1)*n] {
			switch {
			case !keep[i]:
				skips = append(skips, i)
			case s.start < 0: // NULL: nil
			case p.direct[i] == directString:
				at := len(text)
				text = append(text, data[s.start+p.sizes[i].prefix:s.end]...)
				row[i] = utils.ByteSliceToString(text[at:])
			default:
				if row[i], ok = directValue(p.direct[i], data[s.start:s.end], meta[i], p.unsigned[i], &tr.months); !ok {
					return false
				}
			}
		}
		rows = append(rows, row)
		skipped = append(skipped, skips[from:len(skips):len(skips)])
	}
	e.Rows, e.SkippedColumns = rows, skipped
	e.ColumnBitmap1, e.ColumnBitmap2 = bitmap, bitmap
	return true
}

// carveChunk is how many elements decodeKept's chunks (trimmer) hold: a few dozen events' worth.
const carveChunk = 1024

// carve returns the next n zero elements of *chunk, capacity n, from a new chunk when *chunk
// has fewer than n left. A slice carved is never carved again nor written by the trimmer once
// decodeKept returned: the rows, their values and the text their strings point into are the
// event's, then the changes' (the encoder only reads them), as if made for the event alone;
// a chunk is freed once nothing carved from it is referenced.
func carve[T any](chunk *[]T, n int) []T {
	c := *chunk
	if cap(c)-len(c) < n {
		c = make([]T, 0, max(n, carveChunk))
	}
	s := c[len(c) : len(c)+n : len(c)+n]
	*chunk = c[:len(c)+n]
	return s
}

// directValue is go-mysql's value of b, one whole non-NULL value of a column of kind k (not
// directString) with table map metadata meta; ok false where go-mysql fails.
func directValue(k int, b []byte, meta uint16, unsigned bool, months *monthStart) (any, bool) {
	switch k {
	case directInt:
		return intValue(b, unsigned), true
	case directDatetime:
		return datetime2Value(b, int(meta), months), true
	case directTime:
		return timestamp2Value(b, int(meta)), true
	case directDecimal:
		return decimalValue(b, int(meta>>8), int(meta&0xFF))
	}
	return nil, false // not decoded directly: decodeKept's caller checked
}

// intValue is an integer of len(b) bytes (1, 2, 3, 4, 8), little-endian, as go-mysql types it:
// int8/uint8, int16/uint16, int32/uint32 (INT24 too, sign-extended), int64/uint64.
func intValue(b []byte, unsigned bool) any {
	switch len(b) {
	case 1:
		if unsigned {
			return b[0]
		}
		return int8(b[0])
	case 2:
		if unsigned {
			return binary.LittleEndian.Uint16(b)
		}
		return int16(binary.LittleEndian.Uint16(b))
	case 3:
		u := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		if unsigned {
			return u
		}
		if u&0x800000 != 0 {
			u |= 0xFF000000
		}
		return int32(u)
	case 4:
		if unsigned {
			return binary.LittleEndian.Uint32(b)
		}
		return int32(binary.LittleEndian.Uint32(b))
	}
	if unsigned {
		return binary.LittleEndian.Uint64(b)
	}
	return int64(binary.LittleEndian.Uint64(b))
}

// fraction is the microseconds of a DATETIME2/TIMESTAMP2/TIME2 value's fraction bytes b for
// fsp digits, as go-mysql reads them (not checked against fsp's range).
func fraction(b []byte, fsp int) int64 {
	switch fsp {
	case 1, 2:
		return int64(b[0]) * 10000
	case 3, 4:
		return int64(binary.BigEndian.Uint16(b)) * 100
	case 5, 6:
		return int64(b[0])<<16 | int64(b[1])<<8 | int64(b[2])
	}
	return 0
}

// datetime2Value is go-mysql's decodeDatetime2 with ParseTime: a time.Time in UTC from 1970
// on, text (formatDatetime) before 1970 or with a zero month or day, "0000-00-00 00:00:00[.f]"
// for the zero date.
func datetime2Value(b []byte, fsp int, months *monthStart) any {
	intPart := int64(b[0])<<32 | int64(b[1])<<24 | int64(b[2])<<16 | int64(b[3])<<8 | int64(b[4])
	intPart -= replication.DATETIMEF_INT_OFS
	frac := fraction(b[5:], fsp)
	if intPart == 0 {
		return zeroTimeText(int(frac), fsp)
	}
	tmp := intPart<<24 + frac
	if tmp < 0 {
		tmp = -tmp
	}
	ymdhms := tmp >> 24
	ymd, hms := ymdhms>>17, ymdhms%(1<<17)
	ym := ymd >> 5
	day, month, year := int(ymd%(1<<5)), int(ym%13), int(ym/13)
	second, minute, hour := int(hms%(1<<6)), int((hms>>6)%(1<<6)), int(hms>>12)
	if intPart < 107420450816 || month == 0 || day == 0 { // 107420450816: 1970-01-01 00:00:00
		return datetimeText(year, month, day, hour, minute, second, int(frac), fsp)
	}
	// time.Date(year, month, day, hour, minute, second, frac*1000, time.UTC), which normalizes
	// each field past its range into the next one up, adding: the same seconds from the start
	// of the month, and time.Unix normalizes the nanoseconds alike.
	sec := months.unix(year, month) + int64(day-1)*86400 + int64(hour)*3600 + int64(minute)*60 + int64(second)
	return time.Unix(sec, frac*1000).UTC()
}

// monthStart caches the Unix time of the first of the last month datetime2Value met: the
// values of a stream mostly fall in one month.
type monthStart struct {
	year, month int
	sec         int64
}

func (m *monthStart) unix(year, month int) int64 {
	if m.month == 0 || year != m.year || month != m.month {
		m.year, m.month, m.sec = year, month, time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC).Unix()
	}
	return m.sec
}

// timestamp2Value is go-mysql's decodeTimestamp2 with ParseTime: time.Unix of the seconds and
// microseconds (in time.Local), "0000-00-00 00:00:00[.f]" for 0 seconds.
func timestamp2Value(b []byte, fsp int) any {
	sec := int64(binary.BigEndian.Uint32(b))
	usec := fraction(b[4:], fsp)
	if sec == 0 {
		return zeroTimeText(int(usec), fsp)
	}
	return time.Unix(sec, usec*1000)
}

// zeroTimeText is go-mysql's formatZeroTime.
func zeroTimeText(frac, fsp int) string {
	if fsp == 0 {
		return "0000-00-00 00:00:00"
	}
	s := fmt.Sprintf("0000-00-00 00:00:00.%06d", frac)
	return s[0 : len(s)-(6-fsp)]
}

// datetimeText is go-mysql's formatDatetime.
func datetimeText(year, month, day, hour, minute, second, frac, fsp int) string {
	if fsp == 0 {
		return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", year, month, day, hour, minute, second)
	}
	s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d", year, month, day, hour, minute, second, frac)
	return s[0 : len(s)-(6-fsp)]
}

// decimalValue is go-mysql's decodeDecimal without UseDecimal: the text of b, a DECIMAL
// (precision, scale) in MySQL's binary format (strings/decimal.c), the high bit of the first
// byte set for positive values and every byte inverted for negative ones. ok false where
// go-mysql panics (and DecodeData fails): a group of 9 digits after the first digit written
// that holds a number of 10 digits, which MySQL never writes.
func decimalValue(b []byte, precision, scale int) (_ string, ok bool) {
	var buf [32]byte // decimalSize: at most 30 bytes
	data := buf[:copy(buf[:], b)]
	integral := precision - scale
	fullInt, fullFrac := integral/9, scale/9
	partInt, partFrac := integral-fullInt*9, scale-fullFrac*9
	out := make([]byte, 0, precision+3)
	var mask byte // every byte inverted: negative
	if data[0]&0x80 == 0 {
		mask = 0xff
		out = append(out, '-')
	}
	data[0] ^= 0x80
	// group reads a big-endian group of size bytes at data[pos:], inverted by mask.
	group := func(pos, size int) uint32 {
		var v uint32
		for _, c := range data[pos : pos+size] {
			v = v<<8 | uint32(c^mask)
		}
		return v
	}
	digBytes := [10]int{0, 1, 1, 2, 2, 3, 3, 4, 4, 4}
	pos := digBytes[partInt]
	leading := true // no digit written yet
	if v := group(0, pos); v != 0 {
		leading = false
		out = strconv.AppendUint(out, uint64(v), 10)
	}
	for range fullInt {
		v := group(pos, 4)
		pos += 4
		if leading {
			if v != 0 {
				leading = false
				out = strconv.AppendUint(out, uint64(v), 10)
			}
			continue
		}
		if out, ok = appendPadded(out, v, 9); !ok {
			return "", false
		}
	}
	if leading {
		out = append(out, '0')
	}
	if pos < len(data) {
		out = append(out, '.')
		for range fullFrac {
			if out, ok = appendPadded(out, group(pos, 4), 9); !ok {
				return "", false
			}
			pos += 4
		}
		if size := digBytes[partFrac]; size > 0 {
			out, _ = appendPadded(out, group(pos, size), partFrac) // wider: unpadded, as go-mysql
		}
	}
	return string(out), true
}

// appendPadded appends v in decimal, zeros in front to width digits; ok false (and v
// appended unpadded) when v is wider, where go-mysql's padding of a 9-digit group panics.
func appendPadded(b []byte, v uint32, width int) (_ []byte, ok bool) {
	var digits [10]byte
	s := strconv.AppendUint(digits[:0], uint64(v), 10)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...), len(s) <= width
}

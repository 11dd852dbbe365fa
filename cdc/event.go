package cdc

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// SchemaVersion is the "schema" field of every message. Bump it on any incompatible change of
// the message layout or of a value encoding (docs/cdc.md, "Message schema"). Schema 2: a
// message carries a batch of changes, {"schema":2,"changes":[...]}; schema 1 carried one.
const SchemaVersion = 2

// Op is the kind of a row change.
type Op string

const (
	OpInsert Op = "insert"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Kind says how a column's values are encoded in JSON. The binlog adapter maps MySQL column
// types to kinds; the encoding of each kind is documented in docs/cdc.md.
type Kind uint8

const (
	KindInt       Kind = iota // signed integer types: JSON number, exact digits
	KindUint                  // unsigned integer types: JSON number, exact digits (may exceed 2^53)
	KindFloat32               // FLOAT: shortest JSON number that round-trips a float32
	KindFloat64               // DOUBLE
	KindDecimal               // DECIMAL: JSON string with the column's scale ("12.50")
	KindDateTime              // DATETIME: "YYYY-MM-DD hh:mm:ss[.ffffff]" (no zone: DATETIME has none)
	KindTimestamp             // TIMESTAMP: UTC RFC 3339 "YYYY-MM-DDThh:mm:ss[.ffffff]Z"
	KindDate                  // DATE: "YYYY-MM-DD"
	KindTime                  // TIME: "[-]hhh:mm:ss[.ffffff]"
	KindYear                  // YEAR: JSON number
	KindText                  // character types: JSON string (utf8mb4 as-is)
	KindBinary                // BINARY/VARBINARY/BLOB/GEOMETRY: {"$base64": "..."}
	KindJSON                  // JSON: the document embedded as JSON
	KindEnum                  // ENUM: the member's name; "" for the invalid-value index 0
	KindSet                   // SET: the members' names joined by "," as MySQL prints them
	KindBit                   // BIT: JSON number
)

// Column describes one column of a table as the binlog described it at the change's position.
type Column struct {
	Name    string
	Kind    Kind
	Members []string // ENUM/SET member names, in definition order, in UTF-8
	// Charset is the character set of a KindText column's bytes: the binlog carries them as
	// stored, a SQL read as converted to utf8mb4, and both must encode alike.
	Charset Charset
	// Pad is n for a BINARY(n) column (else 0): the binlog drops the value's trailing 0x00
	// bytes, which belong to it (a SQL read returns all n bytes).
	Pad int
	// Frac is the fractional-second digits of a DATETIME or TIMESTAMP column (0-6): a value
	// decoded as a time.Time is written with exactly that many, as the server renders it.
	Frac int
}

// Charset says how the bytes of a text column become the UTF-8 of a JSON string.
type Charset uint8

const (
	// CharsetUTF8: utf8mb4, utf8mb3, ascii; other charsets are not converted either (invalid
	// UTF-8 becomes U+FFFD).
	CharsetUTF8 Charset = iota
	// CharsetLatin1: MySQL's latin1, which is Windows-1252 with 0x81, 0x8D, 0x8F, 0x90 and
	// 0x9D mapped to the C1 controls of the same code (as MySQL converts it to utf8mb4).
	CharsetLatin1
)

// UTF8 converts s from the character set to UTF-8.
func (cs Charset) UTF8(s string) string {
	if cs != CharsetLatin1 {
		return s
	}
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, i, len(s)+(len(s)-i)*2)
	copy(b, s[:i])
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c < utf8.RuneSelf:
			b = append(b, c)
		case c < 0xA0:
			b = utf8.AppendRune(b, rune(cp1252[c-0x80]))
		default:
			b = utf8.AppendRune(b, rune(c))
		}
	}
	return string(b)
}

// cp1252 maps the bytes 0x80-0x9F of MySQL's latin1 to Unicode (the rest is ISO 8859-1).
var cp1252 = [32]uint16{
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
}

// Table is a followed table's shape at one binlog point (from its TABLE_MAP event).
type Table struct {
	Schema  string
	Name    string
	Columns []Column
	PK      []int // column indexes of the primary key; empty when the table has none
}

// FullName returns "db.table".
func (t *Table) FullName() string { return t.Schema + "." + t.Name }

// Change is one row change read from the binlog.
type Change struct {
	Table    *Table
	Op       Op
	Before   []any // nil for inserts
	After    []any // nil for deletes
	Version  Version
	CommitTS time.Time // seconds; see docs/cdc.md for which binlog event stamps it
	Pos      Position  // end of the rows event
	GTID     string
	Epoch    uint32
}

// InlineMax is the most bytes a value's JSON encoding may take in a change; a larger value of a
// column not in WholeColumns is sent as its digest, {"$digest":"<hex SHA-256>"} (docs/cdc.md,
// "Large values"). The indexer reads documents from SQL, never from images: outside keys and
// link columns it only compares a column's before and after (did a shown column change), which
// a digest tells as well as the value. 256 bytes keeps every key-sized value and short text
// inline and stops a LONGBLOB row from making a change bigger than a broker accepts.
const InlineMax = 256

// WholeColumns names, per table ("db.table"), the columns whose values are always sent whole,
// however large: the keys and link columns the indexer finds and matches rows by. A table's
// primary key is always whole. Names compare case-insensitively, as MySQL's do.
type WholeColumns map[string][]string

// AppendInline appends to dst, per column of t, whether its values are sent whole and always
// carried by an update's images: t's primary key and the columns w names for t. The binlog
// source decodes, of an update, only these and the changed columns (docs/cdc.md, "Update
// images"), so this rule is the one both sides apply.
func (w WholeColumns) AppendInline(dst []bool, t *Table) []bool {
	whole := w[t.FullName()]
	for i, col := range t.Columns {
		dst = append(dst, slices.Contains(t.PK, i) ||
			slices.ContainsFunc(whole, func(n string) bool { return strings.EqualFold(n, col.Name) }))
	}
	return dst
}

// What the before and after images of an update carry (cdc.update_images, docs/cdc.md,
// "Update images"). Inserts and deletes always carry every column.
const (
	// UpdateImagesChanged: the primary key, the whole columns (WholeColumns) and the columns
	// whose values differ between the two images; both images carry the same columns. The
	// indexer compares images only to tell whether a column changed, and reads from them only
	// keys and link columns: an absent column reads alike in both images, unchanged.
	UpdateImagesChanged = "changed"
	// UpdateImagesFull: every column, for consumers of the messages other than wye's indexer.
	UpdateImagesFull = "full"
	// DefaultUpdateImages is what an update's images carry unless configured.
	DefaultUpdateImages = UpdateImagesChanged
)

// encoder appends changes, each one element of a message's "changes" array:
//
//	{"table":"db.t","op":"update","pk":{...},"before":{...},"after":{...},
//	 "version":N,"commit_ts":"...Z","position":"file:pos","gtid":"0-1-42","epoch":1}
//
// It caches the renderings that consecutive changes share: the table's column keys, the
// position of one rows event, the commit second of one transaction.
type encoder struct {
	whole  WholeColumns
	table  *Table
	name   string   // table.FullName()
	keys   [][]byte // `"column":` of each of table's columns
	inline []bool   // per column of table: sent whole whatever its size (a key or link column)
	// full sends every column of an update's images; else they hold the inline columns and
	// the columns the update changed: sent, per column, for the change being appended.
	full    bool
	sent    []bool
	pos     Position
	posJSON []byte // pos as a JSON string
	tsSec   int64
	tsStr   string
}

func (e *encoder) appendChange(b []byte, c *Change) ([]byte, error) {
	if c.Table != e.table {
		e.table, e.name = c.Table, c.Table.FullName()
		e.keys, e.inline = e.keys[:0], e.whole.AppendInline(e.inline[:0], c.Table)
		for _, col := range c.Table.Columns {
			e.keys = append(e.keys, append(appendString(nil, col.Name), ':'))
		}
	}
	b = append(b, `{"table":`...)
	b = appendString(b, e.name)
	b = append(b, `,"op":"`...)
	b = append(b, c.Op...)
	b = append(b, `","pk":`...)
	key := c.After
	if key == nil {
		key = c.Before
	}
	var err error
	if len(c.Table.PK) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		for i, ci := range c.Table.PK {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = e.appendColumn(b, c, ci, key); err != nil {
				return nil, err
			}
		}
		b = append(b, '}')
	}
	var sent []bool // nil: every column
	if c.Before != nil && c.After != nil && !e.full {
		e.sent = e.sent[:0]
		for i, in := range e.inline {
			e.sent = append(e.sent, in || i >= len(c.Before) || i >= len(c.After) || !sameValue(c.Before[i], c.After[i]))
		}
		sent = e.sent
	}
	if c.Before != nil {
		b = append(b, `,"before":`...)
		if b, err = e.appendRow(b, c, c.Before, sent); err != nil {
			return nil, err
		}
	}
	if c.After != nil {
		b = append(b, `,"after":`...)
		if b, err = e.appendRow(b, c, c.After, sent); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(c.Version), 10)
	if sec := c.CommitTS.Unix(); e.tsStr == "" || sec != e.tsSec {
		e.tsSec, e.tsStr = sec, c.CommitTS.UTC().Format(time.RFC3339)
	}
	b = append(b, `,"commit_ts":"`...)
	b = append(b, e.tsStr...)
	if e.posJSON == nil || c.Pos != e.pos {
		e.pos, e.posJSON = c.Pos, appendString(e.posJSON[:0], c.Pos.String())
	}
	b = append(b, `","position":`...)
	b = append(b, e.posJSON...)
	if c.GTID != "" {
		b = append(b, `,"gtid":`...)
		b = appendString(b, c.GTID)
	}
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, uint64(c.Epoch), 10)
	return append(b, '}'), nil
}

// appendRow appends the image row: every column, or, sent not nil, the columns it marks.
func (e *encoder) appendRow(b []byte, c *Change, row []any, sent []bool) ([]byte, error) {
	b = append(b, '{')
	first := true
	var err error
	for i := range c.Table.Columns {
		if sent != nil && !sent[i] {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		if b, err = e.appendColumn(b, c, i, row); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// sameValue reports whether a and b, two values go-mysql decoded from one column, surely have
// the same encoding, without encoding them: the same type and an equal value (a float bit for
// bit: -0 and 0 are written apart; a time the same instant in the same location). A type it does
// not know, or two types, count as different: an update's images then carry the column, which
// is always correct (docs/cdc.md, "Update images").
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string, int64, int32, int16, int8, int, uint64, uint32, uint16, uint8, uint:
		return a == b // comparable: == of two interfaces holds only for one type and value
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case float32:
		y, ok := b.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y) && x.Location() == y.Location()
	}
	return false
}

func (e *encoder) appendColumn(b []byte, c *Change, i int, row []any) ([]byte, error) {
	col := c.Table.Columns[i]
	b = append(b, e.keys[i]...)
	if i >= len(row) {
		return nil, fmt.Errorf("encode %s.%s: row has %d values, want %d", c.Table.FullName(), col.Name, len(row), len(c.Table.Columns))
	}
	var err error
	if e.inline[i] {
		b, err = AppendValue(b, col, row[i])
	} else {
		b, err = AppendValueOrDigest(b, col, row[i])
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s.%s: %w", c.Table.FullName(), col.Name, err)
	}
	return b, nil
}

// Batch builds one message: {"schema":2,"changes":[...]}. Changes are appended in binlog
// order; a change that cannot be encoded leaves the batch as it was.
type Batch struct {
	Compress bool // zstd a body of CompressMinBytes or more (Message.ContentEncoding "zstd")
	// Whole names the columns sent whole however large (keys and link columns); every other
	// value over InlineMax is sent as its digest.
	Whole WholeColumns
	// FullImages sends every column in an update's images (UpdateImagesFull); else they carry
	// the primary key, the Whole columns and the columns the update changed.
	FullImages bool

	buf     []byte
	n       int
	table   string // the one table of every change, or MixedRoutingKey
	first   Version
	firstAt time.Time // when the first change was added (linger)
	enc     encoder
}

const batchHead = `{"schema":2,"changes":[`

// Add appends c. On an error the batch is unchanged.
func (bt *Batch) Add(c *Change) error {
	mark := len(bt.buf)
	bt.enc.whole, bt.enc.full = bt.Whole, bt.FullImages
	if bt.n == 0 {
		bt.buf = append(bt.buf[:0], batchHead...)
	} else {
		bt.buf = append(bt.buf, ',')
	}
	b, err := bt.enc.appendChange(bt.buf, c)
	if err != nil {
		bt.buf = bt.buf[:mark]
		return err
	}
	bt.buf = b
	name := bt.enc.name
	switch {
	case bt.n == 0:
		bt.table, bt.first, bt.firstAt = name, c.Version, time.Now()
	case bt.table != name:
		bt.table = MixedRoutingKey
	}
	bt.n++
	return nil
}

// Len is the number of changes in the batch; Size its encoded bytes so far.
func (bt *Batch) Len() int  { return bt.n }
func (bt *Batch) Size() int { return len(bt.buf) }

// Take returns the message and empties the batch. The body is the caller's: the batch
// starts its next body in a buffer the message does not share.
func (bt *Batch) Take() Message {
	raw := append(bt.buf, "]}"...)
	m := Message{RoutingKey: bt.table, Body: raw, Changes: bt.n,
		MessageID: strconv.FormatInt(int64(bt.first), 10) + "+" + strconv.Itoa(bt.n)}
	if bt.Compress && len(raw) >= CompressMinBytes {
		m.Body = zstdEncoder.EncodeAll(raw, make([]byte, 0, len(raw)/4))
		m.ContentEncoding = "zstd"
		bt.buf = raw[:0]
	} else {
		bt.buf = make([]byte, 0, cap(raw))
	}
	bt.n = 0
	return m
}

// CompressMinBytes is the smallest body Batch compresses; a smaller one is sent plain. A small
// body is what a light stream publishes each linger (about 70 changes at 3,000 changes/s):
// compressing those was 10% of wye run's CPU at that rate (docs/cdc.md, "Message schema 2"),
// the encoder's tables cold by each next message, to save the broker a few dozen KiB. Batches
// of a backlog (up to 1 MiB) are compressed.
const CompressMinBytes = 64 << 10

// zstdEncoder compresses message bodies; EncodeAll is safe for concurrent use. The fastest
// level: batches of JSON changes shrink many times over at a few hundred MB/s of one core.
var zstdEncoder = func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // only for invalid options
	}
	return e
}()

// AppendValue appends the JSON encoding of v, a value decoded by go-mysql from a column of
// col.Kind, to b. NULL (nil) is null for every kind.
func AppendValue(b []byte, col Column, v any) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	switch col.Kind {
	case KindInt, KindUint, KindYear, KindBit:
		out, ok := appendInteger(b, v)
		if !ok {
			return b, fmt.Errorf("integer column: unexpected %T", v)
		}
		return out, nil
	case KindFloat32, KindFloat64:
		return appendFloat(b, v)
	case KindText:
		s, ok := v.(string)
		if !ok {
			s = text(v)
		}
		if col.Charset != CharsetUTF8 {
			s = col.Charset.UTF8(s)
		}
		return appendString(b, s), nil
	case KindDecimal, KindDateTime, KindDate, KindTime:
		switch x := v.(type) {
		case time.Time: // DATETIME, as go-mysql decodes it with ParseTime (in UTC: no zone)
			return appendTime(b, x, col.Frac, false), nil
		case string:
			return appendString(b, x), nil
		case []byte:
			return appendString(b, string(x)), nil
		}
		return appendString(b, text(v)), nil
	case KindTimestamp:
		if t, ok := v.(time.Time); ok {
			return appendTime(b, t, col.Frac, true), nil
		}
		return appendString(b, timestampRFC3339(text(v))), nil
	case KindBinary:
		return appendBinary(b, v, col.Pad)
	case KindJSON:
		return appendJSON(b, v)
	case KindEnum:
		return appendEnum(b, col.Members, v)
	case KindSet:
		return appendSet(b, col.Members, v)
	}
	return b, fmt.Errorf("unknown column kind %d", col.Kind)
}

// digestHead and digestTail frame the digest of a large value.
const (
	digestHead = `{"$digest":"`
	digestTail = `"}`
)

// AppendValueOrDigest appends v as AppendValue does, or, when that encoding would be longer
// than InlineMax, {"$digest":"<hex SHA-256>"} of the value's bytes: a binary value's bytes
// (padded like its encoding), text in UTF-8, a JSON document as the binlog gives it, any other
// kind its JSON encoding. Equal values have equal digests, so the indexer's comparison of
// before and after still tells whether the column changed. A binary, text or JSON value whose
// length alone puts it over InlineMax is hashed without being encoded.
func AppendValueOrDigest(b []byte, col Column, v any) ([]byte, error) {
	start := len(b)
	if !surelyOverInline(col, v) {
		out, err := AppendValue(b, col, v)
		if err != nil || len(out)-start <= InlineMax {
			return out, err
		}
		b = out
	}
	if raw, pad, ok := valueBytes(col, v); ok {
		return appendDigest(b[:start], raw, pad), nil
	}
	enc := slices.Clone(b[start:]) // appendDigest writes over b[start:]
	return appendDigest(b[:start], enc, 0), nil
}

// surelyOverInline reports, from its length alone, that the encoding of a binary, text or
// JSON value is longer than InlineMax: exact for binary (base64 of the padded bytes), a lower
// bound for text (escapes and latin1 conversion only add) and JSON (embedded as it is).
func surelyOverInline(col Column, v any) bool {
	n := 0
	switch x := v.(type) {
	case []byte:
		n = len(x)
	case string:
		n = len(x)
	default:
		return false
	}
	switch col.Kind {
	case KindBinary:
		return len(base64Head)+base64.StdEncoding.EncodedLen(max(n, col.Pad))+len(base64Tail) > InlineMax
	case KindText:
		return n+2 > InlineMax
	case KindJSON:
		return n > InlineMax
	}
	return false
}

// valueBytes returns the bytes a large value of col is digested from: the value's own bytes
// (pad: zero bytes a BINARY(n) value is padded with), or ok false for kinds digested from
// their JSON encoding.
func valueBytes(col Column, v any) (raw []byte, pad int, ok bool) {
	switch col.Kind {
	case KindBinary:
		if raw, ok = bytesOf(v); !ok {
			return nil, 0, false
		}
		return raw, max(col.Pad-len(raw), 0), true
	case KindText:
		s, isString := v.(string)
		if !isString {
			s = text(v)
		}
		return []byte(col.Charset.UTF8(s)), 0, true
	case KindJSON:
		return []byte(text(v)), 0, true
	}
	return nil, 0, false
}

// base64Head and base64Tail frame a binary value.
const (
	base64Head = `{"$base64":"`
	base64Tail = `"}`
)

func appendDigest(b, raw []byte, pad int) []byte {
	h := sha256.New()
	h.Write(raw)
	if pad > 0 {
		h.Write(make([]byte, pad))
	}
	b = append(b, digestHead...)
	b = hex.AppendEncode(b, h.Sum(nil))
	return append(b, digestTail...)
}

// appendFloat appends a FLOAT (float32) or DOUBLE (float64) value as the shortest JSON number
// that round-trips it; NaN and infinities have no JSON form.
func appendFloat(b []byte, v any) ([]byte, error) {
	var f float64
	bits := 64
	switch x := v.(type) {
	case float32:
		f, bits = float64(x), 32
	case float64:
		f = x
	default:
		return b, fmt.Errorf("float column: unexpected %T", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("float column: %v has no JSON form", f)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits), nil
}

// bytesOf is the bytes of a binary column's value as go-mysql decodes it.
func bytesOf(v any) ([]byte, bool) {
	switch x := v.(type) {
	case []byte:
		return x, true
	case string:
		return []byte(x), true
	}
	return nil, false
}

// appendBinary appends the bytes of v, padded with 0x00 to pad bytes, as {"$base64":"..."}.
func appendBinary(b []byte, v any, pad int) ([]byte, error) {
	raw, ok := bytesOf(v)
	if !ok {
		return b, fmt.Errorf("binary column: unexpected %T", v)
	}
	if len(raw) < pad {
		raw = append(raw[:len(raw):len(raw)], make([]byte, pad-len(raw))...)
	}
	b = append(b, base64Head...)
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, base64Tail...), nil
}

// appendJSON embeds the JSON document v, after checking that it is valid JSON.
func appendJSON(b []byte, v any) ([]byte, error) {
	raw := []byte(text(v))
	if len(raw) == 0 {
		// An empty JSON value (INSERT IGNORE of NULL into NOT NULL) reads back as null.
		return append(b, "null"...), nil
	}
	if !json.Valid(raw) {
		return b, fmt.Errorf("json column: invalid document %.40q", raw)
	}
	return append(b, raw...), nil
}

// appendEnum appends the name of the ENUM member at index v (1-based); "" for index 0, the
// invalid value, and for an index past members.
func appendEnum(b []byte, members []string, v any) ([]byte, error) {
	n, ok := toUint(v)
	if !ok {
		return b, fmt.Errorf("enum column: unexpected %T", v)
	}
	if n == 0 || n > uint64(len(members)) {
		return appendString(b, ""), nil
	}
	return appendString(b, members[n-1]), nil
}

// appendSet appends the names of the SET members whose bits v sets, joined by ",".
func appendSet(b []byte, members []string, v any) ([]byte, error) {
	n, ok := toUint(v)
	if !ok {
		return b, fmt.Errorf("set column: unexpected %T", v)
	}
	var names []string
	for i, m := range members {
		if n&(1<<uint(i)) != 0 {
			names = append(names, m)
		}
	}
	return appendString(b, strings.Join(names, ",")), nil
}

// timeLayouts render DATETIME values with 0-6 fractional digits, as the server does.
var timeLayouts = [7]string{"2006-01-02 15:04:05", "2006-01-02 15:04:05.0", "2006-01-02 15:04:05.00",
	"2006-01-02 15:04:05.000", "2006-01-02 15:04:05.0000", "2006-01-02 15:04:05.00000", "2006-01-02 15:04:05.000000"}

// appendTime appends t, in UTC, as a JSON string with frac fractional digits: a DATETIME
// "YYYY-MM-DD hh:mm:ss[.f]", or, rfc3339, a TIMESTAMP "YYYY-MM-DDThh:mm:ss[.f]Z". The same
// text as the string go-mysql would have formatted without ParseTime, without fmt. Written
// out by hand for the years 0-9999 a column holds (time.AppendFormat's layout parsing was a
// third of encoding a change with two DATETIMEs); the digits are time.AppendFormat's, the
// fraction truncated as it does (TestHandFormattedTimesMatchAppendFormat).
func appendTime(b []byte, t time.Time, frac int, rfc3339 bool) []byte {
	frac = min(max(frac, 0), 6)
	t = t.UTC()
	b = append(b, '"')
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		start := len(b)
		b = t.AppendFormat(b, timeLayouts[frac])
		if rfc3339 {
			b[start+10] = 'T'
		}
	} else {
		hour, minute, sec := t.Clock()
		sep := byte(' ')
		if rfc3339 {
			sep = 'T'
		}
		b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
			byte('0'+int(month)/10), byte('0'+int(month)%10), '-', byte('0'+day/10), byte('0'+day%10), sep,
			byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
			byte('0'+sec/10), byte('0'+sec%10))
		if frac > 0 {
			b = append(b, '.')
			ns := t.Nanosecond()
			for d := 100_000_000; frac > 0; d, frac = d/10, frac-1 {
				b = append(b, byte('0'+ns/d%10))
			}
		}
	}
	if rfc3339 {
		b = append(b, 'Z')
	}
	return append(b, '"')
}

// timestampRFC3339 turns go-mysql's UTC "YYYY-MM-DD hh:mm:ss[.f]" into RFC 3339. The zero
// timestamp has no instant: it stays "0000-00-00 00:00:00".
func timestampRFC3339(s string) string {
	if len(s) < 19 || strings.HasPrefix(s, "0000-00-00") {
		return s
	}
	return s[:10] + "T" + s[11:] + "Z"
}

func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}

func appendInteger(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case int8:
		return strconv.AppendInt(b, int64(x), 10), true
	case int16:
		return strconv.AppendInt(b, int64(x), 10), true
	case int32:
		return strconv.AppendInt(b, int64(x), 10), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint64:
		return strconv.AppendUint(b, x, 10), true
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), true
	}
	return b, false
}

// toUint reads an ENUM index or SET bitmap; negative values (impossible from go-mysql) fail.
func toUint(v any) (uint64, bool) {
	var buf [24]byte
	s, ok := appendInteger(buf[:0], v)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s), 10, 64)
	return n, err == nil
}

// plainJSON marks the bytes appendString copies as they are: ASCII from 0x20 on but for ", \
// and the HTML characters <, > and &.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string, byte for byte as encoding/json writes it: <, >
// and & escaped for HTML, U+2028 and U+2029 escaped, invalid UTF-8 (a latin1 column read as
// bytes) replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plainJSON[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

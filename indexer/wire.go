package indexer

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// The fast path of decode: a message as cdc writes it (docs/cdc.md, "Message schema 2") is
// read by one pass over its text, without reflection, and every value and column name of its
// images is a substring of one string copy of the body (no allocation per value). It accepts
// a strict subset of what encoding/json accepts and gives the same result for it: anything
// else (a retry message, an escaped key or field, a field name that differs only in case, a
// duplicate field, a type that encoding/json would refuse, trailing data) makes it give up,
// and decode reads the message with encoding/json as before, poison classification included.

// fastWire parses body into a wire whose images are Rows (w.fast); ok is false when the
// fast path gives up. Its values are substrings of a copy of body, or with view of body
// itself, which must then never be written again.
func fastWire(body []byte, view bool) (w wire, ok bool) {
	var p scanner
	if view {
		p.s = unsafe.String(unsafe.SliceData(body), len(body))
	} else {
		p.s = string(body)
	}
	if !p.object(func(key string) bool { return p.topField(&w, key) }) {
		return wire{}, false
	}
	p.space()
	if p.i != len(p.s) {
		return wire{}, false
	}
	w.fast = true
	for i := range w.Changes {
		w.Changes[i].fast = true
	}
	return w, true
}

// changesHint bounds the changes room is made for at once: cdc's default batch
// (cdc.batch_changes, docs/cdc.md).
const changesHint = 2048

type scanner struct {
	s     string
	i     int
	last  *Columns // the columns of the last image
	arena rowArena // the values of the images
	// names and vals are the image being read, reused from image to image.
	names []string
	vals  []Value
}

// Fields of a message and of a change. A field name that is not one of these but equal to
// one under case folding would be matched by encoding/json: the fast path gives up on it.
var wireFields = []string{"schema", "changes", "table", "op", "before", "after", "version", "commit_ts", "entity", "key"}

func (p *scanner) topField(w *wire, key string) bool {
	switch key {
	case "schema":
		if w.Schema != nil {
			return false
		}
		if p.null() {
			return false // encoding/json leaves it nil: rare enough to leave to it
		}
		n, ok := p.int()
		if !ok || n != int64(int(n)) {
			return false
		}
		s := int(n)
		w.Schema = &s
		return true
	case "changes":
		if w.Changes != nil {
			return false
		}
		w.Changes = []wire{}
		return p.array(func() bool {
			var c wire
			start := p.i
			if !p.object(func(key string) bool { return p.changeField(&c, key) }) {
				return false
			}
			if len(w.Changes) == 0 {
				// The changes of one message are mostly alike: room for as many more as the
				// rest of the body holds at the first one's size, at most changesHint (a
				// small change before a large row must not reserve room for thousands).
				w.Changes = make([]wire, 0, min(1+(len(p.s)-p.i)/max(p.i-start, 1), changesHint))
			}
			w.Changes = append(w.Changes, c)
			return true
		})
	case "entity", "key":
		return false // a retry message: small, and left to encoding/json
	}
	return p.changeField(w, key)
}

// changeField reads one field of a change (schema 1 at the top level, schema 2 in changes).
func (p *scanner) changeField(w *wire, key string) bool {
	var seen *bool
	switch key {
	case "table":
		seen = &w.seen.table
		s, ok := p.plainString()
		w.Table = s
		return p.once(seen) && ok
	case "op":
		seen = &w.seen.op
		s, ok := p.plainString()
		w.Op = s
		return p.once(seen) && ok
	case "commit_ts":
		seen = &w.seen.commitTS
		s, ok := p.plainString()
		w.CommitTS = s
		return p.once(seen) && ok
	case "version":
		seen = &w.seen.version
		n, ok := p.int()
		w.Version = n
		return p.once(seen) && ok
	case "before":
		seen = &w.seen.before
		r, ok := p.row()
		w.before = r
		return p.once(seen) && ok
	case "after":
		seen = &w.seen.after
		r, ok := p.row()
		w.after = r
		return p.once(seen) && ok
	case "schema", "changes", "entity", "key":
		return false // not expected inside a change: left to encoding/json
	}
	for _, f := range wireFields {
		if strings.EqualFold(key, f) {
			return false
		}
	}
	return p.skip()
}

func (p *scanner) once(seen *bool) bool {
	if *seen {
		return false
	}
	*seen = true
	return true
}

func (p *scanner) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// consume skips space and then c, reporting whether c was there.
func (p *scanner) consume(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *scanner) null() bool {
	p.space()
	if strings.HasPrefix(p.s[p.i:], "null") {
		p.i += 4
		return true
	}
	return false
}

// object reads {"key": value, ...}, field calling read the value of each key (an unescaped,
// valid UTF-8 key; any other makes it give up).
func (p *scanner) object(field func(key string) bool) bool {
	if !p.consume('{') {
		return false
	}
	if p.consume('}') {
		return true
	}
	for {
		key, ok := p.plainString()
		if !ok || !p.consume(':') || !field(key) {
			return false
		}
		if p.consume(',') {
			continue
		}
		return p.consume('}')
	}
}

func (p *scanner) array(elem func() bool) bool {
	if !p.consume('[') {
		return false
	}
	if p.consume(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.consume(',') {
			continue
		}
		return p.consume(']')
	}
}

// plainString reads a string without escapes, in valid UTF-8: its text is the decoded string.
func (p *scanner) plainString() (string, bool) {
	if !p.consume('"') {
		return "", false
	}
	start := p.i
	ascii := true
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			return s, ascii || utf8.ValidString(s)
		case c == '\\' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return "", false
}

// int reads an integer that fits int64, as encoding/json would into an int64 field.
func (p *scanner) int() (int64, bool) {
	p.space()
	start := p.i
	if p.i < len(p.s) && p.s[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i < len(p.s) {
		switch p.s[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	txt := p.s[start:p.i]
	if len(txt) > 1 && (txt[0] == '0' || strings.HasPrefix(txt, "-0")) {
		return 0, false // not JSON
	}
	n, err := strconv.ParseInt(txt, 10, 64)
	return n, err == nil
}

// row reads an image: null (the nil Row), or an object of column -> value, each value its
// compact JSON text (valueOf) as a substring of the body when it is a scalar. Its columns are
// the previous image's when they are the same names in the same order (the images of one
// table mostly are): then no Columns is built. An image that repeats a column makes it give
// up (encoding/json keeps the last value).
func (p *scanner) row() (Row, bool) {
	if p.null() {
		return Row{}, true
	}
	names, vals := p.names[:0], p.vals[:0]
	start := p.i
	ok := p.object(func(col string) bool {
		p.space()
		start := p.i
		if !p.skip() {
			return false
		}
		raw := p.s[start:p.i]
		v := Value(raw)
		if raw[0] == '{' || raw[0] == '[' {
			v = valueOf(json.RawMessage(raw)) // compacted: may hold space
		}
		names, vals = append(names, col), append(vals, v)
		return true
	})
	p.names, p.vals = names, vals
	if !ok {
		return Row{}, false
	}
	cols := p.last
	if cols == nil || !slices.Equal(cols.names, names) {
		if cols, ok = newColumns(slices.Clone(names)); !ok {
			return Row{}, false
		}
		p.last = cols
	}
	// When room runs out: room for as many more values as the rest of the body holds at this
	// image's size per value, at most arenaValues.
	per := max((p.i-start)/max(len(vals), 1), 1)
	r := Row{cols: cols, vals: p.arena.next(len(vals), min(len(vals)+(len(p.s)-p.i)/per, arenaValues))}
	copy(r.vals, vals)
	return r, true
}

// arenaValues bounds the values of images one allocation holds: 64 KiB.
const arenaValues = 4096

// skip passes over one valid JSON value.
func (p *scanner) skip() bool {
	p.space()
	if p.i >= len(p.s) {
		return false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(func(string) bool { return p.skip() })
	case c == '[':
		return p.array(p.skip)
	case c == '"':
		return p.skipString()
	case c == '-' || c >= '0' && c <= '9':
		return p.skipNumber()
	}
	for _, lit := range []string{"null", "true", "false"} {
		if strings.HasPrefix(p.s[p.i:], lit) {
			p.i += len(lit)
			return true
		}
	}
	return false
}

func (p *scanner) skipString() bool {
	p.i++ // the opening quote
	for p.i < len(p.s) {
		if !stringStop[p.s[p.i]] {
			p.i++
			continue
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			p.i++
			if p.i >= len(p.s) {
				return false
			}
			switch p.s[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if p.i+4 >= len(p.s) {
					return false
				}
				for _, h := range []byte(p.s[p.i+1 : p.i+5]) {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				p.i += 4
			default:
				return false
			}
		}
		p.i++
	}
	return false
}

// skipNumber passes over a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *scanner) skipNumber() bool {
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.s[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.s) && p.s[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return false
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// stringStop marks the bytes of a JSON string that end a run of plain text: the closing quote,
// an escape, a control character (invalid).
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

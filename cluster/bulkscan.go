package cluster

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// scanBulkResponse is the fast path of parseBulkResponse: it reads the fields of BulkItem
// from a _bulk answer and skips everything else without reflection. A 256-item answer is
// about 50 KB, and encoding/json spent more CPU on it than wye spends building the request
// (issue 4's profile). ok is false as soon as it meets anything it does not expect (an
// escaped string, a duplicate action, a malformed value): the caller then decodes the answer
// with encoding/json, so this path can make the parse cheaper, never change what an answer
// means. Item errors are rare and are decoded with encoding/json.
func scanBulkResponse(body []byte) (items []BulkItem, ok bool) {
	s := scanner{b: body}
	if !s.consume('{') {
		return nil, false
	}
	seen := false
	if s.consume('}') {
		return nil, s.end()
	}
	for {
		key, ok := s.raw()
		if !ok || !s.consume(':') {
			return nil, false
		}
		if string(key) == "items" {
			if seen {
				return nil, false
			}
			seen = true
			if items, ok = s.items(); !ok {
				return nil, false
			}
		} else if !s.skip(0) {
			return nil, false
		}
		if s.consume(',') {
			continue
		}
		if !s.consume('}') {
			return nil, false
		}
		return items, s.end()
	}
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips white space and c, reporting whether c was there.
func (s *scanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) items() ([]BulkItem, bool) {
	if !s.consume('[') {
		return nil, false
	}
	items := make([]BulkItem, 0, 256)
	if s.consume(']') {
		return items, true
	}
	prev := &BulkItem{}
	for {
		it, ok := s.item(prev)
		if !ok {
			return nil, false
		}
		items = append(items, it)
		prev = &items[len(items)-1]
		if s.consume(',') {
			continue
		}
		return items, s.consume(']')
	}
}

// item reads {"<op>":{...}} with exactly one key, a known action. prev is the item before.
func (s *scanner) item(prev *BulkItem) (BulkItem, bool) {
	var it BulkItem
	if !s.consume('{') {
		return it, false
	}
	op, ok := s.raw()
	if !ok || !s.consume(':') {
		return it, false
	}
	switch string(op) {
	case "index":
		it.Op = "index"
	case "create":
		it.Op = "create"
	case "update":
		it.Op = "update"
	case "delete":
		it.Op = "delete"
	default:
		return it, false
	}
	if !s.consume('{') {
		return it, false
	}
	if !s.consume('}') {
		for {
			key, ok := s.raw()
			if !ok || !s.consume(':') {
				return it, false
			}
			switch string(key) {
			case "_index":
				// One index name repeats in every item: keep one copy.
				var v []byte
				if v, ok = s.raw(); ok && utf8.Valid(v) {
					if string(v) == prev.Index {
						it.Index = prev.Index
					} else {
						it.Index = string(v)
					}
				} else {
					ok = false
				}
			case "_id":
				it.ID, ok = s.str()
			case "result":
				var v []byte
				if v, ok = s.raw(); ok {
					switch string(v) {
					case "created", "updated", "deleted", "not_found", "noop":
						it.Result = results[string(v)]
					default:
						it.Result, ok = string(v), utf8.Valid(v)
					}
				}
			case "_version":
				it.Version, ok = s.int()
			case "status":
				var n int64
				n, ok = s.int()
				it.Status = int(n)
			case "error":
				s.ws()
				start := s.i
				if ok = s.skip(0); ok {
					var e errorObject
					if ok = json.Unmarshal(s.b[start:s.i], &e) == nil; ok {
						it.ErrType, it.Reason = e.Type, e.fullReason()
					}
				}
			default:
				ok = s.skip(0)
			}
			if !ok {
				return it, false
			}
			if s.consume(',') {
				continue
			}
			if !s.consume('}') {
				return it, false
			}
			break
		}
	}
	if !s.consume('}') { // a second action key is not expected: let encoding/json judge
		return it, false
	}
	it.Class = Classify(it.Status, it.ErrType, it.Op)
	return it, true
}

var results = map[string]string{"created": "created", "updated": "updated", "deleted": "deleted", "not_found": "not_found", "noop": "noop"}

// str reads a string without escapes, in valid UTF-8 (what encoding/json would return as is).
func (s *scanner) str() (string, bool) {
	v, ok := s.raw()
	if !ok || !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// raw reads a string without escapes and returns its bytes, unchecked for UTF-8.
func (s *scanner) raw() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// int reads an integer that fits int64.
func (s *scanner) int() (int64, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		s.i++
	}
	tok := s.b[start:s.i]
	if !validNumber(tok) {
		return 0, false
	}
	if len(tok) < 19 { // fits int64 without overflow checks
		var n int64
		neg := tok[0] == '-'
		if neg {
			tok = tok[1:]
		}
		for _, c := range tok {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, true
	}
	n, err := strconv.ParseInt(string(tok), 10, 64)
	return n, err == nil
}

// skip passes over one JSON value, checking its syntax.
func (s *scanner) skip(depth int) bool {
	if depth > 32 {
		return false
	}
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.skipString()
	case c == '{':
		s.i++
		if s.consume('}') {
			return true
		}
		for {
			s.ws()
			if !s.skipString() || !s.consume(':') || !s.skip(depth+1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume('}')
		}
	case c == '[':
		s.i++
		if s.consume(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume(']')
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		start := s.i
		for s.i < len(s.b) && isNumberByte(s.b[s.i]) {
			s.i++
		}
		return validNumber(s.b[start:s.i])
	}
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// skipString passes over a string (escapes allowed) at s.i.
func (s *scanner) skipString() bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(s.b)-s.i < 5 {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 4
			default:
				return false
			}
		}
		s.i++
	}
	return false
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// validNumber checks the JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

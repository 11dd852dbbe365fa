// Package compare tells documents apart: the one comparison under the nightly resync (and the
// diff and promote's preflight to come). In: a document built from the source with its snapshot
// version, and what a cluster holds under the same id. Out: a class. Owns: what "the same
// document" means (docs/architecture.md, "Resync").
package compare

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
)

// Class is how a cluster's copy of a document stands against the source's.
type Class int

const (
	Equal     Class = iota // same content (the version field aside)
	Missing                // the cluster does not hold the document
	Different              // other content, at a version not above the snapshot's: the cluster is wrong
	Newer                  // other content at a version above the snapshot's: a later stream write, left alone
)

var classNames = [...]string{Equal: "equal", Missing: "missing", Different: "different", Newer: "newer"}

func (c Class) String() string { return classNames[c] }

// Doc classifies the cluster's copy of one document (found, theirs, theirVersion) against the
// source's (ours, written with version). Invariant: a copy the stream wrote after the snapshot
// (a version above it) is never called Different, so a resync never tries to overwrite a newer
// write (the external version would refuse it anyway).
func Doc(ours []byte, version int64, found bool, theirs []byte, theirVersion int64, versionField string) Class {
	switch {
	case !found:
		return Missing
	case Same(ours, theirs, versionField):
		return Equal
	case theirVersion > version:
		return Newer
	default:
		return Different
	}
}

// Same reports whether two JSON documents hold the same content, their top-level versionField
// aside (each copy carries the version it was written with). Member order and number formats
// (1.0 and 1, 1e2 and 100) do not matter; array order does. The fast path compares the bytes
// around the version member, which is what wye writes and the engines store; anything else
// is decoded and compared canonically.
func Same(a, b []byte, versionField string) bool {
	a1, a2, okA := without(a, versionField)
	b1, b2, okB := without(b, versionField)
	if okA && okB && len(a1)+len(a2) == len(b1)+len(b2) && equalJoined(a1, a2, b1, b2) {
		return true
	}
	ca, errA := Canonical(a, versionField)
	cb, errB := Canonical(b, versionField)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// equalJoined compares a1+a2 with b1+b2, of equal total lengths, without joining them.
func equalJoined(a1, a2, b1, b2 []byte) bool {
	if len(a1) > len(b1) {
		a1, a2, b1, b2 = b1, b2, a1, a2
	}
	k, m := len(a1), len(b1)-len(a1) // a2 is at least m long: the totals are equal
	return bytes.Equal(a1, b1[:k]) && bytes.Equal(a2[:m], b1[k:]) && bytes.Equal(a2[m:], b2)
}

// Canonical is the document as compact JSON with sorted members, numbers in one form and the
// top-level versionField left out: two documents with the same content have the same bytes.
func Canonical(doc []byte, versionField string) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); ok && versionField != "" {
		delete(m, versionField)
	}
	normalize(v)
	return json.Marshal(v) // maps are written with sorted keys
}

// normalize rewrites every number in v in one form: integers as plain digits, others in the
// shortest form that reads back as the same float64.
func normalize(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if n, ok := e.(json.Number); ok {
				t[k] = number(n)
			} else {
				normalize(e)
			}
		}
	case []any:
		for i, e := range t {
			if n, ok := e.(json.Number); ok {
				t[i] = number(n)
			} else {
				normalize(e)
			}
		}
	}
}

func number(n json.Number) json.Number {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, ok := new(big.Int).SetString(s, 10); ok {
			return json.Number(i.String())
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return n
	}
	if f == float64(int64(f)) && f >= -1<<53 && f <= 1<<53 {
		return json.Number(strconv.FormatInt(int64(f), 10))
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}

// without returns doc's bytes before and after its top-level member named field (with the
// comma that joins it to a neighbour), so that documents differing only in that member compare
// equal byte for byte. ok is false when doc is not an object it can walk: the caller compares
// canonically then. A document without the member is returned whole.
func without(doc []byte, field string) (before, after []byte, ok bool) {
	s := walker{b: doc}
	s.ws()
	if !s.eat('{') {
		return nil, nil, false
	}
	s.ws()
	if s.eat('}') {
		return doc, nil, s.rest()
	}
	prevEnd := -1        // end of the previous member, -1 for the first
	cut0, cut1 := -1, -1 // the bytes to leave out
	for {
		s.ws()
		start := s.i
		key, ok := s.str()
		if !ok {
			return nil, nil, false
		}
		s.ws()
		if !s.eat(':') {
			return nil, nil, false
		}
		s.ws()
		if !s.value() {
			return nil, nil, false
		}
		end := s.i
		s.ws()
		last := !s.eat(',')
		if last && !s.eat('}') {
			return nil, nil, false
		}
		if string(key) == field && cut0 < 0 {
			switch {
			case prevEnd >= 0: // drop ",member"
				cut0, cut1 = prevEnd, end
			case !last: // the first of several: drop "member,"
				s.ws()
				cut0, cut1 = start, s.i
			default: // the only member
				cut0, cut1 = start, end
			}
		}
		if last {
			if !s.rest() {
				return nil, nil, false
			}
			if cut0 < 0 {
				return doc, nil, true
			}
			return doc[:cut0], doc[cut1:], true
		}
		prevEnd = end
	}
}

// walker steps over JSON text without decoding it.
type walker struct {
	b []byte
	i int
}

func (w *walker) ws() {
	for w.i < len(w.b) && (w.b[w.i] == ' ' || w.b[w.i] == '\n' || w.b[w.i] == '\t' || w.b[w.i] == '\r') {
		w.i++
	}
}

func (w *walker) eat(c byte) bool {
	if w.i < len(w.b) && w.b[w.i] == c {
		w.i++
		return true
	}
	return false
}

// rest reports that only white space follows.
func (w *walker) rest() bool {
	w.ws()
	return w.i == len(w.b)
}

// str steps over a string and returns its raw content (escapes left as they are).
func (w *walker) str() ([]byte, bool) {
	if !w.eat('"') {
		return nil, false
	}
	start := w.i
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case '\\':
			w.i += 2
		case '"':
			w.i++
			return w.b[start : w.i-1], true
		default:
			w.i++
		}
	}
	return nil, false
}

// value steps over one value of any kind.
func (w *walker) value() bool {
	if w.i >= len(w.b) {
		return false
	}
	switch w.b[w.i] {
	case '"':
		_, ok := w.str()
		return ok
	case '{', '[':
		depth := 0
		for w.i < len(w.b) {
			switch w.b[w.i] {
			case '"':
				if _, ok := w.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					w.i++
					return true
				}
			}
			w.i++
		}
		return false
	default:
		start := w.i
		for w.i < len(w.b) && !strings.ContainsRune(",}] \n\t\r", rune(w.b[w.i])) {
			w.i++
		}
		return w.i > start
	}
}

package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Projection leaves out of a document the fields one index would refuse for being unknown to
// its strict mapping: during a version bump the indexer writes every document to each index
// of the family, and the old index must keep taking the documents of an entity that already
// emits the new version's fields (docs/mapping.md, "Version bump without downtime").
//
// Only a field under an object whose effective `dynamic` is "strict" is left out: with
// `dynamic: true` the engine maps it, with `false` (or "runtime") it keeps it in _source
// unindexed, so the document goes as it is. A field the index knows is kept whatever its
// value (a type conflict is a mapping error, not projected). A key with a dot is kept: the
// engine expands it to a path that this projection does not resolve.
type Projection struct {
	root *node
}

// node is one object level of a mapping: the fields it declares and whether an unknown one
// is refused there. A leaf (a typed field, an object with enabled: false, flattened) has no
// node: anything below it goes as it is.
type node struct {
	strict bool
	fields map[string]*node // a field's node, nil for a leaf
}

// Projections decides, once per family, which indices need a Projection: the i-th result is
// nil when mappings[i] lacks no field that another mapping of the family declares (no bump,
// or the index of the newest version), so its documents are sent as they are and never
// re-encoded. mappings are the values of "mappings" as the engine reports them.
func Projections(mappings []map[string]any) []*Projection {
	trees := make([]*node, len(mappings))
	for i, m := range mappings {
		trees[i] = objectNode(m, false)
	}
	out := make([]*Projection, len(mappings))
	for i, t := range trees {
		for j, other := range trees {
			if i != j && t.lacks(other) {
				out[i] = &Projection{root: t}
				break
			}
		}
	}
	return out
}

// NewProjection is the Projection onto one mapping (the value of "mappings").
func NewProjection(mapping map[string]any) *Projection {
	return &Projection{root: objectNode(mapping, false)}
}

// objectNode reads the fields of an object level; parentStrict is the dynamic setting it
// inherits (the root's default is true).
func objectNode(m map[string]any, parentStrict bool) *node {
	n := &node{strict: parentStrict, fields: map[string]*node{}}
	if d, ok := m["dynamic"]; ok {
		n.strict = dynamicString(d) == "strict"
	}
	props, _ := m["properties"].(map[string]any)
	for name, v := range props {
		f, _ := v.(map[string]any)
		n.fields[name] = fieldNode(f, n.strict)
	}
	return n
}

// fieldNode is the node of a field: an object level for object and nested fields, nil for
// anything that takes any value below it.
func fieldNode(f map[string]any, parentStrict bool) *node {
	switch t, _ := f["type"].(string); t {
	case "", "object", "nested":
		if e, ok := f["enabled"]; ok && !isTrue(e) {
			return nil // kept in _source, never parsed
		}
		return objectNode(f, parentStrict)
	}
	return nil
}

// lacks reports whether n would refuse a field that other declares.
func (n *node) lacks(other *node) bool {
	for name, o := range other.fields {
		f, ok := n.fields[name]
		switch {
		case !ok:
			if n.strict {
				return true
			}
		case f != nil && o != nil && f.lacks(o):
			return true
		}
	}
	return false
}

// Apply returns src without the fields the index would refuse, and how many it left out
// (each occurrence: one per element of an array of objects). With none left out it returns
// src itself. src must be a JSON object; it is scanned once, members kept in their order and
// values byte for byte.
func (p *Projection) Apply(src []byte) ([]byte, int, error) {
	sc := scanner{b: src, out: make([]byte, 0, len(src))}
	i := sc.space(0)
	if i >= len(src) || src[i] != '{' {
		return nil, 0, errors.New("project document: not a JSON object")
	}
	end, err := sc.object(p.root, i)
	if err == nil && sc.space(end) != len(src) {
		err = errors.New("data after the object")
	}
	if err != nil {
		return nil, 0, fmt.Errorf("project document: %w", err)
	}
	if sc.dropped == 0 {
		return src, 0, nil
	}
	return sc.out, sc.dropped, nil
}

// scanner copies a JSON document to out, leaving out what the nodes refuse. It checks the
// structure only as far as it must to find where each value ends; the engine parses the rest.
type scanner struct {
	b       []byte
	out     []byte
	dropped int
}

var errSyntax = errors.New("malformed JSON")

func (s *scanner) space(i int) int {
	for i < len(s.b) && (s.b[i] == ' ' || s.b[i] == '\t' || s.b[i] == '\n' || s.b[i] == '\r') {
		i++
	}
	return i
}

// object copies the object at b[i] ('{') under node n and returns the index after it.
func (s *scanner) object(n *node, i int) (int, error) {
	s.out = append(s.out, '{')
	i = s.space(i + 1)
	first, written := true, false
	for {
		if i >= len(s.b) {
			return 0, errSyntax
		}
		if s.b[i] == '}' {
			s.out = append(s.out, '}')
			return i + 1, nil
		}
		if !first {
			if s.b[i] != ',' {
				return 0, errSyntax
			}
			i = s.space(i + 1)
		}
		first = false
		ks := i
		ke, err := s.str(i)
		if err != nil {
			return 0, err
		}
		f, known, err := s.field(n, ks, ke)
		if err != nil {
			return 0, err
		}
		i = s.space(ke)
		if i >= len(s.b) || s.b[i] != ':' {
			return 0, errSyntax
		}
		vs := s.space(i + 1)
		if !known && n.strict && bytes.IndexByte(s.b[ks:ke], '.') < 0 {
			s.dropped++
			if i, err = s.skip(vs); err != nil {
				return 0, err
			}
			i = s.space(i)
			continue
		}
		if written {
			s.out = append(s.out, ',')
		}
		written = true
		s.out = append(s.out, s.b[ks:ke]...)
		s.out = append(s.out, ':')
		if i, err = s.value(f, vs); err != nil {
			return 0, err
		}
		i = s.space(i)
	}
}

// value copies the value at b[i]: under an object node an object is projected and an array
// element by element; anything else is copied as it is.
func (s *scanner) value(n *node, i int) (int, error) {
	if n == nil || i >= len(s.b) || (s.b[i] != '{' && s.b[i] != '[') {
		end, err := s.skip(i)
		if err != nil {
			return 0, err
		}
		s.out = append(s.out, s.b[i:end]...)
		return end, nil
	}
	if s.b[i] == '{' {
		return s.object(n, i)
	}
	s.out = append(s.out, '[')
	i = s.space(i + 1)
	for first := true; ; first = false {
		if i >= len(s.b) {
			return 0, errSyntax
		}
		if s.b[i] == ']' {
			s.out = append(s.out, ']')
			return i + 1, nil
		}
		if !first {
			if s.b[i] != ',' {
				return 0, errSyntax
			}
			s.out = append(s.out, ',')
			i = s.space(i + 1)
		}
		var err error
		if i, err = s.value(n, i); err != nil {
			return 0, err
		}
		i = s.space(i)
	}
}

// field looks up the member named b[ks:ke] (quotes included) among n's fields.
func (s *scanner) field(n *node, ks, ke int) (*node, bool, error) {
	raw := s.b[ks:ke]
	if bytes.IndexByte(raw, '\\') < 0 {
		f, ok := n.fields[string(raw[1:len(raw)-1])] // no copy: a map index by a converted []byte
		return f, ok, nil
	}
	var k string
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, false, err
	}
	f, ok := n.fields[k]
	return f, ok, nil
}

// str returns the index after the string at b[i].
func (s *scanner) str(i int) (int, error) {
	if i >= len(s.b) || s.b[i] != '"' {
		return 0, errSyntax
	}
	for i++; i < len(s.b); i++ {
		switch s.b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errSyntax
}

// skip returns the index after the value at b[i].
func (s *scanner) skip(i int) (int, error) {
	if i >= len(s.b) {
		return 0, errSyntax
	}
	switch s.b[i] {
	case '"':
		return s.str(i)
	case '{', '[':
		depth := 0
		for ; i < len(s.b); i++ {
			switch s.b[i] {
			case '"':
				end, err := s.str(i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errSyntax
	}
	end := i
	for end < len(s.b) && !strings.ContainsRune(",}] \t\n\r", rune(s.b[end])) {
		end++
	}
	if end == i {
		return 0, errSyntax
	}
	return end, nil
}

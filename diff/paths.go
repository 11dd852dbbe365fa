package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/wyehq/wye/compare"
)

// Delta is where two documents differ.
type Delta struct {
	// Paths are the JSON paths whose values differ ("title", "channel.name", "episodes[2].id").
	Paths []string
	// Empty are the paths that are empty on both sides but not in the same way: [] on one side,
	// null or absent on the other, or null against absent. Search treats them alike; a client's
	// JSON parser does not (an array that became null crashes one expecting an array).
	Empty []string
}

// Same reports no difference at all.
func (d Delta) Same() bool { return len(d.Paths) == 0 && len(d.Empty) == 0 }

// Paths decodes two documents and lists where they differ, their top-level versionField left
// out. Member order and number forms (1.0 and 1) do not matter, as in compare.Same; array
// order does. An error means a document is not JSON.
func Paths(a, b []byte, versionField string) (Delta, error) {
	va, err := decode(a, versionField)
	if err != nil {
		return Delta{}, fmt.Errorf("decode document: %w", err)
	}
	vb, err := decode(b, versionField)
	if err != nil {
		return Delta{}, fmt.Errorf("decode document: %w", err)
	}
	var d Delta
	d.walk("", va, vb, true, true)
	return d, nil
}

func decode(doc []byte, versionField string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); ok && versionField != "" {
		delete(m, versionField)
	}
	return v, nil
}

// walk compares a and b at path; aok and bok say whether each side has the member at all.
func (d *Delta) walk(path string, a, b any, aok, bok bool) {
	if empty(a, aok) && empty(b, bok) {
		if kind(a, aok) != kind(b, bok) {
			d.Empty = append(d.Empty, cmpPath(path))
		}
		return
	}
	if !aok || !bok {
		d.Paths = append(d.Paths, cmpPath(path))
		return
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			d.Paths = append(d.Paths, cmpPath(path))
			return
		}
		keys := slices.Sorted(maps.Keys(x))
		for k := range y {
			if _, ok := x[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			va, ina := x[k]
			vb, inb := y[k]
			p := k
			if path != "" {
				p = path + "." + k
			}
			d.walk(p, va, vb, ina, inb)
		}
	case []any:
		y, ok := b.([]any)
		if !ok {
			d.Paths = append(d.Paths, cmpPath(path))
			return
		}
		for i := range max(len(x), len(y)) {
			var va, vb any
			if i < len(x) {
				va = x[i]
			}
			if i < len(y) {
				vb = y[i]
			}
			d.walk(path+"["+strconv.Itoa(i)+"]", va, vb, i < len(x), i < len(y))
		}
	case json.Number:
		y, ok := b.(json.Number)
		if !ok || !sameNumber(x, y) {
			d.Paths = append(d.Paths, cmpPath(path))
		}
	default: // string, bool, nil
		if a != b {
			d.Paths = append(d.Paths, cmpPath(path))
		}
	}
}

// empty is [] , null or absent.
func empty(v any, ok bool) bool {
	if !ok || v == nil {
		return true
	}
	s, isArr := v.([]any)
	return isArr && len(s) == 0
}

func kind(v any, ok bool) string {
	switch {
	case !ok:
		return "absent"
	case v == nil:
		return "null"
	}
	return "[]"
}

// cmpPath names the document itself "." rather than "".
func cmpPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// sameNumber compares numbers as compare.Same does (1.0 = 1, 1e2 = 100).
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	ca, errA := compare.Canonical([]byte("["+a+"]"), "") // Canonical rewrites numbers inside containers
	cb, errB := compare.Canonical([]byte("["+b+"]"), "")
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

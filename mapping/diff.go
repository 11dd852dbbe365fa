package mapping

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
)

// Change says how a live index differs from its definition at one place.
type Change string

const (
	Added   Change = "added"   // live only: e.g. a field put by hand
	Removed Change = "removed" // declared, missing live
	Changed Change = "changed" // both have it, with other parameters
)

// Drift is one difference between a live index and its definition.
type Drift struct {
	Index  string `json:"index"`  // concrete index, e.g. programs_v1
	Kind   string `json:"kind"`   // "field", "mapping" (a root parameter such as dynamic) or "setting"
	Field  string `json:"field"`  // field path ("channel.code", "title.raw"), root parameter or setting key
	Change Change `json:"change"` //
	// Declared and Live are the compact JSON of the field's own parameters (without its
	// sub-fields), of the root parameter or of the setting; empty when absent.
	Declared string `json:"declared,omitempty"`
	Live     string `json:"live,omitempty"`
}

// Diff compares a live index (its normalized mapping and flat settings) with a definition.
// Only declared settings are compared: the engines add many of their own (uuid,
// creation_date, routing, OpenSearch's replication.type) that are not drift. Drifts are
// sorted by kind, then field.
func Diff(index string, def *Definition, liveMapping map[string]any, liveSettings map[string]string) []Drift {
	var out []Drift
	declared := def.Mappings
	for _, k := range unionKeys(declared, liveMapping) {
		if k == "properties" {
			continue
		}
		if d, ok := compare(declared[k], liveMapping[k]); !ok {
			d.Index, d.Kind, d.Field = index, "mapping", k
			out = append(out, d)
		}
	}
	dp, _ := declared["properties"].(map[string]any)
	lp, _ := liveMapping["properties"].(map[string]any)
	out = append(out, diffFields(index, "", dp, lp)...)
	for _, k := range slices.Sorted(maps.Keys(def.Settings)) {
		want := def.Settings[k]
		got, ok := liveSettings[k]
		switch {
		case !ok:
			out = append(out, Drift{Index: index, Kind: "setting", Field: k, Change: Removed, Declared: want})
		case got != want:
			out = append(out, Drift{Index: index, Kind: "setting", Field: k, Change: Changed, Declared: want, Live: got})
		}
	}
	return out
}

func diffFields(index, prefix string, declared, live map[string]any) []Drift {
	var out []Drift
	for _, name := range unionKeys(declared, live) {
		path := prefix + name
		df, dok := declared[name].(map[string]any)
		lf, lok := live[name].(map[string]any)
		switch {
		case !lok:
			out = append(out, Drift{Index: index, Kind: "field", Field: path, Change: Removed, Declared: compact(own(df))})
			continue
		case !dok:
			out = append(out, Drift{Index: index, Kind: "field", Field: path, Change: Added, Live: compact(own(lf))})
			continue
		}
		if d, ok := compare(own(df), own(lf)); !ok {
			d.Index, d.Kind, d.Field = index, "field", path
			out = append(out, d)
		}
		for _, sub := range []string{"properties", "fields"} {
			ds, _ := df[sub].(map[string]any)
			ls, _ := lf[sub].(map[string]any)
			out = append(out, diffFields(index, path+".", ds, ls)...)
		}
	}
	return out
}

// own is a field's parameters without its sub-fields.
func own(field map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range field {
		if k != "properties" && k != "fields" {
			out[k] = v
		}
	}
	return out
}

func compare(declared, live any) (Drift, bool) {
	if reflect.DeepEqual(declared, live) {
		return Drift{}, true
	}
	d := Drift{Change: Changed, Declared: compact(declared), Live: compact(live)}
	switch {
	case declared == nil:
		d.Change = Added
	case live == nil:
		d.Change = Removed
	}
	return d, false
}

func compact(v any) string {
	if v == nil {
		return ""
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "?"
	}
	return string(bytes.TrimRight(b.Bytes(), "\n"))
}

func unionKeys(a, b map[string]any) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return slices.Sorted(maps.Keys(keys))
}

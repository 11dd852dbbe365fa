package mapping

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Normalize returns a mapping (the value of "mappings") in the form wye compares: what the
// engines do not echo, or echo in another spelling, is removed or respelt on both sides.
// Found against Elasticsearch 7.17, 8.14 and OpenSearch 2.19 (testdata/normalize_*.json):
//
//   - "type": "object" is dropped for a field that has properties; the engines drop it too
//     (but keep it for an object without properties, so we keep it there);
//   - "dynamic" is echoed as a string: false -> "false";
//   - booleans and numbers written as strings ("index": "true", "ignore_above": "256") are
//     echoed as JSON booleans and numbers, and numbers in a float spelling: null_value 1 -> 1.0;
//   - parameters set to their default are dropped by some engines and kept by others
//     (OpenSearch echoes position_increment_gap 100 and the date_nanos default format,
//     Elasticsearch does not; both add "analyzer": "default" when only search_analyzer is
//     set): defaultParams lists them, and a parameter at its default counts as unset;
//   - empty "properties" are dropped; at the root, _source {"enabled": true},
//     date_detection true and numeric_detection false are defaults.
func Normalize(mappings map[string]any) map[string]any {
	if mappings == nil {
		return map[string]any{}
	}
	out := map[string]any{}
	for k, v := range mappings {
		switch k {
		case "properties":
			if p := normalizeFields(v); len(p) > 0 {
				out[k] = p
			}
		case "dynamic":
			out[k] = dynamicString(v)
		case "_source":
			if m, ok := v.(map[string]any); ok && (len(m) == 0 || (len(m) == 1 && isTrue(m["enabled"]))) {
				continue
			}
			out[k] = normalizeValue(v)
		case "date_detection":
			if !isTrue(v) {
				out[k] = false
			}
		case "numeric_detection":
			if isTrue(v) {
				out[k] = true
			}
		default:
			out[k] = normalizeValue(v)
		}
	}
	return out
}

// defaultParams are field parameters at their default value, per field type ("" for any).
var defaultParams = map[string]map[string]any{
	"": {
		"index": true, "doc_values": true, "store": false, "eager_global_ordinals": false,
		"ignore_malformed": false, "coerce": true, "enabled": true, "include_in_parent": false,
		"include_in_root": false, "fielddata": false, "index_phrases": false,
		"split_queries_on_whitespace": false, "norms": false, "locale": "ROOT",
		"similarity": "BM25", "analyzer": "default",
	},
	"text":       {"norms": true, "index_options": "positions", "position_increment_gap": "100"},
	"keyword":    {"index_options": "docs"},
	"date":       {"format": "strict_date_optional_time||epoch_millis"},
	"date_nanos": {"format": "strict_date_optional_time_nanos||epoch_millis"},
}

func isDefault(typ, param string, v any) bool {
	for _, t := range []string{typ, ""} {
		if d, ok := defaultParams[t][param]; ok {
			return equalScalar(d, v)
		}
	}
	return false
}

func equalScalar(d, v any) bool {
	switch d := d.(type) {
	case bool:
		b, ok := v.(bool)
		return ok && b == d
	case string:
		switch v := v.(type) {
		case string:
			return v == d
		case json.Number:
			return v.String() == d
		}
	}
	return false
}

func normalizeFields(v any) map[string]any {
	props, _ := v.(map[string]any)
	out := map[string]any{}
	for name, f := range props {
		field, ok := f.(map[string]any)
		if !ok {
			out[name] = normalizeValue(f)
			continue
		}
		out[name] = normalizeField(field)
	}
	return out
}

func normalizeField(field map[string]any) map[string]any {
	typ, _ := field["type"].(string)
	out := map[string]any{}
	for k, v := range field {
		switch k {
		case "properties", "fields":
			if p := normalizeFields(v); len(p) > 0 {
				out[k] = p
			}
		case "dynamic":
			out[k] = dynamicString(v)
		case "type", "format", "meta", "copy_to", "path":
			out[k] = normalizeValue(v)
		default:
			out[k] = normalizeValue(scalarFromString(v))
		}
	}
	for k, v := range out {
		if k != "type" && isDefault(typ, k, v) {
			delete(out, k)
		}
	}
	if typ == "object" && out["properties"] != nil {
		delete(out, "type")
	}
	return out
}

// scalarFromString turns "true", "false" and numeric strings into the JSON values the
// engines echo for parameters (all parameters but the ones kept as written above).
func scalarFromString(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "xX") {
		return json.Number(s)
	}
	return v
}

// normalizeValue canonicalizes numbers (1, 1.0 and 1e0 are one value) in any JSON value.
func normalizeValue(v any) any {
	switch v := v.(type) {
	case json.Number:
		return canonicalNumber(v)
	case float64:
		return canonicalNumber(json.Number(strconv.FormatFloat(v, 'g', -1, 64)))
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalizeValue(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalizeValue(x)
		}
		return out
	}
	return v
}

func canonicalNumber(n json.Number) json.Number {
	if _, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		return n
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil {
		return n
	}
	return json.Number(strconv.FormatFloat(f, 'f', -1, 64))
}

func dynamicString(v any) any {
	switch v := v.(type) {
	case bool:
		return strconv.FormatBool(v)
	case string:
		return v
	}
	return v
}

func isTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// flattenSettings turns declared settings, nested or dotted, into the flat form the engines
// echo with flat_settings=true: "index." prefixed keys and string values.
func flattenSettings(raw any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(prefix+k+".", v[k])
			}
		default:
			key := strings.TrimSuffix(prefix, ".")
			if !strings.HasPrefix(key, "index.") {
				key = "index." + key
			}
			out[key] = settingString(v)
		}
	}
	if m, ok := raw.(map[string]any); ok {
		walk("", m)
	}
	return out
}

func settingString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// liveSettings reads the flat settings of an index as the engines echo them; values that
// are lists arrive as JSON lists and are kept as their JSON text.
func liveSettings(flat map[string]any) map[string]string {
	out := make(map[string]string, len(flat))
	for k, v := range flat {
		out[k] = settingString(v)
	}
	return out
}

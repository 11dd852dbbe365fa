package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	secretType     = reflect.TypeFor[Secret]()
	durationType   = reflect.TypeFor[time.Duration]()
	keyColumnsType = reflect.TypeFor[KeyColumns]()
)

func isList(in any) bool { return reflect.ValueOf(in).Kind() == reflect.Slice }

// decoder copies viper's merged settings (maps with lower-cased keys, lists, scalars) into a
// Config that already holds the defaults. Unlike mapstructure's ErrorUnused, it names every
// unknown key and every mistyped value by its full path and keeps going, so one run reports
// all faults.
type decoder struct {
	faults Errors
	// explained are paths a decoding fault accounts for: the bad key itself, and the key an
	// unknown key was probably meant to be (a "hots" explains why "host" is empty).
	explained []string
}

// explains reports whether a later fault at path is a consequence of a decoding fault.
func (d *decoder) explains(path string) bool {
	for _, e := range d.explained {
		if under(path, e) {
			return true
		}
	}
	return false
}

func (d *decoder) fault(path string, in any, format string, args ...any) {
	d.faults.add(path, display(in), format, args...)
	d.explained = append(d.explained, path)
}

// value decodes in into out. out holds the default, which stays when in is nil (an empty key).
func (d *decoder) value(path string, in any, out reflect.Value) {
	if in == nil {
		return
	}
	t := out.Type()
	switch {
	case t == secretType:
		s, ok := scalarString(in)
		if !ok {
			d.fault(path, nil, "want a string") // never show a secret, even a mistyped one
			return
		}
		out.Set(reflect.ValueOf(NewSecret(s)))
	case t == durationType:
		s, ok := in.(string)
		dur, err := time.ParseDuration(s)
		if !ok || err != nil {
			d.fault(path, in, "want a duration with a unit, like 30s or 1m30s")
			return
		}
		out.SetInt(int64(dur))
	case t.Kind() == reflect.Struct:
		m, ok := in.(map[string]any)
		if !ok {
			d.fault(path, in, "want a mapping of keys to values")
			return
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			i, ok := fieldByKey(t, k)
			if !ok {
				d.unknown(path, k, t)
				continue
			}
			d.value(join(path, keyOf(t.Field(i))), m[k], out.Field(i))
		}
	case t == keyColumnsType && !isList(in): // key: id, the usual form of [id]
		s, ok := scalarString(in)
		if !ok {
			d.fault(path, in, "want a column or a list of columns")
			return
		}
		out.Set(reflect.ValueOf(KeyColumns{s}))
	case t.Kind() == reflect.Slice:
		list := reflect.ValueOf(in)
		if list.Kind() != reflect.Slice {
			d.fault(path, in, "want a list")
			return
		}
		s := reflect.MakeSlice(t, list.Len(), list.Len())
		for i := range list.Len() {
			s.Index(i).Set(defaultElem(t.Elem()))
			d.value(index(path, i), list.Index(i).Interface(), s.Index(i))
		}
		out.Set(s)
	case t.Kind() == reflect.String:
		s, ok := scalarString(in)
		if !ok {
			d.fault(path, in, "want a string")
			return
		}
		out.SetString(s)
	case t.Kind() == reflect.Bool:
		b, ok := in.(bool)
		if s, isStr := in.(string); isStr {
			var err error
			b, err = strconv.ParseBool(s)
			ok = err == nil
		}
		if !ok {
			d.fault(path, in, "want true or false")
			return
		}
		out.SetBool(b)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		n, ok := integer(in)
		if !ok || out.OverflowInt(n) {
			d.fault(path, in, "want an integer")
			return
		}
		out.SetInt(n)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		n, ok := integer(in)
		if !ok || n < 0 || out.OverflowUint(uint64(n)) {
			max := uint64(1)<<t.Bits() - 1
			d.fault(path, in, "want an integer between 0 and %d", max)
			return
		}
		out.SetUint(uint64(n))
	case t.Kind() == reflect.Float64:
		f, ok := float(in)
		if !ok {
			d.fault(path, in, "want a number")
			return
		}
		out.SetFloat(f)
	default:
		panic(fmt.Sprintf("config: field %s has unsupported type %s", path, t))
	}
}

// unknown reports key, which struct type t at path does not have, with a suggestion: a key
// of t within a small edit distance ("urlz" -> "urls"), else a key of a struct one level down
// with exactly that name ("username" -> "auth.username").
func (d *decoder) unknown(path, key string, t reflect.Type) {
	p := join(path, key)
	best, bestDist := "", len(key)/3+1
	for i := range t.NumField() {
		if k := keyOf(t.Field(i)); editDistance(key, k) < bestDist {
			best, bestDist = k, editDistance(key, k)
		}
	}
	if best == "" {
		for i := range t.NumField() {
			ft := t.Field(i).Type
			if ft.Kind() != reflect.Struct || ft == secretType || ft == durationType {
				continue
			}
			if _, ok := fieldByKey(ft, key); ok {
				best = keyOf(t.Field(i)) + "." + key
				break
			}
		}
	}
	if best == "" {
		d.fault(p, nil, "unknown key")
		return
	}
	d.fault(p, nil, "unknown key (did you mean %q?)", best)
	d.explained = append(d.explained, join(path, best))
}

// keyOf is the key a struct field is read from: its mapstructure tag.
func keyOf(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	if k == "" {
		panic("config: field " + f.Name + " has no mapstructure tag")
	}
	return k
}

// fieldByKey finds the field of t read from key. Keys are case-insensitive, as in viper.
func fieldByKey(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if strings.EqualFold(keyOf(t.Field(i)), key) {
			return i, true
		}
	}
	return 0, false
}

// scalarString accepts YAML scalars as text: `mapping: 1` is the string "1".
func scalarString(in any) (string, bool) {
	switch v := in.(type) {
	case string:
		return v, true
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v), true
	case float32, float64:
		return strconv.FormatFloat(reflect.ValueOf(v).Float(), 'f', -1, 64), true
	}
	return "", false
}

// integer accepts YAML integers and decimal strings (environment overrides are strings).
func integer(in any) (int64, bool) {
	v := reflect.ValueOf(in)
	switch {
	case v.CanInt():
		return v.Int(), true
	case v.CanUint():
		if v.Uint() > 1<<63-1 {
			return 0, false
		}
		return int64(v.Uint()), true
	case v.CanFloat():
		f := v.Float()
		if f != float64(int64(f)) {
			return 0, false
		}
		return int64(f), true
	case v.Kind() == reflect.String:
		n, err := strconv.ParseInt(strings.TrimSpace(v.String()), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// display is how a fault shows the offending value: scalars only; lists and maps are
// described by the message instead.
func display(in any) string {
	if s, ok := scalarString(in); ok {
		return s
	}
	return ""
}

// editDistance is the optimal-string-alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent letters ("hots" -> "host") each cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// overrideKey is a key that WYE_* environment variables and flags can override.
type overrideKey struct {
	path string // "source.host"
	env  string // "WYE_SOURCE_HOST"
	// legacy are older variable names still honoured, below env (see legacyEnv).
	legacy []string
	// list: a list of scalars, given as one comma-separated value ("1s,5s,30s").
	list   bool
	clears []string // the other sources of the same secret, emptied when this one is set
}

// legacyEnv are the variables `wye mapping` read before its settings were keys; they still
// set the keys, unless the key's own WYE_* variable is set too.
var legacyEnv = map[string][]string{
	"mapping.dir":           {"WYE_MAPPINGS"},
	"mapping.index_prefix":  {"WYE_INDEX_PREFIX"},
	"mapping.version_field": {"WYE_VERSION_FIELD"},
}

// overrideKeys lists the overridable keys: every scalar, and every list of scalars, outside
// a list of mappings (a list element has no stable name; clusters and entities come from the
// file only). Literal secrets are left out: a secret is taken from the environment by naming
// the variable in a *_env key, and leaving them out keeps WYE_SOURCE_PASSWORD free for that use.
func overrideKeys() []overrideKey {
	var keys []overrideKey
	var walk func(path string, t reflect.Type)
	walk = func(path string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			p := join(path, keyOf(f))
			switch {
			case f.Type == secretType:
			case f.Type.Kind() == reflect.Slice:
				if f.Type.Elem().Kind() != reflect.Struct {
					keys = append(keys, overrideKey{path: p, env: envName(p), legacy: legacyEnv[p], list: true})
				}
			case f.Type.Kind() == reflect.Struct && f.Type != durationType:
				walk(p, f.Type)
			default:
				k := overrideKey{path: p, env: envName(p), legacy: legacyEnv[p]}
				for _, suffix := range []string{"_env", "_file"} {
					base, ok := strings.CutSuffix(keyOf(f), suffix)
					if j, isField := fieldByKey(t, base); ok && isField && t.Field(j).Type == secretType {
						for _, s := range []string{"", "_env", "_file"} {
							if s != suffix {
								k.clears = append(k.clears, join(path, base+s))
							}
						}
					}
				}
				keys = append(keys, k)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return keys
}

// envName is the WYE_* variable of a key path: "source.host" -> "WYE_SOURCE_HOST".
func envName(path string) string {
	return "WYE_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// lookupEnv returns the value of k's variable, or of the first legacy one that is set, and
// the variable's name. An empty variable counts as unset.
func (k overrideKey) lookupEnv(lookup func(string) (string, bool)) (val, name string, ok bool) {
	for _, name := range append([]string{k.env}, k.legacy...) {
		if val, ok := lookup(name); ok && val != "" {
			return val, name, true
		}
	}
	return "", "", false
}

// value is what an override of k sets: the text itself, or for a list its comma-separated
// items with surrounding spaces trimmed ("" is the empty list; "a,,b" has an empty item,
// which validation reports).
func (k overrideKey) value(val string) any {
	switch {
	case !k.list:
		return val
	case strings.TrimSpace(val) == "":
		return []string{}
	}
	items := strings.Split(val, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items
}

// float reads a number written as YAML (an integer or a float) or as text (an environment
// variable, a flag).
func float(in any) (float64, bool) {
	switch v := in.(type) {
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil
	}
	if n, ok := integer(in); ok {
		return float64(n), true
	}
	return 0, false
}

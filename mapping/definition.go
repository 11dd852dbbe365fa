package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wyehq/wye/indexer"
)

// minGCDeletes is Elasticsearch's default index.gc_deletes. A managed index must keep
// delete tombstones longer, or a retried older write resurrects a deleted document
// (docs/architecture.md invariant 6).
const minGCDeletes = 60 * time.Second

// DefaultDir is where the mapping files are read from (<dir>/<index>/<vN>/), relative to the
// working directory, when the configuration names no other (mapping.dir).
const DefaultDir = "mappings"

// LoadOptions adjust Load. The zero value is the default.
type LoadOptions struct {
	// VersionField is the field that carries the source version wye writes with
	// version_type=external, so it must be mapped as long. Default
	// indexer.DefaultVersionField.
	VersionField string
}

// Set is every mapping definition found under one directory, validated.
//
// Layout (docs/mapping.md has the long form):
//
//	<dir>/<index>/<vN>/mapping.json            the definition: {"settings": ..., "mappings": ...}
//	<dir>/<index>/<vN>/<flavor>.json           optional overlay for one flavor
//	<dir>/<index>/<vN>/<flavor>-<major>.json   optional overlay for one major of a flavor
//
// <index> is the alias the application queries; <flavor> is elasticsearch or opensearch.
// Overlays are JSON merge patches (RFC 7386) applied in the order mapping.json, <flavor>.json,
// <flavor>-<major>.json: objects merge, other values replace, null removes a key.
type Set struct {
	Dir          string
	VersionField string
	indices      map[string]map[string]*version // index -> "vN" -> files
}

type version struct {
	name     string
	base     *file
	overlays []*file // sorted: flavor-wide before flavor-major
}

type file struct {
	path   string // as shown in errors: relative to the working directory when given so
	flavor Flavor // "" for mapping.json
	major  int    // 0: every major of flavor
	doc    map[string]any
}

// FileError is one fault in one mapping file. Path is the location inside the JSON document
// ("mappings.properties.channel.properties.code.type"), or "line L, column C" for a syntax error.
type FileError struct {
	File string
	Path string
	Msg  string
}

func (e *FileError) Error() string {
	if e.Path == "" {
		return e.File + ": " + e.Msg
	}
	return e.File + ": " + e.Path + ": " + e.Msg
}

var (
	indexDirName   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	versionDirName = regexp.MustCompile(`^v([1-9][0-9]*)$`)
	variantName    = regexp.MustCompile(`^([a-z]+)(?:-([0-9]+))?\.json$`)
)

// Load reads and validates every mapping under dir. It checks what does not depend on the
// cluster: JSON syntax, file names (flavors), the document shape, dynamic strict, the
// version field (long), shards, replicas and gc_deletes, as each definition resolves for
// every supported engine. Field types are checked against the real engine by Resolve. The
// error joins one *FileError per fault.
func Load(dir string, opts LoadOptions) (*Set, error) {
	if opts.VersionField == "" {
		opts.VersionField = indexer.DefaultVersionField
	}
	s := &Set{Dir: dir, VersionField: opts.VersionField, indices: map[string]map[string]*version{}}
	var errs faults
	indexDirs, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read mappings directory: %w", err)
	}
	for _, ide := range indexDirs {
		if !ide.IsDir() {
			continue // README.md and the like
		}
		ipath := filepath.Join(dir, ide.Name())
		if !indexDirName.MatchString(ide.Name()) {
			errs.add(ipath, "", "not a valid index name (lower case letters, digits, _ . -)")
			continue
		}
		versionDirs, err := os.ReadDir(ipath)
		if err != nil {
			return nil, fmt.Errorf("read mappings directory: %w", err)
		}
		versions := map[string]*version{}
		for _, vde := range versionDirs {
			if !vde.IsDir() {
				continue
			}
			vpath := filepath.Join(ipath, vde.Name())
			if !versionDirName.MatchString(vde.Name()) {
				errs.add(vpath, "", "a version directory must be named v1, v2, ...")
				continue
			}
			v := loadVersion(vpath, vde.Name(), &errs)
			if v != nil {
				versions[v.name] = v
			}
		}
		if len(versions) == 0 && len(errs) == 0 {
			errs.add(ipath, "", "no version directory (v1, v2, ...)")
		}
		s.indices[ide.Name()] = versions
	}
	if len(s.indices) == 0 && len(errs) == 0 {
		errs.add(dir, "", "no index directory")
	}
	// Every definition as it would resolve on every supported engine, minus type checks.
	for _, idx := range s.Indices() {
		for _, vn := range s.Versions(idx) {
			v := s.indices[idx][vn]
			for _, e := range knownEngines {
				files := v.filesFor(e)
				doc := merged(files)
				s.checkDefinition(files, doc, &errs)
			}
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return s, nil
}

func loadVersion(vpath, name string, errs *faults) *version {
	entries, err := os.ReadDir(vpath)
	if err != nil {
		errs.add(vpath, "", err.Error())
		return nil
	}
	v := &version{name: name}
	for _, fe := range entries {
		if fe.IsDir() || !strings.HasSuffix(fe.Name(), ".json") {
			continue
		}
		p := filepath.Join(vpath, fe.Name())
		f := &file{path: p}
		if fe.Name() != "mapping.json" {
			m := variantName.FindStringSubmatch(fe.Name())
			if m == nil {
				errs.add(p, "", "unexpected file name: want mapping.json, <flavor>.json or <flavor>-<major>.json")
				continue
			}
			switch Flavor(m[1]) {
			case Elasticsearch, OpenSearch:
				f.flavor = Flavor(m[1])
			default:
				errs.add(p, "", fmt.Sprintf("unknown flavor %q: want %q or %q", m[1], Elasticsearch, OpenSearch))
				continue
			}
			if m[2] != "" {
				f.major, _ = strconv.Atoi(m[2])
			}
		}
		doc, ok := readJSON(p, errs)
		if !ok {
			continue
		}
		f.doc = doc
		checkShape(f, errs)
		if f.flavor == "" {
			v.base = f
		} else {
			v.overlays = append(v.overlays, f)
		}
	}
	if v.base == nil {
		if !errs.has(vpath) {
			errs.add(filepath.Join(vpath, "mapping.json"), "", "missing: every version needs its mapping.json")
		}
		return nil
	}
	sort.Slice(v.overlays, func(i, j int) bool {
		a, b := v.overlays[i], v.overlays[j]
		if a.flavor != b.flavor {
			return a.flavor < b.flavor
		}
		return a.major < b.major
	})
	return v
}

// readJSON decodes a JSON object, keeping numbers as json.Number.
func readJSON(path string, errs *faults) (map[string]any, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		errs.add(path, "", "cannot read: "+err.Error())
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	err = dec.Decode(&doc)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		if _, tokErr := dec.Token(); tokErr == nil {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			errs.add(path, lineCol(data, se.Offset-1), "bad JSON: "+se.Error()) // Offset is just past the bad byte
		case errors.As(err, &te):
			errs.add(path, lineCol(data, te.Offset), "bad JSON: "+te.Error())
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			errs.add(path, "", "bad JSON: empty or truncated file")
		default:
			errs.add(path, "", "bad JSON: "+err.Error())
		}
		return nil, false
	}
	m, ok := doc.(map[string]any)
	if !ok {
		errs.add(path, "", "want a JSON object with settings and mappings")
		return nil, false
	}
	return m, true
}

func lineCol(data []byte, off int64) string {
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col := 1, 1
	for _, b := range data[:off] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}

// checkShape validates one file on its own: top-level keys, settings scalars, the field tree.
func checkShape(f *file, errs *faults) {
	for _, k := range slices.Sorted(maps.Keys(f.doc)) {
		switch k {
		case "settings":
			if _, ok := f.doc[k].(map[string]any); !ok {
				errs.add(f.path, "settings", "want an object")
			}
		case "mappings":
			m, ok := f.doc[k].(map[string]any)
			if !ok {
				errs.add(f.path, "mappings", "want an object")
				continue
			}
			checkFields(f.path, "mappings", m, errs)
		case "aliases":
			errs.add(f.path, "aliases", "wye owns the aliases (<index> -> <index>_vN); remove this key")
		default:
			errs.add(f.path, k, "unknown key: want settings or mappings")
		}
	}
	if f.flavor == "" {
		if _, ok := f.doc["mappings"]; !ok {
			errs.add(f.path, "mappings", "missing")
		}
	}
}

// checkFields walks "properties" and "fields" below an object mapping at path.
func checkFields(fpath, path string, obj map[string]any, errs *faults) {
	for _, key := range []string{"properties", "fields"} {
		raw, ok := obj[key]
		if !ok || raw == nil {
			continue
		}
		props, ok := raw.(map[string]any)
		if !ok {
			errs.add(fpath, path+"."+key, "want an object of fields")
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(props)) {
			fp := path + "." + key + "." + name
			if props[name] == nil {
				continue // a merge patch removing the field
			}
			field, ok := props[name].(map[string]any)
			if !ok {
				errs.add(fpath, fp, "want an object describing the field")
				continue
			}
			if t, ok := field["type"]; ok {
				if _, isString := t.(string); !isString {
					errs.add(fpath, fp+".type", "want a string")
				}
			}
			checkFields(fpath, fp, field, errs)
		}
	}
}

// filesFor returns the files that make up the definition on e, in merge order.
func (v *version) filesFor(e Engine) []*file {
	files := []*file{v.base}
	for _, o := range v.overlays {
		if o.flavor == e.Flavor && (o.major == 0 || o.major == e.Major) {
			files = append(files, o)
		}
	}
	return files
}

func merged(files []*file) map[string]any {
	var doc any = map[string]any{}
	for _, f := range files {
		doc = mergePatch(doc, f.doc)
	}
	return doc.(map[string]any)
}

// mergePatch applies patch to target as RFC 7386 says, without modifying either.
func mergePatch(target any, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	out := map[string]any{}
	if ok {
		maps.Copy(out, t)
	}
	for k, pv := range p {
		if pv == nil {
			delete(out, k)
			continue
		}
		out[k] = mergePatch(out[k], pv)
	}
	return out
}

// origin names the file that set path (dot-separated keys) in the merged document: the last
// file of the merge order that has it.
func origin(files []*file, path string) string {
	keys := strings.Split(path, ".")
	for i := len(files) - 1; i >= 0; i-- {
		var cur any = files[i].doc
		found := true
		for _, k := range keys {
			m, ok := cur.(map[string]any)
			if !ok {
				found = false
				break
			}
			if cur, ok = m[k]; !ok {
				found = false
				break
			}
		}
		if found {
			return files[i].path
		}
	}
	return files[0].path
}

// checkDefinition validates a merged definition for the rules every managed index obeys.
func (s *Set) checkDefinition(files []*file, doc map[string]any, errs *faults) {
	mappings, _ := doc["mappings"].(map[string]any)
	if mappings == nil {
		return // reported by checkShape
	}
	if d, _ := mappings["dynamic"].(string); d != "strict" {
		errs.add(origin(files, "mappings.dynamic"), "mappings.dynamic",
			`must be "strict": a document with an unmapped field must be refused, not mapped by guess`)
	}
	props, _ := mappings["properties"].(map[string]any)
	vf := "mappings.properties." + s.VersionField
	switch field, _ := props[s.VersionField].(map[string]any); {
	case field == nil:
		errs.add(origin(files, "mappings.properties"), vf,
			fmt.Sprintf("missing: the version field %q must be mapped as long", s.VersionField))
	case field["type"] != "long":
		errs.add(origin(files, vf+".type"), vf+".type",
			fmt.Sprintf("the version field must be long, got %v", field["type"]))
	}
	settings := flattenSettings(doc["settings"])
	for _, k := range []string{"index.number_of_shards", "index.number_of_replicas"} {
		if _, ok := settings[k]; !ok {
			errs.add(files[0].path, "settings."+k, "missing: set it explicitly")
		}
	}
	gc, ok := settings["index.gc_deletes"]
	if !ok {
		errs.add(files[0].path, "settings.index.gc_deletes",
			"missing: raise it above the 60s default so delete tombstones outlive retries (e.g. \"1h\")")
	} else if d, err := parseTimeValue(gc); err != nil || d <= minGCDeletes {
		errs.add(origin(files, settingPath(doc["settings"], "index.gc_deletes")), "settings.index.gc_deletes",
			fmt.Sprintf("%q: want a time value above the 60s default, like \"1h\"", gc))
	}
}

// settingPath finds how the file spelled a flat setting key (nested or dotted).
func settingPath(raw any, key string) string {
	m, _ := raw.(map[string]any)
	for _, cand := range []string{key, strings.TrimPrefix(key, "index.")} {
		if _, ok := m[cand]; ok {
			return "settings." + cand
		}
	}
	return "settings." + key
}

// parseTimeValue reads an Elasticsearch time value: 500ms, 60s, 5m, 1h, 1d.
func parseTimeValue(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		d      time.Duration
	}{{"nanos", time.Nanosecond}, {"micros", time.Microsecond}, {"ms", time.Millisecond},
		{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse time value %q: %w", s, err)
			}
			return time.Duration(v) * u.d, nil
		}
	}
	return 0, fmt.Errorf("parse time value %q: no unit", s)
}

// Indices lists the indices (alias names, without prefix) the set defines, sorted.
func (s *Set) Indices() []string { return slices.Sorted(maps.Keys(s.indices)) }

// Versions lists the versions of one index in numeric order (v2 before v10).
func (s *Set) Versions(index string) []string {
	vs := slices.Collect(maps.Keys(s.indices[index]))
	slices.SortFunc(vs, func(a, b string) int { return versionNumber(a) - versionNumber(b) })
	return vs
}

// Has reports whether index has a definition for version.
func (s *Set) Has(index, version string) bool { return s.indices[index][version] != nil }

func versionNumber(v string) int {
	m := versionDirName.FindStringSubmatch(v)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Definition is one index version as it applies to one engine.
type Definition struct {
	Index   string   // the alias name, without prefix: "programs"
	Version string   // "v1"
	Engine  Engine   //
	Files   []string // the files merged, in order
	// Body is the create-index request body: the merged settings and mappings as written.
	Body []byte
	// Settings are the declared settings, flat ("index.gc_deletes") with string values, as
	// the engines echo them with flat_settings=true.
	Settings map[string]string
	// Mappings is the declared mapping after Normalize.
	Mappings map[string]any
}

// Resolve returns the definition of index at version for engine e, checking every field
// type against e. Errors name the file and the JSON path of each unsupported type.
func (s *Set) Resolve(index, version string, e Engine) (*Definition, error) {
	versions, ok := s.indices[index]
	if !ok {
		return nil, fmt.Errorf("resolve mapping %s: no directory %s", index, filepath.Join(s.Dir, index))
	}
	v, ok := versions[version]
	if !ok {
		return nil, fmt.Errorf("resolve mapping %s %s: no directory %s (have %s)", index, version,
			filepath.Join(s.Dir, index, version), strings.Join(s.Versions(index), ", "))
	}
	files := v.filesFor(e)
	doc := merged(files)
	var errs faults
	mappings, _ := doc["mappings"].(map[string]any)
	checkTypes(files, "mappings", mappings, e, &errs)
	if err := errs.err(); err != nil {
		return nil, fmt.Errorf("resolve mapping %s %s for %s: %w", index, version, e, err)
	}
	body, err := json.Marshal(map[string]any{"settings": doc["settings"], "mappings": doc["mappings"]})
	if err != nil {
		return nil, fmt.Errorf("encode mapping %s %s: %w", index, version, err)
	}
	d := &Definition{
		Index: index, Version: version, Engine: e, Body: body,
		Settings: flattenSettings(doc["settings"]),
		Mappings: Normalize(mappings),
	}
	for _, f := range files {
		d.Files = append(d.Files, f.path)
	}
	return d, nil
}

func checkTypes(files []*file, path string, obj map[string]any, e Engine, errs *faults) {
	for _, key := range []string{"properties", "fields"} {
		props, _ := obj[key].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(props)) {
			field, _ := props[name].(map[string]any)
			fp := path + "." + key + "." + name
			if t, ok := field["type"].(string); ok {
				if ok, why := typeSupport(t, e); !ok {
					errs.add(origin(files, fp+".type"), fp+".type", why)
				}
			}
			checkTypes(files, fp, field, e, errs)
		}
	}
}

// faults collects FileErrors, without duplicates (one fault can show on several engines).
type faults []*FileError

func (f *faults) add(file, path, msg string) {
	for _, e := range *f {
		if e.File == file && e.Path == path && e.Msg == msg {
			return
		}
	}
	*f = append(*f, &FileError{File: file, Path: path, Msg: msg})
}

func (f faults) has(prefix string) bool {
	for _, e := range f {
		if strings.HasPrefix(e.File, prefix) {
			return true
		}
	}
	return false
}

func (f faults) err() error {
	if len(f) == 0 {
		return nil
	}
	errs := make([]error, len(f))
	for i, e := range f {
		errs[i] = e
	}
	return errors.Join(errs...)
}

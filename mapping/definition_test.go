package mapping

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodMapping = `{
  "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0, "gc_deletes": "1h"}},
  "mappings": {"dynamic": "strict", "properties": {
    "id": {"type": "keyword"},
    "wye_version": {"type": "long"}
  }}
}`

// writeTree writes files (path -> content) under a temp dir and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBadMappingFilesAreRefusedNamingFileAndPath prevents a bad definition from reaching a
// cluster, or being refused with a message nobody can act on.
func TestBadMappingFilesAreRefusedNamingFileAndPath(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"bad JSON", map[string]string{"p/v1/mapping.json": "{\n  \"settings\": {,\n}"},
			[]string{"p/v1/mapping.json: line 2, column 16: bad JSON"}},
		{"unknown flavor", map[string]string{"p/v1/mapping.json": goodMapping, "p/v1/solr.json": "{}"},
			[]string{`p/v1/solr.json: unknown flavor "solr"`}},
		{"missing version field", map[string]string{"p/v1/mapping.json": strings.Replace(goodMapping, `"wye_version"`, `"version"`, 1)},
			[]string{`p/v1/mapping.json: mappings.properties.wye_version: missing: the version field "wye_version" must be mapped as long`}},
		{"version field not long", map[string]string{"p/v1/mapping.json": goodMapping,
			"p/v1/opensearch.json": `{"mappings": {"properties": {"wye_version": {"type": "integer"}}}}`},
			[]string{`p/v1/opensearch.json: mappings.properties.wye_version.type: the version field must be long, got integer`}},
		{"dynamic not strict", map[string]string{"p/v1/mapping.json": strings.Replace(goodMapping, `"strict"`, `true`, 1)},
			[]string{`p/v1/mapping.json: mappings.dynamic: must be "strict"`}},
		{"gc_deletes at default", map[string]string{"p/v1/mapping.json": strings.Replace(goodMapping, `"1h"`, `"60s"`, 1)},
			[]string{`p/v1/mapping.json: settings.index.gc_deletes: "60s": want a time value above the 60s default`}},
		{"aliases owned by wye", map[string]string{"p/v1/mapping.json": strings.Replace(goodMapping, `"settings"`, `"aliases": {}, "settings"`, 1)},
			[]string{`p/v1/mapping.json: aliases: wye owns the aliases`}},
		{"missing mapping.json", map[string]string{"p/v1/opensearch.json": `{}`},
			[]string{`p/v1/mapping.json: missing`}},
		{"bad version dir", map[string]string{"p/1/mapping.json": goodMapping},
			[]string{`p/1: a version directory must be named v1, v2, ...`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTree(t, c.files)
			_, err := Load(dir, LoadOptions{})
			if err == nil {
				t.Fatal("Load accepted a bad definition")
			}
			msg := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}

// TestFieldTypeOfOtherFlavorIsRefusedAtResolve prevents a flat_object mapping from being
// sent to Elasticsearch (or flattened to OpenSearch) and failing half-way through apply.
func TestFieldTypeOfOtherFlavorIsRefusedAtResolve(t *testing.T) {
	withType := func(typ string) string {
		return strings.Replace(goodMapping, `"id": {"type": "keyword"}`, `"id": {"type": "keyword"}, "attrs": {"type": "`+typ+`"}`, 1)
	}
	cases := []struct {
		typ    string
		engine Engine
		want   string
	}{
		{"flat_object", Engine{Elasticsearch, 8, 14}, `mappings.properties.attrs.type: field type "flat_object" does not exist in Elasticsearch (OpenSearch only)`},
		{"flattened", Engine{OpenSearch, 2, 19}, `field type "flattened" does not exist in OpenSearch (Elasticsearch only)`},
		{"knn_vector", Engine{Elasticsearch, 7, 17}, `"knn_vector" does not exist in Elasticsearch`},
		{"dense_vector", Engine{OpenSearch, 2, 19}, `"dense_vector" does not exist in OpenSearch`},
		{"match_only_text", Engine{OpenSearch, 2, 11}, `needs OpenSearch 2.12 or later, the cluster runs OpenSearch 2.11`},
		{"sparkly", Engine{OpenSearch, 2, 19}, `unknown field type "sparkly"`},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"p/v1/mapping.json": withType(c.typ)})
			set, err := Load(dir, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = set.Resolve("p", "v1", c.engine)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "mapping.json") {
				t.Fatalf("want an error naming mapping.json and %q, got %v", c.want, err)
			}
		})
	}
}

// TestFlavorOverlayReplacesOnlyItsFlavor prevents a per-flavor variant from leaking into
// the other flavor, and shows the overlay order (flavor, then flavor-major).
func TestFlavorOverlayReplacesOnlyItsFlavor(t *testing.T) {
	base := strings.Replace(goodMapping, `"id": {"type": "keyword"}`, `"id": {"type": "keyword"}, "attrs": {"type": "flattened"}`, 1)
	dir := writeTree(t, map[string]string{
		"p/v1/mapping.json":         base,
		"p/v1/opensearch.json":      `{"mappings": {"properties": {"attrs": {"type": "flat_object"}}}}`,
		"p/v1/elasticsearch-7.json": `{"settings": {"index": {"gc_deletes": "2h"}}, "mappings": {"properties": {"attrs": null}}}`,
	})
	set, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	attrs := func(d *Definition) any { return d.Mappings["properties"].(map[string]any)["attrs"] }
	os2, err := set.Resolve("p", "v1", Engine{OpenSearch, 2, 19})
	if err != nil {
		t.Fatal(err)
	}
	if got := attrs(os2).(map[string]any)["type"]; got != "flat_object" {
		t.Errorf("OpenSearch attrs type = %v, want flat_object", got)
	}
	es8, err := set.Resolve("p", "v1", Engine{Elasticsearch, 8, 14})
	if err != nil {
		t.Fatal(err)
	}
	if got := attrs(es8).(map[string]any)["type"]; got != "flattened" || es8.Settings["index.gc_deletes"] != "1h" {
		t.Errorf("ES 8: attrs type %v gc_deletes %s, want flattened and 1h", got, es8.Settings["index.gc_deletes"])
	}
	es7, err := set.Resolve("p", "v1", Engine{Elasticsearch, 7, 17})
	if err != nil {
		t.Fatal(err)
	}
	if attrs(es7) != nil || es7.Settings["index.gc_deletes"] != "2h" {
		t.Errorf("ES 7: attrs %v gc_deletes %s, want removed and 2h", attrs(es7), es7.Settings["index.gc_deletes"])
	}
}

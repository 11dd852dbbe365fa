package mapping

import (
	"testing"
)

var liveFlavors = []struct {
	name   string
	engine Engine
}{
	{"es7", Engine{Elasticsearch, 7, 17}},
	{"es8", Engine{Elasticsearch, 8, 14}},
	{"os2", Engine{OpenSearch, 2, 19}},
}

// TestSampleMappingShowsNoFalseDriftOnAnyFlavor prevents a verify that fails on a freshly
// applied index: the live GET _mapping/_settings answers of each engine (captured after
// `wye mapping apply` of mappings/programs/v1) must normalize to exactly the declared form.
func TestSampleMappingShowsNoFalseDriftOnAnyFlavor(t *testing.T) {
	set, err := Load("../mappings", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range liveFlavors {
		t.Run(f.name, func(t *testing.T) {
			def, err := set.Resolve("programs", "v1", f.engine)
			if err != nil {
				t.Fatal(err)
			}
			raw := readJSONFile(t, "testdata/live_mapping_"+f.name+".json")["mappings"].(map[string]any)
			norm := Normalize(raw)
			golden(t, "normalized_mapping_"+f.name+".golden.json", indentJSON(t, norm))
			settings := liveSettings(readJSONFile(t, "testdata/live_settings_"+f.name+".json")["settings"].(map[string]any))
			if d := Diff("programs_v1", def, norm, settings); len(d) > 0 {
				t.Errorf("drift on a freshly applied index:\n%s", indentJSON(t, d))
			}
		})
	}
}

// TestEngineEchoQuirksAreNotDrift prevents false drift from the ways the engines rewrite a
// mapping: defaults dropped or added ("analyzer": "default"), booleans and numbers
// respelt, "type": "object" dropped, dynamic as a string, OpenSearch echoing defaults
// Elasticsearch drops.
func TestEngineEchoQuirksAreNotDrift(t *testing.T) {
	declared := Normalize(readJSONFile(t, "testdata/quirks_declared.json"))
	golden(t, "quirks_normalized.golden.json", indentJSON(t, declared))
	for _, name := range []string{"es7", "os2"} {
		live := Normalize(readJSONFile(t, "testdata/quirks_live_"+name+".json"))
		def := &Definition{Mappings: declared}
		if d := Diff("quirks", def, live, nil); len(d) > 0 {
			t.Errorf("%s: echo quirks reported as drift:\n%s", name, indentJSON(t, d))
		}
	}
}

// TestHandAddedFieldIsDrift prevents a normalization so lenient it hides real changes.
func TestHandAddedFieldIsDrift(t *testing.T) {
	declared := Normalize(readJSONFile(t, "testdata/quirks_declared.json"))
	live := Normalize(readJSONFile(t, "testdata/quirks_live_es7.json"))
	live["properties"].(map[string]any)["o"].(map[string]any)["properties"].(map[string]any)["y"] = map[string]any{"type": "keyword"}
	live["properties"].(map[string]any)["a"].(map[string]any)["ignore_above"] = "512"
	delete(live["properties"].(map[string]any), "b")
	def := &Definition{Mappings: declared, Settings: map[string]string{"index.gc_deletes": "1h"}}
	got := Diff("quirks", def, live, map[string]string{"index.gc_deletes": "60s"})
	golden(t, "drift.golden.json", indentJSON(t, got))
	if len(got) != 4 {
		t.Fatalf("want 4 drifts (a changed, b removed, o.y added, gc_deletes changed), got %d", len(got))
	}
}

package mapping

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

func mappingOf(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// v1 is strict at the root, in an object, in a nested field and in an object under it;
// "extra" is dynamic: false and "open" dynamic: true (they keep unknown fields).
const projV1 = `{"dynamic":"strict","properties":{
	"id":{"type":"keyword"},
	"channel":{"properties":{"id":{"type":"keyword"}}},
	"episodes":{"type":"nested","properties":{"number":{"type":"integer"},
		"guest":{"properties":{"name":{"type":"keyword"}}}}},
	"extra":{"dynamic":false,"properties":{"a":{"type":"keyword"}}},
	"open":{"type":"object","dynamic":"true"},
	"blob":{"type":"object","enabled":false},
	"wye_version":{"type":"long"}}}`

// TestOldStrictIndexGetsTheDocumentWithoutTheNewFieldsAtEveryDepth: the document an entity
// builds for v2 loses, for v1, exactly the fields v1's strict levels do not know; fields v1
// knows, and unknown fields under non-strict levels, stay as they were.
func TestOldStrictIndexGetsTheDocumentWithoutTheNewFieldsAtEveryDepth(t *testing.T) {
	p := NewProjection(mappingOf(t, projV1))
	src := `{"id":7,"title_new":"x","channel":{"id":3,"name":"c"},` +
		`"episodes":[{"number":1,"minutes":20,"guest":{"name":"a","age":3}},{"number":2},{"number":3,"minutes":null}],` +
		`"extra":{"a":"k","b":"kept"},"open":{"z":{"deep":1}},"blob":{"any":[1,{"x":2}]},"a.b":1,"wye_version":5}`
	out, n, err := p.Apply([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":7,"channel":{"id":3},` +
		`"episodes":[{"number":1,"guest":{"name":"a"}},{"number":2},{"number":3}],` +
		`"extra":{"a":"k","b":"kept"},"open":{"z":{"deep":1}},"blob":{"any":[1,{"x":2}]},"a.b":1,"wye_version":5}`
	if string(out) != want {
		t.Errorf("projected:\n got %s\nwant %s", out, want)
	}
	// title_new, channel.name, episodes[0].minutes, episodes[0].guest.age, episodes[2].minutes
	if n != 5 {
		t.Errorf("left out %d fields, want 5", n)
	}
}

// TestDocumentThatFitsIsSentAsItIs: nothing to leave out returns the very same bytes.
func TestDocumentThatFitsIsSentAsItIs(t *testing.T) {
	p := NewProjection(mappingOf(t, projV1))
	src := []byte(`{"id":7, "channel":{"id":3},"episodes":[],"wye_version":5}`)
	out, n, err := p.Apply(src)
	if err != nil || n != 0 || &out[0] != &src[0] {
		t.Errorf("Apply of a fitting document: %s, %d, %v; want the same bytes", out, n, err)
	}
	for _, bad := range []string{`[1]`, `{"id":1`, `{"id" 1}`, `{"id":1}x`, `{"x":"a}`, `{"id":1,}`, `{"x":{"a":[1,2}}`} {
		if _, _, err := p.Apply([]byte(bad)); err == nil {
			t.Errorf("Apply of %s: no error", bad)
		}
	}
	// Strings holding JSON punctuation and escapes, escaped keys, spaces: found and skipped whole.
	out, n, err = p.Apply([]byte(` { "id" : "a}\"]," , "x\u0079" : {"q":"}"} , "channel":{"id":[1,{"a":"]"}], "n\"":1} } `))
	if err != nil || n != 2 || string(out) != `{"id":"a}\"],","channel":{"id":[1,{"a":"]"}]}}` {
		t.Errorf("tricky document: %s, %d, %v", out, n, err)
	}
}

// TestOnlyAnIndexThatLacksAFieldOfItsFamilyIsProjected: the newest index (a superset), an
// index alone, and indices whose differences are under non-strict levels are never projected,
// so their documents are never re-encoded.
func TestOnlyAnIndexThatLacksAFieldOfItsFamilyIsProjected(t *testing.T) {
	v1 := mappingOf(t, projV1)
	v2 := mappingOf(t, strings.Replace(projV1, `"id":{"type":"keyword"},`, `"id":{"type":"keyword"},"title_new":{"type":"text"},`, 1))
	v2nested := mappingOf(t, strings.Replace(projV1, `"number":{"type":"integer"},`, `"number":{"type":"integer"},"minutes":{"type":"integer"},`, 1))
	v2extra := mappingOf(t, strings.Replace(projV1, `"a":{"type":"keyword"}`, `"a":{"type":"keyword"},"b":{"type":"keyword"}`, 1))
	loose := mappingOf(t, `{"dynamic":false,"properties":{"id":{"type":"keyword"}}}`)
	for _, c := range []struct {
		name     string
		mappings []map[string]any
		want     []bool
	}{
		{"one index", []map[string]any{v1}, []bool{false}},
		{"same mapping", []map[string]any{v1, v1}, []bool{false, false}},
		{"new root field", []map[string]any{v1, v2}, []bool{true, false}},
		{"new nested field", []map[string]any{v1, v2nested}, []bool{true, false}},
		{"new field under dynamic false", []map[string]any{v1, v2extra}, []bool{false, false}},
		{"field removed in v2", []map[string]any{v2, v1}, []bool{false, true}},
		{"non-strict old index", []map[string]any{loose, v2}, []bool{false, false}},
	} {
		var got []bool
		for _, p := range Projections(c.mappings) {
			got = append(got, p != nil)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: projected %v, want %v", c.name, got, c.want)
		}
	}
}

// routed answers the family listing and the mappings of a bump from v1 (alias) to v2.
type routed struct{ mappings string }

func (r routed) Do(_ context.Context, req esapi.Request) (int, []byte, error) {
	if _, ok := req.(esapi.IndicesGetMappingRequest); ok {
		return 200, []byte(r.mappings), nil
	}
	return 200, []byte(`{"t_p_v2":{"aliases":{}},"t_p_v1":{"aliases":{"t_p":{}}},"t_p_other":{"aliases":{}}}`), nil
}

// TestWriteTargetsNamesTheAliasIndexAndProjectsOnlyTheOldOne: during a bump the alias's
// index is marked (its result decides a document) and only the index lacking the new field
// is projected.
func TestWriteTargetsNamesTheAliasIndexAndProjectsOnlyTheOldOne(t *testing.T) {
	v2 := strings.Replace(projV1, `"id":{"type":"keyword"},`, `"id":{"type":"keyword"},"title_new":{"type":"text"},`, 1)
	ts, err := WriteTargets(t.Context(), routed{`{"t_p_v1":{"mappings":` + projV1 + `},"t_p_v2":{"mappings":` + v2 + `}}`}, "t_p")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Name != "t_p_v1" || !ts[0].Alias || ts[0].Project == nil ||
		ts[1].Name != "t_p_v2" || ts[1].Alias || ts[1].Project != nil {
		t.Errorf("targets: %+v", ts)
	}
	if _, err := WriteTargets(t.Context(), routed{`{"t_p_v1":{"mappings":` + projV1 + `}}`}, "t_p"); err == nil {
		t.Error("a family whose mapping is missing: no error")
	}
}

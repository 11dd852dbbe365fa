package mapping

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wyehq/wye/indexer"
)

// catalogDef is examples/catalog/entity.yaml as the indexer gets it.
func catalogDef() indexer.EntityDef {
	cols := func(names ...string) []indexer.Column {
		var out []indexer.Column
		for _, n := range names {
			out = append(out, indexer.Column{Name: n, Field: n})
		}
		return out
	}
	episodes := cols("id", "number")
	episodes = append(episodes, indexer.Column{Name: "title", Field: "episode_title"})
	return indexer.EntityDef{Name: "program", Index: "programs", Table: "c.programs", Key: "id",
		Columns: cols("id", "title", "channel_id", "duration_s", "rating", "code", "updated_at"),
		Relations: []indexer.RelationDef{
			{Name: "channel", Table: "c.channels", Key: []string{"id"}, From: "channel_id", Columns: cols("id", "name"),
				Relations: []indexer.RelationDef{{Name: "network", Table: "c.networks", Key: []string{"id"}, From: "network_id", Columns: cols("id", "name")}}},
			{Name: "episodes", Table: "c.episodes", Key: []string{"id"}, ParentKey: "program_id", Many: true, Columns: episodes},
			{Name: "tags", Table: "c.tags", Key: []string{"id"}, Many: true, Columns: cols("id", "name"),
				Through: indexer.Through{Table: "c.program_tags", ParentKey: "program_id", Key: "tag_id"}},
		}}
}

// catalogColumns are examples/catalog/schema.sql as information_schema.COLUMNS gives it.
func catalogColumns() Columns {
	intc := func(n string) Column { return Column{Name: n, DataType: "int", ColumnType: "int(11)"} }
	vc := func(n string, l int64) Column {
		return Column{Name: n, DataType: "varchar", ColumnType: "varchar", MaxLength: l}
	}
	return Columns{
		"c.networks": {intc("id"), vc("name", 100)},
		"c.channels": {intc("id"), vc("name", 100), intc("network_id")},
		"c.programs": {intc("id"), vc("title", 200), intc("channel_id"), intc("duration_s"),
			{Name: "rating", DataType: "decimal", ColumnType: "decimal(3,1)"}, vc("code", 16),
			{Name: "updated_at", DataType: "datetime", ColumnType: "datetime"}, vc("internal_note", 200)},
		"c.episodes":     {intc("id"), intc("program_id"), intc("number"), vc("title", 200)},
		"c.tags":         {intc("id"), vc("name", 64)},
		"c.program_tags": {intc("program_id"), intc("tag_id")},
	}
}

func catalogLinks() []indexer.LinkColumn {
	m, err := indexer.NewModel([]indexer.EntityDef{catalogDef()})
	if err != nil {
		panic(err)
	}
	return m.LinkColumns()
}

// TestSkeletonOfTheCatalogMapsEveryFieldTheIndexerWrites prevents a generated mapping that
// refuses the documents it was generated for, or that guesses ids as numbers: the skeleton
// of the sample catalog passes the rules every mapping file is held to, maps every field
// (Unmapped finds none) with the documented type, and leaves internal_note (not selected) out.
func TestSkeletonOfTheCatalogMapsEveryFieldTheIndexerWrites(t *testing.T) {
	doc := DocumentOf(catalogDef(), catalogLinks(), catalogColumns())
	b, err := SkeletonJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "programs", "v1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mapping.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := Load(filepath.Dir(filepath.Dir(dir)), LoadOptions{})
	if err != nil {
		t.Fatalf("the skeleton breaks the mapping rules: %v\n%s", err, b)
	}
	for _, e := range []Engine{{Elasticsearch, 7, 17}, {Elasticsearch, 8, 14}, {OpenSearch, 2, 19}} {
		def, err := set.Resolve("programs", "v1", e)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		if missing, unknown := Unmapped(doc, def.Mappings); len(missing)+len(unknown) > 0 {
			t.Errorf("%s: unmapped %q, unknown %q", e, missing, unknown)
		}
	}

	var m struct {
		Mappings struct {
			Dynamic    string                    `json:"dynamic"`
			Properties map[string]map[string]any `json:"properties"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	p := m.Mappings.Properties
	want := map[string]string{"id": "keyword", "channel_id": "keyword", "code": "keyword", "title": "text",
		"duration_s": "integer", "rating": "double", "updated_at": "date", "episodes": "nested", "tags": "nested", "wye_version": "long"}
	for f, typ := range want {
		if p[f]["type"] != typ {
			t.Errorf("field %s: type %v, want %s", f, p[f]["type"], typ)
		}
	}
	if p["updated_at"]["format"] != "yyyy-MM-dd HH:mm:ss" || p["rating"]["coerce"] != true {
		t.Errorf("updated_at %v, rating %v", p["updated_at"], p["rating"])
	}
	if _, ok := p["internal_note"]; ok || m.Mappings.Dynamic != "strict" {
		t.Errorf("internal_note mapped though not selected, or dynamic %q", m.Mappings.Dynamic)
	}
	channel := p["channel"]["properties"].(map[string]any)
	if channel["id"].(map[string]any)["type"] != "keyword" || p["channel"]["type"] != nil {
		t.Errorf("channel: %v", p["channel"])
	}
}

// TestSkeletonTypesFollowHowWyeEncodesEachColumnType prevents a field type that refuses
// the value wye writes for its SQL type (indexer/sql encode): fractional DATETIME, UTC
// TIMESTAMP with Z, binary as {"$base64": ...}, unsigned BIGINT, JSON of any shape.
func TestSkeletonTypesFollowHowWyeEncodesEachColumnType(t *testing.T) {
	cases := []struct {
		col  Column
		key  bool
		want string
	}{
		{Column{DataType: "datetime", Precision: 6}, false, `{"format":"yyyy-MM-dd HH:mm:ss.SSSSSS","type":"date"}`},
		{Column{DataType: "date"}, false, `{"format":"yyyy-MM-dd","type":"date"}`},
		{Column{DataType: "timestamp", Precision: 3}, false, `{"format":"strict_date_optional_time","type":"date"}`},
		{Column{DataType: "time"}, false, `{"type":"keyword"}`},
		{Column{DataType: "year"}, false, `{"type":"integer"}`},
		{Column{DataType: "bit", ColumnType: "bit(8)"}, false, `{"type":"long"}`},
		{Column{DataType: "int", ColumnType: "int(10) unsigned"}, false, `{"type":"long"}`},
		{Column{DataType: "bigint", ColumnType: "bigint(20) unsigned"}, false, `{"type":"double"}`},
		{Column{DataType: "bigint", ColumnType: "bigint(20)"}, true, `{"type":"keyword"}`},
		{Column{DataType: "json"}, false, `{"enabled":false,"type":"object"}`},
		{Column{DataType: "blob"}, false, `{"properties":{"$base64":{"type":"binary"}}}`},
		{Column{DataType: "varbinary"}, true, `{"properties":{"$base64":{"type":"keyword"}}}`},
		{Column{DataType: "varchar", MaxLength: 64}, false, `{"type":"keyword"}`},
		{Column{DataType: "varchar", MaxLength: 65}, false, `{"fields":{"raw":{"ignore_above":256,"type":"keyword"}},"type":"text"}`},
		{Column{DataType: "longtext"}, false, `{"type":"text"}`},
		{Column{DataType: "enum"}, false, `{"type":"keyword"}`},
		{Column{DataType: "decimal"}, false, `{"coerce":true,"type":"double"}`},
	}
	for _, c := range cases {
		b, _ := json.Marshal(fieldType(c.col, c.key))
		if string(b) != c.want {
			t.Errorf("%s (%s) key %v: %s, want %s", c.col.DataType, c.col.ColumnType, c.key, b, c.want)
		}
	}
}

// TestPlanFlagsAnEntityFieldTheStrictMappingLacks prevents a plan that says "nothing to do"
// while every document would be refused: the sample mapping without episodes.number and
// without code is reported field by field, a field under a non-strict object is not, and
// an entity whose columns are omitted is reported as not checked instead of as complete.
func TestPlanFlagsAnEntityFieldTheStrictMappingLacks(t *testing.T) {
	set, err := Load("../mappings", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	def, err := set.Resolve("programs", "v1", Engine{Elasticsearch, 8, 14})
	if err != nil {
		t.Fatal(err)
	}
	doc := DocumentOf(catalogDef(), catalogLinks(), nil)
	if missing, unknown := Unmapped(doc, def.Mappings); len(missing)+len(unknown) > 0 {
		t.Fatalf("the shipped mapping of the catalog: unmapped %q, unknown %q", missing, unknown)
	}

	props := def.Mappings["properties"].(map[string]any)
	delete(props, "code")
	delete(props["episodes"].(map[string]any)["properties"].(map[string]any), "number")
	props["channel"].(map[string]any)["dynamic"] = "false"
	delete(props["channel"].(map[string]any)["properties"].(map[string]any), "name")
	missing, _ := Unmapped(doc, def.Mappings)
	if want := []string{"code", "episodes.number"}; !slices.Equal(missing, want) {
		t.Errorf("unmapped %q, want %q", missing, want)
	}

	open := catalogDef()
	open.Columns = nil
	missing, unknown := Unmapped(DocumentOf(open, catalogLinks(), nil), def.Mappings)
	if !reflect.DeepEqual(unknown, []string{"c.programs"}) || len(missing) != 1 || missing[0] != "episodes.number" {
		t.Errorf("columns omitted: unmapped %q (want episodes.number), unknown %q (want c.programs)", missing, unknown)
	}

	// With the source's columns (plan --source) the omitted columns are known: the root then
	// writes internal_note, which the shipped mapping lacks too.
	missing, unknown = Unmapped(DocumentOf(open, catalogLinks(), catalogColumns()), def.Mappings)
	if !slices.Equal(missing, []string{"code", "episodes.number", "internal_note"}) || len(unknown) > 0 {
		t.Errorf("columns read from the source: unmapped %q (want code, episodes.number, internal_note), unknown %q", missing, unknown)
	}

	// In a plan: a finding on an index to create, which apply still creates.
	def, err = set.Resolve("programs", "v1", Engine{Elasticsearch, 8, 14})
	if err != nil {
		t.Fatal(err)
	}
	delete(def.Mappings["properties"].(map[string]any)["episodes"].(map[string]any)["properties"].(map[string]any), "number")
	ip := decide(IndexPlan{Alias: "programs", Target: "programs_v1"}, def, nil, &Live{Alias: "programs", Indices: map[string]*LiveIndex{}})
	ip = checkDocument(ip, DocumentOf(open, catalogLinks(), nil))
	p := &Plan{Clusters: []ClusterPlan{{Cluster: "es8", Engine: "Elasticsearch 8.14", Version: "v1", Indices: []IndexPlan{ip}}}}
	var out bytes.Buffer
	if err := p.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UNMAPPED  UNMAPPED: 1 entity field(s), see below; create index programs_v1",
		"UNMAPPED on cluster es8, index programs_v1", "  - field episodes.number\n",
		"note: cluster es8: programs: the fields read from c.programs are not checked"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, out.String())
		}
	}
	if p.Unmapped() != 1 || p.Problems() != 1 || p.HasDrift() {
		t.Errorf("Unmapped %d Problems %d HasDrift %v, want 1 1 false", p.Unmapped(), p.Problems(), p.HasDrift())
	}
	if rs := Apply(t.Context(), p, []Cluster{{Name: "es8"}}, true); len(rs) != 2 || rs[0].Outcome != DryRun {
		t.Errorf("apply of an unmapped family: %+v, want create and alias", rs)
	}
}

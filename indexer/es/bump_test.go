package es

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/mapping"
)

// bumpResolver answers v1 (the alias's index, projected with project) and v2 for every alias.
type bumpResolver struct {
	project func([]byte) ([]byte, int, error)
}

func (r bumpResolver) WriteTargets(context.Context, string) ([]Target, error) {
	return []Target{{Name: "programs_v1", Alias: true, Project: r.project}, {Name: "programs_v2"}}, nil
}

// answered answers each action of a body by its index and id, and keeps the bodies.
type answered struct {
	answer func(index, id string) cluster.Class
	gone   string // an index every item of answers index_not_found_exception (gc deleted it)
	bodies []string
}

func (a *answered) Bulk(_ context.Context, body []byte, _ ...cluster.BulkOption) ([]cluster.BulkItem, error) {
	a.bodies = append(a.bodies, string(body))
	var items []cluster.BulkItem
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if !strings.HasPrefix(line, `{"index"`) && !strings.HasPrefix(line, `{"delete"`) {
			continue
		}
		it := cluster.BulkItem{Index: between(line, `"_index":"`), ID: between(line, `"_id":"`), Status: 201}
		switch it.Class = a.answer(it.Index, it.ID); {
		case it.Index == a.gone:
			it.Class, it.Status, it.ErrType, it.Reason = cluster.Retryable, 404, "index_not_found_exception", "no such index"
		case it.Class == cluster.Permanent:
			it.Status, it.ErrType, it.Reason = 400, "strict_dynamic_mapping_exception", "mapping set to strict"
		case it.Class == cluster.Retryable:
			it.Status, it.ErrType, it.Reason = 429, "es_rejected_execution_exception", "queue full"
		}
		items = append(items, it)
	}
	return items, nil
}

// TestNewIndexRefusingADocumentNeitherParksNorLedgersIt: during a bump, only the index the
// alias points at decides a document; the new index's permanent refusal is counted, while
// its transient failure and any failure of the alias's index still decide (retry, ledger).
func TestNewIndexRefusingADocumentNeitherParksNorLedgersIt(t *testing.T) {
	answer := func(index, id string) cluster.Class {
		switch {
		case index == "programs_v2" && id == "1":
			return cluster.Permanent
		case index == "programs_v2" && id == "2":
			return cluster.Retryable
		case index == "programs_v1" && id == "3":
			return cluster.Permanent
		}
		return cluster.OK
	}
	metrics := indexer.NewMetrics(nil)
	ledger := &memLedger{ids: map[string][]string{}}
	var ws []indexer.ClusterWriter
	for _, name := range []string{"es7", "es8"} {
		ws = append(ws, New(Options{Name: name, Client: &answered{answer: answer}, Resolver: bumpResolver{}, Metrics: metrics}))
	}
	f := indexer.NewStream(indexer.StreamOptions{Clusters: ws, Roles: fixedRoles("es7"), Ledger: ledger, Metrics: metrics})
	f.Start(t.Context())
	_, results, err := f.Write(t.Context(), docs(4), "")
	if err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithTimeout(context.Background(), 5e9)
	defer cancel()
	f.Stop(stop)

	want := []indexer.Class{indexer.OK, indexer.OK, indexer.Retryable, indexer.Permanent}
	for i, r := range results {
		if r.Class != want[i] {
			t.Errorf("master, doc %d: %+v, want %v", i, r, want[i])
		}
	}
	if !strings.HasPrefix(results[2].Reason, "programs_v2: ") || !strings.HasPrefix(results[3].Reason, "programs_v1: ") {
		t.Errorf("reasons %q, %q: want the index that decided", results[2].Reason, results[3].Reason)
	}
	if got := ledger.get("es8"); strings.Join(got, " ") != "2:retryable 3:permanent" {
		t.Errorf("slave ledger %v, want only docs 2 and 3", got)
	}
	for _, c := range []string{"es7", "es8"} {
		if n := testutil.ToFloat64(metrics.OtherIndexRefused.WithLabelValues(c, "programs_v2")); n != 1 {
			t.Errorf("%s: %v refusals by programs_v2 counted, want 1", c, n)
		}
	}
}

// TestOldIndexReceivesTheDocumentWithoutTheFieldsItsStrictMappingLacks: v1 (strict, no
// "note") gets each document without note and v2 the entity's bytes as they are; deletes
// and documents that fit are not touched.
func TestOldIndexReceivesTheDocumentWithoutTheFieldsItsStrictMappingLacks(t *testing.T) {
	p := mapping.NewProjection(map[string]any{"dynamic": "strict", "properties": map[string]any{
		"id": map[string]any{"type": "keyword"}, "tags": map[string]any{"properties": map[string]any{"id": map[string]any{"type": "keyword"}}}}})
	metrics := indexer.NewMetrics(nil)
	bulk := &answered{answer: func(string, string) cluster.Class { return cluster.OK }}
	w := New(Options{Name: "es7", Client: bulk, Resolver: bumpResolver{p.Apply}, Metrics: metrics})
	d := docs(3)
	d[0].Source = []byte(`{"id":0,"note":"new","tags":[{"id":1,"note":"x"}]}`)
	d[2].Source = nil
	for i, r := range w.Write(t.Context(), d) {
		if r.Class != indexer.OK {
			t.Errorf("doc %d: %+v", i, r)
		}
	}
	want := strings.Join([]string{
		`{"index":{"_index":"programs_v1","_id":"0","version":100,"version_type":"external"}}`, `{"id":0,"tags":[{"id":1}]}`,
		`{"index":{"_index":"programs_v2","_id":"0","version":100,"version_type":"external"}}`, `{"id":0,"note":"new","tags":[{"id":1,"note":"x"}]}`,
		`{"index":{"_index":"programs_v1","_id":"1","version":101,"version_type":"external"}}`, `{"id":1}`,
		`{"index":{"_index":"programs_v2","_id":"1","version":101,"version_type":"external"}}`, `{"id":1}`,
		`{"delete":{"_index":"programs_v1","_id":"2","version":102,"version_type":"external"}}`,
		`{"delete":{"_index":"programs_v2","_id":"2","version":102,"version_type":"external"}}`,
	}, "\n") + "\n"
	if len(bulk.bodies) != 1 || bulk.bodies[0] != want {
		t.Errorf("bodies:\n%s\nwant:\n%s", strings.Join(bulk.bodies, "---\n"), want)
	}
	if n := testutil.ToFloat64(metrics.FieldsProjected.WithLabelValues("es7", "programs_v1")); n != 2 {
		t.Errorf("fields projected: %v, want 2", n)
	}
}

// okBulker answers every action OK without parsing: the writer's own cost is measured.
type okBulker struct{}

var okItem = cluster.BulkItem{Status: 201, Class: cluster.OK}

func (okBulker) Bulk(_ context.Context, body []byte, _ ...cluster.BulkOption) ([]cluster.BulkItem, error) {
	n := bytes.Count(body, []byte(`"version_type":"external"`))
	items := make([]cluster.BulkItem, n)
	for i := range items {
		items[i] = okItem
	}
	return items, nil
}

type oneIndex struct{}

func (oneIndex) WriteTargets(context.Context, string) ([]Target, error) {
	return []Target{{Name: "programs_v1", Alias: true}}, nil
}

func benchDocs() []indexer.Doc {
	src := `{"id":%d,"title":"` + strings.Repeat("t", 600) + `","channel":{"id":3,"name":"c","network":{"id":1,"name":"n"}},` +
		`"episodes":[{"id":1,"number":1,"episode_title":"e"},{"id":2,"number":2,"episode_title":"f"}],"tags":[{"id":1,"name":"a"}],"wye_version":%d}`
	out := make([]indexer.Doc, 500)
	for i := range out {
		out[i] = indexer.Doc{Entity: "program", Index: "programs", ID: fmt.Sprint(i), Version: int64(100 + i),
			Source: fmt.Appendf(nil, src, i, 100+i)}
	}
	return out
}

// BenchmarkWriteNoBump is the common case: one index per alias, nothing projected. Its
// cost must not change with bump-safe writes (compare with the same benchmark on the
// writer before them).
func BenchmarkWriteNoBump(b *testing.B) {
	w := New(Options{Name: "es7", Client: okBulker{}, Resolver: oneIndex{}, Logger: slog.New(slog.DiscardHandler)})
	d := benchDocs()
	b.ReportAllocs()
	for b.Loop() {
		w.Write(b.Context(), d)
	}
}

// BenchmarkWriteDuringABump: two indices, the old one projected (every document carries a
// field it lacks).
func BenchmarkWriteDuringABump(b *testing.B) {
	raw, err := os.ReadFile("../../mappings/programs/v1/mapping.json")
	if err != nil {
		b.Fatal(err)
	}
	var v1 struct {
		Mappings map[string]any `json:"mappings"`
	}
	if err := json.Unmarshal(raw, &v1); err != nil {
		b.Fatal(err)
	}
	w := New(Options{Name: "es7", Client: okBulker{}, Resolver: bumpResolver{mapping.NewProjection(v1.Mappings).Apply},
		Logger: slog.New(slog.DiscardHandler)})
	d := benchDocs()
	for i := range d {
		d[i].Source = append(d[i].Source[:len(d[i].Source)-1], `,"note":"new in v2"}`...)
	}
	b.ReportAllocs()
	for b.Loop() {
		w.Write(b.Context(), d)
	}
}

// switchedResolver answers the targets after `wye mapping switch`: the alias on v2, v1 still
// listed until the indices cache expires.
type switchedResolver struct{}

func (switchedResolver) WriteTargets(context.Context, string) ([]Target, error) {
	return []Target{{Name: "programs_v1"}, {Name: "programs_v2", Alias: true}}, nil
}

// TestAnOldIndexGoneAfterGCDecidesNothing prevents a slave's ids from landing in its repair
// ledger (and a master's from being retried) when `wye mapping gc` deleted the old index while
// the indexer still listed it: index_not_found_exception from an index the alias does not point
// at decides nothing; the alias's index does.
func TestAnOldIndexGoneAfterGCDecidesNothing(t *testing.T) {
	metrics := indexer.NewMetrics(nil)
	ledger := &memLedger{ids: map[string][]string{}}
	var ws []indexer.ClusterWriter
	for _, name := range []string{"es7", "es8"} {
		ws = append(ws, New(Options{Name: name, Client: &answered{answer: func(string, string) cluster.Class { return cluster.OK }, gone: "programs_v1"},
			Resolver: switchedResolver{}, Metrics: metrics}))
	}
	f := indexer.NewStream(indexer.StreamOptions{Clusters: ws, Roles: fixedRoles("es7"), Ledger: ledger, Metrics: metrics})
	f.Start(t.Context())
	_, results, err := f.Write(t.Context(), docs(3), "")
	if err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithTimeout(context.Background(), 5e9)
	defer cancel()
	f.Stop(stop)
	for i, r := range results {
		if r.Class != indexer.OK {
			t.Errorf("master, doc %d: %+v, want ok (v2, the alias's index, took it)", i, r)
		}
	}
	if got := ledger.get("es8"); len(got) != 0 {
		t.Errorf("slave ledger %v, want empty", got)
	}
}

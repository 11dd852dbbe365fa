package mapping

import (
	"bytes"
	"errors"
	"testing"
)

// samplePlan builds, without a cluster, one plan with every status: es7 empty (create +
// alias), es8 up to date, os2 drifted by a hand-added field while a bump to v2 is pending,
// es9 unreachable.
func samplePlan(t *testing.T) *Plan {
	t.Helper()
	set, err := Load("../mappings", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(v string, e Engine) *Definition {
		// The sample ships v1 only; a v2 identical to it is enough for planning.
		d, err := set.Resolve("programs", "v1", e)
		if err != nil {
			t.Fatal(err)
		}
		d.Version = v
		return d
	}
	liveIndex := func(name, version string, def *Definition) *LiveIndex {
		m := Normalize(def.Mappings)
		return &LiveIndex{Name: name, Version: version, Mapping: m, Settings: def.Settings}
	}
	opts := Options{Prefix: "t_"}
	newIP := func(version string) IndexPlan {
		return IndexPlan{Alias: opts.AliasName("programs"), Target: opts.IndexName("programs", version)}
	}
	es7, es8, os2 := Engine{Elasticsearch, 7, 17}, Engine{Elasticsearch, 8, 14}, Engine{OpenSearch, 2, 19}

	p := &Plan{}
	// es7: nothing there yet.
	p.Clusters = append(p.Clusters, ClusterPlan{Cluster: "es7", Engine: es7.String(), Version: "v1", Indices: []IndexPlan{
		decide(newIP("v1"), resolve("v1", es7), nil, &Live{Alias: "t_programs", Indices: map[string]*LiveIndex{}}),
	}})
	// es8: applied.
	d8 := resolve("v1", es8)
	p.Clusters = append(p.Clusters, ClusterPlan{Cluster: "es8", Engine: es8.String(), Version: "v1", Indices: []IndexPlan{
		decide(newIP("v1"), d8, nil, &Live{Alias: "t_programs", AliasOn: []string{"t_programs_v1"},
			Indices: map[string]*LiveIndex{"t_programs_v1": liveIndex("t_programs_v1", "v1", d8)}}),
	}})
	// os2: configured v2, alias on v1, v1 has a field added by hand.
	dv1, dv2 := resolve("v1", os2), resolve("v2", os2)
	v1 := liveIndex("t_programs_v1", "v1", dv1)
	v1.Mapping["properties"].(map[string]any)["extra_note"] = map[string]any{"type": "keyword"}
	p.Clusters = append(p.Clusters, ClusterPlan{Cluster: "os2", Engine: os2.String(), Version: "v2", Indices: []IndexPlan{
		decide(newIP("v2"), dv2, map[string]*Definition{"v1": dv1}, &Live{Alias: "t_programs", AliasOn: []string{"t_programs_v1"},
			Indices: map[string]*LiveIndex{"t_programs_v1": v1}}),
	}})
	p.Clusters = append(p.Clusters, ClusterPlan{Cluster: "es9", Version: "v1",
		Error: "cluster es9: unreachable at http://127.0.0.1:9299: connection refused"})
	return p
}

// TestPlanOutputIsStable prevents unnoticed changes to what people and scripts read: the
// table and the JSON of a plan with every status are golden files.
func TestPlanOutputIsStable(t *testing.T) {
	p := samplePlan(t)
	var table, js bytes.Buffer
	if err := p.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.golden.txt", table.Bytes())
	if err := WriteJSON(&js, p); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.golden.json", js.Bytes())
}

// TestDriftOnOneClusterOnlyFailsVerify prevents drift on one cluster from being hidden by
// the others, or blamed on them.
func TestDriftOnOneClusterOnlyFailsVerify(t *testing.T) {
	p := samplePlan(t)
	got := map[string]Status{}
	for _, c := range p.Clusters {
		for _, ip := range c.Indices {
			got[c.Cluster] = ip.Status
		}
	}
	want := map[string]Status{"es7": StatusPending, "es8": StatusOK, "os2": StatusDrift}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("cluster %s: status %s, want %s", k, got[k], v)
		}
	}
	if !p.HasDrift() || p.Problems() != 3 || p.Failures() != 1 {
		t.Errorf("HasDrift %v Problems %d Failures %d, want true 3 1", p.HasDrift(), p.Problems(), p.Failures())
	}
}

// TestApplySkipsDriftedIndexButNotTheBump prevents apply from aliasing an index that
// drifted (the drift is for a person to resolve), while still creating the next version
// beside an old index that drifted: the bump is how drift gets fixed.
func TestApplySkipsDriftedIndexButNotTheBump(t *testing.T) {
	p := samplePlan(t)
	rs := Apply(t.Context(), p, []Cluster{{Name: "os2", API: nil, Err: errors.New("not used")}}, true)
	for _, r := range rs {
		if r.Cluster == "os2" && (r.Op != "create_index" || r.Outcome != DryRun) {
			t.Errorf("os2 step %s %s: outcome %s, want only create_index, dry-run", r.Op, r.Index, r.Outcome)
		}
		if r.Cluster == "es7" && r.Outcome != DryRun {
			t.Errorf("es7 step %s: outcome %s, want dry-run", r.Op, r.Outcome)
		}
	}
	p.Clusters[2].Indices[0].Drift[0].Index = "t_programs_v2" // now the target itself drifted
	for _, r := range Apply(t.Context(), p, nil, true) {
		if r.Cluster == "os2" && r.Outcome != Skipped {
			t.Errorf("os2 step %s: outcome %s, want skipped when the target drifted", r.Op, r.Outcome)
		}
	}
}

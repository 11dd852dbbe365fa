package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/mapping"
)

// mappingPrefix is unique per test run, so runs can share the clusters.
func mappingPrefix() string {
	return fmt.Sprintf("e2e%d_", time.Now().UnixNano()%1_000_000_000)
}

// mappingTargets connects to the three local clusters at mapping version v, and registers
// the deletion of <prefix>programs_v1..v3 (explicit names: ES 8 refuses wildcard deletes).
func mappingTargets(t *testing.T, prefix, v string) ([]mapping.Cluster, map[string]*cluster.Client) {
	t.Helper()
	clients := map[string]*cluster.Client{}
	var targets []mapping.Cluster
	for _, name := range clusterNames {
		c, err := cluster.New(cluster.Options{Name: name, URLs: []string{clusterURL(t, name)}, RequestTimeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("connect %s: %v", name, err)
		}
		clients[name] = c
		targets = append(targets, mapping.Cluster{Name: name, Engine: mapping.EngineOf(c.Info()), Version: v, API: c})
	}
	t.Cleanup(func() {
		// Not t.Context(): it is cancelled before cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		yes := true
		for _, c := range clients {
			var names []string
			for _, v := range []string{"v1", "v2", "v3"} {
				names = append(names, prefix+"programs_"+v)
			}
			if status, body, err := c.Do(ctx, esapi.IndicesDeleteRequest{Index: names, IgnoreUnavailable: &yes}); err != nil || status != 200 {
				t.Errorf("clean up %s on %s: %d %s %v", strings.Join(names, ","), c.Name(), status, body, err)
			}
		}
	})
	return targets, clients
}

func withVersion(ts []mapping.Cluster, v string) []mapping.Cluster {
	out := slices.Clone(ts)
	for i := range out {
		out[i].Version = v
	}
	return out
}

func statuses(p *mapping.Plan) map[string]mapping.Status {
	out := map[string]mapping.Status{}
	for _, c := range p.Clusters {
		if c.Error != "" {
			out[c.Cluster] = "error: " + mapping.Status(c.Error)
		}
		for _, ip := range c.Indices {
			out[c.Cluster] = ip.Status
			if ip.Error != "" {
				out[c.Cluster] += mapping.Status(": " + ip.Error)
			}
		}
	}
	return out
}

// sampleProgram is a document as the indexer builds it from the sample catalog
// (examples/catalog/entity.yaml): INT columns as JSON numbers, DECIMAL and DATETIME as
// strings, a many-to-one relation as an object (null when there is no row), the others as
// arrays. Its _id is the root key in decimal.
func sampleProgram(id int, version int64) map[string]any {
	return map[string]any{
		"id": id, "title": fmt.Sprintf("Program %d", id), "channel_id": 7, "duration_s": 3120,
		"rating": "4.5", "code": fmt.Sprintf("P-%05d", id), "updated_at": "2026-05-01 20:00:00",
		"channel": map[string]any{"id": 7, "name": "Channel 7",
			"network": map[string]any{"id": 2, "name": "Network 2"}},
		"episodes":    []any{map[string]any{"id": 10*id + 1, "number": 1, "episode_title": "Pilot"}},
		"tags":        []any{map[string]any{"id": 3, "name": "drama"}, map[string]any{"id": 5, "name": "crime"}},
		"wye_version": version,
	}
}

// bulkIndex writes docs (id -> source) to index with external versions and returns the items.
func bulkIndex(t *testing.T, c *cluster.Client, index string, docs map[string]map[string]any) []cluster.BulkItem {
	t.Helper()
	var b bytes.Buffer
	for _, id := range slices.Sorted(maps.Keys(docs)) {
		v, _ := docs[id]["wye_version"].(int64)
		if v == 0 {
			v = 1
		}
		meta, _ := json.Marshal(map[string]any{"index": map[string]any{"_index": index, "_id": id, "version": v, "version_type": "external"}})
		src, _ := json.Marshal(docs[id])
		b.Write(meta)
		b.WriteByte('\n')
		b.Write(src)
		b.WriteByte('\n')
	}
	items, err := c.Bulk(t.Context(), b.Bytes(), cluster.WithRefresh("true"))
	if err != nil {
		t.Fatalf("bulk to %s on %s: %v", index, c.Name(), err)
	}
	return items
}

// TestMappingApplyVerifyAndDriftOnRealClusters covers issue 5's first three "done when"
// items on ES 7.17, ES 8.14 and OpenSearch 2.19: apply creates index + alias, a second
// apply is a no-op and verify passes; a field put by hand on one cluster is drift on that
// cluster only, and verify fails naming cluster, index and field; a document with an
// unmapped field is refused by every cluster and classified Permanent.
func TestMappingApplyVerifyAndDriftOnRealClusters(t *testing.T) {
	prefix := mappingPrefix()
	targets, clients := mappingTargets(t, prefix, "v1")
	set, err := mapping.Load("../mappings", mapping.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := mapping.Resolve(set, targets); err != nil {
		t.Fatal(err)
	}
	opts := mapping.Options{Prefix: prefix}
	alias, index := prefix+"programs", prefix+"programs_v1"

	p := mapping.MakePlan(t.Context(), set, targets, opts)
	for name, s := range statuses(p) {
		if s != mapping.StatusPending {
			t.Fatalf("empty cluster %s: plan status %s, want pending", name, s)
		}
	}
	rs := mapping.Apply(t.Context(), p, targets, false)
	if len(rs) != 6 || mapping.Incomplete(rs) {
		t.Fatalf("first apply: want 6 steps done, got %+v", rs)
	}

	p = mapping.MakePlan(t.Context(), set, targets, opts)
	for name, s := range statuses(p) {
		if s != mapping.StatusOK {
			var out bytes.Buffer
			p.WriteTable(&out)
			t.Fatalf("after apply, cluster %s: status %s, want ok:\n%s", name, s, out.String())
		}
	}
	if rs := mapping.Apply(t.Context(), p, targets, false); len(rs) != 0 {
		t.Fatalf("second apply is not a no-op: %+v", rs)
	}
	for name, c := range clients {
		live, err := mapping.Observe(t.Context(), c, alias)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(live.AliasOn, []string{index}) {
			t.Errorf("%s: alias %s on %v, want [%s]", name, alias, live.AliasOn, index)
		}
	}

	wye := buildWye(t)
	cfg := writeMappingConfig(t, "v1")
	if code, out := runWyeBinary(t, wye, "mapping", "verify", "-c", cfg, "--mappings", "../mappings", "--index-prefix", prefix); code != 0 {
		t.Fatalf("wye mapping verify after apply: exit %d, want 0:\n%s", code, out)
	}

	// Strict: the sample documents are accepted (one without relations: null and [], never
	// absent), one with an unmapped field is refused.
	bare := sampleProgram(3, 12)
	bare["channel_id"], bare["rating"], bare["channel"] = nil, nil, nil
	bare["episodes"], bare["tags"] = []any{}, []any{}
	for name, c := range clients {
		for _, it := range bulkIndex(t, c, alias, map[string]map[string]any{"1": sampleProgram(1, 10), "3": bare}) {
			if it.Class != cluster.OK {
				t.Errorf("%s: sample document refused: %+v", name, it)
			}
		}
		doc := sampleProgram(2, 11)
		doc["unmapped_field"] = "surprise"
		bad := bulkIndex(t, c, alias, map[string]map[string]any{"2": doc})
		if bad[0].Class != cluster.Permanent || bad[0].ErrType != "strict_dynamic_mapping_exception" {
			t.Errorf("%s: document with an unmapped field: class %s type %s (%s), want permanent strict_dynamic_mapping_exception",
				name, bad[0].Class, bad[0].ErrType, bad[0].Reason)
		}
	}

	// Drift by hand on os2 only.
	status, body, err := clients["os2"].Do(t.Context(), esapi.IndicesPutMappingRequest{Index: []string{index},
		Body: strings.NewReader(`{"properties":{"extra_note":{"type":"keyword"}}}`)})
	if err != nil || status != 200 {
		t.Fatalf("put mapping by hand: %d %s %v", status, body, err)
	}
	p = mapping.MakePlan(t.Context(), set, targets, opts)
	want := map[string]mapping.Status{"es7": mapping.StatusOK, "es8": mapping.StatusOK, "os2": mapping.StatusDrift}
	if got := statuses(p); !mapsEqual(got, want) {
		t.Fatalf("after a field added on os2: statuses %v, want %v", got, want)
	}
	d := p.Clusters[2].Indices[0].Drift
	if len(d) != 1 || d[0].Field != "extra_note" || d[0].Index != index || d[0].Change != mapping.Added {
		t.Errorf("os2 drift = %+v, want one added field extra_note on %s", d, index)
	}
	code, out := runWyeBinary(t, wye, "mapping", "verify", "-c", cfg, "--mappings", "../mappings", "--index-prefix", prefix)
	if code != 1 {
		t.Fatalf("wye mapping verify with drift: exit %d, want 1:\n%s", code, out)
	}
	for _, w := range []string{"DRIFT on cluster os2, index " + index, "+ field extra_note"} {
		if !strings.Contains(out, w) {
			t.Errorf("verify output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "DRIFT on cluster es7") || strings.Contains(out, "DRIFT on cluster es8") {
		t.Errorf("verify blames a cluster that did not drift:\n%s", out)
	}
	if code, out := runWyeBinary(t, wye, "mapping", "apply", "-c", cfg, "--mappings", "../mappings", "--index-prefix", prefix); code != 1 {
		t.Errorf("wye mapping apply with drift: exit %d, want 1:\n%s", code, out)
	}
}

// TestMappingVersionBumpSwitchesOnlyWhenBackfilled covers the version bump: v2 is created
// beside v1, the indexer's write targets are both, switch refuses while v2 holds fewer
// documents, moves the alias in one call once it does, and gc removes v1.
func TestMappingVersionBumpSwitchesOnlyWhenBackfilled(t *testing.T) {
	prefix := mappingPrefix()
	targets, clients := mappingTargets(t, prefix, "v1")
	dir := t.TempDir()
	v1, err := os.ReadFile("../mappings/programs/v1/mapping.json")
	if err != nil {
		t.Fatal(err)
	}
	osOverlay, err := os.ReadFile("../mappings/programs/v1/opensearch.json")
	if err != nil {
		t.Fatal(err)
	}
	var v2 map[string]any
	if err := json.Unmarshal(v1, &v2); err != nil {
		t.Fatal(err)
	}
	v2["mappings"].(map[string]any)["properties"].(map[string]any)["subtitle"] = map[string]any{"type": "text"}
	v2b, _ := json.MarshalIndent(v2, "", "  ")
	for path, data := range map[string][]byte{
		"programs/v1/mapping.json": v1, "programs/v1/opensearch.json": osOverlay,
		"programs/v2/mapping.json": v2b, "programs/v2/opensearch.json": osOverlay,
	} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, path), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := mapping.Load(dir, mapping.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := mapping.Options{Prefix: prefix}
	alias, i1, i2 := prefix+"programs", prefix+"programs_v1", prefix+"programs_v2"

	if rs := mapping.Apply(t.Context(), mapping.MakePlan(t.Context(), set, targets, opts), targets, false); mapping.Incomplete(rs) {
		t.Fatalf("apply v1: %+v", rs)
	}
	docs := map[string]map[string]any{"1": sampleProgram(1, 1), "2": sampleProgram(2, 2), "3": sampleProgram(3, 3)}
	for _, c := range clients {
		for _, it := range bulkIndex(t, c, i1, docs) {
			if it.Class != cluster.OK {
				t.Fatalf("%s: write to v1: %+v", c.Name(), it)
			}
		}
	}

	targets2 := withVersion(targets, "v2")
	p := mapping.MakePlan(t.Context(), set, targets2, opts)
	for _, c := range p.Clusters {
		ip := c.Indices[0]
		if len(ip.Actions) != 1 || ip.Actions[0].Op != "create_index" || ip.Actions[0].Index != i2 {
			t.Fatalf("%s: bump plan actions %+v, want only create_index %s", c.Cluster, ip.Actions, i2)
		}
	}
	if rs := mapping.Apply(t.Context(), p, targets2, false); mapping.Incomplete(rs) {
		t.Fatalf("apply v2: %+v", rs)
	}
	for name, c := range clients {
		got, err := mapping.WriteIndices(t.Context(), c, alias)
		if err != nil || !slices.Equal(got, []string{i1, i2}) {
			t.Errorf("%s: WriteIndices = %v, %v; want [%s %s]", name, got, err, i1, i2)
		}
	}

	for _, r := range mapping.Switch(t.Context(), set, targets2, opts, false) {
		if r.Outcome != mapping.Refused || !strings.Contains(r.Reason, "holds 0 documents, fewer than the 3") {
			t.Errorf("%s: switch before backfill: %s %q, want refused for the document count", r.Cluster, r.Outcome, r.Reason)
		}
	}
	for _, c := range clients {
		bulkIndex(t, c, i2, docs) // what the nightly resync will do
	}
	for _, r := range mapping.Switch(t.Context(), set, targets2, opts, false) {
		if r.Outcome != mapping.Done || r.From != i1 || r.Index != i2 {
			t.Errorf("%s: switch after backfill: %+v, want done %s -> %s", r.Cluster, r, i1, i2)
		}
	}
	for name, c := range clients {
		live, err := mapping.Observe(t.Context(), c, alias)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(live.AliasOn, []string{i2}) || len(live.Indices) != 2 {
			t.Errorf("%s: after switch alias on %v, indices %v; want [%s] and v1 kept", name, live.AliasOn, live.Names(), i2)
		}
	}
	for _, r := range mapping.GC(t.Context(), set, targets2, opts, false) {
		if r.Outcome != mapping.Done || r.Index != i1 {
			t.Errorf("%s: gc: %+v, want %s deleted", r.Cluster, r, i1)
		}
	}
	for name, c := range clients {
		got, err := mapping.WriteIndices(t.Context(), c, alias)
		if err != nil || !slices.Equal(got, []string{i2}) {
			t.Errorf("%s: WriteIndices after gc = %v, %v; want [%s]", name, got, err, i2)
		}
	}
	p = mapping.MakePlan(t.Context(), set, targets2, opts)
	if n := p.Problems(); n != 0 {
		t.Errorf("verify after gc: %d problems", n)
	}
}

// TestMappingNormalizationMatchesLiveEchoes prevents false drift the day an engine echoes a
// mapping differently: testdata/quirks_declared.json (defaults, strings for booleans and
// numbers, object types) is created on every cluster and its echo must normalize to it.
func TestMappingNormalizationMatchesLiveEchoes(t *testing.T) {
	prefix := mappingPrefix()
	_, clients := mappingTargets(t, prefix, "v1")
	raw, err := os.ReadFile("../mapping/testdata/quirks_declared.json")
	if err != nil {
		t.Fatal(err)
	}
	var declared map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&declared); err != nil {
		t.Fatal(err)
	}
	index := prefix + "programs_v3" // a name the cleanup knows
	for name, c := range clients {
		body, _ := json.Marshal(map[string]any{"mappings": declared})
		status, resp, err := c.Do(t.Context(), esapi.IndicesCreateRequest{Index: index, Body: bytes.NewReader(body)})
		if err != nil || status != 200 {
			t.Fatalf("%s: create %s: %d %s %v", name, index, status, resp, err)
		}
		live, err := mapping.Observe(t.Context(), c, prefix+"programs")
		if err != nil {
			t.Fatal(err)
		}
		def := &mapping.Definition{Mappings: mapping.Normalize(declared)}
		if d := mapping.Diff(index, def, live.Indices[index].Mapping, nil); len(d) > 0 {
			t.Errorf("%s: echo differs from the declared mapping after normalization: %+v", name, d)
		}
	}
}

func mapsEqual(a, b map[string]mapping.Status) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// buildWye builds the wye binary once per test, to run the command as users do (exit codes).
func buildWye(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wye")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/wye").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/wye: %v\n%s", err, out)
	}
	return bin
}

// writeMappingConfig writes a configuration naming the three local clusters at version v.
// The mapping commands contact no database or broker; those sections only need to validate.
func writeMappingConfig(t *testing.T, v string) string {
	t.Helper()
	cfg := fmt.Sprintf(`source: {flavor: mariadb, host: 127.0.0.1, user: wye_source, password_env: WYE_E2E_UNUSED, server_id: 4199}
control: {host: 127.0.0.1, user: wye, password_env: WYE_E2E_UNUSED, database: wye}
amqp: {url: "amqp://wye@127.0.0.1:5672/", password_env: WYE_E2E_UNUSED}
clusters:
  - {name: es7, urls: [%q], role: master, mapping: %s}
  - {name: es8, urls: [%q], role: slave, mapping: %s}
  - {name: os2, urls: [%q], role: slave, mapping: %s}
entities:
  - {name: program, index: programs, root: {table: catalog.programs, key: id}}
`, clusterURLs["es7"], v, clusterURLs["es8"], v, clusterURLs["os2"], v)
	path := filepath.Join(t.TempDir(), "wye.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runWyeBinary runs the built binary and returns its exit code and combined output.
func runWyeBinary(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), "WYE_E2E_UNUSED=unused")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("run wye %v: %v", args, err)
	}
	return 0, string(out)
}

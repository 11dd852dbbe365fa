package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/mapping"
)

// catalogMapping is the strict mapping of the documents the indexer builds from
// examples/catalog/entity.yaml. It is the test's own, so that it does not depend on the
// shipped mappings/ directory.
const catalogMapping = `{
  "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0, "gc_deletes": "1h"}},
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "id": {"type": "long"},
      "title": {"type": "text"},
      "channel_id": {"type": "long"},
      "duration_s": {"type": "integer"},
      "rating": {"type": "keyword"},
      "code": {"type": "keyword"},
      "updated_at": {"type": "date", "format": "yyyy-MM-dd HH:mm:ss"},
      "wye_version": {"type": "long"},
      "channel": {"properties": {
        "id": {"type": "long"}, "name": {"type": "keyword"},
        "network": {"properties": {"id": {"type": "long"}, "name": {"type": "keyword"}}}
      }},
      "episodes": {"properties": {
        "id": {"type": "long"}, "number": {"type": "integer"}, "episode_title": {"type": "text"}
      }},
      "tags": {"properties": {"id": {"type": "long"}, "name": {"type": "keyword"}}}
    }
  }
}`

// TestIndexerWritesBothIndicesDuringAVersionBump covers issue 5 item 4 on ES 7.17, ES 8.14
// and OpenSearch 2.19: with programs_v1 and programs_v2 both present, every change reaches
// both with the same wye_version, and switch still refuses while v2 lacks the documents only
// a backfill would bring.
func TestIndexerWritesBothIndicesDuringAVersionBump(t *testing.T) {
	versionBump(t)
}

// versionBump runs a catalog workload through a mapping version bump and checks both indices
// on every cluster; it returns the indexer process, still running.
func versionBump(t *testing.T) *indexerProc {
	r := newIndexerRig(t)
	prefix := mappingPrefix()
	targets, clients := mappingTargets(t, prefix, "v1") // deletes <prefix>programs_v1..v3 at cleanup
	alias, i1, i2 := prefix+"programs", prefix+"programs_v1", prefix+"programs_v2"
	// The entity's index is the alias: the indexer resolves its _vN. The rig's cleanup deletes
	// r.index, so give it back its own name first (cleanups run last-registered first).
	rigIndex := r.index
	r.index = alias
	t.Cleanup(func() { r.index = rigIndex })

	dir := t.TempDir()
	var v2 map[string]any
	must(t, json.Unmarshal([]byte(catalogMapping), &v2))
	v2["mappings"].(map[string]any)["properties"].(map[string]any)["subtitle"] = map[string]any{"type": "text"}
	v2b, _ := json.Marshal(v2)
	for v, data := range map[string][]byte{"v1": []byte(catalogMapping), "v2": v2b} {
		must(t, os.MkdirAll(filepath.Join(dir, "programs", v), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "programs", v, "mapping.json"), data, 0o644))
	}
	set, err := mapping.Load(dir, mapping.LoadOptions{})
	must(t, err)
	opts := mapping.Options{Prefix: prefix}
	if rs := mapping.Apply(t.Context(), mapping.MakePlan(t.Context(), set, targets, opts), targets, false); mapping.Incomplete(rs) {
		t.Fatalf("apply v1: %+v", rs)
	}

	p := r.start("--targets-ttl", "1s")
	c := newIndexerCatalog(r, uint64(time.Now().UnixNano()))
	c.seed(2, 5, 30, 40, 8)
	for range 150 {
		c.step()
	}
	eventually(t, 2*time.Minute, func() error { return r.converged("es7", "es8", "os2") })
	for name, cl := range clients {
		live, err := mapping.Observe(t.Context(), cl, alias)
		must(t, err)
		if live.AliasIsIndex || len(live.Indices) != 1 {
			t.Fatalf("%s before the bump: indices %v, alias is an index: %v; want %s only", name, live.Names(), live.AliasIsIndex, i1)
		}
	}

	// The bump: v2 beside v1, the alias stays on v1.
	targets2 := withVersion(targets, "v2")
	if rs := mapping.Apply(t.Context(), mapping.MakePlan(t.Context(), set, targets2, opts), targets2, false); mapping.Incomplete(rs) {
		t.Fatalf("apply v2: %+v", rs)
	}
	// Within the targets TTL a change may still go to v1 alone: change one program until
	// v2 has it everywhere, so that the indexer has seen v2 on every cluster.
	eventually(t, 30*time.Second, func() error {
		id, _, ok := c.pick("programs")
		if !ok {
			c.insert("programs", c.program(c.id()))
			return fmt.Errorf("no program to change")
		}
		c.update("programs", id, map[string]any{"title": fmt.Sprintf("Probe %d", time.Now().UnixNano())})
		for _, name := range clusterNames {
			got, err := docsIn(r, name, i2)
			if err != nil {
				return err
			}
			if _, ok := got[fmt.Sprint(id)]; !ok {
				return fmt.Errorf("%s: probe program %d not in %s yet", name, id, i2)
			}
		}
		return nil
	})
	before := map[string]map[string]map[string]any{}
	for _, name := range clusterNames {
		got, err := docsIn(r, name, i1)
		must(t, err)
		before[name] = got
	}
	// A few programs only: a channel rename in c.step() would touch them all, and v2 must
	// end up with fewer documents than v1.
	for range 5 {
		if id, _, ok := c.pick("programs"); ok {
			c.update("programs", id, map[string]any{"title": fmt.Sprintf("After the bump %d", c.rnd.IntN(1e6)), "duration_s": c.rnd.IntN(7200)})
		}
	}
	c.insert("programs", c.program(c.id()))
	eventually(t, 2*time.Minute, func() error { return r.converged("es7", "es8", "os2") })

	// Every entity changed since the bump is in both indices, equal, with the same
	// wye_version; deleted ones are in neither; v2 holds nothing v1 does not.
	for _, name := range clusterNames {
		old, err := docsIn(r, name, i1)
		must(t, err)
		neu, err := docsIn(r, name, i2)
		must(t, err)
		changed := 0
		for id, d := range old {
			if b, ok := before[name][id]; ok && b["wye_version"] == d["wye_version"] {
				continue
			}
			changed++
			if !reflect.DeepEqual(neu[id], d) {
				t.Errorf("%s: program %s changed after the bump: %s has %v, %s has %v", name, id, i1, d, i2, neu[id])
			}
		}
		for id, d := range neu {
			if !reflect.DeepEqual(old[id], d) {
				t.Errorf("%s: program %s in %s (version %v) differs from %s (%v)", name, id, i2, d["wye_version"], i1, old[id])
			}
		}
		if changed == 0 || len(neu) >= len(old) {
			t.Errorf("%s: %d programs changed since the bump, %s holds %d, %s %d: the workload did not exercise the bump",
				name, changed, i1, len(old), i2, len(neu))
		}
		t.Logf("%s: %d programs changed since the bump; %s holds %d, %s %d", name, changed, i1, len(old), i2, len(neu))
	}

	// Without a backfill v2 holds fewer documents: switch refuses on every cluster.
	for _, res := range mapping.Switch(t.Context(), set, targets2, opts, false) {
		if res.Outcome != mapping.Refused || !strings.Contains(res.Reason, "fewer than") {
			t.Errorf("%s: switch before backfill: %s %q, want refused for the document count", res.Cluster, res.Outcome, res.Reason)
		}
	}
	if n := p.metric(t, "wye_indexer_messages_total", "result", "parked"); n != 0 {
		t.Errorf("%v messages parked", n)
	}
	return p
}

// docsIn returns every document of one concrete index on a cluster (rig.docs on another index).
func docsIn(r *indexerRig, cluster, index string) (map[string]map[string]any, error) {
	saved := r.index
	defer func() { r.index = saved }()
	r.index = index
	return r.docs(cluster)
}

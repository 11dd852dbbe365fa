package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/cluster"
)

// Issue 18, item 4: mappings are no longer written blind. On the sample catalog, indexed by
// the real indexer into the three clusters: `wye entity show` prints, for every program, the
// document the clusters hold; `wye mapping skeleton` generates a mapping that `wye mapping
// apply` creates as is and that accepts every document of the entity on every engine;
// `wye mapping plan` flags the fields a mapping lacks; and the mapping commands run with
// the database and broker passwords unset.

// noServerPasswords empties the passwords of the source, the control schema and the broker
// (the rig's variables): a command that resolved one of them would fail with "environment
// variable is empty".
var noServerPasswords = []string{"WYE_SOURCE_PASSWORD=", "WYE_CONTROL_PASSWORD=", "WYE_AMQP_PASSWORD="}

// wyeRun runs the wye binary with the rig's configuration, the rig's passwords overridden by
// env, and returns its exit code, stdout and stderr.
func (r *indexerRig) wyeRun(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, wyeBinary(t), append(args, "-c", r.config(freePort(t)))...)
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_CONTROL_PASSWORD=wye-control", "WYE_AMQP_PASSWORD="+amqpPass)
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode(), string(out), stderr.String()
	} else if err != nil {
		t.Fatalf("wye %v: %v", args, err)
	}
	return 0, string(out), stderr.String()
}

// TestEntityShowAndSkeletonMatchWhatTheIndexerWrites prevents a preview that differs from
// the indexed document, a generated mapping that refuses the entity's documents, a plan that
// misses a field the mapping lacks, and mapping commands that demand passwords of servers they
// never contact.
func TestEntityShowAndSkeletonMatchWhatTheIndexerWrites(t *testing.T) {
	r := newIndexerRig(t)
	c := newIndexerCatalog(r, 18)
	c.seed(3, 6, 40, 60, 8)
	r.start()
	eventually(t, time.Minute, func() error { return r.converged(clusterNames...) })
	indexed, err := r.docs("es7")
	must(t, err)

	// 1. entity show equals the indexed document of every program, but for the version: the
	// indexer writes the version of the change it applied, show has no change and writes 0.
	ids := slices.Sorted(maps.Keys(c.rows["programs"]))
	began := time.Now()
	for _, id := range ids {
		code, out, stderr := r.wyeRun(t, []string{"WYE_CONTROL_PASSWORD=", "WYE_AMQP_PASSWORD="},
			"entity", "show", "program", strconv.Itoa(id))
		if code != 0 {
			t.Fatalf("wye entity show program %d: exit %d\n%s", id, code, stderr)
		}
		var shown map[string]any
		if err := json.Unmarshal([]byte(out), &shown); err != nil {
			t.Fatalf("wye entity show program %d: not JSON: %v\n%s", id, err, out)
		}
		if shown["wye_version"] != float64(0) {
			t.Errorf("program %d: shown wye_version %v, want 0", id, shown["wye_version"])
		}
		want := maps.Clone(indexed[strconv.Itoa(id)])
		delete(shown, "wye_version")
		delete(want, "wye_version")
		if !reflect.DeepEqual(shown, want) {
			t.Errorf("program %d: wye entity show\n%s\nthe cluster holds\n%v", id, out, want)
		}
	}
	t.Logf("wye entity show: %d programs equal their indexed documents (%v)", len(ids), time.Since(began).Round(time.Millisecond))
	code, _, stderr := r.wyeRun(t, nil, "entity", "show", "program", "999999999")
	if want := "no row 999999999 in " + r.db + ".programs"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("wye entity show of a missing id: exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}

	// 2. The skeleton, applied as is to a fresh prefix, accepts every document on every engine.
	// skeleton reads the source only; apply and verify talk to the clusters only.
	dir := filepath.Join(t.TempDir(), "mappings")
	code, _, stderr = r.wyeRun(t, []string{"WYE_CONTROL_PASSWORD=", "WYE_AMQP_PASSWORD="},
		"mapping", "skeleton", "program", "--out", filepath.Join(dir, r.index, "v1"))
	if code != 0 {
		t.Fatalf("wye mapping skeleton: exit %d\n%s", code, stderr)
	}
	prefix := "skel" + r.id + "_"
	for _, cl := range clusterNames {
		t.Cleanup(func() { indexerHTTP(t, "DELETE", clusterURLs[cl]+"/"+prefix+r.index+"_v1", nil) })
	}
	mappingArgs := []string{"--mappings", dir, "--index-prefix", prefix}
	if code, out, stderr := r.wyeRun(t, noServerPasswords, append([]string{"mapping", "apply"}, mappingArgs...)...); code != 0 {
		t.Fatalf("wye mapping apply of the skeleton: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := r.wyeRun(t, noServerPasswords, append([]string{"mapping", "verify"}, mappingArgs...)...); code != 0 {
		t.Fatalf("wye mapping verify of the skeleton: exit %d\n%s%s", code, out, stderr)
	}
	for _, cl := range clusterNames {
		client, err := cluster.New(cluster.Options{Name: cl, URLs: []string{clusterURLs[cl]}, RequestTimeout: 30 * time.Second, BulkTimeout: 60 * time.Second})
		must(t, err)
		items := bulkIndex(t, client, prefix+r.index, indexed)
		refused := 0
		for _, it := range items {
			if it.Status >= 300 {
				refused++
				if refused <= 3 {
					t.Errorf("%s: document %s refused by the skeleton mapping: %d %s", cl, it.ID, it.Status, it.ErrType+": "+it.Reason)
				}
			}
		}
		if len(items) != len(ids) || refused > 0 {
			t.Errorf("%s: %d of %d documents written to the skeleton's index, %d refused", cl, len(items)-refused, len(ids), refused)
		}
	}

	// 3. A mapping lacking fields the entity writes: plan names each, exits 0 (a finding, like
	// drift); verify fails.
	lacking := filepath.Join(t.TempDir(), "mappings")
	b, err := os.ReadFile(filepath.Join(dir, r.index, "v1", "mapping.json"))
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	props := m["mappings"].(map[string]any)["properties"].(map[string]any)
	delete(props, "code")
	delete(props["episodes"].(map[string]any)["properties"].(map[string]any), "number")
	b, err = json.Marshal(m)
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(lacking, r.index, "v1"), 0o755))
	must(t, os.WriteFile(filepath.Join(lacking, r.index, "v1", "mapping.json"), b, 0o644))
	planArgs := []string{"--mappings", lacking, "--index-prefix", "plan" + r.id + "_"}
	code, out, stderr := r.wyeRun(t, noServerPasswords, append([]string{"mapping", "plan"}, planArgs...)...)
	for _, want := range []string{"UNMAPPED on cluster " + r.names["es7"], "  - field code\n", "  - field episodes.number\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("wye mapping plan with a mapping lacking code and episodes.number: exit %d (want 0), output lacks %q:\n%s%s", code, want, out, stderr)
		}
	}
	if code, out, _ := r.wyeRun(t, noServerPasswords, append([]string{"mapping", "verify"}, planArgs...)...); code != 1 {
		t.Errorf("wye mapping verify with unmapped fields: exit %d, want 1\n%s", code, out)
	}
}

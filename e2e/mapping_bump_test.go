package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A mapping version bump that adds a field, on the real stack (issue 18 item 1): the order of
// docs/mapping.md's runbook under a workload, with the stream (`wye run`) writing every change
// to v1 and v2 on the three clusters. It prevents the frozen alias of the issue: strict v1
// refusing the new field, the worst item deciding, and every changed document parked on the
// master and ledgered on the slaves while the application still reads v1.
func TestAddingAFieldByAMappingBumpNeverFreezesTheAliasOrParksAnything(t *testing.T) {
	w := newNightlyWorld(t, 2, 6, 300, 400, 8)
	r := w.r
	alias, v1, v2 := r.index, r.index+"_v1", r.index+"_v2"
	for _, c := range clusterNames {
		base := clusterURLs[c]
		t.Cleanup(func() { indexerHTTP(t, "DELETE", base+"/"+v2, nil) })
	}
	// The mappings directory: v1 as the rig laid it out, v2 with the new field.
	shipped, err := os.ReadFile("../mappings/programs/v1/mapping.json")
	must(t, err)
	var m2 map[string]any
	must(t, json.Unmarshal(shipped, &m2))
	m2["mappings"].(map[string]any)["properties"].(map[string]any)["internal_note"] = map[string]any{"type": "keyword"}
	v2body, _ := json.Marshal(m2)
	dir := t.TempDir()
	for v, body := range map[string][]byte{"v1": shipped, "v2": v2body} {
		must(t, os.MkdirAll(filepath.Join(dir, alias, v), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, alias, v, "mapping.json"), body, 0o644))
	}
	mappingCmd := func(args ...string) {
		t.Helper()
		cmd := exec.Command(wyeBinary(t), append([]string{"mapping"}, append(args, "-c", w.cfg, "--mappings", dir)...)...)
		cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_AMQP_PASSWORD=unused")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("wye mapping %v: %v\n%s", args, err, out)
		}
	}
	nothingParked := func(step string, p *wyeProc) {
		t.Helper()
		if err := r.parkedCount(0); err != nil {
			t.Errorf("%s: %v", step, err)
		}
		var ledgered int
		must(t, w.ctl.QueryRow("SELECT COUNT(*) FROM repair_ledger").Scan(&ledgered))
		if ledgered != 0 {
			t.Errorf("%s: %d repair ledger entries", step, ledgered)
		}
		if p != nil {
			if n := (&indexerProc{metrics: p.metrics}).metric(t, "wye_indexer_messages_total", "result", "parked"); n != 0 {
				t.Errorf("%s: the indexer parked %v messages", step, n)
			}
			if n := (&indexerProc{metrics: p.metrics}).metric(t, "wye_indexer_ledger_entries_total"); n != 0 {
				t.Errorf("%s: the indexer ledgered %v ids", step, n)
			}
			if n := (&indexerProc{metrics: p.metrics}).metric(t, "wye_indexer_other_index_refused_total"); n != 0 {
				t.Errorf("%s: %v documents refused by an index the alias does not point at", step, n)
			}
		}
	}
	low, high := programRange(w.c)
	var deleted []int
	ops := map[string]int{}
	work := func(steps int) {
		pace := workloadPace(t)
		for range steps {
			<-pace.C
			changeProgram(w.c, low+rand.IntN(high-low+1), &deleted, ops, "")
		}
	}

	// v1 strict, applied and live; the catalog loaded; the stream running under a workload.
	mappingCmd("verify")
	stream := w.startStream()
	w.startNightly(filepath.Join(t.TempDir(), "load.json")).finish(t, time.Minute, 0)
	work(50)
	_, err = r.app.Exec("UPDATE programs SET internal_note = CONCAT('note ', id)") // not indexed yet
	must(t, err)

	// 1. v2 with the new field, applied: v2 beside v1, the alias still on v1.
	for range clusterNames {
		w.rewrite("mapping: v1", "mapping: v2")
	}
	mappingCmd("apply")
	work(50)
	// 2. The entity emits the field: the stream restarted with the new configuration.
	w.rewrite("columns: [id, title, channel_id, duration_s, rating, code, updated_at]",
		"columns: [id, title, channel_id, duration_s, rating, code, updated_at, internal_note]")
	stream.stop()
	work(20)
	stream = w.startStream()
	nothingParked("entity changed", stream)

	// Every change still reaches the alias (v1, without the field) and v2 (with it).
	work(100)
	id, _, ok := w.c.pick("programs")
	if !ok {
		t.Fatal("no program left to change")
	}
	title := fmt.Sprintf("Probe %d", rand.IntN(1e9))
	_, err = r.app.Exec("UPDATE programs SET title = ?, internal_note = 'probe note' WHERE id = ?", title, id)
	must(t, err)
	eventually(t, time.Minute, func() error {
		for _, c := range clusterNames {
			if err := probeSeen(t, c, alias, id, title, false); err != nil {
				return err
			}
			if err := probeSeen(t, c, v2, id, title, true); err != nil {
				return err
			}
		}
		return nil
	})
	if n := (&indexerProc{metrics: stream.metrics}).metric(t, "wye_indexer_fields_projected_total", "index", v1); n == 0 {
		t.Error("no field projected for v1: the stream did not write the new shape")
	}
	w.converges(time.Minute) // the alias equals MySQL (without the new field) before the switch
	nothingParked("before the backfill", stream)

	// 3. Backfill v2 under the workload, 4. switch, 5. gc.
	run := w.startNightly(filepath.Join(t.TempDir(), "backfill.json"), "--into-new-index")
	pace := workloadPace(t)
	for run.running() {
		<-pace.C
		changeProgram(w.c, low+rand.IntN(high-low+1), &deleted, ops, "")
	}
	if rep := run.finish(t, time.Second, 0); rep.Status != "equal" {
		t.Errorf("backfill report status %q, problems %q", rep.Status, rep.Problems)
	}
	nothingParked("after the backfill", stream)
	w.converges(time.Minute)
	mappingCmd("switch")
	nothingParked("after the switch", stream)
	mappingCmd("gc")
	for _, c := range clusterNames {
		if status, _ := indexerHTTP(t, "HEAD", clusterURLs[c]+"/"+v1, nil); status != 404 {
			t.Errorf("%s: %s still there after gc (HEAD %d)", c, v1, status)
		}
	}

	// The alias now shows v2: every document carries the field and equals MySQL.
	eventually(t, time.Minute, func() error {
		want, err := catalogDocs(r.app)
		if err != nil {
			return err
		}
		rows, err := r.app.Query("SELECT id, internal_note FROM programs")
		if err != nil {
			return err
		}
		for rows.Next() {
			var pid string
			var note *string
			if err := rows.Scan(&pid, &note); err != nil {
				rows.Close()
				return err
			}
			if note != nil {
				want[pid]["internal_note"] = *note
			} else {
				want[pid]["internal_note"] = nil
			}
		}
		rows.Close()
		for _, c := range clusterNames {
			got, err := allDocs(t, c, alias)
			if err != nil {
				return err
			}
			for gid, d := range got {
				if _, ok := d["internal_note"]; !ok {
					return fmt.Errorf("%s: document %s has no internal_note", c, gid)
				}
			}
			if err := diffDocs(c, got, want); err != nil {
				return err
			}
		}
		return nil
	})
	nothingParked("after gc", stream)
	t.Logf("workload: %v", ops)
}

// probeSeen checks the document id of index (or alias) on cluster: its title, and the new
// field present with the probe's value (withField) or absent.
func probeSeen(t *testing.T, cluster, index string, id int, title string, withField bool) error {
	status, body := indexerHTTP(t, "GET", fmt.Sprintf("%s/%s/_doc/%d", clusterURLs[cluster], index, id), nil)
	if status != 200 {
		return fmt.Errorf("%s: GET %s/_doc/%d: %d %.200s", cluster, index, id, status, body)
	}
	var doc struct {
		Source map[string]any `json:"_source"`
	}
	must(t, json.Unmarshal(body, &doc))
	if doc.Source["title"] != title {
		return fmt.Errorf("%s: %s/%d has title %v, not the probe's %q yet", cluster, index, id, doc.Source["title"], title)
	}
	note, has := doc.Source["internal_note"]
	if withField && note != "probe note" {
		return fmt.Errorf("%s: %s/%d has internal_note %v, want the probe's", cluster, index, id, note)
	}
	if !withField && has {
		return errors.New(cluster + ": " + index + " got internal_note, which its strict mapping lacks")
	}
	return nil
}

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/mapping"
	"github.com/wyehq/wye/nightly"
)

// The repairs of `wye nightly` (issue 13, "Divergence repaired", "Mapping bump") and its
// guards, on the real stack, with the world of nightly_test.go: a rig, a private control
// schema, the stream as `wye run`.

// TestNightlyRepairsEveryDivergenceAndCountsItExactly prevents a resync that leaves a cluster
// wrong or reports repairs it did not make: with the stream running on a few thousand
// programs, each cluster loses documents, has documents altered and gets orphans by hand, and
// the slave os2 misses inserts while its index refuses writes (the indexer puts them in the
// repair ledger). One run repairs all of it, its report counts exactly what was done per
// cluster, its id list names exactly those documents, every cluster then equals MySQL, and a
// second run writes and deletes nothing.
func TestNightlyRepairsEveryDivergenceAndCountsItExactly(t *testing.T) {
	w := newNightlyWorld(t, 3, 20, 3000, 1500, 30)
	w.startStream()
	load, n := w.run(0), w.programs()
	for _, name := range clusterNames {
		load.expect(t, w.r.names[name], tallyCounts{Missing: n, Written: n})
	}
	for range 300 {
		w.c.step()
	}
	eventually(t, 2*time.Minute, func() error { return w.equalOn(clusterNames...) })

	// os2 misses part of the stream: its index refuses writes while programs are inserted.
	writeBlock(t, "os2", w.r.index+"_v1", true)
	var missed []string
	for range 25 {
		id := w.c.id()
		w.c.insert("programs", w.c.program(id))
		missed = append(missed, strconv.Itoa(id))
	}
	slices.Sort(missed)
	eventually(t, time.Minute, func() error {
		if got := w.ledgered("os2"); !slices.Equal(got, missed) {
			return fmt.Errorf("os2's repair ledger holds %v, want the programs inserted while it was blocked %v", got, missed)
		}
		return nil
	})
	writeBlock(t, "os2", w.r.index+"_v1", false)
	// The workload is over; the stream drains.
	eventually(t, time.Minute, func() error { return w.equalOn("es7", "es8") })

	rows := w.programIDs()
	healthy := slices.DeleteFunc(slices.Clone(rows), func(id string) bool { return slices.Contains(missed, id) })
	var wantIDs []string
	want := map[string]tallyCounts{}
	for i, name := range clusterNames {
		perm := rand.New(rand.NewPCG(uint64(i), 13)).Perm(len(healthy)) // spread over the chunks
		var deleted, altered, orphans []string
		for _, k := range perm[:10] {
			deleted = append(deleted, healthy[k])
		}
		for _, k := range perm[10:20] {
			altered = append(altered, healthy[k])
		}
		for k := range 20 { // under the 5% limit: 20 of about 3000
			orphans = append(orphans, strconv.Itoa(900_000+100*i+k))
		}
		w.damage(name, deleted, altered, orphans)
		if name == "os2" {
			deleted = append(deleted, missed...)
		}
		n := int64(len(rows))
		want[name] = tallyCounts{Equal: n - int64(len(deleted)+len(altered)), Missing: int64(len(deleted)),
			Different: int64(len(altered)), Written: int64(len(deleted) + len(altered)), Orphans: 20, Deleted: 20}
		wantIDs = append(wantIDs, idLinesOf("missing", w.r.names[name], deleted)...)
		wantIDs = append(wantIDs, idLinesOf("different", w.r.names[name], altered)...)
		// A deleted orphan is listed as "deleted"; "orphan" is one found but not deleted
		// (nightly/report.go, type ids).
		wantIDs = append(wantIDs, idLinesOf("deleted", w.r.names[name], orphans)...)
	}

	res := w.run(0)
	if e := entity(t, res.rep); e.Rows != int64(len(rows)) {
		t.Errorf("rows read %d, MySQL holds %d programs", e.Rows, len(rows))
	}
	for _, name := range clusterNames {
		res.expect(t, w.r.names[name], want[name])
	}
	res.expectIDs(t, wantIDs)
	if err := w.equalOn(clusterNames...); err != nil {
		t.Error(err)
	}

	again := w.run(0)
	for _, name := range clusterNames {
		again.expect(t, w.r.names[name], tallyCounts{Equal: int64(len(rows))})
	}
	again.expectIDs(t, nil)
}

// TestNightlyRefusesAMassDeleteUnlessAllowed prevents a resync from emptying an index that
// MySQL only seems to have lost (a wrong schema, a truncated table): orphans above 5% of an
// index are counted and reported, none deleted, and the run fails; with --allow-mass-delete
// they are deleted. The clusters hold the catalog from an initial load by `wye nightly` just
// before: the run after it must find the untouched clusters equal and write nothing there.
func TestNightlyRefusesAMassDeleteUnlessAllowed(t *testing.T) {
	w := newNightlyWorld(t, 2, 8, 400, 200, 10)
	w.startStream()
	n := w.programs()
	w.run(0)

	var orphans []string
	for k := range 40 { // 40 of 440 documents: 9%
		orphans = append(orphans, strconv.Itoa(900_000+k))
	}
	w.damage("es8", nil, nil, orphans)

	refused := w.run(1)
	es8 := w.r.names["es8"]
	refused.expect(t, es8, tallyCounts{Equal: n, Orphans: 40})
	if !refused.tally(t, es8).Refused {
		t.Errorf("%s: mass_delete_refused is not set with 40 orphans of 440", es8)
	}
	for _, name := range []string{"es7", "os2"} {
		refused.expect(t, w.r.names[name], tallyCounts{Equal: n})
	}
	if !slices.ContainsFunc(refused.rep.Problems, func(p string) bool {
		return strings.Contains(p, es8) && strings.Contains(p, "40 orphans")
	}) {
		t.Errorf("no problem names %s and its 40 orphans: %q", es8, refused.rep.Problems)
	}
	refused.expectIDs(t, nil)
	if got, err := allDocs(t, "es8", w.r.index); err != nil || len(got) != int(n)+len(orphans) {
		t.Errorf("es8 holds %d documents (%v) after a refused mass delete, want all %d kept", len(got), err, int(n)+len(orphans))
	}

	allowed := w.run(0, "--allow-mass-delete")
	allowed.expect(t, es8, tallyCounts{Equal: n, Orphans: 40, Deleted: 40})
	allowed.expectIDs(t, idLinesOf("deleted", es8, orphans))
	if err := w.equalOn(clusterNames...); err != nil {
		t.Error(err)
	}
}

// TestNightlyIntoNewIndexBackfillsAMappingBumpSoSwitchPasses prevents a mapping bump that
// can never be switched: with the stream running and the workload going on during the
// resync, `wye nightly --into-new-index` fills <index>_v2 (applied beside v1, one field
// added) until it holds what MySQL and v1 hold, and `wye mapping switch` then passes its
// count guard and moves the alias to v2 on every cluster.
func TestNightlyIntoNewIndexBackfillsAMappingBumpSoSwitchPasses(t *testing.T) {
	w := newNightlyWorld(t, 3, 15, 2000, 1000, 20)
	prefix := mappingPrefix()
	_, clients := mappingTargets(t, prefix, "v1") // deletes <prefix>programs_v1..v3 at cleanup
	alias, i1, i2 := prefix+"programs", prefix+"programs_v1", prefix+"programs_v2"
	// The entity's index becomes the alias `wye mapping` manages.
	w.rewrite("index: "+w.r.index, "index: "+alias)
	w.r.index = alias
	dir := bumpedMappings(t)
	mappingCmd := func(v, verb string) {
		t.Helper()
		args := []string{"mapping", verb, "-c", writeMappingConfig(t, v), "--mappings", dir, "--index-prefix", prefix}
		if code, out := runWyeBinary(t, wyeBinary(t), args...); code != 0 {
			t.Fatalf("wye mapping %s at %s: exit %d\n%s", verb, v, code, out)
		}
	}
	mappingCmd("v1", "apply")
	w.startStream()
	w.run(0)
	for range 100 {
		w.c.step()
	}
	eventually(t, 2*time.Minute, func() error { return w.equalOn(clusterNames...) })

	mappingCmd("v2", "apply")
	// The indexer writes to v2 once its cached targets (indexer.indices_ttl) name it: change
	// a program until it is in v2 everywhere. From then on every stream write reaches both.
	eventually(t, time.Minute, func() error {
		id, _, _ := w.c.pick("programs")
		w.c.update("programs", id, map[string]any{"title": fmt.Sprintf("Probe %d", time.Now().UnixNano())})
		for _, name := range clusterNames {
			got, err := w.r.docsIn(name, i2)
			if err != nil {
				return err
			}
			if _, ok := got[strconv.Itoa(id)]; !ok {
				return fmt.Errorf("%s: probe program %d not in %s yet", name, id, i2)
			}
		}
		return nil
	})

	run := w.startNightly(filepath.Join(t.TempDir(), "nightly.json"), "--into-new-index")
	// A workload of about 50 changes a second, what the stream drains as it goes on a busy
	// shared stack: unpaced, the backlog it leaves outlasts any drain timeout.
	pace := time.NewTicker(20 * time.Millisecond)
	defer pace.Stop()
	steps := 0
	for run.running() {
		w.c.step()
		steps++
		<-pace.C
	}
	res := w.result(run, 0)
	t.Logf("%d workload steps during the resync", steps)
	if !res.rep.IntoNewIndex {
		t.Error("the report does not say into_new_index")
	}
	for _, name := range clusterNames {
		x := res.tally(t, w.r.names[name])
		if x.Index != i2 || x.Missing == 0 || x.Failed != 0 {
			t.Errorf("%s: compared %s, %d missing, %d failed; want %s backfilled, nothing failed", name, x.Index, x.Missing, x.Failed, i2)
		}
	}

	// The workload stopped; once the stream drains, v2 holds what MySQL and v1 hold.
	eventually(t, 2*time.Minute, func() error { return w.equalOn(clusterNames...) })
	want, err := catalogDocs(w.r.app)
	must(t, err)
	for _, name := range clusterNames {
		old, err := allDocs(t, name, i1)
		must(t, err)
		neu, err := allDocs(t, name, i2)
		must(t, err)
		if err := diffDocs(name+" "+i2, neu, want); err != nil {
			t.Error(err)
		}
		v1 := map[string]map[string]any{}
		for id, d := range old {
			v1[id] = maps_without(d, "wye_version")
		}
		if err := diffDocs(name+" "+i2+" against "+i1, neu, v1); err != nil {
			t.Error(err)
		}
		if n, err := searchCount(t, name, i2, `{"match_all":{}}`); err != nil || n != len(want) {
			t.Errorf("%s: %s counts %d documents (%v), MySQL holds %d programs", name, i2, n, err, len(want))
		}
	}

	mappingCmd("v2", "switch")
	for name, cl := range clients {
		live, err := mapping.Observe(t.Context(), cl, alias)
		must(t, err)
		if !slices.Equal(live.AliasOn, []string{i2}) {
			t.Errorf("%s: after switch the alias %s is on %v, want [%s]", name, alias, live.AliasOn, i2)
		}
	}
}

// TestNightlyReportsAClusterDownForTheWholeRunAndRepairsTheOthers prevents one dead cluster
// from stopping the resync of the others: the run is configured with os2 at an address where
// nothing listens; it exits 1 with a problem naming os2, and es7 and es8 are loaded and equal
// MySQL.
func TestNightlyReportsAClusterDownForTheWholeRunAndRepairsTheOthers(t *testing.T) {
	w := newNightlyWorld(t, 2, 8, 300, 150, 10)
	w.startStream()
	w.rewrite(strconv.Quote(w.r.urls["os2"]), `"http://127.0.0.1:1"`) // for the nightly only
	n := w.programs()

	res := w.run(1)
	os2 := w.r.names["os2"]
	if x := res.tally(t, os2); x.Error == "" || x.Written != 0 {
		t.Errorf("%s: error %q, %d written; want its error and nothing written", os2, x.Error, x.Written)
	}
	if !slices.ContainsFunc(res.rep.Problems, func(p string) bool { return strings.Contains(p, os2) }) {
		t.Errorf("no problem names %s: %q", os2, res.rep.Problems)
	}
	if !strings.Contains(res.out, "problem: cluster "+os2) {
		t.Errorf("the summary names no problem of %s:\n%s", os2, res.out)
	}
	for _, name := range []string{"es7", "es8"} {
		res.expect(t, w.r.names[name], tallyCounts{Missing: n, Written: n})
	}
	if err := w.equalOn("es7", "es8"); err != nil {
		t.Error(err)
	}
}

// rewrite points w.cfg at a copy of the configuration with old (which must be there)
// replaced by new.
func (w *nightlyWorld) rewrite(old, new string) {
	w.t.Helper()
	b, err := os.ReadFile(w.cfg)
	must(w.t, err)
	if !bytes.Contains(b, []byte(old)) {
		w.t.Fatalf("%s has no %s to replace:\n%s", w.cfg, old, b)
	}
	w.cfg = filepath.Join(w.t.TempDir(), "wye.yaml")
	must(w.t, os.WriteFile(w.cfg, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600))
}

// nightlyResult is what a finished run left: its output, report and id list.
type nightlyResult struct {
	out string
	rep nightly.Report
	ids []string // the lines of every id list of the report, sorted
}

// run runs `wye nightly` with args to its end, which must be exit code want (0: status equal,
// 1: failed).
func (w *nightlyWorld) run(want int, args ...string) nightlyResult {
	w.t.Helper()
	return w.result(w.startNightly(filepath.Join(w.t.TempDir(), "nightly.json"), args...), want)
}

// result waits for p, which must exit with want, and reads its report and id list.
func (w *nightlyWorld) result(p *nightlyProc, want int) nightlyResult {
	t := w.t
	t.Helper()
	res := nightlyResult{rep: p.finish(t, 2*time.Minute, want), out: p.out.String()}
	if status := map[int]string{0: "equal", 1: "failed"}[want]; res.rep.Status != status {
		t.Fatalf("report status %q after exit %d, want %q; problems %q", res.rep.Status, want, status, res.rep.Problems)
	}
	for _, path := range res.rep.IDsFiles {
		f, err := os.Open(path)
		must(t, err)
		z, err := gzip.NewReader(f)
		must(t, err)
		s := bufio.NewScanner(z)
		for s.Scan() {
			res.ids = append(res.ids, s.Text())
		}
		must(t, s.Err())
		f.Close()
	}
	slices.Sort(res.ids)
	return res
}

func (res nightlyResult) tally(t *testing.T, cluster string) *nightly.Tally {
	t.Helper()
	for _, x := range entity(t, res.rep).Clusters {
		if x.Cluster == cluster {
			return x
		}
	}
	t.Fatalf("the report has no tally of cluster %s: %+v", cluster, entity(t, res.rep).Clusters)
	return nil
}

// tallyCounts are the counts of a nightly.Tally.
type tallyCounts struct{ Equal, Missing, Different, Written, Skipped, Orphans, Deleted, Failed int64 }

// expect checks the counts of one cluster's tally.
func (res nightlyResult) expect(t *testing.T, cluster string, want tallyCounts) {
	t.Helper()
	x := res.tally(t, cluster)
	got := tallyCounts{x.Equal, x.Missing, x.Different, x.Written, x.Skipped, x.Orphans, x.Deleted, x.Failed}
	if got != want {
		t.Errorf("%s: report counts %+v, want %+v", cluster, got, want)
	}
}

// expectIDs checks the id list against want, lines "what\tcluster\tentity\tid".
func (res nightlyResult) expectIDs(t *testing.T, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if slices.Equal(res.ids, want) {
		return
	}
	var extra, lacking []string
	for _, l := range res.ids {
		if !slices.Contains(want, l) {
			extra = append(extra, l)
		}
	}
	for _, l := range want {
		if !slices.Contains(res.ids, l) {
			lacking = append(lacking, l)
		}
	}
	t.Errorf("id list of %d lines, want %d: %d not expected %.300q, %d absent %.300q",
		len(res.ids), len(want), len(extra), extra, len(lacking), lacking)
}

// idLinesOf are the id-list lines of the programs ids on cluster.
func idLinesOf(what, cluster string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = what + "\t" + cluster + "\tprogram\t" + id
	}
	return out
}

// programIDs are the ids of the programs MySQL holds.
func (w *nightlyWorld) programIDs() []string {
	w.t.Helper()
	return w.column("SELECT id FROM programs ORDER BY id", w.r.app)
}

// ledgered are the program ids in the repair ledger of cluster (es7, es8 or os2), sorted.
func (w *nightlyWorld) ledgered(cluster string) []string {
	return w.column("SELECT doc_id FROM repair_ledger WHERE cluster = ? AND entity = 'program' ORDER BY doc_id", w.ctl, w.r.names[cluster])
}

// column is the first column of every row of query on db.
func (w *nightlyWorld) column(query string, db *sql.DB, args ...any) []string {
	w.t.Helper()
	rows, err := db.Query(query, args...)
	must(w.t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		must(w.t, rows.Scan(&v))
		out = append(out, v)
	}
	must(w.t, rows.Err())
	return out
}

// equalOn checks that each of clusters holds exactly the programs MySQL holds; unlike
// equalsMySQL it leaves the versions aside, which differ between clusters where the resync
// repaired one and not the other.
func (w *nightlyWorld) equalOn(clusters ...string) error {
	want, err := catalogDocs(w.r.app)
	if err != nil {
		return err
	}
	for _, c := range clusters {
		got, err := allDocs(w.t, c, w.r.index)
		if err != nil {
			return err
		}
		if err := diffDocs(c, got, want); err != nil {
			return err
		}
	}
	return nil
}

// writeBlock sets index.blocks.write on one index of cluster; a block left on is lifted at
// cleanup.
func writeBlock(t *testing.T, cluster, index string, on bool) {
	t.Helper()
	u := clusterURL(t, cluster) + "/" + index + "/_settings"
	if status, b := indexerHTTP(t, "PUT", u, []byte(fmt.Sprintf(`{"index.blocks.write":%v}`, on))); status != 200 {
		t.Fatalf("set index.blocks.write=%v on %s %s: %d %s", on, cluster, index, status, b)
	}
	if on {
		t.Cleanup(func() { indexerHTTP(t, "PUT", u, []byte(`{"index.blocks.write":false}`)) })
	}
}

// damage changes cluster's copy of the programs by hand, in one _bulk, as a stray writer
// would: it deletes the documents deleted, changes the title of altered (at the next
// version), and adds orphans, copies of a real document under ids MySQL does not have.
func (w *nightlyWorld) damage(cluster string, deleted, altered, orphans []string) {
	t := w.t
	t.Helper()
	docs, err := allDocs(t, cluster, w.r.index)
	must(t, err)
	index := w.r.index + "_v1"
	var body bytes.Buffer
	line := func(v any) {
		b, err := json.Marshal(v)
		must(t, err)
		body.Write(append(b, '\n'))
	}
	write := func(id string, version int64, doc map[string]any) {
		line(map[string]any{"index": map[string]any{"_index": index, "_id": id, "version": version, "version_type": "external"}})
		doc["wye_version"] = version
		line(doc)
	}
	for _, id := range deleted {
		line(map[string]any{"delete": map[string]any{"_index": index, "_id": id}})
	}
	for _, id := range altered {
		d, ok := docs[id]
		if !ok {
			t.Fatalf("%s holds no document %s to alter", cluster, id)
		}
		d = maps.Clone(d)
		d["title"] = "altered by hand"
		write(id, int64(d["wye_version"].(float64))+1, d) // versions here are below 2^53
	}
	var template map[string]any
	for _, d := range docs {
		template = d
		break
	}
	for _, id := range orphans {
		d := maps.Clone(template)
		n, err := strconv.Atoi(id)
		must(t, err)
		d["id"], d["title"] = n, "orphan by hand"
		write(id, 1, d)
	}
	status, b := indexerHTTP(t, "POST", clusterURL(t, cluster)+"/_bulk?refresh=true", body.Bytes())
	var res struct{ Errors bool }
	if err := json.Unmarshal(b, &res); status != 200 || err != nil || res.Errors {
		t.Fatalf("damage %s by hand: %d %.600s", cluster, status, b)
	}
}

// bumpedMappings writes a mapping directory holding the shipped programs/v1 and a v2 with one
// field added, and returns it.
func bumpedMappings(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{}
	for _, f := range []string{"mapping.json", "opensearch.json"} {
		b, err := os.ReadFile(filepath.Join("../mappings/programs/v1", f))
		must(t, err)
		files["v1/"+f], files["v2/"+f] = b, b
	}
	var v2 map[string]any
	must(t, json.Unmarshal(files["v2/mapping.json"], &v2))
	v2["mappings"].(map[string]any)["properties"].(map[string]any)["subtitle"] = map[string]any{"type": "text"}
	b, err := json.MarshalIndent(v2, "", "  ")
	must(t, err)
	files["v2/mapping.json"] = b
	for name, data := range files {
		path := filepath.Join(dir, "programs", name)
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(t, os.WriteFile(path, data, 0o644))
	}
	return dir
}

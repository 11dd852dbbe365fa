package e2e

import (
	"bufio"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wyehq/wye/nightly"
)

// `wye nightly` on the real stack (issue 13): the initial load of a catalog wye never saw while
// the stream runs, a resync under a workload aimed at the rows around the run's position, and
// a run killed mid-way and resumed. Each test has its rig (database, indices, queues) and a
// control schema of its own: the nightly lock and cdc's checkpoint are per control schema.

// nightlyWorld is an indexer rig whose stream (`wye run`, reader name "default") and nightly
// runs share a private control schema.
type nightlyWorld struct {
	t   *testing.T
	r   *indexerRig
	c   *indexerCatalog
	cfg string  // wye.yaml on the private control schema
	ctl *sql.DB // the private control schema
}

// newNightlyWorld creates the rig and a catalog of the given sizes that no reader saw: its rows
// are inserted before the stream starts, so only the nightly can load them.
func newNightlyWorld(t *testing.T, networks, channels, programs, episodes, tags int) *nightlyWorld {
	t.Helper()
	r := newIndexerRig(t)
	r.viaCDC = true
	ctl := privateControl(t)
	w := &nightlyWorld{t: t, r: r, c: newIndexerCatalog(r, rand.Uint64()),
		cfg: withControl(t, patientClusters(t, r.config(freePort(t))), ctl), ctl: openMySQL(t, mysqlAppUser, mysqlAppPass, ctl)}
	began := time.Now()
	w.c.seedBulk(networks, channels, programs, episodes, tags)
	t.Logf("catalog of %d programs, %d episodes, %d tag links inserted in %v", programs, episodes,
		w.c.counts["program_tags"], time.Since(began).Round(time.Millisecond))
	return w
}

// patientClusters rewrites the wye.yaml at path with cluster timeouts for loads of a whole
// index: the rig's 3 s are for fault tests, and a scan or a bulk of a busy shared stack may take
// longer without anything being wrong.
func patientClusters(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	const rig = "timeouts: {request: 3s, bulk: 3s}"
	if !strings.Contains(string(b), rig) {
		t.Fatalf("%s has no cluster timeouts to replace:\n%s", path, b)
	}
	must(t, os.WriteFile(path, []byte(strings.ReplaceAll(string(b), rig, "timeouts: {request: 30s, bulk: 60s}")), 0o600))
	return path
}

// startStream runs `wye run` (cdc and one indexer) and waits until cdc saved its first
// checkpoint: the nightly takes the epoch of its versions from it.
func (w *nightlyWorld) startStream() *wyeProc {
	w.t.Helper()
	metrics := freePort(w.t)
	p := runWye(w.t, "wye run", metrics, nil, "run", "-c", w.cfg, "--metrics-listen", metrics)
	eventually(w.t, time.Minute, func() error {
		var n int
		if err := w.ctl.QueryRow("SELECT COUNT(*) FROM cdc_checkpoint").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return errors.New("cdc has saved no checkpoint yet")
		}
		return nil
	})
	return p
}

// nightlyProc is one `wye nightly` process.
type nightlyProc struct {
	cmd    *exec.Cmd
	out    *lockedOutput
	done   chan struct{}
	report string
}

// startNightly runs `wye nightly` with its report at report (the id lists beside it); it is
// killed at cleanup if it still runs.
func (w *nightlyWorld) startNightly(report string, args ...string) *nightlyProc {
	w.t.Helper()
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	p := &nightlyProc{out: &lockedOutput{}, done: make(chan struct{}), report: report}
	p.cmd = exec.Command(wyeBinary(w.t), append([]string{"nightly", "-c", w.cfg, "--report", report}, args...)...)
	p.cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_AMQP_PASSWORD="+amqpPass)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	must(w.t, p.cmd.Start())
	go func() { p.cmd.Wait(); close(p.done) }()
	w.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if w.t.Failed() {
			w.t.Logf("wye nightly %v output:\n%s", args, p.out.String())
		}
	})
	return p
}

func (p *nightlyProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// finish waits for the run to end and returns its exit code and report; it fails the test
// unless the exit code is want.
func (p *nightlyProc) finish(t *testing.T, timeout time.Duration, want int) nightly.Report {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("wye nightly still runs after %v:\n%s", timeout, p.out.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != want {
		t.Fatalf("wye nightly: exit %d, want %d:\n%s", code, want, p.out.String())
	}
	b, err := os.ReadFile(p.report)
	must(t, err)
	var rep nightly.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report %s: %v\n%s", p.report, err, b)
	}
	t.Logf("report: %d bytes\n%s", len(b), p.out.String()[max(0, strings.LastIndex(p.out.String(), "nightly run ")):])
	return rep
}

// entity returns the report's only entity, the catalog's program.
func entity(t *testing.T, rep nightly.Report) *nightly.Entity {
	t.Helper()
	if len(rep.Entities) != 1 || rep.Entities[0].Name != "program" {
		t.Fatalf("report entities %+v, want program alone", rep.Entities)
	}
	return rep.Entities[0]
}

// idLines counts the lines of a report's id list by "what\tcluster".
func idLines(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	out := map[string]int{}
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("id list %s: %v", path, err)
	}
	s := bufio.NewScanner(gz)
	for s.Scan() {
		what, rest, _ := strings.Cut(s.Text(), "\t")
		cluster, _, _ := strings.Cut(rest, "\t")
		out[what+"\t"+cluster]++
	}
	if err := s.Err(); err != nil {
		t.Fatalf("id list %s: %v", path, err)
	}
	return out
}

// fileSize is the size of path in bytes.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi.Size()
}

// catalogDocs builds every program document from MariaDB in one snapshot with one query per
// table: expectedDocs's documents (the same shape, built independently of wye's reads), at a
// cost that does not grow with a query per program.
func catalogDocs(db *sql.DB) (map[string]map[string]any, error) {
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	docs := map[int64]map[string]any{}
	rows, err := tx.Query(`SELECT p.id, p.title, p.channel_id, p.duration_s, p.rating, p.code, p.updated_at,
  c.id, c.name, n.id, n.name
FROM programs p LEFT JOIN channels c ON c.id = p.channel_id LEFT JOIN networks n ON n.id = c.network_id`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, dur int64
		var title, code string
		var ch, cid, nid sql.NullInt64
		var rating, cname, nname sql.NullString
		var updated time.Time
		if err := rows.Scan(&id, &title, &ch, &dur, &rating, &code, &updated, &cid, &cname, &nid, &nname); err != nil {
			rows.Close()
			return nil, err
		}
		doc := map[string]any{"id": id, "title": title, "duration_s": dur, "code": code,
			"updated_at": updated.Format(time.DateTime), "channel_id": nil, "rating": nil, "channel": nil,
			"episodes": []any{}, "tags": []any{}}
		if rating.Valid {
			doc["rating"] = rating.String
		}
		if ch.Valid {
			doc["channel_id"] = ch.Int64
		}
		if cid.Valid {
			c := map[string]any{"id": cid.Int64, "name": cname.String, "network": nil}
			if nid.Valid {
				c["network"] = map[string]any{"id": nid.Int64, "name": nname.String}
			}
			doc["channel"] = c
		}
		docs[id] = doc
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	children := func(q, field string, row func(r *sql.Rows) (int64, map[string]any, error)) error {
		rows, err := tx.Query(q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			pid, child, err := row(rows)
			if err != nil {
				return err
			}
			if d := docs[pid]; d != nil {
				d[field] = append(d[field].([]any), child)
			}
		}
		return rows.Err()
	}
	err = children("SELECT program_id, id, number, title FROM episodes ORDER BY program_id, id", "episodes",
		func(r *sql.Rows) (int64, map[string]any, error) {
			var pid, id, num int64
			var title string
			err := r.Scan(&pid, &id, &num, &title)
			return pid, map[string]any{"id": id, "number": num, "episode_title": title}, err
		})
	if err != nil {
		return nil, err
	}
	err = children("SELECT pt.program_id, t.id, t.name FROM program_tags pt JOIN tags t ON t.id = pt.tag_id ORDER BY pt.program_id, t.id", "tags",
		func(r *sql.Rows) (int64, map[string]any, error) {
			var pid, id int64
			var name string
			err := r.Scan(&pid, &id, &name)
			return pid, map[string]any{"id": id, "name": name}, err
		})
	if err != nil {
		return nil, err
	}
	// Through JSON, so numbers compare as the search results decode them.
	b, err := json.Marshal(docs)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	return out, json.Unmarshal(b, &out)
}

// allDocs returns every document of index on a cluster by id, read with a scroll (docsIn
// reads at most 10,000), and checks that each one's wye_version is its _version.
func allDocs(t *testing.T, cluster, index string) (map[string]map[string]any, error) {
	base := clusterURLs[cluster]
	indexerHTTP(t, "POST", base+"/"+index+"/_refresh", nil)
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []struct {
				ID      string         `json:"_id"`
				Version int64          `json:"_version"`
				Source  map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	out := map[string]map[string]any{}
	status, body := indexerHTTP(t, "POST", base+"/"+index+"/_search?scroll=1m",
		[]byte(`{"size":5000,"sort":["_doc"],"version":true,"query":{"match_all":{}}}`))
	for {
		if status != 200 {
			return nil, fmt.Errorf("scroll %s: %d %.300s", cluster, status, body)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, err
		}
		if len(p.Hits.Hits) == 0 {
			indexerHTTP(t, "DELETE", base+"/_search/scroll", []byte(`{"scroll_id":[`+strconv.Quote(p.ScrollID)+`]}`))
			return out, nil
		}
		for _, h := range p.Hits.Hits {
			if v, _ := h.Source["wye_version"].(float64); int64(v) != h.Version {
				return nil, fmt.Errorf("%s doc %s: wye_version %v differs from _version %d", cluster, h.ID, h.Source["wye_version"], h.Version)
			}
			out[h.ID] = h.Source
		}
		status, body = indexerHTTP(t, "POST", base+"/_search/scroll",
			[]byte(`{"scroll":"1m","scroll_id":`+strconv.Quote(p.ScrollID)+`}`))
	}
}

// equalsMySQL checks that every cluster holds exactly the programs MySQL holds (ids and
// content). Versions may differ between clusters: the run writes a cluster only where its copy
// differs, so a copy the stream had already brought up to date on one cluster keeps the
// stream's version there while another cluster gets the snapshot's.
func (w *nightlyWorld) equalsMySQL() error {
	want, err := catalogDocs(w.r.app)
	if err != nil {
		return err
	}
	for _, c := range clusterNames {
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

// converges waits until the stream has applied every change and every cluster equals MySQL.
func (w *nightlyWorld) converges(timeout time.Duration) {
	w.t.Helper()
	began := time.Now()
	eventually(w.t, timeout, w.equalsMySQL)
	w.t.Logf("every cluster equals MySQL after %v of waiting for the stream", time.Since(began).Round(time.Millisecond))
}

// programs is how many programs MySQL holds.
func (w *nightlyWorld) programs() int64 {
	w.t.Helper()
	var n int64
	must(w.t, w.r.app.QueryRow("SELECT COUNT(*) FROM programs").Scan(&n))
	return n
}

// progress is the rows step of the newest run as the control schema records it: the chunks
// saved, the last root key done, and whether the step is done.
func (w *nightlyWorld) progress() (chunks int, after int, done bool, err error) {
	var key string
	err = w.ctl.QueryRow(`SELECT chunks, after_key, done FROM nightly_progress WHERE entity = 'program' AND step = 'rows'
ORDER BY run_id DESC LIMIT 1`).Scan(&chunks, &key, &done)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, errors.New("no progress saved yet")
	}
	if err != nil {
		return 0, 0, false, err
	}
	after, _ = strconv.Atoi(strings.Trim(key, `"`))
	return chunks, after, done, nil
}

// programRange is the lowest and the highest program id of the catalog.
func programRange(c *indexerCatalog) (low, high int) {
	for id := range c.rows["programs"] {
		if low == 0 || id < low {
			low = id
		}
		high = max(high, id)
	}
	return low, high
}

// changeProgram makes one change to program id (where says where it lies, for ops): deletes
// it, updates it, moves it to another channel or gives it an episode, or inserts a deleted
// program again. Each change rewrites one document: a rename shared by thousands of programs
// would keep the stream busy long after the run, and the run is what is under test.
func changeProgram(c *indexerCatalog, id int, deleted *[]int, ops map[string]int, where string) {
	_, exists := c.rows["programs"][id]
	switch n := rand.IntN(100); {
	case n < 10 || !exists:
		if len(*deleted) > 0 {
			i := rand.IntN(len(*deleted))
			c.insert("programs", c.program((*deleted)[i]))
			*deleted = append((*deleted)[:i], (*deleted)[i+1:]...)
			ops["insert again"]++
		}
	case n < 45:
		c.delete("programs", id)
		*deleted = append(*deleted, id)
		ops[strings.TrimSpace("delete "+where)]++
	case n < 80:
		c.update("programs", id, map[string]any{"title": fmt.Sprintf("Retitled %d", rand.IntN(1e6)), "rating": nil})
		ops[strings.TrimSpace("update "+where)]++
	case n < 90:
		c.update("programs", id, map[string]any{"channel_id": c.nullableChannel()})
		ops[strings.TrimSpace("move to another channel "+where)]++
	default:
		e := c.id()
		c.insert("episodes", map[string]any{"id": e, "program_id": id, "number": rand.IntN(50), "title": fmt.Sprintf("Episode %d", e)})
		ops[strings.TrimSpace("add an episode "+where)]++
	}
}

// workloadPace paces a workload at 50 changes a second: a tight loop on a small shared host
// starves the run it runs against, and the point is the interleaving, not the rate.
func workloadPace(t *testing.T) *time.Ticker {
	tick := time.NewTicker(20 * time.Millisecond)
	t.Cleanup(tick.Stop)
	return tick
}

// checkTallies checks what the report says of every cluster: nothing failed, and every row read
// was found equal, newer, or written (a write refused as stale counts as skipped).
func checkTallies(t *testing.T, e *nightly.Entity) {
	t.Helper()
	if len(e.Clusters) != len(clusterNames) {
		t.Fatalf("report has %d clusters, want %d: %+v", len(e.Clusters), len(clusterNames), e.Clusters)
	}
	for _, c := range e.Clusters {
		if c.Failed != 0 || c.Error != "" || c.Refused {
			t.Errorf("cluster %s: %d failed %v, error %q, mass delete refused %v", c.Cluster, c.Failed, c.Failures, c.Error, c.Refused)
		}
		if c.Equal+c.Missing+c.Different > e.Rows {
			t.Errorf("cluster %s: equal %d + missing %d + different %d above the %d rows read", c.Cluster, c.Equal, c.Missing, c.Different, e.Rows)
		}
		if c.Written+c.Equal+c.Skipped < e.Rows {
			t.Errorf("cluster %s: written %d + equal %d + skipped %d below the %d rows read", c.Cluster, c.Written, c.Equal, c.Skipped, e.Rows)
		}
	}
}

// TestNightlyLoadsAnUnseenCatalogIntoEveryClusterWhileTheStreamRuns prevents an existing
// database from never reaching the clusters (the stream only follows changes made after it
// starts), and the initial load from losing or undoing what the stream writes meanwhile: a
// catalog of 100,000 programs inserted before cdc starts is loaded by `wye nightly` while a
// workload updates, inserts and deletes programs and their relations through `wye run`.
// The run exits 0 having read every program, its id list matches its counts, nothing is
// parked, and once the stream drains every cluster equals MySQL.
func TestNightlyLoadsAnUnseenCatalogIntoEveryClusterWhileTheStreamRuns(t *testing.T) {
	const programs = 100_000
	w := newNightlyWorld(t, 10, 200, programs, programs/2, 50)
	w.startStream()
	seeded := w.c.counts["programs.insert"]

	report := filepath.Join(t.TempDir(), "nightly.json")
	run := w.startNightly(report)
	low, high := programRange(w.c)
	var deleted []int
	ops := map[string]int{}
	steps := 0
	pace := workloadPace(t)
	for began := time.Now(); run.running() && time.Since(began) < 5*time.Minute; {
		<-pace.C
		if rand.IntN(100) < 5 {
			w.c.insert("programs", w.c.program(w.c.id()))
			ops["insert"]++
		} else {
			changeProgram(w.c, low+rand.IntN(high-low+1), &deleted, ops, "")
		}
		steps++
	}
	rep := run.finish(t, time.Second, 0)
	inserted := w.c.counts["programs.insert"] - seeded
	removed := w.c.counts["programs.delete"]
	e := entity(t, rep)
	t.Logf("initial load: %d rows in %d chunks, %.1f s (%.0f docs/s) under %d workload steps %v",
		e.Rows, e.Chunks, e.Seconds, float64(e.Rows)/e.Seconds, steps, ops)
	if rep.Status != "equal" || len(rep.Problems) > 0 {
		t.Errorf("report status %q, problems %q", rep.Status, rep.Problems)
	}
	if e.Rows < int64(programs-removed) || e.Rows > int64(programs+inserted) {
		t.Errorf("the run read %d programs; MySQL held %d, then %d inserted and %d deleted", e.Rows, programs, inserted, removed)
	}
	checkTallies(t, e)
	if len(rep.IDsFiles) != 1 {
		t.Fatalf("id lists %q, want one", rep.IDsFiles)
	}
	ids := idLines(t, rep.IDsFiles[0])
	for _, c := range e.Clusters {
		if c.Missing == 0 {
			t.Errorf("cluster %s: the initial load found no document missing", c.Cluster)
		}
		if got := ids["missing\t"+c.Cluster]; int64(got) != c.Missing {
			t.Errorf("cluster %s: %d missing ids listed, the report counts %d", c.Cluster, got, c.Missing)
		}
		if got := ids["different\t"+c.Cluster]; int64(got) != c.Different {
			t.Errorf("cluster %s: %d different ids listed, the report counts %d", c.Cluster, got, c.Different)
		}
	}
	t.Logf("id list: %d bytes", fileSize(t, rep.IDsFiles[0]))

	w.converges(3 * time.Minute)
	if err := w.r.parkedCount(0); err != nil {
		t.Error(err)
	}
}

// TestNightlyUnderHeavyDeletesLeavesNothingStaleAndResurrectsNoDeletedDocument prevents a
// resync from writing content older than MySQL or bringing a deleted document back: the run
// writes with its snapshot's version, so a stream write or delete made after the snapshot must
// win in any order, and an orphan is deleted only below that version. Every cluster starts
// with stale copies (old content at version 1) and orphans, some of whose ids the workload
// inserts during the run. While the run goes, a workload deletes, updates and re-inserts
// programs just ahead of the run's saved position (not read yet) and just behind it (just
// written). Once the stream drains, every cluster equals MySQL: no deleted document, no stale
// content, every inserted orphan id present.
func TestNightlyUnderHeavyDeletesLeavesNothingStaleAndResurrectsNoDeletedDocument(t *testing.T) {
	const programs, chunk = 20_000, 200
	w := newNightlyWorld(t, 5, 100, programs, programs/2, 30)
	c := w.c
	low, high := programRange(c)
	// Stale copies of every 50th program and 150 orphans past the last id, at version 1, on
	// every cluster; the workload inserts the first 50 orphan ids.
	var drift strings.Builder
	for id := low; id <= high; id += 50 {
		d, _ := json.Marshal(sampleProgram(id, 1))
		fmt.Fprintf(&drift, "{\"index\":{\"_index\":%q,\"_id\":\"%d\",\"version\":1,\"version_type\":\"external\"}}\n%s\n", w.r.index, id, d)
	}
	for id := high + 1; id <= high+150; id++ {
		d, _ := json.Marshal(sampleProgram(id, 1))
		fmt.Fprintf(&drift, "{\"index\":{\"_index\":%q,\"_id\":\"%d\",\"version\":1,\"version_type\":\"external\"}}\n%s\n", w.r.index, id, d)
	}
	for _, cl := range clusterNames {
		if status, body := indexerHTTP(t, "POST", clusterURLs[cl]+"/_bulk?refresh=true", []byte(drift.String())); status != 200 || strings.Contains(string(body), `"errors":true`) {
			t.Fatalf("drift on %s: %d %.500s", cl, status, body)
		}
	}
	orphan := high + 1 // the next orphan id the workload inserts
	w.startStream()

	run := w.startNightly(filepath.Join(t.TempDir(), "nightly.json"), "--chunk-rows", strconv.Itoa(chunk), "--rows-per-second", "2000")
	var deleted []int
	ops := map[string]int{}
	pace := workloadPace(t)
	for began := time.Now(); run.running() && time.Since(began) < 3*time.Minute; {
		<-pace.C
		_, after, _, err := w.progress()
		if err != nil {
			after = low
		}
		// Half the changes land on the next two chunks the run will read, half on the one it
		// just saved.
		id := after + 1 + rand.IntN(2*chunk)
		where := "ahead"
		if rand.IntN(2) == 0 {
			id, where = after-rand.IntN(chunk), "behind"
		}
		if rand.IntN(100) < 5 && orphan <= high+50 {
			c.insert("programs", c.program(orphan))
			orphan++
			ops["insert an orphan's id"]++
			continue
		}
		changeProgram(c, id, &deleted, ops, where)
	}
	rep := run.finish(t, time.Second, 0)
	e := entity(t, rep)
	t.Logf("run: %d rows, %d chunks, %.1f s; workload during the run: %v; %d programs deleted and not inserted again",
		e.Rows, e.Chunks, e.Seconds, ops, len(deleted))
	if ops["delete ahead"] == 0 || ops["delete behind"] == 0 || ops["update ahead"] == 0 || ops["update behind"] == 0 {
		t.Fatalf("the workload did not reach both sides of the run's position: %v", ops)
	}
	if rep.Status != "equal" || len(rep.Problems) > 0 {
		t.Errorf("report status %q, problems %q", rep.Status, rep.Problems)
	}
	checkTallies(t, e)
	for _, cl := range e.Clusters {
		if cl.Orphans == 0 || cl.Deleted == 0 {
			t.Errorf("cluster %s: %d orphans found, %d deleted; the drift left 100 that no insert covers", cl.Cluster, cl.Orphans, cl.Deleted)
		}
	}

	w.converges(2 * time.Minute)
	if err := w.r.parkedCount(0); err != nil {
		t.Error(err)
	}
}

// TestNightlySIGKILLedMidRunResumesAndRepeatsAtMostOneChunk prevents a killed run from
// starting over (hours lost on large tables) or skipping what it had not written: the run is
// SIGKILLed once it saved some chunks, and the next run resumes it. The resumed report counts
// the resume, reads the table once in all (the rows of both attempts add up to the table's),
// finds at most one chunk already written (the chunk the killed attempt wrote but had not
// saved), and every cluster equals MySQL.
func TestNightlySIGKILLedMidRunResumesAndRepeatsAtMostOneChunk(t *testing.T) {
	const programs, chunk = 50_000, 500
	w := newNightlyWorld(t, 5, 50, programs, programs/5, 20)
	w.startStream()
	report := filepath.Join(t.TempDir(), "nightly.json")

	// The rate limit keeps the first attempt running long enough to be killed mid-way.
	first := w.startNightly(report, "--chunk-rows", strconv.Itoa(chunk), "--rows-per-second", "10000")
	eventually(t, 2*time.Minute, func() error {
		if !first.running() {
			t.Fatalf("the run ended before it could be killed:\n%s", first.out.String())
		}
		chunks, _, _, err := w.progress()
		if err == nil && chunks < 10 {
			err = fmt.Errorf("%d chunks saved", chunks)
		}
		return err
	})
	must(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.done
	chunks, after, done, err := w.progress()
	must(t, err)
	if done {
		t.Fatal("the rows step was done when the run was killed")
	}
	t.Logf("killed after %d chunks saved (last key %d)", chunks, after)

	second := w.startNightly(report, "--chunk-rows", strconv.Itoa(chunk))
	rep := second.finish(t, 2*time.Minute, 0)
	e := entity(t, rep)
	t.Logf("resumed run: %d rows, %d chunks in all, %.1f s", e.Rows, e.Chunks, e.Seconds)
	if rep.Status != "equal" || len(rep.Problems) > 0 {
		t.Errorf("report status %q, problems %q", rep.Status, rep.Problems)
	}
	if rep.Resumes != 1 || !e.Resumed {
		t.Errorf("report resumes %d, entity resumed %v; want 1 and true", rep.Resumes, e.Resumed)
	}
	if len(rep.IDsFiles) != 2 {
		t.Errorf("id lists %q, want one per attempt", rep.IDsFiles)
	}
	if n := w.programs(); e.Rows < n || e.Rows > n+chunk {
		t.Errorf("the two attempts read %d rows of a table of %d: not once each (one chunk of %d may repeat)", e.Rows, n, chunk)
	}
	if e.Chunks < chunks || e.Chunks > programs/chunk+2 {
		t.Errorf("%d chunks in all; %d were saved before the kill, the table has %d", e.Chunks, chunks, programs/chunk+1)
	}
	checkTallies(t, e)
	// The clusters were empty: what the resumed attempt found equal, the killed one wrote after
	// its last save.
	for _, c := range e.Clusters {
		if c.Equal > chunk {
			t.Errorf("cluster %s: the resumed run found %d documents already written, more than one chunk (%d)", c.Cluster, c.Equal, chunk)
		}
		if c.Missing+c.Equal != e.Rows {
			t.Errorf("cluster %s: %d written as missing + %d found equal, want the %d rows", c.Cluster, c.Missing, c.Equal, e.Rows)
		}
	}
	w.converges(time.Minute)
}

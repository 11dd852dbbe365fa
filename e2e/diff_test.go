package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wyehq/wye/diff"
)

// `wye diff` on the real stack (issue 14), in the world of nightly_test.go: a rig, a private
// control schema, the stream as `wye run`, the clusters loaded by `wye nightly`.

// diffProc is one `wye diff` process.
type diffProc struct {
	cmd    *exec.Cmd
	out    *lockedOutput
	done   chan struct{}
	report string
}

// startDiff runs `wye diff <args>` with its report in a temporary directory; it is killed at
// cleanup if it still runs.
func (w *nightlyWorld) startDiff(args ...string) *diffProc {
	w.t.Helper()
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	p := &diffProc{out: &lockedOutput{}, done: make(chan struct{}), report: filepath.Join(w.t.TempDir(), "diff.json")}
	args = append([]string{"diff", args[0], "-c", w.cfg, "--report", p.report}, args[1:]...)
	p.cmd = exec.Command(wyeBinary(w.t), args...)
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
	})
	return p
}

func (p *diffProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// diffResult is what a finished diff left: output, report, id list (sorted lines).
type diffResult struct {
	out string
	rep diff.Report
	ids []string
}

// finish waits for the diff, which must exit with want, and reads its report and id list.
func (p *diffProc) finish(t *testing.T, want int) diffResult {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("wye diff still runs after 5 minutes:\n%s", p.out.String())
	}
	res := diffResult{out: p.out.String()}
	if code := p.cmd.ProcessState.ExitCode(); code != want {
		t.Fatalf("wye diff: exit %d, want %d:\n%s", code, want, res.out)
	}
	b, err := os.ReadFile(p.report)
	must(t, err)
	must(t, json.Unmarshal(b, &res.rep))
	if res.rep.IDsFile != "" {
		f, err := os.Open(res.rep.IDsFile)
		must(t, err)
		defer f.Close()
		z, err := gzip.NewReader(f)
		must(t, err)
		for s := bufio.NewScanner(z); s.Scan(); {
			res.ids = append(res.ids, s.Text())
		}
	}
	slices.Sort(res.ids)
	return res
}

// pair is the report's tally of cluster (es7, es8, os2) for the program entity.
func (res diffResult) pair(t *testing.T, w *nightlyWorld, cluster string) *diff.Tally {
	t.Helper()
	if len(res.rep.Entities) != 1 {
		t.Fatalf("report entities %+v, want program alone", res.rep.Entities)
	}
	for _, x := range res.rep.Entities[0].Pairs {
		if x.Cluster == w.r.names[cluster] {
			return x
		}
	}
	t.Fatalf("no pair of %s in the report: %+v", cluster, res.rep.Entities[0].Pairs)
	return nil
}

// counts of a tally, for comparisons in one line.
type diffCounts struct{ Missing, Extra, Different, EmptyNull, Behind, Ahead int64 }

func countsOf(x *diff.Tally) diffCounts {
	return diffCounts{x.Missing, x.Extra, x.Different, x.EmptyNull, x.Behind, x.Ahead}
}

// rewriteDocs writes docs (id -> document, each with its wye_version) to cluster's index at
// their own version with version_type=external_gte: the same version with other content, as
// corruption (a bad restore, a stray writer keeping versions) leaves it. A nil document is
// deleted.
func (w *nightlyWorld) rewriteDocs(cluster string, docs map[string]map[string]any) {
	t := w.t
	t.Helper()
	var body bytes.Buffer
	for id, d := range docs {
		var meta, src []byte
		if d == nil {
			meta, _ = json.Marshal(map[string]any{"delete": map[string]any{"_index": w.r.index + "_v1", "_id": id}})
			body.Write(append(meta, '\n'))
			continue
		}
		meta, _ = json.Marshal(map[string]any{"index": map[string]any{"_index": w.r.index + "_v1", "_id": id,
			"version": int64(d["wye_version"].(float64)), "version_type": "external_gte"}})
		src, _ = json.Marshal(d)
		body.Write(append(append(append(meta, '\n'), src...), '\n'))
	}
	status, b := indexerHTTP(t, "POST", clusterURL(t, cluster)+"/_bulk?refresh=true", body.Bytes())
	var res struct{ Errors bool }
	if err := json.Unmarshal(b, &res); status != 200 || err != nil || res.Errors {
		t.Fatalf("rewrite %s by hand: %d %.600s", cluster, status, b)
	}
}

// loadedWorld is a nightly world of programs, the stream running, every cluster loaded by
// `wye nightly`.
func loadedWorld(t *testing.T, programs int) (*nightlyWorld, map[string]map[string]any) {
	w := newNightlyWorld(t, 3, 20, programs, programs/2, 30)
	w.startStream()
	began := time.Now()
	w.run(0)
	t.Logf("%d programs loaded by wye nightly in %v", programs, time.Since(began).Round(time.Millisecond))
	docs, err := allDocs(t, "os2", w.r.index)
	must(t, err)
	return w, docs
}

// TestDiffDocsFindsExactlyTheFourHandMadeDifferencesInTheirClasses prevents a diff that misses
// a divergence, or files it under the wrong class, among 200,000 documents: on clusters loaded
// alike, the slave os2 loses one document, gains one the master never had, has one title
// altered and one [] turned into null at the same versions. `wye diff docs` exits 1 and finds
// exactly those four, in their classes, on os2 only; its id list names them (with the path that
// differs), and its summary says how many documents it fetched in full. The documents are
// generated and bulk-loaded straight into the clusters (a diff of clusters reads only them);
// `make bench-diff` times the diff beside a bare scan.
func TestDiffDocsFindsExactlyTheFourHandMadeDifferencesInTheirClasses(t *testing.T) {
	const programs = 200_000
	w := newNightlyWorld(t, 1, 1, 0, 0, 1)
	wyeBinary(t) // built before the clock starts
	began := time.Now()
	bulkLoadPrograms(t, w.r, clusterNames, programs, w.r.version)
	t.Logf("%d generated programs bulk-loaded into %d clusters in %v", programs, len(clusterNames), time.Since(began).Round(time.Millisecond))
	ids := make([]string, programs)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	doc := func(id string) map[string]any {
		n, _ := strconv.Atoi(id)
		return generatedProgram(int64(n), w.r.version).asDoc()
	}

	rng := rand.New(rand.NewPCG(14, 1))
	var gone, altered, nulled string
	for gone == altered || altered == "" {
		gone, altered = ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
	}
	for _, id := range ids[rng.IntN(len(ids)):] {
		if e, ok := doc(id)["episodes"].([]any); ok && len(e) == 0 && id != gone && id != altered {
			nulled = id
			break
		}
	}
	if nulled == "" {
		t.Fatal("no program without episodes to turn [] into null")
	}
	extra := strconv.Itoa(programs + 990001)
	a, n, x := doc(altered), doc(nulled), doc(altered)
	a["title"] = "altered by hand"
	n["episodes"] = nil
	x["id"], x["title"] = programs+990001, "never on the master"
	x["wye_version"] = float64(1)
	w.rewriteDocs("os2", map[string]map[string]any{gone: nil, altered: a, nulled: n, extra: x})

	began = time.Now()
	res := w.startDiff("docs").finish(t, 1)
	took := time.Since(began)
	t.Logf("wye diff docs of %d documents on 3 clusters: %v\n%s", programs, took.Round(time.Millisecond), res.out)
	os2 := w.r.names["os2"]
	want := []string{
		"different\t" + os2 + "\tprogram\t" + altered + "\ttitle",
		"empty_null\t" + os2 + "\tprogram\t" + nulled + "\tepisodes",
		"extra\t" + os2 + "\tprogram\t" + extra + "\t",
		"missing\t" + os2 + "\tprogram\t" + gone + "\t",
	}
	slices.Sort(want)
	if !slices.Equal(res.ids, want) {
		t.Errorf("id list %q, want %q", res.ids, want)
	}
	if got := countsOf(res.pair(t, w, "os2")); got != (diffCounts{Missing: 1, Extra: 1, Different: 1, EmptyNull: 1}) {
		t.Errorf("os2: %+v, want one of each of missing, extra, different, empty_null", got)
	}
	if x := res.pair(t, w, "es8"); countsOf(x) != (diffCounts{}) || x.Equal != int64(len(ids)) {
		t.Errorf("es8: %+v, want all %d equal", x, len(ids))
	}
	if res.rep.Reference != w.r.names["es7"] || res.rep.Status != diff.StatusDifferent {
		t.Errorf("reference %s status %s, want the master %s and different", res.rep.Reference, res.rep.Status, w.r.names["es7"])
	}
	if res.rep.Fetched < int64(2*len(ids)) || !strings.Contains(res.out, fmt.Sprintf("%d documents fetched in full", res.rep.Fetched)) {
		t.Errorf("fetched %d (the content of %d documents on 3 clusters); the summary does not say so:\n%s", res.rep.Fetched, len(ids), res.out)
	}

}

// TestDiffDocsWithoutContentStillFindsTheMissingAndTheExtraDocument prevents --content none
// (ids and versions only) from missing a document gone from a slave or one it holds alone:
// on 5000 programs loaded alike on the three clusters, os2 loses one and gains one, and
// `wye diff docs --content none` exits 1 with exactly those two on os2 and fetches no document
// in full but the two it reads again.
func TestDiffDocsWithoutContentStillFindsTheMissingAndTheExtraDocument(t *testing.T) {
	const programs = 5000
	w := newNightlyWorld(t, 1, 1, 0, 0, 1)
	bulkLoadPrograms(t, w.r, clusterNames, programs, w.r.version)
	gone, extra := strconv.Itoa(1+rand.IntN(programs)), strconv.Itoa(programs+990001)
	x := generatedProgram(programs+990001, 1).asDoc()
	w.rewriteDocs("os2", map[string]map[string]any{gone: nil, extra: x})

	res := w.startDiff("docs", "--content", "none").finish(t, 1)
	t.Logf("--content none:\n%s", res.out)
	os2 := w.r.names["os2"]
	want := []string{"extra\t" + os2 + "\tprogram\t" + extra + "\t", "missing\t" + os2 + "\tprogram\t" + gone + "\t"}
	if !slices.Equal(res.ids, want) {
		t.Errorf("id list %q, want %q", res.ids, want)
	}
	if got := countsOf(res.pair(t, w, "os2")); got != (diffCounts{Missing: 1, Extra: 1}) {
		t.Errorf("os2: %+v, want the missing and the extra document alone", got)
	}
	if x := res.pair(t, w, "es8"); countsOf(x) != (diffCounts{}) || x.Equal != programs {
		t.Errorf("es8: %+v, want all %d equal", x, programs)
	}
	if res.rep.Fetched > 2 {
		t.Errorf("--content none fetched %d documents in full, want the 2 read again at most", res.rep.Fetched)
	}
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestDiffDocsUnderALiveWorkloadReportsNoFalseDifference prevents the stream's writes in
// flight from being reported as differences: while a workload updates, deletes and inserts
// programs (each change reaches the master and the slaves at slightly different times), three
// runs of `wye diff docs` in a row each exit 0, having read some differences again.
func TestDiffDocsUnderALiveWorkloadReportsNoFalseDifference(t *testing.T) {
	w, _ := loadedWorld(t, 3000)
	low, high := programRange(w.c)
	var deleted []int
	ops := map[string]int{}
	pace := workloadPace(t)
	var rechecked int64
	for run := range 3 {
		p := w.startDiff("docs") // the default --recheck (2s): a slave may lag the master by more than 1 s on a loaded host
		steps := 0
		for p.running() {
			<-pace.C
			if rand.IntN(100) < 5 {
				w.c.insert("programs", w.c.program(w.c.id()))
				ops["insert"]++
			} else {
				changeProgram(w.c, low+rand.IntN(high-low+1), &deleted, ops, "")
			}
			steps++
		}
		res := p.finish(t, 0)
		for _, c := range []string{"es8", "os2"} {
			rechecked += res.pair(t, w, c).Rechecked
		}
		t.Logf("run %d: %d workload steps meanwhile\n%s", run+1, steps, res.out)
	}
	t.Logf("workload %v; %d differences read again and found equal", ops, rechecked)
}

// TestDiffDocsAgainstMySQLFindsADocumentThatDiffersOnAllClustersAlike prevents a diff that
// only compares clusters with each other from missing what they all got wrong: a program's
// title is altered by hand on every cluster (the clusters agree with each other), and
// `wye diff docs --against-mysql` finds that one document different on each cluster, with the
// path, and nothing else.
func TestDiffDocsAgainstMySQLFindsADocumentThatDiffersOnAllClustersAlike(t *testing.T) {
	w, docs := loadedWorld(t, 2000)
	var id string
	for k := range docs {
		id = k
		break
	}
	for _, c := range clusterNames {
		all, err := allDocs(t, c, w.r.index)
		must(t, err)
		d := all[id]
		d["title"] = "wrong everywhere"
		w.rewriteDocs(c, map[string]map[string]any{id: d})
	}
	w.startDiff("docs").finish(t, 0) // the clusters agree with each other

	res := w.startDiff("docs", "--against-mysql").finish(t, 1)
	t.Logf("%s", res.out)
	var want []string
	for _, c := range clusterNames {
		if got := countsOf(res.pair(t, w, c)); got != (diffCounts{Different: 1}) {
			t.Errorf("%s: %+v, want the one document different", c, got)
		}
		want = append(want, "different\t"+w.r.names[c]+"\tprogram\t"+id+"\ttitle")
	}
	slices.Sort(want)
	if !slices.Equal(res.ids, want) || res.rep.Reference != "mysql" {
		t.Errorf("reference %s, id list %q, want mysql and %q", res.rep.Reference, res.ids, want)
	}
	if n, _ := strconv.Atoi(id); n == 0 {
		t.Errorf("id %q is not a program id", id)
	}
}

// TestDiffQueriesPassesOnEqualClustersAndNamesTheQueryOfADifference prevents a cluster that
// answers differently from passing for equal, and equal clusters from failing: the catalog's
// corpus (examples/catalog/queries.yaml) passes on clusters loaded alike; then os2 holds one
// program with another title, and the run fails naming the query and the path; then that
// program is put back and another's [] of episodes becomes null on os2, and the run fails
// naming the query and the shape.
func TestDiffQueriesPassesOnEqualClustersAndNamesTheQueryOfADifference(t *testing.T) {
	w, docs := loadedWorld(t, 2000)
	corpus := "--file=../examples/catalog/queries.yaml"
	ok := w.startDiff("queries", corpus).finish(t, 0)
	t.Logf("equal clusters:\n%s", ok.out)

	codes := slices.SortedFunc(func(yield func(string) bool) {
		for id := range docs {
			if !yield(id) {
				return
			}
		}
	}, func(a, b string) int { return strings.Compare(docs[a]["code"].(string), docs[b]["code"].(string)) })
	first := codes[0]
	var empty string
	for _, id := range codes {
		if e, ok := docs[id]["episodes"].([]any); ok && len(e) == 0 && id != first {
			empty = id
			break
		}
	}
	original := clone(docs[first])
	altered := clone(original)
	altered["title"] = "altered by hand"
	w.rewriteDocs("os2", map[string]map[string]any{first: altered})
	os2 := w.r.names["os2"]
	res := w.startDiff("queries", corpus).finish(t, 1)
	t.Logf("one title altered on os2:\n%s", res.out)
	if want := "different: query programs-by-code on " + os2 + ": hit " + first + ": _source differs at title"; !strings.Contains(res.out, want) {
		t.Errorf("the summary does not say %q", want)
	}

	w.rewriteDocs("os2", map[string]map[string]any{first: original})
	nulled := clone(docs[empty])
	nulled["episodes"] = nil
	w.rewriteDocs("os2", map[string]map[string]any{empty: nulled})
	res = w.startDiff("queries", corpus).finish(t, 1)
	t.Logf("one [] turned into null on os2:\n%s", res.out)
	if want := "different: query programs-without-episodes on " + os2 + ": hit " + empty + ": _source shape: [] / null / absent differ at episodes"; !strings.Contains(res.out, want) {
		t.Errorf("the summary does not say %q", want)
	}
	if res.rep.Status != diff.StatusDifferent {
		t.Errorf("status %s, want different", res.rep.Status)
	}
}

// A generated program as the catalog's documents look (mappings/programs/v1): loading 200,000
// documents through MySQL and `wye nightly` takes minutes, and a diff of clusters reads only
// the clusters. A nil slice field is written as null.
type genProgram struct {
	ID         int64       `json:"id"`
	Title      string      `json:"title"`
	ChannelID  *int64      `json:"channel_id"`
	DurationS  int         `json:"duration_s"`
	Rating     *string     `json:"rating"`
	Code       string      `json:"code"`
	UpdatedAt  string      `json:"updated_at"`
	Channel    *genChannel `json:"channel"`
	Episodes   []genChild  `json:"episodes"`
	Tags       []genChild  `json:"tags"`
	WyeVersion int64       `json:"wye_version"`
}

type genChannel struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Network *genChild `json:"network"`
}

type genChild struct {
	ID           int64  `json:"id"`
	Number       *int   `json:"number,omitempty"`
	EpisodeTitle string `json:"episode_title,omitempty"`
	Name         string `json:"name,omitempty"`
}

// generatedProgram is program id at version, the same on every call: about a third of the
// programs have no episode ([]), a tenth no channel (null).
func generatedProgram(id, version int64) genProgram {
	rng := rand.New(rand.NewPCG(uint64(id), 14))
	p := genProgram{ID: id, Title: fmt.Sprintf("Program %d ü %d", id, rng.IntN(1000)), DurationS: rng.IntN(7200),
		Code: fmt.Sprintf("P-%07d", id), UpdatedAt: time.Date(2026, 1, 1+rng.IntN(300), rng.IntN(24), rng.IntN(60), rng.IntN(60), 0, time.UTC).Format(time.DateTime),
		Episodes: []genChild{}, Tags: []genChild{}, WyeVersion: version}
	if rng.IntN(4) > 0 {
		r := strconv.FormatFloat(float64(rng.IntN(100))/10, 'f', 1, 64)
		p.Rating = &r
	}
	if rng.IntN(10) > 0 {
		ch, net := int64(1+rng.IntN(200)), int64(1+rng.IntN(10))
		p.ChannelID = &ch
		p.Channel = &genChannel{ID: ch, Name: fmt.Sprintf("Channel %d", ch), Network: &genChild{ID: net, Name: fmt.Sprintf("Network %d", net)}}
	}
	for e := range rng.IntN(3) * rng.IntN(3) {
		n := e + 1
		p.Episodes = append(p.Episodes, genChild{ID: id*10 + int64(e), Number: &n, EpisodeTitle: fmt.Sprintf("Episode %d", e+1)})
	}
	for range rng.IntN(4) {
		tag := int64(1 + rng.IntN(50))
		p.Tags = append(p.Tags, genChild{ID: tag, Name: fmt.Sprintf("tag-%d", tag)})
	}
	return p
}

// asDoc is p as a search result decodes it.
func (p genProgram) asDoc() map[string]any {
	b, _ := json.Marshal(p)
	var d map[string]any
	json.Unmarshal(b, &d)
	return d
}

// bulkLoadPrograms writes programs 1..n (generatedProgram, at version) into the rig's index on
// clusters, each at its own version (version_type external), as fast as the stack takes them:
// pages of 5000 documents generated once and sent to every cluster at once, two requests in
// flight per cluster, refresh off and the translog synced asynchronously during the load, then
// the index settings put back and refreshed.
func bulkLoadPrograms(t *testing.T, r *indexerRig, clusters []string, n int, version int64) {
	t.Helper()
	const page, inFlight = 5000, 2
	index := r.index + "_v1"
	settings := func(body string) error {
		for _, c := range clusters {
			if status, b, err := bulkHTTP("PUT", clusterURL(t, c)+"/"+index+"/_settings", []byte(body)); err != nil || status != 200 {
				return fmt.Errorf("settings of %s on %s: %d %.300s %v", index, c, status, b, err)
			}
		}
		return nil
	}
	must(t, settings(`{"index":{"refresh_interval":"-1","translog.durability":"async"}}`))
	queues := map[string]chan []byte{}
	errs := make(chan error, len(clusters)*inFlight)
	var wg sync.WaitGroup
	for _, c := range clusters {
		q := make(chan []byte, inFlight)
		queues[c] = q
		u := clusterURL(t, c) + "/_bulk?filter_path=errors,items.*.error"
		for range inFlight {
			wg.Go(func() {
				var failed error
				for body := range q {
					if failed != nil {
						continue
					}
					status, b, err := bulkHTTP("POST", u, body)
					if err != nil || status != 200 || !bytes.Contains(b, []byte(`"errors":false`)) {
						failed = fmt.Errorf("bulk load of %s: %d %.600s %v", c, status, b, err)
						errs <- failed
					}
				}
			})
		}
	}
	var body bytes.Buffer
	for first := 1; first <= n; first += page {
		body.Reset()
		for id := first; id < first+page && id <= n; id++ {
			fmt.Fprintf(&body, `{"index":{"_index":%q,"_id":"%d","version":%d,"version_type":"external"}}`+"\n", index, id, version)
			b, _ := json.Marshal(generatedProgram(int64(id), version))
			body.Write(append(b, '\n'))
		}
		chunk := bytes.Clone(body.Bytes())
		for _, q := range queues {
			q <- chunk
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	must(t, settings(`{"index":{"refresh_interval":null,"translog.durability":"request"}}`))
	for _, c := range clusters {
		if status, b, err := bulkHTTP("POST", clusterURL(t, c)+"/"+index+"/_refresh", nil); err != nil || status != 200 {
			t.Fatalf("refresh %s on %s: %d %.300s %v", index, c, status, b, err)
		}
	}
}

// bulkHTTP is indexerHTTP for goroutines: it returns its error.
func bulkHTTP(method, u string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

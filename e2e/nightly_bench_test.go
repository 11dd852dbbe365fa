//go:build bench

package e2e

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/nightly"
)

// TestNightlyBenchmark measures `wye nightly` (issue 13) against what it cannot beat, side by
// side in alternating rounds, on a catalog it seeds itself. It runs only when
// WYE_BENCH_NIGHTLY_ROWS is set (`make bench-nightly`): a comma-separated list of program
// counts, e.g. 100000 or 100000,1000000; WYE_BENCH_NIGHTLY_ROUNDS (default 3) and
// WYE_BENCH_NIGHTLY_DIR (default: a new temporary directory) are optional. It asserts only that
// wye did its job (every document written by a load, none by a resync of equal clusters);
// rates on a shared host are noise-bound and reported, not asserted.
//
// For each size, every round:
//   - initial load: `wye nightly` into fresh empty indices on es7, es8 and os2, against a raw
//     _bulk of the same documents (the ones the first load wrote, read back from es7) into
//     fresh indices on the same three clusters, one request in flight per cluster, the three
//     clusters at once, batches of nightly.DefaultChunkRows; the two alternate who goes first.
//   - resync of equal clusters: `wye nightly --clusters <es7>` against a bare scan: the six
//     statements wye's denormalizer issues per chunk of the root (the root's keyset SELECT,
//     then channels, networks, episodes, program_tags and tags by IN lists), rows read as raw
//     bytes and dropped, on one connection without snapshots; then one scan of es7's
//     documents with _source (cluster.Client.Scan, pages of nightly.DefaultScanPage).
//
// Each wye run's peak RSS is its VmHWM, sampled every 20 ms in /proc/<pid>/status; its CPU
// profile (--cpuprofile), report and output go to the directory printed, and the top 15
// functions of each phase (its rounds' profiles merged) are printed.
func TestNightlyBenchmark(t *testing.T) {
	spec := cmp.Or(os.Getenv("WYE_BENCH_NIGHTLY_ROWS"), "100000")
	var sizes []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			t.Fatalf("WYE_BENCH_NIGHTLY_ROWS=%q: want positive integers, comma-separated", spec)
		}
		sizes = append(sizes, n)
	}
	rounds := envInt(t, "WYE_BENCH_NIGHTLY_ROUNDS", 3)
	dir := os.Getenv("WYE_BENCH_NIGHTLY_DIR")
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "wye-nightly-bench-")
		must(t, err)
	}
	must(t, os.MkdirAll(dir, 0o755))
	t.Logf("profiles and reports go to %s", dir)

	var tables []string
	peaks := map[int]int64{}
	for _, n := range sizes {
		t.Run(fmt.Sprintf("rows=%d", n), func(t *testing.T) {
			b := newNightlyBench(t, n, filepath.Join(dir, strconv.Itoa(n)))
			table, peak := b.run(rounds)
			tables = append(tables, table)
			peaks[n] = peak
		})
	}
	out := strings.Join(tables, "\n")
	if len(sizes) > 1 {
		lo, hi := slices.Min(sizes), slices.Max(sizes)
		if peaks[lo] > 0 && peaks[hi] > 0 {
			out += fmt.Sprintf("\npeak RSS of the initial load: %.1f MB at %d rows, %.1f MB at %d rows: x%.2f (target: at most x1.20)\n",
				mb(peaks[lo]), lo, mb(peaks[hi]), hi, float64(peaks[hi])/float64(peaks[lo]))
		}
	}
	t.Logf("nightly benchmark, %d CPUs for everything (MariaDB, RabbitMQ, three JVMs, the test, wye); profiles and reports in %s\n%s",
		nproc(), dir, out)
}

// nightlyBench is one size's world: an indexer rig (database, indices, cluster names) seeded
// with n programs, a private control schema whose cdc checkpoint gives nightly its epoch, and
// one client per cluster.
type nightlyBench struct {
	t       *testing.T
	r       *indexerRig
	n       int
	cfg     string
	dir     string
	clients map[string]*cluster.Client
	counts  map[string]int // rows per table
	bodies  [][]byte       // the raw _bulk bodies, built from es7 after the first load
}

func newNightlyBench(t *testing.T, n int, dir string) *nightlyBench {
	must(t, os.MkdirAll(dir, 0o755))
	b := &nightlyBench{t: t, r: newIndexerRig(t), n: n, dir: dir, clients: map[string]*cluster.Client{}, counts: map[string]int{}}
	start := time.Now()
	b.seed()
	t.Logf("seeded %d programs, %d episodes, %d tag links, %d channels, %d networks, %d tags in %v",
		b.counts["programs"], b.counts["episodes"], b.counts["program_tags"], b.counts["channels"], b.counts["networks"], b.counts["tags"],
		time.Since(start).Round(time.Millisecond))
	// The default timeouts (not the rig's 3 s, meant for fault tests): a 1,000-document _bulk
	// on a busy host must not be retried.
	ctl := privateControl(t)
	cfg := withControl(t, b.r.config(freePort(t)), ctl)
	raw, err := os.ReadFile(cfg)
	must(t, err)
	must(t, os.WriteFile(cfg, []byte(strings.ReplaceAll(string(raw), ", timeouts: {request: 3s, bulk: 3s}", "")), 0o600))
	b.cfg = cfg
	b.checkpoint(ctl)
	for _, name := range clusterNames {
		cl, err := cluster.New(cluster.Options{Name: name, URLs: []string{clusterURLs[name]}})
		must(t, err)
		b.clients[name] = cl
	}
	return b
}

// seed fills the catalog with INSERT ... SELECT from MariaDB's sequence engine, 100,000
// programs per statement: 8 networks, 60 channels (a tenth without network), 200 tags; per
// program a title of a few words, a channel (a tenth without), a duration, a rating (a
// seventh without), a code, a date, 0-4 episodes and 0-4 tags (2 of each on average).
func (b *nightlyBench) seed() {
	run := func(q string) {
		b.t.Helper()
		if _, err := b.r.app.Exec(q); err != nil {
			b.t.Fatalf("%.200s: %v", q, err)
		}
	}
	words := `'Night','River','Kitchen','Empire','Secret','Island','Summer','Detective','Garden','Storm',` +
		`'Journey','Machine','Legacy','Harbor','Frontier','Mystery','Season','Planet','Wild','City'`
	run(`INSERT INTO networks (id, name) SELECT seq, ELT(seq, 'Northwind Broadcasting', 'Blue Harbor TV', 'Meridian Media',
		'Atlas One', 'Cobalt Network', 'Evergreen Channels', 'Polaris Entertainment', 'Summit Public Media') FROM seq_1_to_8`)
	run(`INSERT INTO channels (id, name, network_id) SELECT seq, CONCAT(ELT(1 + seq % 6, 'News', 'Sports', 'Kids', 'Movies', 'Docs', 'Music'),
		' ', seq), IF(seq % 10 = 0, NULL, 1 + seq % 8) FROM seq_1_to_60`)
	run(`INSERT INTO tags (id, name) SELECT seq, CONCAT(ELT(1 + seq % 20, ` + words + `), '-', seq) FROM seq_1_to_200`)
	const step = 100000
	for lo := 1; lo <= b.n; lo += step {
		hi := min(lo+step-1, b.n)
		run(fmt.Sprintf(`INSERT INTO programs (id, title, channel_id, duration_s, rating, code, updated_at, internal_note)
			SELECT seq, CONCAT(ELT(1 + seq %% 4, 'The', 'A', 'Return of the', 'Inside the'), ' ', ELT(1 + (seq * 7) %% 20, %[3]s), ' ',
				ELT(1 + (seq * 13) %% 20, %[3]s), ' ', seq),
			  IF(seq %% 10 = 0, NULL, 1 + (seq * 13) %% 60), 600 + (seq * 37) %% 6600,
			  IF(seq %% 7 = 0, NULL, ((seq * 31) %% 100) / 10), CONCAT('P', LPAD(seq, 8, '0')),
			  '2024-01-01 00:00:00' + INTERVAL (seq * 97) %% 31536000 SECOND, IF(seq %% 5 = 0, 'licensed until 2027', NULL)
			FROM seq_%[1]d_to_%[2]d`, lo, hi, words))
		run(fmt.Sprintf(`INSERT INTO episodes (id, program_id, number, title)
			SELECT (p.seq - 1) * 4 + e.seq, p.seq, e.seq, CONCAT('Episode ', e.seq, ': ', ELT(1 + (p.seq + e.seq * 3) %% 20, %[3]s))
			FROM seq_%[1]d_to_%[2]d p JOIN seq_1_to_4 e ON e.seq <= (p.seq * 7) %% 5`, lo, hi, words))
		run(fmt.Sprintf(`INSERT INTO program_tags (program_id, tag_id)
			SELECT p.seq, 1 + (p.seq * 17 + s.seq * 53) %% 200
			FROM seq_%[1]d_to_%[2]d p JOIN seq_1_to_4 s ON s.seq <= (p.seq * 11) %% 5`, lo, hi))
	}
	for _, table := range []string{"networks", "channels", "tags", "programs", "episodes", "program_tags"} {
		var c int
		must(b.t, b.r.app.QueryRow("SELECT COUNT(*) FROM "+table).Scan(&c))
		b.counts[table] = c
	}
	if b.counts["programs"] != b.n {
		b.t.Fatalf("seeded %d programs, want %d", b.counts["programs"], b.n)
	}
}

// checkpoint runs `wye cdc` once on the private control schema until it saved its checkpoint:
// nightly writes with versions of the epoch that checkpoint records.
func (b *nightlyBench) checkpoint(schema string) {
	ctl := openMySQL(b.t, mysqlAppUser, mysqlAppPass, schema)
	reader := startCDC(b.t, b.cfg, "")
	eventually(b.t, time.Minute, func() error {
		var n int
		if err := ctl.QueryRow("SELECT COUNT(*) FROM cdc_checkpoint").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no cdc checkpoint in %s yet", schema)
		}
		return nil
	})
	reader.stop()
}

// fresh deletes and recreates the index on every cluster as `wye mapping apply` lays it out.
func (b *nightlyBench) fresh() {
	mapping, err := os.ReadFile("../mappings/programs/v1/mapping.json")
	must(b.t, err)
	for _, c := range clusterNames {
		base := clusterURLs[c]
		concrete := b.r.index + "_v1"
		indexerHTTP(b.t, "DELETE", base+"/"+concrete, nil)
		if status, body := indexerHTTP(b.t, "PUT", base+"/"+concrete, mapping); status != 200 {
			b.t.Fatalf("create index on %s: %d %s", c, status, body)
		}
		alias := []byte(`{"actions":[{"add":{"index":"` + concrete + `","alias":"` + b.r.index + `"}}]}`)
		if status, body := indexerHTTP(b.t, "POST", base+"/_aliases", alias); status != 200 {
			b.t.Fatalf("add alias on %s: %d %s", c, status, body)
		}
	}
}

// refresh makes every write visible to counts and scans.
func (b *nightlyBench) refresh() {
	for _, c := range clusterNames {
		if status, body := indexerHTTP(b.t, "POST", clusterURLs[c]+"/"+b.r.index+"/_refresh", nil); status != 200 {
			b.t.Fatalf("refresh %s: %d %s", c, status, body)
		}
	}
}

// nightlyRun is what one `wye nightly` process did.
type nightlyRun struct {
	elapsed     time.Duration
	cpu         time.Duration
	rss         int64 // bytes
	report      nightly.Report
	reportBytes int64
	idsBytes    int64
}

// nightly runs `wye nightly` with args, its report, CPU profile and output named label, and
// fails the test unless it exits 0.
func (b *nightlyBench) nightly(label string, args ...string) nightlyRun {
	b.t.Helper()
	report := filepath.Join(b.dir, label+".json")
	args = append([]string{"nightly", "-c", b.cfg, "--report", report, "--cpuprofile", filepath.Join(b.dir, label+".pprof")}, args...)
	cmd := exec.Command(wyeBinary(b.t), args...)
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_AMQP_PASSWORD="+amqpPass)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	must(b.t, cmd.Start())
	var hwm int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if v := vmHWM(status); v > hwm {
				hwm = v
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond): // a sampling period, not a synchronization
			}
		}
	})
	err := cmd.Wait()
	elapsed := time.Since(start)
	close(done)
	wg.Wait()
	must(b.t, os.WriteFile(filepath.Join(b.dir, label+".log"), out.Bytes(), 0o644))
	if err != nil {
		b.t.Fatalf("wye %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	// Not the rusage's ru_maxrss: Linux carries the forked copy of this test process (hundreds of
	// MB once the raw bodies are built) into the child's maxrss across exec. VmHWM is the exec'd
	// image's own; the samples miss at most the last 20 ms.
	res := nightlyRun{elapsed: elapsed, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), rss: hwm}
	raw, err := os.ReadFile(report)
	must(b.t, err)
	must(b.t, json.Unmarshal(raw, &res.report))
	res.reportBytes = int64(len(raw))
	for _, p := range res.report.IDsFiles {
		if fi, err := os.Stat(p); err == nil {
			res.idsBytes += fi.Size()
		}
	}
	return res
}

// vmHWM is the peak RSS in /proc/<pid>/status, in bytes; 0 once the process is gone.
func vmHWM(path string) int64 {
	status, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}

// check fails the test unless the run read every row and, on each cluster it covered, wrote
// exactly written documents, failed none and found every other one equal.
func (b *nightlyBench) check(label string, run nightlyRun, clusters int, written int64) {
	b.t.Helper()
	rep := run.report
	if rep.Status != "equal" || len(rep.Entities) != 1 || rep.Entities[0].Rows != int64(b.n) || len(rep.Entities[0].Clusters) != clusters {
		b.t.Fatalf("%s: report %+v", label, rep)
	}
	for _, c := range rep.Entities[0].Clusters {
		if c.Written != written || c.Failed != 0 || c.Equal != int64(b.n)-written {
			b.t.Fatalf("%s: cluster %s wrote %d (want %d), %d equal, %d failed", label, c.Cluster, c.Written, written, c.Equal, c.Failed)
		}
	}
}

// buildBodies reads es7's documents (what `wye nightly` wrote) and makes the raw _bulk bodies
// of the same documents, in key order, with their versions, nightly.DefaultChunkRows per body:
// the actions wye's writer sends (index, external version) into the concrete index.
func (b *nightlyBench) buildBodies() {
	type doc struct {
		id      int
		version int64
		source  []byte
	}
	var docs []doc
	err := b.clients["es7"].Scan(context.Background(), b.r.index, nightly.DefaultScanPage, true, func(hits []cluster.Hit) error {
		for _, h := range hits {
			id, err := strconv.Atoi(h.ID)
			if err != nil {
				return err
			}
			docs = append(docs, doc{id, h.Version, h.Source})
		}
		return nil
	})
	must(b.t, err)
	if len(docs) != b.n {
		b.t.Fatalf("es7 holds %d documents after the load, want %d", len(docs), b.n)
	}
	slices.SortFunc(docs, func(x, y doc) int { return x.id - y.id })
	concrete := b.r.index + "_v1"
	b.bodies = nil
	for lo := 0; lo < len(docs); lo += nightly.DefaultChunkRows {
		var body []byte
		for _, d := range docs[lo:min(lo+nightly.DefaultChunkRows, len(docs))] {
			body = fmt.Appendf(body, `{"index":{"_index":%q,"_id":"%d","version":%d,"version_type":"external"}}`+"\n", concrete, d.id, d.version)
			body = append(body, d.source...)
			body = append(body, '\n')
		}
		b.bodies = append(b.bodies, body)
	}
}

// rawLoad sends the bodies to every cluster at once, one request in flight per cluster, and
// returns the time until the last cluster answered the last one.
func (b *nightlyBench) rawLoad() time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for _, name := range clusterNames {
		wg.Go(func() {
			for _, body := range b.bodies {
				items, err := b.clients[name].Bulk(context.Background(), body)
				if err != nil {
					b.t.Errorf("raw bulk %s: %v", name, err)
					return
				}
				for _, it := range items {
					if it.Class != cluster.OK {
						b.t.Errorf("raw bulk %s: %+v", name, it)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if b.t.Failed() {
		b.t.FailNow()
	}
	return time.Since(start)
}

// mysqlScan reads the entity's rows with the statements wye's denormalizer issues per chunk,
// in key order, on one connection (interpolated arguments, as wye's source), each row's
// columns as raw bytes, nothing built. It returns the time and the root rows read.
func (b *nightlyBench) mysqlScan() (time.Duration, int) {
	cfg := mysqlDriverConfig(mysqlSrcUser, mysqlSrcPass, b.r.db)
	cfg.InterpolateParams = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	must(b.t, err)
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	must(b.t, err)
	defer conn.Close()
	must(b.t, conn.PingContext(ctx))

	// query runs q and returns the values of the columns at pick, as text.
	query := func(q string, args []any, pick ...int) [][]string {
		rows, err := conn.QueryContext(ctx, q, args...)
		must(b.t, err)
		defer rows.Close()
		cols, _ := rows.Columns()
		raw := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range raw {
			dest[i] = &raw[i]
		}
		out := make([][]string, len(pick))
		for rows.Next() {
			must(b.t, rows.Scan(dest...))
			for i, c := range pick {
				if raw[c] != nil {
					out[i] = append(out[i], string(raw[c]))
				}
			}
		}
		must(b.t, rows.Err())
		return out
	}
	in := func(vals []string) (string, []any) {
		slices.Sort(vals)
		vals = slices.Compact(vals)
		args := make([]any, len(vals))
		for i, v := range vals {
			args[i], _ = strconv.ParseInt(v, 10, 64)
		}
		return strings.TrimSuffix(strings.Repeat("?,", len(vals)), ","), args
	}
	start := time.Now()
	after, total := int64(0), 0
	for {
		root := query("SELECT `id`,`title`,`channel_id`,`duration_s`,`rating`,`code`,`updated_at` FROM `programs` WHERE `id` > ? ORDER BY `id` LIMIT "+
			strconv.Itoa(nightly.DefaultChunkRows), []any{after}, 0, 2)
		ids, channels := root[0], root[1]
		total += len(ids)
		if len(ids) == 0 {
			break
		}
		if len(channels) > 0 {
			marks, args := in(channels)
			nets := query("SELECT `id`,`name`,`network_id` FROM `channels` WHERE `id` IN ("+marks+")", args, 2)[0]
			if len(nets) > 0 {
				marks, args := in(nets)
				query("SELECT `id`,`name` FROM `networks` WHERE `id` IN ("+marks+")", args)
			}
		}
		marks, args := in(slices.Clone(ids))
		query("SELECT `id`,`number`,`title`,`program_id` FROM `episodes` WHERE `program_id` IN ("+marks+")", args)
		tags := query("SELECT `program_id`,`tag_id` FROM `program_tags` WHERE `program_id` IN ("+marks+")", args, 1)[0]
		if len(tags) > 0 {
			marks, args := in(tags)
			query("SELECT `id`,`name` FROM `tags` WHERE `id` IN ("+marks+")", args)
		}
		after, _ = strconv.ParseInt(ids[len(ids)-1], 10, 64)
		if len(ids) < nightly.DefaultChunkRows {
			break
		}
	}
	return time.Since(start), total
}

// clusterScan reads every document of es7 with its _source, as one scan of the resync would.
func (b *nightlyBench) clusterScan() (time.Duration, int) {
	start := time.Now()
	n := 0
	must(b.t, b.clients["es7"].Scan(context.Background(), b.r.index, nightly.DefaultScanPage, true, func(hits []cluster.Hit) error {
		n += len(hits)
		return nil
	}))
	return time.Since(start), n
}

// nightlyRound is one round's figures.
type nightlyRound struct {
	load, resync           nightlyRun
	raw, mysql, scan       time.Duration
	loadFirst, resyncFirst string // who went first
}

// run measures rounds alternating rounds and returns the table and the best (lowest) peak RSS
// of the initial load.
func (b *nightlyBench) run(rounds int) (string, int64) {
	t, n := b.t, float64(b.n)
	es7 := b.r.names["es7"]
	var rs []nightlyRound
	for round := range rounds {
		var r nightlyRound
		wyeLoad := func() {
			b.fresh()
			settle(t, b.r.index)
			r.load = b.nightly(fmt.Sprintf("load-%d", round))
			b.check("load", r.load, 3, int64(b.n))
			if b.bodies == nil {
				b.refresh()
				b.buildBodies()
			}
		}
		rawLoad := func() {
			b.fresh()
			settle(t, b.r.index)
			r.raw = b.rawLoad()
		}
		// The first round starts with wye: the raw bodies are the documents it wrote.
		if round%2 == 0 {
			r.loadFirst = "wye"
			wyeLoad()
			rawLoad()
		} else {
			r.loadFirst = "raw"
			rawLoad()
			wyeLoad()
		}
		b.refresh() // every cluster equals MySQL, its documents visible to counts and scans
		wyeResync := func() {
			settle(t, b.r.index)
			r.resync = b.nightly(fmt.Sprintf("resync-%d", round), "--clusters", es7)
			b.check("resync", r.resync, 1, 0)
		}
		bare := func() {
			settle(t, b.r.index)
			var rows, docs int
			r.mysql, rows = b.mysqlScan()
			r.scan, docs = b.clusterScan()
			if rows != b.n || docs != b.n {
				t.Fatalf("bare scan read %d rows and %d documents, want %d", rows, docs, b.n)
			}
		}
		if round%2 == 0 {
			r.resyncFirst = "wye"
			wyeResync()
			bare()
		} else {
			r.resyncFirst = "bare"
			bare()
			wyeResync()
		}
		t.Logf("round %d: load wye %.0f docs/s (%v), raw %.0f docs/s (%v); resync wye %v, bare %v (MySQL %v + es7 %v); peak RSS load %.1f MB, resync %.1f MB",
			round+1, n/r.load.elapsed.Seconds(), r.load.elapsed.Round(time.Millisecond), n/r.raw.Seconds(), r.raw.Round(time.Millisecond),
			r.resync.elapsed.Round(time.Millisecond), (r.mysql + r.scan).Round(time.Millisecond), r.mysql.Round(time.Millisecond),
			r.scan.Round(time.Millisecond), mb(r.load.rss), mb(r.resync.rss))
		rs = append(rs, r)
	}

	var tb strings.Builder
	fmt.Fprintf(&tb, "== %d programs (%d episodes, %d tag links); chunks of %d; %d alternating rounds; best = fastest round\n",
		b.n, b.counts["episodes"], b.counts["program_tags"], nightly.DefaultChunkRows, rounds)
	row := func(name string, f func(nightlyRound) float64, format string, best func(...float64) float64, note string) {
		var vals []float64
		fmt.Fprintf(&tb, "%-44s", name)
		for _, r := range rs {
			v := f(r)
			vals = append(vals, v)
			fmt.Fprintf(&tb, " "+format, v)
		}
		if best != nil {
			fmt.Fprintf(&tb, "  | "+format, best(vals...))
		} else {
			fmt.Fprintf(&tb, "  | %10s", "")
		}
		fmt.Fprintf(&tb, "  %s\n", note)
	}
	fmt.Fprintf(&tb, "%-44s", "")
	for i := range rs {
		fmt.Fprintf(&tb, " %10s", fmt.Sprintf("round %d", i+1))
	}
	fmt.Fprintf(&tb, "  | %10s\n", "best")
	rate := func(d time.Duration) float64 { return n / d.Seconds() }
	secs := func(d time.Duration) float64 { return d.Seconds() }
	row("load: first", func(r nightlyRound) float64 { return map[string]float64{"wye": 1, "raw": 2}[r.loadFirst] }, "%10.0f", nil, "(1 wye, 2 raw)")
	row("load: wye nightly, 3 clusters (docs/s)", func(r nightlyRound) float64 { return rate(r.load.elapsed) }, "%10.0f", maxOf, "")
	row("load: raw _bulk, 3 clusters (docs/s)", func(r nightlyRound) float64 { return rate(r.raw) }, "%10.0f", maxOf, "")
	row("load: wye / raw", func(r nightlyRound) float64 { return rate(r.load.elapsed) / rate(r.raw) }, "%10.2f", nil,
		fmt.Sprintf("best/best %.2f (target >= 0.8)", bestOf(rs, func(r nightlyRound) float64 { return rate(r.load.elapsed) }, maxOf)/
			bestOf(rs, func(r nightlyRound) float64 { return rate(r.raw) }, maxOf)))
	row("load: wye CPU (s per 1000 docs)", func(r nightlyRound) float64 { return r.load.cpu.Seconds() * 1000 / n }, "%10.3f", minOf, "")
	row("load: wye peak RSS (MB)", func(r nightlyRound) float64 { return mb(r.load.rss) }, "%10.1f", minOf, "")
	row("load: report (bytes)", func(r nightlyRound) float64 { return float64(r.load.reportBytes) }, "%10.0f", minOf, "(target < 20 KB at 1M rows)")
	row("load: id list .ids.gz (bytes)", func(r nightlyRound) float64 { return float64(r.load.idsBytes) }, "%10.0f", minOf, "")
	row("resync es7: first", func(r nightlyRound) float64 { return map[string]float64{"wye": 1, "bare": 2}[r.resyncFirst] }, "%10.0f", nil, "(1 wye, 2 bare)")
	row("resync es7: wye nightly --clusters es7 (s)", func(r nightlyRound) float64 { return secs(r.resync.elapsed) }, "%10.2f", minOf, "")
	row("resync es7: bare MySQL scan (s)", func(r nightlyRound) float64 { return secs(r.mysql) }, "%10.2f", minOf, "")
	row("resync es7: bare es7 scan, _source (s)", func(r nightlyRound) float64 { return secs(r.scan) }, "%10.2f", minOf, "")
	row("resync es7: bare total (s)", func(r nightlyRound) float64 { return secs(r.mysql + r.scan) }, "%10.2f", minOf, "")
	row("resync es7: wye / bare", func(r nightlyRound) float64 { return secs(r.resync.elapsed) / secs(r.mysql+r.scan) }, "%10.2f", nil,
		fmt.Sprintf("best/best %.2f (target <= 1.3)", bestOf(rs, func(r nightlyRound) float64 { return secs(r.resync.elapsed) }, minOf)/
			bestOf(rs, func(r nightlyRound) float64 { return secs(r.mysql + r.scan) }, minOf)))
	row("resync es7: wye CPU (s per 1000 docs)", func(r nightlyRound) float64 { return r.resync.cpu.Seconds() * 1000 / n }, "%10.3f", minOf, "")
	row("resync es7: wye peak RSS (MB)", func(r nightlyRound) float64 { return mb(r.resync.rss) }, "%10.1f", minOf, "")
	row("resync es7: report (bytes)", func(r nightlyRound) float64 { return float64(r.resync.reportBytes) }, "%10.0f", minOf, "")

	for _, phase := range []string{"load", "resync"} {
		var files []string
		for i := range rs {
			files = append(files, filepath.Join(b.dir, fmt.Sprintf("%s-%d.pprof", phase, i)))
		}
		out, err := exec.Command("go", append([]string{"tool", "pprof", "-top", "-nodecount=15"}, files...)...).CombinedOutput()
		if err != nil {
			t.Errorf("go tool pprof %s: %v\n%s", phase, err, out)
		}
		fmt.Fprintf(&tb, "-- CPU profile of wye nightly, %s phase, %d rounds merged (%s-*.pprof):\n%s", phase, len(rs), filepath.Join(b.dir, phase), out)
	}
	return tb.String(), int64(bestOf(rs, func(r nightlyRound) float64 { return float64(r.load.rss) }, minOf))
}

func bestOf(rs []nightlyRound, f func(nightlyRound) float64, best func(...float64) float64) float64 {
	var vals []float64
	for _, r := range rs {
		vals = append(vals, f(r))
	}
	return best(vals...)
}

func maxOf(v ...float64) float64 { return slices.Max(v) }
func minOf(v ...float64) float64 { return slices.Min(v) }
func mb(b int64) float64         { return float64(b) / (1 << 20) }

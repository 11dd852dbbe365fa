//go:build bench

package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/indexer/consumer"
)

// TestEndToEndBenchmark measures what a user sees: a change committed in MariaDB until its
// document is written on every cluster, and what `wye run` costs per change on the way. It runs
// only with -tags bench (`make bench-e2e`): it takes minutes and asserts nothing about
// speed (rates on a shared host are noise-bound); it fails only when wye does not deliver.
//
// For each entity (flat: one table, every column, into es7; catalog: the sample entity into
// es7, es8 and os2) and each binary (this tree, and the one built from WYE_BENCH_BASELINE, a
// git ref), in alternating rounds:
//   - drain: WYE_BENCH_DRAIN row changes (transactions of 1-3 rows; 50,000 as in the issue's
//     figures, so that wye's start-up is a small part of the CPU) committed while wye is
//     stopped, then `wye run` started; changes/s until the last change is on every cluster.
//   - live: `wye run` running, a paced workload at each of WYE_BENCH_RATES changes/s for
//     WYE_BENCH_LIVE; lag from commit to written, sampled with marker rows every 100 ms.
//
// wye's CPU (utime+stime) and peak RSS (VmHWM) come from /proc of the wye process. Lag is
// measured to the master's realtime GET (the _bulk answered); a search sees the document up
// to index.refresh_interval later (1s, the engines' default, on these indices).
// WYE_BENCH_CPUPROFILE=<dir> writes a CPU profile of each phase of each binary that has
// `wye run --cpuprofile`. WYE_BENCH_LOG=<level> runs wye at that log level (warn otherwise)
// and logs its output of each drain, e.g. to read where its start-up goes.
// WYE_BENCH_INDEXER="batch_size: 8192, ..." adds indexer.* keys to the tree's binary's
// configuration only: a tuning measured against the baseline (or the same tree as baseline).
func TestEndToEndBenchmark(t *testing.T) {
	opt := e2eBenchOptions{
		drain:    envInt(t, "WYE_BENCH_DRAIN", 50000),
		live:     benchEnvDuration(t, "WYE_BENCH_LIVE", 15*time.Second),
		rounds:   envInt(t, "WYE_BENCH_ROUNDS", 3),
		rows:     envInt(t, "WYE_BENCH_ROWS", 4688),
		profiles: os.Getenv("WYE_BENCH_CPUPROFILE"),
	}
	for _, s := range strings.Split(env("WYE_BENCH_RATES", "3000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			t.Fatalf("WYE_BENCH_RATES=%q: want positive integers, comma-separated", s)
		}
		opt.rates = append(opt.rates, n)
	}
	bins := []benchBinary{{name: "new", path: wyeBinary(t)}}
	if keys := os.Getenv("WYE_BENCH_INDEXER"); keys != "" {
		bins[0].name, bins[0].indexerKeys = "new{"+keys+"}", ", "+keys
	}
	if ref := os.Getenv("WYE_BENCH_BASELINE"); ref != "" {
		bins = append([]benchBinary{{name: "base(" + ref + ")", path: buildAt(t, ref)}}, bins...)
	}
	for i := range bins {
		help, _ := exec.Command(bins[i].path, "run", "--help").CombinedOutput()
		bins[i].profiles = opt.profiles != "" && strings.Contains(string(help), "--cpuprofile")
	}
	entities := strings.Split(env("WYE_BENCH_ENTITIES", "flat,catalog"), ",")
	var report []string
	for _, kind := range entities {
		t.Run(kind, func(t *testing.T) {
			w := newBenchWorld(t, strings.TrimSpace(kind), opt.rows)
			report = append(report, w.run(bins, opt)...)
		})
	}
	t.Logf("end-to-end benchmark, %d CPUs for everything; %d rounds, the binaries alternating; median of the rounds, ratio new/base:\n%s",
		nproc(), opt.rounds, strings.Join(report, "\n"))
}

type e2eBenchOptions struct {
	drain, rounds, rows int
	live                time.Duration
	rates               []int
	profiles            string
}

type benchBinary struct {
	name, path string
	profiles   bool // the binary has `wye run --cpuprofile`
	// indexerKeys are more indexer.* keys for this binary's config, as ", key: value, ..."
	// (WYE_BENCH_INDEXER, for the tree's binary only: a tuning tried against the baseline).
	indexerKeys string
}

// buildAt builds cmd/wye as of the git ref into a temporary directory: `git archive` of the
// ref (the work tree and the repository's state are left alone), then go build.
func buildAt(t *testing.T, ref string) string {
	dir := t.TempDir()
	root, err := filepath.Abs("..")
	must(t, err)
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", ref)
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	must(t, err)
	untar.Stdin = pipe
	var errs bytes.Buffer
	archive.Stderr, untar.Stderr = &errs, &errs
	must(t, untar.Start())
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", ref, err, errs.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("untar %s: %v\n%s", ref, err, errs.String())
	}
	bin := filepath.Join(dir, "wye")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wye")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", ref, err, out)
	}
	return bin
}

// benchWorld is one entity's private world: database, index per cluster, exchange and queue,
// reader name (shared by the binaries: each resumes where the previous run stopped), and the
// workload that changes it.
type benchWorld struct {
	t        *testing.T
	kind     string
	id       string
	db       string
	index    string
	exchange string
	queue    string
	app      *sql.DB
	clusters []string // es7 (the master) first
	names    map[string]string
	rows     int
	// markers are the rows whose mark column only the markers change (ids 1..markerRows).
	seq       int64 // the last mark written
	rnd       *rand.Rand
	changes   int64 // row changes committed so far
	cfgByProf map[string]string
}

const benchMarkerRows = 200

func newBenchWorld(t *testing.T, kind string, rows int) *benchWorld {
	requireReachable(t, "RabbitMQ", amqpAddr(t))
	id := fmt.Sprintf("%d%03d", time.Now().Unix()%100000, rand.IntN(1000))
	w := &benchWorld{t: t, kind: kind, id: id, db: "wye_bench_" + id, index: "bench_" + kind + "_" + id,
		exchange: "wye.bench.changes." + id, queue: "wye.bench.index." + id, names: map[string]string{},
		rows: max(rows, 2*benchMarkerRows), rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	switch kind {
	case "flat":
		w.clusters = []string{"es7"}
	case "catalog":
		w.clusters = clusterNames
	default:
		t.Fatalf("WYE_BENCH_ENTITIES: unknown entity %q (flat, catalog)", kind)
	}
	for _, c := range w.clusters {
		w.names[c] = c + "_bench_" + id
	}
	root := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	if _, err := root.Exec("CREATE DATABASE " + w.db + " CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS " + w.db) })
	w.app = openMySQL(t, mysqlAppUser, mysqlAppPass, w.db)
	w.app.SetMaxOpenConns(8)
	w.app.SetMaxIdleConns(8)
	ctl := openMySQL(t, "wye", "wye-control", "wye")
	t.Cleanup(func() {
		ctl.Exec("DELETE FROM cdc_checkpoint WHERE name = ?", "bench_"+id)
		for _, n := range w.names {
			ctl.Exec("DELETE FROM cluster_roles WHERE cluster = ?", n)
			ctl.Exec("DELETE FROM repair_ledger WHERE cluster = ?", n)
		}
	})
	w.createSchema()
	w.createIndices()
	t.Cleanup(func() { deleteBenchQueues(w.exchange, w.queue) })
	return w
}

func (w *benchWorld) exec(q string, args ...any) {
	w.t.Helper()
	if _, err := w.app.Exec(q, args...); err != nil {
		w.t.Fatalf("%.120s: %v", q, err)
	}
}

// createSchema creates and seeds the tables (before any reader: the seed is not a change).
func (w *benchWorld) createSchema() {
	switch w.kind {
	case "flat":
		w.exec(`CREATE TABLE items (id INT NOT NULL PRIMARY KEY, title VARCHAR(200) NOT NULL, code VARCHAR(16) NOT NULL,
		  qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, active TINYINT NOT NULL, mark BIGINT NOT NULL DEFAULT 0,
		  note VARCHAR(255) NULL, created_at DATETIME NOT NULL, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB`)
		w.seedRows("items", w.rows, func(i int) string {
			return fmt.Sprintf("(%d, 'item number %d of the flat bench', 'C%06d', %d, %d.%02d, %d, 0, 'a note about item %d', NOW(), NOW(6))",
				i, i, i, i%1000, i%5000, i%100, i%2, i)
		})
	case "catalog":
		schema, err := os.ReadFile("../examples/catalog/schema.sql")
		must(w.t, err)
		db := openMySQL(w.t, mysqlAppUser, mysqlAppPass, w.db) // multiStatements
		if _, err := db.Exec(string(schema)); err != nil {
			w.t.Fatalf("create catalog: %v", err)
		}
		w.seedRows("networks", 3, func(i int) string { return fmt.Sprintf("(%d, 'network %d')", i, i) })
		w.seedRows("channels", 20, func(i int) string { return fmt.Sprintf("(%d, 'channel %d', %d)", i, i, 1+i%3) })
		w.seedRows("tags", 30, func(i int) string { return fmt.Sprintf("(%d, 'tag %d')", i, i) })
		w.seedRows("programs", w.rows, func(i int) string {
			return fmt.Sprintf("(%d, 'program %d', %d, 0, %d.5, 'P%06d', NOW(), NULL)", i, i, 1+i%20, i%10, i)
		})
		w.seedRows("episodes", 2*w.rows, func(i int) string {
			return fmt.Sprintf("(%d, %d, %d, 'episode %d')", i, 1+(i-1)/2, 1+(i-1)%2, i)
		})
		w.seedRows("program_tags", 2*w.rows, func(i int) string {
			return fmt.Sprintf("(%d, %d)", 1+(i-1)/2, 1+(i*7)%30)
		})
	}
}

func (w *benchWorld) seedRows(table string, n int, row func(int) string) {
	for i := 1; i <= n; i += 1000 {
		var vals []string
		for j := i; j < i+1000 && j <= n; j++ {
			vals = append(vals, row(j))
		}
		w.exec("INSERT INTO " + table + " VALUES " + strings.Join(vals, ","))
	}
}

// createIndices creates the entity's index on each cluster: the flat one as is (dynamic
// mapping, written by name: index_targets alias), the catalog one as `wye mapping apply`
// lays it out (<index>_v1 behind the alias <index>).
func (w *benchWorld) createIndices() {
	for _, c := range w.clusters {
		base := clusterURL(w.t, c)
		concrete, body := w.index, []byte(`{"settings":{"index":{"number_of_shards":1,"number_of_replicas":0}}}`)
		if w.kind == "catalog" {
			concrete = w.index + "_v1"
			var err error
			body, err = os.ReadFile("../mappings/programs/v1/mapping.json")
			must(w.t, err)
		}
		if status, b := indexerHTTP(w.t, "PUT", base+"/"+concrete, body); status != 200 {
			w.t.Fatalf("create index on %s: %d %s", c, status, b)
		}
		w.t.Cleanup(func() { indexerHTTP(w.t, "DELETE", base+"/"+concrete, nil) })
		if w.kind == "catalog" {
			alias := []byte(`{"actions":[{"add":{"index":"` + concrete + `","alias":"` + w.index + `"}}]}`)
			if status, b := indexerHTTP(w.t, "POST", base+"/_aliases", alias); status != 200 {
				w.t.Fatalf("add alias on %s: %d %s", c, status, b)
			}
		}
	}
}

func deleteBenchQueues(exchange, queue string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		queues := []string{queue, queue + ".parked"}
		for _, d := range consumer.DefaultRetryDelays {
			queues = append(queues, queue+".retry."+d.String())
		}
		for _, q := range queues {
			ch.QueueDelete(q, false, false, false)
		}
		ch.ExchangeDelete(exchange, false, false)
	}
}

// config writes the wye.yaml of one run.
func (w *benchWorld) config(bin benchBinary, metrics string) string {
	u, _ := url.Parse(amqpURL)
	u.User = url.User(u.User.Username())
	var clusters strings.Builder
	for i, c := range w.clusters {
		role := "slave"
		if i == 0 {
			role = "master"
		}
		fmt.Fprintf(&clusters, "  - {name: %s, urls: [%q], role: %s, mapping: v1}\n", w.names[c], clusterURLs[c], role)
	}
	var entity, targets string
	switch w.kind {
	case "flat":
		entity = fmt.Sprintf("  - {name: item, index: %s, root: {table: %s.items, key: id}}\n", w.index, w.db)
		targets = "alias"
	case "catalog":
		b, err := os.ReadFile("../examples/catalog/entity.yaml")
		must(w.t, err)
		ent := strings.ReplaceAll(string(b), "catalog.", w.db+".")
		entity = indent(strings.Replace(ent, "index: programs", "index: "+w.index, 1))
		targets = "mapping"
	}
	cfg := fmt.Sprintf(`source: {flavor: mariadb, host: 127.0.0.1, port: 3306, user: %s, password_env: WYE_SOURCE_PASSWORD, server_id: %d}
control: {host: 127.0.0.1, port: 3306, user: wye, password_env: WYE_CONTROL_PASSWORD, database: wye}
amqp: {url: %q, password_env: WYE_AMQP_PASSWORD, exchange: %s, queue: %s, parked: %s.parked}
indexer: {index_targets: %s%s}
clusters:
%smetrics: {listen: %q}
log: {level: %s}
entities:
%s`, mysqlSrcUser, 7000+rand.IntN(2000), u.String(), w.exchange, w.queue, w.queue, targets, bin.indexerKeys, clusters.String(), metrics, env("WYE_BENCH_LOG", "warn"), entity)
	p := filepath.Join(w.t.TempDir(), "wye.yaml")
	must(w.t, os.WriteFile(p, []byte(cfg), 0o600))
	return p
}

// wyeRun is one `wye run` process of the benchmark.
type wyeRun struct {
	cmd     *exec.Cmd
	out     *lockedOutput
	metrics string
	done    chan struct{}
}

func (w *benchWorld) start(bin benchBinary, profile string) *wyeRun {
	w.t.Helper()
	metrics := freePort(w.t)
	args := []string{"run", "-c", w.config(bin, metrics), "--name", "bench_" + w.id}
	if profile != "" && bin.profiles {
		args = append(args, "--cpuprofile", profile)
	}
	cmd := exec.Command(bin.path, args...)
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_CONTROL_PASSWORD=wye-control", "WYE_AMQP_PASSWORD="+amqpPass)
	r := &wyeRun{cmd: cmd, out: &lockedOutput{}, metrics: metrics, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	must(w.t, cmd.Start())
	go func() { cmd.Wait(); close(r.done) }()
	w.t.Cleanup(func() { r.stop(w.t) })
	return r
}

// usage is the CPU time (user+system) and peak RSS of the process so far.
func (r *wyeRun) usage(t *testing.T) (time.Duration, int64) {
	pid := r.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("wye exited: %v\n%s", err, r.out.String())
	}
	var cpu time.Duration
	if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 12 {
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		cpu = time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
	}
	var hwm int64
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &hwm) // kB
		}
	}
	return cpu, hwm * 1024
}

// stop ends the process with SIGTERM (it drains and saves its checkpoint), SIGKILL after 30 s.
func (r *wyeRun) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Errorf("wye did not stop within 30 s of SIGTERM")
		r.cmd.Process.Kill()
		<-r.done
	}
}

// change is one transaction of the workload: its statements in one round trip.
type benchTxn struct {
	sql  string
	rows int
	mark int64 // > 0: the transaction is a marker
	row  int   // the marker's row id
}

// next is a transaction of 1-3 row changes of ordinary rows.
func (w *benchWorld) next() benchTxn {
	n := 1 + w.rnd.IntN(3)
	var sb strings.Builder
	sb.WriteString("BEGIN;")
	for range n {
		id := benchMarkerRows + 1 + w.rnd.IntN(w.rows-benchMarkerRows)
		switch {
		case w.kind == "flat":
			fmt.Fprintf(&sb, "UPDATE items SET qty = qty + 1, note = 'changed %d', updated_at = NOW(6) WHERE id = %d;", w.rnd.Int64(), id)
		case w.rnd.IntN(2) == 0:
			fmt.Fprintf(&sb, "UPDATE programs SET rating = %d.5, title = 'program %d rev %d', updated_at = NOW() WHERE id = %d;", w.rnd.IntN(10), id, w.rnd.IntN(1000), id)
		default:
			fmt.Fprintf(&sb, "UPDATE episodes SET title = 'episode rev %d' WHERE id = %d;", w.rnd.IntN(1_000_000), 2*id-w.rnd.IntN(2))
		}
	}
	sb.WriteString("COMMIT")
	return benchTxn{sql: sb.String(), rows: n}
}

// marker is a one-row transaction that sets the next mark on a marker row.
func (w *benchWorld) marker() benchTxn {
	w.seq++
	row := 1 + int(w.seq%benchMarkerRows)
	q := fmt.Sprintf("UPDATE items SET mark = %d WHERE id = %d", w.seq, row)
	if w.kind == "catalog" {
		q = fmt.Sprintf("UPDATE programs SET duration_s = %d WHERE id = %d", w.seq, row)
	}
	return benchTxn{sql: q, rows: 1, mark: w.seq, row: row}
}

func (w *benchWorld) markField() string {
	if w.kind == "catalog" {
		return "duration_s"
	}
	return "mark"
}

// commit runs changes on parallel connections; committed reports each marker's commit time.
func (w *benchWorld) commit(ctx context.Context, changes <-chan benchTxn, committed func(benchTxn, time.Time)) {
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for c := range changes {
				var err error
				for range 10 { // a deadlock between two random transactions rolls one back: again
					if _, err = w.app.ExecContext(ctx, c.sql); !isDeadlock(err) {
						break
					}
				}
				if err != nil {
					w.t.Errorf("workload: %v", err)
					continue
				}
				if committed != nil {
					committed(c, time.Now())
				}
			}
		})
	}
	wg.Wait()
}

// isDeadlock reports MySQL's deadlock and lock wait timeout errors, after which the
// transaction was rolled back and can run again.
func isDeadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// marks reads the mark field of the given ids from a cluster with one realtime _mget.
func (w *benchWorld) marks(cluster string, ids []int) (map[int]int64, error) {
	var docs []string
	for _, id := range ids {
		docs = append(docs, fmt.Sprintf(`{"_id":"%d"}`, id))
	}
	body := `{"docs":[` + strings.Join(docs, ",") + `]}`
	res, err := benchHTTP.Post(clusterURLs[cluster]+"/"+w.index+"/_mget?_source_includes="+w.markField(), "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var out struct {
		Docs []struct {
			ID     string                     `json:"_id"`
			Found  bool                       `json:"found"`
			Source map[string]json.RawMessage `json:"_source"`
		} `json:"docs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return nil, err
	}
	m := map[int]int64{}
	for _, d := range out.Docs {
		id, _ := strconv.Atoi(d.ID)
		v, _ := strconv.ParseInt(strings.Trim(string(d.Source[w.markField()]), `"`), 10, 64)
		m[id] = v
	}
	return m, nil
}

var benchHTTP = &http.Client{Timeout: 10 * time.Second}

// waitMark waits until mark c is on every cluster and returns when it was first seen there.
func (w *benchWorld) waitMark(c benchTxn, timeout time.Duration, r *wyeRun) time.Time {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	pending := slices.Clone(w.clusters)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			w.t.Fatalf("mark %d not on %v within %v\nwye output:\n%s", c.mark, pending, timeout, r.out.String())
		}
		select {
		case <-r.done: // a binary that cannot run here (a newer control schema) fails at once
			w.t.Fatalf("wye exited before mark %d was on %v\nwye output:\n%s", c.mark, pending, r.out.String())
		default:
		}
		pending = slices.DeleteFunc(pending, func(cl string) bool {
			m, err := w.marks(cl, []int{c.row})
			return err == nil && m[c.row] >= c.mark
		})
		if len(pending) > 0 {
			time.Sleep(5 * time.Millisecond) // poll interval: the resolution of the figure
		}
	}
	return time.Now()
}

// phase is one measured run of one binary.
type benchPhase struct {
	changes int64
	elapsed time.Duration
	cpu     time.Duration
	rss     int64
	lags    []time.Duration // live: per marker, commit to written on the master
	tail    time.Duration   // live: the last commit until it is on every cluster
	batches string          // the indexer's batches: count, mean documents, mean seconds
	ready   time.Duration   // drain: the process's start until its /readyz first answered 200
}

// readyAfter polls r's /readyz every 10 ms and sends how long after start it first answered
// 200 (0 if the process ended first). The start-up is part of the drain figure: a restart
// that takes long delays every change of the backlog.
func (r *wyeRun) readyAfter(start time.Time) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		for {
			if readyz(r.metrics) == nil {
				out <- time.Since(start)
				return
			}
			select {
			case <-r.done:
				out <- 0
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return out
}

// allAcked waits until the indexer has acked every message cdc published (each batch is acked
// after its master write): with batches in flight the batch of the last change can be written
// before the ones before it have been answered.
func (w *benchWorld) allAcked(r *wyeRun, timeout time.Duration) time.Time {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		published := scrapeMetric(r.metrics, "wye_cdc_confirm_seconds_count")
		acked := scrapeMetric(r.metrics, "wye_indexer_messages_total", "result", "acked")
		if published > 0 && acked >= published {
			return time.Now()
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the indexer acked %.0f of %.0f published messages within %v\nwye output:\n%s", acked, published, timeout, r.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// batches summarizes the indexer's batches from its /metrics (for reading a profile).
func (r *wyeRun) batches() string {
	res, err := benchHTTP.Get("http://" + r.metrics + "/metrics")
	if err != nil {
		return "no metrics"
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	v := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{") // summed over the labels
		if ok && !strings.HasPrefix(name, "#") {
			f, _ := strconv.ParseFloat(val, 64)
			v[name] += f
		}
	}
	n := v["wye_indexer_batch_seconds_count"]
	bulks := v["wye_indexer_bulk_seconds_count"]
	return fmt.Sprintf("%.0f batches of %.0f docs, %.0f ms each (_bulk %.0f ms); %.0f changes in %.0f messages",
		n, v["wye_indexer_batch_documents_sum"]/max(n, 1), 1000*v["wye_indexer_batch_seconds_sum"]/max(n, 1),
		1000*v["wye_indexer_bulk_seconds_sum"]/max(bulks, 1), v["wye_cdc_published_total"], v["wye_cdc_confirm_seconds_count"])
}

func (p benchPhase) rate() float64         { return float64(p.changes) / p.elapsed.Seconds() }
func (p benchPhase) cpuPer1000() float64   { return p.cpu.Seconds() * 1000 / float64(p.changes) }
func (p benchPhase) rssMB() float64        { return float64(p.rss) / (1 << 20) }
func (p benchPhase) lag(q float64) float64 { return lagPercentile(p.lags, q).Seconds() * 1000 }

func lagPercentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// warm starts wye once with a fresh reader name (its checkpoint: the current position), writes
// every document once, and stops it: later phases update existing documents.
func (w *benchWorld) warm(bin benchBinary) {
	r := w.start(bin, "")
	eventually(w.t, 60*time.Second, func() error {
		if err := readyz(r.metrics); err != nil {
			return err
		}
		if !strings.Contains(r.out.String(), "starting at the source's current binlog position") {
			return fmt.Errorf("the reader has not logged its start position yet")
		}
		return nil
	})
	time.Sleep(time.Second) // the reader must be past its start position before the seed touches
	table, col := "items", "qty"
	if w.kind == "catalog" {
		table, col = "programs", "duration_s"
	}
	for i := 1; i <= w.rows; i += 1000 {
		w.exec(fmt.Sprintf("UPDATE %s SET %s = %s WHERE id BETWEEN %d AND %d", table, col, col, i, i+999))
		w.exec(fmt.Sprintf("UPDATE %s SET updated_at = updated_at + INTERVAL 1 SECOND WHERE id BETWEEN %d AND %d", table, i, i+999))
	}
	m := w.marker()
	w.exec(m.sql)
	w.waitMark(m, 5*time.Minute, r)
	eventually(w.t, 2*time.Minute, func() error {
		n := w.count("es7")
		if n < w.rows {
			return fmt.Errorf("%d of %d documents", n, w.rows)
		}
		return nil
	})
	r.stop(w.t)
}

func (w *benchWorld) count(cluster string) int {
	res, err := benchHTTP.Get(clusterURLs[cluster] + "/" + w.index + "/_count")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	var c struct {
		Count int `json:"count"`
	}
	json.NewDecoder(res.Body).Decode(&c)
	return c.Count
}

// drain commits n row changes while wye is stopped, then starts it and measures until the
// last one is written on every cluster and every batch is acked (written to the master).
func (w *benchWorld) drain(bin benchBinary, n int, profile string) benchPhase {
	work := make(chan benchTxn, 256)
	go func() {
		defer close(work)
		for c := 0; c < n; {
			ch := w.next()
			c += ch.rows
			work <- ch
		}
	}()
	var mu sync.Mutex
	var rows int64
	w.commit(context.Background(), work, func(c benchTxn, _ time.Time) { mu.Lock(); rows += int64(c.rows); mu.Unlock() })
	last := w.marker()
	w.exec(last.sql)
	rows++
	quietHost(w.t)
	start := time.Now()
	r := w.start(bin, profile)
	ready := r.readyAfter(start)
	w.waitMark(last, 10*time.Minute, r)
	seen := w.allAcked(r, time.Minute)
	cpu, rss := r.usage(w.t)
	batches := r.batches()
	r.stop(w.t)
	if os.Getenv("WYE_BENCH_LOG") != "" {
		w.t.Logf("wye output of the drain (started %s):\n%s", start.Format("15:04:05.000"), r.out.String())
	}
	return benchPhase{changes: rows, elapsed: seen.Sub(start), cpu: cpu, rss: rss, batches: batches, ready: <-ready}
}

// live runs wye, then a paced workload at rate changes/s for d, markers every 100 ms among
// them; it measures from the workload's start until the last change is on every cluster.
func (w *benchWorld) live(bin benchBinary, rate int, d time.Duration, profile string) benchPhase {
	r := w.start(bin, profile)
	eventually(w.t, 60*time.Second, func() error { return readyz(r.metrics) })
	probe := w.marker() // the pipeline is warm and caught up
	w.exec(probe.sql)
	w.waitMark(probe, time.Minute, r)
	quietHost(w.t)

	type pending struct {
		c  benchTxn
		at time.Time
	}
	var mu sync.Mutex
	var outstanding []pending
	var lags []time.Duration
	var rows int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The poller reads every outstanding marker from the master with one _mget per round.
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		for ctx.Err() == nil {
			mu.Lock()
			ps := slices.Clone(outstanding)
			mu.Unlock()
			if len(ps) > 0 {
				var ids []int
				for _, p := range ps {
					ids = append(ids, p.c.row)
				}
				if m, err := w.marks(w.clusters[0], ids); err == nil {
					now := time.Now()
					mu.Lock()
					outstanding = slices.DeleteFunc(outstanding, func(p pending) bool {
						if m[p.c.row] >= p.c.mark {
							lags = append(lags, now.Sub(p.at))
							return true
						}
						return false
					})
					mu.Unlock()
				}
			}
			time.Sleep(10 * time.Millisecond) // the resolution of the lag; more often loads es7
		}
	}()

	before, _ := r.usage(w.t)
	busy0 := hostBusyTime()
	start := time.Now()
	work := make(chan benchTxn, 64)
	var last benchTxn
	go func() {
		defer close(work)
		next, nextMark := start, start
		for sent := 0; time.Since(start) < d; {
			time.Sleep(time.Until(next))
			c := w.next()
			if !time.Now().Before(nextMark) {
				c = w.marker()
				nextMark = nextMark.Add(100 * time.Millisecond)
				last = c
			}
			sent += c.rows
			work <- c
			next = start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second)))
		}
		last = w.marker()
		work <- last
	}()
	w.commit(ctx, work, func(c benchTxn, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		rows += int64(c.rows)
		if c.mark > 0 {
			outstanding = append(outstanding, pending{c, at})
		}
	})
	lastCommit := time.Now()
	seen := w.waitMark(last, 5*time.Minute, r)
	after, rss := r.usage(w.t)
	host := float64(hostBusyTime()-busy0) / float64(time.Since(start)) / float64(nproc())
	eventually(w.t, time.Minute, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(outstanding) > 0 {
			return fmt.Errorf("%d markers not seen yet", len(outstanding))
		}
		return nil
	})
	cancel()
	<-pollDone
	batches := r.batches()
	r.stop(w.t)
	return benchPhase{changes: rows, elapsed: seen.Sub(start), cpu: after - before, rss: rss, lags: lags, tail: seen.Sub(lastCommit),
		batches: fmt.Sprintf("%s; host %.0f%% busy", batches, 100*host)}
}

// run measures every phase of every binary in alternating rounds and returns report lines.
func (w *benchWorld) run(bins []benchBinary, opt e2eBenchOptions) []string {
	w.warm(bins[len(bins)-1])
	type key struct{ benchPhase, bin string }
	results := map[key][]benchPhase{}
	var phases []string
	add := func(ph, bin string, p benchPhase) {
		if !slices.Contains(phases, ph) {
			phases = append(phases, ph)
		}
		results[key{ph, bin}] = append(results[key{ph, bin}], p)
		w.t.Logf("round %d %s %s %s: %s", len(results[key{ph, bin}]), w.kind, ph, bin, p.String())
	}
	profile := func(bin benchBinary, ph string, round int) string {
		if opt.profiles == "" {
			return ""
		}
		name := strings.NewReplacer("(", "-", ")", "", "/", "-", "{", "-", "}", "", ": ", "=", ", ", "-", " ", "").Replace(bin.name)
		return filepath.Join(opt.profiles, fmt.Sprintf("%s-%s-%s-%d.pprof", w.kind, ph, name, round))
	}
	for round := range opt.rounds {
		// Alternate which binary goes first, so neither always follows the other's leftovers.
		order := slices.Clone(bins)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, bin := range order {
			add("drain", bin.name, w.drain(bin, opt.drain, profile(bin, "drain", round)))
			for _, rate := range opt.rates {
				ph := fmt.Sprintf("live@%d", rate)
				add(ph, bin.name, w.live(bin, rate, opt.live, profile(bin, ph, round)))
			}
		}
	}
	var lines []string
	lines = append(lines, fmt.Sprintf("== %s entity into %s (%d rows; drain %d changes; live %v)", w.kind, strings.Join(w.clusters, ","), w.rows, opt.drain, opt.live))
	for _, ph := range phases {
		var meds []phaseSummary
		for _, bin := range bins {
			s := summarizePhases(results[key{ph, bin.name}])
			meds = append(meds, s)
			lines = append(lines, fmt.Sprintf("%-10s %-16s %s", ph, bin.name, s.String()))
		}
		if len(bins) == 2 {
			b, n := meds[0], meds[1]
			lines = append(lines, fmt.Sprintf("%-10s %-16s changes/s x%.2f, CPU/1000 x%.2f, peak RSS x%.2f, lag p99 x%.2f",
				ph, "new/base", n.rate/b.rate, n.cpu/b.cpu, n.rss/b.rss, n.p99/max(b.p99, 1e-9)))
		}
	}
	return lines
}

func (p benchPhase) String() string {
	s := fmt.Sprintf("%d changes in %.2fs = %.0f/s, CPU %.3fs = %.4f s/1000 changes, peak RSS %.0f MB",
		p.changes, p.elapsed.Seconds(), p.rate(), p.cpu.Seconds(), p.cpuPer1000(), p.rssMB())
	if p.ready > 0 {
		s += fmt.Sprintf(", ready after %.0f ms", p.ready.Seconds()*1000)
	}
	if len(p.lags) > 0 {
		s += fmt.Sprintf(", lag p50 %.0f ms p99 %.0f ms max %.0f ms (%d markers), last commit to every cluster %.0f ms",
			p.lag(0.5), p.lag(0.99), p.lag(1), len(p.lags), p.tail.Seconds()*1000)
	}
	return s + "; " + p.batches
}

// phaseSummary is the median of each figure over the rounds.
type phaseSummary struct {
	rate, cpu, rss, p50, p99, max, tail float64
	rounds                              []string
}

func summarizePhases(ps []benchPhase) phaseSummary {
	med := func(f func(benchPhase) float64) float64 {
		var v []float64
		for _, p := range ps {
			v = append(v, f(p))
		}
		slices.Sort(v)
		if len(v) == 0 {
			return 0
		}
		return v[len(v)/2]
	}
	s := phaseSummary{rate: med(benchPhase.rate), cpu: med(benchPhase.cpuPer1000), rss: med(benchPhase.rssMB),
		p50: med(func(p benchPhase) float64 { return p.lag(0.5) }), p99: med(func(p benchPhase) float64 { return p.lag(0.99) }),
		max: med(func(p benchPhase) float64 { return p.lag(1) }), tail: med(func(p benchPhase) float64 { return p.tail.Seconds() * 1000 })}
	for _, p := range ps {
		s.rounds = append(s.rounds, fmt.Sprintf("%.0f/s %.4f", p.rate(), p.cpuPer1000()))
	}
	return s
}

func (s phaseSummary) String() string {
	out := fmt.Sprintf("%7.0f changes/s  CPU %.4f s/1000 changes  peak RSS %5.1f MB", s.rate, s.cpu, s.rss)
	if s.p99 > 0 {
		out += fmt.Sprintf("  lag p50 %4.0f p99 %4.0f max %4.0f ms, tail %4.0f ms", s.p50, s.p99, s.max, s.tail)
	}
	return out + "  (rounds: " + strings.Join(s.rounds, ", ") + ")"
}

func envInt(t *testing.T, key string, def int) int {
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", key, s)
	}
	return n
}

func benchEnvDuration(t *testing.T, key string, def time.Duration) time.Duration {
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", key, s)
	}
	return d
}

func nproc() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// Command drill runs the migration wye exists for, end to end on the local stack, under a
// workload that never stops (issue 17; README, "The migration drill"):
//
//  1. es7 alone, as the master: `wye mapping apply`, `wye run`, the workload, `wye nightly`
//     (the initial load of a catalog wye has never seen).
//  2. es8 and os2 join as slaves: `wye mapping apply`, `wye run` restarted, `wye nightly
//     --clusters es8,os2`.
//  3. `wye diff docs` and `wye diff queries` (examples/catalog/queries.yaml).
//  4. A mapping bump: v2 with one field added (the entity emits it), `wye mapping apply`,
//     `wye nightly --into-new-index`, `wye mapping switch`, `wye mapping gc`.
//  5. `wye promote es8`; os2 cut off for --outage and `wye repair os2`; `wye promote es7`
//     (the rollback); `wye promote os2`.
//  6. The workload stops, the stream drains, every cluster equals MySQL.
//
// After every step: `wye diff docs --against-mysql` equal, nothing parked, `wye status` exit 0.
// Every name (database, control schema, index, queues, reader) is this run's own, so the drill
// runs beside other users of the stack and twice in a row. Exit 0 only when every check passed.
//
//	go build -o bin/wye ./cmd/wye && go run ./examples/drill --wye bin/wye
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	_ "github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/wyehq/wye/examples/catalog/changes"
	"github.com/wyehq/wye/indexer/consumer"
)

// The local stack's accounts (e2e/stack/stack.sh); each can be overridden from the environment.
var (
	mysqlAddr  = env("WYE_DRILL_MYSQL", "127.0.0.1:3306")
	appUser    = env("WYE_DRILL_APP_USER", "wye_app")
	appPass    = env("WYE_DRILL_APP_PASSWORD", "wye-app")
	sourceUser = env("WYE_DRILL_SOURCE_USER", "wye_source")
	sourcePass = env("WYE_DRILL_SOURCE_PASSWORD", "wye-source")
	amqpURL    = env("WYE_DRILL_AMQP_URL", "amqp://wye:wye-amqp@127.0.0.1:5672/")
	clusterURL = map[string]string{
		"es7": env("WYE_DRILL_ES7", "http://127.0.0.1:9217"),
		"es8": env("WYE_DRILL_ES8", "http://127.0.0.1:9218"),
		"os2": env("WYE_DRILL_OS2", "http://127.0.0.1:9219"),
	}
)

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type options struct {
	wye      string
	repo     string
	programs int
	rate     int
	outage   time.Duration
	keep     bool
}

func main() {
	var o options
	flag.StringVar(&o.wye, "wye", "bin/wye", "the wye binary to drill")
	flag.StringVar(&o.repo, "repo", ".", "the wye repository (examples/catalog, mappings/programs/v1)")
	flag.IntVar(&o.programs, "programs", 2000, "programs in the catalog before wye sees it")
	flag.IntVar(&o.rate, "rate", 50, "workload changes per second, from step 1 to the end")
	flag.DurationVar(&o.outage, "outage", time.Minute, "how long os2 is cut off in step 5")
	flag.BoolVar(&o.keep, "keep", false, "leave the databases, indices, queues and files of the run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := newDrill(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "drill: %v\n", err)
		os.Exit(1)
	}
	ok := d.run()
	d.cleanup()
	if !ok {
		os.Exit(1)
	}
}

// drill is one run: its names, its wye configuration, the stream, the workload, the results.
type drill struct {
	ctx  context.Context
	o    options
	id   string
	dir  string // configuration, mappings, reports, wye's output
	db   string // the catalog
	ctl  string // the control schema
	idx  string // the entity's index (alias); its mapping directory has the same name
	app  *sql.DB
	log  *os.File
	cfg  string
	conf config

	proxy   *toxiproxy.Proxy // os2 is reached through it, so the drill can cut it off
	stream  *exec.Cmd
	exited  chan error
	metrics string
	work    *workload
	steps   []stepResult
}

// config is what changes in the drill's wye.yaml between steps.
type config struct {
	clusters []clusterConf
	mapping  string // every cluster's mapping version
	note     bool   // the entity emits programs.internal_note (the field v2 adds)
}

type clusterConf struct{ name, url, role string }

type stepResult struct {
	name   string
	took   time.Duration
	checks []string
	err    error
}

func newDrill(ctx context.Context, o options) (*drill, error) {
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)
	d := &drill{ctx: ctx, o: o, id: id, db: "drill_" + id, ctl: "drill_ctl_" + id, idx: "drill_" + id + "_programs"}
	var err error
	if d.o.wye, err = filepath.Abs(o.wye); err != nil {
		return nil, err
	}
	if _, err := os.Stat(d.o.wye); err != nil {
		return nil, fmt.Errorf("the wye binary: %w (go build -o bin/wye ./cmd/wye)", err)
	}
	if d.dir, err = os.MkdirTemp("", "wye-drill-"+id+"-"); err != nil {
		return nil, err
	}
	if d.log, err = os.Create(filepath.Join(d.dir, "wye.log")); err != nil {
		return nil, err
	}
	d.cfg = filepath.Join(d.dir, "wye.yaml")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.metrics = l.Addr().String()
	l.Close()
	return d, nil
}

// run runs every step and prints the table; it reports whether every check passed.
func (d *drill) run() bool {
	fmt.Printf("drill %s: catalog %s, control %s, index %s, files in %s\n", d.id, d.db, d.ctl, d.idx, d.dir)
	steps := []struct {
		name string
		do   func() ([]string, error)
	}{
		{"0 catalog wye has never seen", d.seed},
		{"1 es7 master: apply, run, initial load", d.initialLoad},
		{"2 es8, os2 join as slaves, nightly", d.joinSlaves},
		{"3 diff docs + diff queries", d.diffClusters},
		{"4 mapping bump v2 (+internal_note)", d.mappingBump},
		{"5a promote es8", func() ([]string, error) { return d.promote("es8", false) }},
		{"5b os2 cut off, repair os2", d.outageAndRepair},
		{"5c promote es7 (rollback)", func() ([]string, error) { return d.promote("es7", true) }},
		{"5d promote os2", func() ([]string, error) { return d.promote("os2", true) }},
		{"6 drain: every cluster = MySQL", d.drain},
	}
	for _, s := range steps {
		began := time.Now()
		checks, err := s.do()
		if err == nil && s.name[0] != '0' && s.name[0] != '6' {
			var more []string
			more, err = d.afterStep()
			checks = append(checks, more...)
		}
		r := stepResult{name: s.name, took: time.Since(began), checks: checks, err: err}
		d.steps = append(d.steps, r)
		status := "ok"
		if err != nil {
			status = "FAIL: " + err.Error()
		}
		fmt.Printf("step %-40s %6.1fs  %s  [%s]\n", s.name, r.took.Seconds(), status, strings.Join(checks, "; "))
		if err != nil {
			break
		}
	}
	d.stopWorkload()
	d.stopStream()
	return d.table()
}

func (d *drill) table() bool {
	ok := len(d.steps) == 10
	var total time.Duration
	fmt.Printf("\n%-42s %8s  %s\n", "step", "seconds", "result")
	for _, s := range d.steps {
		total += s.took
		res := "ok"
		if s.err != nil {
			res, ok = "FAIL", false
		}
		fmt.Printf("%-42s %8.1f  %s\n", s.name, s.took.Seconds(), res)
	}
	made, failed := int64(0), int64(0)
	if d.work != nil {
		made, failed = d.work.made.Load(), d.work.failed.Load()
	}
	fmt.Printf("%-42s %8.1f\n", "total", total.Seconds())
	fmt.Printf("workload: %d changes made (%d refused by MySQL, not counted) at %d/s; catalog of %d programs at the start\n",
		made, failed, d.o.rate, d.o.programs)
	if ok {
		fmt.Println("drill passed: 0 lost changes (every cluster equals MySQL), 0 parked, a clean diff after every step")
	} else {
		fmt.Printf("drill FAILED; wye's output: %s\n", d.log.Name())
	}
	return ok
}

// --- the steps ---

func (d *drill) seed() ([]string, error) {
	dsn := fmt.Sprintf("%s:%s@tcp(%s)/%s", appUser, appPass, mysqlAddr, d.db)
	if err := changes.CreateDatabase(dsn, filepath.Join(d.o.repo, "examples/catalog/schema.sql")); err != nil {
		return nil, fmt.Errorf("create the catalog %s: %w", d.db, err)
	}
	var err error
	if d.app, err = sql.Open("mysql", dsn); err != nil {
		return nil, err
	}
	if _, err := d.app.ExecContext(d.ctx, "CREATE DATABASE "+d.ctl); err != nil {
		return nil, fmt.Errorf("create the control schema: %w", err)
	}
	d.work = &workload{m: changes.New(d.app), rate: d.o.rate, pause: make(chan chan struct{})}
	if err := d.work.m.Seed(d.ctx, d.o.programs); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	// Part of the new field's data is there before any index declares it (docs/mapping.md).
	if _, err := d.app.ExecContext(d.ctx, "UPDATE programs SET internal_note = CONCAT('note ', id) WHERE id % 3 = 0"); err != nil {
		return nil, err
	}
	if err := d.layMappings(); err != nil {
		return nil, err
	}
	// os2 is reached through a proxy the drill controls (step 5 cuts it); other users of
	// the stack keep their os2.
	u, err := url.Parse(clusterURL["os2"])
	if err != nil {
		return nil, err
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	d.proxy = toxiproxy.NewProxy(server, "drill-os2-"+d.id, "127.0.0.1:0", u.Host)
	if err := d.proxy.Start(); err != nil {
		return nil, fmt.Errorf("start the os2 proxy: %w", err)
	}
	return []string{fmt.Sprintf("%d programs, %d episodes, %d tag links", d.work.m.Count("programs"), d.work.m.Count("episodes"), d.work.m.Count("program_tags"))}, nil
}

func (d *drill) initialLoad() ([]string, error) {
	d.conf = config{clusters: []clusterConf{{"es7", clusterURL["es7"], "master"}}, mapping: "v1"}
	if err := d.writeConfig(); err != nil {
		return nil, err
	}
	if err := d.wyeOK("mapping", "apply"); err != nil {
		return nil, err
	}
	if err := d.startStream(); err != nil {
		return nil, err
	}
	d.work.start(d.ctx)
	if err := d.wyeOK("nightly", "--report", d.file("load.json")); err != nil {
		return nil, err
	}
	return []string{"apply ok", "wye run ready", "workload started", "nightly exit 0"}, nil
}

func (d *drill) joinSlaves() ([]string, error) {
	d.conf.clusters = append(d.conf.clusters, clusterConf{"es8", clusterURL["es8"], "slave"},
		clusterConf{"os2", "http://" + d.proxy.Listen, "slave"})
	if err := d.writeConfig(); err != nil {
		return nil, err
	}
	if err := d.wyeOK("mapping", "apply", "--cluster", "es8", "--cluster", "os2"); err != nil {
		return nil, err
	}
	// The runbook "Migrating from cluster A to cluster B": restart the stream with the new
	// clusters first (they get every change from now on), then load what was there before.
	d.stopStream()
	if err := d.startStream(); err != nil {
		return nil, err
	}
	if err := d.wyeOK("nightly", "--clusters", "es8,os2", "--report", d.file("join.json")); err != nil {
		return nil, err
	}
	return []string{"apply ok", "wye run restarted", "nightly es8,os2 exit 0"}, nil
}

func (d *drill) diffClusters() ([]string, error) {
	docs := func() error {
		return d.wyeOK("diff", "docs", "--recheck", liveRecheck.String(), "--report", d.file("diff-clusters.json"))
	}
	underLoad := docs() == nil
	// `wye diff queries` compares answers as they are when it asks (docs/diff.md): under a
	// live workload the clusters answer a few writes apart, so the workload pauses and the
	// stream drains (every cluster equals MySQL) first.
	resume := d.work.pauseFor()
	defer resume()
	tries, err := d.until(2*time.Minute, func() error {
		return d.wyeOK("diff", "docs", "--against-mysql", "--report", d.file("diff-drained.json"))
	})
	if err != nil {
		return nil, fmt.Errorf("the stream did not drain with the workload paused: %w", err)
	}
	checks := []string{"diff docs es8,os2 vs es7 equal under the workload"}
	if !underLoad {
		if err := docs(); err != nil {
			return nil, err
		}
		checks = []string{"diff docs es8,os2 vs es7 equal once the stream caught up (not under the workload)"}
	}
	if err := d.wyeOK("diff", "queries", "--file", filepath.Join(d.o.repo, "examples/catalog/queries.yaml"), "--report", d.file("diff-queries.json")); err != nil {
		return nil, err
	}
	return append(checks, fmt.Sprintf("diff queries equal (workload paused, drained after %d tries)", tries)), nil
}

// mappingBump runs docs/mapping.md's additive runbook. v2 goes on every cluster, not only on
// es8: a document is built once for every cluster, so the entity can emit the new field only
// once every cluster has an index that declares it (an index whose family lacks the field would
// refuse it: parked on the master, ledgered on a slave).
func (d *drill) mappingBump() ([]string, error) {
	d.conf.mapping = "v2"
	if err := d.writeConfig(); err != nil {
		return nil, err
	}
	if err := d.wyeOK("mapping", "apply"); err != nil {
		return nil, err
	}
	d.conf.note = true // the entity emits the field, once v2 exists: the stream restarted
	if err := d.writeConfig(); err != nil {
		return nil, err
	}
	time.Sleep(2 * indicesTTL) // every indexer target cache lists v2
	d.stopStream()
	if err := d.startStream(); err != nil {
		return nil, err
	}
	if err := d.wyeOK("nightly", "--into-new-index", "--report", d.file("backfill.json")); err != nil {
		return nil, err
	}
	if err := d.wyeOK("mapping", "switch"); err != nil {
		return nil, err
	}
	// docs/mapping.md step 5: an indexer may hold v1 in its write targets for indices_ttl after
	// gc, and a batch resolved before gc writes v1 after it: an index action re-creates v1 with
	// a dynamic mapping (a delete's index_not_found decides nothing since the alias is on v2;
	// before that fix the drill met 1683 ids in os2's ledger). So the changes stop around gc, the stream's backlog included: the workload pauses until every
	// cluster equals MySQL, and resumes indices_ttl after gc.
	resume := d.work.pauseFor()
	_, err := d.until(2*time.Minute, func() error {
		return d.wyeOK("diff", "docs", "--against-mysql", "--report", d.file("diff-before-gc.json"))
	})
	if err == nil {
		err = d.wyeOK("mapping", "gc")
		time.Sleep(2 * indicesTTL)
	}
	resume()
	if err != nil {
		return nil, err
	}
	for _, c := range []string{"es7", "es8", "os2"} {
		if code := httpStatus("HEAD", clusterURL[c]+"/"+d.idx+"_v1"); code != 404 {
			return nil, fmt.Errorf("%s: %s_v1 still there after gc (HEAD %d)", c, d.idx, code)
		}
	}
	return []string{"apply v2 ok", "entity emits internal_note", "nightly --into-new-index exit 0", "switch ok", "gc ok (workload paused, stream drained), v1 gone"}, nil
}

func (d *drill) promote(cluster string, force bool) ([]string, error) {
	args := []string{"promote", cluster, "--yes"}
	if force {
		args = append(args, "--force") // within promote.min_interval of the last one
	}
	// A refused promote changes nothing (docs/operations.md); its sample diff with the master
	// refuses a copy still behind after its rechecks, which a loaded host's stream may be:
	// the drill tries again, as an operator would, and says so.
	var refusals []string
	for {
		began := time.Now()
		out, err := d.wye(args...)
		if err == nil {
			check := fmt.Sprintf("promote exit 0 in %.1fs", time.Since(began).Seconds())
			if len(refusals) > 0 {
				check += fmt.Sprintf(" after %d refusals %q", len(refusals), refusals)
			}
			return []string{check}, nil
		}
		m := refusedLine.FindStringSubmatch(out)
		if m == nil || len(refusals) == 2 {
			return nil, err
		}
		refusals = append(refusals, m[1])
		time.Sleep(5 * time.Second)
	}
}

var refusedLine = regexp.MustCompile(`(?m)^wye: promote refused: (sample diff: .*)$`)

var repairedLine = regexp.MustCompile(`(?m)^os2: (\d+) ids repaired`)

func (d *drill) outageAndRepair() ([]string, error) {
	if _, err := d.proxy.Toxics.AddToxicJson(strings.NewReader(`{"name":"down","type":"reset_peer","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)); err != nil {
		return nil, fmt.Errorf("cut os2: %w", err)
	}
	select {
	case <-time.After(d.o.outage):
	case <-d.ctx.Done():
	}
	if err := d.proxy.Toxics.RemoveToxic(context.Background(), "down"); err != nil {
		return nil, fmt.Errorf("bring os2 back: %w", err)
	}
	if d.ctx.Err() != nil {
		return nil, d.ctx.Err()
	}
	var ledger int
	if err := d.control().QueryRowContext(d.ctx, "SELECT COUNT(*) FROM repair_ledger WHERE cluster = 'os2' AND repaired_at IS NULL").Scan(&ledger); err != nil {
		return nil, err
	}
	if ledger == 0 {
		return nil, fmt.Errorf("os2 was cut off for %v and its repair ledger is empty: the outage missed nothing", d.o.outage)
	}
	// Writes the stream held when os2 came back may reach the ledger after a first repair read
	// it: repair until it says there is nothing to do.
	repaired := 0
	for i := range 3 {
		out, err := d.wye("repair", "os2")
		if err != nil {
			return nil, err
		}
		if strings.Contains(out, "nothing to repair") {
			return []string{fmt.Sprintf("os2 cut %v", d.o.outage), fmt.Sprintf("ledger %d ids", ledger), fmt.Sprintf("repaired %d ids in %d runs", repaired, i)}, nil
		}
		if m := repairedLine.FindStringSubmatch(out); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			repaired += n
		}
	}
	return nil, errors.New("wye repair os2 found ids to repair three times in a row")
}

func (d *drill) drain() ([]string, error) {
	d.stopWorkload()
	checks := []string{fmt.Sprintf("workload stopped after %d changes", d.work.made.Load())}
	for _, c := range []string{"es7", "es8", "os2"} {
		tries, err := d.until(2*time.Minute, func() error {
			return d.wyeOK("diff", "docs", "--against-mysql", "--clusters", c, "--report", d.file("final-"+c+".json"))
		})
		if err != nil {
			return checks, fmt.Errorf("%s does not equal MySQL: %w", c, err)
		}
		compared, lost, err := diffCounts(d.file("final-" + c + ".json"))
		if err != nil {
			return checks, err
		}
		if lost != 0 || compared == 0 {
			return checks, fmt.Errorf("%s: the diff exited 0 with %d documents compared, %d not equal", c, compared, lost)
		}
		checks = append(checks, fmt.Sprintf("%s = MySQL: %d documents, 0 lost (%d tries)", c, compared, tries))
	}
	more, err := d.afterStep()
	return append(checks, more...), err
}

// diffCounts reads a `wye diff docs` report (docs/diff.md): the documents compared and those
// not equal, every class together.
func diffCounts(report string) (compared, notEqual int64, err error) {
	b, err := os.ReadFile(report)
	if err != nil {
		return 0, 0, err
	}
	var rep struct {
		Entities []struct {
			Pairs []struct {
				Compared, Missing, Extra, Different, Behind, Ahead int64
				EmptyNull                                          int64 `json:"empty_null"`
			} `json:"pairs"`
		} `json:"entities"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", report, err)
	}
	for _, e := range rep.Entities {
		for _, p := range e.Pairs {
			compared += p.Compared
			notEqual += p.Missing + p.Extra + p.Different + p.Behind + p.Ahead + p.EmptyNull
		}
	}
	return compared, notEqual, nil
}

// afterStep checks what must hold after every step: every cluster equals MySQL, nothing is
// parked, and `wye status` exits 0 (problems such as a ledger being repaired may need a few
// seconds to clear). The diff runs under the workload first (a difference that is a write on
// its way is read again before it is reported); when the stream trails MySQL by more than the
// rechecks wait (a loaded host: renames of channels and tags rewrite dozens of documents
// each), the workload pauses until the stream has caught up and the diff is clean, and the
// check says so. A lost change stays different however long the pause.
func (d *drill) afterStep() ([]string, error) {
	var checks []string
	diff := func() error {
		return d.wyeOK("diff", "docs", "--against-mysql", "--recheck", liveRecheck.String(), "--report", d.file("diff-mysql.json"))
	}
	if err := diff(); err == nil {
		if d.work.stopped {
			checks = append(checks, "diff vs MySQL clean")
		} else {
			checks = append(checks, "diff vs MySQL clean under the workload")
		}
	} else {
		paused := time.Now()
		resume := d.work.pauseFor()
		tries, err := d.until(2*time.Minute, diff)
		resume()
		if err != nil {
			return checks, fmt.Errorf("diff --against-mysql, the workload paused for %v: %w", time.Since(paused).Round(time.Second), err)
		}
		checks = append(checks, fmt.Sprintf("diff vs MySQL clean once the stream caught up (workload paused %v, %d tries)", time.Since(paused).Round(time.Second), tries))
	}
	out, err := d.wye("parked", "list")
	if err != nil {
		return checks, err
	}
	if !strings.Contains(out, "total: 0 parked") {
		return checks, fmt.Errorf("parked messages:\n%s", out)
	}
	checks = append(checks, "0 parked")
	tries, err := d.until(time.Minute, func() error { return d.wyeOK("status") })
	if err != nil {
		return checks, fmt.Errorf("wye status: %w", err)
	}
	return append(checks, fmt.Sprintf("status healthy (%d tries)", tries)), nil
}

// until runs check until it passes, every 3 s, for at most limit; it returns the tries.
func (d *drill) until(limit time.Duration, check func() error) (int, error) {
	deadline := time.Now().Add(limit)
	for i := 1; ; i++ {
		err := check()
		if err == nil || time.Now().After(deadline) || d.ctx.Err() != nil {
			return i, err
		}
		time.Sleep(3 * time.Second)
	}
}

// --- wye ---

const indicesTTL = time.Second // indexer.indices_ttl in the drill's configuration

// liveRecheck is the wait of `wye diff docs --recheck` under the workload: a difference that
// is a write on its way is read again after it (3 reads at most). The default, 2 s, assumes a
// stream that trails MySQL by less; on a loaded 2-core host serving three engines, MySQL,
// RabbitMQ and wye, it trails by more. A lost change stays different however long the wait.
const liveRecheck = 5 * time.Second

// writeConfig writes the drill's wye.yaml for d.conf.
func (d *drill) writeConfig() error {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return err
	}
	u.User = url.User(u.User.Username())
	var clusters strings.Builder
	for _, c := range d.conf.clusters {
		fmt.Fprintf(&clusters, "  - {name: %s, urls: [%q], role: %s, mapping: %s, timeouts: {request: 10s, bulk: 30s}}\n", c.name, c.url, c.role, d.conf.mapping)
	}
	entity, err := os.ReadFile(filepath.Join(d.o.repo, "examples/catalog/entity.yaml"))
	if err != nil {
		return err
	}
	ent := strings.ReplaceAll(string(entity), "catalog.", d.db+".")
	ent = strings.Replace(ent, "index: programs", "index: "+d.idx, 1)
	if d.conf.note {
		const cols = "columns: [id, title, channel_id, duration_s, rating, code, updated_at]"
		if !strings.Contains(ent, cols) {
			return errors.New("examples/catalog/entity.yaml: the root's columns changed; the drill adds internal_note to them")
		}
		ent = strings.Replace(ent, cols, "columns: [id, title, channel_id, duration_s, rating, code, updated_at, internal_note]", 1)
	}
	var entities strings.Builder
	for _, l := range strings.Split(strings.TrimRight(ent, "\n"), "\n") {
		entities.WriteString("  " + l + "\n")
	}
	host, port, _ := net.SplitHostPort(mysqlAddr)
	cfg := fmt.Sprintf(`# the migration drill %s (examples/drill)
source: {flavor: mariadb, host: %s, port: %s, user: %s, password_env: WYE_SOURCE_PASSWORD, server_id: %d}
control: {host: %s, port: %s, user: %s, password_env: WYE_CONTROL_PASSWORD, database: %s}
amqp: {url: %q, password_env: WYE_AMQP_PASSWORD, exchange: %s, queue: %s, parked: %s, prefetch: 512}
cdc: {name: %s}
indexer: {indices_ttl: %s}
mapping: {dir: %q}
metrics: {listen: %q}
log: {level: warn}
clusters:
%sentities:
%s`, d.id, host, port, sourceUser, d.serverID(), host, port, appUser, d.ctl, u.String(), d.exchange(), d.queue(), d.queue()+".parked",
		"drill-"+d.id, indicesTTL, d.file("mappings"), d.metrics, clusters.String(), entities.String())
	return os.WriteFile(d.cfg, []byte(cfg), 0o600)
}

func (d *drill) exchange() string { return "wye.changes.drill." + d.id }
func (d *drill) queue() string    { return "wye.index.drill." + d.id }
func (d *drill) file(name string) string {
	return filepath.Join(d.dir, name)
}

// serverID is the binlog reader's server id: unique per run among the stack's readers.
func (d *drill) serverID() int {
	b, _ := hex.DecodeString(d.id)
	return 700000 + int(b[0])<<8 | int(b[1])
}

// layMappings copies the shipped v1 of programs under the drill's index name and adds v2 =
// v1 + internal_note.
func (d *drill) layMappings() error {
	src := filepath.Join(d.o.repo, "mappings/programs/v1")
	files, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, v := range []string{"v1", "v2"} {
		dst := filepath.Join(d.file("mappings"), d.idx, v)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(src, f.Name()))
			if err != nil {
				return err
			}
			if v == "v2" && f.Name() == "mapping.json" {
				if b, err = withField(b, "internal_note", map[string]any{"type": "keyword"}); err != nil {
					return err
				}
			}
			if err := os.WriteFile(filepath.Join(dst, f.Name()), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func withField(mapping []byte, field string, def map[string]any) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(mapping, &m); err != nil {
		return nil, err
	}
	props, ok := m["mappings"].(map[string]any)["properties"].(map[string]any)
	if !ok {
		return nil, errors.New("mappings/programs/v1/mapping.json has no mappings.properties")
	}
	props[field] = def
	return json.MarshalIndent(m, "", "  ")
}

// wye runs one wye command to its end with the drill's configuration; its output goes to the
// log and is returned. A non-zero exit is an error quoting the output's end.
func (d *drill) wye(args ...string) (string, error) {
	cmd := exec.CommandContext(d.ctx, d.o.wye, append(args, "-c", d.cfg)...)
	cmd.Env = d.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err := cmd.Run()
	fmt.Fprintf(d.log, "\n$ wye %s   (%.1fs, %v)\n%s", strings.Join(args, " "), time.Since(began).Seconds(), err, out.String())
	if err != nil {
		return out.String(), fmt.Errorf("wye %s: %v\n%s", strings.Join(args, " "), err, tail(out.String(), 25))
	}
	return out.String(), nil
}

func (d *drill) wyeOK(args ...string) error {
	_, err := d.wye(args...)
	return err
}

func (d *drill) env() []string {
	u, _ := url.Parse(amqpURL)
	pass, _ := u.User.Password()
	return append(os.Environ(), "WYE_SOURCE_PASSWORD="+sourcePass, "WYE_CONTROL_PASSWORD="+appPass, "WYE_AMQP_PASSWORD="+pass)
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// startStream starts `wye run` and waits until it is ready and cdc saved a checkpoint (the
// nightly takes its versions' epoch from it).
func (d *drill) startStream() error {
	cmd := exec.Command(d.o.wye, "run", "-c", d.cfg)
	cmd.Env = d.env()
	cmd.Stdout, cmd.Stderr = d.log, d.log
	fmt.Fprintf(d.log, "\n$ wye run (started %s)\n", time.Now().Format(time.TimeOnly))
	if err := cmd.Start(); err != nil {
		return err
	}
	d.stream, d.exited = cmd, make(chan error, 1)
	go func() { d.exited <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-d.exited:
			d.stream = nil
			return fmt.Errorf("wye run exited at start: %v (its output: %s)", err, d.log.Name())
		case <-time.After(500 * time.Millisecond):
		}
		var n int
		d.control().QueryRowContext(d.ctx, "SELECT COUNT(*) FROM cdc_checkpoint").Scan(&n)
		if n > 0 && httpStatus("GET", "http://"+d.metrics+"/readyz") == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("wye run not ready within a minute")
		}
	}
}

// stopStream stops `wye run` (SIGTERM: it drains what it holds, then exits).
func (d *drill) stopStream() {
	if d.stream == nil {
		return
	}
	d.stream.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.stream.Process.Kill()
		<-d.exited
	}
	d.stream = nil
}

var controlOnce sync.Once
var controlDB *sql.DB

func (d *drill) control() *sql.DB {
	controlOnce.Do(func() {
		controlDB, _ = sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s", appUser, appPass, mysqlAddr, d.ctl))
	})
	return controlDB
}

func httpStatus(method, u string) int {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return 0
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// --- the workload ---

// workload makes rate changes a second until stopped; pauseFor holds it.
type workload struct {
	m            *changes.Maker
	rate         int
	pause        chan chan struct{}
	made, failed atomic.Int64
	stop         context.CancelFunc
	done         chan struct{}
	stopped      bool
}

func (w *workload) start(ctx context.Context) {
	ctx, w.stop = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Second / time.Duration(max(w.rate, 1)))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case resume := <-w.pause:
				select {
				case <-resume:
				case <-ctx.Done():
					return
				}
			case <-tick.C:
				if err := w.m.Step(ctx); err != nil {
					w.failed.Add(1)
					continue
				}
				w.made.Add(1)
			}
		}
	}()
}

// pauseFor holds the workload until the returned function is called.
func (w *workload) pauseFor() (resume func()) {
	ch := make(chan struct{})
	w.pause <- ch
	return func() { close(ch) }
}

func (d *drill) stopWorkload() {
	if d.work != nil && d.work.stop != nil {
		d.work.stop()
		<-d.work.done
		d.work.stopped = true
	}
}

// --- cleanup ---

func (d *drill) cleanup() {
	if d.proxy != nil {
		d.proxy.Stop()
	}
	if d.o.keep {
		fmt.Printf("kept (--keep): databases %s and %s, indices %s_v1/_v2 on es7, es8, os2, queues %s*, files in %s\n", d.db, d.ctl, d.idx, d.queue(), d.dir)
		return
	}
	if d.app != nil {
		d.app.Exec("DROP DATABASE IF EXISTS " + d.db)
		d.app.Exec("DROP DATABASE IF EXISTS " + d.ctl)
		d.app.Close()
	}
	for _, c := range []string{"es7", "es8", "os2"} {
		for _, v := range []string{"v1", "v2"} {
			httpStatus("DELETE", clusterURL[c]+"/"+d.idx+"_"+v)
		}
	}
	if conn, err := amqp.Dial(amqpURL); err == nil {
		queues := []string{d.queue(), d.queue() + ".parked"}
		for _, dl := range consumer.DefaultRetryDelays {
			queues = append(queues, d.queue()+".retry."+dl.String())
		}
		// A delete of a queue that does not exist closes the channel: one channel each.
		for _, q := range queues {
			if ch, err := conn.Channel(); err == nil {
				ch.QueueDelete(q, false, false, false)
				ch.Close()
			}
		}
		if ch, err := conn.Channel(); err == nil {
			ch.ExchangeDelete(d.exchange(), false, false)
		}
		conn.Close()
	}
	if d.steps != nil && d.steps[len(d.steps)-1].err == nil {
		os.RemoveAll(d.dir)
	}
}

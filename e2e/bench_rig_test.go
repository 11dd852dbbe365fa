package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/indexer/es"
	indexersql "github.com/wyehq/wye/indexer/sql"

	"encoding/json"
	"strings"
	"syscall"
)

// The in-process indexer rig, the settling of the host and the CPU meter that the indexer
// benchmark (indexer_bench_test.go, -tags bench) and the fault tests share.

type benchRoles string

func (b benchRoles) Master() (string, int64) { return string(b), 0 }

// countingSource counts the SQL queries of the pipeline.
type countingSource struct {
	indexer.Source
	queries *atomic.Int64
}

func (c countingSource) View(ctx context.Context) (indexer.View, error) {
	r, err := c.Source.View(ctx)
	return countingView{r, c.queries}, err
}

type countingView struct {
	indexer.View
	queries *atomic.Int64
}

func (c countingView) Rows(ctx context.Context, table string, cols []string, where string, values []indexer.Value, filter indexer.Filter) ([]indexer.Row, error) {
	c.queries.Add(1)
	return c.View.Rows(ctx, table, cols, where, values, filter)
}

func (c countingView) Each(ctx context.Context, table string, cols []string, where string, values []indexer.Value, filter indexer.Filter, fn func(indexer.Row)) error {
	c.queries.Add(1)
	return c.View.Each(ctx, table, cols, where, values, filter, fn)
}

// capture records the bodies the master gets, to replay them as raw _bulk.
type capture struct {
	es.Bulker
	mu     *sync.Mutex
	bodies *[][]byte
}

func (c capture) Bulk(ctx context.Context, body []byte, opts ...cluster.BulkOption) ([]cluster.BulkItem, error) {
	c.mu.Lock()
	*c.bodies = append(*c.bodies, body)
	c.mu.Unlock()
	return c.Bulker.Bulk(ctx, body, opts...)
}

// benchPrograms is the number of program documents (WYE_BENCH_PROGRAMS overrides it). Each
// has on average 2 episodes, 2 tags and a channel with its network.
const benchPrograms = 15000

// Every benchmark phase sends its change events in batches of benchBatch, processed by
// benchReplicas pipelines in parallel as indexer replicas sharing one queue would.
const benchBatch, benchReplicas = 256, 3

// benchProgramCount is benchPrograms, or WYE_BENCH_PROGRAMS when set.
func benchProgramCount(t *testing.T) int {
	if s := os.Getenv("WYE_BENCH_PROGRAMS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("WYE_BENCH_PROGRAMS=%q: want a positive integer", s)
		}
		return n
	}
	return benchPrograms
}

// benchRig is a benchmark's world: an indexer rig whose catalog holds the programs (seeded in
// bulk: no events), the entity model, a source and one client per cluster, all in-process
// without RabbitMQ.
type benchRig struct {
	t       *testing.T
	r       *indexerRig
	c       *indexerCatalog
	model   *indexer.Model
	src     *indexersql.Source
	clients map[string]*cluster.Client
	ids     []int // program ids, sorted
	// version is the one counter of every write of the test, wye and raw alike: each phase
	// writes above everything before it, so no item is a stale no-op that would flatter a rate.
	version int64
}

func newBenchRig(t *testing.T, programs int) *benchRig {
	b := &benchRig{t: t, r: newIndexerRig(t), clients: map[string]*cluster.Client{}, version: time.Now().UnixMicro()}
	b.c = newIndexerCatalog(b.r, 5)
	seedStart := time.Now()
	b.c.seedBulk(3, 20, programs, 2*programs, 30)
	t.Logf("seeded %d programs, %d episodes, %d tag links in %v", len(b.c.rows["programs"]), len(b.c.rows["episodes"]), len(b.c.links), time.Since(seedStart).Round(time.Millisecond))
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	cfg, err := config.Load(b.r.config("127.0.0.1:0"), config.Options{LookupEnv: func(k string) (string, bool) {
		return map[string]string{"WYE_SOURCE_PASSWORD": mysqlSrcPass, "WYE_CONTROL_PASSWORD": "wye-control", "WYE_AMQP_PASSWORD": amqpPass}[k], true
	}})
	must(t, err)
	b.model, err = indexer.NewModel(config.EntityDefs(cfg.Entities))
	must(t, err)
	b.src, err = indexersql.Open(cfg.Source.MySQLConfig(), 4)
	must(t, err)
	t.Cleanup(func() { b.src.Close() })
	for _, name := range clusterNames {
		cl, err := cluster.New(cluster.Options{Name: name, URLs: []string{clusterURLs[name]}})
		must(t, err)
		b.clients[name] = cl
	}
	b.ids = slices.Sorted(maps.Keys(b.c.rows["programs"]))
	return b
}

func (b *benchRig) nextVersion() int64 { b.version += 1_000_000; return b.version }

// messages is an insert event of every program at version v, in batches of benchBatch: built
// before a phase's clock starts, as a broker would hold them.
func (b *benchRig) messages(v int64) [][]indexer.Message {
	var out [][]indexer.Message
	var cur []indexer.Message
	for _, id := range b.ids {
		body := fmt.Sprintf(`{"schema":1,"table":"%s.programs","op":"insert","after":{"id":%d},"version":%d}`, b.r.db, id, v)
		cur = append(cur, indexer.Message{Body: []byte(body)})
		if len(cur) == benchBatch {
			out, cur = append(out, cur), nil
		}
	}
	return append(out, cur)
}

// pump processes batches with benchReplicas pipelines in parallel and returns once the last
// one returned, that is once the master took every document; a batch that fails, parks or
// retries fails the test.
func (b *benchRig) pump(ctx context.Context, p *indexer.Pipeline, batches [][]indexer.Message) {
	work := make(chan []indexer.Message)
	var wg sync.WaitGroup
	for range benchReplicas {
		wg.Go(func() {
			for m := range work {
				out, err := p.Process(ctx, m)
				if err != nil || len(out.Parked)+len(out.Retries) > 0 {
					b.t.Errorf("bench batch: %v, %d parked, %d retries", err, len(out.Parked), len(out.Retries))
				}
			}
		})
	}
	for _, m := range batches {
		work <- m
	}
	close(work)
	wg.Wait()
}

// hangingBulker is a slave that never answers.
type hangingBulker struct{}

func (hangingBulker) Bulk(ctx context.Context, _ []byte, _ ...cluster.BulkOption) ([]cluster.BulkItem, error) {
	<-ctx.Done()
	return nil, &cluster.TransportError{Cluster: "os2", Op: "Bulk", Err: ctx.Err()}
}

// settle starts each phase from the same state: every cluster's index merged to one segment
// (the previous phase's rewrites leave deleted documents and merges behind, which the next
// phase would pay for), then the host quiet (below half a CPU busy over 300 ms, at most 30 s).
func settle(t *testing.T, index string) {
	for _, name := range clusterNames {
		status, body := indexerHTTP(t, "POST", clusterURLs[name]+"/"+index+"/_forcemerge?max_num_segments=1", nil)
		if status != 200 {
			t.Fatalf("force merge on %s: %d %s", name, status, body)
		}
	}
	quietHost(t)
}

// cpuMeter reads the CPU time used so far by this process (getrusage), by each cluster's
// node and by MariaDB (from /proc, their pids from node info and the pid file, when this host
// runs them), and the host's total busy and steal time (/proc/stat).
type cpuMeter struct {
	stat map[string]string // part -> /proc/<pid>/stat
}

type cpuUse map[string]time.Duration

var cpuParts = []string{"wye", "es7", "es8", "os2", "mariadb", "other", "host busy", "host steal"}

func newCPUMeter(t *testing.T) *cpuMeter {
	m := &cpuMeter{stat: map[string]string{}}
	var pidFile string
	db := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	if db.QueryRow("SELECT @@pid_file").Scan(&pidFile) == nil {
		if b, err := os.ReadFile(pidFile); err == nil {
			m.stat["mariadb"] = "/proc/" + strings.TrimSpace(string(b)) + "/stat"
		}
	}
	for _, name := range clusterNames {
		status, b := indexerHTTP(t, "GET", clusterURLs[name]+"/_nodes/_local/process?filter_path=nodes.*.process.id", nil)
		var s struct {
			Nodes map[string]struct {
				Process struct {
					ID int `json:"id"`
				} `json:"process"`
			} `json:"nodes"`
		}
		if status == 200 && json.Unmarshal(b, &s) == nil {
			for _, n := range s.Nodes {
				m.stat[name] = fmt.Sprintf("/proc/%d/stat", n.Process.ID)
			}
		}
	}
	for part, path := range m.stat {
		if _, err := os.Stat(path); err != nil {
			delete(m.stat, part) // not on this host: reported as n/a
		}
	}
	return m
}

func (m *cpuMeter) names() string { return strings.Join(cpuParts, ", ") }

func (m *cpuMeter) read() cpuUse {
	const tick = 10 * time.Millisecond // USER_HZ = 100 on Linux
	u := cpuUse{}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u["wye"] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for part, path := range m.stat {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			u[part] = time.Duration(ut+st) * tick
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
		if len(f) > 8 {
			var busy int64
			for _, i := range []int{1, 2, 3, 6, 7} {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				busy += n
			}
			steal, _ := strconv.ParseInt(f[8], 10, 64)
			u["host busy"], u["host steal"] = time.Duration(busy)*tick, time.Duration(steal)*tick
		}
	}
	return u
}

// sub is the use between o and u; "other" is the host's busy time that none of the measured
// processes used (RabbitMQ, the kernel, whatever else runs on the host).
func (u cpuUse) sub(o cpuUse) cpuUse {
	d := cpuUse{}
	for k, v := range u {
		d[k] = v - o[k]
	}
	if busy, ok := d["host busy"]; ok {
		d["other"] = busy
		for _, k := range []string{"wye", "es7", "es8", "os2", "mariadb"} {
			d["other"] -= d[k]
		}
	}
	return d
}

// per renders the use per 1000 of docs documents, in cpuParts order.
func (u cpuUse) per(docs float64) string {
	var s []string
	for _, k := range cpuParts {
		if v, ok := u[k]; ok {
			s = append(s, fmt.Sprintf("%s %.2f", k, v.Seconds()*1000/docs))
		} else {
			s = append(s, k+" n/a")
		}
	}
	return strings.Join(s, ", ")
}

// quietHost waits (at most 30 s) until the host is below half a CPU busy over 300 ms, so
// that each phase starts from a quiet host.
func quietHost(t *testing.T) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b0, t0 := hostBusyTime(), time.Now()
		time.Sleep(300 * time.Millisecond) // a measuring window, not a synchronization
		if float64(hostBusyTime()-b0) < 0.5*float64(time.Since(t0)) {
			return
		}
	}
	t.Logf("host still busy after 30 s; measuring anyway")
}

// hostBusyTime is the CPU time the whole host has been busy so far (/proc/stat).
func hostBusyTime() time.Duration {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var n int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		if i < len(f) {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			n += v
		}
	}
	return time.Duration(n) * 10 * time.Millisecond
}

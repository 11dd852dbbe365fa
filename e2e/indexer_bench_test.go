package e2e

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/indexer/es"
	indexersql "github.com/wyehq/wye/indexer/sql"
)

type benchRoles string

func (b benchRoles) Master() string { return string(b) }

// countingSource counts the SQL queries of the pipeline.
type countingSource struct {
	indexer.Source
	queries *atomic.Int64
}

func (c countingSource) Snapshot(ctx context.Context) (indexer.Reader, error) {
	r, err := c.Source.Snapshot(ctx)
	return countingReader{r, c.queries}, err
}

type countingReader struct {
	indexer.Reader
	queries *atomic.Int64
}

func (c countingReader) Rows(ctx context.Context, table string, cols []string, where string, values []indexer.Value) ([]indexer.Row, error) {
	c.queries.Add(1)
	return c.Reader.Rows(ctx, table, cols, where, values)
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

// TestIndexerBenchmark reports, in one run on the same documents: the pipeline's rate into 1,
// 2 and 3 clusters (SQL reads + one _bulk per cluster, slaves drained), the raw _bulk rate of
// the same bodies into each cluster, and SQL queries per entity for 1 vs 3 clusters (must be
// equal: invariant 3). It runs the pipeline in-process, without RabbitMQ.
func TestIndexerBenchmark(t *testing.T) {
	r := newIndexerRig(t)
	c := newIndexerCatalog(r, 5)
	r.viaCDC = true // load the catalog without events
	programs := 3000
	c.seed(3, 20, programs, 2*programs, 30)
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	cfg, err := config.Load(r.config("127.0.0.1:0"), config.Options{LookupEnv: func(k string) (string, bool) {
		return map[string]string{"WYE_SOURCE_PASSWORD": mysqlSrcPass, "WYE_CONTROL_PASSWORD": "wye-control", "WYE_AMQP_PASSWORD": amqpPass}[k], true
	}})
	must(t, err)
	model, err := indexer.NewModel(cfg.Entities)
	must(t, err)
	src, err := indexersql.Open(cfg.Source.MySQLConfig(), 4)
	must(t, err)
	defer src.Close()
	clients := map[string]*cluster.Client{}
	for _, name := range clusterNames {
		cl, err := cluster.New(cluster.Options{Name: name, URLs: []string{clusterURLs[name]}})
		must(t, err)
		clients[name] = cl
	}
	const batch, replicas = 256, 3
	version := time.Now().UnixMicro()
	messages := func() [][]indexer.Message {
		version += 1_000_000
		var out [][]indexer.Message
		var cur []indexer.Message
		for id := range c.rows["programs"] {
			body := fmt.Sprintf(`{"schema":1,"table":"%s.programs","op":"insert","after":{"id":%d},"version":%d}`, r.db, id, version)
			cur = append(cur, indexer.Message{Body: []byte(body)})
			if len(cur) == batch {
				out, cur = append(out, cur), nil
			}
		}
		return append(out, cur)
	}

	type result struct {
		master  float64 // docs/s until the last batch was written to the master
		rate    float64 // docs/s until every slave had every document too
		queries int
	}
	var bodies [][]byte
	var bodiesMu sync.Mutex
	run := func(n int, dead string) result {
		var targets []es.Target
		for i, name := range clusterNames[:n] {
			var b es.Bulker = clients[name]
			timeout := time.Minute
			if i == 0 {
				b = capture{b, &bodiesMu, &bodies}
			}
			if name == dead {
				b, timeout = hangingBulker{}, 2*time.Second
			}
			targets = append(targets, es.Target{Name: name, Client: b, Timeout: timeout})
		}
		bodies = nil
		f := es.New(es.Options{Targets: targets, Roles: benchRoles("es7"), Backlog: 1024})
		ctx := context.Background()
		f.Start(ctx)
		var queries atomic.Int64
		p := indexer.NewPipeline(model, countingSource{src, &queries}, f, indexer.Options{})
		work := make(chan []indexer.Message)
		start := time.Now()
		var wg sync.WaitGroup
		for range replicas { // like indexer replicas sharing one queue
			wg.Go(func() {
				for m := range work {
					out, err := p.Process(ctx, m)
					if err != nil || len(out.Parked)+len(out.Retries) > 0 {
						t.Errorf("bench batch: %v, %d parked, %d retries", err, len(out.Parked), len(out.Retries))
					}
				}
			})
		}
		for _, m := range messages() {
			work <- m
		}
		close(work)
		wg.Wait()
		docs := float64(len(c.rows["programs"]))
		res := result{master: docs / time.Since(start).Seconds(), queries: int(queries.Load())}
		limit := 5 * time.Minute
		if dead != "" {
			limit = time.Second // a dead slave's backlog is dropped to the ledger
		}
		stop, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		f.Stop(stop) // slaves drained: every cluster has every document
		res.rate = docs / time.Since(start).Seconds()
		return res
	}
	one, two, three := run(1, ""), run(2, ""), run(3, "")
	deadSlave := run(3, "os2")
	bodies = nil
	three = run(3, "") // bodies of a healthy run for the raw replay; and a second sample

	// Raw _bulk: the same bodies, versions raised so that no item is a stale no-op.
	captured := version
	rawBulk := func(name string, v int64) float64 {
		start := time.Now()
		for _, b := range bodies {
			body := strings.ReplaceAll(string(b), fmt.Sprintf(`"version":%d,`, captured), fmt.Sprintf(`"version":%d,`, v))
			items, err := clients[name].Bulk(context.Background(), []byte(body))
			if err != nil {
				t.Errorf("raw bulk %s: %v", name, err)
				return 0
			}
			for _, it := range items {
				if it.Class != cluster.OK {
					t.Errorf("raw bulk %s: %+v", name, it)
					return 0
				}
			}
		}
		return float64(len(c.rows["programs"])) / time.Since(start).Seconds()
	}
	raw := map[string]float64{}
	slowest, slowestRate := "", 0.0
	for i, name := range clusterNames {
		raw[name] = rawBulk(name, captured+int64(i+1)*1_000_000)
		if slowest == "" || raw[name] < slowestRate {
			slowest, slowestRate = name, raw[name]
		}
	}
	// The three clusters share this machine's CPUs: raw _bulk into all three at once shows
	// what the host allows, the fair reference for the 3-cluster rate.
	together := make(chan float64, len(clusterNames))
	for _, name := range clusterNames {
		go func() { together <- rawBulk(name, captured+10_000_000) }()
	}
	concurrent := 1e18
	for range clusterNames {
		concurrent = min(concurrent, <-together)
	}
	n := float64(len(c.rows["programs"]))
	t.Logf("documents: %d programs (+%d episodes, tags, channels), batches of %d, %d pipelines in parallel (as replicas), %d CPUs for everything",
		len(c.rows["programs"]), len(c.rows["episodes"]), batch, replicas, runtime.NumCPU())
	t.Logf("wye into 1 cluster (es7):          %8.0f docs/s  %.3f SQL queries/entity", one.rate, float64(one.queries)/n)
	t.Logf("wye into 2 clusters (es7, es8):    %8.0f docs/s  %.3f SQL queries/entity", two.rate, float64(two.queries)/n)
	t.Logf("wye into 3 clusters (+os2):        %8.0f docs/s  %.3f SQL queries/entity", three.rate, float64(three.queries)/n)
	t.Logf("master path, 3 healthy clusters:   %8.0f docs/s", three.master)
	t.Logf("master path, os2 hanging (2s timeout): %4.0f docs/s (%.2f of healthy; target within 20%%)", deadSlave.master, deadSlave.master/three.master)
	t.Logf("raw _bulk of the same bodies: es7 %.0f, es8 %.0f, os2 %.0f docs/s; slowest %s", raw["es7"], raw["es8"], raw["os2"], slowest)
	t.Logf("raw _bulk into all 3 at once (same host): %.0f docs/s (slowest of the three)", concurrent)
	t.Logf("wye(3 clusters) / raw(slowest alone) = %.2f (target >= 0.7); / raw(3 at once) = %.2f", three.rate/slowestRate, three.rate/concurrent)
	// Rates are reported, not asserted: on shared cores they are noise-bound. That a slave never
	// waits on the master path is asserted structurally in indexer/es (TestHangingSlaveNeverDelaysTheMaster).
	if one.queries != three.queries {
		t.Errorf("SQL queries: %d for 1 cluster, %d for 3: denormalization must not grow with clusters", one.queries, three.queries)
	}
}

// hangingBulker is a slave that never answers.
type hangingBulker struct{}

func (hangingBulker) Bulk(ctx context.Context, _ []byte, _ ...cluster.BulkOption) ([]cluster.BulkItem, error) {
	<-ctx.Done()
	return nil, &cluster.TransportError{Cluster: "os2", Op: "Bulk", Err: ctx.Err()}
}

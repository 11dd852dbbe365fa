package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/indexer/es"
)

// TestIndexerLatencyAndResetsToTheMasterParkNothing prevents a slow, flaky network to the
// master from parking changes that only needed patience (issue 11): the indexer reaches the
// master through an in-process toxiproxy that adds 300 ms to every answer and, every 2 s,
// resets (RST) every connection that carries data for 250 ms, the _bulk in flight included.
// A reset request took no write, so its batch is held and tried again, never parked: under a
// catalog workload every cluster converges to MariaDB with nothing parked.
func TestIndexerLatencyAndResetsToTheMasterParkNothing(t *testing.T) {
	r := newIndexerRig(t)
	master, err := url.Parse(r.urls["es7"])
	must(t, err)
	proxy := startProxy(t, "master-"+r.id, master.Host)
	r.urls["es7"] = "http://" + proxy.Listen
	addToxic(t, proxy, `{"name":"latency","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":300}}`)
	resets := resetPeriodically(t, proxy, 2*time.Second, 250*time.Millisecond)
	p := r.start()

	c := newIndexerCatalog(r, 11)
	c.seed(2, 6, 60, 100, 10)
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		c.step()
	}
	t.Logf("workload: %v in %v", c.counts, time.Since(start).Round(time.Millisecond))
	// The resets go on until the clusters converge: the indexer must get through them.
	eventually(t, 2*time.Minute, func() error { return r.converged("es7", "es8", "os2") })
	n := resets()
	t.Logf("converged %v after the workload started; %d reset windows", time.Since(start).Round(time.Millisecond), n)

	p.heldNotParked(t, "latency and connection resets to the master")
	if err := r.parkedCount(0); err != nil {
		t.Error(err)
	}
}

// resetPeriodically makes proxy reset its connections every period for window: each reset
// toxic (one per direction) stays in the chain at toxicity 0 and is armed (toxicity 1) for
// the window. Present from the start, it makes toxiproxy set SO_LINGER 0 on every connection,
// so a close is a TCP RST, as the issue asks, not a FIN. Call it before anything connects
// through proxy. The returned stop ends the resets and reports how many windows ran.
func resetPeriodically(t *testing.T, proxy *toxiproxy.Proxy, period, window time.Duration) (stop func() int) {
	t.Helper()
	names := []string{"reset_upstream", "reset_downstream"}
	for _, name := range names {
		stream := strings.TrimPrefix(name, "reset_")
		addToxic(t, proxy, fmt.Sprintf(`{"name":%q,"type":"reset_peer","stream":%q,"toxicity":0,"attributes":{"timeout":0}}`, name, stream))
	}
	arm := func(toxicity int) {
		for _, name := range names {
			if _, err := proxy.Toxics.UpdateToxicJson(name, strings.NewReader(fmt.Sprintf(`{"toxicity":%d}`, toxicity))); err != nil {
				t.Errorf("set %s to toxicity %d: %v", name, toxicity, err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	windows := make(chan int, 1)
	go func() {
		n := 0
		defer func() { windows <- n }()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			arm(1)
			n++
			select { // the length of the fault, not a synchronization
			case <-ctx.Done():
			case <-time.After(window):
			}
			arm(0)
		}
	}()
	stop = sync.OnceValue(func() int { cancel(); return <-windows })
	t.Cleanup(func() { stop() })
	return stop
}

// TestIndexerStalledSlaveLeavesTheMasterItsThroughput is the benchmark of invariant 7 on the
// real stack (issue 11: "a slave behind a proxy that stops answering: the master's throughput
// stays within 20% of healthy"). os2 is a slave behind an in-process toxiproxy; for a stalled
// phase the proxy takes every byte both ways and answers nothing, closing nothing (a timeout
// toxic with timeout 0), so the slave's writes hang until shutdown. Healthy and stalled
// phases alternate (the order flips every round, after a warm-up), each on the same documents
// and production settings of the fan-out (backlog, requests in flight, timeouts), with the
// benchmark rig of TestIndexerBenchmark; each phase starts from merged indices and a quiet
// host (settle). It logs the master-path rate and the CPU per 1000 documents (cpuMeter) of
// every phase and the ratios, and asserts no rate (on shared cores they are noise-bound): it
// asserts that the master and the healthy slave converge to MariaDB and that every document
// the stalled slave missed is in the repair ledger, the master's never.
func TestIndexerStalledSlaveLeavesTheMasterItsThroughput(t *testing.T) {
	const programs, rounds = 5000, 3
	rig := newBenchRig(t, programs)
	r := rig.r
	slaveURL, err := url.Parse(clusterURLs["os2"])
	must(t, err)
	proxy := startProxy(t, "slave-"+r.id, slaveURL.Host)
	proxied, err := cluster.New(cluster.Options{Name: r.names["os2"], URLs: []string{"http://" + proxy.Listen}})
	must(t, err)
	clients := map[string]es.Bulker{"es7": rig.clients["es7"], "es8": rig.clients["es8"], "os2": proxied}
	ctx := context.Background()
	ledger, err := control.Open(ctx, controlConfig())
	must(t, err)
	t.Cleanup(func() { ledger.Close() })
	docs := float64(len(rig.ids))
	cpu := newCPUMeter(t)

	type result struct {
		master  float64 // docs/s until the last batch was written to the master
		version int64
		drops   float64 // documents the slaves missed (dropped, retryable, permanent), all slaves
		cpu     cpuUse  // until the last batch was written to the master
	}
	phase := func(stalled bool) result {
		metrics := indexer.NewMetrics(nil)
		var writers []indexer.ClusterWriter
		for _, name := range clusterNames {
			writers = append(writers, es.New(es.Options{Name: r.names[name], Client: clients[name], Metrics: metrics}))
		}
		f := indexer.NewStream(indexer.StreamOptions{Clusters: writers, Roles: benchRoles(r.names["es7"]), Ledger: ledger, Metrics: metrics})
		p := indexer.NewPipeline(rig.model, rig.src, f, indexer.Options{})
		v := rig.nextVersion()
		batches := rig.messages(v)
		settle(t, r.index)
		if stalled {
			for _, stream := range []string{"upstream", "downstream"} {
				addToxic(t, proxy, fmt.Sprintf(`{"name":"stall_%s","type":"timeout","stream":%q,"toxicity":1,"attributes":{"timeout":0}}`, stream, stream))
			}
		}
		f.Start(ctx)
		before := cpu.read()
		start := time.Now()
		rig.pump(ctx, p, batches)
		res := result{master: docs / time.Since(start).Seconds(), version: v, cpu: cpu.read().sub(before)}
		limit := 5 * time.Minute // healthy: every slave drains
		if stalled {
			// The healthy slave drains; the stalled one's backlog is dropped to the ledger.
			eventually(t, 2*time.Minute, func() error {
				name := r.names["es8"]
				if n := testutil.ToFloat64(metrics.Items.WithLabelValues(name, "ok")); n < docs {
					return fmt.Errorf("%s took %v of %v documents", name, n, docs)
				}
				return nil
			})
			limit = time.Second
		}
		stop, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		f.Stop(stop)
		if stalled {
			// Removing a timeout toxic closes the connections it stalled.
			proxy.Toxics.ResetToxics(ctx)
		}
		for _, name := range clusterNames[1:] {
			for _, class := range []string{"dropped", "retryable", "permanent"} {
				res.drops += testutil.ToFloat64(metrics.Items.WithLabelValues(r.names[name], class))
			}
		}
		return res
	}

	phase(false) // warm-up (not reported): JIT, caches, connections, detection of each cluster
	var healthy, stalled []result
	for round := range rounds {
		order := []bool{false, true}
		if round%2 == 1 {
			order = []bool{true, false}
		}
		for _, s := range order {
			if s {
				stalled = append(stalled, phase(true))
			} else {
				healthy = append(healthy, phase(false))
			}
		}
	}
	var lines []string
	best := func(rs []result) float64 {
		var b float64
		for _, r := range rs {
			b = max(b, r.master)
		}
		return b
	}
	for i := range rounds {
		lines = append(lines, fmt.Sprintf("round %d: healthy %6.0f docs/s (slave misses %v), os2 stalled %6.0f docs/s (slave misses %v): %.2f",
			i+1, healthy[i].master, healthy[i].drops, stalled[i].master, stalled[i].drops, stalled[i].master/healthy[i].master))
		lines = append(lines, fmt.Sprintf("  CPU s per 1000 docs, healthy: %s", healthy[i].cpu.per(docs)),
			fmt.Sprintf("  CPU s per 1000 docs, stalled: %s", stalled[i].cpu.per(docs)))
	}
	t.Logf("master path, %d programs in batches of %d, %d pipelines in parallel, 3 clusters, os2 behind a proxy; rounds alternate which goes first:\n%s",
		len(rig.ids), benchBatch, benchReplicas, strings.Join(lines, "\n"))
	// Above 1 is expected on a shared host: a stalled os2 spends no CPU, which the master path
	// and the other engines then get (the CPU lines show it).
	t.Logf("master path with os2 stalled / healthy: best %.0f / best %.0f docs/s = %.2f (target >= 0.80)",
		best(stalled), best(healthy), best(stalled)/best(healthy))

	// The last phase was stalled: the master and the healthy slave hold every document, and the
	// stalled slave's misses of that phase are all in the ledger.
	if err := r.converged("es7", "es8"); err != nil {
		t.Error(err)
	}
	last := stalled[len(stalled)-1].version
	ctl := openMySQL(t, "wye", "wye-control", "wye")
	ledgered := func(cluster string, from int64) map[string]bool {
		rows, err := ctl.Query("SELECT doc_id FROM repair_ledger WHERE cluster = ? AND entity = 'program' AND version >= ?", cluster, from)
		must(t, err)
		defer rows.Close()
		have := map[string]bool{}
		for rows.Next() {
			var id string
			must(t, rows.Scan(&id))
			have[id] = true
		}
		must(t, rows.Err())
		return have
	}
	have := ledgered(r.names["os2"], last)
	var missing []int
	for _, id := range rig.ids {
		if !have[strconv.Itoa(id)] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d programs the stalled slave missed are not in its repair ledger at version %d, first %v",
			len(missing), len(rig.ids), last, missing[:min(10, len(missing))])
	}
	if n := len(ledgered(r.names["es7"], 0)); n != 0 {
		t.Errorf("%d master documents in the repair ledger: the master is never ledgered", n)
	}
}

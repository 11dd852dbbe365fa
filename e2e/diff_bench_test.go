//go:build bench

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/diff"
)

// TestDiffDocsBenchmark measures `wye diff docs` of two equal clusters (es7 against es8,
// content all) beside a bare scan of es7 with _source, with the diff's peak RSS and CPU time,
// on WYE_BENCH_DIFF_DOCS generated programs (e.g. 200000; the sizes in docs/diff.md, "Costs")
// bulk-loaded into both, WYE_BENCH_DIFF_ROUNDS rounds (3). It is a measurement, not a check of
// behaviour: it is built only with -tags bench (never by make test).
func TestDiffDocsBenchmark(t *testing.T) {
	n := envInt(t, "WYE_BENCH_DIFF_DOCS", 200000)
	rounds := envInt(t, "WYE_BENCH_DIFF_ROUNDS", 3)
	w := newNightlyWorld(t, 1, 1, 0, 0, 1)
	wyeBinary(t)
	began := time.Now()
	bulkLoadPrograms(t, w.r, []string{"es7", "es8"}, n, w.r.version)
	t.Logf("%d generated programs bulk-loaded into es7 and es8 in %v", n, time.Since(began).Round(time.Millisecond))
	c, err := cluster.New(cluster.Options{Name: "es7", URLs: []string{clusterURL(t, "es7")}, RequestTimeout: time.Minute})
	must(t, err)
	for round := range rounds {
		began := time.Now()
		var seen int
		must(t, c.Scan(t.Context(), w.r.index, diff.DefaultScanPage, true, func(h []cluster.Hit) error { seen += len(h); return nil }))
		scan := time.Since(began)
		began = time.Now()
		p := w.startDiff("docs", "--clusters", w.r.names["es7"]+","+w.r.names["es8"])
		// The peak RSS of the process since its exec (VmHWM), read until it ends: the rusage of a
		// child counts the parent's pages it was forked with.
		var hwm string
		for p.running() {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
						hwm = strings.TrimSpace(v)
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		res := p.finish(t, 0)
		took := time.Since(began)
		cpu := p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
		t.Logf("round %d, %d documents: bare scan of es7 with _source %v; wye diff docs es7/es8 (content all, process included) %v (%.2fx), peak RSS %s, CPU %v, %d fetched in full\n%s",
			round+1, seen, scan.Round(time.Millisecond), took.Round(time.Millisecond), took.Seconds()/scan.Seconds(), hwm, cpu.Round(time.Millisecond), res.rep.Fetched, res.out)
	}
}

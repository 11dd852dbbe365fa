//go:build bench

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/diff"
)

// TestDiffDocsBenchmark measures `wye diff docs` of two equal clusters (es7 against es8,
// content all) beside a bare scan of es7 with _source, with the diff's peak RSS, on a catalog of
// WYE_BENCH_DIFF_DOCS programs (e.g. 200000; the sizes in docs/diff.md, "Costs"). It is a
// measurement, not a check of behaviour: it is built only with -tags bench (never by make test).
func TestDiffDocsBenchmark(t *testing.T) {
	n := envInt(t, "WYE_BENCH_DIFF_DOCS", 200000)
	w := newNightlyWorld(t, 10, 200, n, n/2, 50)
	w.startStream()
	w.startNightly(filepath.Join(t.TempDir(), "nightly.json")).finish(t, 20*time.Minute, 0)
	c, err := cluster.New(cluster.Options{Name: "es7", URLs: []string{clusterURL(t, "es7")}, RequestTimeout: time.Minute})
	must(t, err)
	must(t, c.Refresh(t.Context(), w.r.index))
	for round := range 2 {
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
		t.Logf("round %d, %d documents: bare scan of es7 with _source %v; wye diff docs es7/es8 (content all, process included) %v (%.2fx), peak RSS %s, %d fetched in full\n%s",
			round+1, seen, scan.Round(time.Millisecond), took.Round(time.Millisecond), took.Seconds()/scan.Seconds(), hwm, res.rep.Fetched, res.out)
	}
}

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/status"
)

// `wye repair` and `wye status` on the real stack (issue 15): a slave that misses writes while
// a workload runs, seen by status, repaired from its ledger alone.

// wye runs one wye command on w's configuration to its end and returns its exit code, stdout
// and stderr.
func (w *nightlyWorld) wye(args ...string) (int, string, string) {
	w.t.Helper()
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	cmd := exec.CommandContext(w.t.Context(), wyeBinary(w.t), append(args, "-c", w.cfg)...)
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_AMQP_PASSWORD="+amqpPass)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		w.t.Fatalf("wye %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// status runs `wye status --json` (the indexer's counters read from metrics) and returns its
// exit code and report.
func (w *nightlyWorld) status(metrics string) (int, status.Report) {
	w.t.Helper()
	code, out, errOut := w.wye("status", "--json", "--metrics", metrics)
	var rep status.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		w.t.Fatalf("wye status --json: exit %d, %v:\n%s\n%s", code, err, out, errOut)
	}
	return code, rep
}

func clusterStatus(t *testing.T, rep status.Report, name string) *status.ClusterStatus {
	t.Helper()
	for _, c := range rep.Clusters {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("status has no cluster %s: %+v", name, rep.Clusters)
	return nil
}

// workload changes random programs at workloadPace until stop is called; stop returns the
// changes made by kind.
func (w *nightlyWorld) workload() (stop func() map[string]int) {
	low, high := programRange(w.c)
	done := make(chan struct{})
	var wg sync.WaitGroup
	ops := map[string]int{}
	var deleted []int
	wg.Go(func() {
		pace := workloadPace(w.t)
		for {
			select {
			case <-done:
				return
			case <-pace.C:
			}
			changeProgram(w.c, low+rand.IntN(high-low+1), &deleted, ops, "")
		}
	})
	return func() map[string]int {
		close(done)
		wg.Wait()
		return ops
	}
}

var repairedLine = regexp.MustCompile(`(?m)^(\S+): (\d+) ids repaired \((\d+) written, (\d+) deleted, (\d+) already current\)`)

// TestARepairBringsASlaveThatMissedWritesBackToMySQLFromItsLedgerAlone prevents a slave that
// was unreachable from staying wrong until the next full resync, and status from calling such
// a fleet healthy: os2 is reached through a proxy that resets every connection for 20 s while
// a workload changes programs. Meanwhile `wye status` exits 1 naming os2, its failed share and
// its ledger growing. Once os2 answers again, es7 and es8 equal MySQL and os2 does not; `wye
// repair os2`, under the workload, repairs exactly the ledger's ids (no scan of the table: its
// count is the ledger's), after which os2 equals MySQL; a second repair finds nothing to do,
// and status exits 0.
func TestARepairBringsASlaveThatMissedWritesBackToMySQLFromItsLedgerAlone(t *testing.T) {
	w := newNightlyWorld(t, 2, 6, 300, 150, 8)
	os2URL, err := url.Parse(w.r.urls["os2"])
	must(t, err)
	proxy := startProxy(t, "repair-os2-"+w.r.id, os2URL.Host)
	w.rewrite(strconv.Quote(w.r.urls["os2"]), strconv.Quote("http://"+proxy.Listen))
	stream := w.startStream()
	w.run(0) // the initial load: every cluster equals MySQL
	os2 := w.r.names["os2"]

	stop := w.workload()
	time.Sleep(2 * time.Second) // some writes every cluster takes
	down := time.Now()
	addToxic(t, proxy, `{"name":"down","type":"reset_peer","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)
	var ledger []int64
	eventually(t, time.Minute, func() error {
		code, rep := w.status(stream.metrics)
		c := clusterStatus(t, rep, os2)
		if code != 1 || c.Reachable || c.Ledger == 0 {
			return fmt.Errorf("status exit %d, %s reachable %v, ledger %d; want exit 1, unreachable, a ledger", code, os2, c.Reachable, c.Ledger)
		}
		if len(ledger) == 0 || ledger[len(ledger)-1] != c.Ledger {
			ledger = append(ledger, c.Ledger)
		}
		if !anyContains(rep.Problems, "cluster "+os2+": unreachable") || !anyContains(rep.Problems, "wye repair "+os2) {
			return fmt.Errorf("problems %q name neither os2 unreachable nor its repair", rep.Problems)
		}
		if c.FailedShare == nil || *c.FailedShare == 0 || rep.FailedSource != "metrics" {
			return fmt.Errorf("os2 failed share %v from %s, want above 0 from the indexer's metrics", c.FailedShare, rep.FailedSource)
		}
		if len(ledger) < 2 || time.Since(down) < 20*time.Second {
			return fmt.Errorf("ledger readings %v after %v", ledger, time.Since(down).Round(time.Second))
		}
		return nil
	})
	t.Logf("while os2 was down, status read its ledger growing: %v", ledger)
	must(t, proxy.Toxics.RemoveToxic(t.Context(), "down"))
	ops := stop()
	t.Logf("workload while os2 was down: %v", ops)

	eventually(t, time.Minute, func() error { return w.equalOn("es7", "es8") })
	if err := w.equalOn("os2"); err == nil {
		t.Fatal("os2 equals MySQL before the repair: it missed nothing, the test proves nothing")
	}
	pending := w.column("SELECT doc_id FROM repair_ledger WHERE cluster = ? AND repaired_at IS NULL", w.ctl, os2)

	code, out, errOut := w.wye("repair", "--all", "--dry-run")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("(would %d)", len(pending))) || !strings.Contains(out, w.r.names["es8"]+": nothing to repair") {
		t.Errorf("dry run of --all: exit %d, want 0, os2 would repair %d, es8 nothing:\n%s\n%s", code, len(pending), out, errOut)
	}
	if after := w.column("SELECT doc_id FROM repair_ledger WHERE cluster = ? AND repaired_at IS NULL", w.ctl, os2); len(after) != len(pending) {
		t.Errorf("the dry run changed the ledger: %d pending, %d before", len(after), len(pending))
	}

	stop = w.workload() // the repair runs under the stream
	began := time.Now()
	code, out, errOut = w.wye("repair", os2, "--log-level", "debug")
	took := time.Since(began)
	stop()
	if code != 0 {
		t.Fatalf("wye repair %s: exit %d\n%s\n%s", os2, code, out, errOut)
	}
	m := repairedLine.FindStringSubmatch(out)
	if m == nil || m[1] != os2 {
		t.Fatalf("the repair does not say how many ids it repaired:\n%s", out)
	}
	repaired, _ := strconv.Atoi(m[2])
	t.Logf("repair of %d pending ids in %v:\n%s", len(pending), took.Round(time.Millisecond), out)
	if repaired < len(pending) || repaired == 0 {
		t.Errorf("repaired %d ids, the ledger held %d pending", repaired, len(pending))
	}
	if programs := int(w.programs()); repaired > len(pending)+programs/10 {
		t.Errorf("repaired %d ids for %d pending: more than the ledger, as a resync would", repaired, len(pending))
	}
	eventually(t, time.Minute, w.equalsMySQL)

	code, out, errOut = w.wye("repair", os2)
	if code != 0 || !strings.Contains(out, os2+": nothing to repair") {
		t.Errorf("second repair: exit %d, want 0 and nothing to repair:\n%s\n%s", code, out, errOut)
	}
	code, rep := w.status(stream.metrics)
	if code != 0 || !rep.Healthy() {
		t.Errorf("status after the repair: exit %d, problems %q", code, rep.Problems)
	}
	if c := clusterStatus(t, rep, os2); !c.Reachable || c.Ledger != 0 || c.Health == "red" {
		t.Errorf("os2 after the repair: %+v", c)
	}
	code, out, _ = w.wye("status", "--metrics", stream.metrics)
	t.Logf("wye status after the repair (exit %d):\n%s", code, out)
	if err := w.r.parkedCount(0); err != nil {
		t.Error(err)
	}
}

// anyContains reports whether a line of lines contains s.
func anyContains(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// TestMarkingARepairLeavesAnEntryWhoseSlaveMissedANewerWriteMeanwhile prevents the repair's
// mark from hiding a miss recorded after its snapshot: on the real control schema, an entry
// whose missed version grew past the version the repair wrote stays pending, one at or below
// it is marked, and the pages of pending entries neither skip nor repeat one.
func TestMarkingARepairLeavesAnEntryWhoseSlaveMissedANewerWriteMeanwhile(t *testing.T) {
	requireReachable(t, "MariaDB", mysqlAddr)
	ctx := t.Context()
	store, err := control.Open(ctx, mysqlDriverConfig(mysqlAppUser, mysqlAppPass, privateControl(t)))
	must(t, err)
	t.Cleanup(func() { store.Close() })
	var missed []indexer.Missed
	for i := range 7 {
		missed = append(missed, indexer.Missed{Entity: "program", ID: strconv.Itoa(i), Version: 100, Class: "retryable", Reason: "down"})
	}
	must(t, store.Record(ctx, "os2", missed))

	var seen []string
	for from := (control.LedgerKey{}); ; {
		page, err := store.Pending(ctx, "os2", from, 3)
		must(t, err)
		for _, e := range page {
			seen = append(seen, e.ID)
		}
		if len(page) < 3 {
			break
		}
		from = control.LedgerKey{Entity: page[len(page)-1].Entity, ID: page[len(page)-1].ID}
	}
	if strings.Join(seen, ",") != "0,1,2,3,4,5,6" {
		t.Fatalf("pages of pending entries: %v", seen)
	}

	// The repair wrote 0..6 at version 200; meanwhile the slave missed 3 again at 300.
	must(t, store.Record(ctx, "os2", []indexer.Missed{{Entity: "program", ID: "3", Version: 300, Class: "retryable", Reason: "down"}}))
	var done []control.Repaired
	for _, id := range seen {
		done = append(done, control.Repaired{Entity: "program", ID: id, Version: 200})
	}
	n, err := store.MarkRepaired(ctx, "os2", done)
	must(t, err)
	left, err := store.Pending(ctx, "os2", control.LedgerKey{}, 10)
	must(t, err)
	if n != 6 || len(left) != 1 || left[0].ID != "3" || left[0].Version != 300 {
		t.Fatalf("marked %d, pending %+v; want 6 marked and 3 pending at 300", n, left)
	}
	stats, err := store.LedgerStats(ctx, time.Minute)
	must(t, err)
	if s := stats["os2"]; s.Pending != 1 || s.Recent != 1 || s.Oldest.IsZero() {
		t.Errorf("ledger stats %+v, want 1 pending, missed within the minute", s)
	}
	if n, err := store.MarkRepaired(ctx, "os2", []control.Repaired{{Entity: "program", ID: "3", Version: 300}}); err != nil || n != 1 {
		t.Errorf("marking 3 at its version: %d, %v", n, err)
	}
}

package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
)

// `wye promote` on the real stack (issue 15): the master switched in turn to every cluster under
// a workload, and the refusals, the race and the failed reader switch. Each test has a nightly
// world (nightly_test.go): its rig, a private control schema, `wye run` as the stream, every
// cluster loaded by `wye nightly`; and mapping files naming the rig's index, so the preflight's
// drift check verifies the rig's indices as `wye mapping verify` would.

// newPromoteWorld is a loaded nightly world of programs whose wye.yaml also names mapping files
// for the rig's index and sets promote.min_interval to an hour (later promotes need --force).
func newPromoteWorld(t *testing.T, programs int) (*nightlyWorld, *wyeProc) {
	t.Helper()
	return newPromoteWorldWith(t, programs, nil)
}

// newPromoteWorldWith is newPromoteWorld with edit applied to the wye.yaml (its text; the world
// for reference) before the stream starts.
func newPromoteWorldWith(t *testing.T, programs int, edit func(w *nightlyWorld, cfg string) string) (*nightlyWorld, *wyeProc) {
	t.Helper()
	w := newNightlyWorld(t, 2, 10, programs, programs/2, 20)
	dir := filepath.Join(t.TempDir(), "mappings")
	must(t, os.MkdirAll(filepath.Join(dir, w.r.index, "v1"), 0o755))
	for _, f := range []string{"mapping.json", "opensearch.json"} {
		b, err := os.ReadFile(filepath.Join("../mappings/programs/v1", f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, w.r.index, "v1", f), b, 0o600))
	}
	cfg, err := os.ReadFile(w.cfg)
	must(t, err)
	cfg = append(cfg, fmt.Sprintf("mapping: {dir: %q}\npromote: {min_interval: 1h, sample: 50, auto_after: 5s, auto_every: 1s}\n", dir)...)
	if edit != nil {
		cfg = []byte(edit(w, string(cfg)))
	}
	must(t, os.WriteFile(w.cfg, cfg, 0o600))
	stream := w.startStream()
	began := time.Now()
	w.run(0)
	t.Logf("%d programs loaded by wye nightly in %v", programs, time.Since(began).Round(time.Millisecond))
	return w, stream
}

// promote runs `wye promote <args>` on cfg without a terminal and returns its exit code and output.
func (w *nightlyWorld) promote(cfg string, args ...string) (int, string) {
	w.t.Helper()
	cmd := exec.CommandContext(w.t.Context(), wyeBinary(w.t), append([]string{"promote", "-c", cfg}, args...)...)
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_AMQP_PASSWORD="+amqpPass)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		w.t.Fatalf("run wye promote %v: %v", args, err)
	}
	return 0, string(out)
}

// roles is cluster_roles as one comparable string: cluster role epoch, by cluster.
func (w *nightlyWorld) roles() string {
	w.t.Helper()
	rows, err := w.ctl.Query("SELECT cluster, role, epoch FROM cluster_roles ORDER BY cluster")
	must(w.t, err)
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var c, role string
		var epoch int64
		must(w.t, rows.Scan(&c, &role, &epoch))
		fmt.Fprintf(&b, "%s %s %d; ", c, role, epoch)
	}
	must(w.t, rows.Err())
	return b.String()
}

// master is the master cluster_roles names (the configured names: es7_<id>).
func (w *nightlyWorld) master() string {
	w.t.Helper()
	var m string
	must(w.t, w.ctl.QueryRow("SELECT cluster FROM cluster_roles WHERE role = 'master' ORDER BY epoch DESC LIMIT 1").Scan(&m))
	return m
}

// decided is how many documents cluster decided as the master in the stream's process.
func decided(t *testing.T, stream *wyeProc, cluster string) float64 {
	return (&indexerProc{metrics: stream.metrics}).metric(t, "wye_indexer_decided_total", "cluster", cluster)
}

// programWorkload changes programs at workloadPace until the returned stop is called.
func programWorkload(w *nightlyWorld) (stop func() map[string]int) {
	done := make(chan struct{})
	ops := map[string]int{}
	var wg sync.WaitGroup
	low, high := programRange(w.c)
	tick := workloadPace(w.t)
	wg.Go(func() {
		var deleted []int
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			changeProgram(w.c, low+rand.IntN(high-low+1), &deleted, ops, "")
		}
	})
	return func() map[string]int { close(done); wg.Wait(); return ops }
}

// TestPromoteUnderAWorkloadSwitchesEveryClusterInTurnAndLosesNothing prevents a switch of the
// master that loses a change, parks one, or keeps the old master deciding: under a workload,
// es8 (a slave) is promoted, then es7 again (refused first within promote.min_interval, then
// with --force), then os2. After each switch the new master decides the writes and the old one
// none; at the end every cluster equals MySQL and nothing was parked. The time from the command
// to the first write the new master decided is logged for each switch.
func TestPromoteUnderAWorkloadSwitchesEveryClusterInTurnAndLosesNothing(t *testing.T) {
	w, stream := newPromoteWorld(t, 400)
	stop := programWorkload(w)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	n := w.r.names
	if m := w.master(); m != n["es7"] {
		t.Fatalf("master %s before any promote, want %s", m, n["es7"])
	}
	for i, step := range []struct {
		to   string
		args []string
	}{{"es8", nil}, {"es7", []string{"--force"}}, {"os2", []string{"--force"}}} {
		old, to := w.master(), n[step.to]
		if i == 1 {
			before := w.roles()
			code, out := w.promote(w.cfg, to, "--yes")
			if code != 1 || !strings.Contains(out, "within promote.min_interval 1h0m0s: use --force") {
				t.Fatalf("promote within min_interval: exit %d, want 1 and the anti-flap reason:\n%s", code, out)
			}
			if got := w.roles(); got != before {
				t.Fatalf("a refused promote changed cluster_roles:\n%s\nto\n%s", before, got)
			}
		}
		already := decided(t, stream, to)
		began := time.Now()
		type exit struct {
			code int
			out  string
		}
		done := make(chan exit, 1)
		go func() {
			code, out := w.promote(w.cfg, append([]string{to, "--yes"}, step.args...)...)
			done <- exit{code, out}
		}()
		// While it runs: when the roles switched (the commit, as cluster_roles shows it) and
		// when the new master decided its first write.
		var committed, first time.Duration
		var res *exit
		for deadline := time.Now().Add(time.Minute); (res == nil || first == 0) && time.Now().Before(deadline); {
			select {
			case e := <-done:
				res = &e
			case <-time.After(50 * time.Millisecond):
			}
			if committed == 0 && w.master() == to {
				committed = time.Since(began)
			}
			if first == 0 && decided(t, stream, to) > already {
				first = time.Since(began)
			}
		}
		if res == nil || res.code != 0 {
			t.Fatalf("promote %s: %+v", to, res)
		}
		if first == 0 {
			t.Fatalf("%s decided no write within a minute of its promote", to)
		}
		if !strings.Contains(res.out, "after the switch: the repair ledger of "+to+" is still empty") {
			t.Errorf("promote %s: the new master's ledger after the switch:\n%s", to, res.out)
		}
		t.Logf("promote %s -> %s: roles switched %v after the command started (preflight); first write decided by %s %v after the command started, %v after the switch",
			old, to, committed.Round(time.Millisecond), to, first.Round(time.Millisecond), (first - committed).Round(time.Millisecond))
		// Once the new master decided, the old one decides nothing more: batches and their
		// retries go to the new master.
		oldDecided := decided(t, stream, old)
		newDecided := decided(t, stream, to)
		eventually(t, 20*time.Second, func() error {
			if d := decided(t, stream, to); d < newDecided+50 {
				return fmt.Errorf("%s decided %v documents since, want 50", to, d-newDecided)
			}
			return nil
		})
		if d := decided(t, stream, old); d != oldDecided {
			t.Errorf("the old master %s decided %v documents after %s took over", old, d-oldDecided, to)
		}
	}
	ops := stop()
	stop = nil
	t.Logf("workload: %v", ops)
	w.converges(2 * time.Minute)
	must(t, w.r.parkedCount(0))
	var promoted, refused int
	must(t, w.ctl.QueryRow(`SELECT SUM(outcome = 'promoted'), SUM(outcome = 'refused') FROM promote_journal`).Scan(&promoted, &refused))
	if promoted != 3 || refused != 1 {
		t.Errorf("journal: %d promoted, %d refused; want 3 and 1", promoted, refused)
	}
	fenced := (&indexerProc{metrics: stream.metrics}).metric(t, "wye_indexer_fenced_total")
	t.Logf("documents written again to a new master because the epoch changed mid-write: %v", fenced)
}

// TestPromoteRefusesUnsafeTargetsAndOneOfTwoRacingPromotesWins prevents a promote that changes
// roles when it must not: two promotes started at once (one wins, the other fails naming the
// winner); a reader switch (--exec) that fails (the roles switched back, the journal says
// rolled_back); and targets that are down, have ledger entries, drifted mappings or missing
// documents, each refused with its reason and cluster_roles untouched.
func TestPromoteRefusesUnsafeTargetsAndOneOfTwoRacingPromotesWins(t *testing.T) {
	w, _ := newPromoteWorld(t, 200)
	n := w.r.names

	// Two at once: both checked es7 as the master; the transaction lets one through.
	type result struct {
		to   string
		code int
		out  string
	}
	results := make(chan result, 2)
	for _, c := range []string{"es8", "os2"} {
		go func() {
			code, out := w.promote(w.cfg, n[c], "--yes")
			results <- result{n[c], code, out}
		}()
	}
	a, b := <-results, <-results
	if a.code == b.code || a.code+b.code != 1 {
		t.Fatalf("racing promotes exited %d and %d, want one 0 and one 1:\n%s\n%s", a.code, b.code, a.out, b.out)
	}
	win, lose := a, b
	if a.code != 0 {
		win, lose = b, a
	}
	if !strings.Contains(lose.out, "promote refused") || !strings.Contains(lose.out, win.to) {
		t.Fatalf("the losing promote does not name the winner %s:\n%s", win.to, lose.out)
	}
	if m := w.master(); m != win.to {
		t.Fatalf("master %s, want the winner %s", m, win.to)
	}
	t.Logf("race: %s won; the loser said: %s", win.to, lastLine(lose.out))

	// A reader switch that fails: the roles go back to the winner, the journal says why.
	before := w.roles()
	code, out := w.promote(w.cfg, n["es7"], "--yes", "--force", "--exec", `echo "switching readers from $WYE_OLD_MASTER to $WYE_NEW_MASTER"; exit 3`)
	if code != 1 || !strings.Contains(out, "switching readers from "+win.to+" to "+n["es7"]) ||
		!strings.Contains(out, "roles switched back: "+win.to+" is the master again") {
		t.Fatalf("failed --exec: exit %d, want 1 with the switch back:\n%s", code, out)
	}
	if m := w.master(); m != win.to {
		t.Fatalf("master %s after the failed reader switch, want %s back", m, win.to)
	}
	var outcome, message string
	must(t, w.ctl.QueryRow(`SELECT outcome, message FROM promote_journal WHERE to_cluster = ? ORDER BY id DESC LIMIT 1`, n["es7"]).Scan(&outcome, &message))
	if outcome != "rolled_back" || !strings.Contains(message, "exit status 3") {
		t.Errorf("journal of the failed switch: %s %q, want rolled_back with the command's error", outcome, message)
	}
	if after := w.roles(); after == before {
		t.Errorf("a promote and its roll back left the epochs as they were: %s", after)
	}

	// Each refusal below leaves cluster_roles exactly as it is now.
	before = w.roles()
	refuses := func(what, cfg, target, want string) {
		t.Helper()
		began := time.Now()
		code, out := w.promote(cfg, target, "--yes", "--force")
		if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "promote refused") {
			t.Fatalf("%s: exit %d, want 1 with %q:\n%s", what, code, want, out)
		}
		if got := w.roles(); got != before {
			t.Fatalf("%s: cluster_roles changed:\n%s\nto\n%s", what, before, got)
		}
		t.Logf("%s refused in %v: %s", what, time.Since(began).Round(time.Millisecond), failLine(out))
	}

	// Down: the target's address answers nothing (the shared engines keep running).
	b0, err := os.ReadFile(w.cfg)
	must(t, err)
	loser := strings.TrimSuffix(lose.to, "_"+w.r.id)
	down := strings.Replace(string(b0), fmt.Sprintf("urls: [%q]", w.r.urls[loser]), `urls: ["http://127.0.0.1:1"]`, 1)
	if down == string(b0) {
		t.Fatalf("no urls of %s to replace in %s", loser, w.cfg)
	}
	downCfg := filepath.Join(t.TempDir(), "down.yaml")
	must(t, os.WriteFile(downCfg, []byte(down), 0o600))
	refuses("target down", downCfg, lose.to, "FAIL  reachable      "+lose.to+" is unreachable")

	// A ledger entry not repaired.
	_, err = w.ctl.Exec(`INSERT INTO repair_ledger (cluster, entity, doc_id, version, class, reason) VALUES (?, 'program', '1', 1, 'retryable', 'e2e')`, lose.to)
	must(t, err)
	refuses("ledger not empty", w.cfg, lose.to, "FAIL  repair ledger  1 document(s) in the repair ledger of "+lose.to)
	_, err = w.ctl.Exec(`DELETE FROM repair_ledger WHERE cluster = ?`, lose.to)
	must(t, err)

	// Missing documents: 20 of es7's (a slave now) deleted behind wye's back.
	docs, err := allDocs(t, "es7", w.r.index)
	must(t, err)
	deleted := 0
	for id := range docs {
		if deleted == 20 {
			break
		}
		if status, body := indexerHTTP(t, "DELETE", w.r.urls["es7"]+"/"+w.r.index+"_v1/_doc/"+id, nil); status != 200 {
			t.Fatalf("delete %s on es7: %d %s", id, status, body)
		}
		deleted++
	}
	indexerHTTP(t, "POST", w.r.urls["es7"]+"/"+w.r.index+"/_refresh", nil)
	refuses("lagging target", w.cfg, n["es7"], "FAIL  sample diff    differs from "+win.to+": 20 missing")

	// Mapping drift: a field added to the loser's index by hand.
	if status, body := indexerHTTP(t, "PUT", w.r.urls[loser]+"/"+w.r.index+"_v1/_mapping",
		[]byte(`{"properties":{"promote_drift":{"type":"keyword"}}}`)); status != 200 {
		t.Fatalf("add a field on %s: %d %s", loser, status, body)
	}
	refuses("mapping drift", w.cfg, lose.to, "FAIL  mapping")

	var refused int
	must(t, w.ctl.QueryRow(`SELECT COUNT(*) FROM promote_journal WHERE outcome = 'refused'`).Scan(&refused))
	if refused != 5 {
		t.Errorf("%d refused promotes journaled, want 5 (the race's loser and four refusals)", refused)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// failLine is the first failed check of a promote's output.
func failLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "FAIL") {
			return strings.TrimSpace(l)
		}
	}
	return lastLine(s)
}

// TestAutoFailoverPromotesTheSlaveThatPassesWhenTheMasterIsCutOff prevents an automatic
// failover that never comes, picks a slave with misses, or loses a change: es7, the master, is
// reached by the stream and the watchdog through a proxy; es8 has an entry in its repair ledger.
// Under a workload the proxy is stopped: within promote.auto_after (5 s here) + 30 s the
// watchdog promotes os2, not es8, and its --exec hook runs with both masters. Once es7 is back it
// is a slave; a nightly brings it level, and every cluster equals MySQL with nothing parked.
func TestAutoFailoverPromotesTheSlaveThatPassesWhenTheMasterIsCutOff(t *testing.T) {
	var proxy *toxiproxy.Proxy
	w, _ := newPromoteWorldWith(t, 200, func(w *nightlyWorld, cfg string) string {
		u := w.r.urls["es7"]
		proxy = startProxy(t, "es7", strings.TrimPrefix(u, "http://"))
		out := strings.Replace(cfg, fmt.Sprintf("urls: [%q]", u), fmt.Sprintf("urls: [%q]", "http://"+proxy.Listen), 1)
		if out == cfg {
			t.Fatalf("no urls of es7 to replace in:\n%s", cfg)
		}
		return out
	})
	n := w.r.names
	_, err := w.ctl.Exec(`INSERT INTO repair_ledger (cluster, entity, doc_id, version, class, reason) VALUES (?, 'program', '1', 1, 'retryable', 'e2e')`, n["es8"])
	must(t, err)
	hook := filepath.Join(t.TempDir(), "readers")
	metrics := freePort(t)
	runWye(t, "wye promote --auto", metrics, nil, "promote", "--auto", "-c", w.cfg, "--metrics-listen", metrics,
		"--exec", `echo "$WYE_OLD_MASTER $WYE_NEW_MASTER" > `+hook)
	stop := programWorkload(w)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	if m := w.master(); m != n["es7"] {
		t.Fatalf("master %s before the cut, want es7", m)
	}
	cut := time.Now()
	proxy.Stop()
	eventually(t, 5*time.Second+30*time.Second, func() error {
		if m := w.master(); m != n["os2"] {
			return fmt.Errorf("master %s", m)
		}
		return nil
	})
	t.Logf("os2 promoted %v after the master was cut off (auto_after 5s)", time.Since(cut).Round(time.Millisecond))
	eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(hook)
		if err != nil {
			return err
		}
		if got, want := strings.TrimSpace(string(b)), n["es7"]+" "+n["os2"]; got != want {
			return fmt.Errorf("reader switch got %q, want %q", got, want)
		}
		return nil
	})
	var who string
	must(t, w.ctl.QueryRow(`SELECT who FROM promote_journal WHERE outcome = 'promoted' ORDER BY id DESC LIMIT 1`).Scan(&who))
	if !strings.Contains(who, "(automatic failover)") {
		t.Errorf("journal who %q, want the automatic failover named", who)
	}

	// es7 back: a slave now; what it missed while cut off is brought level by a nightly.
	must(t, proxy.Start())
	ops := stop()
	stop = nil
	t.Logf("workload: %v", ops)
	// The stream catches up on the clusters it could write all along; then es7 is brought level
	// (the workload deleted more than the breaker's 5% while es7 was cut off).
	eventually(t, 2*time.Minute, func() error {
		want, err := catalogDocs(w.r.app)
		if err != nil {
			return err
		}
		for _, c := range []string{"es8", "os2"} {
			got, err := allDocs(t, c, w.r.index)
			if err != nil {
				return err
			}
			if err := diffDocs(c, got, want); err != nil {
				return err
			}
		}
		return nil
	})
	w.run(0, "--clusters", n["es7"], "--allow-mass-delete")
	w.converges(time.Minute)
	must(t, w.r.parkedCount(0))
	if m := w.master(); m != n["os2"] {
		t.Errorf("master %s after es7 came back, want os2 still", m)
	}
}

package e2e

import (
	"encoding/json"
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
func failLine(s string) string { return lineWith(s, "FAIL") }

// lineWith is the first line of s that contains sub, else its last line.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
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
	w.convergesExcept(2*time.Minute, "es7")
	w.run(0, "--clusters", n["es7"], "--allow-mass-delete")
	w.converges(time.Minute)
	must(t, w.r.parkedCount(0))
	if m := w.master(); m != n["os2"] {
		t.Errorf("master %s after es7 came back, want os2 still", m)
	}
}

// maxVersion is the highest wye_version of the rig's index on cluster (es7, es8, os2), read
// at url (the cluster's own address, not a proxy).
func maxVersion(t *testing.T, url, index string) int64 {
	t.Helper()
	status, body := indexerHTTP(t, "POST", url+"/"+index+"/_search",
		[]byte(`{"size":0,"aggs":{"v":{"max":{"field":"wye_version"}}}}`))
	if status != 200 {
		t.Fatalf("max wye_version of %s: %d %s", url, status, body)
	}
	var res struct {
		Aggregations struct {
			V struct {
				Value float64 `json:"value"`
			} `json:"v"`
		} `json:"aggregations"`
	}
	must(t, json.Unmarshal(body, &res))
	return int64(res.Aggregations.V.Value)
}

// proxied replaces the urls of cluster (es7, es8, os2) in cfg with those of proxy.
func proxied(t *testing.T, w *nightlyWorld, cfg, cluster string, proxy *toxiproxy.Proxy) string {
	t.Helper()
	u := w.r.urls[cluster]
	out := strings.Replace(cfg, fmt.Sprintf("urls: [%q]", u), fmt.Sprintf("urls: [%q]", "http://"+proxy.Listen), 1)
	if out == cfg {
		t.Fatalf("no urls of %s to replace in:\n%s", cluster, cfg)
	}
	return out
}

// watchdogLine is the first line of the watchdog's output with msg, "" when none yet.
func watchdogLine(p *wyeProc, msg string) string {
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(l, `msg="automatic failover: `+msg+`"`) {
			return l
		}
	}
	return ""
}

// TestAutoFailoverPromotesNothingWhenNoSlavePassesAndPassesOverALaggingSlave prevents an
// automatic failover to a slave that would serve less than the others, and one that promotes
// when no slave is safe. The stream reaches es7 (the master) and es8 through proxies; the
// watchdog reaches es7 through the same proxy, es8 directly, and os2 through a proxy of its own.
// First no slave passes: es8 has a repair-ledger entry and os2 does not answer the watchdog;
// es7 is cut off: once promote.auto_after (5 s) has passed the watchdog declines, logging both
// reasons and counting the decision, and cluster_roles is unchanged. Then es7 is back, es8's
// entry gone, os2 reachable; the stream's writes to es8 stall (a slave a partition away from
// the indexer, still reachable by the watchdog, its ledger still empty) until its highest
// version is behind os2's by more than promote.max_lag; es7 is cut off again: the watchdog
// promotes os2 and logs es8's lag as the reason it passed it over.
func TestAutoFailoverPromotesNothingWhenNoSlavePassesAndPassesOverALaggingSlave(t *testing.T) {
	var toES7, toES8, toOS2 *toxiproxy.Proxy
	w, _ := newPromoteWorldWith(t, 200, func(w *nightlyWorld, cfg string) string {
		toES7 = startProxy(t, "es7", strings.TrimPrefix(w.r.urls["es7"], "http://"))
		toES8 = startProxy(t, "es8", strings.TrimPrefix(w.r.urls["es8"], "http://"))
		toOS2 = startProxy(t, "os2", strings.TrimPrefix(w.r.urls["os2"], "http://"))
		// max_lag: a few changes of binlog; a big slave backlog: es8's stalled writes stay
		// queued (not ledgered) while the watchdog decides.
		out := strings.Replace(cfg, "promote: {", "promote: {max_lag: 2000, ", 1)
		return proxied(t, w, proxied(t, w, out, "es7", toES7), "es8", toES8) + "indexer: {slave_backlog: 100000}\n"
	})
	n := w.r.names
	b, err := os.ReadFile(w.cfg)
	must(t, err)
	watchCfg := strings.Replace(string(b), fmt.Sprintf("urls: [%q]", "http://"+toES8.Listen), fmt.Sprintf("urls: [%q]", w.r.urls["es8"]), 1)
	watchCfg = proxied(t, w, watchCfg, "os2", toOS2)
	watchPath := filepath.Join(t.TempDir(), "watchdog.yaml")
	must(t, os.WriteFile(watchPath, []byte(watchCfg), 0o600))
	metrics := freePort(t)
	watchdog := runWye(t, "wye promote --auto", metrics, nil, "promote", "--auto", "-c", watchPath, "--metrics-listen", metrics)
	decisions := func(d string) float64 {
		return (&indexerProc{metrics: metrics}).metric(t, "wye_promote_auto_decisions_total", "decision", d)
	}
	stop := programWorkload(w)
	defer func() {
		if stop != nil {
			stop()
		}
	}()

	// No slave passes.
	before := w.roles()
	_, err = w.ctl.Exec(`INSERT INTO repair_ledger (cluster, entity, doc_id, version, class, reason) VALUES (?, 'program', '1', 1, 'retryable', 'e2e')`, n["es8"])
	must(t, err)
	toOS2.Stop()
	cut := time.Now()
	toES7.Stop()
	var declined string
	eventually(t, 5*time.Second+30*time.Second, func() error {
		if declined = watchdogLine(watchdog, "declined"); declined == "" {
			return errors.New("no decision declined yet")
		}
		return nil
	})
	t.Logf("declined %v after the master was cut off: %s", time.Since(cut).Round(time.Millisecond), declined)
	for _, want := range []string{"no slave passes every check", n["es8"] + ": repair ledger: 1 document(s)", n["os2"] + ": reachable: " + n["os2"] + " is unreachable"} {
		if !strings.Contains(declined, want) {
			t.Errorf("the declined decision does not say %q: %s", want, declined)
		}
	}
	if d := decisions("declined"); d < 1 {
		t.Errorf("wye_promote_auto_decisions_total{decision=declined} %v, want at least 1", d)
	}
	if got := w.roles(); got != before {
		t.Fatalf("no slave passed, yet cluster_roles changed:\n%s\nto\n%s", before, got)
	}
	if d := decisions("promoted"); d != 0 {
		t.Fatalf("%v promoted decisions with no slave passing", d)
	}

	// es7 back; then es8 lags and es7 is cut off again.
	must(t, toES7.Start())
	eventually(t, 30*time.Second, func() error {
		if watchdogLine(watchdog, "the master answers again") == "" {
			return errors.New("the watchdog has not seen the master answer again")
		}
		return nil
	})
	_, err = w.ctl.Exec(`DELETE FROM repair_ledger WHERE cluster = ?`, n["es8"])
	must(t, err)
	must(t, toOS2.Start())
	addToxic(t, toES8, `{"name":"stall","type":"timeout","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)
	// Stopped before the stream (a deferred call runs before the cleanups): the stalled
	// requests fail at once instead of holding the stream's shutdown.
	defer toES8.Stop()
	stalled := time.Now()
	var behind int64
	eventually(t, 30*time.Second, func() error {
		es8, os2 := maxVersion(t, w.r.urls["es8"], w.r.index), maxVersion(t, w.r.urls["os2"], w.r.index)
		if behind = os2 - es8; behind <= 2000 {
			return fmt.Errorf("es8's highest version %d is not behind os2's %d by more than 2000 yet", es8, os2)
		}
		return nil
	})
	t.Logf("es8 behind os2 by %d after %v of stalled writes", behind, time.Since(stalled).Round(time.Millisecond))
	if pending, err := w.ledgerPending(n["es8"]); err != nil || pending != 0 {
		t.Fatalf("es8's repair ledger: %d entries (%v), want none: es8 must fail on its lag alone", pending, err)
	}
	cut = time.Now()
	toES7.Stop()
	eventually(t, 5*time.Second+30*time.Second, func() error {
		if m := w.master(); m != n["os2"] {
			return fmt.Errorf("master %s", m)
		}
		return nil
	})
	t.Logf("os2 promoted %v after the master was cut off (auto_after 5s, auto_every 1s)", time.Since(cut).Round(time.Millisecond))
	promoted := watchdogLine(watchdog, "promoted")
	t.Logf("%s", promoted)
	for _, want := range []string{"to=" + n["os2"], n["es8"] + ": lag: behind the best slave by more than promote.max_lag 2000"} {
		if !strings.Contains(promoted, want) {
			t.Errorf("the promoted decision does not say %q: %s", want, promoted)
		}
	}
	if d := decisions("promoted"); d != 1 {
		t.Errorf("wye_promote_auto_decisions_total{decision=promoted} %v, want 1", d)
	}
}

// ledgerPending counts cluster's repair-ledger entries not repaired.
func (w *nightlyWorld) ledgerPending(cluster string) (int64, error) {
	var n int64
	err := w.ctl.QueryRow(`SELECT COUNT(*) FROM repair_ledger WHERE cluster = ? AND repaired_at IS NULL`, cluster).Scan(&n)
	return n, err
}

// TestPromoteRepairFirstBringsTheTargetLevelBeforeSwitching prevents a promote to a slave that
// missed writes, and a --repair-first that switches before the target holds what it missed:
// es8, reached by the stream through a proxy, resets every connection while a workload runs,
// so its repair ledger holds ids it really misses. A promote to es8 is refused on its ledger;
// with --repair-first it repairs es8 from the ledger, finds the ledger empty, promotes es8,
// and es8 equals MySQL; `wye status` then shows es8 the master and this promote as the last.
func TestPromoteRepairFirstBringsTheTargetLevelBeforeSwitching(t *testing.T) {
	var toES8 *toxiproxy.Proxy
	w, stream := newPromoteWorldWith(t, 200, func(w *nightlyWorld, cfg string) string {
		toES8 = startProxy(t, "es8", strings.TrimPrefix(w.r.urls["es8"], "http://"))
		return proxied(t, w, cfg, "es8", toES8)
	})
	es8 := w.r.names["es8"]
	stop := programWorkload(w)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	addToxic(t, toES8, `{"name":"down","type":"reset_peer","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)
	eventually(t, time.Minute, func() error {
		if pending, err := w.ledgerPending(es8); err != nil || pending < 20 {
			return fmt.Errorf("es8's ledger: %d entries (%v), want 20", pending, err)
		}
		return nil
	})
	ops := stop()
	stop = nil
	t.Logf("workload: %v", ops)
	must(t, toES8.Toxics.RemoveToxic(t.Context(), "down"))
	// The stream settles on every cluster; es8 still misses what its ledger holds.
	w.convergesExcept(time.Minute, "es8")
	want, err := catalogDocs(w.r.app)
	must(t, err)
	got, err := allDocs(t, "es8", w.r.index)
	must(t, err)
	if diffDocs("es8", got, want) == nil {
		t.Fatal("es8 equals MySQL although its ledger holds ids: nothing for the repair to prove")
	}
	pending, err := w.ledgerPending(es8)
	must(t, err)

	before := w.roles()
	code, out := w.promote(w.cfg, es8, "--yes")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("FAIL  repair ledger  %d document(s) in the repair ledger of %s", pending, es8)) {
		t.Fatalf("promote without --repair-first: exit %d, want 1 refused on the ledger:\n%s", code, out)
	}
	if got := w.roles(); got != before {
		t.Fatalf("a refused promote changed cluster_roles:\n%s\nto\n%s", before, got)
	}

	began := time.Now()
	code, out = w.promote(w.cfg, es8, "--yes", "--repair-first")
	if code != 0 || !strings.Contains(out, "PASS  repair first") || !strings.Contains(out, "PASS  repair ledger  empty") {
		t.Fatalf("promote --repair-first: exit %d, want 0 with the repair and an empty ledger:\n%s", code, out)
	}
	t.Logf("promote --repair-first of %d ledger entries took %v: %s", pending, time.Since(began).Round(time.Millisecond), lineWith(out, "PASS  repair first"))
	if m := w.master(); m != es8 {
		t.Fatalf("master %s after promote --repair-first, want %s", m, es8)
	}
	got, err = allDocs(t, "es8", w.r.index)
	must(t, err)
	if err := diffDocs("es8", got, want); err != nil {
		t.Fatalf("es8 after promote --repair-first: %v", err)
	}
	if n, err := w.ledgerPending(es8); err != nil || n != 0 {
		t.Errorf("es8's ledger after promote --repair-first: %d pending (%v)", n, err)
	}
	// wye status shows es8 the master at the new epoch, and the promote as the last one.
	_, rep := w.status(stream.metrics)
	c := clusterStatus(t, rep, es8)
	if p := rep.Promote; p == nil || p.To != es8 || p.From != w.r.names["es7"] || p.Outcome != "promoted" || p.Epoch != c.Epoch || c.Role != "master" {
		t.Errorf("status: es8 %s at epoch %d, last promote %+v; want es8 master at the last promote's epoch", c.Role, c.Epoch, p)
	}
}

// convergesExcept waits until every cluster but skip equals MySQL.
func (w *nightlyWorld) convergesExcept(timeout time.Duration, skip string) {
	w.t.Helper()
	eventually(w.t, timeout, func() error {
		want, err := catalogDocs(w.r.app)
		if err != nil {
			return err
		}
		for _, c := range clusterNames {
			if c == skip {
				continue
			}
			got, err := allDocs(w.t, c, w.r.index)
			if err != nil {
				return err
			}
			if err := diffDocs(c, got, want); err != nil {
				return err
			}
		}
		return nil
	})
}

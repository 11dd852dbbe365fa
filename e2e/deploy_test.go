package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wyehq/wye/control"
)

// The alerts and the dashboard against the real thing (issue 16): the stack's Prometheus
// (Debian's package, e2e/stack/stack.sh) scrapes a running `wye run`; every metric the alerts
// and the dashboard name is in what it stored, and every alert expression evaluates on the real
// server: those the control schema's history makes true (a nightly that last succeeded 30 h ago,
// then failed) firing, those a healthy stream must not fire, not.

var (
	prometheusURL = env("WYE_E2E_PROMETHEUS_URL", "http://127.0.0.1:9090")
	// promTargets is where the stack's Prometheus reads its file_sd targets.
	promTargets = filepath.Join(env("WYE_STACK_DIR", "/var/tmp/wye-stack"), "prometheus", "targets")
)

// notServedByWyeRun are the names the alerts or the dashboard use that a healthy `wye run`
// does not serve: the nightly process's own series (`wye nightly --metrics-listen`, scraped from
// the nightly pod while it runs), and labelled series that exist only once their event happened
// (a resync mark, a ledger entry, a lost ledger entry). deploy/deploy_test.go checks that all of
// them are registered by the code.
var notServedByWyeRun = []string{
	"wye_nightly_rows_total", "wye_nightly_documents_total", "wye_nightly_running", "wye_nightly_last_duration_seconds",
	"wye_cdc_resync_needed_total", "wye_indexer_ledger_entries_total", "wye_indexer_ledger_lost_total",
	"wye_ledger_oldest_entry_timestamp_seconds",
}

func TestPrometheusScrapesWyeRunAndEvaluatesTheAlerts(t *testing.T) {
	u, err := url.Parse(prometheusURL)
	if err != nil {
		t.Fatal(err)
	}
	requireReachable(t, "Prometheus", u.Host)
	w := newNightlyWorld(t, 1, 2, 4, 4, 2)
	// The history the indexer exports from the control schema (read at its start): an equal
	// nightly run 30 h ago, a failed one since, two ledger entries of slave es8.
	var ctlName string
	must(t, w.ctl.QueryRow("SELECT DATABASE()").Scan(&ctlName))
	store, err := control.Open(context.Background(), mysqlDriverConfig(mysqlAppUser, mysqlAppPass, ctlName))
	must(t, err) // migrates the private control schema
	store.Close()
	slave := w.r.names["es8"]
	for _, q := range []string{
		`INSERT INTO nightly_run (scope, status, started_at, finished_at, summary) VALUES
		   ('all', 'equal', NOW(6) - INTERVAL 31 HOUR, NOW(6) - INTERVAL 30 HOUR, ''),
		   ('all', 'failed', NOW(6) - INTERVAL 3 HOUR, NOW(6) - INTERVAL 2 HOUR, '')`,
		`INSERT INTO repair_ledger (cluster, entity, doc_id, version, class, reason, first_seen) VALUES
		   ('` + slave + `', 'program', '1', 1, 'retryable', 'e2e', NOW(6) - INTERVAL 1 HOUR),
		   ('` + slave + `', 'program', '2', 1, 'retryable', 'e2e', NOW(6))`,
	} {
		_, err := w.ctl.Exec(q)
		must(t, err)
	}
	p := w.startStream()

	job := "wye-e2e-" + w.r.id
	target, _ := json.Marshal([]map[string]any{{"targets": []string{p.metrics}, "labels": map[string]string{"job": job}}})
	file := filepath.Join(promTargets, job+".json")
	must(t, os.WriteFile(file+".tmp", target, 0o644))
	must(t, os.Rename(file+".tmp", file)) // whole, never half-read
	t.Cleanup(func() { os.Remove(file) })

	touchPrograms(w.r) // documents written to every cluster: the per-cluster series appear
	eventually(t, time.Minute, func() error {
		for _, q := range []string{`up{job="` + job + `"} == 1`, `wye_indexer_items_total{job="` + job + `",result="ok"}`,
			`wye_cluster_master{job="` + job + `"}`} {
			if res, err := promQuery(q); err != nil || len(res) == 0 {
				return fmt.Errorf("%s: %d samples, %v", q, len(res), err)
			}
		}
		return nil
	})

	// Every name of the alerts and the dashboard is stored from this scrape, but those a
	// healthy `wye run` cannot serve.
	res, err := promQuery(`group by (__name__) ({job="` + job + `"})`)
	must(t, err)
	stored := map[string]bool{}
	for _, s := range res {
		stored[s.Metric["__name__"]] = true
	}
	rules := readAlertRules(t)
	var exprs []string
	for _, r := range rules {
		exprs = append(exprs, r.Expr)
	}
	dashboard := dashboardExpressions(t)
	exprs = append(exprs, dashboard...)
	for _, name := range wyeNames(exprs) {
		if !stored[name] && !slices.Contains(notServedByWyeRun, name) {
			t.Errorf("%s is used by the alerts or the dashboard but `wye run` does not serve it", name)
		}
	}
	// Every query of the dashboard is PromQL this Prometheus evaluates.
	for _, q := range dashboard {
		if _, err := promQuery(q); err != nil {
			t.Errorf("dashboard: %v", err)
		}
	}

	// The alert expressions on the real server: valid, and true exactly where they should be.
	mustFire := []string{"WyeNightlyNotSucceeded", "WyeNightlyFailed"}
	mustNot := []string{"WyeCDCNoLeader", "WyeCDCTwoLeaders", "WyeBinlogRetentionAtRisk", "WyeCDCBrokerBlocked",
		"WyeCDCResyncNeeded", "WyeMasterUnavailable", "WyeMasterWriteFailures", "WyeSlaveLedgerLost"}
	for _, r := range rules {
		samples, err := promQuery(r.Expr)
		if err != nil {
			t.Errorf("%s: %v", r.Alert, err)
			continue
		}
		switch {
		case slices.Contains(mustFire, r.Alert) && len(samples) == 0:
			t.Errorf("%s does not fire: the last equal nightly run ended 30 h ago, the last run failed", r.Alert)
		case slices.Contains(mustNot, r.Alert) && len(samples) > 0:
			t.Errorf("%s fires on a healthy `wye run`: %+v", r.Alert, samples)
		}
	}
	// The control schema's values, as the indexer exports them.
	since := promValue(t, `time() - max(wye_nightly_last_success_timestamp_seconds{job="`+job+`"})`)
	if since < 30*3600-120 || since > 30*3600+600 {
		t.Errorf("the last nightly success is %.0f s ago, want 30 h (the equal run inserted)", since)
	}
	if open := promValue(t, `wye_ledger_open_entries{job="`+job+`",cluster="`+slave+`"}`); open != 2 {
		t.Errorf("wye_ledger_open_entries of %s = %v, want 2", slave, open)
	}
	if age := promValue(t, `time() - wye_ledger_oldest_entry_timestamp_seconds{job="`+job+`",cluster="`+slave+`"}`); age < 3600-120 || age > 3600+600 {
		t.Errorf("oldest ledger entry of %s is %.0f s old, want 1 h", slave, age)
	}
	if open := promValue(t, `wye_ledger_open_entries{job="`+job+`",cluster="`+w.r.names["os2"]+`"}`); open != 0 {
		t.Errorf("wye_ledger_open_entries of os2 = %v, want 0", open)
	}
	// The master of WyeMasterWriteFailures is the rig's: cluster_roles, from the control schema.
	res, err = promQuery(`max by (cluster) (wye_cluster_master{job="` + job + `"}) == 1`)
	must(t, err)
	if len(res) != 1 || res[0].Metric["cluster"] != w.r.names["es7"] {
		t.Errorf("wye_cluster_master names %+v, want the one master %s", res, w.r.names["es7"])
	}
	// The reader's checkpoint is within the binlog files the source keeps.
	res, err = promQuery(`wye_cdc_checkpoint_file_seq{job="` + job + `"} >= wye_cdc_binlog_oldest_file_seq{job="` + job + `"} > 0`)
	must(t, err)
	if len(res) != 1 {
		t.Errorf("checkpoint file vs oldest binlog file kept: %+v", res)
	}
}

// promValue is the value of the one sample q returns.
func promValue(t *testing.T, q string) float64 {
	t.Helper()
	res, err := promQuery(q)
	must(t, err)
	if len(res) != 1 || len(res[0].Value) != 2 {
		t.Fatalf("%s: want one sample, got %+v", q, res)
	}
	v, err := strconv.ParseFloat(fmt.Sprint(res[0].Value[1]), 64)
	must(t, err)
	return v
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// promQuery evaluates q now on the stack's Prometheus (an instant vector).
func promQuery(q string) ([]promSample, error) {
	resp, err := http.Get(prometheusURL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: %v: %s", q, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func readAlertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile("../deploy/prometheus/rules.yaml")
	must(t, err)
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	must(t, yaml.Unmarshal(b, &f))
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("no alert in deploy/prometheus/rules.yaml")
	}
	return out
}

func dashboardExpressions(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../deploy/grafana/wye.json")
	must(t, err)
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	must(t, json.Unmarshal(b, &d))
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, a := range d.Annotations.List {
		out = append(out, a.Expr)
	}
	return out
}

// wyeNames are the wye_* series names in exprs, a histogram's _bucket/_sum/_count as is.
func wyeNames(exprs []string) []string {
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, n := range regexp.MustCompile(`\bwye_[a-z0-9_]+\b`).FindAllString(e, -1) {
			seen[n] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

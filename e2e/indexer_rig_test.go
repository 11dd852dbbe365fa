package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/indexer/consumer"
)

// indexerRig is one indexer test's private world: its own database (the sample catalog),
// index on each cluster (strict catalog mapping), exchange, queues and cluster names (so
// the shared control schema's rows are its own too).
type indexerRig struct {
	t        *testing.T
	id       string
	db       string
	index    string
	exchange string
	queue    string
	parked   string
	app      *sql.DB
	ch       *amqp.Channel
	confirms chan amqp.Confirmation
	version  int64
	urls     map[string]string // cluster -> url the indexer uses (a test may put a proxy in)
	names    map[string]string // es7 -> es7_<id>
	procs    []*indexerProc
	// viaCDC: the real `wye cdc` publishes the events; publish only counts changes.
	viaCDC   bool
	serverID int
	// entities are more entity definitions (YAML list items, catalog. already replaced) the
	// indexer follows besides the catalog's program.
	entities []string
}

func newIndexerRig(t *testing.T) *indexerRig {
	t.Helper()
	requireReachable(t, "RabbitMQ", amqpAddr(t))
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)
	r := &indexerRig{t: t, id: id, db: "wye_idx_" + id, index: "programs_idx_" + id,
		exchange: "wye.changes.idx." + id, queue: "wye.index.idx." + id, parked: "wye.parked.idx." + id,
		version: time.Now().UnixMicro(), urls: map[string]string{}, names: map[string]string{},
		serverID: 6000 + int(b[0])<<4 | int(b[1]&15)}
	for _, c := range clusterNames {
		r.urls[c] = clusterURL(t, c)
		r.names[c] = c + "_" + id
	}

	root := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	if _, err := root.Exec("CREATE DATABASE " + r.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS " + r.db) })
	r.app = openMySQL(t, mysqlAppUser, mysqlAppPass, r.db)
	schema, err := os.ReadFile("../examples/catalog/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.app.Exec(string(schema)); err != nil {
		t.Fatalf("create catalog: %v", err)
	}

	// The index as `wye mapping apply` lays it out: the shipped catalog mapping in
	// <index>_v1 behind the alias <index>, which is what the indexer resolves its targets from.
	mapping, err := os.ReadFile("../mappings/programs/v1/mapping.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clusterNames {
		base := clusterURL(t, c)
		concrete := r.index + "_v1"
		if status, body := indexerHTTP(t, "PUT", base+"/"+concrete, mapping); status != 200 {
			t.Fatalf("create index on %s: %d %s", c, status, body)
		}
		t.Cleanup(func() { indexerHTTP(t, "DELETE", base+"/"+concrete, nil) })
		alias := []byte(`{"actions":[{"add":{"index":"` + concrete + `","alias":"` + r.index + `"}}]}`)
		if status, body := indexerHTTP(t, "POST", base+"/_aliases", alias); status != 200 {
			t.Fatalf("add alias on %s: %d %s", c, status, body)
		}
	}

	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial amqp: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	r.ch, err = conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	must(t, r.ch.Confirm(false))
	r.confirms = r.ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	// The topology cdc declares (docs/cdc.md), so events published before the indexer
	// starts are kept.
	must(t, r.ch.ExchangeDeclare(r.exchange, amqp.ExchangeTopic, true, false, false, false, nil))
	_, err = r.ch.QueueDeclare(r.queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum",
		"x-delivery-limit": 10, "x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once"})
	must(t, err)
	must(t, r.ch.QueueBind(r.queue, "#", r.exchange, false, nil))
	t.Cleanup(func() {
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		ch.ExchangeDelete(r.exchange, false, false)
		queues := []string{r.queue, r.parked}
		for _, d := range append([]time.Duration{time.Second, 2 * time.Second, 5 * time.Second}, consumer.DefaultRetryDelays...) {
			queues = append(queues, r.queue+".retry."+d.String())
		}
		for _, q := range queues {
			ch.QueueDelete(q, false, false, false)
		}
	})
	ctl := openMySQL(t, "wye", "wye-control", "wye")
	t.Cleanup(func() {
		for _, n := range r.names {
			ctl.Exec("DELETE FROM cluster_roles WHERE cluster = ?", n)
			ctl.Exec("DELETE FROM repair_ledger WHERE cluster = ?", n)
		}
	})
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func indexerHTTP(t testing.TB, method, u string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// config writes the wye.yaml of this rig's indexers.
func (r *indexerRig) config(metrics string) string {
	u, _ := url.Parse(amqpURL)
	u.User = url.User(u.User.Username())
	var clusters strings.Builder
	for _, c := range clusterNames {
		role := "slave"
		if c == "es7" {
			role = "master"
		}
		fmt.Fprintf(&clusters, "  - {name: %s, urls: [%q], role: %s, mapping: v1, timeouts: {request: 3s, bulk: 3s}}\n", r.names[c], r.urls[c], role)
	}
	entity, err := os.ReadFile("../examples/catalog/entity.yaml")
	if err != nil {
		r.t.Fatal(err)
	}
	ent := strings.ReplaceAll(string(entity), "catalog.", r.db+".")
	ent = strings.Replace(ent, "index: programs", "index: "+r.index, 1)
	ent = strings.Join(append([]string{ent}, r.entities...), "\n")
	cfg := fmt.Sprintf(`source: {flavor: mariadb, host: 127.0.0.1, port: 3306, user: %s, password_env: WYE_SOURCE_PASSWORD, server_id: %d}
control: {host: 127.0.0.1, port: 3306, user: wye, password_env: WYE_CONTROL_PASSWORD, database: wye}
amqp: {url: %q, password_env: WYE_AMQP_PASSWORD, exchange: %s, queue: %s, parked: %s, prefetch: 512}
clusters:
%smetrics: {listen: %q}
entities:
%s`, mysqlSrcUser, r.serverID, u.String(), r.exchange, r.queue, r.parked, clusters.String(), metrics, indent(ent))
	p := filepath.Join(r.t.TempDir(), "wye.yaml")
	must(r.t, os.WriteFile(p, []byte(cfg), 0o600))
	return p
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// indexerProc is one `wye indexer` process.
type indexerProc struct {
	cmd     *exec.Cmd
	metrics string
	out     *bytes.Buffer
	mu      *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start runs one indexer replica; it is stopped (SIGTERM, then SIGKILL) at cleanup.
func (r *indexerRig) start(extra ...string) *indexerProc {
	r.t.Helper()
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	metrics := freePort(r.t)
	args := append([]string{"indexer", "-c", r.config(metrics), "--parked-queue", r.parked,
		"--retry-delays", "1s,2s,5s", "--batch-wait", "50ms", "--roles-poll", "1s"}, extra...)
	cmd := exec.Command(wyeBinary(r.t), args...)
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_CONTROL_PASSWORD=wye-control", "WYE_AMQP_PASSWORD="+amqpPass)
	p := &indexerProc{cmd: cmd, metrics: metrics, out: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stdout = lockedWriter{p.mu, p.out}
	cmd.Stderr = lockedWriter{p.mu, p.out}
	must(r.t, cmd.Start())
	r.procs = append(r.procs, p)
	r.t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if r.t.Failed() {
			r.t.Logf("indexer %d output:\n%s", p.cmd.Process.Pid, p.output())
		}
	})
	eventually(r.t, 30*time.Second, func() error {
		res, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("readyz %d\n%s", res.StatusCode, p.output())
		}
		return nil
	})
	return p
}

func (p *indexerProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// metric sums the samples of a metric family whose labels contain every given pair.
func (p *indexerProc) metric(t *testing.T, name string, labels ...string) float64 {
	return scrapeMetric(p.metrics, name, labels...)
}

// scrapeMetric sums the samples of a metric family, served on addr's /metrics, whose labels
// contain every given pair; 0 when addr does not answer.
func scrapeMetric(addr, name string, labels ...string) float64 {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && strings.Contains(line, labels[i]+`="`+labels[i+1]+`"`)
		}
		if ok {
			var v float64
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			sum += v
		}
	}
	return sum
}

// publish sends one change event of the documented message schema (docs/cdc.md) with the
// next version, and waits for the broker's confirm.
func (r *indexerRig) publish(table, op string, before, after map[string]any) {
	r.t.Helper()
	r.version++
	if r.viaCDC {
		return
	}
	m := map[string]any{"schema": 1, "table": r.db + "." + table, "op": op, "version": r.version,
		"commit_ts": time.Now().UTC().Format(time.RFC3339), "position": "test:0", "epoch": 1}
	if before != nil {
		m["before"] = before
	}
	if after != nil {
		m["after"] = after
	}
	body, _ := json.Marshal(m)
	r.publishRaw(r.db+"."+table, body)
}

func (r *indexerRig) publishRaw(key string, body []byte) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(r.t, r.ch.PublishWithContext(ctx, r.exchange, key, true, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: body}))
	select {
	case c := <-r.confirms:
		if !c.Ack {
			r.t.Fatal("broker nacked a test event")
		}
	case <-ctx.Done():
		r.t.Fatal("no confirm for a test event")
	}
}

// docs returns every document of the rig's index on a cluster, by id.
func (r *indexerRig) docs(cluster string) (map[string]map[string]any, error) {
	return r.docsIn(cluster, r.index)
}

// docsIn returns every document of index on a cluster, by id.
func (r *indexerRig) docsIn(cluster, index string) (map[string]map[string]any, error) {
	base := clusterURLs[cluster]
	indexerHTTP(r.t, "POST", base+"/"+index+"/_refresh", nil)
	status, body := indexerHTTP(r.t, "POST", base+"/"+index+"/_search?size=10000&version=true",
		[]byte(`{"query":{"match_all":{}},"track_total_hits":true}`))
	if status != 200 {
		return nil, fmt.Errorf("search %s: %d %s", cluster, status, body)
	}
	var res struct {
		Hits struct {
			Hits []struct {
				ID      string         `json:"_id"`
				Version int64          `json:"_version"`
				Source  map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	for _, h := range res.Hits.Hits {
		if v, _ := h.Source["wye_version"].(float64); int64(v) != h.Version {
			// float64 loses digits beyond 2^53; versions here are microseconds (< 2^53).
			return nil, fmt.Errorf("%s doc %s: wye_version %v differs from _version %d", cluster, h.ID, h.Source["wye_version"], h.Version)
		}
		out[h.ID] = h.Source
	}
	return out, nil
}

// diffDocs compares documents without their version field and says what differs first.
func diffDocs(cluster string, got, want map[string]map[string]any) error {
	var missing, extra, differ []string
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		g = maps_without(g, "wye_version")
		if !reflect.DeepEqual(g, w) {
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			differ = append(differ, fmt.Sprintf("%s:\n  got  %s\n  want %s", id, gb, wb))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(extra)+len(differ) == 0 {
		return nil
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return fmt.Errorf("%s: %d missing %.200v, %d not deleted %.200v, %d differ; first: %.600v",
		cluster, len(missing), missing, len(extra), extra, len(differ), first(differ))
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func maps_without(m map[string]any, key string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// mysqlDriverConfig is a go-sql-driver config for the local MariaDB.
func mysqlDriverConfig(user, pass, db string) *mysql.Config {
	m := mysql.NewConfig()
	m.Net, m.Addr, m.User, m.Passwd, m.DBName = "tcp", mysqlAddr, user, pass, db
	return m
}

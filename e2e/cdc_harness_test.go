package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	amqp "github.com/rabbitmq/amqp091-go"
)

// wyeBinary builds cmd/wye once per test binary.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func wyeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wye-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "wye")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/wye")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// cdcRig is one test's private world: its own database, exchange, queue, reader name.
type cdcRig struct {
	t        *testing.T
	id       string
	db       string // schema of the test tables
	exchange string
	queue    string
	app      *sql.DB
	control  *sql.DB
	dir      string
	serverID int
}

func newCDCRig(t *testing.T) *cdcRig {
	requireReachable(t, "MariaDB", mysqlAddr)
	requireReachable(t, "RabbitMQ", amqpAddr(t))
	id := fmt.Sprintf("%d%03d", time.Now().Unix()%1000000, rand.IntN(1000))
	r := &cdcRig{t: t, id: id, db: "wye_cdc_" + id, exchange: "wye.e2e.changes." + id, queue: "wye.e2e.index." + id,
		dir: t.TempDir(), serverID: 5000 + rand.IntN(4000)}
	root := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	if _, err := root.Exec("CREATE DATABASE " + r.db + " CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS " + r.db) })
	r.app = openMySQL(t, mysqlAppUser, mysqlAppPass, r.db)
	r.app.SetMaxOpenConns(4)
	r.control = openMySQL(t, env("WYE_E2E_CONTROL_USER", "wye"), env("WYE_E2E_CONTROL_PASSWORD", "wye-control"), "wye")
	t.Cleanup(func() {
		r.control.Exec("DELETE FROM cdc_checkpoint WHERE name = ?", r.id)
		r.control.Exec("DELETE FROM cdc_resync_needed WHERE name = ?", r.id)
	})
	r.declare()
	return r
}

// declare creates the queue first (same arguments as the reader would) so no event published
// before the consumer starts can be lost, and deletes it at the end.
func (r *cdcRig) declare() {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		r.t.Fatalf("dial amqp: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		r.t.Fatalf("channel: %v", err)
	}
	if err := ch.ExchangeDeclare(r.exchange, "topic", true, false, false, false, nil); err != nil {
		r.t.Fatalf("declare exchange: %v", err)
	}
	if _, err := ch.QueueDeclare(r.queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum",
		"x-delivery-limit": 10, "x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once"}); err != nil {
		r.t.Fatalf("declare queue: %v", err)
	}
	if err := ch.QueueBind(r.queue, "#", r.exchange, false, nil); err != nil {
		r.t.Fatalf("bind: %v", err)
	}
	r.t.Cleanup(func() {
		conn, err := amqp.Dial(amqpURL)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(r.queue, false, false, false)
			ch.ExchangeDelete(r.exchange, false, false)
		}
	})
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// config writes a wye.yaml for one reader process and returns its path.
func (r *cdcRig) config(metrics string, tables ...string) string {
	return r.configAt(mysqlAddr, metrics, tables...)
}

// configAt is config with MariaDB (source and control) reached at addr, a proxy's.
func (r *cdcRig) configAt(addr, metrics string, tables ...string) string {
	u, _ := url.Parse(amqpURL)
	pass, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	host, port := splitHostPort(r.t, addr)
	var ents strings.Builder
	for _, tb := range tables {
		fmt.Fprintf(&ents, "  - {name: %s, index: %s, root: {table: %s.%s, key: id}}\n", tb, tb, r.db, tb)
	}
	cfg := fmt.Sprintf(`source: {flavor: mariadb, host: %s, port: %d, user: %s, password: %q, server_id: %d}
control: {host: %s, port: %d, user: %s, password: %q, database: wye}
amqp: {url: %q, password: %q, exchange: %q, queue: %q}
clusters:
  - {name: es7, urls: ["http://127.0.0.1:9217"], role: master, mapping: v1}
entities:
%smetrics: {listen: %q}
`, host, port, mysqlSrcUser, mysqlSrcPass, r.serverID, host, port,
		env("WYE_E2E_CONTROL_USER", "wye"), env("WYE_E2E_CONTROL_PASSWORD", "wye-control"),
		u.String(), pass, r.exchange, r.queue, ents.String(), metrics)
	path := filepath.Join(r.dir, fmt.Sprintf("wye-%s.yaml", strings.ReplaceAll(metrics, ":", "_")))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// proc is one `wye cdc` subprocess.
type proc struct {
	cmd     *exec.Cmd
	metrics string
	log     string
	done    chan struct{}
}

func (r *cdcRig) start(tables ...string) *proc {
	r.t.Helper()
	return r.startAt(mysqlAddr, tables...)
}

// startAt starts a reader that reaches MariaDB at addr.
func (r *cdcRig) startAt(addr string, tables ...string) *proc {
	r.t.Helper()
	metrics := freePort(r.t)
	return r.startWith(r.configAt(addr, metrics, tables...), metrics)
}

// startWith starts a reader with the config file cfg, whose metrics.listen is metrics.
func (r *cdcRig) startWith(cfg, metrics string) *proc {
	r.t.Helper()
	logPath := filepath.Join(r.dir, fmt.Sprintf("cdc-%d.log", time.Now().UnixNano()))
	lf, err := os.Create(logPath)
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(wyeBinary(r.t), "cdc", "-c", cfg, "--name", r.id, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start wye cdc: %v", err)
	}
	p := &proc{cmd: cmd, metrics: metrics, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); lf.Close(); close(p.done) }()
	r.t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + p.metrics + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (p *proc) tail(t *testing.T) {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	t.Logf("log of pid %d:\n%s", p.pid(), strings.Join(lines, "\n"))
}

// zstdDecoder reads compressed message bodies (amqp.compression: zstd, the default).
var zstdDecoder, _ = zstd.NewReader(nil)

// message is one consumed message: a batch of events (schema 2).
type message struct {
	Schema  int     `json:"schema"`
	Changes []event `json:"changes"`
}

// event is one change of a consumed message, decoded for the checks.
type event struct {
	Table    string                     `json:"table"`
	Op       string                     `json:"op"`
	PK       map[string]json.RawMessage `json:"pk"`
	Before   map[string]json.RawMessage `json:"before"`
	After    map[string]json.RawMessage `json:"after"`
	Version  int64                      `json:"version"`
	Position string                     `json:"position"`
	GTID     string                     `json:"gtid"`
	Epoch    int                        `json:"epoch"`
	appID    string
}

func (e *event) int(img map[string]json.RawMessage, col string) int64 {
	var n int64
	json.Unmarshal(img[col], &n)
	return n
}

// consumer drains the rig's queue, reconnecting across broker restarts; it acks after storing.
type rigConsumer struct {
	mu     sync.Mutex
	events []event
	bad    []string
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *cdcRig) consume() *rigConsumer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &rigConsumer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			c.session(ctx, r.queue)
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond): // reconnect pace while the broker is down
			}
		}
	}()
	r.t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func (c *rigConsumer) session(ctx context.Context, queue string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	ch.Qos(2000, 0, false)
	dl, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-dl:
			if !ok {
				return
			}
			var m message
			c.mu.Lock()
			n, _ := d.Headers["x-wye-changes"].(int32)
			body, err := d.Body, error(nil)
			if d.ContentEncoding == "zstd" {
				body, err = zstdDecoder.DecodeAll(d.Body, nil)
			}
			if err == nil {
				err = json.Unmarshal(body, &m)
			}
			if err != nil || m.Schema != 2 || len(m.Changes) == 0 || int(n) != len(m.Changes) {
				c.bad = append(c.bad, string(d.Body))
			} else {
				for _, e := range m.Changes {
					e.appID = d.AppId
					c.events = append(c.events, e)
				}
			}
			c.mu.Unlock()
			d.Ack(false)
		}
	}
}

func (c *rigConsumer) snapshot() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event(nil), c.events...)
}

// rowState is what the workload knows about one row: its change counter and parent.
type rowState struct {
	ver     int64
	parent  int64
	deleted bool
}

type move struct{ from, to int64 }

// workload writes to parents and children; every change bumps the row's ver column, so the
// expected changes of a row are ver 1..final (+ a delete). It keeps the expectation in memory.
type workload struct {
	db       *sql.DB
	rows     map[string]map[int64]*rowState // table -> id -> state
	moves    map[[2]int64]move              // child id, ver -> parent move
	changes  int
	nextID   map[string]int64
	rolled   int
	rng      *rand.Rand
	parents  []int64
	children []int64
}

func newWorkload(t *testing.T, db *sql.DB) *workload {
	for _, q := range []string{
		`CREATE TABLE parents (id BIGINT PRIMARY KEY, ver BIGINT NOT NULL, name VARCHAR(64) NOT NULL) ENGINE=InnoDB`,
		`CREATE TABLE children (id BIGINT PRIMARY KEY, ver BIGINT NOT NULL, parent_id BIGINT NOT NULL,
		   note VARCHAR(255) CHARACTER SET utf8mb4, amount DECIMAL(12,2), at DATETIME(6)) ENGINE=InnoDB`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("create table: %v", err)
		}
	}
	return &workload{db: db, rows: map[string]map[int64]*rowState{"parents": {}, "children": {}},
		moves: map[[2]int64]move{}, nextID: map[string]int64{"parents": 1, "children": 1},
		rng: rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))}
}

func (w *workload) pick(ids []int64, n int) []int64 {
	var out []int64
	seen := map[int64]bool{}
	for tries := 0; len(out) < n && tries < n*4 && len(ids) > 0; tries++ {
		id := ids[w.rng.IntN(len(ids))]
		st := w.rows["children"][id]
		if st == nil || st.deleted || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

func inList(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

// step runs one transaction of a random kind and records it once committed.
func (w *workload) step(t *testing.T) {
	tx, err := w.db.Begin()
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	pending := func() {} // applied to the expectation after the commit
	n := 0
	switch k := w.rng.IntN(10); {
	case k < 3 || len(w.children) < 200: // multi-table: a parent and its children
		pid := w.nextID["parents"]
		w.nextID["parents"]++
		mustExec(t, tx, "INSERT INTO parents VALUES (?, 1, ?)", pid, fmt.Sprintf("parent %d ✓", pid))
		var vals []string
		first := w.nextID["children"]
		cnt := 10 + w.rng.IntN(30)
		for i := 0; i < cnt; i++ {
			vals = append(vals, fmt.Sprintf("(%d, 1, %d, 'note é %d', %d.%02d, NOW(6))", first+int64(i), pid, i, i, i))
		}
		w.nextID["children"] += int64(cnt)
		mustExec(t, tx, "INSERT INTO children VALUES "+strings.Join(vals, ","))
		n = cnt + 1
		pending = func() {
			w.rows["parents"][pid] = &rowState{ver: 1}
			w.parents = append(w.parents, pid)
			for i := 0; i < cnt; i++ {
				id := first + int64(i)
				w.rows["children"][id] = &rowState{ver: 1, parent: pid}
				w.children = append(w.children, id)
			}
		}
	case k < 6: // multi-row update, some rows twice in one transaction
		ids := w.pick(w.children, 10+w.rng.IntN(30))
		mustExec(t, tx, "UPDATE children SET ver = ver + 1, amount = amount + 1 WHERE id IN ("+inList(ids)+")")
		twice := ids[:len(ids)/3]
		if len(twice) > 0 {
			mustExec(t, tx, "UPDATE children SET ver = ver + 1, note = CONCAT(note, '+') WHERE id IN ("+inList(twice)+")")
		}
		n = len(ids) + len(twice)
		pending = func() {
			for _, id := range ids {
				w.rows["children"][id].ver++
			}
			for _, id := range twice {
				w.rows["children"][id].ver++
			}
		}
	case k < 8: // child moves to another parent, and the new parent is touched (multi-table)
		ids := w.pick(w.children, 5+w.rng.IntN(15))
		to := w.parents[w.rng.IntN(len(w.parents))]
		mustExec(t, tx, "UPDATE children SET ver = ver + 1, parent_id = ? WHERE id IN ("+inList(ids)+")", to)
		mustExec(t, tx, "UPDATE parents SET ver = ver + 1, name = CONCAT('moved into ', id) WHERE id = ?", to)
		n = len(ids) + 1
		pending = func() {
			for _, id := range ids {
				st := w.rows["children"][id]
				st.ver++
				if st.parent != to {
					w.moves[[2]int64{id, st.ver}] = move{st.parent, to}
				}
				st.parent = to
			}
			w.rows["parents"][to].ver++
		}
	case k < 9: // deletes
		ids := w.pick(w.children, 5+w.rng.IntN(20))
		mustExec(t, tx, "DELETE FROM children WHERE id IN ("+inList(ids)+")")
		n = len(ids)
		pending = func() {
			for _, id := range ids {
				w.rows["children"][id].deleted = true
			}
		}
	default: // rolled back: must never show up
		id := w.nextID["children"] + 1_000_000_000
		mustExec(t, tx, "INSERT INTO children VALUES (?, 1, 0, 'rolled back', 0, NOW(6))", id)
		if err := tx.Rollback(); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		w.rolled++
		return
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	pending()
	w.changes += n
}

func mustExec(t *testing.T, tx *sql.Tx, q string, args ...any) {
	if _, err := tx.Exec(q, args...); err != nil {
		t.Fatalf("%.60s: %v", q, err)
	}
}

type changeKey struct {
	table string
	id    int64
	op    string
	ver   int64
}

// coverage returns what is still missing (nil when every committed change was consumed), the
// duplicates, and order violations.
func (w *workload) coverage(db string, events []event) (missing []string, dups int, problems []string) {
	seen := map[changeKey]int{}
	perRow := map[[2]string][]event{}
	for _, e := range events {
		tbl := strings.TrimPrefix(e.Table, db+".")
		img := e.After
		if e.Op == "delete" {
			img = e.Before
		}
		id, ver := e.int(e.PK, "id"), e.int(img, "ver")
		k := changeKey{tbl, id, e.Op, ver}
		seen[k]++
		if seen[k] == 2 {
			dups++
		} else if seen[k] > 2 {
			dups++
		}
		if seen[k] == 1 {
			perRow[[2]string{tbl, fmt.Sprint(id)}] = append(perRow[[2]string{tbl, fmt.Sprint(id)}], e)
		}
		st := w.rows[tbl][id]
		if st == nil {
			problems = append(problems, fmt.Sprintf("event for a row the workload never committed: %s %s id=%d", e.Op, tbl, id))
			continue
		}
		if e.Op == "update" {
			if e.int(e.Before, "ver") != ver-1 {
				problems = append(problems, fmt.Sprintf("%s id=%d update before.ver=%d after.ver=%d", tbl, id, e.int(e.Before, "ver"), ver))
			}
			if mv, ok := w.moves[[2]int64{id, ver}]; ok && tbl == "children" {
				if b, a := e.int(e.Before, "parent_id"), e.int(e.After, "parent_id"); b != mv.from || a != mv.to {
					problems = append(problems, fmt.Sprintf("child %d move: before.parent_id=%d after.parent_id=%d, want %d -> %d", id, b, a, mv.from, mv.to))
				}
			}
		}
	}
	for tbl, rows := range w.rows {
		for id, st := range rows {
			for v := int64(1); v <= st.ver; v++ {
				op := "update"
				if v == 1 {
					op = "insert"
				}
				if seen[changeKey{tbl, id, op, v}] == 0 {
					missing = append(missing, fmt.Sprintf("%s %s id=%d ver=%d", op, tbl, id, v))
				}
			}
			if st.deleted && seen[changeKey{tbl, id, "delete", st.ver}] == 0 {
				missing = append(missing, fmt.Sprintf("delete %s id=%d", tbl, id))
			}
		}
	}
	// Versions strictly increase along each row's own history (commit order).
	for row, evs := range perRow {
		sort.Slice(evs, func(i, j int) bool {
			ki, kj := orderKey(&evs[i]), orderKey(&evs[j])
			return ki < kj
		})
		for i := 1; i < len(evs); i++ {
			if evs[i].Version <= evs[i-1].Version {
				problems = append(problems, fmt.Sprintf("%v: version %d (%s) not above %d (%s)", row, evs[i].Version, evs[i].Op, evs[i-1].Version, evs[i-1].Op))
			}
		}
	}
	sort.Strings(missing)
	return missing, dups, problems
}

// orderKey sorts a row's events in commit order: by ver, a delete after the update that set it.
func orderKey(e *event) int64 {
	if e.Op == "delete" {
		return e.int(e.Before, "ver")*2 + 1
	}
	return e.int(e.After, "ver") * 2
}

// waitCovered polls until every committed change has been consumed.
func (r *cdcRig) waitCovered(w *workload, c *rigConsumer, timeout time.Duration, procs ...*proc) (events []event, dups int) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		events = c.snapshot()
		missing, d, problems := w.coverage(r.db, events)
		if len(problems) > 0 {
			r.t.Fatalf("%d problems, first: %v", len(problems), problems[:min(5, len(problems))])
		}
		if len(missing) == 0 {
			return events, d
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				p.tail(r.t)
			}
			r.t.Fatalf("%d committed changes never consumed (of %d events), first: %v", len(missing), len(events), missing[:min(10, len(missing))])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitReady(t *testing.T, timeout time.Duration, procs ...*proc) *proc {
	t.Helper()
	var got *proc
	eventually(t, timeout, func() error {
		got = nil
		for _, p := range procs {
			if p.ready() {
				if got != nil {
					return fmt.Errorf("two readers ready at once: pids %d and %d", got.pid(), p.pid())
				}
				got = p
			}
		}
		if got == nil {
			return fmt.Errorf("no reader ready")
		}
		return nil
	})
	return got
}

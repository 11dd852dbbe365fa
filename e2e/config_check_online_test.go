package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/indexer"
	indexersql "github.com/wyehq/wye/indexer/sql"
)

// brokenEntity adds to the rig an entity with two wrong columns, a missing relation table, a
// view as a relation table and a relation that reads every column.
func brokenEntity(r *indexerRig) {
	r.t.Helper()
	if _, err := r.app.Exec("CREATE VIEW tag_names AS SELECT id, name FROM tags"); err != nil {
		r.t.Fatalf("create view: %v", err)
	}
	r.entities = append(r.entities, fmt.Sprintf(`- name: broken
  index: broken_%[2]s
  root: {table: %[1]s.programs, key: id, columns: [id, titel, chanel_id]}
  relations:
    - {name: studio, table: %[1]s.studios, key: id, from: channel_id, columns: [id, name]}
    - {name: tagnames, table: %[1]s.tag_names, key: id, parent_key: id, many: true, columns: [id, name]}
    - {name: channel, table: %[1]s.channels, key: id, from: channel_id}`, r.db, r.id))
}

// wyeTimed runs wye with the rig's configuration (or cfg when set) and env appended to
// the rig's secrets; it returns the exit code, the output and how long it took, and fails the
// test if wye has not exited within limit.
func (r *indexerRig) wyeTimed(t *testing.T, cfg string, env []string, limit time.Duration, args ...string) (int, string, time.Duration) {
	t.Helper()
	if cfg == "" {
		cfg = r.config(freePort(t))
	}
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, wyeBinary(t), append(args, "-c", cfg)...)
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_CONTROL_PASSWORD=wye-control", "WYE_AMQP_PASSWORD="+amqpPass)
	cmd.Env = append(cmd.Env, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("wye %v did not exit within %v:\n%s", args, limit, out)
	}
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("wye %v: %v", args, err)
	}
	return code, string(out), took
}

// queued is the number of messages ready in the rig's change queue.
func (r *indexerRig) queued() int {
	r.t.Helper()
	conn, err := amqp.Dial(amqpURL)
	must(r.t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	must(r.t, err)
	q, err := ch.QueueDeclarePassive(r.queue, true, false, false, false, nil)
	must(r.t, err)
	return q.Messages
}

// TestConfigWithWrongColumnsAndTablesIsRefusedWholeBeforeAnythingIsConsumed prevents the
// faults of an entity from being found one at a time, or only when a change reads them
// (SQL 1054 on every change): one `wye config check --online` lists both wrong columns, the
// missing table as a table and the view, and warns about the relation that reads every
// column; `wye run` and `wye indexer` with that configuration exit 2 with the same list
// before they consume the change waiting in the queue.
func TestConfigWithWrongColumnsAndTablesIsRefusedWholeBeforeAnythingIsConsumed(t *testing.T) {
	r := newIndexerRig(t)
	brokenEntity(r)
	cfg := r.config(freePort(t))
	code, out, _ := r.wyeTimed(t, cfg, nil, 30*time.Second, "config", "check", "--online")
	if code != 2 {
		t.Fatalf("config check --online: exit %d, want 2\n%s", code, out)
	}
	t.Logf("wye config check --online:\n%s", out)
	want := []string{
		`entities[1].root.columns[1] (broken): "titel": no such column in ` + r.db + `.programs`,
		`entities[1].root.columns[2] (broken): "chanel_id": no such column in ` + r.db + `.programs`,
		`entities[1].relations[0].table (broken.studio): "` + r.db + `.studios": no such table in the source`,
		`entities[1].relations[1].table (broken.tagnames): "` + r.db + `.tag_names": is a view: a view writes no binlog events`,
		`warning: entities[1].relations[2].columns (broken.channel): not set: every column of ` + r.db + `.channels is read`,
		`the source lacks what the entities read: 4 faults`,
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("config check --online does not say %q", w)
		}
	}
	if strings.Contains(out, "entities[1].relations[0].columns") || strings.Contains(out, "entities[1].relations[0].key") {
		t.Errorf("the missing table's columns are reported too: a missing table must be reported as a table")
	}
	if strings.Contains(out, "entities[0]") {
		t.Errorf("the valid catalog entity is reported:\n%s", out)
	}

	// A change waits in the queue; neither command may consume it.
	id := 1
	r.publish("programs", "update", map[string]any{"id": id}, map[string]any{"id": id, "title": "x"})
	for _, cmd := range [][]string{{"run", "--name", "checks_" + r.id}, {"indexer"}} {
		code, out, took := r.wyeTimed(t, cfg, nil, 60*time.Second, cmd...)
		if code != 2 {
			t.Errorf("wye %s: exit %d, want 2\n%s", cmd[0], code, out)
		}
		for _, w := range want[:4] {
			if !strings.Contains(out, w) {
				t.Errorf("wye %s does not say %q:\n%s", cmd[0], w, out)
			}
		}
		t.Logf("wye %s exited %d in %v", cmd[0], code, took.Round(time.Millisecond))
	}
	if n := r.queued(); n != 1 {
		t.Errorf("%d messages in the change queue after the refused starts, want the 1 published", n)
	}
}

// TestCheckRefusesAWherePredicateTheSourceCannotRun prevents a relation filter with a typo
// from failing every read of its relation: the check has the server resolve the predicate
// once, without reading a row, and reports the key at fault with the server's words.
func TestCheckRefusesAWherePredicateTheSourceCannotRun(t *testing.T) {
	r := newIndexerRig(t)
	src, err := indexersql.Open(mysqlDriverConfig(mysqlSrcUser, mysqlSrcPass, ""), 1)
	must(t, err)
	defer src.Close()
	need := func(where string) indexer.Need {
		return indexer.Need{Path: "entities[0].relations[1]", Name: "program.episodes", Table: r.db + ".episodes",
			Columns: []indexer.NeedColumn{{Field: "entities[0].relations[1].key", Name: "id", Link: true}}, Where: where}
	}
	found, err := src.Check(context.Background(), []indexer.Need{need("number > 0 AND title <> ''"),
		need("numbr > 0"), need("number >")})
	must(t, err)
	var got []string
	for _, f := range found {
		got = append(got, f.Error())
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], `entities[0].relations[1].where (program.episodes): "numbr > 0": refused by the source`) ||
		!strings.Contains(got[0], "numbr") || !strings.HasPrefix(got[1], `entities[0].relations[1].where (program.episodes): "number >": refused`) {
		t.Errorf("faults:\n%s\nwant the unknown column and the syntax error, each at entities[0].relations[1].where", strings.Join(got, "\n"))
	}
}

// TestWrongPasswordsEndTheStartInsteadOfRetryingForever prevents an indexer with a wrong
// source or broker password from retrying forever at start: it exits non-zero after
// DefaultAuthTries, naming the user and the server.
func TestWrongPasswordsEndTheStartInsteadOfRetryingForever(t *testing.T) {
	r := newIndexerRig(t)
	u, _ := url.Parse(amqpURL)
	for _, c := range []struct{ env, says string }{
		{"WYE_SOURCE_PASSWORD=wrong", fmt.Sprintf("source %s refuses user %q after 3 tries", mysqlAddr, mysqlSrcUser)},
		{"WYE_AMQP_PASSWORD=wrong", fmt.Sprintf("broker %s refuses user %q after 3 tries", u.Host, u.User.Username())},
	} {
		code, out, took := r.wyeTimed(t, "", []string{c.env}, 30*time.Second, "indexer")
		if code == 0 || code == 2 {
			t.Errorf("%s: exit %d, want 1 (a server refused)\n%s", c.env, code, out)
		}
		if !strings.Contains(out, c.says) {
			t.Errorf("%s: the output does not say %q:\n%s", c.env, c.says, out)
		}
		t.Logf("%s: exit %d in %v", c.env, code, took.Round(time.Millisecond))
	}
}

// TestColumnDroppedUnderTheIndexerParksOnlyItsChangesWithoutRetrying prevents a DDL under a
// running indexer from holding the stream in an endless retry while /readyz says ready: the
// changes that read the dropped column are parked with the reason, counted by
// wye_indexer_messages_total{result="parked"}, nothing is retried or kept, and another
// entity's change is written.
func TestColumnDroppedUnderTheIndexerParksOnlyItsChangesWithoutRetrying(t *testing.T) {
	r := newIndexerRig(t)
	networks := networkEntity(t, r)
	c := newIndexerCatalog(r, 13)
	c.seed(1, 1, 2, 0, 0)
	ind := r.start()
	eventually(t, 60*time.Second, func() error { return r.converged("es7") })

	c.exec("ALTER TABLE programs DROP COLUMN code")
	id, _, _ := c.pick("programs")
	c.update("programs", id, map[string]any{"title": "renamed while code is gone"})
	nw, _, _ := c.pick("networks")
	c.update("networks", nw, map[string]any{"name": "Network renamed"})

	eventually(t, 30*time.Second, func() error {
		n, err := searchCount(t, "es7", networks, `{"match_phrase":{"name":"Network renamed"}}`)
		if err != nil || n != 1 {
			return fmt.Errorf("%d networks renamed on es7, want 1 (%v)", n, err)
		}
		if p := ind.metric(t, "wye_indexer_messages_total", "result", "parked"); p < 1 {
			return fmt.Errorf("%v messages parked, want the program change", p)
		}
		return nil
	})
	if !strings.Contains(ind.output(), "Unknown column") {
		t.Errorf("no log line gives the reason (Unknown column):\n%s", ind.output())
	}
	if err := readyz(ind.metrics); err != nil {
		t.Errorf("not ready while only parking: %v", err)
	}
	// Nothing waits for another try: the queue is empty and no batch was kept.
	eventually(t, 10*time.Second, func() error {
		if n := r.queued(); n != 0 {
			return fmt.Errorf("%d messages still in the change queue", n)
		}
		return nil
	})
	for _, m := range [][]string{
		{"wye_indexer_messages_total", "result", "retried"},
		{"wye_indexer_messages_total", "result", "requeued"},
		{"wye_indexer_batch_failures_total"},
	} {
		if v := ind.metric(t, m[0], m[1:]...); v != 0 {
			t.Errorf("%s %v = %v, want 0: a refused read must not be retried", m[0], m[1:], v)
		}
	}
}

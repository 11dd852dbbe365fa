package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/indexer/consumer"
)

// Parked documents used to stay parked forever: once the cause was fixed nothing put them
// back. `wye parked replay` must write them to every cluster, keep what its filter does not
// select, and lose nothing; its dry run and `wye parked list/show` must change nothing.
func TestParkedDocumentsReplayAfterTheFixAndNothingElseIsLost(t *testing.T) {
	r := newIndexerRig(t)
	c := newIndexerCatalog(r, 7)
	c.seed(1, 2, 0, 0, 0)
	for range 3 {
		c.insert("programs", c.program(c.id()))
	}
	var bad []int
	for range 2 {
		id := c.id()
		p := c.program(id)
		p["updated_at"] = "0000-00-00 00:00:00" // MariaDB takes it, the strict date mapping refuses it
		c.insert("programs", p)
		bad = append(bad, id)
	}
	r.publishRaw("x.y", []byte(`{this is not json`))
	ind := r.start()

	master := r.names["es7"]
	eventually(t, 60*time.Second, func() error { return r.parkedCount(3) })

	// list counts by cluster, error type and reason, and consumes nothing, however often it runs.
	var sum consumer.ParkedSummary
	for range 3 {
		out := r.wye(t, 0, "parked", "list", "--json")
		sum = consumer.ParkedSummary{}
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("list --json: %v\n%s", err, out)
		}
		eventually(t, 10*time.Second, func() error { return r.parkedCount(3) })
	}
	if sum.Total != 3 || len(sum.Groups) != 2 {
		t.Fatalf("list: %+v", sum)
	}
	groups := map[string]consumer.ParkedGroup{}
	for _, g := range sum.Groups {
		groups[g.Cluster+"|"+g.ErrorType] = g
	}
	mapping, poison := groups[master+"|mapper_parsing_exception"], groups["|poison"]
	if mapping.Count != 2 || poison.Count != 1 || mapping.OldestAt.IsZero() || !strings.Contains(mapping.Reason, "updated_at") {
		t.Fatalf("list groups: %+v", sum.Groups)
	}
	text := r.wye(t, 0, "parked", "list")
	t.Logf("wye parked list:\n%s", text)
	if !strings.Contains(text, "total: 3 parked") {
		t.Errorf("list:\n%s", text)
	}
	shown := r.wye(t, 0, "parked", "show", mapping.FirstID)
	if !strings.Contains(shown, "x-wye-error-type: mapper_parsing_exception") || !strings.Contains(shown, `"entity":"program"`) {
		t.Errorf("show %s:\n%s", mapping.FirstID, shown)
	}
	if byPos := r.wye(t, 0, "parked", "show", strconv.Itoa(mapping.First)); readOnly(byPos) != readOnly(shown) {
		t.Errorf("show %d (position of %s):\n%s", mapping.First, mapping.FirstID, byPos)
	}
	r.wye(t, 1, "parked", "show", "99")                  // no such message: runtime failure
	r.wye(t, 2, "parked", "show", "zero")                // not a position: usage
	r.wye(t, 2, "parked", "replay", "--older-than", "x") // bad flag: usage

	// The fix: the rows get valid dates. No change event is published: only a replay can
	// bring the documents to the clusters.
	for _, id := range bad {
		c.exec("UPDATE programs SET updated_at = ? WHERE id = ?", "2026-03-01 10:00:00", id)
	}

	acked := ind.metric(t, "wye_indexer_messages_total", "result", "acked")
	out := r.wye(t, 0, "parked", "replay", "--error-type", "mapper_parsing_exception", "--dry-run")
	if !strings.Contains(out, "would replay 2, keep 1") {
		t.Errorf("dry run:\n%s", out)
	}
	eventually(t, 10*time.Second, func() error { return r.parkedCount(3) })
	if got := ind.metric(t, "wye_indexer_messages_total", "result", "acked"); got != acked {
		t.Errorf("the dry run reached the indexer: acked %v, was %v", got, acked)
	}
	if after := r.wye(t, 0, "parked", "show", mapping.FirstID); readOnly(after) != readOnly(shown) {
		t.Errorf("the dry run changed a parked message:\n%s\nwas:\n%s", after, shown)
	}

	out = r.wye(t, 0, "parked", "replay", "--error-type", "mapper_parsing_exception", "--cluster", master)
	t.Logf("wye parked replay:\n%s", out)
	if !strings.Contains(out, "replayed 2, kept 1") {
		t.Errorf("replay:\n%s", out)
	}
	eventually(t, 60*time.Second, func() error { return r.converged("es7", "es8", "os2") })
	// Only the poison message, which no filter selected, is still parked.
	eventually(t, 10*time.Second, func() error { return r.parkedCount(1) })
	sum = consumer.ParkedSummary{}
	must(t, json.Unmarshal([]byte(r.wye(t, 0, "parked", "list", "--json")), &sum))
	if sum.Total != 1 || sum.Groups[0].ErrorType != "poison" {
		t.Errorf("left parked: %+v", sum)
	}
	if got := ind.metric(t, "wye_indexer_messages_total", "result", "parked"); got != 3 {
		t.Errorf("the replayed documents were parked again: %v parked in all", got)
	}

	// A replay that cannot deliver (no such change queue) fails and acks nothing.
	r.wyeEnv(t, []string{"WYE_AMQP_QUEUE=" + r.queue + ".missing"}, 1, "parked", "replay")
	eventually(t, 10*time.Second, func() error { return r.parkedCount(1) })
}

// readOnly is the output of `wye parked show` without what every read changes: the
// position (returns may rotate the queue) and x-delivery-count.
func readOnly(show string) string {
	var keep []string
	for _, l := range strings.Split(show, "\n") {
		if !strings.HasPrefix(l, "position: ") && !strings.HasPrefix(l, "x-delivery-count: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// parkedCount checks that the parked queue holds n ready messages.
func (r *indexerRig) parkedCount(n int) error {
	conn, err := amqp.Dial(amqpURL) // its own: a failed passive declare closes its channel
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	q, err := ch.QueueDeclarePassive(r.parked, true, false, false, false, nil)
	if err != nil {
		return err
	}
	if q.Messages != n {
		return fmt.Errorf("%d parked messages, want %d", q.Messages, n)
	}
	return nil
}

// wye runs the wye binary with the rig's configuration and returns its stdout; it fails the
// test unless the exit code is want.
func (r *indexerRig) wye(t *testing.T, want int, args ...string) string {
	t.Helper()
	return r.wyeEnv(t, nil, want, args...)
}

// wyeEnv is wye with more environment variables (WYE_* overrides).
func (r *indexerRig) wyeEnv(t *testing.T, env []string, want int, args ...string) string {
	t.Helper()
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, wyeBinary(t), append(args, "-c", r.config(freePort(t)))...)
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_CONTROL_PASSWORD=wye-control", "WYE_AMQP_PASSWORD="+amqpPass)
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("wye %v: %v", args, err)
	}
	if code != want {
		t.Fatalf("wye %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out, stderr.String())
	}
	return string(out)
}

// A replay interrupted between its publishes and its acks must lose nothing: every message is
// either still parked or in the change queue (or both: duplicates are harmless).
func TestParkedReplayInterruptedMidwayLosesNoMessage(t *testing.T) {
	r := newIndexerRig(t)           // its change queue; no indexer consumes it
	conn, err := amqp.Dial(amqpURL) // its own: the rig's channel has a confirm listener of 1
	must(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	must(t, err)
	must(t, ch.Confirm(false))
	_, err = ch.QueueDeclare(r.parked, true, false, false, false, broker.ParkedQueueArgs())
	must(t, err)
	const n = 20000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var confirms []*amqp.DeferredConfirmation
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", r.parked, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(i)),
			Headers: amqp.Table{consumer.HeaderErrorType: "mapper_parsing_exception", consumer.HeaderCluster: "es7",
				consumer.HeaderFirstSeen: time.Now().UTC().Format(time.RFC3339Nano), consumer.HeaderTarget: "es7"}})
		must(t, err)
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("park test message: %v %v", ok, err)
		}
	}

	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	cmd := exec.Command(wyeBinary(t), "parked", "replay", "-c", r.config(freePort(t)))
	cmd.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_CONTROL_PASSWORD=wye-control", "WYE_AMQP_PASSWORD="+amqpPass)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	// Interrupt once it has started replaying: the first line it prints.
	buf := make([]byte, 1)
	if _, err := io.ReadFull(stdout, buf); err != nil {
		t.Fatalf("replay printed nothing: %v\n%s", err, stderr.String())
	}
	must(t, cmd.Process.Signal(os.Interrupt))
	rest, _ := io.ReadAll(stdout)
	err = cmd.Wait()
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	t.Logf("replay after the interrupt (%v): %s; stderr: %s", err, lines[len(lines)-1], stderr.String())

	// Everything returns to the queues once the replay's connection is closed.
	seen := map[string]bool{}
	eventually(t, 30*time.Second, func() error {
		for _, q := range []string{r.parked, r.queue} {
			for {
				d, ok, err := ch.Get(q, true)
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				if q == r.queue && d.Headers[consumer.HeaderTarget] != nil {
					return fmt.Errorf("replayed message %s kept %s", d.Body, consumer.HeaderTarget)
				}
				seen[string(d.Body)] = true
			}
		}
		if len(seen) != n {
			return fmt.Errorf("%d of %d messages parked or replayed", len(seen), n)
		}
		return nil
	})
}

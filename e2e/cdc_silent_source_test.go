package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestASilentBinlogConnectionIsDroppedAndTheStreamResumes prevents the reader from waiting
// forever on a replication connection that went silent (the source's host gone without a FIN,
// a partition): the binlog connection runs through a proxy that stops forwarding both ways
// without closing; the control schema is reached directly, so the leader lock holds and only
// the binlog read can notice. The session must end within the silence bound (10 s: five
// heartbeats) plus its watchdog's tick (before, that took go-mysql's read deadline, set
// before every packet at a tenth of cdc's CPU), and once the network is back every change committed
// meanwhile is published.
func TestASilentBinlogConnectionIsDroppedAndTheStreamResumes(t *testing.T) {
	const (
		detect = 15 * time.Second // silenceTimeout (10 s), a watchdog tick, slack for a loaded host
		// go-mysql's close would dial a connection to KILL the old one through the same silent
		// network and wait out the silence again (21 s in all); the stream's dialer refuses it.
		end = 18 * time.Second
	)
	r := newCDCRig(t)
	if _, err := r.app.Exec("CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	c := r.consume()
	proxy := startProxy(t, "binlog-"+r.id, mysqlAddr)
	metrics := freePort(t)
	cfg := r.configAt(mysqlAddr, metrics, "items")
	b, err := os.ReadFile(cfg)
	must(t, err)
	host, port := splitHostPort(t, proxy.Listen)
	viaProxy := strings.Replace(string(b), "source: {flavor: mariadb, host: 127.0.0.1, port: 3306,",
		fmt.Sprintf("source: {flavor: mariadb, host: %s, port: %d,", host, port), 1)
	if viaProxy == string(b) {
		t.Fatalf("the rig's config has no source line to point at the proxy:\n%s", b)
	}
	must(t, os.WriteFile(cfg, []byte(viaProxy), 0o600))
	p := r.startWith(cfg, metrics)
	waitReady(t, 30*time.Second, p)

	published := func(id int) error {
		for _, e := range c.snapshot() {
			if e.Table == r.db+".items" && string(e.PK["id"]) == fmt.Sprint(id) {
				return nil
			}
		}
		return fmt.Errorf("the insert of row %d is not published", id)
	}
	if _, err := r.app.Exec("INSERT INTO items VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error { return published(1) })

	// The source's host vanishes for the binlog connection: no FIN, no data either way.
	addToxic(t, proxy, `{"name":"hold_fin","type":"slow_close","stream":"upstream","toxicity":1,"attributes":{"delay":600000}}`)
	silent := time.Now()
	addToxic(t, proxy, `{"name":"blackhole_up","type":"timeout","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)
	addToxic(t, proxy, `{"name":"blackhole_down","type":"timeout","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`)
	if _, err := r.app.Exec("INSERT INTO items VALUES (2, 2)"); err != nil {
		t.Fatal(err)
	}
	// The read notices first (go-mysql logs it); the session ends at once: go-mysql's close
	// is refused the connection it would KILL the old one over.
	for !strings.Contains(readFile(p.log), "no data from the server for 10s") {
		if time.Since(silent) > detect {
			p.tail(t)
			t.Fatalf("the silent binlog connection was not noticed within %v", detect)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the silent binlog connection was noticed %.1fs after it went silent", time.Since(silent).Seconds())
	for scrapeMetric(metrics, "wye_cdc_sessions_total", "result", "error") == 0 {
		if time.Since(silent) > end {
			p.tail(t)
			t.Fatalf("the session on a silent binlog connection did not end within %v", end)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the session ended %.1fs after the binlog connection went silent", time.Since(silent).Seconds())
	if err := published(2); err == nil {
		t.Fatal("row 2 was published through a connection that forwards nothing: the proxy is not in the way")
	}

	// The network is back: the next session resumes from the checkpoint.
	proxy.Toxics.ResetToxics(t.Context())
	if _, err := r.app.Exec("INSERT INTO items VALUES (3, 3)"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		if err := published(2); err != nil {
			return err
		}
		return published(3)
	})
}

// readFile is the file's content, "" when it cannot be read (yet).
func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/indexer/consumer"
)

// networkEntity adds a second entity to the rig: networks, in an index of their own (dynamic
// mapping, behind an alias as `wye mapping apply` lays it out). Programs read networks too
// (program.channel.network), so a network change concerns both entities.
func networkEntity(t *testing.T, r *indexerRig) string {
	t.Helper()
	index := "networks_idx_" + r.id
	for _, c := range clusterNames {
		base := clusterURL(t, c)
		if status, body := indexerHTTP(t, "PUT", base+"/"+index+"_v1", []byte(`{"mappings":{"dynamic":true}}`)); status != 200 {
			t.Fatalf("create index on %s: %d %s", c, status, body)
		}
		t.Cleanup(func() { indexerHTTP(t, "DELETE", base+"/"+index+"_v1", nil) })
		alias := []byte(`{"actions":[{"add":{"index":"` + index + `_v1","alias":"` + index + `"}}]}`)
		if status, body := indexerHTTP(t, "POST", base+"/_aliases", alias); status != 200 {
			t.Fatalf("add alias on %s: %d %s", c, status, body)
		}
	}
	r.entities = append(r.entities, fmt.Sprintf(
		"- {name: network, index: %s, root: {table: %s.networks, key: id, columns: [id, name]}}", index, r.db))
	return index
}

// searchCount is the documents of index on cluster matching query (a JSON query object).
func searchCount(t *testing.T, cluster, index, query string) (int, error) {
	base := clusterURL(t, cluster)
	indexerHTTP(t, "POST", base+"/"+index+"/_refresh", nil)
	status, body := indexerHTTP(t, "POST", base+"/"+index+"/_count", []byte(`{"query":`+query+`}`))
	if status != 200 {
		return 0, fmt.Errorf("count %s on %s: %d %s", index, cluster, status, body)
	}
	var res struct{ Count int }
	if err := json.Unmarshal(body, &res); err != nil {
		return 0, err
	}
	return res.Count, nil
}

// TestIndexerDroppedColumnParksOnlyItsEntityAndReplaysAfterTheFix prevents a column dropped
// under the indexer from stalling every change behind it: the changes of the entity that
// shows the column are parked with a reason naming it, another entity's changes keep flowing,
// and a replay after the column is back writes the parked ones.
func TestIndexerDroppedColumnParksOnlyItsEntityAndReplaysAfterTheFix(t *testing.T) {
	r := newIndexerRig(t)
	networks := networkEntity(t, r)
	c := newIndexerCatalog(r, 11)
	c.seed(2, 3, 6, 0, 0)
	ind := r.start()
	eventually(t, 60*time.Second, func() error { return r.converged("es7", "es8", "os2") })

	c.exec("ALTER TABLE programs DROP COLUMN code")
	var changed []int
	for range 3 {
		id, _, _ := c.pick("programs")
		c.update("programs", id, map[string]any{"title": "renamed while code is gone " + strconv.Itoa(id)})
		changed = append(changed, id)
	}
	nw, _, _ := c.pick("networks")
	c.update("networks", nw, map[string]any{"name": "Network renamed"})

	// The network entity does not read programs.code: its change is written everywhere.
	eventually(t, 60*time.Second, func() error {
		for _, cl := range clusterNames {
			n, err := searchCount(t, cl, networks, `{"match_phrase":{"name":"Network renamed"}}`)
			if err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("%s: %d networks renamed, want 1", cl, n)
			}
		}
		return nil
	})
	// The program changes (and the network rename, which programs show too) are parked, each
	// with the source's reason naming the column.
	var sum consumer.ParkedSummary
	eventually(t, 60*time.Second, func() error {
		sum = consumer.ParkedSummary{}
		if err := json.Unmarshal([]byte(r.wye(t, 0, "parked", "list", "--json")), &sum); err != nil {
			return err
		}
		if sum.Total == 0 {
			return fmt.Errorf("nothing parked yet")
		}
		return nil
	})
	for _, g := range sum.Groups {
		if g.ErrorType != "source" || !strings.Contains(g.Reason, "code") || g.Cluster != "" {
			t.Errorf("parked group %+v: want only source errors naming the column code", g)
		}
	}
	if readyz(ind.metrics) != nil {
		t.Errorf("the indexer is not ready while only parking: a refused read must not hold the stream")
	}

	// The fix: the column comes back with its values (no change event). Only a replay can
	// bring the changed programs to the clusters.
	c.exec("ALTER TABLE programs ADD COLUMN code VARCHAR(16) NOT NULL DEFAULT ''")
	for id, row := range c.rows["programs"] {
		c.exec("UPDATE programs SET code = ? WHERE id = ?", row["code"], id)
	}
	if err := r.converged("es7"); err == nil {
		t.Fatalf("programs %v converged before the replay: the changes were not parked", changed)
	}
	out := r.wye(t, 0, "parked", "replay")
	t.Logf("wye parked replay:\n%s", out)
	eventually(t, 60*time.Second, func() error { return r.converged("es7", "es8", "os2") })
	eventually(t, 10*time.Second, func() error { return r.parkedCount(0) })
}

// TestIndexerRenameOfASharedRowIsWrittenWithBoundedMemory prevents a rename that touches
// many documents (a channel shown by every program) from reading and sending them as one
// batch: the documents are read and written a chunk at a time, every cluster converges, and
// nothing is parked. It logs the indexer's peak RSS before and after; WYE_RENAME_DOCS sets
// the programs (default 20000; the closing figures use 200000).
func TestIndexerRenameOfASharedRowIsWrittenWithBoundedMemory(t *testing.T) {
	n := 20_000
	if s := os.Getenv("WYE_RENAME_DOCS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("WYE_RENAME_DOCS=%q: want a positive number", s)
		}
	}
	r := newIndexerRig(t)
	c := newIndexerCatalog(r, 12)
	c.seedBulk(1, 1, n, 0, 1)
	channel, _, _ := c.pick("channels")
	ind := r.start()
	idle := peakRSS(t, ind.cmd.Process.Pid)

	start := time.Now()
	c.update("channels", channel, map[string]any{"name": "Renamed"})
	for range 3 { // more changes in the same stream are written, not parked
		c.insert("programs", c.program(c.id()))
	}
	want := 0
	for _, p := range c.rows["programs"] {
		if p["channel_id"] == channel {
			want++
		}
	}
	eventually(t, 2*time.Minute+time.Duration(n/50)*time.Second, func() error {
		for _, cl := range clusterNames {
			got, err := searchCount(t, cl, r.index, `{"match_phrase":{"channel.name":"Renamed"}}`)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s: %d of %d programs show the new channel name", cl, got, want)
			}
		}
		return nil
	})
	took := time.Since(start)
	peak := peakRSS(t, ind.cmd.Process.Pid)
	t.Logf("rename of a channel shown by %d programs: every cluster converged in %s; indexer peak RSS %d MiB idle, %d MiB after (VmHWM)",
		want, took.Round(time.Millisecond), idle>>10, peak>>10)
	for _, cl := range clusterNames {
		got, err := searchCount(t, cl, r.index, `{"terms":{"id":[`+strconv.Itoa(c.next-2)+`,`+strconv.Itoa(c.next-1)+`,`+strconv.Itoa(c.next)+`]}}`)
		if err != nil || got != 3 {
			t.Errorf("%s: %d of the 3 programs inserted after the rename written (%v)", cl, got, err)
		}
	}
	if parked := ind.metric(t, "wye_indexer_messages_total", "result", "parked"); parked != 0 {
		t.Errorf("%v messages parked, want 0", parked)
	}
}

// peakRSS is the peak resident set of a process in KiB (VmHWM in /proc/<pid>/status).
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read peak RSS: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("VmHWM %q: %v", l, err)
			}
			return kb
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

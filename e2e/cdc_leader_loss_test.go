package e2e

import (
	"testing"
	"time"
)

// TestCDCLosesNothingWhenTheLeaderHostVanishes prevents a leader whose host disappears without
// closing anything (power loss, a partition) from stalling the stream for hours or losing the
// changes made meanwhile: the leader reaches MariaDB (binlog, control schema) through a proxy
// that stops forwarding in both directions without closing; the standby, connected directly,
// must lead within 15 s while the workload goes on, and every committed change is published.
func TestCDCLosesNothingWhenTheLeaderHostVanishes(t *testing.T) {
	const bound = 15 * time.Second // the failover requirement
	r := newCDCRig(t)
	w := newWorkload(t, r.app)
	c := r.consume()
	proxy := startProxy(t, "cdc-leader-"+r.id, mysqlAddr)
	leader := r.startAt(proxy.Listen, "parents", "children")
	waitReady(t, 30*time.Second, leader)
	standby := r.start("parents", "children")
	for w.changes < 3000 {
		w.step(t)
	}

	// The leader's host vanishes: no FIN from its side, and no data either way.
	addToxic(t, proxy, `{"name":"hold_fin","type":"slow_close","stream":"upstream","toxicity":1,"attributes":{"delay":600000}}`)
	vanished := time.Now()
	addToxic(t, proxy, `{"name":"blackhole_up","type":"timeout","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)
	addToxic(t, proxy, `{"name":"blackhole_down","type":"timeout","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`)
	before := w.changes
	for !standby.ready() { // the workload goes on while nobody leads
		if time.Since(vanished) > bound {
			standby.tail(t)
			t.Fatalf("the standby does not lead %v after the leader's host vanished", bound)
		}
		w.step(t)
	}
	t.Logf("the standby leads %.2fs after the leader's host vanished; %d changes committed meanwhile",
		time.Since(vanished).Seconds(), w.changes-before)
	for w.changes < before+3000 {
		w.step(t)
	}
	events, dups := r.waitCovered(w, c, 2*time.Minute, standby)
	t.Logf("consumed %d events for %d changes, %d duplicates", len(events), w.changes, dups)
	if len(c.bad) > 0 {
		t.Errorf("%d undecodable messages, first %.200s", len(c.bad), c.bad[0])
	}
}

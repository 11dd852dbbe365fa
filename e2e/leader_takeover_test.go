package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/control"
)

// TestStandbyLeadsWithin15sWhenTheLeaderHostVanishes prevents a standby from waiting hours for
// the leader lock (issue 11): GET_LOCK is released only when MariaDB ends the session, and a
// leader whose host vanishes (power loss, partition) closes nothing, so the session lived until
// TCP keepalive or the server's wait_timeout (8 h by default). The leader's control connections
// run through an in-process toxiproxy; the host "vanishes" when the proxy stops forwarding in
// both directions without closing anything, not even the FIN of the leader's own driver when its
// lock check gives up. The standby, connected directly, must lead within 15 s of that moment,
// and the fencing must hold: the old leader's held context is cancelled and, once the network is
// back, its checkpoint save is refused by the server (its fence is still set: release is not
// called first).
func TestStandbyLeadsWithin15sWhenTheLeaderHostVanishes(t *testing.T) {
	const bound = 15 * time.Second // the failover requirement
	name := fmt.Sprintf("vanish_%d%03d", time.Now().Unix()%1000000, rand.IntN(1000))
	app := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	t.Cleanup(func() { app.Exec("DELETE FROM wye.cdc_checkpoint WHERE name = ?", name) })
	proxy := startProxy(t, "leader-"+name, mysqlAddr)
	leader := openControlVia(t, name, proxy.Listen)
	standby := openTestControl(t, name)
	lock := leader.LockName()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	held, release, err := leader.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire through the proxy: %v", err)
	}
	defer release()
	cp := cdc.Checkpoint{Name: name, Epoch: 1, SourceID: "e2e", Pos: cdc.Position{File: "mariadb-bin.000001", Pos: 4}}
	if err := leader.Save(ctx, cp); err != nil {
		t.Fatalf("save by the leader: %v", err)
	}
	oldHolder := lockHolder(t, app, lock)
	if oldHolder == 0 {
		t.Fatal("nobody holds the leader lock after Acquire")
	}

	// The leader's host vanishes. slow_close first holds back any close from the leader's side
	// (a vanished host sends no FIN), then timeout 0 drops all data both ways without closing.
	addToxic(t, proxy, `{"name":"hold_fin","type":"slow_close","stream":"upstream","toxicity":1,"attributes":{"delay":600000}}`)
	vanished := time.Now()
	addToxic(t, proxy, `{"name":"blackhole_up","type":"timeout","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)
	addToxic(t, proxy, `{"name":"blackhole_down","type":"timeout","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`)

	type acquired struct {
		release func()
		err     error
		at      time.Time
	}
	took := make(chan acquired, 1)
	go func() {
		actx, acancel := context.WithDeadline(ctx, vanished.Add(bound))
		defer acancel()
		_, rel, err := standby.Acquire(actx)
		took <- acquired{rel, err, time.Now()}
	}()

	// The old leader's lock check gets no answer: its held context is cancelled, the fencing's
	// first half, long before the standby can lead.
	eventually(t, 5*time.Second, func() error {
		if held.Err() == nil {
			return errors.New("the old leader's held context is not cancelled")
		}
		return nil
	})
	// Nothing reached the server: it still sees the old session holding the lock, so the
	// takeover below is the server ending that idle session, not a close.
	if h := lockHolder(t, app, lock); h != oldHolder {
		t.Fatalf("lock holder %d %.1fs after the host vanished, want the old session %d still holding it: "+
			"a close reached the server, so this test would not see a vanished host",
			h, time.Since(vanished).Seconds(), oldHolder)
	}

	got := <-took
	if got.err != nil {
		t.Fatalf("the standby did not lead within %v of the leader's host vanishing: %v", bound, got.err)
	}
	defer got.release()
	t.Logf("the standby leads %.2fs after the leader's host vanished", got.at.Sub(vanished).Seconds())
	if h := lockHolder(t, app, lock); h == 0 || h == oldHolder {
		t.Fatalf("lock holder %d after the takeover, want the standby's session (the old one was %d)", h, oldHolder)
	}

	// The network comes back (dropping the stalled connections) and the old leader, still
	// holding its fence, tries to move the checkpoint: the server refuses.
	proxy.Toxics.ResetToxics(ctx)
	stale := cp
	stale.Pos.Pos = 100
	eventually(t, 10*time.Second, func() error {
		err := leader.Save(ctx, stale)
		switch {
		case err == nil:
			t.Fatal("the deposed leader saved a checkpoint after the standby took over: fencing broken")
		case errors.Is(err, control.ErrNotLeader):
			return nil
		}
		return err // a connection the proxy just dropped: try again on a fresh one
	})
	if saved, ok, err := standby.Load(ctx, name); err != nil || !ok || saved.Pos != cp.Pos {
		t.Fatalf("checkpoint after the deposed leader's save: %+v %v %v, want %s", saved, ok, err, cp.Pos)
	}
	next := cp
	next.Pos.Pos = 200
	if err := standby.Save(ctx, next); err != nil {
		t.Fatalf("save by the new leader: %v", err)
	}
}

// startProxy starts an in-process toxiproxy named name from a loopback port to upstream
// (host:port; MariaDB, a cluster); its Listen field is the address to use instead. Cleanup
// removes its toxics and stops it, which closes every connection through it: no session, and
// so no lock, outlives the test.
func startProxy(t *testing.T, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	requireReachable(t, name+" upstream", upstream)
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		t.Fatalf("start toxiproxy %s: %v", name, err)
	}
	t.Cleanup(func() {
		proxy.Toxics.ResetToxics(context.Background())
		proxy.Stop()
	})
	return proxy
}

// addToxic adds a toxic, in toxiproxy's JSON form, to every current and future connection.
func addToxic(t *testing.T, proxy *toxiproxy.Proxy, spec string) {
	t.Helper()
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		t.Fatalf("add toxic %s: %v", spec, err)
	}
}

// openControlVia opens the control-schema adapter of reader name with every connection to
// addr: MariaDB itself, or a proxy in front of it.
func openControlVia(t *testing.T, name, addr string) *control.CDC {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := controlConfig()
	cfg.Addr = addr
	store, err := control.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open control via %s: %v", addr, err)
	}
	t.Cleanup(func() { store.Close() })
	return store.CDC(control.CDCOptions{Name: name, Poll: 100 * time.Millisecond})
}

// lockHolder returns the connection id holding lock, 0 when it is free.
func lockHolder(t *testing.T, app *sql.DB, lock string) int64 {
	t.Helper()
	var id sql.NullInt64
	if err := app.QueryRow("SELECT IS_USED_LOCK(?)", lock).Scan(&id); err != nil {
		t.Fatalf("IS_USED_LOCK(%s): %v", lock, err)
	}
	return id.Int64
}

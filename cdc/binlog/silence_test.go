package binlog

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// pipe returns a watched client end and the server end of an in-memory connection.
func pipe(t *testing.T, timeout time.Duration) (*watchedConn, net.Conn) {
	client, server := net.Pipe()
	c := watch(client, timeout)
	t.Cleanup(func() { c.Close(); server.Close() })
	return c, server
}

func TestASilentServerFailsTheReadInsteadOfHangingForever(t *testing.T) {
	c, _ := pipe(t, 100*time.Millisecond)
	start := time.Now()
	_, err := c.Read(make([]byte, 16))
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "no data from the server for 100ms") {
		t.Fatalf("read of a silent server: %v, want the silence error", err)
	}
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Fatalf("the silent read failed after %v, want just over 100ms", took)
	}
	if _, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatal("a read after the watchdog closed the connection succeeded")
	}
}

func TestHeartbeatsKeepTheConnectionOpen(t *testing.T) {
	c, server := pipe(t, 100*time.Millisecond)
	go func() {
		for range 10 {
			time.Sleep(30 * time.Millisecond)
			if _, err := server.Write([]byte("h")); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 1)
	for i := range 10 {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("read %d with a heartbeat every 30ms: %v", i, err)
		}
	}
}

func TestAStreamThatIsNotReadingIsNotCutOff(t *testing.T) {
	c, server := pipe(t, 50*time.Millisecond)
	// Back-pressure: nobody reads for four timeouts, then the data that waited is read.
	time.Sleep(200 * time.Millisecond)
	go server.Write([]byte("x"))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after a pause without a pending read: %v", err)
	}
}

// TestALiveStreamIsReadInBurstsNotEventByEvent prevents the reader from waking once per
// binlog event at live rates: after a read that caught up, the next one waits the coalescing
// window, and events sent meanwhile come in one read.
func TestALiveStreamIsReadInBurstsNotEventByEvent(t *testing.T) {
	addr, accepted := tcpServer(t)
	d := newWatchedDialer(time.Minute, 500*time.Millisecond)
	c, server := dialAccepted(t, d, addr, accepted)
	d.dumping()

	buf := make([]byte, 64<<10)
	server.Write([]byte("a"))
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("first read: %d bytes, %v", n, err)
	}
	// Three events 5 ms apart: without coalescing the next read returns the first alone.
	go func() {
		for _, e := range []string{"b", "c", "d"} {
			server.Write([]byte(e))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "bcd" {
		t.Fatalf("read after a caught-up read: %q, %v; want the three events in one read", buf[:n], err)
	}
}

// TestTheHandshakeIsNotSlowedByTheCoalescingWindow prevents a slow start: before the dump
// command every answer is short (the handshake, the registration's statements), and waiting
// the window before each next read made every start of the stream about 150 ms longer. Nor
// does a connection dialed after the dump (go-mysql's KILL at close) wait.
func TestTheHandshakeIsNotSlowedByTheCoalescingWindow(t *testing.T) {
	addr, accepted := tcpServer(t)
	d := newWatchedDialer(time.Minute, time.Hour)
	shortReads := func(what string) {
		t.Helper()
		c, server := dialAccepted(t, d, addr, accepted)
		for i := range 3 { // each answer shorter than trickleBytes
			done := make(chan error, 1)
			go func() { server.Write([]byte("ok")); _, err := c.Read(make([]byte, 64<<10)); done <- err }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s: read %d: %v", what, i, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: read %d after a short one waited for the coalescing window", what, i)
			}
		}
		d.dumping()
	}
	shortReads("before the dump command")
	shortReads("a connection dialed after the dump started")
}

// TestABacklogIsReadWithoutWaiting prevents the coalescing window from slowing a backlog: a
// read that fills the buffer is followed by another at once.
func TestABacklogIsReadWithoutWaiting(t *testing.T) {
	client, server := net.Pipe()
	c := watch(client, time.Minute)
	c.window = time.Hour
	t.Cleanup(func() { c.Close(); server.Close() })
	go server.Write(make([]byte, 64<<10))
	buf := make([]byte, 32<<10)
	for i := range 2 {
		done := make(chan error, 1)
		go func() { _, err := io.ReadFull(c, buf); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("read %d of a backlog: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("read %d of a backlog waited for the coalescing window", i)
		}
	}
}

// TestASilencedStreamDoesNotDialTheSilentNetworkAgain prevents a session on a silent network
// from taking twice the silence bound to end: go-mysql's close dials a second connection to
// KILL the first, which would wait out the same silence.
func TestASilencedStreamDoesNotDialTheSilentNetworkAgain(t *testing.T) {
	addr, _ := tcpServer(t) // accepts and says nothing
	dial := newWatchedDialer(100*time.Millisecond, 0).dial
	c, err := dial(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 16)); err == nil || !strings.Contains(err.Error(), "no data from the server") {
		t.Fatalf("read of a silent server: %v, want the silence error", err)
	}
	start := time.Now()
	if _, err := dial(t.Context(), "tcp", addr); err == nil || !strings.Contains(err.Error(), "went silent") {
		t.Fatalf("second dial of a silenced stream: %v, want a refusal", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %v", took)
	}
	other, err := newWatchedDialer(time.Minute, 0).dial(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("another stream's dialer refused too: %v", err)
	}
	other.Close()
}

// dialAccepted dials addr with d and returns both ends, closed when the test ends.
func dialAccepted(t *testing.T, d *watchedDialer, addr string, accepted <-chan net.Conn) (net.Conn, net.Conn) {
	t.Helper()
	c, err := d.dial(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	t.Cleanup(func() { c.Close(); server.Close() })
	return c, server
}

// tcpServer listens on a loopback port until the test ends and sends every connection it
// accepts on the channel (closed with the test).
func tcpServer(t *testing.T) (string, <-chan net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 8)
	t.Cleanup(func() {
		ln.Close()
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	})
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- s
		}
	}()
	return ln.Addr().String(), accepted
}

package binlog

import (
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

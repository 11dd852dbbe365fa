package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestMariaDBIsConfiguredForCDC prevents a source that silently cannot feed the cdc reader:
// without ROW format and FULL images, updates lose the before-image that child moves need.
func TestMariaDBIsConfiguredForCDC(t *testing.T) {
	db := openMySQL(t, mysqlSrcUser, mysqlSrcPass, "")
	var version string
	if err := db.QueryRow("SELECT VERSION()").Scan(&version); err != nil {
		t.Fatalf("select version: %v", err)
	}
	t.Logf("source server: %s", version)
	want := map[string]string{
		"log_bin":             "1",
		"binlog_format":       "ROW",
		"binlog_row_image":    "FULL",
		"binlog_row_metadata": "FULL",
		"gtid_strict_mode":    "1",
	}
	for name, w := range want {
		var got string
		if err := db.QueryRow("SELECT @@" + name).Scan(&got); err != nil {
			t.Fatalf("select @@%s: %v", name, err)
		}
		if got != w {
			t.Errorf("@@%s = %q, want %q", name, got, w)
		}
	}
}

// TestBinlogStreamsRowEventsToReplicationUser prevents a replication user that can connect
// but not stream: it writes a row as the app user and reads its ROWS event from the binlog.
func TestBinlogStreamsRowEventsToReplicationUser(t *testing.T) {
	src := openMySQL(t, mysqlSrcUser, mysqlSrcPass, "")
	app := openMySQL(t, mysqlAppUser, mysqlAppPass, "wye_test")

	var file string
	var pos uint32
	var ignore1, ignore2 any
	if err := src.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &ignore1, &ignore2); err != nil {
		t.Fatalf("show master status: %v", err)
	}
	table := fmt.Sprintf("binlog_probe_%d", time.Now().UnixNano())
	if _, err := app.Exec("CREATE TABLE " + table + " (id BIGINT PRIMARY KEY, note VARCHAR(64)) ENGINE=InnoDB"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() { app.Exec("DROP TABLE " + table) })
	if _, err := app.Exec("INSERT INTO "+table+" VALUES (?, ?)", 42, "héllo ✓"); err != nil {
		t.Fatalf("insert: %v", err)
	}

	host, port := splitHostPort(t, mysqlAddr)
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 4199, Flavor: mysql.MariaDBFlavor, Host: host, Port: port,
		User: mysqlSrcUser, Password: mysqlSrcPass,
	})
	defer syncer.Close()
	stream, err := syncer.StartSync(mysql.Position{Name: file, Pos: pos})
	if err != nil {
		t.Fatalf("start binlog sync at %s:%d: %v", file, pos, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		ev, err := stream.GetEvent(ctx)
		if err != nil {
			t.Fatalf("no row event for %s in the binlog: %v", table, err)
		}
		rows, ok := ev.Event.(*replication.RowsEvent)
		if !ok || string(rows.Table.Table) != table {
			continue
		}
		if len(rows.Rows) != 1 || fmt.Sprint(rows.Rows[0][0]) != "42" {
			t.Fatalf("row event = %v, want one row with id 42", rows.Rows)
		}
		if got := fmt.Sprintf("%s", rows.Rows[0][1]); got != "héllo ✓" {
			t.Fatalf("utf8mb4 text = %q, want %q", got, "héllo ✓")
		}
		return
	}
}

// TestRabbitMQConfirmsAndDelivers prevents a broker setup where publishes are not
// confirmed (the cdc checkpoint depends on confirms) or a quorum queue is not available.
func TestRabbitMQConfirmsAndDelivers(t *testing.T) {
	requireReachable(t, "RabbitMQ", amqpAddr(t))
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial amqp: %v", err)
	}
	defer conn.Close()
	t.Logf("rabbitmq server: %v %v", conn.Properties["product"], conn.Properties["version"])
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("enable confirms: %v", err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 100))

	q := fmt.Sprintf("wye.e2e.%d", time.Now().UnixNano())
	_, err = ch.QueueDeclare(q, true, false, false, false, amqp.Table{
		"x-queue-type": "quorum", "x-delivery-limit": 10,
		"x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once",
	})
	if err != nil {
		t.Fatalf("declare quorum queue: %v", err)
	}
	t.Cleanup(func() { ch.QueueDelete(q, false, false, false) })
	if err := ch.ExchangeDeclare(q+".hash", "x-consistent-hash", false, true, false, false, nil); err != nil {
		t.Fatalf("consistent-hash exchange plugin not enabled: %v", err)
	}

	const n = 100
	for i := 0; i < n; i++ {
		err := ch.PublishWithContext(context.Background(), "", q, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json",
			Body: []byte(fmt.Sprintf(`{"seq":%d}`, i)),
		})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("publish %d nacked by broker", c.DeliveryTag)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d publishes confirmed", i, n)
		}
	}

	if err := ch.Qos(n, 0, false); err != nil {
		t.Fatalf("qos: %v", err)
	}
	deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case d := <-deliveries:
			seen[string(d.Body)] = true
			if err := d.Ack(false); err != nil {
				t.Fatalf("ack: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("consumed %d of %d messages", len(seen), n)
		}
	}
	if !seen[`{"seq":0}`] || !seen[fmt.Sprintf(`{"seq":%d}`, n-1)] {
		t.Fatalf("first or last message missing: %v", seen)
	}
}

func splitHostPort(t testing.TB, addr string) (string, uint16) {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	var port uint16
	if _, err := fmt.Sscan(addr[i+1:], &port); err != nil || i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], port
}

package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

// Endpoints of the local stack. Each can be overridden by env to test another deployment.
var (
	mysqlAddr    = env("WYE_E2E_MYSQL_ADDR", "127.0.0.1:3306")
	mysqlAppUser = env("WYE_E2E_MYSQL_USER", "wye_app")
	mysqlAppPass = env("WYE_E2E_MYSQL_PASSWORD", "wye-app")
	mysqlSrcUser = env("WYE_E2E_SOURCE_USER", "wye_source")
	mysqlSrcPass = env("WYE_E2E_SOURCE_PASSWORD", "wye-source")
	amqpURL      = env("WYE_E2E_AMQP_URL", "amqp://wye:wye-amqp@127.0.0.1:5672/")
	clusterURLs  = map[string]string{
		"es7": env("WYE_E2E_ES7_URL", "http://127.0.0.1:9217"),
		"es8": env("WYE_E2E_ES8_URL", "http://127.0.0.1:9218"),
		"os2": env("WYE_E2E_OS2_URL", "http://127.0.0.1:9219"),
	}
	clusterNames = []string{"es7", "es8", "os2"}
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// requireReachable fails the test when nothing listens on addr (host:port). It never skips,
// in CI or elsewhere: `make test` brings the stack up first, and `make unit` leaves e2e out.
func requireReachable(t testing.TB, what, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s at %s is unreachable (%v); start the stack with `make stack-up`", what, addr, err)
	}
	c.Close()
}

// clusterURL returns the base URL of the named local cluster, after checking it answers.
func clusterURL(t testing.TB, name string) string {
	t.Helper()
	raw, ok := clusterURLs[name]
	if !ok {
		t.Fatalf("unknown cluster %q", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("cluster %s: bad url %q: %v", name, raw, err)
	}
	requireReachable(t, "cluster "+name, u.Host)
	return raw
}

// openMySQL connects as the application user to database db ("" for none).
func openMySQL(t testing.TB, user, pass, db string) *sql.DB {
	t.Helper()
	requireReachable(t, "MariaDB", mysqlAddr)
	d, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?parseTime=true&multiStatements=true", user, pass, mysqlAddr, db))
	if err != nil {
		t.Fatalf("open mysql: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.PingContext(ctx); err != nil {
		t.Fatalf("ping mysql as %s: %v", user, err)
	}
	return d
}

func amqpAddr(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatalf("bad WYE_E2E_AMQP_URL %q: %v", amqpURL, err)
	}
	return u.Host
}

// eventually polls cond until it returns nil or the deadline passes; no sleeps as sync.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met within %v: %v", timeout, err)
}

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/config"
)

// The local stack's MariaDB serves TLS with a CA e2e/stack/stack.sh makes, and has a user that
// may connect over TLS only (REQUIRE SSL) with the grants of both the source and the control
// user: whatever that user reaches, it reached over TLS.
var (
	mysqlCAFile  = env("WYE_E2E_MYSQL_CA_FILE", filepath.Join(env("WYE_STACK_DIR", "/var/tmp/wye-stack"), "mariadb", "tls", "ca.pem"))
	mysqlTLSUser = env("WYE_E2E_TLS_USER", "wye_tls")
	mysqlTLSPass = env("WYE_E2E_TLS_PASSWORD", "wye-tls")
)

// requireTLSOnlyUser fails the test unless the stack's CA is there and its TLS user really is
// refused in the clear: without both, a passing TLS test would prove nothing.
func requireTLSOnlyUser(t *testing.T) {
	t.Helper()
	requireReachable(t, "MariaDB", mysqlAddr)
	if _, err := os.Stat(mysqlCAFile); err != nil {
		t.Fatalf("the stack's MariaDB CA: %v; run `bash e2e/stack/stack.sh up mariadb`", err)
	}
	plain, err := mysql.NewConnector(mysqlDriverConfig(mysqlTLSUser, mysqlTLSPass, ""))
	must(t, err)
	db := sql.OpenDB(plain)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = db.PingContext(ctx)
	if me, ok := errors.AsType[*mysql.MySQLError](err); !ok || me.Number != 1045 {
		t.Fatalf("plain connection of %s: err = %v, want access denied (1045): the user must be created REQUIRE SSL", mysqlTLSUser, err)
	}
}

// rigUser is the user and password of the source and control lines of a rig's wye.yaml,
// whichever way the rig gives the password.
var rigUser = regexp.MustCompile(`^((?:source|control): \{.*)user: [^,]+, password(?:_env)?: [^,]+,`)

// overTLS rewrites a rig's wye.yaml so the source connects as the TLS-only user trusting
// sourceCA, and the control schema trusting controlCA; it returns the new file's path.
func overTLS(t *testing.T, path, sourceCA, controlCA string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	lines := strings.Split(string(b), "\n")
	n := 0
	for i, l := range lines {
		ca := sourceCA
		if strings.HasPrefix(l, "control:") {
			ca = controlCA
		}
		if m := rigUser.FindStringSubmatch(l); m != nil {
			lines[i] = m[1] + `user: ` + mysqlTLSUser + `, password: "` + mysqlTLSPass + `", tls: {ca_file: "` + ca + `"},` + l[len(m[0]):]
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%s: found %d of the source and control lines to put TLS in:\n%s", path, n, b)
	}
	out := filepath.Join(t.TempDir(), "wye-tls.yaml")
	must(t, os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o600))
	return out
}

// otherCA writes the certificate of a CA that signed nothing the stack serves.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not the stack's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	must(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return path
}

// stackSecrets loads a rig's wye.yaml in process with the variables its *_env keys name (the
// ones startWye gives the commands), and no other WYE_* override.
func stackSecrets() config.Options {
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	vars := map[string]string{"WYE_SOURCE_PASSWORD": mysqlSrcPass, "WYE_CONTROL_PASSWORD": "wye-control", "WYE_AMQP_PASSWORD": amqpPass}
	return config.Options{LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

// ping connects with m once and returns the error.
func ping(m *mysql.Config) error {
	conn, err := mysql.NewConnector(m)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// TestCDCAndIndexerConvergeOverVerifiedTLSOnly prevents a MySQL connection of wye (binlog
// stream, SQL reads, control schema) from going in the clear or unverified when its tls block
// is set: cdc and the indexer run as a user MariaDB admits over TLS only, trusting the stack's
// CA with verification on, and the clusters converge.
func TestCDCAndIndexerConvergeOverVerifiedTLSOnly(t *testing.T) {
	requireTLSOnlyUser(t)
	r := newIndexerRig(t)
	r.viaCDC = true
	cfg := overTLS(t, r.config(freePort(t)), mysqlCAFile, mysqlCAFile)

	// The configuration's own connections are TLS sessions, as the TLS-only user.
	c, err := config.Load(cfg, stackSecrets())
	must(t, err)
	for what, m := range map[string]*mysql.Config{"source": c.Source.MySQLConfig(), "control": c.Control.MySQLConfig()} {
		conn, err := mysql.NewConnector(m)
		must(t, err)
		db := sql.OpenDB(conn)
		var name, cipher, user string
		if err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
			t.Errorf("%s: Ssl_cipher %q, %v: want a TLS session", what, cipher, err)
		}
		if err := db.QueryRow("SELECT CURRENT_USER()").Scan(&user); err != nil || !strings.HasPrefix(user, mysqlTLSUser+"@") {
			t.Errorf("%s: connected as %q, %v: want %s", what, user, err, mysqlTLSUser)
		}
		db.Close()
	}

	cdcMetrics, idxMetrics := freePort(t), freePort(t)
	startWye(t, r, "cdc", "cdc", "-c", cfg, "--name", "idx_"+r.id, "--metrics-listen", cdcMetrics)
	startWye(t, r, "indexer", "indexer", "-c", cfg, "--metrics-listen", idxMetrics, "--parked-queue", r.parked,
		"--retry-delays", "1s,2s,5s", "--batch-wait", "50ms", "--roles-poll", "1s")
	eventually(t, 30*time.Second, func() error { return readyz(cdcMetrics) })
	eventually(t, 30*time.Second, func() error { return readyz(idxMetrics) })
	workloadConverges(t, r, 200, 2*time.Minute)
}

// TestWrongMySQLCAFailsNamingTheKey prevents a MySQL server whose certificate the configured
// CA does not vouch for from being used, and its refusal from reading as a bare x509 error:
// the error names the key to fix, in process and from the commands.
func TestWrongMySQLCAFailsNamingTheKey(t *testing.T) {
	requireTLSOnlyUser(t)
	r := newCDCRig(t)
	if _, err := r.app.Exec("CREATE TABLE probe (id BIGINT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	wrong := otherCA(t)
	refused := func(key string) string {
		return key + `: "` + wrong + `": does not trust the server's certificate: x509: certificate signed by unknown authority`
	}
	wrongSource := overTLS(t, r.config(freePort(t), "probe"), wrong, mysqlCAFile)
	wrongControl := overTLS(t, r.config(freePort(t), "probe"), mysqlCAFile, wrong)

	c, err := config.Load(wrongSource, stackSecrets())
	must(t, err)
	if err := ping(c.Source.MySQLConfig()); err == nil || !strings.Contains(err.Error(), refused("source.tls.ca_file")) {
		t.Errorf("source with a wrong CA: err = %v\nwant it to contain %q", err, refused("source.tls.ca_file"))
	}
	if err := ping(c.Control.MySQLConfig()); err != nil {
		t.Errorf("control with the stack's CA: %v", err)
	}
	c, err = config.Load(wrongControl, stackSecrets())
	must(t, err)
	if err := ping(c.Control.MySQLConfig()); err == nil || !strings.Contains(err.Error(), refused("control.tls.ca_file")) {
		t.Errorf("control with a wrong CA: err = %v\nwant it to contain %q", err, refused("control.tls.ca_file"))
	}

	// wye cdc cannot open the control schema: it exits, saying which key.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, wyeBinary(t), "cdc", "-c", wrongControl, "--name", r.id).CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), refused("control.tls.ca_file")) {
		t.Errorf("wye cdc with a wrong control CA: %v, want exit 1 naming control.tls.ca_file; output:\n%s", err, out)
	}

	// wye cdc leads but cannot read the source: each session fails naming the key, and it is
	// never ready.
	metrics := freePort(t)
	cmd := exec.Command(wyeBinary(t), "cdc", "-c", wrongSource, "--name", r.id, "--metrics-listen", metrics)
	log := &lockedOutput{}
	cmd.Stdout, cmd.Stderr = log, log
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("wye cdc output:\n%s", log.String())
		}
	})
	eventually(t, 30*time.Second, func() error {
		// The text log quotes the error, escaping its quotes.
		if !strings.Contains(log.String(), strings.ReplaceAll(refused("source.tls.ca_file"), `"`, `\"`)) {
			return errors.New("no session failure naming source.tls.ca_file logged yet")
		}
		return nil
	})
	if readyz(metrics) == nil {
		t.Error("wye cdc is ready though it cannot read the source")
	}
}

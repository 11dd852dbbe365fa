package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// pki is a throwaway CA and the files of certificates it signed.
type pki struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), cert: cert, key: key}
	p.file = p.write(t, name+".pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs a leaf for usage with the given names and returns it and its cert and key files.
func (p *pki) issue(t *testing.T, name string, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (tls.Certificate, string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile := p.write(t, name+".pem", "CERTIFICATE", der)
	keyFile := p.write(t, name+"-key.pem", "PRIVATE KEY", kder)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

// handshake runs one TLS handshake of client against a server presenting serverCert, which
// asks for a client certificate signed by clientCA when clientCA is set. It returns the
// client's error.
func handshake(t *testing.T, client *tls.Config, serverCert tls.Certificate, clientCA *x509.CertPool) error {
	t.Helper()
	srv := &tls.Config{Certificates: []tls.Certificate{serverCert}}
	if clientCA != nil {
		srv.ClientAuth, srv.ClientCAs = tls.RequireAndVerifyClientCert, clientCA
	}
	// TCP on loopback, not net.Pipe: a pipe has no buffer, and both ends write at once when
	// one refuses the other (an alert against the rest of a flight).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		tls.Server(conn, srv).Handshake()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { conn.Close(); <-done }()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(conn, client)
	err = c.Handshake()
	if err == nil {
		// TLS 1.3: the server's refusal of a client certificate arrives after the client's
		// handshake; a read surfaces it (or the server closing after its handshake).
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, rerr := c.Read(make([]byte, 1)); rerr != nil && !isTimeout(rerr) && !errors.Is(rerr, io.EOF) {
			err = rerr
		}
	}
	return err
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestCheckNamesEveryUnusableKey(t *testing.T) {
	ca := newPKI(t, "ca")
	_, certFile, keyFile := ca.issue(t, "client", x509.ExtKeyUsageClientAuth, nil, nil)
	_, _, otherKey := ca.issue(t, "other", x509.ExtKeyUsageClientAuth, nil, nil)
	notPEM := filepath.Join(ca.dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello\n"), 0o600)
	missing := filepath.Join(ca.dir, "missing.pem")
	for _, tc := range []struct {
		name string
		o    Options
		want []Fault
	}{
		{"usable", Options{CAFile: ca.file, CertFile: certFile, KeyFile: keyFile}, nil},
		{"unreadable ca", Options{CAFile: missing},
			[]Fault{{"ca_file", missing, "cannot read: no such file or directory"}}},
		{"ca without certificate", Options{CAFile: notPEM}, []Fault{{"ca_file", notPEM, "holds no PEM certificate"}}},
		{"certificate without key", Options{CertFile: certFile}, []Fault{{"key_file", "", "must be set with cert_file"}}},
		{"key without certificate", Options{KeyFile: keyFile}, []Fault{{"cert_file", "", "must be set with key_file"}}},
		{"certificate file holds a key", Options{CertFile: keyFile, KeyFile: keyFile},
			[]Fault{{"cert_file", keyFile, "holds no PEM certificate"}}},
		{"both client files unreadable, and the ca", Options{CAFile: missing, CertFile: missing, KeyFile: missing}, []Fault{
			{"ca_file", missing, "cannot read: no such file or directory"},
			{"cert_file", missing, "cannot read: no such file or directory"},
			{"key_file", missing, "cannot read: no such file or directory"},
		}},
		{"key of another certificate", Options{CertFile: certFile, KeyFile: otherKey},
			[]Fault{{"key_file", otherKey, "not the PEM private key of cert_file: tls: private key does not match public key"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.o.Check(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Check() = %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestClientIsOffWithoutAKey(t *testing.T) {
	c, err := Options{}.Client("source.tls", "db")
	if c != nil || err != nil {
		t.Fatalf("Client() = %v, %v; want nil, nil: TLS is off until a key is set", c, err)
	}
}

func TestClientErrorNamesTheKeyOfAnUnusableFile(t *testing.T) {
	_, err := Options{CAFile: "/nonexistent/ca.pem"}.Client("source.tls", "db")
	if err == nil || err.Error() != `source.tls.ca_file: "/nonexistent/ca.pem": cannot read: no such file or directory` {
		t.Fatalf("Client() error = %v", err)
	}
}

func TestClientRefusalOfTheServerNamesTheKeyToFix(t *testing.T) {
	ca, other := newPKI(t, "ca"), newPKI(t, "other-ca")
	server, _, _ := ca.issue(t, "db", x509.ExtKeyUsageServerAuth, []string{"db.internal"}, []net.IP{net.ParseIP("127.0.0.1")})
	for _, tc := range []struct {
		name string
		o    Options
		host string
		want string // "" for a handshake that succeeds
	}{
		{"its CA, by name", Options{CAFile: ca.file}, "db.internal", ""},
		{"its CA, by address", Options{CAFile: ca.file}, "127.0.0.1", ""},
		{"its CA, server name given", Options{CAFile: ca.file, ServerName: "db.internal"}, "10.0.0.9", ""},
		{"another CA", Options{CAFile: other.file}, "db.internal",
			`source.tls.ca_file: "` + other.file + `": does not trust the server's certificate: x509: certificate signed by unknown authority`},
		{"system roots", Options{ServerName: "db.internal"}, "db.internal",
			`source.tls.ca_file: unset, and the system roots do not trust the server's certificate: x509: certificate signed by unknown authority`},
		{"wrong host", Options{CAFile: ca.file}, "db.example",
			`source.tls.server_name: unset, and the server's certificate is not for the host "db.example": x509: certificate is valid for db.internal, not db.example`},
		{"wrong server name", Options{CAFile: ca.file, ServerName: "db.example"}, "127.0.0.1",
			`source.tls.server_name: "db.example": the server's certificate is not for this name: x509: certificate is valid for db.internal, not db.example`},
		{"verification off", Options{CAFile: other.file, InsecureSkipVerify: true}, "db.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.o.Client("source.tls", tc.host)
			if err != nil {
				t.Fatal(err)
			}
			err = handshake(t, c, server, nil)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("handshake error = %v\n want one starting %q", err, tc.want)
			}
		})
	}
}

// net/http sets each connection's ServerName from its URL: Client without a host leaves the
// verification to crypto/tls, which then checks that name.
func TestClientWithoutAHostLeavesVerificationToCryptoTLS(t *testing.T) {
	ca, other := newPKI(t, "ca"), newPKI(t, "other-ca")
	server, _, _ := ca.issue(t, "db", x509.ExtKeyUsageServerAuth, []string{"db.internal"}, nil)
	for file, ok := range map[string]bool{ca.file: true, other.file: false} {
		c, err := Options{CAFile: file}.Client("clusters[0].tls", "")
		if err != nil {
			t.Fatal(err)
		}
		c.ServerName = "db.internal"
		if err := handshake(t, c, server, nil); (err == nil) != ok {
			t.Errorf("CA %s: handshake error = %v, want success %v", file, err, ok)
		}
	}
}

func TestClientPresentsItsCertificate(t *testing.T) {
	ca := newPKI(t, "ca")
	server, _, _ := ca.issue(t, "db", x509.ExtKeyUsageServerAuth, []string{"db.internal"}, nil)
	_, certFile, keyFile := ca.issue(t, "wye", x509.ExtKeyUsageClientAuth, nil, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	without, err := Options{CAFile: ca.file}.Client("control.tls", "db.internal")
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, without, server, pool); err == nil {
		t.Fatal("a server requiring a client certificate accepted a client without one: the test proves nothing")
	}
	with, err := Options{CAFile: ca.file, CertFile: certFile, KeyFile: keyFile}.Client("control.tls", "db.internal")
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, with, server, pool); err != nil {
		t.Fatalf("with cert_file and key_file: %v", err)
	}
}

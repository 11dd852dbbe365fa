// Package tlsconf is the one TLS client configuration of wye: the `tls` block of the source,
// the control schema and every cluster. In: Options, the paths it names. Out: a *tls.Config,
// or faults named by their key. Owns: the check of the files (Check, which validation and
// Client share) and the verification of a server's certificate.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// MinVersion is the oldest protocol wye speaks: MariaDB 10.x, MySQL 8, Elasticsearch and
// OpenSearch all offer TLS 1.2 or newer.
const MinVersion = tls.VersionTLS12

// Options is one `tls` block. The zero value is TLS off where TLS is optional (MySQL); any
// key set turns it on. The tags are the configuration keys, which faults name too.
type Options struct {
	// CAFile is a PEM file of the certificate authorities trusted for this server; when set,
	// only these are trusted. Empty: the system roots.
	CAFile string `mapstructure:"ca_file" yaml:"ca_file"`
	// ServerName is the name the server's certificate must carry. Empty: the host connected to.
	ServerName string `mapstructure:"server_name" yaml:"server_name"`
	// InsecureSkipVerify turns off verification of the server's certificate: the connection
	// is encrypted but open to interception. For throwaway servers only.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify" yaml:"insecure_skip_verify"`
	// CertFile and KeyFile are the PEM client certificate (with its chain) and its private
	// key, for servers that authenticate clients by certificate; both or neither.
	CertFile string `mapstructure:"cert_file" yaml:"cert_file"`
	KeyFile  string `mapstructure:"key_file" yaml:"key_file"`
}

// On reports whether any key is set, which is what turns TLS on for a MySQL connection.
func (o Options) On() bool { return o != Options{} }

// Fault is one key of Options that cannot be used.
type Fault struct {
	Key   string // "ca_file"
	Value string // the value at fault; "" when the key is missing
	Msg   string // lower case, no trailing period
}

// Check reads the files o names and returns every fault, in key order; nil when o is usable.
func (o Options) Check() []Fault {
	_, faults := o.load()
	return faults
}

// material is what the files of Options hold.
type material struct {
	roots *x509.CertPool // nil: the system roots
	certs []tls.Certificate
}

// load reads and parses the files o names. It is Check and the first half of Client, so a
// configuration that validated builds the same way (unless a file changed in between).
func (o Options) load() (material, []Fault) {
	var m material
	var faults []Fault
	add := func(key, value, format string, a ...any) {
		faults = append(faults, Fault{Key: key, Value: value, Msg: fmt.Sprintf(format, a...)})
	}
	if o.CAFile != "" {
		b, err := readFile(o.CAFile)
		m.roots = x509.NewCertPool()
		switch {
		case err != nil:
			add("ca_file", o.CAFile, "cannot read: %v", err)
		case !m.roots.AppendCertsFromPEM(b):
			add("ca_file", o.CAFile, "holds no PEM certificate")
		}
	}
	switch {
	case o.CertFile == "" && o.KeyFile != "":
		add("cert_file", "", "must be set with key_file")
	case o.CertFile != "" && o.KeyFile == "":
		add("key_file", "", "must be set with cert_file")
	case o.CertFile != "":
		cert, certErr := readFile(o.CertFile)
		key, keyErr := readFile(o.KeyFile)
		if certErr != nil {
			add("cert_file", o.CertFile, "cannot read: %v", certErr)
		} else if !hasCertificate(cert) {
			add("cert_file", o.CertFile, "holds no PEM certificate")
			certErr = errors.New("no certificate")
		}
		if keyErr != nil {
			add("key_file", o.KeyFile, "cannot read: %v", keyErr)
		}
		if certErr == nil && keyErr == nil {
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				add("key_file", o.KeyFile, "not the PEM private key of cert_file: %v", err)
			} else {
				m.certs = []tls.Certificate{pair}
			}
		}
	}
	return m, faults
}

// readFile reads a file and drops the path from its error: faults show the path as their value.
func readFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return nil, pe.Err
	}
	return b, err
}

func hasCertificate(b []byte) bool {
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return false
		}
		if block.Type == "CERTIFICATE" {
			return true
		}
	}
}

// Client returns the configuration of a TLS client, nil when o is off. path names o's block
// in errors ("source.tls"): a fault of a file, and a server certificate the options do not
// accept, both name the key to fix.
//
// host is the server's host as dialled, the name verified when server_name is unset. Empty
// host means the caller sets ServerName per connection (net/http does, from each URL): then
// crypto/tls verifies as usual and a refused certificate names no key.
func (o Options) Client(path, host string) (*tls.Config, error) {
	if !o.On() {
		return nil, nil
	}
	m, faults := o.load()
	if len(faults) > 0 {
		f := faults[0]
		return nil, errors.New(fault(path, f.Key, f.Value, f.Msg))
	}
	c := &tls.Config{MinVersion: MinVersion, RootCAs: m.roots, Certificates: m.certs, ServerName: o.ServerName}
	switch {
	case o.InsecureSkipVerify:
		c.InsecureSkipVerify = true
	case host != "":
		name := o.ServerName
		if name == "" {
			name = host
		}
		c.ServerName = name
		// The checks crypto/tls makes itself (a chain to the roots valid for server auth, the
		// name), made here instead so that a refusal names the key to fix: crypto/tls's own
		// error says only "x509: ...".
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error { return o.verify(path, name, m.roots, cs) }
	}
	return c, nil
}

// verify checks the server's chain against roots (nil: the system's) and its name.
func (o Options) verify(path, name string, roots *x509.CertPool, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%s: the server sent no certificate", path)
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var at string
	switch {
	case errors.As(err, &unknown) && o.CAFile == "":
		at = fault(path, "ca_file", "", "unset, and the system roots do not trust the server's certificate")
	case errors.As(err, &unknown):
		at = fault(path, "ca_file", o.CAFile, "does not trust the server's certificate")
	case errors.As(err, &hostname) && o.ServerName == "":
		at = fault(path, "server_name", "", fmt.Sprintf("unset, and the server's certificate is not for the host %q", name))
	case errors.As(err, &hostname):
		at = fault(path, "server_name", name, "the server's certificate is not for this name")
	default:
		at = path + ": the server's certificate is not valid"
	}
	return fmt.Errorf("%s: %w", at, err)
}

// fault renders `path.key: "value": msg` like a configuration fault.
func fault(path, key, value, msg string) string {
	s := join(path, key) + ": "
	if value != "" {
		s += strconv.Quote(value) + ": "
	}
	return s + msg
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

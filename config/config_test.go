package config

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.yaml.in/yaml/v3"

	"github.com/wyehq/wye/indexer"
)

// valid is a minimal valid configuration; cases below add to it or break it.
const valid = `
source: {flavor: mariadb, host: 127.0.0.1, user: wye_source, password_env: SRC_PW, server_id: 4101}
control: {host: 127.0.0.1, user: wye, password_env: CTL_PW}
amqp: {url: "amqp://wye@127.0.0.1:5672/", password_env: MQ_PW}
clusters:
  - {name: es7, urls: ["http://127.0.0.1:9217"], role: master, mapping: v1}
  - {name: es8, urls: ["http://127.0.0.1:9218"], role: slave, mapping: v1}
`

// env is a fake environment: tests never read or change the process environment.
type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

var secrets = env{"SRC_PW": "src-secret", "CTL_PW": "ctl-secret", "MQ_PW": "mq-secret"}

func mustParse(t *testing.T, yaml string, e env) *Config {
	t.Helper()
	c, err := parse([]byte(yaml), Options{LookupEnv: e.lookup})
	if err != nil {
		t.Fatalf("parse: unexpected error:\n%v", err)
	}
	return c
}

// faultLines parses yaml and returns its faults, one string per fault.
func faultLines(t *testing.T, yaml string, o Options) []string {
	t.Helper()
	if o.LookupEnv == nil {
		o.LookupEnv = secrets.lookup
	}
	_, err := parse([]byte(yaml), o)
	if err == nil {
		return nil
	}
	var faults Errors
	if !errors.As(err, &faults) {
		t.Fatalf("want Errors, got %T: %v", err, err)
	}
	return strings.Split(faults.Error(), "\n")
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("faults:\n  got  %q\n  want %q", got, want)
	}
}

func TestBadFileReportsExactlyOneLinePerFault(t *testing.T) {
	_, err := Load("testdata/bad.yaml", Options{LookupEnv: env{}.lookup})
	var faults Errors
	if !errors.As(err, &faults) {
		t.Fatalf("want Errors, got %T: %v", err, err)
	}
	wantLines(t, strings.Split(err.Error(), "\n"),
		`source.password_env: "WYE_SOURCE_PASSWORD": environment variable is not set`,
		`control.databse: unknown key (did you mean "database"?)`,
		`amqp.url: "http://wye@127.0.0.1:5672/": unsupported scheme (want amqp or amqps)`,
		`clusters: must not be empty`,
	)
	for _, f := range faults {
		if f.Path == "" || f.Msg == "" {
			t.Errorf("fault without path or message: %#v", f)
		}
	}
}

func TestValidFileLoadsWithDefaults(t *testing.T) {
	c := mustParse(t, valid, secrets)
	if c.Source.Port != 3306 || c.Control.Database != "wye" || c.AMQP.Prefetch != 512 ||
		c.AMQP.Exchange != "wye.changes" || c.AMQP.Queue != "wye.index" ||
		c.Metrics.Listen != "127.0.0.1:9464" || c.Log != (Log{Level: "info", Format: "text"}) {
		t.Errorf("defaults not applied: %+v", c)
	}
	for i, cl := range c.Clusters {
		if cl.Timeouts != (Timeouts{Request: 30 * time.Second, Bulk: 60 * time.Second}) {
			t.Errorf("clusters[%d].timeouts = %+v, want the defaults", i, cl.Timeouts)
		}
	}
	if m, _ := c.Master(); m.Name != "es7" {
		t.Errorf("Master() = %q, want es7", m.Name)
	}
}

func TestUnknownKeyAtAnyLevelIsReportedWithItsPath(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"top level", "metric: {listen: ':1'}", `metric: unknown key (did you mean "metrics"?)`},
		{"in source, transposed letters", "source: {hots: x}", `source.hots: unknown key (did you mean "host"?)`},
		{"in a cluster", "clusters: [{urlz: [x]}]", `clusters[0].urlz: unknown key (did you mean "urls"?)`},
		{"in a cluster's auth", "clusters: [{auth: {pasword_env: X}}]", `clusters[0].auth.pasword_env: unknown key (did you mean "password_env"?)`},
		{"one level too high", "clusters: [{username: elastic}]", `clusters[0].username: unknown key (did you mean "auth.username"?)`},
		{"no close match", "amqp: {vhost: /}", `amqp.vhost: unknown key`},
		{"in a nested relation", "entities: [{relations: [{relations: [{parent_kye: x}]}]}]", `entities[0].relations[0].relations[0].parent_kye: unknown key (did you mean "parent_key"?)`},
		{"keys are case-insensitive, typos are not", "SOURCE: {Hots: x}", `source.hots: unknown key (did you mean "host"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := faultLines(t, tc.yaml+"\n"+validWithout(tc.yaml), Options{})
			if !contains(got, tc.want) {
				t.Errorf("faults %q\n  do not include %q", got, tc.want)
			}
		})
	}
}

// validWithout returns valid minus the top-level sections that the snippets (or section
// names) start with, so a case can rewrite a section without a duplicate-key error.
func validWithout(snippets ...string) string {
	var out []string
	skip := false
	for _, line := range strings.Split(valid, "\n") {
		if line != "" && line[0] != ' ' {
			skip = false
			for _, sn := range snippets {
				section, _, _ := strings.Cut(strings.ToLower(sn), ":")
				skip = skip || strings.HasPrefix(line, section+":")
			}
		}
		if !skip {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestMisspeltKeyDoesNotAlsoReportTheKeyItMeant(t *testing.T) {
	got := faultLines(t, validWithout("source")+`
source: {flavor: mariadb, hots: 127.0.0.1, user: wye_source, password_env: SRC_PW, server_id: 4101}`, Options{})
	wantLines(t, got, `source.hots: unknown key (did you mean "host"?)`)
}

func TestMistypedValueIsReportedWithItsPath(t *testing.T) {
	for _, tc := range []struct{ name, snippet, want string }{
		{"port not a number", "source: {port: abc}", `source.port: "abc": want an integer`},
		{"server_id negative", "source: {server_id: -1}", `source.server_id: "-1": want an integer between 0 and 4294967295`},
		{"server_id over 32 bits", "source: {server_id: 4294967296}", `source.server_id: "4294967296": want an integer between 0 and 4294967295`},
		{"duration without unit", "clusters: [{timeouts: {request: 30}}]", `clusters[0].timeouts.request: "30": want a duration with a unit, like 30s or 1m30s`},
		{"bool", "clusters: [{tls: {insecure_skip_verify: maybe}}]", `clusters[0].tls.insecure_skip_verify: "maybe": want true or false`},
		{"clusters not a list", "clusters: {name: es7}", `clusters: want a list`},
		{"urls not a list", "clusters: [{urls: http://x}]", `clusters[0].urls: "http://x": want a list`},
		{"section not a mapping", "source: db.internal", `source: "db.internal": want a mapping of keys to values`},
		{"a mistyped secret is not shown", "control: {password: [hunter2]}", `control.password: want a string`},
		{"retry delay without unit", "indexer: {retry_delays: [1s, 5]}", `indexer.retry_delays[1]: "5": want a duration with a unit, like 30s or 1m30s`},
		{"tables not a list", "cdc: {tables: catalog.audit}", `cdc.tables: "catalog.audit": want a list`},
		{"window not a number", "cdc: {window: lots}", `cdc.window: "lots": want an integer`},
		{"misspelt indexer key", "indexer: {batch_sise: 1}", `indexer.batch_sise: unknown key (did you mean "batch_size"?)`},
		{"mapping key one level too high", "mapping: {prefix: x}", `mapping.prefix: unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := faultLines(t, tc.snippet+"\n"+validWithout(tc.snippet), Options{})
			if !contains(got, tc.want) {
				t.Errorf("faults %q\n  do not include %q", got, tc.want)
			}
		})
	}
}

func TestValidationRejects(t *testing.T) {
	caFile := filepath.Join("testdata", "ca.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"no clusters", func(c *Config) { c.Clusters = nil }, []string{`clusters: must not be empty`}},
		{"unsupported url scheme", func(c *Config) { c.Clusters[1].URLs = []string{"htp://x"} },
			[]string{`clusters[1].urls[0]: "htp://x": unsupported scheme (want http or https)`}},
		{"url without scheme", func(c *Config) { c.Clusters[1].URLs = []string{"127.0.0.1:9200"} },
			[]string{`clusters[1].urls[0]: "127.0.0.1:9200": missing scheme (want http:// or https://)`}},
		{"url without host", func(c *Config) { c.Clusters[0].URLs = []string{"http:///x"} },
			[]string{`clusters[0].urls[0]: "http:///x": missing host`}},
		{"password in a cluster url, and it is not echoed", func(c *Config) { c.Clusters[0].URLs = []string{"http://elastic:hunter2@h:9200"} },
			[]string{`clusters[0].urls[0]: "http://elastic:xxxxx@h:9200": must not contain a password; set clusters[0].auth.password_env or clusters[0].auth.password_file`}},
		{"no urls", func(c *Config) { c.Clusters[0].URLs = nil }, []string{`clusters[0].urls: must not be empty`}},
		{"two clusters on one server", func(c *Config) { c.Clusters[1].URLs = []string{"http://127.0.0.1:9217/"} },
			[]string{`clusters[1].urls[0]: "http://127.0.0.1:9217/": the same server as clusters[0].urls[0]: each cluster must be a different one`}},
		{"duplicate cluster names", func(c *Config) { c.Clusters[1].Name = "es7" },
			[]string{`clusters[1].name: "es7": duplicate: clusters[0] has the same name`}},
		{"cluster name unfit for a metric label", func(c *Config) { c.Clusters[1].Name = "ES 8" },
			[]string{`clusters[1].name: "ES 8": want lower-case letters, digits, - or _`}},
		{"unknown role", func(c *Config) { c.Clusters[1].Role = "primary" },
			[]string{`clusters[1].role: "primary": want master or slave`}},
		{"two masters", func(c *Config) { c.Clusters[1].Role = RoleMaster },
			[]string{`clusters[1].role: "master": clusters[0] is already the master; want exactly one`}},
		{"no master", func(c *Config) { c.Clusters[0].Role = RoleSlave },
			[]string{`clusters: no cluster has role master; want exactly one`}},
		{"no mapping", func(c *Config) { c.Clusters[0].Mapping = "" }, []string{`clusters[0].mapping: must not be empty`}},
		{"two auth methods", func(c *Config) { c.Clusters[0].Auth = Auth{Username: "u", PasswordEnv: "P", APIKeyFile: "/k"} },
			[]string{`clusters[0].auth: set at most one method: username/password, api_key or bearer_token (got username/password and api_key)`}},
		{"username without password", func(c *Config) { c.Clusters[0].Auth = Auth{Username: "elastic"} },
			[]string{`clusters[0].auth.password: must be set with a username (password, password_env or password_file)`}},
		{"password without username", func(c *Config) { c.Clusters[0].Auth = Auth{Password: NewSecret("x")} },
			[]string{`clusters[0].auth.username: must be set with a password`}},
		{"unreadable ca file", func(c *Config) { c.Clusters[0].TLS.CAFile = "testdata/nope.pem" },
			[]string{`clusters[0].tls.ca_file: "testdata/nope.pem": cannot read: no such file or directory`}},
		{"ca file without certificate", func(c *Config) { c.Clusters[0].TLS.CAFile = notPEM },
			[]string{`clusters[0].tls.ca_file: "` + notPEM + `": holds no PEM certificate`}},
		{"cluster key of another certificate", func(c *Config) { c.Clusters[1].TLS = TLS{CertFile: caFile, KeyFile: "testdata/client-key.pem"} },
			[]string{`clusters[1].tls.key_file: "testdata/client-key.pem": not the PEM private key of cert_file: tls: private key does not match public key`}},
		{"source ca file unreadable", func(c *Config) { c.Source.TLS.CAFile = "testdata/nope.pem" },
			[]string{`source.tls.ca_file: "testdata/nope.pem": cannot read: no such file or directory`}},
		{"control client certificate without its key, and a ca without certificate", func(c *Config) {
			c.Control.TLS = TLS{CAFile: notPEM, CertFile: "testdata/client.pem"}
		}, []string{
			`control.tls.ca_file: "` + notPEM + `": holds no PEM certificate`,
			`control.tls.key_file: must be set with cert_file`,
		}},
		{"control key without its certificate", func(c *Config) { c.Control.TLS.KeyFile = "testdata/client-key.pem" },
			[]string{`control.tls.cert_file: must be set with key_file`}},
		{"zero request timeout", func(c *Config) { c.Clusters[0].Timeouts.Request = 0 },
			[]string{`clusters[0].timeouts.request: "0s": must be greater than 0`}},
		{"negative bulk timeout", func(c *Config) { c.Clusters[1].Timeouts.Bulk = -time.Second },
			[]string{`clusters[1].timeouts.bulk: "-1s": must be greater than 0`}},
		{"unknown flavor", func(c *Config) { c.Source.Flavor = "percona" },
			[]string{`source.flavor: "percona": want mariadb or mysql`}},
		{"no flavor", func(c *Config) { c.Source.Flavor = "" }, []string{`source.flavor: want mariadb or mysql`}},
		{"port out of range", func(c *Config) { c.Source.Port = 70000 },
			[]string{`source.port: "70000": must be between 1 and 65535`}},
		{"control port zero", func(c *Config) { c.Control.Port = 0 },
			[]string{`control.port: "0": must be between 1 and 65535`}},
		{"server_id zero", func(c *Config) { c.Source.ServerID = 0 },
			[]string{`source.server_id: must be between 1 and 4294967295, and differ from every other replica's server_id`}},
		{"no source host", func(c *Config) { c.Source.Host = "" }, []string{`source.host: must not be empty`}},
		{"no control user", func(c *Config) { c.Control.User = "" }, []string{`control.user: must not be empty`}},
		{"control database needing quotes", func(c *Config) { c.Control.Database = "wye`; drop" },
			[]string{"control.database: \"wye`; drop\": want letters, digits, _ or $"}},
		{"password in the amqp url, and it is not echoed", func(c *Config) { c.AMQP.URL = "amqp://wye:hunter2@127.0.0.1:5672/" },
			[]string{`amqp.url: "amqp://wye:xxxxx@127.0.0.1:5672/": must not contain a password; set amqp.password_env or amqp.password_file`}},
		{"unparseable url with a password is not echoed", func(c *Config) { c.AMQP.URL = "amqp://wye:hunter2@127.0.0.1:56 72/" },
			[]string{`amqp.url: "amqp://***@127.0.0.1:56 72/": not a url: invalid port ":56 72" after host`}},
		{"amqp url scheme", func(c *Config) { c.AMQP.URL = "http://wye@127.0.0.1:5672/" },
			[]string{`amqp.url: "http://wye@127.0.0.1:5672/": unsupported scheme (want amqp or amqps)`}},
		{"amqp password without a user", func(c *Config) { c.AMQP.URL = "amqp://127.0.0.1:5672/" },
			[]string{`amqp.url: "amqp://127.0.0.1:5672/": must name the user the password is for, like amqp://USER@host:5672/`}},
		{"prefetch beyond basic.qos", func(c *Config) { c.AMQP.Prefetch = 70000 },
			[]string{`amqp.prefetch: "70000": must be between 1 and 65535`}},
		{"no queue", func(c *Config) { c.AMQP.Queue = "" }, []string{`amqp.queue: must not be empty`}},
		{"metrics listen", func(c *Config) { c.Metrics.Listen = "9464" },
			[]string{`metrics.listen: "9464": want host:port, like 127.0.0.1:9464 (empty disables metrics)`}},
		{"log level", func(c *Config) { c.Log.Level = "verbose" },
			[]string{`log.level: "verbose": want debug, info, warn or error`}},
		{"log format", func(c *Config) { c.Log.Format = "logfmt" }, []string{`log.format: "logfmt": want text or json`}},
		{"amqp delivery limit zero: the publisher would silently use its own default", func(c *Config) { c.AMQP.DeliveryLimit = 0 },
			[]string{`amqp.delivery_limit: "0": must be at least 1`}},
		{"cdc knobs", func(c *Config) {
			c.CDC = CDC{Name: "", Tables: []string{"catalog.ok", "audit"}, Window: 0, CheckpointInterval: 0,
				BatchChanges: -1, BatchBytes: 0, Linger: -time.Millisecond, UpdateImages: "trimmed"}
		}, []string{
			`cdc.name: must not be empty`,
			`cdc.tables[1]: "audit": want schema.table (letters, digits, _ or $)`,
			`cdc.window: "0": must be at least 1`,
			`cdc.checkpoint_interval: "0s": must be greater than 0`,
			`cdc.batch_changes: "-1": must be at least 1`,
			`cdc.batch_bytes: "0": must be at least 1`,
			`cdc.linger: "-1ms": must be greater than 0`,
			`cdc.update_images: "trimmed": want "changed" or "full"`,
		}},
		{"cdc name too long for its checkpoint row", func(c *Config) { c.CDC.Name = strings.Repeat("n", 65) },
			[]string{`cdc.name: "` + strings.Repeat("n", 65) + `": at most 64 bytes: the name of the reader's checkpoint row`}},
		{"indexer knobs", func(c *Config) {
			c.Indexer = Indexer{RetryDelays: []time.Duration{time.Second, 0}, MaxAttempts: 0, BatchSize: 0, BatchBytes: -1,
				BatchWait: 0, SlaveBacklog: 0, SlaveInFlight: 0, Consumers: 0, RolesPoll: 0, StopTimeout: -time.Second,
				IndexTargets: "x", IndicesTTL: 0}
		}, []string{
			`indexer.retry_delays[1]: "0s": must be greater than 0`,
			`indexer.max_attempts: "0": must be at least 1`,
			`indexer.batch_size: "0": must be at least 1`,
			`indexer.batch_bytes: "-1": must be at least 1`,
			`indexer.batch_wait: "0s": must be greater than 0`,
			`indexer.slave_backlog: "0": must be at least 1`,
			`indexer.slave_in_flight: "0": must be at least 1`,
			`indexer.consumers: "0": must be at least 1`,
			`indexer.batches_in_flight: "0": must be at least 1`,
			`indexer.slave_backlog_bytes: "0": must be at least 1`,
			`indexer.chunk_docs: "0": must be at least 1`,
			`indexer.chunk_bytes: "0": must be at least 1`,
			`indexer.bulk_bytes: "0": must be at least 1`,
			`indexer.roles_poll: "0s": must be greater than 0`,
			`indexer.stop_timeout: "-1s": must not be negative`,
			`indexer.index_targets: "x": want mapping or alias`,
			`indexer.indices_ttl: "0s": must be greater than 0`,
		}},
		{"nightly knobs", func(c *Config) {
			c.Nightly = Nightly{ChunkRows: 0, ScanPage: -1, MaxDeleteShare: 1.5, RowsPerSecond: -1, BytesPerSecond: -2}
		}, []string{
			`nightly.chunk_rows: "0": must be at least 1`,
			`nightly.scan_page: "-1": must be at least 1`,
			`nightly.max_delete_share: "1.5": must be above 0 and at most 1`,
			`nightly.rows_per_second: "-1": must not be negative (0: no limit)`,
			`nightly.bytes_per_second: "-2": must not be negative (0: no limit)`,
			`nightly.report: must not be empty`,
		}},
		{"a backlog batch smaller than a batch", func(c *Config) { c.Indexer.BatchSize, c.Indexer.BacklogBatchSize = 1000, 999 },
			[]string{`indexer.backlog_batch_size: "999": must be at least indexer.batch_size (1000)`}},
		{"no retry tier", func(c *Config) { c.Indexer.RetryDelays = nil }, []string{`indexer.retry_delays: must not be empty`}},
		{"mapping settings", func(c *Config) { c.Mapping = Mapping{Dir: "", IndexPrefix: "_Demo", VersionField: "_v"} }, []string{
			`mapping.dir: must not be empty`,
			`mapping.index_prefix: "_Demo": not a valid start of an index name (lower case; no \/*?"<>|,# or space; not starting with -, _ or +)`,
			`mapping.version_field: "_v": want letters, digits, _ or -, not starting with _ or -`,
		}},
		{"entity", func(c *Config) {
			c.Entities = []Entity{
				{Name: "program", Index: "programs", Root: Root{Table: "catalog.programs", Key: "id"}, VersionField: "v"},
				{Name: "program", Index: "_Programs", Root: Root{Table: "programs"}, VersionField: "v"},
			}
		}, []string{
			`entities[1].name: "program": duplicate: entities[0] has the same name`,
			`entities[1].index: "_Programs": not a valid index name (lower case; no \/*?"<>|,# or space; not starting with -, _ or +)`,
			`entities[1].root.table: "programs": want schema.table (letters, digits, _ or $)`,
			`entities[1].root.key: must not be empty`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, valid, secrets)
			c.Clusters[0].TLS.CAFile = caFile // a readable CA must pass
			tc.change(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			wantLines(t, strings.Split(err.Error(), "\n"), tc.want...)
		})
	}
}

func TestValidConfigValidates(t *testing.T) {
	if err := mustParse(t, valid, secrets).Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
}

func TestSecretIsReadFromTheSourceNamed(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, validWithout("control", "clusters")+"control: {host: h, user: u, password_file: "+file+"}\n"+`
clusters:
  - {name: es7, urls: ["http://a:9200"], role: master, mapping: v1, auth: {username: u, password: literal}}
  - {name: es8, urls: ["http://b:9200"], role: slave, mapping: v1, auth: {bearer_token_env: TOKEN}}
`, env{"SRC_PW": "src-secret", "MQ_PW": "m", "TOKEN": "tok"})
	for _, tc := range []struct{ name, got, want string }{
		{"file, trailing newline trimmed", c.Control.Password.Reveal(), "from-file"},
		{"env", c.Source.Password.Reveal(), "src-secret"},
		{"literal", c.Clusters[0].Auth.Password.Reveal(), "literal"},
		{"env, in a list element", c.Clusters[1].Auth.BearerToken.Reveal(), "tok"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestSecretSourceFaults(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, control, want string }{
		{"env var not set", "password_env: NOPE", `control.password_env: "NOPE": environment variable is not set`},
		{"env var empty", "password_env: EMPTY", `control.password_env: "EMPTY": environment variable is empty`},
		{"file missing", "password_file: " + dir + "/missing", `control.password_file: "` + dir + `/missing": cannot read: no such file or directory`},
		{"file empty", "password_file: " + empty, `control.password_file: "` + empty + `": file is empty`},
		{"two sources", "password: lit, password_file: " + empty, `control.password: set at most one of password, password_env and password_file (got password and password_file)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env{"SRC_PW": "s", "MQ_PW": "m", "EMPTY": ""}
			got := faultLines(t, validWithout("control")+"\ncontrol: {host: h, user: u, "+tc.control+"}", Options{LookupEnv: e.lookup})
			wantLines(t, got, tc.want)
		})
	}
}

func TestEnvOverridesFileForScalarKeys(t *testing.T) {
	e := env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m",
		"WYE_SOURCE_HOST": "db.example", "WYE_AMQP_URL": "amqps://wye@mq.example:5671/",
		"WYE_LOG_LEVEL": "debug", "WYE_CLUSTERS_0_NAME": "ignored", "WYE_AMQP_PREFETCH": "64",
		"WYE_SOURCE_SERVER_ID": "7", "WYE_CONTROL_PASSWORD": "not-a-key"}
	c := mustParse(t, valid, e)
	if c.Source.Host != "db.example" || c.AMQP.URL != "amqps://wye@mq.example:5671/" || c.Log.Level != "debug" ||
		c.AMQP.Prefetch != 64 || c.Source.ServerID != 7 {
		t.Errorf("env not applied: source=%+v amqp=%+v log=%+v", c.Source, c.AMQP, c.Log)
	}
	if c.Clusters[0].Name != "es7" {
		t.Errorf("a list element was overridden from the environment: %q", c.Clusters[0].Name)
	}
	if got := c.Control.Password.Reveal(); got != "c" {
		t.Errorf("WYE_CONTROL_PASSWORD replaced control.password_env's value: got %q", got)
	}
}

// TestEnvSetsEveryTuningKey prevents a tuning knob that a ConfigMap cannot reach: the new
// sections' keys, lists included, take WYE_* variables like every other key.
func TestEnvSetsEveryTuningKey(t *testing.T) {
	c := mustParse(t, valid, env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m",
		"WYE_CDC_WINDOW": "7", "WYE_CDC_TABLES": "catalog.a, catalog.b", "WYE_INDEXER_RETRY_DELAYS": "1s,2m",
		"WYE_INDEXER_INDEX_TARGETS": "alias", "WYE_AMQP_DELIVERY_LIMIT": "20", "WYE_MAPPING_DIR": "/etc/wye/mappings"})
	if c.CDC.Window != 7 || !reflect.DeepEqual(c.CDC.Tables, []string{"catalog.a", "catalog.b"}) ||
		!reflect.DeepEqual(c.Indexer.RetryDelays, []time.Duration{time.Second, 2 * time.Minute}) ||
		c.Indexer.IndexTargets != IndexTargetsAlias || c.AMQP.DeliveryLimit != 20 || c.Mapping.Dir != "/etc/wye/mappings" {
		t.Errorf("env not applied: cdc=%+v indexer=%+v amqp.delivery_limit=%d mapping=%+v", c.CDC, c.Indexer, c.AMQP.DeliveryLimit, c.Mapping)
	}
	got := faultLines(t, valid, Options{LookupEnv: env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m", "WYE_INDEXER_RETRY_DELAYS": "1s,,2s"}.lookup})
	wantLines(t, got, `indexer.retry_delays[1]: want a duration with a unit, like 30s or 1m30s (set by $WYE_INDEXER_RETRY_DELAYS)`)
}

// TestOldMappingVariablesStillWork prevents the move of wye mapping's settings into the file
// from breaking the deployments that set WYE_MAPPINGS, WYE_INDEX_PREFIX or WYE_VERSION_FIELD.
func TestOldMappingVariablesStillWork(t *testing.T) {
	old := env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m",
		"WYE_MAPPINGS": "/old/mappings", "WYE_INDEX_PREFIX": "demo1_", "WYE_VERSION_FIELD": "v"}
	c := mustParse(t, valid, old)
	if c.Mapping != (Mapping{Dir: "/old/mappings", IndexPrefix: "demo1_", VersionField: "v"}) {
		t.Errorf("old variables not applied: %+v", c.Mapping)
	}
	old["WYE_MAPPING_DIR"] = "/new/mappings"
	if c := mustParse(t, valid, old); c.Mapping.Dir != "/new/mappings" {
		t.Errorf("mapping.dir = %q: WYE_MAPPING_DIR must win over the old WYE_MAPPINGS", c.Mapping.Dir)
	}
	got := faultLines(t, valid, Options{LookupEnv: env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m", "WYE_VERSION_FIELD": "_v"}.lookup})
	wantLines(t, got, `mapping.version_field: "_v": want letters, digits, _ or -, not starting with _ or - (set by $WYE_VERSION_FIELD)`)
}

func TestFaultInAnOverrideNamesTheVariable(t *testing.T) {
	got := faultLines(t, valid, Options{LookupEnv: env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m", "WYE_SOURCE_PORT": "33o6"}.lookup})
	wantLines(t, got, `source.port: "33o6": want an integer (set by $WYE_SOURCE_PORT)`)
}

func TestFaultInATLSFileFromTheEnvironmentNamesTheVariable(t *testing.T) {
	got := faultLines(t, valid, Options{LookupEnv: env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m", "WYE_SOURCE_TLS_CA_FILE": "testdata/nope.pem"}.lookup})
	wantLines(t, got, `source.tls.ca_file: "testdata/nope.pem": cannot read: no such file or directory (set by $WYE_SOURCE_TLS_CA_FILE)`)
}

// TestMySQLConnectionsFailNamingTheTLSKeyInsteadOfGoingPlain: a tls block set for the source
// or the control schema reaches every connection their MySQLConfig makes; a file that broke
// after Load fails the connection, before it dials, naming the key.
func TestMySQLConnectionsFailNamingTheTLSKeyInsteadOfGoingPlain(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	b, err := os.ReadFile("testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, valid, env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m", "WYE_SOURCE_TLS_CA_FILE": ca, "WYE_CONTROL_TLS_CA_FILE": ca})
	if err := os.Remove(ca); err != nil {
		t.Fatal(err)
	}
	for key, m := range map[string]*mysql.Config{"source.tls.ca_file": c.Source.MySQLConfig(), "control.tls.ca_file": c.Control.MySQLConfig()} {
		conn, err := mysql.NewConnector(m)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = conn.Connect(ctx)
		cancel()
		if want := key + `: "` + ca + `": cannot read: no such file or directory`; err == nil || err.Error() != want {
			t.Errorf("connect: err = %v, want %q", err, want)
		}
	}
}

func TestEnvSecretFileReplacesTheFilesSecretSource(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("mounted"), 0o600); err != nil {
		t.Fatal(err)
	}
	// valid names source.password_env; a Kubernetes deployment mounts a file instead.
	c := mustParse(t, valid, env{"CTL_PW": "c", "MQ_PW": "m", "WYE_SOURCE_PASSWORD_FILE": file})
	if got := c.Source.Password.Reveal(); got != "mounted" {
		t.Errorf("source.password = %q, want the mounted file's", got)
	}
}

func TestFlagOverridesEnv(t *testing.T) {
	e := env{"SRC_PW": "s", "CTL_PW": "c", "MQ_PW": "m", "WYE_LOG_LEVEL": "warn"}
	c, err := parse([]byte(valid), Options{LookupEnv: e.lookup, Overrides: map[string]string{"log.level": "debug"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" {
		t.Errorf("log.level = %q, want the flag's debug", c.Log.Level)
	}
	if _, err := parse([]byte(valid), Options{LookupEnv: e.lookup, Overrides: map[string]string{"clusters": "x"}}); err == nil {
		t.Error("override of a list of mappings: want an error")
	}
}

// TestFlagOverridesAListOfTheFile prevents a repeatable flag (--table, --retry-delays) from
// being merged into, or lost behind, the file's list: the flag's list replaces it.
func TestFlagOverridesAListOfTheFile(t *testing.T) {
	yaml := valid + "cdc: {tables: [catalog.a]}\nindexer: {retry_delays: [1s]}\n"
	c, err := parse([]byte(yaml), Options{LookupEnv: secrets.lookup,
		Overrides: map[string]string{"cdc.tables": "catalog.b,catalog.c", "indexer.retry_delays": "2s,3m"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.CDC.Tables, []string{"catalog.b", "catalog.c"}) ||
		!reflect.DeepEqual(c.Indexer.RetryDelays, []time.Duration{2 * time.Second, 3 * time.Minute}) {
		t.Errorf("cdc.tables = %v, indexer.retry_delays = %v; want the flags' lists", c.CDC.Tables, c.Indexer.RetryDelays)
	}
}

// TestPrintShowsEveryKey prevents a key that `config check --print` hides, so an operator
// could not see the value a command will run with. Only the sources of secrets that are not
// in use are left out.
func TestPrintShowsEveryKey(t *testing.T) {
	b, err := mustParse(t, valid, secrets).YAML()
	if err != nil {
		t.Fatal(err)
	}
	var printed map[string]any
	if err := yaml.Unmarshal(b, &printed); err != nil {
		t.Fatal(err)
	}
	for _, k := range overrideKeys() {
		if len(k.clears) > 0 {
			continue // password_env, password_file: omitted when not in use
		}
		var node any = printed
		for seg := range strings.SplitSeq(k.path, ".") {
			m, _ := node.(map[string]any)
			var ok bool
			if node, ok = m[seg]; !ok {
				t.Errorf("--print does not show %s:\n%s", k.path, b)
				break
			}
		}
	}
}

func TestUnreadableOrMalformedFileIsAPlainError(t *testing.T) {
	if _, err := Load("testdata/missing.yaml", Options{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: err = %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("source: {host: a}\nsource: {host: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad, Options{})
	var faults Errors
	if err == nil || errors.As(err, &faults) || !strings.Contains(err.Error(), `mapping key "source" already defined`) {
		t.Errorf("duplicate key: err = %v", err)
	}
}

func TestHelpersCarryThePassword(t *testing.T) {
	c := mustParse(t, valid, secrets)
	if got, want := c.Source.MySQLConfig().FormatDSN(), "wye_source:src-secret@tcp(127.0.0.1:3306)/"; got != want {
		t.Errorf("Source.MySQLConfig() = %q, want %q", got, want)
	}
	if got, want := c.Control.MySQLConfig().FormatDSN(), "wye:ctl-secret@tcp(127.0.0.1:3306)/wye?parseTime=true"; got != want {
		t.Errorf("Control.MySQLConfig() = %q, want %q", got, want)
	}
	if got, want := c.AMQP.URLWithPassword(), "amqp://wye:mq-secret@127.0.0.1:5672/"; got != want {
		t.Errorf("AMQP.URLWithPassword() = %q, want %q", got, want)
	}
	if c.AMQP.URL != "amqp://wye@127.0.0.1:5672/" {
		t.Errorf("AMQP.URL changed: %q", c.AMQP.URL)
	}
}

func TestExampleFileIsValid(t *testing.T) {
	c, err := Load("../wye.example.yaml", Options{LookupEnv: env{
		"WYE_SOURCE_PASSWORD": "wye-source", "WYE_CONTROL_PASSWORD": "wye-control", "WYE_AMQP_PASSWORD": "wye-amqp"}.lookup})
	if err != nil {
		t.Fatalf("wye.example.yaml:\n%v", err)
	}
	if dsn := c.Source.MySQLConfig().FormatDSN(); dsn != "wye_source:wye-source@tcp(127.0.0.1:3306)/" || c.AMQP.URLWithPassword() != "amqp://wye:wye-amqp@127.0.0.1:5672/" {
		t.Errorf("example does not match the dev stack: %s, %s", dsn, c.AMQP.URLWithPassword())
	}
}

// Every key of the schema must be in the reference, so docs cannot fall behind the code.
func TestDocsListEveryKey(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, t reflect.Type)
	var keys []string
	inside := map[reflect.Type]bool{} // relations nest relations: document the level once
	walk = func(path string, t reflect.Type) {
		inside[t] = true
		defer delete(inside, t)
		for i := range t.NumField() {
			f := t.Field(i)
			p := join(path, keyOf(f))
			keys = append(keys, p)
			ft := f.Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !inside[ft.Elem()] {
				walk(p+"[]", ft.Elem())
			} else if ft.Kind() == reflect.Struct && ft != secretType {
				walk(p, ft)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	for _, k := range keys {
		if !strings.Contains(string(b), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
	for _, k := range overrideKeys() {
		for _, name := range append([]string{k.env}, k.legacy...) {
			if !strings.Contains(string(b), name) {
				t.Errorf("docs/configuration.md does not name %s", name)
			}
		}
	}
}

// TestDocsStateTheDefaults prevents the reference from showing a default the code no
// longer has: for every key the environment can set, the first `value` of the Default column
// of its row, given as an override, must leave the default configuration unchanged.
func TestDocsStateTheDefaults(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	base, err := mustParse(t, valid, secrets).YAML()
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // key -> Default cell
	for line := range strings.SplitSeq(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 4 && strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = cells[3]
		}
	}
	for _, k := range overrideKeys() {
		cell, ok := rows[k.path]
		if !ok {
			t.Errorf("docs/configuration.md has no row for %s", k.path)
			continue
		}
		_, rest, found := strings.Cut(cell, "`")
		value, _, closed := strings.Cut(rest, "`")
		if !found || !closed {
			continue // required, or no default
		}
		if value == `""` {
			value = ""
		}
		if k.list {
			value = strings.Trim(value, "[]")
		}
		c, err := parse([]byte(valid), Options{LookupEnv: secrets.lookup, Overrides: map[string]string{k.path: value}})
		if err != nil {
			t.Errorf("%s: the documented default %q does not load: %v", k.path, value, err)
			continue
		}
		if got, _ := c.YAML(); !bytes.Equal(got, base) {
			t.Errorf("%s: the documented default %q is not the default", k.path, value)
		}
	}
}

// relationsBase is a valid entity with every kind of relation, nested two levels deep.
const relationsBase = `
entities:
  - name: program
    index: programs
    root: {table: catalog.programs, key: id, columns: [id, title, "duration_s as duration"]}
    relations:
      - {name: channel, table: catalog.channels, key: id, from: channel_id, columns: [id, name],
         relations: [{name: network, table: catalog.networks, key: id, from: network_id}]}
      - name: episodes
        table: catalog.episodes
        key: id
        parent_key: program_id
        many: true
        relations:
          - {name: credits, table: catalog.credits, key: id, parent_key: episode_id, many: true}
      - {name: tags, table: catalog.tags, key: id, many: true,
         through: {table: catalog.program_tags, parent_key: program_id, key: tag_id}}
`

func TestNestedRelationsLoad(t *testing.T) {
	c := mustParse(t, valid+relationsBase, secrets)
	e := c.Entities[0]
	if e.VersionField != "wye_version" {
		t.Errorf("version_field = %q, want the default wye_version", e.VersionField)
	}
	if len(e.Relations) != 3 || e.Relations[0].Relations[0].Name != "network" ||
		e.Relations[1].Relations[0].ParentKey != "episode_id" || e.Relations[2].Through.Key != "tag_id" {
		t.Errorf("relations not decoded: %+v", e.Relations)
	}
	if col, field := SplitColumn(e.Root.Columns[2]); col != "duration_s" || field != "duration" {
		t.Errorf("SplitColumn(%q) = %q, %q", e.Root.Columns[2], col, field)
	}
}

func TestRelationFaultsNameEntityAndField(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"no link", "from: channel_id, columns", "columns", `entities[0].relations[0]: set one of from (many-to-one), parent_key (one-to-many) or through (many-to-many)`},
		{"two links", "key: id, from: channel_id", "key: id, parent_key: x, from: channel_id", `entities[0].relations[0]: set only one of from, parent_key and through (got from and parent_key)`},
		{"many-to-one is an object", "from: channel_id,", "from: channel_id, many: true,", `entities[0].relations[0].many: "true": a many-to-one relation (from) is one object; remove many`},
		{"join table is a list", "tags, table: catalog.tags, key: id, many: true", "tags, table: catalog.tags, key: id", `entities[0].relations[2].many: "false": a relation through a join table is a list; set many: true`},
		{"nested table", "table: catalog.credits", "table: credits", `entities[0].relations[1].relations[0].table: "credits": want schema.table (letters, digits, _ or $)`},
		{"nested key", "{name: network, table: catalog.networks, key: id,", "{name: network, table: catalog.networks,", `entities[0].relations[0].relations[0].key: must not be empty`},
		{"join key", "key: tag_id", "key: ''", `entities[0].relations[2].through.key: must not be empty`},
		{"column injection", "columns: [id, name]", "columns: [id, \"name; drop\"]", `entities[0].relations[0].columns[1]: "name; drop": want "column" or "column as field"`},
		{"renamed onto another field", `"duration_s as duration"`, `"duration_s as title"`, `entities[0].root.columns[2]: "duration_s as title": duplicate field: entities[0].root.columns[1] has the same name`},
		{"relation hides a column", "name: tags", "name: title", `entities[0].relations[2].name: "title": duplicate field: entities[0].root.columns[1] has the same name`},
		{"relation is the version field", "name: tags", "name: wye_version", `entities[0].relations[2].name: "wye_version": is the version field`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(relationsBase, tc.old) {
				t.Fatalf("case does not apply: %q not in the base", tc.old)
			}
			got := faultLines(t, valid+strings.Replace(relationsBase, tc.old, tc.new, 1), Options{})
			if !contains(got, tc.want) {
				t.Errorf("faults %q\n  do not include %q", got, tc.want)
			}
		})
	}
}

// hrRelations is a valid employee entity using composite keys, order_by, where and many:
// false with an order.
const hrRelations = `
entities:
  - name: employee
    index: employees
    root: {table: hr.employees, key: emp_no}
    relations:
      - name: departments
        table: hr.dept_emp
        key: [emp_no, dept_no]
        parent_key: emp_no
        many: true
        order_by: [from_date]
        relations: [{name: department, table: hr.departments, key: dept_no, from: dept_no}]
      - {name: current_title, table: hr.titles, key: [emp_no, title, from_date], parent_key: emp_no,
         where: "to_date = '9999-01-01'"}
      - {name: latest_salary, table: hr.salaries, key: [emp_no, from_date], parent_key: emp_no,
         order_by: ["from_date DESC", emp_no]}
`

func TestCompositeKeysOrderByAndWhereLoad(t *testing.T) {
	c := mustParse(t, valid+hrRelations, secrets)
	defs := EntityDefs(c.Entities)[0].Relations
	if !slices.Equal(defs[0].Key, []string{"emp_no", "dept_no"}) || !slices.Equal(defs[0].Relations[0].Key, []string{"dept_no"}) {
		t.Errorf("keys = %v, %v", defs[0].Key, defs[0].Relations[0].Key)
	}
	if defs[1].Where != "to_date = '9999-01-01'" || defs[1].OrderBy != nil {
		t.Errorf("current_title = %+v", defs[1])
	}
	if want := []indexer.Order{{Column: "from_date", Desc: true}, {Column: "emp_no"}}; !slices.Equal(defs[2].OrderBy, want) {
		t.Errorf("order_by = %+v, want %+v", defs[2].OrderBy, want)
	}
	if _, err := indexer.NewModel(EntityDefs(c.Entities)); err != nil {
		t.Errorf("model: %v", err)
	}
}

func TestCompositeKeyOrderByAndWhereFaultsNameTheField(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"composite key on from", "key: dept_no, from", "key: [dept_no, dept_name], from",
			`entities[0].relations[0].relations[0].key: "[dept_no, dept_name]": a composite key is for a parent_key (one-to-many) relation: a from or through relation links one column, the related table's own key`},
		{"bad key column", "key: [emp_no, dept_no]", "key: [emp_no, \"dept no\"]",
			`entities[0].relations[0].key[1]: "dept no": want a column name (letters, digits, _ or $)`},
		{"repeated key column", "key: [emp_no, dept_no]", "key: [emp_no, emp_no]",
			`entities[0].relations[0].key[1]: "emp_no": duplicate column`},
		{"empty key list", "key: [emp_no, dept_no]", "key: []", `entities[0].relations[0].key: must not be empty`},
		{"parent_key under a composite key", "relations: [{name: department, table: hr.departments, key: dept_no, from: dept_no}]",
			"relations: [{name: notes, table: hr.notes, key: id, parent_key: emp_no}]",
			`entities[0].relations[0].relations[0]: its parent relation has a composite key: only a from relation can nest in it (a parent_key or through relation refers to one key column)`},
		{"bad direction", `"from_date DESC"`, `"from_date down"`,
			`entities[0].relations[2].order_by[0]: "from_date down": want "column", "column asc" or "column desc"`},
		{"order_by column", `"from_date DESC"`, `"from-date desc"`,
			`entities[0].relations[2].order_by[0]: "from-date desc": column: want letters, digits, _ or $`},
		{"order_by on from", "key: dept_no, from: dept_no", "key: dept_no, from: dept_no, order_by: [dept_name]",
			`entities[0].relations[0].relations[0].order_by: a many-to-one relation (from) has one row per parent: remove order_by`},
		{"blank where", `where: "to_date = '9999-01-01'"`, `where: " "`,
			`entities[0].relations[1].where: " ": want an SQL predicate on the relation's table, or no where`},
		{"key neither column nor list", "key: [emp_no, title, from_date]", "key: {a: b}",
			`entities[0].relations[1].key: want a column or a list of columns`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(hrRelations, tc.old) {
				t.Fatalf("case does not apply: %q not in the base", tc.old)
			}
			got := faultLines(t, valid+strings.Replace(hrRelations, tc.old, tc.new, 1), Options{})
			if !contains(got, tc.want) {
				t.Errorf("faults %q\n  do not include %q", got, tc.want)
			}
		})
	}
}

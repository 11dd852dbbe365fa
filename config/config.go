package config

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/wyehq/wye/internal/tlsconf"
)

// Config is wye's whole configuration. Every field carries a mapstructure tag (its key in the
// file, lower case) and a yaml tag (how --print shows it); the two always agree.
type Config struct {
	Source   Source    `mapstructure:"source" yaml:"source"`
	Control  Control   `mapstructure:"control" yaml:"control"`
	AMQP     AMQP      `mapstructure:"amqp" yaml:"amqp"`
	Clusters []Cluster `mapstructure:"clusters" yaml:"clusters"`
	CDC      CDC       `mapstructure:"cdc" yaml:"cdc"`
	Indexer  Indexer   `mapstructure:"indexer" yaml:"indexer"`
	Mapping  Mapping   `mapstructure:"mapping" yaml:"mapping"`
	Nightly  Nightly   `mapstructure:"nightly" yaml:"nightly"`
	Promote  Promote   `mapstructure:"promote" yaml:"promote"`
	Metrics  Metrics   `mapstructure:"metrics" yaml:"metrics"`
	Log      Log       `mapstructure:"log" yaml:"log"`
	Entities []Entity  `mapstructure:"entities" yaml:"entities"`
}

// Flavor is the source server's product; it decides the GTID format of the binlog.
type Flavor string

const (
	FlavorMariaDB Flavor = "mariadb"
	FlavorMySQL   Flavor = "mysql"
)

// Source is the MySQL/MariaDB server whose binlog wye follows and whose tables it reads to
// denormalize documents.
type Source struct {
	Flavor       Flavor `mapstructure:"flavor" yaml:"flavor"`
	Host         string `mapstructure:"host" yaml:"host"`
	Port         int    `mapstructure:"port" yaml:"port"`
	User         string `mapstructure:"user" yaml:"user"`
	Password     Secret `mapstructure:"password" yaml:"password,omitempty"`
	PasswordEnv  string `mapstructure:"password_env" yaml:"password_env,omitempty"`
	PasswordFile string `mapstructure:"password_file" yaml:"password_file,omitempty"`
	// ServerID identifies wye as a replica to the source; it must differ from every other
	// replica's server_id or the source drops one of the two binlog streams.
	ServerID uint32 `mapstructure:"server_id" yaml:"server_id"`
	// TLS of the binlog stream and the SQL reads; off unless a key is set.
	TLS TLS `mapstructure:"tls" yaml:"tls"`
}

// Control is the database holding wye's own schema: checkpoints, roles, the ledger.
type Control struct {
	Host         string `mapstructure:"host" yaml:"host"`
	Port         int    `mapstructure:"port" yaml:"port"`
	User         string `mapstructure:"user" yaml:"user"`
	Password     Secret `mapstructure:"password" yaml:"password,omitempty"`
	PasswordEnv  string `mapstructure:"password_env" yaml:"password_env,omitempty"`
	PasswordFile string `mapstructure:"password_file" yaml:"password_file,omitempty"`
	Database     string `mapstructure:"database" yaml:"database"`
	// TLS of every connection to the control schema; off unless a key is set.
	TLS TLS `mapstructure:"tls" yaml:"tls"`
}

// AMQP is the RabbitMQ broker that carries change events from the binlog reader to the indexer.
type AMQP struct {
	// URL names the broker and the user, never the password (see URLWithPassword).
	URL          string `mapstructure:"url" yaml:"url"`
	Password     Secret `mapstructure:"password" yaml:"password,omitempty"`
	PasswordEnv  string `mapstructure:"password_env" yaml:"password_env,omitempty"`
	PasswordFile string `mapstructure:"password_file" yaml:"password_file,omitempty"`
	Exchange     string `mapstructure:"exchange" yaml:"exchange"`
	Queue        string `mapstructure:"queue" yaml:"queue"`
	// Parked receives what wye cannot deliver or write: the indexer's permanent failures and
	// poison messages, and change-queue messages past their delivery limit.
	Parked string `mapstructure:"parked" yaml:"parked"`
	// DeliveryLimit is the change queue's x-delivery-limit: deliveries of one message before
	// it is dead-lettered to Parked. cdc and the indexer both declare the queue, with the same
	// arguments or the broker refuses the second (broker.ChangeQueueArgs), so it is a key of
	// the queue, not of one command.
	DeliveryLimit int `mapstructure:"delivery_limit" yaml:"delivery_limit"`
	// Prefetch bounds the unacknowledged deliveries in flight (AMQP basic.qos, 16 bits).
	Prefetch int `mapstructure:"prefetch" yaml:"prefetch"`
	// Compression of change messages by cdc: "zstd" (content-encoding zstd) or "none". The
	// indexer reads both, whatever this says.
	Compression string `mapstructure:"compression" yaml:"compression"`
}

// Role is a cluster's part in the fleet.
type Role string

const (
	RoleMaster Role = "master" // the cluster the others are compared against; exactly one
	RoleSlave  Role = "slave"
)

// Cluster is one Elasticsearch or OpenSearch cluster kept in step with the source.
type Cluster struct {
	Name     string   `mapstructure:"name" yaml:"name"`
	URLs     []string `mapstructure:"urls" yaml:"urls"`
	Role     Role     `mapstructure:"role" yaml:"role"`
	Mapping  string   `mapstructure:"mapping" yaml:"mapping"`
	Auth     Auth     `mapstructure:"auth" yaml:"auth,omitempty"`
	TLS      TLS      `mapstructure:"tls" yaml:"tls,omitempty"`
	Timeouts Timeouts `mapstructure:"timeouts" yaml:"timeouts"`
}

// Auth holds at most one of three methods: basic (username + password), API key, bearer token.
type Auth struct {
	Username        string `mapstructure:"username" yaml:"username,omitempty"`
	Password        Secret `mapstructure:"password" yaml:"password,omitempty"`
	PasswordEnv     string `mapstructure:"password_env" yaml:"password_env,omitempty"`
	PasswordFile    string `mapstructure:"password_file" yaml:"password_file,omitempty"`
	APIKey          Secret `mapstructure:"api_key" yaml:"api_key,omitempty"`
	APIKeyEnv       string `mapstructure:"api_key_env" yaml:"api_key_env,omitempty"`
	APIKeyFile      string `mapstructure:"api_key_file" yaml:"api_key_file,omitempty"`
	BearerToken     Secret `mapstructure:"bearer_token" yaml:"bearer_token,omitempty"`
	BearerTokenEnv  string `mapstructure:"bearer_token_env" yaml:"bearer_token_env,omitempty"`
	BearerTokenFile string `mapstructure:"bearer_token_file" yaml:"bearer_token_file,omitempty"`
}

// TLS is the tls block of the source, the control schema and each cluster: one type, checked
// by one validation and built by one builder (internal/tlsconf). For MySQL any key set turns
// TLS on; a cluster's URL scheme decides, and the block adjusts how https is verified.
type TLS = tlsconf.Options

// Timeouts bound each request to a cluster.
type Timeouts struct {
	Request time.Duration `mapstructure:"request" yaml:"request"`
	Bulk    time.Duration `mapstructure:"bulk" yaml:"bulk"`
}

// CDC tunes the binlog reader (`wye cdc`, and the reader of `wye run`).
type CDC struct {
	// Name is the reader's checkpoint row and leader lock wye.<control database>.cdc.<name>: readers of one name
	// are one active reader and its standbys.
	Name string `mapstructure:"name" yaml:"name"`
	// Tables are followed besides every table the entities read ("schema.table").
	Tables []string `mapstructure:"tables" yaml:"tables"`
	// Window is the publishes in flight without a broker confirm.
	Window             int           `mapstructure:"window" yaml:"window"`
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval" yaml:"checkpoint_interval"`
	// BatchChanges and BatchBytes bound one message (row changes, uncompressed body bytes);
	// one bigger change still goes alone.
	BatchChanges int `mapstructure:"batch_changes" yaml:"batch_changes"`
	BatchBytes   int `mapstructure:"batch_bytes" yaml:"batch_bytes"`
	// Linger is how long a partial message waits for more changes when the binlog is idle.
	Linger time.Duration `mapstructure:"linger" yaml:"linger"`
	// UpdateImages is what an update's before and after carry: "changed" (the primary key, the
	// key and link columns, the changed columns) or "full" (every column, for other consumers).
	UpdateImages string `mapstructure:"update_images" yaml:"update_images"`
}

// Where the indexer writes an entity's documents (Indexer.IndexTargets).
const (
	// IndexTargetsMapping writes every existing <index>_vN that `wye mapping` created.
	IndexTargetsMapping = "mapping"
	// IndexTargetsAlias writes the entity's index name as is: indices wye mapping does not manage.
	IndexTargetsAlias = "alias"
)

// Indexer tunes the indexer (`wye indexer`, and the indexer of `wye run`).
type Indexer struct {
	// RetryDelays are the retry tiers: attempt n waits the (n-1)th, the last repeats.
	RetryDelays []time.Duration `mapstructure:"retry_delays" yaml:"retry_delays"`
	// MaxAttempts is the writes of one entity to the master before it is parked.
	MaxAttempts int `mapstructure:"max_attempts" yaml:"max_attempts"`
	// BatchSize (row changes), BatchBytes (message bytes) and BatchWait (after the first
	// delivery) close a batch, as does amqp.prefetch.
	BatchSize int `mapstructure:"batch_size" yaml:"batch_size"`
	// BacklogBatchSize is the row changes a full batch goes on taking while deliveries already
	// wait (a backlog); at least BatchSize.
	BacklogBatchSize int           `mapstructure:"backlog_batch_size" yaml:"backlog_batch_size"`
	BatchBytes       int           `mapstructure:"batch_bytes" yaml:"batch_bytes"`
	BatchWait        time.Duration `mapstructure:"batch_wait" yaml:"batch_wait"`
	// Consumers is the batches one indexer process takes from the queue at once: each a consumer
	// of its own, as a replica would be (writes are versioned: any order is safe).
	Consumers int `mapstructure:"consumers" yaml:"consumers"`
	// InFlight is the batches one consumer processes at once while a backlog lasts, their
	// writes and acks in batch order.
	InFlight int `mapstructure:"batches_in_flight" yaml:"batches_in_flight"`
	// SlaveBacklog is the batches queued per slave before its writes go to the repair ledger;
	// SlaveInFlight the _bulk requests one slave has in flight.
	SlaveBacklog  int `mapstructure:"slave_backlog" yaml:"slave_backlog"`
	SlaveInFlight int `mapstructure:"slave_in_flight" yaml:"slave_in_flight"`
	// SlaveBacklogBytes bounds the document bytes queued per slave, whatever the batches' size.
	SlaveBacklogBytes int `mapstructure:"slave_backlog_bytes" yaml:"slave_backlog_bytes"`
	// ChunkDocs and ChunkBytes bound the documents a batch reads and holds at once (a rename
	// touching many documents is read and written a chunk at a time); BulkBytes bounds one
	// write of documents (one _bulk per cluster and index), and what a slave merges.
	ChunkDocs  int `mapstructure:"chunk_docs" yaml:"chunk_docs"`
	ChunkBytes int `mapstructure:"chunk_bytes" yaml:"chunk_bytes"`
	BulkBytes  int `mapstructure:"bulk_bytes" yaml:"bulk_bytes"`
	// RolesPoll is how often cluster roles are re-read from the control schema.
	RolesPoll time.Duration `mapstructure:"roles_poll" yaml:"roles_poll"`
	// StopTimeout is how long, on shutdown, slaves may drain their backlog.
	StopTimeout time.Duration `mapstructure:"stop_timeout" yaml:"stop_timeout"`
	// IndexTargets is IndexTargetsMapping or IndexTargetsAlias.
	IndexTargets string `mapstructure:"index_targets" yaml:"index_targets"`
	// IndicesTTL is how long the <index>_vN write targets of a cluster are reused before
	// they are listed again.
	IndicesTTL time.Duration `mapstructure:"indices_ttl" yaml:"indices_ttl"`
}

// Mapping configures `wye mapping`: where the mapping files are and how indices are named.
type Mapping struct {
	Dir string `mapstructure:"dir" yaml:"dir"` // mappings/<index>/<vN>/
	// IndexPrefix goes before every managed index and alias name: <prefix><index>_<vN>.
	IndexPrefix string `mapstructure:"index_prefix" yaml:"index_prefix"`
	// VersionField is the document field holding the source version, mapped as long.
	VersionField string `mapstructure:"version_field" yaml:"version_field"`
}

// Nightly tunes `wye nightly`, the full resync (docs/nightly.md); its flags override these keys.
type Nightly struct {
	// ChunkRows is the root rows of one chunk: one snapshot, one _mget and one _bulk per
	// cluster, and the most a killed run repeats per entity.
	ChunkRows int `mapstructure:"chunk_rows" yaml:"chunk_rows"`
	// ScanPage is the ids per page of a cluster's orphan scan.
	ScanPage int `mapstructure:"scan_page" yaml:"scan_page"`
	// MaxDeleteShare is the share of an index whose orphans a run deletes without
	// --allow-mass-delete (0.05: 5%).
	MaxDeleteShare float64 `mapstructure:"max_delete_share" yaml:"max_delete_share"`
	// RowsPerSecond and BytesPerSecond limit the rows read and the bulk bytes written; 0: no limit.
	RowsPerSecond  float64 `mapstructure:"rows_per_second" yaml:"rows_per_second"`
	BytesPerSecond float64 `mapstructure:"bytes_per_second" yaml:"bytes_per_second"`
	// Report is the path of the report JSON; the id lists go beside it (<report>.ids.gz).
	Report string `mapstructure:"report" yaml:"report"`
}

// Promote tunes `wye promote`'s preflight and anti-flap period (docs/architecture.md, "Promote").
type Promote struct {
	// MinInterval: a promote within it of the last one needs --force.
	MinInterval time.Duration `mapstructure:"min_interval" yaml:"min_interval"`
	// MaxLag bounds how far the target's highest version per entity may be below the master's
	// (version units: bytes of binlog within one file).
	MaxLag int64 `mapstructure:"max_lag" yaml:"max_lag"`
	// Sample is the documents per entity whose content the preflight diff compares.
	Sample int `mapstructure:"sample" yaml:"sample"`
	// AutoAfter is how long the master must be unavailable before `wye promote --auto` fails over.
	AutoAfter time.Duration `mapstructure:"auto_after" yaml:"auto_after"`
	// AutoEvery is how often `wye promote --auto` reads the master's health.
	AutoEvery time.Duration `mapstructure:"auto_every" yaml:"auto_every"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Listen string `mapstructure:"listen" yaml:"listen"` // host:port; empty disables the endpoint
}

// Log configures the process logger.
type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`   // debug | info | warn | error
	Format string `mapstructure:"format" yaml:"format"` // text | json
}

// Entity maps a root table to an index: each root row becomes one document, with the rows of
// its relations nested in it (objects for many-to-one, arrays for one-to-many and
// many-to-many). The indexer reads only the columns named here (all when none are).
type Entity struct {
	Name  string `mapstructure:"name" yaml:"name"`
	Index string `mapstructure:"index" yaml:"index"`
	Root  Root   `mapstructure:"root" yaml:"root"`
	// VersionField is the document field that carries the change version, so that a
	// document says which binlog position it reflects. Default indexer.DefaultVersionField.
	VersionField string     `mapstructure:"version_field" yaml:"version_field"`
	Relations    []Relation `mapstructure:"relations" yaml:"relations,omitempty"`
}

// Root is the table whose rows become documents, and its primary key column.
type Root struct {
	Table   string   `mapstructure:"table" yaml:"table"` // schema.table
	Key     string   `mapstructure:"key" yaml:"key"`
	Columns []string `mapstructure:"columns" yaml:"columns,omitempty"` // see SplitColumn; empty: all
}

// Relation nests the rows of another table into the parent document (the root or, for a
// nested relation, the enclosing relation's rows). Exactly one of From, ParentKey or
// Through.Table says how a row links to its parent:
//
//	from: c          many-to-one: the parent's column c holds this table's Key (an object)
//	parent_key: c    one-to-many: this table's column c holds the parent's key (an array
//	                 with many: true, else the first row as an object)
//	through: {...}   many-to-many: a join table with parent_key (the parent's key) and key
//	                 (this table's Key); always an array
//
// The parent's key is the root's key, or the enclosing relation's Key.
//
// Key is one column (key: id) or, for a parent_key relation only, several (key: [emp_no,
// dept_no]): the columns that identify a row, its default order. A composite-key relation
// nests only from relations (a nested parent_key or through would need a composite parent
// key). Where is an SQL predicate on the relation's own table, ANDed into its reads; OrderBy
// ("from_date desc", "emp_no") orders a parent_key or through relation before its key, and
// with many: false picks the row nested. docs/configuration.md has the details.
type Relation struct {
	Name      string     `mapstructure:"name" yaml:"name"` // the field in the parent document
	Table     string     `mapstructure:"table" yaml:"table"`
	Key       KeyColumns `mapstructure:"key" yaml:"key"`
	Where     string     `mapstructure:"where" yaml:"where,omitempty"`
	OrderBy   []string   `mapstructure:"order_by" yaml:"order_by,omitempty"`
	From      string     `mapstructure:"from" yaml:"from,omitempty"`
	ParentKey string     `mapstructure:"parent_key" yaml:"parent_key,omitempty"`
	Through   Through    `mapstructure:"through" yaml:"through,omitempty"`
	Many      bool       `mapstructure:"many" yaml:"many,omitempty"`
	Columns   []string   `mapstructure:"columns" yaml:"columns,omitempty"`
	Relations []Relation `mapstructure:"relations" yaml:"relations,omitempty"`
}

// KeyColumns is a relation's key: one column or several, written as a string or a list.
type KeyColumns []string

// MarshalYAML writes a one-column key as the string it usually is.
func (k KeyColumns) MarshalYAML() (any, error) {
	if len(k) == 1 {
		return k[0], nil
	}
	return []string(k), nil
}

// SplitOrder reads one entry of an order_by list: "column", "column asc" or "column desc"
// (any case); ok is false for anything else.
func SplitOrder(entry string) (column string, desc, ok bool) {
	f := strings.Fields(entry)
	switch {
	case len(f) == 1:
		return f[0], false, true
	case len(f) == 2 && strings.EqualFold(f[1], "asc"):
		return f[0], false, true
	case len(f) == 2 && strings.EqualFold(f[1], "desc"):
		return f[0], true, true
	}
	return "", false, false
}

// Through is the join table of a many-to-many relation.
type Through struct {
	Table     string `mapstructure:"table" yaml:"table"`
	ParentKey string `mapstructure:"parent_key" yaml:"parent_key"` // holds the parent's key
	Key       string `mapstructure:"key" yaml:"key"`               // holds the related table's key
}

// SplitColumn reads one entry of a columns list: "title" keeps the column under its name,
// "name as channel_name" renames it ("AS" in any case).
func SplitColumn(entry string) (column, field string) {
	f := strings.Fields(entry)
	if len(f) == 3 && strings.EqualFold(f[1], "as") {
		return f[0], f[2]
	}
	return strings.TrimSpace(entry), strings.TrimSpace(entry)
}

// Options adjusts where Load reads its overrides from. The zero value reads the process
// environment and applies no flag overrides.
type Options struct {
	// LookupEnv reads the WYE_* overrides and the variables that *_env keys name.
	// Nil means os.LookupEnv.
	LookupEnv func(key string) (string, bool)
	// Overrides are applied last (flags win over env, env over the file), keyed by path:
	// {"log.level": "debug"}; a list of scalars takes its items comma-separated
	// {"indexer.retry_delays": "1s,5s"}. A path that cannot be overridden (a list of mappings,
	// a literal secret, an unknown key) is an error.
	Overrides map[string]string
	// Need is the sections whose secrets are resolved (zero: all). A command that only talks
	// to the clusters passes NeedClusters: the source, control and broker passwords may then
	// be unset in its environment.
	Need Need
}

// Load reads the YAML file at path, applies the defaults, WYE_* environment overrides and
// opts.Overrides, resolves secrets and validates the result. A configuration fault returns
// Errors listing every fault; an unreadable or malformed file returns a plain error.
func Load(path string, opts Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := parse(data, opts)
	if err != nil {
		var faults Errors
		if errors.As(err, &faults) {
			return nil, err
		}
		return nil, fmt.Errorf("parse config %s: %w", path, err)
	}
	return c, nil
}

// parse is Load without the file: the stages in order are defaults, file, env, flags,
// strict decoding, secret resolution, validation. Faults of all stages are reported together.
func parse(data []byte, opts Options) (*Config, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		var pe viper.ConfigParseError
		if errors.As(err, &pe) {
			err = pe.Unwrap()
		}
		return nil, err
	}

	// Overrides go through viper's own top layer (Set), so they merge into the file's maps.
	origin := map[string]string{} // path -> where an override came from, for fault messages
	keys := overrideKeys()
	for _, k := range keys {
		if val, name, ok := k.lookupEnv(lookup); ok {
			setOverride(v, k, val)
			origin[k.path] = "$" + name
		}
	}
	for _, path := range slices.Sorted(maps.Keys(opts.Overrides)) {
		i := slices.IndexFunc(keys, func(k overrideKey) bool { return k.path == path })
		if i < 0 {
			return nil, fmt.Errorf("override %s: not a key that can be overridden", path)
		}
		setOverride(v, keys[i], opts.Overrides[path])
		origin[path] = "a flag"
	}

	c := Default()
	d := decoder{}
	d.value("", v.AllSettings(), reflect.ValueOf(&c).Elem())

	faults := d.faults
	later := resolveSecrets(&c, lookup, opts.Need)
	if err := c.Validate(); err != nil {
		later = append(later, err.(Errors)...)
	}
	for _, f := range later {
		if !d.explains(f.Path) {
			faults = append(faults, f)
		}
	}
	if len(faults) == 0 {
		return &c, nil
	}
	for i, f := range faults {
		for path, o := range origin { // a list's fault is at one of its items
			if under(f.Path, path) {
				faults[i].Msg += " (set by " + o + ")"
				break
			}
		}
	}
	faults.sort()
	return nil, faults
}

// setOverride sets one scalar key above the file. Setting one source of a secret (password_env,
// say) clears its siblings, so WYE_SOURCE_PASSWORD_FILE replaces the file's password_env
// instead of conflicting with it.
func setOverride(v *viper.Viper, k overrideKey, val string) {
	for _, s := range k.clears {
		v.Set(s, "")
	}
	v.Set(k.path, k.value(val))
}

// Master returns the cluster whose role is master. A validated Config has exactly one.
func (c *Config) Master() (Cluster, bool) {
	for _, cl := range c.Clusters {
		if cl.Role == RoleMaster {
			return cl, true
		}
	}
	return Cluster{}, false
}

// YAML renders the resolved configuration, defaults included. Secrets print as "***".
func (c *Config) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b.Bytes(), nil
}

// Addr is host:port of the source.
func (s Source) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// MySQLConfig is the go-sql-driver configuration for reading the source, password and TLS
// included. parseTime stays off so DATETIME values arrive as text, the form the binlog
// decoder gives.
func (s Source) MySQLConfig() *mysql.Config {
	m := mysql.NewConfig()
	m.Net = "tcp"
	m.Addr = s.Addr()
	m.User = s.User
	m.Passwd = s.Password.Reveal()
	withTLS(m, s.TLS.On(), s.TLSConfig)
	return m
}

// TLSConfig is the TLS client configuration of every connection to the source (binlog
// stream and SQL reads), nil when source.tls is unset. Its errors name the key at fault,
// including a server certificate that source.tls.ca_file does not trust.
func (s Source) TLSConfig() (*tls.Config, error) { return s.TLS.Client("source.tls", s.Host) }

// Addr is host:port of the control database.
func (c Control) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// MySQLConfig is the go-sql-driver configuration for the control schema, password and TLS
// included. parseTime is on: checkpoint and ledger timestamps scan into time.Time.
func (c Control) MySQLConfig() *mysql.Config {
	m := mysql.NewConfig()
	m.Net = "tcp"
	m.Addr = c.Addr()
	m.User = c.User
	m.Passwd = c.Password.Reveal()
	m.DBName = c.Database
	m.ParseTime = true
	withTLS(m, c.TLS.On(), c.TLSConfig)
	return m
}

// TLSConfig is the TLS client configuration of the control schema's connections, nil when
// control.tls is unset.
func (c Control) TLSConfig() (*tls.Config, error) { return c.TLS.Client("control.tls", c.Host) }

// withTLS makes every new connection of m build its TLS configuration with build, when on.
// The files are read at each connection (go-sql-driver's BeforeConnect), so a renewed
// certificate is used without a restart, and a file that became unusable after Load fails
// the connection with the key at fault. Invariant: with TLS on no connection is ever made in
// the clear (go-sql-driver falls back to plaintext only with AllowFallbackToPlaintext).
func withTLS(m *mysql.Config, on bool, build func() (*tls.Config, error)) {
	if !on {
		return
	}
	// Apply fails only when an option does; BeforeConnect only stores the function.
	_ = m.Apply(mysql.BeforeConnect(func(_ context.Context, c *mysql.Config) error {
		conf, err := build()
		c.TLS = conf
		return err
	}))
}

// URLWithPassword is the broker URL with the password put into it, for amqp091.Dial.
// It contains the password: never log it (log URL, which has none).
func (a AMQP) URLWithPassword() string {
	u, err := url.Parse(a.URL)
	if err != nil || a.Password.IsZero() || u.User == nil {
		return a.URL // Validate rejects the first and the last case
	}
	u.User = url.UserPassword(u.User.Username(), a.Password.Reveal())
	return u.String()
}

// Host is the broker's host:port, for log lines.
func (a AMQP) Host() string {
	u, err := url.Parse(a.URL)
	if err != nil {
		return ""
	}
	return u.Host
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// under reports whether path is parent or lies below it.
func under(path, parent string) bool {
	return path == parent || strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}

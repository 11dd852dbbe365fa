package config

import (
	"errors"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wyehq/wye/cdc"
)

var (
	// Cluster names label metrics and rows of the control schema.
	clusterName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	// The control database name is spliced into SQL (identifiers cannot be bound), so it is
	// restricted to characters that never need quoting.
	identifier = regexp.MustCompile(`^[A-Za-z0-9_$]+$`)
	// Elasticsearch and OpenSearch index names: lower case, none of \/*?"<>| ,# and not
	// starting with -, _ or +.
	indexName = regexp.MustCompile(`^[a-z0-9][^A-Z\\/*?"<>| ,#:]*$`)
)

// Validate checks a decoded configuration and returns Errors with every fault, or nil.
// It reads the files it names (the tls blocks' ca_file, cert_file, key_file) but reaches no
// server. Secrets are checked by which sources are set, not by their resolved value, so it
// also works before resolution.
func (c *Config) Validate() error {
	var f Errors
	c.Source.validate(&f)
	c.Control.validate(&f)
	c.AMQP.validate(&f)
	validateClusters(&f, c.Clusters)
	c.CDC.validate(&f)
	c.Indexer.validate(&f)
	c.Mapping.validate(&f)
	c.Nightly.validate(&f)
	c.Promote.validate(&f)
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || !validPort(port) {
			f.add("metrics.listen", c.Metrics.Listen, "want host:port, like 127.0.0.1:9464 (empty disables metrics)")
		}
	}
	oneOf(&f, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(&f, "log.format", c.Log.Format, "text", "json")
	validateEntities(&f, c.Entities)
	return f.err()
}

func (s *Source) validate(f *Errors) {
	oneOf(f, "source.flavor", string(s.Flavor), string(FlavorMariaDB), string(FlavorMySQL))
	notEmpty(f, "source.host", s.Host)
	portRange(f, "source.port", s.Port)
	notEmpty(f, "source.user", s.User)
	if s.ServerID == 0 {
		f.add("source.server_id", "", "must be between 1 and 4294967295, and differ from every other replica's server_id")
	}
	validateTLS(f, "source.tls", s.TLS)
}

func (c *Control) validate(f *Errors) {
	notEmpty(f, "control.host", c.Host)
	portRange(f, "control.port", c.Port)
	notEmpty(f, "control.user", c.User)
	if notEmpty(f, "control.database", c.Database) && !identifier.MatchString(c.Database) {
		f.add("control.database", c.Database, "want letters, digits, _ or $")
	}
	validateTLS(f, "control.tls", c.TLS)
}

// validateTLS reports every fault of the tls block at path: the same check that builds the
// connections' TLS configuration (tlsconf.Options.Check), so what validates also builds.
func validateTLS(f *Errors, path string, t TLS) {
	for _, x := range t.Check() {
		f.add(path+"."+x.Key, x.Value, "%s", x.Msg)
	}
}

func (a *AMQP) validate(f *Errors) {
	if notEmpty(f, "amqp.url", a.URL) {
		u, err := url.Parse(a.URL)
		switch {
		case !strings.Contains(a.URL, "://"):
			f.add("amqp.url", redactRaw(a.URL), "missing scheme (want amqp:// or amqps://)")
		case err != nil:
			f.add("amqp.url", redactRaw(a.URL), "not a url: %v", errors.Unwrap(err))
		case u.Scheme != "amqp" && u.Scheme != "amqps":
			f.add("amqp.url", u.Redacted(), "unsupported scheme (want amqp or amqps)")
		case u.Host == "":
			f.add("amqp.url", u.Redacted(), "missing host")
		case hasPassword(u):
			f.add("amqp.url", u.Redacted(), "must not contain a password; set amqp.password_env or amqp.password_file")
		case u.User == nil && a.Password.configured(a.PasswordEnv, a.PasswordFile):
			f.add("amqp.url", u.Redacted(), "must name the user the password is for, like amqp://USER@host:5672/")
		}
	}
	notEmpty(f, "amqp.exchange", a.Exchange)
	notEmpty(f, "amqp.queue", a.Queue)
	notEmpty(f, "amqp.parked", a.Parked)
	atLeastOne(f, "amqp.delivery_limit", a.DeliveryLimit)
	if a.Prefetch < 1 || a.Prefetch > 65535 {
		f.add("amqp.prefetch", strconv.Itoa(a.Prefetch), "must be between 1 and 65535")
	}
	if a.Compression != "zstd" && a.Compression != "none" {
		f.add("amqp.compression", a.Compression, `must be "zstd" or "none"`)
	}
}

// The tuning knobs below: the components treat a zero knob as "use my default", so a zero or
// negative value is refused here instead of being silently replaced.

// maxReaderName is the width of the checkpoint's name column (control schema). The leader lock
// built from the name is hashed to fit MySQL's 64-byte lock names, so it sets no bound.
const maxReaderName = 64

func (c *CDC) validate(f *Errors) {
	if notEmpty(f, "cdc.name", c.Name) && len(c.Name) > maxReaderName {
		f.add("cdc.name", c.Name, "at most %d bytes: the name of the reader's checkpoint row", maxReaderName)
	}
	for i, t := range c.Tables {
		tableName(f, index("cdc.tables", i), t)
	}
	atLeastOne(f, "cdc.window", c.Window)
	positive(f, "cdc.checkpoint_interval", c.CheckpointInterval)
	atLeastOne(f, "cdc.batch_changes", c.BatchChanges)
	atLeastOne(f, "cdc.batch_bytes", c.BatchBytes)
	positive(f, "cdc.linger", c.Linger)
	if c.UpdateImages != cdc.UpdateImagesChanged && c.UpdateImages != cdc.UpdateImagesFull {
		f.add("cdc.update_images", c.UpdateImages, `want %q or %q`, cdc.UpdateImagesChanged, cdc.UpdateImagesFull)
	}
}

func (x *Indexer) validate(f *Errors) {
	if len(x.RetryDelays) == 0 {
		f.add("indexer.retry_delays", "", "must not be empty")
	}
	for i, d := range x.RetryDelays {
		positive(f, index("indexer.retry_delays", i), d)
	}
	atLeastOne(f, "indexer.max_attempts", x.MaxAttempts)
	atLeastOne(f, "indexer.batch_size", x.BatchSize)
	if x.BacklogBatchSize < x.BatchSize {
		f.add("indexer.backlog_batch_size", strconv.Itoa(x.BacklogBatchSize), "must be at least indexer.batch_size (%d)", x.BatchSize)
	}
	atLeastOne(f, "indexer.batch_bytes", x.BatchBytes)
	positive(f, "indexer.batch_wait", x.BatchWait)
	atLeastOne(f, "indexer.slave_backlog", x.SlaveBacklog)
	atLeastOne(f, "indexer.slave_in_flight", x.SlaveInFlight)
	atLeastOne(f, "indexer.consumers", x.Consumers)
	atLeastOne(f, "indexer.batches_in_flight", x.InFlight)
	atLeastOne(f, "indexer.slave_backlog_bytes", x.SlaveBacklogBytes)
	atLeastOne(f, "indexer.chunk_docs", x.ChunkDocs)
	atLeastOne(f, "indexer.chunk_bytes", x.ChunkBytes)
	atLeastOne(f, "indexer.bulk_bytes", x.BulkBytes)
	positive(f, "indexer.roles_poll", x.RolesPoll)
	if x.StopTimeout < 0 {
		// 0 is allowed: slaves get no time to drain, and their backlog goes to the ledger.
		f.add("indexer.stop_timeout", x.StopTimeout.String(), "must not be negative")
	}
	oneOf(f, "indexer.index_targets", x.IndexTargets, IndexTargetsMapping, IndexTargetsAlias)
	positive(f, "indexer.indices_ttl", x.IndicesTTL)
}

func (n *Nightly) validate(f *Errors) {
	atLeastOne(f, "nightly.chunk_rows", n.ChunkRows)
	atLeastOne(f, "nightly.scan_page", n.ScanPage)
	if n.MaxDeleteShare <= 0 || n.MaxDeleteShare > 1 {
		f.add("nightly.max_delete_share", strconv.FormatFloat(n.MaxDeleteShare, 'g', -1, 64), "must be above 0 and at most 1")
	}
	if n.RowsPerSecond < 0 {
		f.add("nightly.rows_per_second", strconv.FormatFloat(n.RowsPerSecond, 'g', -1, 64), "must not be negative (0: no limit)")
	}
	if n.BytesPerSecond < 0 {
		f.add("nightly.bytes_per_second", strconv.FormatFloat(n.BytesPerSecond, 'g', -1, 64), "must not be negative (0: no limit)")
	}
	notEmpty(f, "nightly.report", n.Report)
}

func (p *Promote) validate(f *Errors) {
	positive(f, "promote.min_interval", p.MinInterval)
	if p.MaxLag < 1 {
		f.add("promote.max_lag", strconv.FormatInt(p.MaxLag, 10), "must be at least 1")
	}
	atLeastOne(f, "promote.sample", p.Sample)
	positive(f, "promote.auto_after", p.AutoAfter)
	positive(f, "promote.auto_every", p.AutoEvery)
}

func (m *Mapping) validate(f *Errors) {
	notEmpty(f, "mapping.dir", m.Dir)
	// The prefix starts every index name, so it must be a valid start of one.
	if m.IndexPrefix != "" && !indexName.MatchString(m.IndexPrefix) {
		f.add("mapping.index_prefix", m.IndexPrefix, `not a valid start of an index name (lower case; no \/*?"<>|,# or space; not starting with -, _ or +)`)
	}
	if notEmpty(f, "mapping.version_field", m.VersionField) && !fieldName.MatchString(m.VersionField) {
		f.add("mapping.version_field", m.VersionField, "want letters, digits, _ or -, not starting with _ or -")
	}
}

func validateClusters(f *Errors, clusters []Cluster) {
	if len(clusters) == 0 {
		f.add("clusters", "", "must not be empty")
		return
	}
	names := map[string]string{} // name -> path of the cluster that has it
	urls := map[string]string{}  // normalized url -> path of its first use
	master := ""
	for i, c := range clusters {
		p := index("clusters", i)
		if notEmpty(f, p+".name", c.Name) {
			switch {
			case !clusterName.MatchString(c.Name):
				f.add(p+".name", c.Name, "want lower-case letters, digits, - or _")
			case names[c.Name] != "":
				f.add(p+".name", c.Name, "duplicate: %s has the same name", names[c.Name])
			default:
				names[c.Name] = p
			}
		}
		if len(c.URLs) == 0 {
			f.add(p+".urls", "", "must not be empty")
		}
		for j, raw := range c.URLs {
			up := index(p+".urls", j)
			u, err := url.Parse(raw)
			switch {
			case !strings.Contains(raw, "://"):
				f.add(up, redactRaw(raw), "missing scheme (want http:// or https://)")
			case err != nil:
				f.add(up, redactRaw(raw), "not a url: %v", errors.Unwrap(err))
			case u.Scheme != "http" && u.Scheme != "https":
				f.add(up, u.Redacted(), "unsupported scheme (want http or https)")
			case u.Host == "":
				f.add(up, u.Redacted(), "missing host")
			case hasPassword(u):
				f.add(up, u.Redacted(), "must not contain a password; set %s.auth.password_env or %s.auth.password_file", p, p)
			default:
				key := strings.ToLower(u.Scheme+"://"+u.Host) + strings.TrimSuffix(u.Path, "/")
				if first, seen := urls[key]; seen {
					f.add(up, u.Redacted(), "the same server as %s: each cluster must be a different one", first)
				} else {
					urls[key] = up
				}
			}
		}
		switch c.Role {
		case RoleMaster:
			if master != "" {
				f.add(p+".role", string(c.Role), "%s is already the master; want exactly one", master)
			} else {
				master = p
			}
		case RoleSlave:
		default:
			f.add(p+".role", string(c.Role), "want master or slave")
		}
		notEmpty(f, p+".mapping", c.Mapping)
		c.Auth.validate(f, p+".auth")
		validateTLS(f, p+".tls", c.TLS)
		positive(f, p+".timeouts.request", c.Timeouts.Request)
		positive(f, p+".timeouts.bulk", c.Timeouts.Bulk)
	}
	if master == "" {
		// Roles that are merely misspelt were reported above; this says what is missing.
		f.add("clusters", "", "no cluster has role master; want exactly one")
	}
}

func (a *Auth) validate(f *Errors, p string) {
	basic := a.Username != "" || a.Password.configured(a.PasswordEnv, a.PasswordFile)
	var methods []string
	if basic {
		methods = append(methods, "username/password")
	}
	if a.APIKey.configured(a.APIKeyEnv, a.APIKeyFile) {
		methods = append(methods, "api_key")
	}
	if a.BearerToken.configured(a.BearerTokenEnv, a.BearerTokenFile) {
		methods = append(methods, "bearer_token")
	}
	if len(methods) > 1 {
		f.add(p, "", "set at most one method: username/password, api_key or bearer_token (got %s)",
			strings.Join(methods, " and "))
		return
	}
	switch {
	case basic && a.Username == "":
		f.add(p+".username", "", "must be set with a password")
	case basic && !a.Password.configured(a.PasswordEnv, a.PasswordFile):
		f.add(p+".password", "", "must be set with a username (password, password_env or password_file)")
	}
}

// maxRelationDepth bounds nesting: each level costs one query per batch and per relation.
const maxRelationDepth = 4

// fieldName is a document field: no dots (they would read as object paths) and no leading
// underscore (Elasticsearch reserves those for metadata fields).
var fieldName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

func validateEntities(f *Errors, entities []Entity) {
	names := map[string]string{}
	indices := map[string]string{}
	for i, e := range entities {
		p := index("entities", i)
		if notEmpty(f, p+".name", e.Name) {
			if first := names[e.Name]; first != "" {
				f.add(p+".name", e.Name, "duplicate: %s has the same name", first)
			} else {
				names[e.Name] = p
			}
		}
		if notEmpty(f, p+".index", e.Index) {
			switch {
			case !indexName.MatchString(e.Index):
				f.add(p+".index", e.Index, `not a valid index name (lower case; no \/*?"<>|,# or space; not starting with -, _ or +)`)
			case indices[e.Index] != "":
				f.add(p+".index", e.Index, "duplicate: %s writes to the same index", indices[e.Index])
			default:
				indices[e.Index] = p
			}
		}
		tableName(f, p+".root.table", e.Root.Table)
		columnName(f, p+".root.key", e.Root.Key)
		if notEmpty(f, p+".version_field", e.VersionField) && !fieldName.MatchString(e.VersionField) {
			f.add(p+".version_field", e.VersionField, "want letters, digits, _ or -, not starting with _ or -")
		}
		fields := validateColumns(f, p+".root.columns", e.Root.Columns)
		validateRelations(f, p, e.Relations, fields, e.VersionField, 1, false)
	}
}

// validateRelations checks the relations of one parent at path parent. fields are the parent
// document's field names so far (its columns), which a relation's name must not reuse.
// compositeParent: the parent is a relation with a composite key.
func validateRelations(f *Errors, parent string, rels []Relation, fields map[string]string, versionField string, depth int, compositeParent bool) {
	for i, r := range rels {
		p := index(parent+".relations", i)
		if depth > maxRelationDepth {
			f.add(p, "", "nested deeper than %d levels", maxRelationDepth)
			return
		}
		if notEmpty(f, p+".name", r.Name) {
			switch {
			case !fieldName.MatchString(r.Name):
				f.add(p+".name", r.Name, "want letters, digits, _ or -, not starting with _ or -")
			case fields[r.Name] != "":
				f.add(p+".name", r.Name, "duplicate field: %s has the same name", fields[r.Name])
			case depth == 1 && r.Name == versionField:
				f.add(p+".name", r.Name, "is the version field")
			default:
				fields[r.Name] = p + ".name"
			}
		}
		tableName(f, p+".table", r.Table)
		validateKey(f, p, r)
		var links []string
		if r.From != "" {
			links = append(links, "from")
		}
		if r.ParentKey != "" {
			links = append(links, "parent_key")
		}
		if r.Through != (Through{}) {
			links = append(links, "through")
		}
		switch len(links) {
		case 0:
			f.add(p, "", "set one of from (many-to-one), parent_key (one-to-many) or through (many-to-many)")
		case 1:
		default:
			f.add(p, "", "set only one of from, parent_key and through (got %s)", strings.Join(links, " and "))
		}
		if compositeParent && r.From == "" && len(links) == 1 {
			f.add(p, "", "its parent relation has a composite key: only a from relation can nest in it "+
				"(a parent_key or through relation refers to one key column)")
		}
		validateOrder(f, p, r)
		if r.Where != "" && strings.TrimSpace(r.Where) == "" {
			f.add(p+".where", r.Where, "want an SQL predicate on the relation's table, or no where")
		}
		switch {
		case r.From != "":
			columnName(f, p+".from", r.From)
			if r.Many {
				f.add(p+".many", "true", "a many-to-one relation (from) is one object; remove many")
			}
		case r.ParentKey != "":
			columnName(f, p+".parent_key", r.ParentKey)
		case r.Through != (Through{}):
			tableName(f, p+".through.table", r.Through.Table)
			columnName(f, p+".through.parent_key", r.Through.ParentKey)
			columnName(f, p+".through.key", r.Through.Key)
			if !r.Many {
				f.add(p+".many", "false", "a relation through a join table is a list; set many: true")
			}
		}
		own := validateColumns(f, p+".columns", r.Columns)
		validateRelations(f, p, r.Relations, own, versionField, depth+1, len(r.Key) > 1)
	}
}

// validateKey checks a relation's key: one column, or several for a parent_key relation.
func validateKey(f *Errors, p string, r Relation) {
	switch len(r.Key) {
	case 0:
		f.add(p+".key", "", "must not be empty")
	case 1:
		columnName(f, p+".key", r.Key[0])
	default:
		for j, c := range r.Key {
			columnName(f, index(p+".key", j), c)
			if slices.Index(r.Key, c) < j {
				f.add(index(p+".key", j), c, "duplicate column")
			}
		}
		if r.From != "" || r.Through != (Through{}) {
			f.add(p+".key", "["+strings.Join(r.Key, ", ")+"]", "a composite key is for a parent_key (one-to-many) "+
				"relation: a from or through relation links one column, the related table's own key")
		}
	}
}

// validateOrder checks a relation's order_by: columns with asc or desc, on a relation that
// has rows to order.
func validateOrder(f *Errors, p string, r Relation) {
	for j, entry := range r.OrderBy {
		col, _, ok := SplitOrder(entry)
		switch {
		case !ok:
			f.add(index(p+".order_by", j), entry, `want "column", "column asc" or "column desc"`)
		case !identifier.MatchString(col):
			f.add(index(p+".order_by", j), entry, "column: want letters, digits, _ or $")
		}
	}
	if len(r.OrderBy) > 0 && r.From != "" {
		f.add(p+".order_by", "", "a many-to-one relation (from) has one row per parent: remove order_by")
	}
}

// validateColumns checks a columns list and returns the document fields it makes.
func validateColumns(f *Errors, path string, cols []string) map[string]string {
	fields := map[string]string{}
	for j, entry := range cols {
		cp := index(path, j)
		col, field := SplitColumn(entry)
		switch {
		case len(strings.Fields(entry)) != 1 && col == field:
			f.add(cp, entry, `want "column" or "column as field"`)
		case !identifier.MatchString(col):
			f.add(cp, entry, "column: want letters, digits, _ or $")
		case !fieldName.MatchString(field):
			f.add(cp, entry, "field: want letters, digits, _ or -, not starting with _ or -")
		case fields[field] != "":
			f.add(cp, entry, "duplicate field: %s has the same name", fields[field])
		default:
			fields[field] = cp
		}
	}
	return fields
}

func tableName(f *Errors, path, v string) {
	if notEmpty(f, path, v) {
		db, table, ok := strings.Cut(v, ".")
		if !ok || !identifier.MatchString(db) || !identifier.MatchString(table) {
			f.add(path, v, "want schema.table (letters, digits, _ or $)")
		}
	}
}

// columnName checks a column that is spliced into SQL: identifiers cannot be bound.
func columnName(f *Errors, path, v string) {
	if notEmpty(f, path, v) && !identifier.MatchString(v) {
		f.add(path, v, "want a column name (letters, digits, _ or $)")
	}
}

func notEmpty(f *Errors, path, v string) bool {
	if v == "" {
		f.add(path, "", "must not be empty")
		return false
	}
	return true
}

func oneOf(f *Errors, path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	last := len(allowed) - 1
	f.add(path, v, "want %s or %s", strings.Join(allowed[:last], ", "), allowed[last])
}

func portRange(f *Errors, path string, port int) {
	if port < 1 || port > 65535 {
		f.add(path, strconv.Itoa(port), "must be between 1 and 65535")
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func atLeastOne(f *Errors, path string, n int) {
	if n < 1 {
		f.add(path, strconv.Itoa(n), "must be at least 1")
	}
}

func positive(f *Errors, path string, d time.Duration) {
	if d <= 0 {
		f.add(path, d.String(), "must be greater than 0")
	}
}

// hasPassword reports a password in the URL's user info. Secrets never go in URLs: URLs are
// logged, shown by --print and end up in process listings.
func hasPassword(u *url.URL) bool {
	_, ok := u.User.Password()
	return ok
}

// redactRaw hides the user info of a URL that does not parse, since it may hold a password.
func redactRaw(raw string) string {
	i := strings.Index(raw, "://")
	j := strings.LastIndex(raw, "@")
	if i >= 0 && j > i {
		return raw[:i+3] + "***" + raw[j:]
	}
	if j >= 0 {
		return "***" + raw[j:]
	}
	return raw
}

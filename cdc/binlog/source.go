package binlog

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	driver "github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/internal/serverid"
)

// SourceOptions configure the binlog source.
type SourceOptions struct {
	Flavor   string // "mariadb" or "mysql"
	Host     string
	Port     uint16
	User     string
	Password string
	ServerID uint32   // wye's replica server_id: must be unique among the source's replicas
	Tables   []string // followed tables, "db.table"
	// TLS builds the TLS configuration of each new connection (the binlog stream and the
	// status queries); nil, or a nil configuration, for plain connections. Its errors fail
	// that connection.
	TLS    func() (*tls.Config, error)
	Logger *slog.Logger
	// UpdateImages is the reader's cdc.update_images. With cdc.UpdateImagesChanged an update
	// decodes only the columns its images will carry (the primary key, WholeColumns, and the
	// columns any row of its rows event changes: trim.go); the others stay nil in both images.
	// Any other value, "" included, decodes every column.
	UpdateImages string
	// WholeColumns are the reader's cdc.Options.WholeColumns: decoded in every update.
	WholeColumns cdc.WholeColumns
}

// Source reads the binlog of one server.
type Source struct {
	opts     SourceOptions
	db       *sql.DB
	followed map[string]map[string]bool
}

var _ cdc.Binlog = (*Source)(nil)

// NewSource prepares a source; it connects lazily.
func NewSource(opts SourceOptions) (*Source, error) {
	if opts.Flavor == "" {
		opts.Flavor = gomysql.MariaDBFlavor
	}
	if opts.ServerID == 0 {
		return nil, errors.New("new source: server_id must be set (a random one collides sooner or later)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg := driver.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd = "tcp", fmt.Sprintf("%s:%d", opts.Host, opts.Port), opts.User, opts.Password
	if opts.TLS != nil {
		// Apply fails only when an option does; BeforeConnect only stores the function.
		_ = cfg.Apply(driver.BeforeConnect(func(_ context.Context, c *driver.Config) error {
			var err error
			c.TLS, err = opts.TLS()
			return err
		}))
	}
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("new source: %w", err)
	}
	s := &Source{opts: opts, db: sql.OpenDB(conn), followed: map[string]map[string]bool{}}
	s.db.SetMaxOpenConns(2)
	for _, t := range opts.Tables {
		db, tbl, ok := strings.Cut(t, ".")
		if !ok {
			return nil, fmt.Errorf("new source: table %q: want db.table", t)
		}
		if s.followed[db] == nil {
			s.followed[db] = map[string]bool{}
		}
		s.followed[db][tbl] = true
	}
	return s, nil
}

// Close releases the status connection pool.
func (s *Source) Close() error { return s.db.Close() }

// Check verifies the server writes self-describing row events. Without ROW format and FULL
// images an update loses its before-image (invariant 5); without FULL row metadata the events
// carry no column names, and mapping them with the live schema mis-maps replays after ALTER.
// Settings that exist only on some servers (MySQL 8.0.x) are checked where they exist.
func (s *Source) Check(ctx context.Context) error {
	for _, name := range checkedSettings {
		var got string
		err := s.db.QueryRowContext(ctx, "SELECT @@"+name).Scan(&got)
		var me *driver.MySQLError
		switch {
		case errors.As(err, &me) && me.Number == 1193 && requiredSettings[name] == "":
			continue // unknown variable: this server cannot have the setting cdc refuses
		case err != nil:
			return fmt.Errorf("check source @@%s: %w", name, err)
		}
		if err := checkSetting(name, got); err != nil {
			return err
		}
	}
	return nil
}

// requiredSettings are the server settings cdc cannot run without, with the value it needs.
var requiredSettings = map[string]string{"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}

// checkedSettings are the variables Check reads, in order: the required ones, then those that
// only MySQL has (MariaDB answers "unknown variable").
var checkedSettings = []string{"binlog_format", "binlog_row_image", "binlog_row_metadata",
	"binlog_transaction_compression", "binlog_row_value_options"}

// checkSetting refuses a value of a checked server setting with which cdc would lose or
// mis-read changes, naming the setting.
func checkSetting(name, got string) error {
	if want, ok := requiredSettings[name]; ok {
		if !strings.EqualFold(got, want) {
			return fmt.Errorf("check source: @@%s is %q, cdc needs %s (set it in the server's config)", name, got, want)
		}
		return nil
	}
	switch name {
	case "binlog_transaction_compression":
		// MySQL 8.0.20+ can wrap each transaction in one compressed payload event, which this
		// reader does not unpack yet: refuse rather than skip its rows silently.
		if got == "1" || strings.EqualFold(got, "ON") {
			return fmt.Errorf("check source: @@binlog_transaction_compression is ON; cdc cannot read compressed transaction payloads yet (set it OFF)")
		}
	case "binlog_row_value_options":
		// MySQL 8.0.3+ with PARTIAL_JSON writes only the modified parts of a JSON document in
		// an update's after image (PARTIAL_UPDATE_ROWS_EVENT): the event no longer carries
		// the row, and the diff cannot be applied without the document.
		// https://dev.mysql.com/doc/refman/8.0/en/replication-features-json.html
		for _, opt := range strings.Split(got, ",") {
			if strings.EqualFold(strings.TrimSpace(opt), "PARTIAL_JSON") {
				return fmt.Errorf("check source: @@binlog_row_value_options is %q; cdc needs whole JSON documents in row events (set it to '')", got)
			}
		}
	}
	return nil
}

// statusStatement returns the statement that reports the binlog's current file and position.
// MySQL 8.2.0 added SHOW BINARY LOG STATUS and deprecated SHOW MASTER STATUS, which 8.4 removed
// (https://dev.mysql.com/doc/refman/8.4/en/show-binary-log-status.html). MariaDB keeps SHOW
// MASTER STATUS (its own new name, 10.5.2+, is SHOW BINLOG STATUS). A version that does not
// parse gets the old statement, which every server before MySQL 8.4 understands.
func statusStatement(flavor, version string) string {
	if flavor == gomysql.MySQLFlavor {
		if c, err := gomysql.CompareServerVersions(version, "8.2.0"); err == nil && c >= 0 {
			return "SHOW BINARY LOG STATUS"
		}
	}
	return "SHOW MASTER STATUS"
}

// Status checks the server and reports its identity and binlog end.
func (s *Source) Status(ctx context.Context) (cdc.SourceStatus, error) {
	var st cdc.SourceStatus
	if err := s.Check(ctx); err != nil {
		return st, err
	}
	id, err := serverid.Read(ctx, s.db, s.opts.Flavor)
	if err != nil {
		return st, err
	}
	st.ID = id
	var version string
	if err := s.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return st, fmt.Errorf("read server version: %w", err)
	}
	if err := s.current(ctx, statusStatement(s.opts.Flavor, version), &st); err != nil {
		return st, err
	}
	rows, err := s.db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return st, fmt.Errorf("show binary logs: %w", err)
	}
	var size any
	if err := scanFirst(rows, &st.Oldest, &size); err != nil {
		return st, fmt.Errorf("show binary logs: %w", err)
	}
	return st, nil
}

// current reads the binlog's end and the GTID position there into st. MySQL reports both in
// one row. MariaDB's @@gtid_binlog_pos is read before and after the position: equal, no
// transaction was written in between (the position is read under the binlog's lock, never in
// the middle of a transaction), so the position's GTID position is that one. A new reader's
// start point carries it: a source failover before its first commit checkpoint still resumes
// by GTID. BINLOG_GTID_POS would scan the file, and answered NULL on a binlog that SHOW
// BINLOG EVENTS cannot read through either (docs/cdc.md, "Source failover"); on a binlog too
// busy to read the same twice, the GTID set is left empty (the stream then asks BINLOG_GTID_POS).
func (s *Source) current(ctx context.Context, stmt string, st *cdc.SourceStatus) error {
	status := func() error {
		rows, err := s.db.QueryContext(ctx, stmt)
		if err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(stmt), err)
		}
		var doDB, ignoreDB, executed sql.NullString // MariaDB has no Executed_Gtid_Set column
		if err := scanFirst(rows, &st.Current.File, &st.Current.Pos, &doDB, &ignoreDB, &executed); err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(stmt), err)
		}
		st.GTIDSet = strings.ReplaceAll(executed.String, "\n", "") // MySQL: one line per uuid
		return nil
	}
	if s.opts.Flavor == gomysql.MySQLFlavor {
		return status()
	}
	gtidPos := func() (string, error) {
		var pos string
		if err := s.db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
			return "", fmt.Errorf("read @@gtid_binlog_pos: %w", err)
		}
		return pos, nil
	}
	for range 10 {
		before, err := gtidPos()
		if err != nil {
			return err
		}
		if err := status(); err != nil {
			return err
		}
		after, err := gtidPos()
		if err != nil {
			return err
		}
		if before == after {
			st.GTIDSet = after
			return nil
		}
	}
	st.GTIDSet = ""
	return nil
}

// scanFirst scans the first columns of the first row into dst and closes rows.
func scanFirst(rows *sql.Rows, dst ...any) error {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errors.New("no row (is log_bin on?)")
	}
	all := make([]any, len(cols))
	for i := range all {
		if i < len(dst) {
			all[i] = dst[i]
		} else {
			all[i] = new(any)
		}
	}
	return rows.Scan(all...)
}

// Open streams the binlog from a transaction boundary: from.Pos, or, for a checkpoint that
// resumes by GTID (a source change), the first transaction after from.GTIDSet. Every commit
// of the stream carries the whole GTID position after it, every domain or server uuid: it
// starts from from.GTIDSet or, without one, from what MariaDB reports for from.Pos
// (BINLOG_GTID_POS); MySQL cannot tell it for a past position, and those commits then carry
// only the GTIDs read since.
func (s *Source) Open(ctx context.Context, from cdc.Checkpoint) (cdc.Stream, error) {
	set := from.GTIDSet
	if set == "" && s.opts.Flavor != gomysql.MySQLFlavor {
		var pos sql.NullString
		if err := s.db.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", from.Pos.File, from.Pos.Pos).Scan(&pos); err != nil {
			return nil, fmt.Errorf("read GTID position at %s: %w", from.Pos, err)
		}
		set = pos.String
	}
	gtids, err := newGTIDState(s.opts.Flavor, set)
	if err != nil {
		return nil, err
	}
	st := s.newStream()
	st.file, st.gtids = from.Pos.File, gtids
	cfg, dialer, err := s.syncerConfig()
	if err != nil {
		return nil, err
	}
	cfg.RowsEventDecodeFunc = st.decodeRows
	cfg.TableMapOptionalMetaDecodeFunc = st.keepOptionalMeta
	cfg.SynchronousEventHandler = st
	st.syncer = replication.NewBinlogSyncer(cfg)
	var bs *replication.BinlogStreamer
	if from.ByGTID() {
		st.file = "" // the server names the file in the Rotate event it sends first
		bs, err = st.syncer.StartSyncGTID(gtids.set())
	} else {
		bs, err = st.syncer.StartSync(gomysql.Position{Name: from.Pos.File, Pos: from.Pos.Pos})
	}
	if err != nil {
		st.syncer.Close()
		return nil, fmt.Errorf("start binlog sync: %w", err)
	}
	dialer.dumping()
	go st.watch(bs)
	return st, nil
}

// newStream is a stream of s's followed tables, not yet reading.
func (s *Source) newStream() *stream {
	st := &stream{src: s, tables: map[uint64]*cachedTable{}, items: make(chan cdc.Streamed, streamBuffer),
		done: make(chan struct{})}
	if s.opts.UpdateImages == cdc.UpdateImagesChanged {
		st.trim = &trimmer{whole: s.opts.WholeColumns}
	}
	return st
}

// streamBuffer is how many items (a rows event's changes, a commit) wait between the binlog
// and the reader; go-mysql's own event cache is unused (it hands every event to HandleEvent).
const streamBuffer = 1024

// watch delivers the error that ends go-mysql's reading (a failed read, an error returned by
// HandleEvent, the syncer closed) as the stream's last value, then closes it. It sleeps until
// then: go-mysql sends events only to HandleEvent.
func (st *stream) watch(bs *replication.BinlogStreamer) {
	defer close(st.items)
	_, err := bs.GetEvent(context.Background())
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	select {
	case st.items <- cdc.Streamed{Err: err}:
	case <-st.done:
	}
}

// Holds reports whether this server can stream every transaction after gtidSet: it must have
// written all of gtidSet to its binlog (a promoted replica needs log_slave_updates /
// log_replica_updates) and purged none of the transactions after it.
func (s *Source) Holds(ctx context.Context, gtidSet string) (bool, string, error) {
	if s.opts.Flavor == gomysql.MySQLFlavor {
		var mode, executed, purged string
		err := s.db.QueryRowContext(ctx, "SELECT @@gtid_mode, @@gtid_executed, @@gtid_purged").Scan(&mode, &executed, &purged)
		if err != nil {
			return false, "", fmt.Errorf("read GTID state: %w", err)
		}
		if !strings.EqualFold(mode, "ON") {
			return false, "gtid_mode is " + mode + " on the new source", nil
		}
		ok, why, err := mysqlHolds(gtidSet, executed, purged)
		return ok, why, err
	}
	rows, err := s.db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return false, "", fmt.Errorf("show binary logs: %w", err)
	}
	var oldest string
	var size any
	if err := scanFirst(rows, &oldest, &size); err != nil {
		return false, "", fmt.Errorf("show binary logs: %w", err)
	}
	var binlogPos, before sql.NullString
	err = s.db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos, BINLOG_GTID_POS(?, 4)", oldest).Scan(&binlogPos, &before)
	if err != nil {
		return false, "", fmt.Errorf("read GTID state: %w", err)
	}
	return mariadbHolds(gtidSet, binlogPos.String, before.String)
}

// mariadbHolds decides Holds for MariaDB from the saved position, the server's
// @@gtid_binlog_pos (the last GTID of each domain in its binlog) and the GTID position before
// its oldest binlog. Sequence numbers grow within a domain (gtid_strict_mode, which the
// server checks again when the stream starts: it refuses a GTID missing from its binlog).
func mariadbHolds(saved, binlogPos, beforeOldest string) (bool, string, error) {
	want, err := mariadbDomains(saved)
	if err != nil {
		return false, "", fmt.Errorf("parse saved GTID set: %w", err)
	}
	has, err := mariadbDomains(binlogPos)
	if err != nil {
		return false, "", fmt.Errorf("parse @@gtid_binlog_pos: %w", err)
	}
	gone, err := mariadbDomains(beforeOldest)
	if err != nil {
		return false, "", fmt.Errorf("parse GTID position of the oldest binlog: %w", err)
	}
	for d, g := range want {
		h, ok := has[d]
		if !ok || h.SequenceNumber < g.SequenceNumber {
			return false, fmt.Sprintf("the new source's binlog does not reach %s (its gtid_binlog_pos is %q)", g.String(), binlogPos), nil
		}
	}
	for d, g := range gone {
		if w, ok := want[d]; !ok || w.SequenceNumber < g.SequenceNumber {
			return false, fmt.Sprintf("the new source purged binlogs up to %s, after the saved position %q", g.String(), saved), nil
		}
	}
	return true, "", nil
}

// mariadbDomains parses a MariaDB GTID position into its GTID per domain.
func mariadbDomains(pos string) (map[uint32]gomysql.MariadbGTID, error) {
	out := map[uint32]gomysql.MariadbGTID{}
	for _, part := range strings.Split(pos, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		g, err := gomysql.ParseMariadbGTID(part)
		if err != nil {
			return nil, err
		}
		if prev, ok := out[g.DomainID]; !ok || g.SequenceNumber > prev.SequenceNumber {
			out[g.DomainID] = *g
		}
	}
	return out, nil
}

// mysqlHolds decides Holds for MySQL: the saved set within the server's gtid_executed, and
// gtid_purged within the saved set.
func mysqlHolds(saved, executed, purged string) (bool, string, error) {
	want, err := gomysql.ParseMysqlGTIDSet(saved)
	if err != nil {
		return false, "", fmt.Errorf("parse saved GTID set: %w", err)
	}
	has, err := gomysql.ParseMysqlGTIDSet(executed)
	if err != nil {
		return false, "", fmt.Errorf("parse @@gtid_executed: %w", err)
	}
	gone, err := gomysql.ParseMysqlGTIDSet(purged)
	if err != nil {
		return false, "", fmt.Errorf("parse @@gtid_purged: %w", err)
	}
	if !has.Contain(want) {
		return false, fmt.Sprintf("the new source's gtid_executed %q does not contain %q", executed, saved), nil
	}
	if !want.Contain(gone) {
		return false, fmt.Sprintf("the new source purged %q, beyond the saved set %q", purged, saved), nil
	}
	return true, "", nil
}

// gtidState is a stream's GTID position after the last transaction read: MariaDB, the last
// GTID of every domain (a position, one per domain); MySQL, the set of every GTID executed.
type gtidState struct {
	mariadb map[uint32]gomysql.MariadbGTID
	mysql   *gomysql.MysqlGTIDSet
}

func newGTIDState(flavor, set string) (*gtidState, error) {
	if flavor == gomysql.MySQLFlavor {
		s, err := gomysql.ParseMysqlGTIDSet(set)
		if err != nil {
			return nil, fmt.Errorf("parse GTID set %q: %w", set, err)
		}
		return &gtidState{mysql: s.(*gomysql.MysqlGTIDSet)}, nil
	}
	d, err := mariadbDomains(set)
	if err != nil {
		return nil, fmt.Errorf("parse GTID position %q: %w", set, err)
	}
	return &gtidState{mariadb: d}, nil
}

// set returns the position as go-mysql's GTIDSet, to start a stream after it.
func (g *gtidState) set() gomysql.GTIDSet {
	if g.mysql != nil {
		return g.mysql
	}
	s := &gomysql.MariadbGTIDSet{Sets: map[uint32]*gomysql.MariadbGTID{}}
	for d, gtid := range g.mariadb {
		s.Sets[d] = &gtid
	}
	return s
}

// String renders the position as the server writes it: MariaDB domains in order, "d-s-n,...".
// Once per transaction: appended with strconv, without fmt or a map walk for one domain.
func (g *gtidState) String() string {
	if g.mysql != nil {
		return g.mysql.String()
	}
	var b []byte
	if len(g.mariadb) == 1 {
		for _, gtid := range g.mariadb {
			b = appendMariadbGTID(make([]byte, 0, 32), gtid)
		}
		return string(b)
	}
	domains := make([]uint32, 0, len(g.mariadb))
	for d := range g.mariadb {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	for i, d := range domains {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMariadbGTID(b, g.mariadb[d])
	}
	return string(b)
}

// appendMariadbGTID appends g as MariaDB writes it, "domain-server-sequence"
// (gomysql.MariadbGTID.String, without fmt.Sprintf; nothing for the zero GTID, as there).
func appendMariadbGTID(b []byte, g gomysql.MariadbGTID) []byte {
	if g == (gomysql.MariadbGTID{}) {
		return b
	}
	b = strconv.AppendUint(b, uint64(g.DomainID), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(g.ServerID), 10)
	b = append(b, '-')
	return strconv.AppendUint(b, g.SequenceNumber, 10)
}

// syncerConfig is the configuration of one replication connection, with its TLS built now,
// and the connection's dialer: call its dumping once the sync has started.
func (s *Source) syncerConfig() (replication.BinlogSyncerConfig, *watchedDialer, error) {
	var tlsConf *tls.Config
	if s.opts.TLS != nil {
		var err error
		if tlsConf, err = s.opts.TLS(); err != nil {
			return replication.BinlogSyncerConfig{}, nil, fmt.Errorf("open binlog stream: %w", err)
		}
	}
	dialer := newWatchedDialer(silenceTimeout, coalesceWindow)
	return replication.BinlogSyncerConfig{
		ServerID: s.opts.ServerID,
		Flavor:   s.opts.Flavor,
		Host:     s.opts.Host,
		Port:     s.opts.Port,
		User:     s.opts.User,
		Password: s.opts.Password,
		// go-mysql refuses a server that offers no TLS when this is set: never plaintext.
		TLSConfig: tlsConf,
		// Times as time.Time (in UTC for DATETIME, which has no zone and gains none):
		// cdc.AppendValue formats them with the column's fractional digits, without the
		// fmt.Sprintf go-mysql spends on each value as text. Values a time.Time cannot hold
		// (zero dates, a zero month or day, DATETIME before 1970) still come as text.
		ParseTime:               true,
		TimestampStringLocation: time.UTC,
		// DECIMAL as its exact text with the column's scale (decimal.Decimal drops zeros).
		UseDecimal:      false,
		HeartbeatPeriod: heartbeatPeriod,
		// No ReadTimeout: go-mysql would set a read deadline before every packet. The
		// dialer's watchdog bounds a read instead, and coalesces a live stream's reads
		// (silence.go).
		Dialer: dialer.dial,
		// go-mysql's own retry resumes mid-transaction, without the table map; the reader
		// restarts from its checkpoint instead.
		DisableRetrySync: true,
		Logger:           s.opts.Logger.With("component", "go-mysql"),
	}, dialer, nil
}

// RawRead reads the binlog from `from` to `to` with a no-op handler: the baseline of the
// benchmark (every event parsed and every row decoded by go-mysql, nothing else). It returns
// the number of row changes decoded.
func (s *Source) RawRead(ctx context.Context, from, to cdc.Position) (int, error) {
	cfg, dialer, err := s.syncerConfig()
	if err != nil {
		return 0, err
	}
	syncer := replication.NewBinlogSyncer(cfg)
	defer syncer.Close()
	bs, err := syncer.StartSync(gomysql.Position{Name: from.File, Pos: from.Pos})
	if err != nil {
		return 0, fmt.Errorf("start binlog sync: %w", err)
	}
	dialer.dumping()
	rows := 0
	file := from.File
	for {
		ev, err := bs.GetEvent(ctx)
		if err != nil {
			return rows, fmt.Errorf("read binlog: %w", err)
		}
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			// Its LogPos is a position in the file it closes: compared with the new file's
			// name it would end the read early.
			file = string(e.NextLogName)
			continue
		case *replication.RowsEvent:
			if e.Type() == replication.EnumRowsEventTypeUpdate {
				rows += len(e.Rows) / 2 // before and after image of one change
			} else {
				rows += len(e.Rows)
			}
		}
		if ev.Header.LogPos != 0 && !(cdc.Position{File: file, Pos: ev.Header.LogPos}).Less(to) {
			return rows, nil
		}
	}
}

// cachedTable is what the stream knows of one table id, kept while the table maps of that id
// describe the table alike (every transaction repeats them: sameTableMap): its description,
// and how its updates are trimmed. decodeRows and rows, next in the same goroutine, find it
// (describe).
type cachedTable struct {
	tme     *replication.TableMapEvent
	optMeta []byte // tme's optional metadata as the event carried it; nil: not known (tme decoded elsewhere)
	t       *cdc.Table
	err     string    // why the table cannot be decoded, if it cannot
	unknown []string  // columns of a type cdc does not know, warned about once per session
	plan    *trimPlan // how an update's images are trimmed; nil when every column is decoded
}

// stream turns binlog events into the reader's items in go-mysql's reading goroutine
// (HandleEvent): every field below syncer belongs to that goroutine.
type stream struct {
	src    *Source
	syncer *replication.BinlogSyncer
	items  chan cdc.Streamed
	done   chan struct{} // closed by Close: a pending send gives up
	once   sync.Once

	file   string
	gtid   string     // the current transaction's GTID
	gtids  *gtidState // the GTID position after the current transaction
	txnTS  time.Time
	tables map[uint64]*cachedTable
	warned map[string]bool // tables whose unknown column types were logged this session
	// bad is the rows event decodeRows could not decode, and badErr why: HandleEvent's item
	// for that event, next in the same goroutine, is a resync mark.
	bad    *replication.RowsEvent
	badErr error
	trim   *trimmer // nil: every column decoded
	// format is the last format description event (raw) and optMeta the optional metadata of
	// the table map go-mysql parsed last, left undecoded (keepOptionalMeta, completeTableMap).
	format     []byte
	optMeta    []byte
	optMetaSet bool
	// asked is the table map follows answered for last, askedFollows its answer.
	asked        *replication.TableMapEvent
	askedFollows bool
}

// decodeRows runs in go-mysql's reading goroutine, before HandleEvent gets the event: it
// decodes only the rows of followed tables
// (the table name is in the table map event, checked before any row is decoded) and, with
// trimmed update images, of an update only the columns the images carry (trim.go).
func (st *stream) decodeRows(e *replication.RowsEvent, data []byte) error {
	pos, err := e.DecodeHeader(data)
	if err != nil {
		return err
	}
	if !st.follows(e.Table) {
		return nil // e.Rows stays nil: skipped cheaply
	}
	ct := st.describe(e.Table)
	if ct.plan != nil {
		err = st.trim.decode(e, pos, data, ct.plan)
	} else {
		err = e.DecodeData(pos, data)
	}
	if err != nil {
		st.bad, st.badErr = e, err
	}
	return nil
}

// follows reports whether tme's table is followed. The answer for the last table map asked
// is kept: the rows events of a transaction ask about its table map again.
func (st *stream) follows(tme *replication.TableMapEvent) bool {
	if tme != st.asked {
		st.asked, st.askedFollows = tme, st.src.followed[string(tme.Schema)][string(tme.Table)]
	}
	return st.askedFollows
}

func (st *stream) Items() <-chan cdc.Streamed { return st.items }

func (st *stream) Close() {
	st.once.Do(func() { close(st.done) })
	st.syncer.Close()
}

// errStreamClosed ends go-mysql's reading when the reader has gone.
var errStreamClosed = errors.New("binlog stream closed")

// HandleEvent is go-mysql's SynchronousEventHandler: it runs in the goroutine that reads the
// binlog and hands the event's item, if any, to the reader, waiting while the reader is busy
// (the back-pressure from the broker reaches the binlog connection).
func (st *stream) HandleEvent(ev *replication.BinlogEvent) error {
	item, ok, err := st.item(ev)
	if err != nil || !ok {
		return err
	}
	select {
	case st.items <- cdc.Streamed{Item: item}:
		return nil
	case <-st.done:
		return errStreamClosed
	}
}

// Query events that neither open nor end a transaction: a checkpoint there would sit in the
// middle of one (invariant 1), and the rest of it would lose its GTID and commit time.
var reInTxn = regexp.MustCompile(`(?i)^\s*(SAVEPOINT|ROLLBACK\s+(WORK\s+)?TO|RELEASE\s+SAVEPOINT|XA\s+(END|PREPARE))\b`)

// XA START opens a transaction like BEGIN.
var reXAStart = regexp.MustCompile(`(?i)^\s*XA\s+(START|BEGIN)\b`)

var (
	reTruncate = regexp.MustCompile("(?i)^\\s*TRUNCATE\\s+(?:TABLE\\s+)?`?([^`.\\s]+)`?(?:\\.`?([^`\\s]+)`?)?")
	reDDL      = regexp.MustCompile("(?i)^\\s*(ALTER|DROP|RENAME|CREATE)\\s+(?:TEMPORARY\\s+)?TABLE")
)

// item turns one binlog event into the item the reader cares about, if any (ok).
func (st *stream) item(ev *replication.BinlogEvent) (item cdc.Item, ok bool, err error) {
	pos := cdc.Position{File: st.file, Pos: ev.Header.LogPos}
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		st.file = string(e.NextLogName)
	case *replication.FormatDescriptionEvent:
		st.format = ev.RawData
	case *replication.TableMapEvent:
		return cdc.Item{}, false, st.completeTableMap(e, ev.RawData)
	case *replication.MariadbGTIDEvent:
		st.gtid = string(appendMariadbGTID(make([]byte, 0, 32), e.GTID))
		if st.gtids.mariadb != nil {
			st.gtids.mariadb[e.GTID.DomainID] = e.GTID
		}
		st.txnTS = time.Unix(int64(ev.Header.Timestamp), 0)
	case *replication.GTIDEvent:
		if next, err := e.GTIDNext(); err == nil {
			st.gtid = next.String()
			if st.gtids.mysql != nil {
				if err := st.gtids.mysql.Update(st.gtid); err != nil {
					return cdc.Item{}, false, fmt.Errorf("add GTID %s: %w", st.gtid, err)
				}
			}
		}
		st.txnTS = time.Unix(int64(ev.Header.Timestamp), 0)
		if e.OriginalCommitTimestamp > 0 {
			st.txnTS = time.UnixMicro(int64(e.OriginalCommitTimestamp)).Truncate(time.Second)
		}
	case *replication.XIDEvent:
		return st.commit(pos), true, nil
	case *replication.QueryEvent:
		q := string(e.Query)
		if strings.EqualFold(q, "BEGIN") || reXAStart.MatchString(q) {
			if st.txnTS.IsZero() || st.gtid == "" {
				st.txnTS = time.Unix(int64(ev.Header.Timestamp), 0)
			}
			return cdc.Item{}, false, nil
		}
		if reInTxn.MatchString(q) {
			return cdc.Item{}, false, nil // SAVEPOINT and friends are inside the transaction: not a commit point
		}
		item := st.commit(pos) // COMMIT/ROLLBACK of a non-transactional engine, XA COMMIT, or a DDL
		if m := reTruncate.FindStringSubmatch(q); m != nil {
			db, tbl := string(e.Schema), m[1]
			if m[2] != "" {
				db, tbl = m[1], m[2]
			}
			if st.src.followed[db][tbl] {
				item.Resync = &cdc.ResyncMark{Table: db + "." + tbl, Reason: "truncate",
					Detail: "TRUNCATE writes no row events: " + trim(q), Pos: pos}
			}
		} else if reDDL.MatchString(q) {
			st.src.opts.Logger.Info("DDL in the binlog; row events carry their own columns", "schema", string(e.Schema),
				"query", trim(q), "position", pos.String())
		}
		return item, true, nil
	case *replication.RowsEvent:
		item, ok := st.rows(e, pos)
		return item, ok, nil
	}
	return cdc.Item{}, false, nil
}

func (st *stream) commit(pos cdc.Position) cdc.Item {
	st.gtid = ""
	st.txnTS = time.Time{}
	return cdc.Item{Commit: true, Pos: pos, GTIDSet: st.gtids.String()}
}

func (st *stream) rows(e *replication.RowsEvent, pos cdc.Position) (cdc.Item, bool) {
	if e == st.bad {
		st.bad = nil
		return cdc.Item{Pos: pos, Resync: &cdc.ResyncMark{Table: tableName(e.Table), Reason: "undecodable",
			Detail: st.badErr.Error(), Pos: pos}}, true
	}
	if e.Rows == nil {
		return cdc.Item{}, false
	}
	ct := st.describe(e.Table) // decodeRows described it: found by its id, the same map
	if len(ct.unknown) > 0 {
		if name := tableName(e.Table); !st.warned[name] {
			if st.warned == nil {
				st.warned = map[string]bool{}
			}
			st.warned[name] = true // once per table and session: a TABLE_MAP precedes every transaction
			st.src.opts.Logger.Warn("columns of a type cdc does not know are sent as text, best effort; keys and links must not use them",
				"table", name, "columns", ct.unknown, "position", pos.String())
		}
	}
	if ct.err != "" {
		return cdc.Item{Pos: pos, Resync: &cdc.ResyncMark{Table: tableName(e.Table), Reason: "no_metadata", Detail: ct.err, Pos: pos}}, true
	}
	ts := st.txnTS
	if ts.IsZero() {
		ts = time.Now().Truncate(time.Second)
	}
	var op cdc.Op
	step := 1
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert:
		op = cdc.OpInsert
	case replication.EnumRowsEventTypeDelete:
		op = cdc.OpDelete
	case replication.EnumRowsEventTypeUpdate:
		op, step = cdc.OpUpdate, 2
	default:
		return cdc.Item{Pos: pos, Resync: &cdc.ResyncMark{Table: tableName(e.Table), Reason: "undecodable",
			Detail: "unknown rows event type", Pos: pos}}, true
	}
	changes := make([]cdc.Change, 0, len(e.Rows)/step)
	for i := 0; i+step-1 < len(e.Rows); i += step {
		c := cdc.Change{Table: ct.t, Op: op, CommitTS: ts, Pos: pos, GTID: st.gtid}
		switch op {
		case cdc.OpInsert:
			c.After = e.Rows[i]
		case cdc.OpDelete:
			c.Before = e.Rows[i]
		case cdc.OpUpdate:
			c.Before, c.After = e.Rows[i], e.Rows[i+1]
		}
		changes = append(changes, c)
	}
	return cdc.Item{Changes: changes, Pos: pos}, true
}

// tableName is the "db.table" of tme.
func tableName(tme *replication.TableMapEvent) string {
	return string(tme.Schema) + "." + string(tme.Table)
}

// describe returns the cached description of tme's table, made anew when tme describes the
// table otherwise than the cached one (or none is cached): one lookup and, per new table map,
// one comparison for both the decode and the changes.
func (st *stream) describe(tme *replication.TableMapEvent) *cachedTable {
	ct := st.tables[tme.TableID]
	if ct != nil && ct.tme != tme && sameTableMap(ct.tme, tme) {
		// Every transaction repeats its tables' maps: the same description serves it, and
		// the encoder's per-table state with it.
		ct.tme = tme
	}
	if ct == nil || ct.tme != tme {
		ct = &cachedTable{tme: tme}
		ct.t, ct.unknown, ct.err = tableOf(tme)
		if st.trim != nil && ct.err == "" {
			ct.plan = st.trim.plan(tme, ct.t)
		}
		st.tables[tme.TableID] = ct
	}
	return ct
}

// keepOptionalMeta is go-mysql's TableMapOptionalMetaDecodeFunc: it keeps a table map's
// optional metadata (column names, signedness, charsets, ENUM/SET members, primary key), which
// go-mysql would decode in full for every table map, every transaction repeating them, for
// completeTableMap, called next in the same goroutine with that table map (HandleEvent).
//
// Invariant: data is kept past the call, so it must not be go-mysql's to reuse. go-mysql v1.15
// reads every packet into a slice of its own (packet.Conn.ReadPacket: ReadPacketReuseMem(nil)
// copies it out of the pooled buffer); a go-mysql that handed out a reused buffer would need a
// copy here.
func (st *stream) keepOptionalMeta(data []byte) error {
	st.optMeta, st.optMetaSet = data, true
	return nil
}

// completeTableMap gives tme, a table map whose optional metadata keepOptionalMeta kept
// undecoded, the fields go-mysql decodes from it, for a followed table (the others' rows are
// not decoded: decodeRows): taken from the cached table map of its id when both events carry
// the same bytes (the fields go-mysql decodes from them are then equal too), else decoded by
// go-mysql from the event itself (a first map, an ALTER TABLE, a table id reused). Without
// kept metadata (go-mysql decoded it) tme is complete already.
func (st *stream) completeTableMap(tme *replication.TableMapEvent, raw []byte) error {
	optMeta, kept := st.optMeta, st.optMetaSet
	st.optMeta, st.optMetaSet = nil, false
	if !kept || !st.follows(tme) {
		return nil
	}
	if ct := st.tables[tme.TableID]; ct != nil && ct.optMeta != nil && bytes.Equal(ct.optMeta, optMeta) && sameFixedTableMap(ct.tme, tme) {
		copyOptionalMeta(tme, ct.tme)
		ct.tme = tme // as describe does for a map alike (sameTableMap)
		return nil
	}
	full, err := decodeTableMap(st.src.opts.Flavor, st.format, raw)
	if err != nil {
		return fmt.Errorf("decode table map of %s.%s: %w", tme.Schema, tme.Table, err)
	}
	copyOptionalMeta(tme, full)
	st.describe(tme).optMeta = optMeta
	return nil
}

// decodeTableMap decodes the table map event raw with every field, as go-mysql's parser of
// flavor does after the format description event format.
func decodeTableMap(flavor string, format, raw []byte) (*replication.TableMapEvent, error) {
	if format == nil {
		return nil, errors.New("no format description event before it")
	}
	p := replication.NewBinlogParser()
	p.SetFlavor(flavor)
	if _, err := p.Parse(format); err != nil {
		return nil, err
	}
	ev, err := p.Parse(raw)
	if err != nil {
		return nil, err
	}
	tme, ok := ev.Event.(*replication.TableMapEvent)
	if !ok {
		return nil, fmt.Errorf("event type %s is not a table map", ev.Header.EventType)
	}
	return tme, nil
}

// sameFixedTableMap reports whether two table maps carry the same fields before the optional
// metadata.
func sameFixedTableMap(a, b *replication.TableMapEvent) bool {
	return a.TableID == b.TableID && a.Flags == b.Flags && bytes.Equal(a.Schema, b.Schema) && bytes.Equal(a.Table, b.Table) &&
		a.ColumnCount == b.ColumnCount && bytes.Equal(a.ColumnType, b.ColumnType) && slices.Equal(a.ColumnMeta, b.ColumnMeta) &&
		bytes.Equal(a.NullBitmap, b.NullBitmap)
}

// copyOptionalMeta sets the fields go-mysql v1.15 decodes from a table map's optional
// metadata (decodeOptionalMeta) in dst to those of src; sameTableMap compares them.
func copyOptionalMeta(dst, src *replication.TableMapEvent) {
	dst.SignednessBitmap, dst.DefaultCharset, dst.ColumnCharset = src.SignednessBitmap, src.DefaultCharset, src.ColumnCharset
	dst.SetStrValue, dst.EnumStrValue, dst.ColumnName = src.SetStrValue, src.EnumStrValue, src.ColumnName
	dst.GeometryType, dst.PrimaryKey, dst.PrimaryKeyPrefix = src.GeometryType, src.PrimaryKey, src.PrimaryKeyPrefix
	dst.EnumSetDefaultCharset, dst.EnumSetColumnCharset = src.EnumSetDefaultCharset, src.EnumSetColumnCharset
	dst.VisibilityBitmap = src.VisibilityBitmap
}

func trim(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 200 {
		return q[:200] + "..."
	}
	return q
}

// tableOf describes a table from its TABLE_MAP event, which (binlog_row_metadata=FULL) carries
// the column names, signedness, charsets, ENUM/SET members and primary key as of this event.
// sameTableMap reports whether two table map events describe the same table alike: every
// field that go-mysql v1.15 decodes from the event is equal (tableOf reads only these), so
// tableOf would return the same description for both.
func sameTableMap(a, b *replication.TableMapEvent) bool {
	eqNested := func(x, y [][]byte) bool { return slices.EqualFunc(x, y, bytes.Equal) }
	return sameFixedTableMap(a, b) && bytes.Equal(a.SignednessBitmap, b.SignednessBitmap) &&
		slices.Equal(a.DefaultCharset, b.DefaultCharset) && slices.Equal(a.ColumnCharset, b.ColumnCharset) &&
		slices.EqualFunc(a.SetStrValue, b.SetStrValue, eqNested) && slices.EqualFunc(a.EnumStrValue, b.EnumStrValue, eqNested) &&
		eqNested(a.ColumnName, b.ColumnName) && slices.Equal(a.GeometryType, b.GeometryType) &&
		slices.Equal(a.PrimaryKey, b.PrimaryKey) && slices.Equal(a.PrimaryKeyPrefix, b.PrimaryKeyPrefix) &&
		slices.Equal(a.EnumSetDefaultCharset, b.EnumSetDefaultCharset) && slices.Equal(a.EnumSetColumnCharset, b.EnumSetColumnCharset) &&
		bytes.Equal(a.VisibilityBitmap, b.VisibilityBitmap)
}

// A column of a binlog type cdc does not know is sent as text (whatever go-mysql decoded,
// printed) and named in unknown, so that one such column does not cost the table its
// changes; in the primary key it fails the table, whose changes could not be told apart.
func tableOf(tme *replication.TableMapEvent) (t *cdc.Table, unknown []string, failed string) {
	names := tme.ColumnNameString()
	if len(names) != int(tme.ColumnCount) {
		return nil, nil, "table map event has no column names (binlog_row_metadata is not FULL for this event)"
	}
	inPK := map[int]bool{}
	for _, k := range tme.PrimaryKey {
		inPK[int(k)] = true
	}
	unsigned := tme.UnsignedMap()
	collations := tme.CollationMap()
	enumSetCollations := tme.EnumSetCollationMap()
	enums := tme.EnumStrValueMap()
	sets := tme.SetStrValueMap()
	t = &cdc.Table{Schema: string(tme.Schema), Name: string(tme.Table), Columns: make([]cdc.Column, tme.ColumnCount)}
	for i := range t.Columns {
		col := cdc.Column{Name: names[i]}
		tp, meta := tme.ColumnType[i], tme.ColumnMeta[i]
		length := int(meta) // CHAR/BINARY: the column's length in bytes (go-mysql decodeValue)
		if tp == gomysql.MYSQL_TYPE_STRING {
			tp, length = stringType(meta)
		}
		switch tp {
		case gomysql.MYSQL_TYPE_TINY, gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_INT24,
			gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_LONGLONG:
			col.Kind = cdc.KindInt
			if unsigned[i] {
				col.Kind = cdc.KindUint
			}
		case gomysql.MYSQL_TYPE_FLOAT:
			col.Kind = cdc.KindFloat32
		case gomysql.MYSQL_TYPE_DOUBLE:
			col.Kind = cdc.KindFloat64
		case gomysql.MYSQL_TYPE_NEWDECIMAL, gomysql.MYSQL_TYPE_DECIMAL:
			col.Kind = cdc.KindDecimal
		case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_TIMESTAMP:
			col.Kind = cdc.KindDateTime // the old formats: whole seconds
			if tp == gomysql.MYSQL_TYPE_TIMESTAMP {
				col.Kind = cdc.KindTimestamp
			}
		case gomysql.MYSQL_TYPE_DATETIME2, gomysql.MYSQL_TYPE_TIMESTAMP2:
			col.Kind, col.Frac = cdc.KindDateTime, int(meta) // meta: the fractional digits
			if tp == gomysql.MYSQL_TYPE_TIMESTAMP2 {
				col.Kind = cdc.KindTimestamp
			}
		case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
			col.Kind = cdc.KindDate
		case gomysql.MYSQL_TYPE_TIME, gomysql.MYSQL_TYPE_TIME2:
			col.Kind = cdc.KindTime
		case gomysql.MYSQL_TYPE_YEAR:
			col.Kind = cdc.KindYear
		case gomysql.MYSQL_TYPE_BIT:
			col.Kind = cdc.KindBit
		case gomysql.MYSQL_TYPE_JSON:
			col.Kind = cdc.KindJSON
		case gomysql.MYSQL_TYPE_ENUM:
			col.Kind, col.Members = cdc.KindEnum, utf8Members(enums[i], enumSetCollations[i])
		case gomysql.MYSQL_TYPE_SET:
			col.Kind, col.Members = cdc.KindSet, utf8Members(sets[i], enumSetCollations[i])
		case gomysql.MYSQL_TYPE_GEOMETRY, gomysql.MYSQL_TYPE_VECTOR:
			col.Kind = cdc.KindBinary
		case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING, gomysql.MYSQL_TYPE_STRING,
			gomysql.MYSQL_TYPE_BLOB, gomysql.MYSQL_TYPE_TINY_BLOB, gomysql.MYSQL_TYPE_MEDIUM_BLOB, gomysql.MYSQL_TYPE_LONG_BLOB:
			col.Kind, col.Charset = cdc.KindText, charsetOf(collations[i])
			if collations[i] == binaryCollation {
				col.Kind, col.Charset = cdc.KindBinary, cdc.CharsetUTF8
				if tp == gomysql.MYSQL_TYPE_STRING {
					col.Pad = length
				}
			}
		default:
			if inPK[i] {
				return nil, nil, fmt.Sprintf("primary key column %s has binlog type %d, which cdc does not encode", names[i], tp)
			}
			// KindText encodes any decoded value without failing (nil as null).
			col.Kind = cdc.KindText
			unknown = append(unknown, fmt.Sprintf("%s (binlog type %d)", names[i], tp))
		}
		t.Columns[i] = col
	}
	for _, k := range tme.PrimaryKey {
		t.PK = append(t.PK, int(k))
	}
	return t, unknown, ""
}

// binaryCollation is the collation id of the binary charset (BINARY, VARBINARY, BLOB).
const binaryCollation = 63

// charsetOf is the character set of a collation id: the ids of latin1's collations in MySQL
// and MariaDB (information_schema.COLLATIONS; 1032 and 1071 are MariaDB's NO PAD ones).
func charsetOf(collation uint64) cdc.Charset {
	switch collation {
	case 5, 8, 15, 31, 47, 48, 49, 94, 1032, 1071:
		return cdc.CharsetLatin1
	}
	return cdc.CharsetUTF8
}

// utf8Members converts ENUM or SET member names from the column's character set.
func utf8Members(members []string, collation uint64) []string {
	cs := charsetOf(collation)
	if cs == cdc.CharsetUTF8 {
		return members
	}
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = cs.UTF8(m)
	}
	return out
}

package binlog

import (
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/wyehq/wye/cdc"
)

func TestMySQL84ReadsTheBinlogPositionWithShowBinaryLogStatus(t *testing.T) {
	for _, tc := range []struct {
		flavor, version, want string
	}{
		{gomysql.MySQLFlavor, "8.4.0", "SHOW BINARY LOG STATUS"}, // SHOW MASTER STATUS removed
		{gomysql.MySQLFlavor, "8.4.3-commercial", "SHOW BINARY LOG STATUS"},
		{gomysql.MySQLFlavor, "9.1.0", "SHOW BINARY LOG STATUS"},
		{gomysql.MySQLFlavor, "8.2.0", "SHOW BINARY LOG STATUS"}, // added, the old one deprecated
		{gomysql.MySQLFlavor, "8.0.36-0ubuntu0.22.04.1", "SHOW MASTER STATUS"},
		{gomysql.MySQLFlavor, "5.7.44-log", "SHOW MASTER STATUS"},
		{gomysql.MySQLFlavor, "not a version", "SHOW MASTER STATUS"},
		{gomysql.MariaDBFlavor, "10.11.6-MariaDB-0+deb12u1", "SHOW MASTER STATUS"},
		{gomysql.MariaDBFlavor, "11.4.2-MariaDB", "SHOW MASTER STATUS"},
	} {
		if got := statusStatement(tc.flavor, tc.version); got != tc.want {
			t.Errorf("statusStatement(%s, %q) = %q, want %q", tc.flavor, tc.version, got, tc.want)
		}
	}
}

func TestPartialJSONRowValuesAreRefusedByName(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		refused     bool
	}{
		{"binlog_row_value_options", "PARTIAL_JSON", true},
		{"binlog_row_value_options", "partial_json", true},
		{"binlog_row_value_options", "", false},
		{"binlog_transaction_compression", "ON", true},
		{"binlog_transaction_compression", "1", true},
		{"binlog_transaction_compression", "OFF", false},
		{"binlog_format", "MIXED", true},
		{"binlog_format", "row", false},
		{"binlog_row_image", "MINIMAL", true},
		{"binlog_row_metadata", "MINIMAL", true},
		{"binlog_row_metadata", "FULL", false},
	} {
		err := checkSetting(tc.name, tc.value)
		if (err != nil) != tc.refused {
			t.Errorf("checkSetting(%s, %q) = %v, want refused=%v", tc.name, tc.value, err, tc.refused)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "@@"+tc.name) {
			t.Errorf("checkSetting(%s, %q) = %q: does not name the setting", tc.name, tc.value, err)
		}
	}
	for _, name := range checkedSettings {
		if name == "binlog_row_value_options" {
			return
		}
	}
	t.Error("Check does not read binlog_row_value_options")
}

// tableMap is a TABLE_MAP event of t(id INT PRIMARY KEY, note <tp>, n INT) with FULL metadata.
func tableMap(tp byte, pk ...uint64) *replication.TableMapEvent {
	return &replication.TableMapEvent{
		Schema: []byte("db"), Table: []byte("t"), ColumnCount: 3,
		ColumnType: []byte{gomysql.MYSQL_TYPE_LONG, tp, gomysql.MYSQL_TYPE_LONG},
		ColumnMeta: []uint16{0, 0, 0},
		ColumnName: [][]byte{[]byte("id"), []byte("note"), []byte("n")},
		PrimaryKey: pk,
	}
}

func TestUnknownColumnTypeOutsideTheKeyKeepsTheTablesChanges(t *testing.T) {
	// MYSQL_TYPE_NULL: go-mysql decodes it (as nil), cdc has no kind for it.
	tbl, unknown, failed := tableOf(tableMap(gomysql.MYSQL_TYPE_NULL, 0))
	if failed != "" {
		t.Fatalf("table refused for a column outside the key: %s", failed)
	}
	if len(unknown) != 1 || !strings.HasPrefix(unknown[0], "note ") {
		t.Fatalf("unknown columns = %v, want note", unknown)
	}
	if tbl.Columns[0].Kind != cdc.KindInt || tbl.Columns[2].Kind != cdc.KindInt || len(tbl.PK) != 1 {
		t.Fatalf("known columns or key lost: %+v", tbl)
	}
	// Whatever go-mysql decodes for it encodes without an error: the change is published.
	for v, want := range map[any]string{nil: "null", "x": `"x"`, int64(7): `"7"`} {
		b, err := cdc.AppendValue(nil, tbl.Columns[1], v)
		if err != nil || string(b) != want {
			t.Errorf("AppendValue(%v) = %s, %v; want %s", v, b, err, want)
		}
	}
	if _, _, failed := tableOf(tableMap(0xf4, 0)); failed != "" { // MySQL's internal typed array
		t.Errorf("typed array column outside the key refused: %s", failed)
	}
}

func TestUnknownColumnTypeInTheKeyFailsTheTable(t *testing.T) {
	_, _, failed := tableOf(tableMap(gomysql.MYSQL_TYPE_NULL, 0, 1))
	if !strings.Contains(failed, "primary key column note") {
		t.Fatalf("failed = %q, want the key column named", failed)
	}
}

func TestFailoverResumesOnlyOnAServerThatHoldsTheWholeSavedPosition(t *testing.T) {
	for _, tc := range []struct {
		name, saved, binlogPos, beforeOldest string
		ok                                   bool
		why                                  string
	}{
		{"caught-up replica", "0-1-10,1-1-5", "0-1-12,1-1-5", "0-1-3", true, ""},
		{"promoted replica with its own writes", "0-1-10,1-1-5", "0-2-14,1-1-5", "", true, ""},
		{"replica behind in one domain", "0-1-10,1-1-5", "0-1-12,1-1-4", "", false, "does not reach 1-1-5"},
		{"domain missing", "0-1-10,1-1-5", "0-1-12", "", false, "does not reach 1-1-5"},
		{"purged past the saved position", "0-1-10", "0-1-90", "0-1-40", false, "purged binlogs up to 0-1-40"},
		{"purged a domain the saved position lacks", "0-1-10", "0-1-90,2-2-7", "2-2-3", false, "purged binlogs up to 2-2-3"},
	} {
		ok, why, err := mariadbHolds(tc.saved, tc.binlogPos, tc.beforeOldest)
		if err != nil || ok != tc.ok || !strings.Contains(why, tc.why) {
			t.Errorf("%s: mariadbHolds = %v, %q, %v; want %v, %q", tc.name, ok, why, err, tc.ok, tc.why)
		}
	}
	const a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	for _, tc := range []struct {
		name, saved, executed, purged string
		ok                            bool
	}{
		{"every server uuid held", a + ":1-10," + b + ":1-3", a + ":1-12," + b + ":1-5", a + ":1-2", true},
		{"a server uuid missing", a + ":1-10," + b + ":1-3", a + ":1-12", "", false},
		{"purged past the saved set", a + ":1-10", a + ":1-40", a + ":1-20", false},
	} {
		ok, _, err := mysqlHolds(tc.saved, tc.executed, tc.purged)
		if err != nil || ok != tc.ok {
			t.Errorf("%s: mysqlHolds = %v, %v; want %v", tc.name, ok, err, tc.ok)
		}
	}
}

// TestCommitsCarryTheWholeGTIDPositionNotOnlyTheDomainsSeen prevents a checkpoint saved with
// only the domains a session happened to read: a resume on another server from such a set
// would re-send or refuse the rest.
func TestCommitsCarryTheWholeGTIDPositionNotOnlyTheDomainsSeen(t *testing.T) {
	g, err := newGTIDState(gomysql.MariaDBFlavor, "1-1-5,0-1-10,2-3-7")
	if err != nil {
		t.Fatal(err)
	}
	st := &stream{gtids: g}
	g.mariadb[0] = gomysql.MariadbGTID{DomainID: 0, ServerID: 2, SequenceNumber: 11} // one transaction read
	if got := st.commit(cdc.Position{File: "b.000001", Pos: 9}).GTIDSet; got != "0-2-11,1-1-5,2-3-7" {
		t.Fatalf("commit GTID position %q, want every domain", got)
	}
	if s := g.set().String(); s != "0-2-11,1-1-5,2-3-7" {
		t.Fatalf("resume set %q", s)
	}
	const a = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	m, err := newGTIDState(gomysql.MySQLFlavor, a+":1-10")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.mysql.Update(a + ":11"); err != nil {
		t.Fatal(err)
	}
	if got := m.String(); got != a+":1-11" {
		t.Fatalf("MySQL GTID set %q, want %s:1-11", got, a)
	}
}

// TestBinaryKeysArePaddedAndLatin1Converted prevents keys that find no row: a BINARY(n)
// column carries its length from the TABLE_MAP (the binlog drops its trailing 0x00 bytes, a SQL
// read returns all n), latin1 text and ENUM members are converted as MySQL converts them.
func TestBinaryKeysArePaddedAndLatin1Converted(t *testing.T) {
	tme := &replication.TableMapEvent{
		Schema: []byte("db"), Table: []byte("t"), ColumnCount: 4,
		ColumnType: []byte{gomysql.MYSQL_TYPE_STRING, gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_STRING},
		ColumnMeta: []uint16{uint16(gomysql.MYSQL_TYPE_STRING)<<8 | 16, 16, 32, uint16(gomysql.MYSQL_TYPE_ENUM)<<8 | 1},
		ColumnName: [][]byte{[]byte("uuid"), []byte("vb"), []byte("name"), []byte("state")},
		// BINARY(16), VARBINARY(16): binary; VARCHAR: latin1_swedish_ci (8); the ENUM: latin1.
		ColumnCharset: []uint64{63, 63, 8}, EnumSetColumnCharset: []uint64{8},
		EnumStrValue: [][][]byte{{[]byte("caf\xe9"), []byte("b")}},
		PrimaryKey:   []uint64{0},
	}
	tbl, _, failed := tableOf(tme)
	if failed != "" {
		t.Fatal(failed)
	}
	for i, want := range []cdc.Column{
		{Name: "uuid", Kind: cdc.KindBinary, Pad: 16},
		{Name: "vb", Kind: cdc.KindBinary},
		{Name: "name", Kind: cdc.KindText, Charset: cdc.CharsetLatin1},
	} {
		if got := tbl.Columns[i]; got.Name != want.Name || got.Kind != want.Kind || got.Pad != want.Pad || got.Charset != want.Charset {
			t.Errorf("column %d = %+v, want %+v", i, got, want)
		}
	}
	if m := tbl.Columns[3].Members; tbl.Columns[3].Kind != cdc.KindEnum || len(m) != 2 || m[0] != "café" {
		t.Errorf("enum = %+v, want members in UTF-8", tbl.Columns[3])
	}
}

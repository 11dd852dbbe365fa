package binlog

import (
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// The GTID position every commit carries is appended without fmt: it must read exactly as
// go-mysql (and the server) write it, or a checkpoint resumed by GTID would not parse.
func TestGTIDPositionIsWrittenAsGoMySQLWritesIt(t *testing.T) {
	for _, pos := range []string{"0-1-42", "0-1-18446744073709551615", "0-1-5,1-2-7,4294967295-3-1"} {
		g, err := newGTIDState(gomysql.MariaDBFlavor, pos)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.String(); got != pos {
			t.Errorf("position %q renders as %q", pos, got)
		}
		for _, gtid := range g.mariadb {
			if got, want := string(appendMariadbGTID(nil, gtid)), gtid.String(); got != want {
				t.Errorf("GTID renders as %q, go-mysql %q", got, want)
			}
		}
	}
	if got := string(appendMariadbGTID(nil, gomysql.MariadbGTID{})); got != "" {
		t.Errorf("the zero GTID renders as %q, go-mysql as \"\"", got)
	}
}

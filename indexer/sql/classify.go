package sql

import (
	"errors"

	"github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/indexer"
)

// valueCodes are the permanent errors that depend on the values a read is given: a read of
// other keys may pass, so the pipeline narrows the batch down to the changes they came from.
var valueCodes = map[uint16]bool{1267: true, 1270: true, 1271: true, 1153: true, 1301: true}

// Server error numbers that will not clear by themselves: the same read fails until an
// operator acts (a DDL dropped a column, a grant is missing, a value cannot be compared).
var permanentCodes = map[uint16]string{
	1044: "access denied to the database",
	1045: "access denied",
	1142: "command denied on the table",
	1143: "column access denied",
	1146: "no such table",
	1049: "unknown database",
	1054: "unknown column",
	1064: "syntax error",
	1267: "illegal mix of collations",
	1270: "illegal mix of collations",
	1271: "illegal mix of collations",
	1153: "packet larger than max_allowed_packet",
	1301: "result larger than max_allowed_packet",
}

// classify is the one classification at the database boundary: every error of a read comes
// out as an *indexer.SourceError saying whether it is permanent. Server errors not listed
// in permanentCodes (deadlock 1213, lock wait timeout 1205, too many connections 1040, a
// server shutting down 1053) and every connection failure are transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *indexer.SourceError
	if errors.As(err, &se) {
		return err
	}
	out := &indexer.SourceError{Err: err}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		out.Code = me.Number
		_, out.Permanent = permanentCodes[me.Number]
		out.ValueDependent = valueCodes[me.Number]
	}
	return out
}

package sql

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/indexer"
)

// TestSourceErrorsAreClassifiedOnce prevents a read that can never succeed (a dropped column,
// a missing grant, a collation clash) from looking like a passing outage, and an outage from
// looking permanent: the retry loop decides by this class alone.
func TestSourceErrorsAreClassifiedOnce(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		permanent bool
		code      uint16
	}{
		{"unknown column after a DDL", &mysql.MySQLError{Number: 1054, Message: "Unknown column 'x'"}, true, 1054},
		{"dropped table", &mysql.MySQLError{Number: 1146}, true, 1146},
		{"missing grant", &mysql.MySQLError{Number: 1142}, true, 1142},
		{"illegal mix of collations for IN", &mysql.MySQLError{Number: 1270}, true, 1270},
		{"packet too large", &mysql.MySQLError{Number: 1153}, true, 1153},
		{"deadlock", &mysql.MySQLError{Number: 1213}, false, 1213},
		{"lock wait timeout", &mysql.MySQLError{Number: 1205}, false, 1205},
		{"connection lost", fmt.Errorf("query cat.programs: %w", mysql.ErrInvalidConn), false, 0},
		{"cancelled", context.Canceled, false, 0},
	}
	for _, tt := range tests {
		err := classify(fmt.Errorf("read: %w", tt.err))
		var se *indexer.SourceError
		if !errors.As(err, &se) {
			t.Fatalf("%s: %v is not a SourceError", tt.name, err)
		}
		if se.Permanent != tt.permanent || se.Code != tt.code {
			t.Errorf("%s: permanent %v code %d, want %v %d", tt.name, se.Permanent, se.Code, tt.permanent, tt.code)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: the cause is lost: %v", tt.name, err)
		}
		if again := classify(err); again != err {
			t.Errorf("%s: classified twice", tt.name)
		}
	}
	if classify(nil) != nil {
		t.Error("nil became an error")
	}
}

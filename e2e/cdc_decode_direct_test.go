package e2e

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/wyehq/wye/cdc"
)

// TestCDCDirectlyDecodedUpdateValuesEqualGoMySQLsOwn prevents the source's own decoding of an
// update's kept columns (integers, CHAR/VARCHAR/BINARY, DATETIME, TIMESTAMP, DECIMAL: docs/cdc.md,
// "Update images") from yielding one value that go-mysql would decode otherwise: updates of
// only those types, with the edge values MariaDB writes (integer limits, signed and unsigned,
// zero dates, a zero month, dates before 1970, the TIMESTAMP limits, every fractional
// precision, negative and 65-digit decimals, empty, multibyte, latin1 and binary text, NULLs)
// are read trimmed and decoding every column through go-mysql; every kept value must be the
// same Go value of the same type, every change must encode to the same bytes, and the
// unchanged columns must be left out of the trimmed read.
func TestCDCDirectlyDecodedUpdateValuesEqualGoMySQLsOwn(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	dbName, exec := scratchDB(ctx, t, "wye_direct")
	exec("SET SESSION time_zone = '+00:00', sql_mode = ''", // zero dates and a zero month are values
		`CREATE TABLE v (id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
		   mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
		   dec2 DECIMAL(10,2), dec65 DECIMAL(65,30), dec0 DECIMAL(20,0), decf DECIMAL(5,5),
		   ch CHAR(100), chl CHAR(10) CHARACTER SET latin1, vc VARCHAR(300), vcl VARCHAR(20) CHARACTER SET latin1,
		   bin BINARY(4), vb VARBINARY(10),
		   dt DATETIME, dt1 DATETIME(1), dt3 DATETIME(3), dt4 DATETIME(4), dt6 DATETIME(6),
		   ts TIMESTAMP NULL, ts2 TIMESTAMP(2) NULL, ts5 TIMESTAMP(5) NULL, ts6 TIMESTAMP(6) NULL,
		   note TEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`)
	for id := 1; id <= 4; id++ {
		exec(fmt.Sprintf(`INSERT INTO v VALUES (%d, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1.5, 1.5, 1, 0.5,
		   'c', 'c', 'v', 'v', 'b', 'b', '2024-01-01 10:00:00', '2024-01-01 10:00:00.1', '2024-01-01 10:00:00.123',
		   '2024-01-01 10:00:00.1234', '2024-01-01 10:00:00.123456', '2024-03-01 10:00:00', '2024-03-01 10:00:00.12',
		   '2024-03-01 10:00:00.12345', '2024-03-01 10:00:00.123456', 'a text no update changes')`, id))
	}

	trimmed, full := readTrimmedAndFull(ctx, t, dbName+".v", nil, func() {
		exec(
			`UPDATE v SET ti = -128, tiu = 255, si = -32768, siu = 65535, mi = -8388608, miu = 16777215,
		   i = -2147483648, iu = 4294967295, bi = -9223372036854775808, biu = 18446744073709551615 WHERE id = 1`,
			`UPDATE v SET ti = 127, tiu = 0, si = 32767, siu = 0, mi = 8388607, miu = 0,
		   i = 2147483647, iu = 0, bi = 9223372036854775807, biu = 0 WHERE id = 2`,
			`UPDATE v SET ti = 0, si = -1, mi = -1, i = -1, bi = -1, tiu = NULL, biu = NULL WHERE id = 3`,
			`UPDATE v SET dec2 = -99999999.99, dec65 = '-99999999999999999999999999999999999.999999999999999999999999999999',
		   dec0 = 99999999999999999999, decf = -0.00001 WHERE id = 1`,
			`UPDATE v SET dec2 = 0, dec65 = '0.000000000000000000000000000001', dec0 = -1, decf = 0.99999 WHERE id = 2`,
			`UPDATE v SET dec2 = NULL, dec65 = 12345678901234567890.5, dec0 = 0 WHERE id = 3`,
			`UPDATE v SET ch = REPEAT('é', 100), chl = 'café', vc = REPEAT('😀', 75), vcl = '', bin = x'00ff0000',
		   vb = x'' WHERE id = 1`,
			`UPDATE v SET ch = '', chl = NULL, vc = '', vcl = 'ñandú', bin = 'abcd', vb = x'00' WHERE id = 2`,
			`UPDATE v SET ch = 'trailing  ', vc = 'héllo wörld ✓', bin = x'00000000', vb = NULL WHERE id = 3`,
			`UPDATE v SET dt = '0000-00-00 00:00:00', dt1 = '0000-00-00 00:00:00', dt3 = '1969-07-20 20:17:40.5',
		   dt4 = '2024-00-10 00:00:00', dt6 = '9999-12-31 23:59:59.999999',
		   ts = '0000-00-00 00:00:00', ts2 = '1970-01-01 00:00:01', ts5 = '2038-01-19 03:14:07.99999', ts6 = NULL WHERE id = 1`,
			`UPDATE v SET dt = '1000-01-01 00:00:00', dt1 = '1970-01-01 00:00:00.1', dt3 = '2024-05-00 01:02:03.004',
		   dt4 = '1969-12-31 23:59:59.9999', dt6 = '1970-01-01 00:00:00.000000',
		   ts = '2038-01-19 03:14:07', ts2 = '2001-09-09 01:46:40.99', ts5 = '1970-01-01 00:00:01.00001',
		   ts6 = '2024-02-29 12:34:56.000001' WHERE id = 2`,
			`UPDATE v SET dt6 = NULL, ts2 = NULL, dt1 = '2025-06-07 08:09:10.9' WHERE id = 3`,
			// One rows event, rows changing different columns of several types.
			`UPDATE v SET i = IF(id = 1, i + 1, i), vc = IF(id = 2, 'changed', vc), dt6 = IF(id = 3, NOW(6), dt6),
		   dec65 = IF(id = 4, -dec65, dec65) WHERE id IN (1, 2, 3, 4)`,
			"UPDATE v SET i = i WHERE id = 4", // no row changes
		)
	}) // full: every column, decoded by go-mysql
	if len(trimmed) != len(full) || len(full) != 3+3+3+3+4 {
		t.Fatalf("trimmed read has %d changes, full %d, want 16", len(trimmed), len(full))
	}
	cols := full[0].Table.Columns
	note := slices.IndexFunc(cols, func(c cdc.Column) bool { return c.Name == "note" })
	for i := range full {
		for _, img := range []struct {
			name      string
			got, want []any
		}{{"before", trimmed[i].Before, full[i].Before}, {"after", trimmed[i].After, full[i].After}} {
			if img.got[note] != nil || img.want[note] == nil {
				t.Errorf("change %d %s: note %v trimmed, %v full: the trim is not happening", i, img.name, img.got[note], img.want[note])
			}
			for c, v := range img.got {
				// Every value decoded is go-mysql's; the key and the changed columns are decoded.
				changed := !reflect.DeepEqual(full[i].Before[c], full[i].After[c])
				if (v != nil || c == 0 || changed) && !reflect.DeepEqual(v, img.want[c]) {
					t.Errorf("change %d %s column %s: %#v (%T), go-mysql %#v (%T)", i, img.name, cols[c].Name, v, v, img.want[c], img.want[c])
				}
			}
		}
		bt, bf := cdc.Batch{}, cdc.Batch{}
		must(t, bt.Add(&trimmed[i]))
		must(t, bf.Add(&full[i]))
		if got, want := string(bt.Take().Body), string(bf.Take().Body); got != want {
			t.Errorf("change %d:\ntrimmed %s\nfull    %s", i, got, want)
		}
	}
}

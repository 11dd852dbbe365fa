package e2e

import (
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wyehq/wye/indexer/consumer"
)

// keyType is one MySQL type as a primary key: a table kt_<name> (k <typ> PRIMARY KEY, v) and
// an entity of its own, written to the index kt_<name>_<rig id>.
type keyType struct {
	name string
	typ  string
	keys [3]string // SQL literals: all inserted; the first updated, the second deleted
	// shows how the document carries the key, and how the test reads it from MariaDB for its
	// expectation: "num" (CAST(k+0 AS CHAR)), "str" (CAST(k AS CHAR)), "bin" (HEX(k), base64 in
	// the document), "ts" (UNIX_TIMESTAMP(k), RFC 3339 in UTC).
	shows string
	// child: a relation of another table that links to this key by a column of childTyp.
	childTyp string
}

var keyTypes = []keyType{
	{name: "tinyint", typ: "TINYINT", keys: [3]string{"-128", "0", "127"}, shows: "num"},
	{name: "tinyint_u", typ: "TINYINT UNSIGNED", keys: [3]string{"255", "0", "7"}, shows: "num"},
	{name: "smallint", typ: "SMALLINT", keys: [3]string{"-32768", "1", "32767"}, shows: "num"},
	{name: "smallint_u", typ: "SMALLINT UNSIGNED", keys: [3]string{"65535", "2", "3"}, shows: "num"},
	{name: "mediumint", typ: "MEDIUMINT", keys: [3]string{"-8388608", "5", "8388607"}, shows: "num"},
	{name: "mediumint_u", typ: "MEDIUMINT UNSIGNED", keys: [3]string{"16777215", "6", "9"}, shows: "num"},
	// A child whose foreign key is text ('100') links to the INT key 100.
	{name: "int", typ: "INT", keys: [3]string{"100", "-2147483648", "2147483647"}, shows: "num", childTyp: "VARCHAR(20)"},
	{name: "int_u", typ: "INT UNSIGNED", keys: [3]string{"4294967295", "10", "11"}, shows: "num"},
	{name: "bigint", typ: "BIGINT", keys: [3]string{"-9223372036854775808", "0", "9223372036854775807"}, shows: "num"},
	{name: "bigint_u", typ: "BIGINT UNSIGNED", keys: [3]string{"18446744073709551615", "9223372036854775808", "1"}, shows: "num"},
	{name: "int_zerofill", typ: "INT(6) ZEROFILL", keys: [3]string{"42", "7", "123456"}, shows: "num"},
	{name: "year", typ: "YEAR", keys: [3]string{"0", "2024", "1901"}, shows: "num"},
	{name: "decimal", typ: "DECIMAL(20,2)", keys: [3]string{"-0.50", "12.50", "123456789012345678.99"}, shows: "str"},
	{name: "varchar_utf8mb4", typ: "VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", keys: [3]string{"'café ☃'", "'ab'", "'😀'"}, shows: "str"},
	{name: "char_utf8mb4_bin", typ: "CHAR(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", keys: [3]string{"'Ünï'", "'x'", "'z'"}, shows: "str"},
	{name: "varchar_latin1", typ: "VARCHAR(32) CHARACTER SET latin1", keys: [3]string{"'café'", "'naïve'", "'€uro'"}, shows: "str"},
	{name: "char_latin1_bin", typ: "CHAR(8) CHARACTER SET latin1 COLLATE latin1_bin", keys: [3]string{"'café'", "'ß'", "'A'"}, shows: "str"},
	{name: "varchar_latin1_german", typ: "VARCHAR(16) CHARACTER SET latin1 COLLATE latin1_german1_ci", keys: [3]string{"'Öl'", "'Müller'", "'x'"}, shows: "str"},
	// UUIDs: the binlog drops the trailing zero bytes of BINARY(16); a child links by BINARY(16).
	{name: "binary16", typ: "BINARY(16)", keys: [3]string{"x'00112233445566778899aabbccddee00'", "x'0f0e0d0c0b0a09080706050403000000'", "x'ffeeddccbbaa99887766554433221100'"},
		shows: "bin", childTyp: "BINARY(16)"},
	{name: "varbinary", typ: "VARBINARY(16)", keys: [3]string{"x'0100'", "x'00'", "x'ff'"}, shows: "bin"},
	{name: "date", typ: "DATE", keys: [3]string{"'2024-02-29'", "'1999-12-31'", "'2024-03-01'"}, shows: "str"},
	{name: "datetime", typ: "DATETIME(6)", keys: [3]string{"'2024-02-29 23:59:59.123456'", "'1999-12-31 00:00:00'", "'2024-03-01 10:00:00.5'"}, shows: "str"},
	{name: "timestamp", typ: "TIMESTAMP NOT NULL DEFAULT '2001-01-01 00:00:00'", keys: [3]string{"'2024-03-01 10:00:00'", "'2021-06-01 00:00:01'", "'2030-01-01 12:00:00'"}, shows: "ts"},
	{name: "enum_latin1", typ: "ENUM('alpha','béta','gamma') CHARACTER SET latin1", keys: [3]string{"'béta'", "'alpha'", "'gamma'"}, shows: "str"},
}

// TestEveryKeyTypeConvergesInsertUpdateDelete prevents documents that are never written, or
// deleted while their row exists, because the key of a change event and the key read by SQL
// differ or the lookup binds it wrongly (BINARY(16) cut at its trailing zero bytes, binary keys
// bound as the text of their encoding, latin1 text and ENUM members, TIMESTAMP bound in RFC 3339,
// a text foreign key to an INT key), and a lookup the source refuses for good (a column
// dropped under the indexer) from stalling the other tables' changes in the same message.
// Through the real `wye cdc` and `wye indexer`: inserts, updates and deletes of every key type
// reach every cluster as MariaDB holds them.
func TestEveryKeyTypeConvergesInsertUpdateDelete(t *testing.T) {
	r := newIndexerRig(t)
	r.viaCDC = true
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := r.app.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var wg sync.WaitGroup
	indices := map[string]string{} // key type -> index
	for _, kt := range append(keyTypes, keyType{name: "refused", typ: "INT"}) {
		exec(fmt.Sprintf("CREATE TABLE kt_%s (k %s PRIMARY KEY, v VARCHAR(32) NOT NULL)", kt.name, kt.typ))
		index := "kt_" + kt.name + "_" + r.id
		indices[kt.name] = index
		entity := fmt.Sprintf("- name: kt_%s\n  index: %s\n  root: {table: %s.kt_%s, key: k, columns: [k, v]}", kt.name, index, r.db, kt.name)
		if kt.childTyp != "" {
			exec(fmt.Sprintf("CREATE TABLE kt_%s_child (id INT PRIMARY KEY, parent %s NOT NULL, note VARCHAR(32) NOT NULL)", kt.name, kt.childTyp))
			entity += fmt.Sprintf("\n  relations:\n    - {name: children, table: %s.kt_%s_child, key: id, parent_key: parent, many: true, columns: [id, note]}", r.db, kt.name)
		}
		r.entities = append(r.entities, entity)
		// One concrete index per entity, written by name (--index-targets alias); no mapping:
		// the documents are compared by their sources.
		for _, c := range clusterNames {
			wg.Go(func() {
				if status, body := indexerHTTP(t, "PUT", clusterURL(t, c)+"/"+index, []byte(`{"mappings":{"dynamic":false}}`)); status != 200 {
					t.Errorf("create index %s on %s: %d %s", index, c, status, body)
				}
			})
			t.Cleanup(func() { indexerHTTP(t, "DELETE", clusterURL(t, c)+"/"+index, nil) })
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	cfg := r.config(freePort(t))
	cdcMetrics := freePort(t)
	startWye(t, r, "cdc", "cdc", "-c", cfg, "--name", "idx_"+r.id, "--metrics-listen", cdcMetrics)
	eventually(t, 30*time.Second, func() error { return readyz(cdcMetrics) })

	// The indexer starts (its start check sees every column), then a column kt_refused's
	// documents show is dropped under it: reading its change fails for good (unknown column),
	// as a key the source cannot compare would.
	r.start("--index-targets", "alias")
	exec("ALTER TABLE kt_refused DROP COLUMN v")

	// One transaction: the changes of every table travel in one message, kt_refused's with them.
	tx, err := r.app.Begin()
	must(t, err)
	for _, kt := range append(keyTypes, keyType{name: "refused", keys: [3]string{"1", "2", "3"}}) {
		for i, k := range kt.keys {
			q, args := fmt.Sprintf("INSERT INTO kt_%s (k, v) VALUES (%s, ?)", kt.name, k), []any{fmt.Sprintf("v%d", i)}
			if kt.name == "refused" { // v is gone
				q, args = fmt.Sprintf("INSERT INTO kt_%s (k) VALUES (%s)", kt.name, k), nil
			}
			if _, err := tx.Exec(q, args...); err != nil {
				t.Fatalf("insert %s into kt_%s: %v", k, kt.name, err)
			}
		}
		if kt.childTyp != "" {
			for i, k := range kt.keys[:2] {
				parent := k
				if kt.childTyp == "VARCHAR(20)" {
					parent = "'" + strings.Trim(k, "'") + "'"
				}
				if _, err := tx.Exec(fmt.Sprintf("INSERT INTO kt_%s_child (id, parent, note) VALUES (?, %s, ?)", kt.name, parent), i+1, fmt.Sprintf("note %d", i+1)); err != nil {
					t.Fatalf("insert child of kt_%s: %v", kt.name, err)
				}
			}
		}
	}
	must(t, tx.Commit())
	eventually(t, 30*time.Second, func() error { return keyTypesConverged(r, indices) })

	var sum consumer.ParkedSummary
	eventually(t, 20*time.Second, func() error {
		sum = consumer.ParkedSummary{}
		if err := json.Unmarshal([]byte(r.wye(t, 0, "parked", "list", "--json")), &sum); err != nil {
			return err
		}
		if sum.Total == 0 {
			return fmt.Errorf("the change of kt_refused is not parked")
		}
		return nil
	})
	for _, g := range sum.Groups {
		if g.ErrorType != "source" || !strings.Contains(g.Reason, "kt_refused") {
			t.Errorf("parked group %+v: want only the source error of kt_refused", g)
		}
	}

	// Update the first key's row, delete the second; children: one note changed, one moved
	// to the third key (both parents re-indexed), the first child deleted.
	for _, kt := range keyTypes {
		exec(fmt.Sprintf("UPDATE kt_%s SET v = 'updated' WHERE k = %s", kt.name, kt.keys[0]))
		exec(fmt.Sprintf("DELETE FROM kt_%s WHERE k = %s", kt.name, kt.keys[1]))
		if kt.childTyp != "" {
			third := kt.keys[2]
			if kt.childTyp == "VARCHAR(20)" {
				third = "'" + strings.Trim(third, "'") + "'"
			}
			exec(fmt.Sprintf("UPDATE kt_%s_child SET parent = %s, note = 'moved' WHERE id = 2", kt.name, third))
			exec(fmt.Sprintf("UPDATE kt_%s_child SET note = 'changed' WHERE id = 1", kt.name))
			exec(fmt.Sprintf("INSERT INTO kt_%s_child (id, parent, note) SELECT 3, parent, 'third' FROM kt_%s_child WHERE id = 1", kt.name, kt.name))
			exec(fmt.Sprintf("DELETE FROM kt_%s_child WHERE id = 1", kt.name))
		}
	}
	eventually(t, 30*time.Second, func() error { return keyTypesConverged(r, indices) })

	// The key column changes its character set under the running indexer: the binding it
	// had read (latin1) fails once ("Illegal mix of collations"), the columns are read again,
	// and nothing more is parked.
	exec("ALTER TABLE kt_varchar_latin1 MODIFY k VARCHAR(32) CHARACTER SET utf8mb4 NOT NULL")
	exec("UPDATE kt_varchar_latin1 SET v = 'after alter' WHERE k = 'café'")
	exec("INSERT INTO kt_varchar_latin1 (k, v) VALUES ('ĉu ☃', 'utf8mb4 only')")
	eventually(t, 30*time.Second, func() error { return keyTypesConverged(r, indices) })
	after := consumer.ParkedSummary{}
	must(t, json.Unmarshal([]byte(r.wye(t, 0, "parked", "list", "--json")), &after))
	if after.Total != sum.Total {
		t.Errorf("%d messages parked after the ALTER, %d before: want no more", after.Total, sum.Total)
	}
}

// keyTypesConverged checks every key type's index on every cluster against MariaDB, and that
// the slaves carry the master's versions.
func keyTypesConverged(r *indexerRig, indices map[string]string) error {
	for _, kt := range keyTypes {
		want, err := keyTypeDocs(r, kt)
		if err != nil {
			return err
		}
		read := func(c string) (map[string]map[string]any, error) { return r.docsIn(c, indices[kt.name]) }
		if err := sameEverywhere(kt.name, clusterNames, want, read); err != nil {
			return err
		}
	}
	return nil
}

// keyTypeDocs builds the documents of one key type's table from MariaDB, by id, reading the
// key in a form independent of the indexer's encoding (see keyType.shows).
func keyTypeDocs(r *indexerRig, kt keyType) (map[string]map[string]any, error) {
	sel := map[string]string{"num": "CAST(k+0 AS CHAR)", "str": "CAST(k AS CHAR)", "bin": "HEX(k)", "ts": "CAST(UNIX_TIMESTAMP(k) AS CHAR)"}[kt.shows]
	rows, err := r.app.Query(fmt.Sprintf("SELECT %s, v FROM kt_%s", sel, kt.name))
	if err != nil {
		return nil, err
	}
	type row struct{ id, k, v string }
	var all []row
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, err
		}
		id, kj := k, k // num: the number as MariaDB prints it
		switch kt.shows {
		case "str":
			b, _ := json.Marshal(k)
			kj = string(b)
			id = k
		case "bin":
			raw, err := hex.DecodeString(k)
			if err != nil {
				rows.Close()
				return nil, err
			}
			kj = `{"$base64":"` + base64.StdEncoding.EncodeToString(raw) + `"}`
			id = kj
		case "ts":
			sec, err := strconv.ParseInt(k, 10, 64)
			if err != nil {
				rows.Close()
				return nil, err
			}
			id = time.Unix(sec, 0).UTC().Format(time.RFC3339)
			kj = `"` + id + `"`
		}
		all = append(all, row{id, kj, v})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	for _, w := range all {
		vj, _ := json.Marshal(w.v)
		doc := `{"k":` + w.k + `,"v":` + string(vj)
		if kt.childTyp != "" {
			children, err := keyTypeChildren(r.app, kt, w.k)
			if err != nil {
				return nil, err
			}
			doc += `,"children":` + children
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(doc+"}"), &m); err != nil {
			return nil, fmt.Errorf("expected document %s: %v", doc, err)
		}
		out[w.id] = m
	}
	return out, nil
}

// keyTypeChildren is the JSON array of the children of the row whose key the document shows
// as kj, in id order.
func keyTypeChildren(db *sql.DB, kt keyType, kj string) (string, error) {
	var parent any
	switch kt.shows {
	case "bin":
		var v struct {
			B []byte `json:"$base64"`
		}
		if err := json.Unmarshal([]byte(kj), &v); err != nil {
			return "", err
		}
		parent = v.B
	default:
		parent = kj
	}
	rows, err := db.Query(fmt.Sprintf("SELECT id, note FROM kt_%s_child WHERE parent = ? ORDER BY id", kt.name), parent)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var id int
		var note string
		if err := rows.Scan(&id, &note); err != nil {
			return "", err
		}
		nj, _ := json.Marshal(note)
		parts = append(parts, fmt.Sprintf(`{"id":%d,"note":%s}`, id, nj))
	}
	return "[" + strings.Join(parts, ",") + "]", rows.Err()
}

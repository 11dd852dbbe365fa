package e2e

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/nightly"
)

// hrSchema is a small `employees` sample: history tables with composite primary keys, and
// dept_emp from_date values shared across departments (the issue 18 trap: a climb by
// from_date re-indexed every employee sharing one).
const hrSchema = `
CREATE TABLE departments (dept_no CHAR(4) PRIMARY KEY, dept_name VARCHAR(40) NOT NULL);
CREATE TABLE employees (emp_no INT PRIMARY KEY, first_name VARCHAR(14) NOT NULL, last_name VARCHAR(16) NOT NULL,
  hire_date DATE NOT NULL);
CREATE TABLE dept_emp (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL, to_date DATE NOT NULL,
  PRIMARY KEY (emp_no, dept_no), KEY (dept_no));
CREATE TABLE titles (emp_no INT NOT NULL, title VARCHAR(50) NOT NULL, from_date DATE NOT NULL, to_date DATE,
  PRIMARY KEY (emp_no, title, from_date));
CREATE TABLE salaries (emp_no INT NOT NULL, salary INT NOT NULL, from_date DATE NOT NULL, to_date DATE NOT NULL,
  PRIMARY KEY (emp_no, from_date));`

// hrEntity is the employee entity: the department history through dept_emp (composite key)
// with each department nested, the full title history by date, the current title (a where),
// and the latest salary (order_by desc, many: false).
const hrEntity = `- name: employee
  index: %[1]s
  root: {table: %[2]s.employees, key: emp_no, columns: [emp_no, first_name, last_name, hire_date]}
  relations:
    - name: departments
      table: %[2]s.dept_emp
      key: [emp_no, dept_no]
      parent_key: emp_no
      many: true
      order_by: [from_date]
      columns: [dept_no, from_date, to_date]
      relations:
        - {name: department, table: %[2]s.departments, key: dept_no, from: dept_no, columns: [dept_name]}
    - name: titles
      table: %[2]s.titles
      key: [emp_no, title, from_date]
      parent_key: emp_no
      many: true
      order_by: [from_date]
      columns: [title, from_date, to_date]
    - name: current_title
      table: %[2]s.titles
      key: [emp_no, title, from_date]
      parent_key: emp_no
      where: "to_date = '9999-01-01'"
      columns: [title, from_date]
    - name: latest_salary
      table: %[2]s.salaries
      key: [emp_no, from_date]
      parent_key: emp_no
      order_by: [from_date desc]
      columns: [salary, from_date]`

const hrEmployees = 300

// TestRenamingADepartmentReindexesExactlyItsEmployees: through `wye run` into es7 (master),
// es8 and os2, an employees schema with composite-key history tables is indexed with where,
// order_by and many: false relations. After promotions (a title closed, a new one current),
// department moves, a title leaving the where without a successor, raises, and deletes, every
// cluster holds exactly the documents MariaDB gives; renaming one department then re-indexes
// exactly the employees that have a dept_emp row in it: the documents whose version moved are
// those and the one sentinel employee changed after the rename, nothing else.
func TestRenamingADepartmentReindexesExactlyItsEmployees(t *testing.T) {
	r := newIndexerRig(t)
	r.viaCDC = true
	for _, stmt := range strings.Split(strings.TrimSuffix(strings.TrimSpace(hrSchema), ";"), ";") {
		if _, err := r.app.Exec(stmt); err != nil {
			t.Fatalf("create the hr schema: %v", err)
		}
	}
	index := "employees_" + r.id
	for _, c := range clusterNames {
		base := clusterURL(t, c)
		concrete := index + "_v1"
		if status, body := indexerHTTP(t, "PUT", base+"/"+concrete, []byte(`{"mappings":{"dynamic":false}}`)); status != 200 {
			t.Fatalf("create %s on %s: %d %s", concrete, c, status, body)
		}
		t.Cleanup(func() { indexerHTTP(t, "DELETE", base+"/"+concrete, nil) })
		alias := []byte(`{"actions":[{"add":{"index":"` + concrete + `","alias":"` + index + `"}}]}`)
		if status, body := indexerHTTP(t, "POST", base+"/_aliases", alias); status != 200 {
			t.Fatalf("add alias on %s: %d %s", c, status, body)
		}
	}
	r.entities = append(r.entities, fmt.Sprintf(hrEntity, index, r.db))
	metrics := freePort(t)
	// A control schema of its own: the nightly at the end takes its epoch from this reader's
	// checkpoint.
	cfg := withControl(t, r.config(metrics), privateControl(t))
	out := startWye(t, r, "wye run", "run", "-c", cfg, "--name", "idx_"+r.id)
	eventually(t, 30*time.Second, func() error {
		if err := readyz(metrics); err != nil {
			return err
		}
		if !strings.Contains(out.String(), "no checkpoint: starting at the source's current binlog position") {
			return errors.New("the reader has not logged its start position yet")
		}
		return nil
	})

	run := func(q string, args ...any) {
		t.Helper()
		if _, err := r.app.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rnd := rand.New(rand.NewPCG(18, 2))
	depts := []string{"d001", "d002", "d003", "d004", "d005"}
	run("INSERT INTO departments VALUES ('d001','Marketing'),('d002','Finance'),('d003','Human Resources'),('d004','Production'),('d005','Development')")
	// Few distinct dates: every from_date is shared by employees of every department.
	dates := []string{"1990-01-01", "1995-06-01", "2000-03-15"}
	var emps, deptEmp, titles, salaries []string
	for e := 1; e <= hrEmployees; e++ {
		hire := dates[e%len(dates)]
		emps = append(emps, fmt.Sprintf("(%d,'First%d','Last%d','%s')", e, e, e, hire))
		dept := depts[rnd.IntN(len(depts))]
		deptEmp = append(deptEmp, fmt.Sprintf("(%d,'%s','%s','9999-01-01')", e, dept, hire))
		// Titles inserted out of date order: the array must come out by from_date.
		titles = append(titles, fmt.Sprintf("(%d,'Senior Staff','2010-01-01','9999-01-01')", e),
			fmt.Sprintf("(%d,'Staff','%s','2010-01-01')", e, hire))
		salaries = append(salaries, fmt.Sprintf("(%d,%d,'2011-01-01','9999-01-01')", e, 60000+e),
			fmt.Sprintf("(%d,%d,'%s','2011-01-01')", e, 40000+e, hire))
	}
	run("INSERT INTO employees VALUES " + strings.Join(emps, ","))
	run("INSERT INTO dept_emp VALUES " + strings.Join(deptEmp, ","))
	run("INSERT INTO titles VALUES " + strings.Join(titles, ","))
	run("INSERT INTO salaries VALUES " + strings.Join(salaries, ","))

	h := hrRig{r: r, index: index}
	h.converge(t)

	// Promotions: the current title closed, a new one current from today.
	for e := 1; e <= 30; e++ {
		run("UPDATE titles SET to_date = '2024-05-01' WHERE emp_no = ? AND to_date = '9999-01-01'", e)
		run("INSERT INTO titles VALUES (?, 'Engineer', '2024-05-01', '9999-01-01')", e)
	}
	// Moves: the old dept_emp row closed and a row in another department; for some, the row
	// itself moved to another department (its key changes).
	for e := 31; e <= 50; e++ {
		var cur string
		must(t, r.app.QueryRow("SELECT dept_no FROM dept_emp WHERE emp_no = ?", e).Scan(&cur))
		next := depts[(slices.Index(depts, cur)+1)%len(depts)]
		if e%2 == 0 {
			run("UPDATE dept_emp SET to_date = '2024-02-01' WHERE emp_no = ?", e)
			run("INSERT INTO dept_emp VALUES (?, ?, '2024-02-01', '9999-01-01')", e, next)
		} else {
			run("UPDATE dept_emp SET dept_no = ? WHERE emp_no = ?", next, e)
		}
	}
	// A title leaves the where with no successor: current_title becomes null.
	run("UPDATE titles SET to_date = '2024-03-01' WHERE emp_no IN (51, 52) AND to_date = '9999-01-01'")
	// Raises: a later salary row is the latest; an older one added is not.
	for e := 53; e <= 70; e++ {
		run("UPDATE salaries SET to_date = '2024-01-01' WHERE emp_no = ? AND to_date = '9999-01-01'", e)
		run("INSERT INTO salaries VALUES (?, ?, '2024-01-01', '9999-01-01'), (?, 1, '1980-01-01', '1981-01-01')", e, 90000+e, e)
	}
	// Deletes: a current title, a whole employee.
	run("DELETE FROM titles WHERE emp_no = 71 AND to_date = '9999-01-01'")
	for _, table := range []string{"titles", "salaries", "dept_emp", "employees"} {
		run("DELETE FROM "+table+" WHERE emp_no = ?", 72)
	}
	want := h.converge(t)
	if d := want["1"]; d["current_title"].(map[string]any)["title"] != "Engineer" || len(d["titles"].([]any)) != 3 {
		t.Fatalf("employee 1 after the promotion: %v", d)
	}
	if want["51"]["current_title"] != nil || want["72"] != nil {
		t.Fatalf("employee 51 keeps a current title or 72 is still there: %v %v", want["51"], want["72"])
	}

	// The rename: only the employees with a dept_emp row in d003 may be written again.
	before := map[string]map[string]float64{}
	for _, c := range clusterNames {
		before[c] = h.versions(t, c)
	}
	var inDept []string
	rows, err := r.app.Query("SELECT DISTINCT emp_no FROM dept_emp WHERE dept_no = 'd003'")
	must(t, err)
	for rows.Next() {
		var e int
		must(t, rows.Scan(&e))
		inDept = append(inDept, strconv.Itoa(e))
	}
	must(t, rows.Err())
	rows.Close()
	sentinel := ""
	for e := hrEmployees; e > 0 && sentinel == ""; e-- {
		if id := strconv.Itoa(e); !slices.Contains(inDept, id) {
			sentinel = id
		}
	}
	if len(inDept) < 20 || len(inDept) > hrEmployees/2 {
		t.Fatalf("%d employees in d003: the draw does not test exactness", len(inDept))
	}
	run("UPDATE departments SET dept_name = 'People' WHERE dept_no = 'd003'")
	// Written after the rename: once the sentinel shows, the rename's batch is written.
	run("UPDATE employees SET first_name = 'Sentinel' WHERE emp_no = ?", sentinel)
	h.converge(t)
	wantMoved := append(slices.Clone(inDept), sentinel)
	slices.Sort(wantMoved)
	for _, c := range clusterNames {
		var moved []string
		for id, v := range h.versions(t, c) {
			if v != before[c][id] {
				moved = append(moved, id)
			}
		}
		slices.Sort(moved)
		if !slices.Equal(moved, wantMoved) {
			t.Errorf("%s: renaming d003 rewrote %d documents, want exactly its %d employees and the sentinel: got %.300v, want %.300v",
				c, len(moved), len(inDept), moved, wantMoved)
		}
	}
	t.Logf("renaming d003 re-indexed %d employees of %d", len(inDept), hrEmployees-1)

	// The resync builds every document as the stream did, byte for byte where it matters:
	// the same rows in the same order, so it finds nothing to write.
	report := filepath.Join(t.TempDir(), "nightly.json")
	nightlyRun := exec.Command(wyeBinary(t), "nightly", "-c", cfg, "--dry-run", "--entities", "employee", "--report", report)
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	nightlyRun.Env = append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_AMQP_PASSWORD="+amqpPass)
	if b, err := nightlyRun.CombinedOutput(); err != nil {
		t.Fatalf("wye nightly --dry-run: %v\n%s", err, b)
	}
	b, err := os.ReadFile(report)
	must(t, err)
	var rep nightly.Report
	must(t, json.Unmarshal(b, &rep))
	if len(rep.Entities) != 1 || rep.Entities[0].Rows != hrEmployees-1 {
		t.Fatalf("nightly report: %s", b)
	}
	for _, c := range rep.Entities[0].Clusters {
		if c.Missing+c.Different+c.Orphans != 0 {
			t.Errorf("nightly finds %s unlike MySQL: %d missing, %d different, %d orphans", c.Cluster, c.Missing, c.Different, c.Orphans)
		}
	}
}

// hrRig reads the employee documents of one test.
type hrRig struct {
	r     *indexerRig
	index string
}

// converge waits until every cluster holds exactly the documents built from MariaDB (and the
// slaves the master's versions), and returns them.
func (h hrRig) converge(t *testing.T) map[string]map[string]any {
	t.Helper()
	var want map[string]map[string]any
	eventually(t, 60*time.Second, func() error {
		var err error
		if want, err = hrExpected(h.r.app); err != nil {
			return err
		}
		return sameEverywhere(h.index, clusterNames, want, func(c string) (map[string]map[string]any, error) {
			return h.r.docsIn(c, h.index)
		})
	})
	return want
}

// versions returns the wye_version of every document on a cluster, by id.
func (h hrRig) versions(t *testing.T, cluster string) map[string]float64 {
	t.Helper()
	docs, err := h.r.docsIn(cluster, h.index)
	must(t, err)
	out := map[string]float64{}
	for id, d := range docs {
		out[id] = d["wye_version"].(float64)
	}
	return out
}

// hrExpected builds every employee document from MariaDB with one plain query per table,
// independently of the indexer's reads, ordering as the entity says in SQL. Dates are read as
// text (the connection parses DATE into time.Time), as wye writes them.
func hrExpected(db *sql.DB) (map[string]map[string]any, error) {
	docs := map[int]map[string]any{}
	each := func(q string, fn func(rows *sql.Rows) error) error {
		rows, err := db.Query(q)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := fn(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	err := each("SELECT emp_no, first_name, last_name, CAST(hire_date AS CHAR) FROM employees", func(rows *sql.Rows) error {
		var e int
		var first, last, hire string
		if err := rows.Scan(&e, &first, &last, &hire); err != nil {
			return err
		}
		docs[e] = map[string]any{"emp_no": e, "first_name": first, "last_name": last, "hire_date": hire,
			"departments": []any{}, "titles": []any{}, "current_title": nil, "latest_salary": nil}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(`SELECT de.emp_no, de.dept_no, CAST(de.from_date AS CHAR), CAST(de.to_date AS CHAR), d.dept_name FROM dept_emp de
		LEFT JOIN departments d ON d.dept_no = de.dept_no ORDER BY de.emp_no, de.from_date, de.dept_no`, func(rows *sql.Rows) error {
		var e int
		var dept, from, to string
		var name sql.NullString
		if err := rows.Scan(&e, &dept, &from, &to, &name); err != nil {
			return err
		}
		var department any
		if name.Valid {
			department = map[string]any{"dept_name": name.String}
		}
		if d := docs[e]; d != nil {
			d["departments"] = append(d["departments"].([]any),
				map[string]any{"dept_no": dept, "from_date": from, "to_date": to, "department": department})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each("SELECT emp_no, title, CAST(from_date AS CHAR), CAST(to_date AS CHAR) FROM titles ORDER BY emp_no, from_date, title", func(rows *sql.Rows) error {
		var e int
		var title, from string
		var to sql.NullString
		if err := rows.Scan(&e, &title, &from, &to); err != nil {
			return err
		}
		d := docs[e]
		if d == nil {
			return nil
		}
		var toV any
		if to.Valid {
			toV = to.String
		}
		d["titles"] = append(d["titles"].([]any), map[string]any{"title": title, "from_date": from, "to_date": toV})
		if to.String == "9999-01-01" && d["current_title"] == nil { // first by key: (title, from_date)
			d["current_title"] = map[string]any{"title": title, "from_date": from}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each("SELECT emp_no, salary, CAST(from_date AS CHAR) FROM salaries ORDER BY emp_no, from_date DESC", func(rows *sql.Rows) error {
		var e, salary int
		var from string
		if err := rows.Scan(&e, &salary, &from); err != nil {
			return err
		}
		if d := docs[e]; d != nil && d["latest_salary"] == nil {
			d["latest_salary"] = map[string]any{"salary": salary, "from_date": from}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]any, len(docs))
	for e, d := range docs {
		// Through JSON, so numbers compare as the search results decode them.
		b, _ := json.Marshal(d)
		var norm map[string]any
		if err := json.Unmarshal(b, &norm); err != nil {
			return nil, err
		}
		out[strconv.Itoa(e)] = norm
	}
	return out, nil
}

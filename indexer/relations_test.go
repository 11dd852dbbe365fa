package indexer

import (
	"context"
	"strings"
	"testing"
	"time"
)

// currentWhere is the current-title predicate of hrEntity; the fake evaluates it in Go.
const currentWhere = "to_date = '9999-01-01'"

// hrEntity is an employee of the `employees` sample: dept_emp with a composite key and the
// department nested in it, the title history by date, the current title (where), the latest
// salary (order_by desc, many: false), and projects through a join table by name, descending.
func hrEntity() EntityDef {
	titleKey := []string{"emp_no", "title", "from_date"}
	return EntityDef{
		Name: "employee", Index: "employees", Table: "hr.employees", Key: "emp_no", Columns: cols("emp_no", "name"),
		Relations: []RelationDef{
			{Name: "departments", Table: "hr.dept_emp", Key: []string{"emp_no", "dept_no"}, ParentKey: "emp_no", Many: true,
				OrderBy: []Order{{Column: "from_date"}}, Columns: cols("dept_no", "from_date"),
				Relations: []RelationDef{{Name: "department", Table: "hr.departments", Key: []string{"dept_no"}, From: "dept_no",
					Columns: cols("dept_name")}}},
			{Name: "titles", Table: "hr.titles", Key: titleKey, ParentKey: "emp_no", Many: true,
				OrderBy: []Order{{Column: "from_date"}}, Columns: cols("title")},
			{Name: "current_title", Table: "hr.titles", Key: titleKey, ParentKey: "emp_no", Where: currentWhere,
				Columns: cols("title")},
			{Name: "latest_salary", Table: "hr.salaries", Key: []string{"emp_no", "from_date"}, ParentKey: "emp_no",
				OrderBy: []Order{{Column: "from_date", Desc: true}}, Columns: cols("salary")},
			{Name: "projects", Table: "hr.projects", Key: []string{"id"}, Many: true, OrderBy: []Order{{Column: "name", Desc: true}},
				Through: Through{Table: "hr.emp_project", ParentKey: "emp_no", Key: "project_id"}, Columns: cols("name")},
		},
	}
}

// hrDB holds employees 1-4 in departments d1 and d2 whose dept_emp rows share from_date
// values across departments: a climb by from_date would reach every employee.
func hrDB() *fakeDB {
	return &fakeDB{where: map[string]func(Row) bool{currentWhere: func(r Row) bool { return r.Get("to_date") == `"9999-01-01"` }},
		tables: map[string][]Row{
			"hr.employees":   {r("emp_no", 1, "name", "Ann"), r("emp_no", 2, "name", "Bob"), r("emp_no", 3, "name", "Cy"), r("emp_no", 4, "name", "Di")},
			"hr.departments": {r("dept_no", "d1", "dept_name", "Sales"), r("dept_no", "d2", "dept_name", "R&D")},
			"hr.dept_emp": {
				r("emp_no", 1, "dept_no", "d2", "from_date", "1990-01-01"), r("emp_no", 1, "dept_no", "d1", "from_date", "2000-01-01"),
				r("emp_no", 2, "dept_no", "d2", "from_date", "2000-01-01"),
				r("emp_no", 3, "dept_no", "d2", "from_date", "1990-01-01"),
				r("emp_no", 4, "dept_no", "d1", "from_date", "1990-01-01")},
			// Key order (title) is not date order.
			"hr.titles": {
				r("emp_no", 1, "title", "Staff", "from_date", "1990-01-01", "to_date", "2005-01-01"),
				r("emp_no", 1, "title", "Engineer", "from_date", "2005-01-01", "to_date", "9999-01-01"),
				r("emp_no", 2, "title", "Staff", "from_date", "2000-01-01", "to_date", "9999-01-01")},
			"hr.salaries": {
				r("emp_no", 1, "salary", 900, "from_date", "2001-01-01"), r("emp_no", 1, "salary", 1000, "from_date", "2010-01-01"),
				r("emp_no", 1, "salary", 800, "from_date", "1990-01-01")},
			"hr.projects":    {r("id", 1, "name", "alpha"), r("id", 2, "name", "beta")},
			"hr.emp_project": {r("emp_no", 1, "project_id", 1), r("emp_no", 1, "project_id", 2)},
		}}
}

func hrProcess(t *testing.T, db *fakeDB, bodies ...[]byte) *fakeWriter {
	t.Helper()
	m, err := NewModel([]EntityDef{hrEntity()})
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWriter{}
	p := NewPipeline(m, db, w, Options{Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if _, err := p.Process(context.Background(), msgs(bodies...)); err != nil {
		t.Fatalf("Process: %v", err)
	}
	return w
}

// TestRelationRowsFollowOrderByAndWhereNotTheKey prevents arrays in key order and a "current"
// or "latest" row that is merely the first by key: the history is by from_date, the current
// title is the one the where holds, the latest salary the last by date, projects by name
// descending through their join table.
func TestRelationRowsFollowOrderByAndWhereNotTheKey(t *testing.T) {
	db := hrDB()
	e := r("emp_no", 1, "name", "Ann")
	w := hrProcess(t, db, event("hr.employees", "update", 5, r("emp_no", 1, "name", "A"), e))
	want := `{"current_title":{"title":"Engineer"},` +
		`"departments":[{"department":{"dept_name":"R\u0026D"},"dept_no":"d2","from_date":"1990-01-01"},` +
		`{"department":{"dept_name":"Sales"},"dept_no":"d1","from_date":"2000-01-01"}],` +
		`"emp_no":1,"latest_salary":{"salary":1000},"name":"Ann","projects":[{"name":"beta"},{"name":"alpha"}],` +
		`"titles":[{"title":"Staff"},{"title":"Engineer"}],"wye_version":5}`
	if got := w.source("1"); got != want {
		t.Errorf("document:\n got  %s\n want %s", got, want)
	}
}

// TestRenamedDepartmentReindexesExactlyTheEmployeesInIt prevents the issue 18 fan-out: the
// rename climbs through the dept_emp rows of d1 to their emp_no, not through a key value
// (from_date) that employees of other departments share.
// The issue's own configuration, key: from_date, is exact too.
func TestRenamedDepartmentReindexesExactlyTheEmployeesInIt(t *testing.T) {
	for _, key := range [][]string{{"emp_no", "dept_no"}, {"from_date"}} {
		db := hrDB()
		after := r("dept_no", "d1", "dept_name", "Sales & Ops")
		db.set("hr.departments", "dept_no", after)
		def := hrEntity()
		def.Relations[0].Key = key
		m, err := NewModel([]EntityDef{def})
		if err != nil {
			t.Fatal(err)
		}
		w := &fakeWriter{}
		_, err = NewPipeline(m, db, w, Options{}).Process(context.Background(),
			msgs(event("hr.departments", "update", 9, r("dept_no", "d1", "dept_name", "Sales"), after)))
		if err != nil {
			t.Fatal(err)
		}
		sameStrings(t, "written with key "+strings.Join(key, ","), w.written(), "1@9", "4@9")
		if !strings.Contains(w.source("4"), `"dept_name":"Sales \u0026 Ops"`) {
			t.Errorf("rename not in the document: %s", w.source("4"))
		}
	}
}

// TestTitleLeavingTheWhereReindexesItsEmployee prevents a stale "current" row: an update
// that moves a row out of the filter re-indexes the parent of its images, and the document
// drops it; a change to an order_by column no document shows re-indexes too (it reorders).
func TestTitleLeavingTheWhereReindexesItsEmployee(t *testing.T) {
	db := hrDB()
	before := r("emp_no", 2, "title", "Staff", "from_date", "2000-01-01", "to_date", "9999-01-01")
	after := r("emp_no", 2, "title", "Staff", "from_date", "2000-01-01", "to_date", "2020-01-01")
	db.tables["hr.titles"][2] = after
	w := hrProcess(t, db, event("hr.titles", "update", 11, before, after))
	sameStrings(t, "written", w.written(), "2@11")
	if !strings.Contains(w.source("2"), `"current_title":null`) {
		t.Errorf("current title kept: %s", w.source("2"))
	}

	db = hrDB()
	before = r("emp_no", 1, "salary", 800, "from_date", "1990-01-01")
	after = r("emp_no", 1, "salary", 800, "from_date", "2020-01-01")
	db.tables["hr.salaries"][2] = after
	w = hrProcess(t, db, event("hr.salaries", "update", 12, before, after))
	sameStrings(t, "written", w.written(), "1@12")
	if !strings.Contains(w.source("1"), `"latest_salary":{"salary":800}`) {
		t.Errorf("latest salary not re-ordered: %s", w.source("1"))
	}
}

// TestDeptEmpRowMovedReindexesBothEmployees: a row of a composite-key relation that changes
// parent re-indexes the parents of its before and after images.
func TestDeptEmpRowMovedReindexesBothEmployees(t *testing.T) {
	db := hrDB()
	before := r("emp_no", 3, "dept_no", "d2", "from_date", "1990-01-01")
	after := r("emp_no", 2, "dept_no", "d1", "from_date", "1990-01-01")
	db.tables["hr.dept_emp"][3] = after
	w := hrProcess(t, db, event("hr.dept_emp", "update", 13, before, after))
	sameStrings(t, "written", w.written(), "2@13", "3@13")
	if !strings.Contains(w.source("3"), `"departments":[]`) {
		t.Errorf("moved row still in 3: %s", w.source("3"))
	}
}

// TestModelRefusesACompositeKeyWhereOneColumnLinks: a from or through relation links one
// column, and a relation nested under a composite key can only be a from.
func TestModelRefusesACompositeKeyWhereOneColumnLinks(t *testing.T) {
	bad := hrEntity()
	bad.Relations[0].Relations[0].Key = []string{"dept_no", "dept_name"}
	if _, err := NewModel([]EntityDef{bad}); err == nil || !strings.Contains(err.Error(), "composite key") {
		t.Errorf("composite key on a from relation: err = %v", err)
	}
	bad = hrEntity()
	bad.Relations[0].Relations = append(bad.Relations[0].Relations,
		RelationDef{Name: "notes", Table: "hr.notes", Key: []string{"id"}, ParentKey: "dept_emp_id"})
	if _, err := NewModel([]EntityDef{bad}); err == nil || !strings.Contains(err.Error(), "composite key") {
		t.Errorf("parent_key relation under a composite key: err = %v", err)
	}
}

// TestOrderByComparesDecimalsAsNumbers: a DECIMAL reads as quoted text ("9.50"), which must
// not order before "10.25"; dates order as text; null first.
func TestOrderByComparesDecimalsAsNumbers(t *testing.T) {
	for _, tc := range []struct {
		a, b Value
		want int
	}{
		{`"9.50"`, `"10.25"`, -1},
		{`"-1.5"`, `"0.5"`, -1},
		{`"1999-12-31"`, `"2000-01-01"`, -1},
		{NullValue, `"0.5"`, -1},
		{`"b"`, `"a"`, 1},
	} {
		if got := compareOrder(tc.a, tc.b); got != tc.want || compareOrder(tc.b, tc.a) != -tc.want {
			t.Errorf("compareOrder(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

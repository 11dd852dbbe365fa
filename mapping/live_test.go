package mapping

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
)

// answerer is a Requester that gives every request the same answer.
type answerer struct {
	status int
	body   string
}

func (a answerer) Do(context.Context, esapi.Request) (int, []byte, error) {
	return a.status, []byte(a.body), nil
}

// TestMappingErrorAnswersAreClusterStatusErrors: a refused mapping request is read by
// cluster, the one reader of error answers, so callers test one type and one class.
func TestMappingErrorAnswersAreClusterStatusErrors(t *testing.T) {
	denied := answerer{403, `{"error":{"type":"security_exception","reason":"action [indices:admin/aliases/get] is unauthorized",` +
		`"caused_by":{"type":"illegal_state_exception","reason":"no role"}},"status":403}`}
	_, err := WriteIndices(t.Context(), denied, "t_programs")
	var se *cluster.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("WriteIndices refused: err = %v, want a *cluster.StatusError", err)
	}
	if se.Status != 403 || se.Type != "security_exception" || se.Class != cluster.Permanent ||
		!strings.Contains(se.Reason, "caused by illegal_state_exception: no role") {
		t.Errorf("WriteIndices refused: %+v", *se)
	}
	if !strings.HasPrefix(err.Error(), "list indices of t_programs: status 403 security_exception") {
		t.Errorf("error text %q does not say what was being done", err)
	}

	if _, err := Observe(t.Context(), answerer{503, `{"error":"unavailable"}`}, "t_programs"); cluster.ClassOf(err) != cluster.Retryable {
		t.Errorf("Observe on an unavailable cluster: %v (class %v), want retryable", err, cluster.ClassOf(err))
	}
}

// TestConcurrentCreateIsNotAFailure: an index created by another apply between plan and
// create is fine; any other refusal of the create is a *cluster.StatusError.
func TestConcurrentCreateIsNotAFailure(t *testing.T) {
	def := &Definition{Body: []byte(`{}`)}
	a := Action{Op: "create_index", Index: "t_programs_v1"}
	exists := answerer{400, `{"error":{"type":"resource_already_exists_exception","reason":"index [t_programs_v1/x] already exists"},"status":400}`}
	if err := applyAction(t.Context(), exists, a, def); err != nil {
		t.Errorf("create of an existing index: %v, want nil", err)
	}
	bad := answerer{400, `{"error":{"type":"mapper_parsing_exception","reason":"Failed to parse mapping"},"status":400}`}
	var se *cluster.StatusError
	if err := applyAction(t.Context(), bad, a, def); !errors.As(err, &se) || se.Type != "mapper_parsing_exception" {
		t.Errorf("create refused: err = %v, want a mapper_parsing_exception *cluster.StatusError", err)
	}
}

// TestWriteIndicesAreEveryVersionInOrder: both indices of a bump, in version order (v2
// before v10), and an error rather than the alias name when none exists.
func TestWriteIndicesAreEveryVersionInOrder(t *testing.T) {
	family := answerer{200, `{"t_programs_v10":{"aliases":{}},"t_programs_v2":{"aliases":{"t_programs":{}}},"t_programs_vx":{"aliases":{}}}`}
	got, err := WriteIndices(t.Context(), family, "t_programs")
	if want := []string{"t_programs_v2", "t_programs_v10"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("WriteIndices = %v, %v; want %v", got, err, want)
	}
	if got, err := WriteIndices(t.Context(), answerer{200, `{}`}, "t_programs"); err == nil {
		t.Errorf("WriteIndices with no index = %v, want an error", got)
	}
}

// TestVersionFieldDefaultIsTheIndexers: the field Load requires as long is the one the
// indexer writes when an entity names none.
func TestVersionFieldDefaultIsTheIndexers(t *testing.T) {
	set, err := Load("../mappings", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if set.VersionField != indexer.DefaultVersionField {
		t.Errorf("VersionField = %q, want %q", set.VersionField, indexer.DefaultVersionField)
	}
}

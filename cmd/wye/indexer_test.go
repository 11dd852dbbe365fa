package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// fakeIndices answers the read requests of mapping.WriteTargets and mapping.Observe for a
// cluster holding the given concrete indices (no aliases).
type fakeIndices []string

func (f fakeIndices) Do(_ context.Context, req esapi.Request) (int, []byte, error) {
	match := func(patterns []string) string {
		var parts []string
		for _, name := range f {
			for _, p := range patterns {
				if name == p || (strings.HasSuffix(p, "*") && strings.HasPrefix(name, strings.TrimSuffix(p, "*"))) {
					parts = append(parts, `"`+name+`":{"mappings":{},"aliases":{}}`)
					break
				}
			}
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	switch r := req.(type) {
	case esapi.IndicesGetAliasRequest:
		if len(r.Name) > 0 {
			return 404, []byte(`{"error":"alias missing","status":404}`), nil
		}
		return 200, []byte(match(r.Index)), nil
	case esapi.IndicesGetMappingRequest:
		return 200, []byte(match(r.Index)), nil
	case esapi.IndicesGetSettingsRequest:
		return 200, []byte(`{}`), nil
	}
	return 400, []byte(`{}`), nil
}

func TestIndexerNeverWritesAnAliasNameThatNoIndexCarries(t *testing.T) {
	tests := []struct {
		name    string
		indices fakeIndices
		want    []string // nil: error
	}{
		{"version bump: both versions", fakeIndices{"programs_v2", "programs_v1", "programs_x"}, []string{"programs_v1", "programs_v2"}},
		{"a plain index named like the alias is not a managed target", fakeIndices{"programs"}, nil},
		{"nothing: the write would auto-create a dynamic index", fakeIndices{"other"}, nil},
	}
	for _, tt := range tests {
		ts, err := mappingIndices{tt.indices}.WriteTargets(t.Context(), "programs")
		var got []string
		for _, x := range ts {
			got = append(got, x.Name)
		}
		if tt.want == nil {
			if err == nil {
				t.Errorf("%s: targets %v, want an error", tt.name, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

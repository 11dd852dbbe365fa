package mapping

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/cluster"
)

// Requester performs one untyped esapi request and returns the status and whole body; a
// non-2xx status is not an error. *cluster.Client implements it.
type Requester interface {
	Do(ctx context.Context, req esapi.Request) (status int, body []byte, err error)
}

// Live is what one cluster holds for one index family: the alias and every concrete index
// named <alias>_vN.
type Live struct {
	Alias string
	// Indices are the concrete indices of the family, by name.
	Indices map[string]*LiveIndex
	// AliasOn are the concrete indices the alias points at (sorted; normally zero or one).
	AliasOn []string
	// AliasIsIndex: a concrete index carries the alias's name, typically auto-created by a
	// write that came before apply. The alias cannot be created until it is gone.
	AliasIsIndex bool
}

// LiveIndex is one concrete index of a family as the cluster reports it.
type LiveIndex struct {
	Name     string
	Version  string            // "v2"
	Mapping  map[string]any    // normalized
	Settings map[string]string // flat
}

// Names lists the family's concrete indices in version order.
func (l *Live) Names() []string {
	names := slices.Collect(maps.Keys(l.Indices))
	slices.SortFunc(names, func(a, b string) int {
		return versionNumber(l.Indices[a].Version) - versionNumber(l.Indices[b].Version)
	})
	return names
}

func familyPattern(alias string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(alias) + `_(v[1-9][0-9]*)$`)
}

// Observe reads the family of alias (prefix included) from a cluster: three GETs, nothing
// written.
func Observe(ctx context.Context, api Requester, alias string) (*Live, error) {
	live := &Live{Alias: alias, Indices: map[string]*LiveIndex{}}
	family := familyPattern(alias)
	names := []string{alias, alias + "_v*"}
	yes := true

	body, err := call(ctx, api, esapi.IndicesGetMappingRequest{Index: names, IgnoreUnavailable: &yes, AllowNoIndices: &yes},
		"get mappings of "+alias)
	if err != nil {
		return nil, err
	}
	var mappings map[string]struct {
		Mappings map[string]any `json:"mappings"`
	}
	if err := decode(body, &mappings); err != nil {
		return nil, fmt.Errorf("decode mappings of %s: %w", alias, err)
	}
	for name, m := range mappings {
		if name == alias {
			live.AliasIsIndex = true
			continue
		}
		if v := family.FindStringSubmatch(name); v != nil {
			live.Indices[name] = &LiveIndex{Name: name, Version: v[1], Mapping: Normalize(m.Mappings)}
		}
	}
	if len(live.Indices) > 0 {
		body, err = call(ctx, api, esapi.IndicesGetSettingsRequest{Index: live.Names(), FlatSettings: &yes},
			"get settings of "+alias)
		if err != nil {
			return nil, err
		}
		var settings map[string]struct {
			Settings map[string]any `json:"settings"`
		}
		if err := decode(body, &settings); err != nil {
			return nil, fmt.Errorf("decode settings of %s: %w", alias, err)
		}
		for name, s := range settings {
			if li := live.Indices[name]; li != nil {
				li.Settings = liveSettings(s.Settings)
			}
		}
	}

	status, body, err := api.Do(ctx, esapi.IndicesGetAliasRequest{Name: []string{alias}})
	if err != nil {
		return nil, fmt.Errorf("get alias %s: %w", alias, err)
	}
	switch {
	case status == 404:
		// No index carries the alias.
	case status/100 == 2:
		var aliases map[string]any
		if err := decode(body, &aliases); err != nil {
			return nil, fmt.Errorf("decode alias %s: %w", alias, err)
		}
		live.AliasOn = slices.Sorted(maps.Keys(aliases))
	default:
		return nil, fmt.Errorf("get alias %s: %w", alias, cluster.NewStatusError("", status, body))
	}
	return live, nil
}

// WriteIndices returns the concrete indices the indexer must write every document of alias
// (prefix included) to on one cluster: every index of the family that exists, in version
// order. While a version bump is under way that is both <alias>_vN and <alias>_vN+1, so the
// new index stays current while it is backfilled and the old one stays current until
// `wye mapping gc` removes it (a switch back remains possible until then).
//
// It fails when no index exists: the indexer must then stop rather than write to the alias
// name, which would auto-create an index with a dynamic mapping. Call it at start and again
// after a write answers index_not_found_exception (gc removed an index).
func WriteIndices(ctx context.Context, api Requester, alias string) ([]string, error) {
	names, _, err := family(ctx, api, alias)
	return names, err
}

// Target is one index the indexer writes the documents of a family to (WriteTargets).
type Target struct {
	Name string
	// Alias: the alias points at this index, the one the application reads. Its result
	// decides a document; another index's refusal does not (docs/mapping.md, "Version bump
	// without downtime").
	Alias bool
	// Project leaves out the fields this index's strict mapping does not know and another
	// index of the family does; nil when the index lacks none (no bump, the newest index).
	Project *Projection
}

// WriteTargets is WriteIndices with, for each index, whether the alias points at it and,
// during a version bump, its Projection: each index then receives the documents projected
// onto its own mapping, so that the old strict index keeps taking them once the entity
// emits the new version's fields. With one index it makes no more requests than
// WriteIndices; during a bump it reads the family's mappings once more.
func WriteTargets(ctx context.Context, api Requester, alias string) ([]Target, error) {
	names, aliasOn, err := family(ctx, api, alias)
	if err != nil {
		return nil, err
	}
	out := make([]Target, len(names))
	for i, name := range names {
		out[i] = Target{Name: name, Alias: aliasOn[name]}
	}
	if len(names) < 2 {
		return out, nil
	}
	body, err := call(ctx, api, esapi.IndicesGetMappingRequest{Index: names}, "get mappings of "+alias)
	if err != nil {
		return nil, err
	}
	var found map[string]struct {
		Mappings map[string]any `json:"mappings"`
	}
	if err := decode(body, &found); err != nil {
		return nil, fmt.Errorf("decode mappings of %s: %w", alias, err)
	}
	mappings := make([]map[string]any, len(names))
	for i, name := range names {
		m, ok := found[name]
		if !ok {
			return nil, fmt.Errorf("get mappings of %s: no mapping for %s", alias, name)
		}
		mappings[i] = m.Mappings
	}
	for i, p := range Projections(mappings) {
		out[i].Project = p
	}
	return out, nil
}

// family lists the indices of alias's family in version order and which of them the alias
// points at.
func family(ctx context.Context, api Requester, alias string) ([]string, map[string]bool, error) {
	yes := true
	// _alias on the wildcard lists every matching index, with or without aliases.
	status, body, err := api.Do(ctx, esapi.IndicesGetAliasRequest{Index: []string{alias + "_v*"}, AllowNoIndices: &yes})
	if err != nil {
		return nil, nil, fmt.Errorf("list indices of %s: %w", alias, err)
	}
	if status/100 != 2 {
		return nil, nil, fmt.Errorf("list indices of %s: %w", alias, cluster.NewStatusError("", status, body))
	}
	var found map[string]struct {
		Aliases map[string]any `json:"aliases"`
	}
	if err := decode(body, &found); err != nil {
		return nil, nil, fmt.Errorf("decode indices of %s: %w", alias, err)
	}
	pattern := familyPattern(alias)
	var out []string
	aliasOn := map[string]bool{}
	for name, idx := range found {
		if pattern.MatchString(name) {
			out = append(out, name)
			_, aliasOn[name] = idx.Aliases[alias]
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("list indices of %s: none exists; run `wye mapping apply`", alias)
	}
	slices.SortFunc(out, func(a, b string) int {
		return versionNumber(pattern.FindStringSubmatch(a)[1]) - versionNumber(pattern.FindStringSubmatch(b)[1])
	})
	return out, aliasOn, nil
}

// call performs req and returns the body of a 2xx answer; anything else is an error
// that says what was being done.
func call(ctx context.Context, api Requester, req esapi.Request, what string) ([]byte, error) {
	status, body, err := api.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if status/100 != 2 {
		return nil, fmt.Errorf("%s: %w", what, cluster.NewStatusError("", status, body))
	}
	return body, nil
}

func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return dec.Decode(v)
}

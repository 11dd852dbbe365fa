package mapping

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Cluster is one cluster as the mapping commands see it.
type Cluster struct {
	Name    string // cluster name from the configuration
	Engine  Engine
	Version string    // the mapping version the configuration gives this cluster: "v1"
	API     Requester // nil when the cluster could not be reached; Err says why
	Err     error
}

// Options are shared by Plan, Apply, Switch and GC.
type Options struct {
	// Prefix is put before every index and alias name wye manages, so that tests and
	// several environments can share a cluster: "e2e1234_" -> e2e1234_programs_v1.
	Prefix string
	// Documents are the documents each index's entity writes, by index (without prefix). Plan
	// reports the fields of them the strict mapping lacks (IndexPlan.Unmapped).
	Documents map[string]Document
}

// AliasName is the application-facing name of index: "<prefix><index>".
func (o Options) AliasName(index string) string { return o.Prefix + index }

// IndexName is the concrete index of one version: "<prefix><index>_<version>".
func (o Options) IndexName(index, version string) string { return o.Prefix + index + "_" + version }

// Status sums up one index family on one cluster.
type Status string

const (
	StatusOK       Status = "ok"       // nothing to do, no drift
	StatusPending  Status = "pending"  // apply has actions to do
	StatusDrift    Status = "drift"    // a live index differs from its definition
	StatusUnmapped Status = "unmapped" // the entity writes fields the definition lacks (Unmapped)
	StatusConflict Status = "conflict" // something wye cannot fix by itself (see Notes)
	StatusFailed   Status = "error"    // the cluster or the definition could not be read
)

// Action is one change apply makes.
type Action struct {
	Op    string `json:"op"` // "create_index" or "add_alias"
	Index string `json:"index"`
	Alias string `json:"alias,omitempty"`
}

func (a Action) String() string {
	if a.Op == "add_alias" {
		return "add alias " + a.Alias + " -> " + a.Index
	}
	return "create index " + a.Index
}

// Plan is what apply would do on every cluster, and the drift it found.
type Plan struct {
	Clusters []ClusterPlan `json:"clusters"`
}

// ClusterPlan is the plan of one cluster.
type ClusterPlan struct {
	Cluster string      `json:"cluster"`
	Engine  string      `json:"engine,omitempty"`
	Version string      `json:"mapping_version"`
	Error   string      `json:"error,omitempty"`
	Indices []IndexPlan `json:"indices"`
}

// IndexPlan is the plan of one index family on one cluster.
type IndexPlan struct {
	Alias    string   `json:"alias"`
	Target   string   `json:"target"`   // the concrete index of the configured version
	AliasOn  []string `json:"alias_on"` // where the alias points now
	Existing []string `json:"existing"` // the family's concrete indices, in version order
	Status   Status   `json:"status"`
	Actions  []Action `json:"actions,omitempty"`
	Drift    []Drift  `json:"drift,omitempty"`
	// Unmapped are the field paths the entity's documents carry that the configured version's
	// strict mapping lacks: every such document would be refused (and parked).
	Unmapped []string `json:"unmapped,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Error    string   `json:"error,omitempty"`

	def *Definition
}

func (ip IndexPlan) targetDrifted() bool {
	for _, d := range ip.Drift {
		if d.Index == ip.Target {
			return true
		}
	}
	return false
}

// Unmapped counts the index families whose mapping lacks fields their entity writes.
func (p *Plan) Unmapped() int {
	n := 0
	for _, c := range p.Clusters {
		for _, ip := range c.Indices {
			if len(ip.Unmapped) > 0 {
				n++
			}
		}
	}
	return n
}

// HasDrift reports whether any cluster drifted or is in conflict.
func (p *Plan) HasDrift() bool {
	for _, c := range p.Clusters {
		for _, ip := range c.Indices {
			if ip.Status == StatusDrift || ip.Status == StatusConflict {
				return true
			}
		}
	}
	return false
}

// Problems counts what verify fails on: drift, conflicts, pending actions and errors.
func (p *Plan) Problems() int {
	n := 0
	for _, c := range p.Clusters {
		if c.Error != "" {
			n++
		}
		for _, ip := range c.Indices {
			if ip.Status != StatusOK {
				n++
			}
		}
	}
	return n
}

// Failures counts the clusters and index families that could not be planned.
func (p *Plan) Failures() int {
	n := 0
	for _, c := range p.Clusters {
		if c.Error != "" {
			n++
		}
		for _, ip := range c.Indices {
			if ip.Status == StatusFailed {
				n++
			}
		}
	}
	return n
}

// Resolve resolves the definition of every index for every reachable target: the check of
// field types against each engine, to run before anything is written.
func Resolve(set *Set, clusters []Cluster) error {
	var errs []error
	for _, t := range clusters {
		if t.API == nil {
			continue
		}
		for _, idx := range set.Indices() {
			if _, err := set.Resolve(idx, t.Version, t.Engine); err != nil {
				errs = append(errs, fmt.Errorf("cluster %s: %w", t.Name, err))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

// MakePlan reads every target and plans every index of set. A cluster that cannot be read
// is reported in its ClusterPlan (Error); the others are planned anyway.
func MakePlan(ctx context.Context, set *Set, clusters []Cluster, opts Options) *Plan {
	p := &Plan{}
	for _, t := range clusters {
		cp := ClusterPlan{Cluster: t.Name, Version: t.Version}
		if t.API == nil {
			cp.Error = t.Err.Error()
			p.Clusters = append(p.Clusters, cp)
			continue
		}
		cp.Engine = t.Engine.String()
		for _, idx := range set.Indices() {
			cp.Indices = append(cp.Indices, planIndex(ctx, set, t, opts, idx))
		}
		p.Clusters = append(p.Clusters, cp)
	}
	return p
}

func planIndex(ctx context.Context, set *Set, t Cluster, opts Options, idx string) IndexPlan {
	ip := IndexPlan{Alias: opts.AliasName(idx), Target: opts.IndexName(idx, t.Version)}
	def, err := set.Resolve(idx, t.Version, t.Engine)
	if err != nil {
		ip.Status, ip.Error = StatusFailed, err.Error()
		return ip
	}
	live, err := Observe(ctx, t.API, ip.Alias)
	if err != nil {
		ip.Status, ip.Error = StatusFailed, err.Error()
		return ip
	}
	older := map[string]*Definition{}
	for _, li := range live.Indices {
		if li.Version != t.Version && set.Has(idx, li.Version) {
			if d, err := set.Resolve(idx, li.Version, t.Engine); err == nil {
				older[li.Version] = d
			}
		}
	}
	ip = decide(ip, def, older, live)
	if doc, ok := opts.Documents[idx]; ok {
		ip = checkDocument(ip, doc)
	}
	return ip
}

// checkDocument records in ip the fields doc's documents carry that the target's definition
// lacks. They are a finding like drift: the status becomes unmapped unless it is worse
// (conflict, drift), and apply still creates what is missing.
func checkDocument(ip IndexPlan, doc Document) IndexPlan {
	missing, unknown := Unmapped(doc, ip.def.Mappings)
	ip.Unmapped = missing
	if len(unknown) > 0 {
		ip.Notes = append(ip.Notes, fmt.Sprintf("%s: the fields read from %s are not checked against %s: the entity "+
			"omits their columns (every column is read); list them, or see them with `wye entity show`",
			ip.Alias, strings.Join(unknown, ", "), ip.Target))
	}
	if len(missing) > 0 && (ip.Status == StatusOK || ip.Status == StatusPending) {
		ip.Status = StatusUnmapped
	}
	return ip
}

// Unmapped compares the fields of doc's documents with mappings (a definition's normalized
// mappings): missing are the field paths ("episodes.season") that the mapping lacks where it
// is strict, so that a document carrying them is refused; unknown the tables whose columns are
// not known (Object.Open), which could not be checked. Below an
// object that is not strict (dynamic true or false) or not parsed (enabled false, flattened,
// flat_object) any field is accepted.
func Unmapped(doc Document, mappings map[string]any) (missing, unknown []string) {
	var walk func(o Object, path string, props map[string]any, dynamic string)
	walk = func(o Object, path string, props map[string]any, dynamic string) {
		if o.Open {
			unknown = append(unknown, o.Table)
		}
		for _, f := range o.Fields {
			fp := f.Name
			if path != "" {
				fp = path + "." + f.Name
			}
			m, _ := props[f.Name].(map[string]any)
			if m == nil {
				if dynamic == "strict" {
					missing = append(missing, fp)
				}
				continue
			}
			if f.Relation == nil || fmt.Sprint(m["enabled"]) == "false" || m["type"] == "flattened" || m["type"] == "flat_object" {
				continue
			}
			sub, _ := m["properties"].(map[string]any)
			d := dynamic
			if v, ok := m["dynamic"]; ok {
				d = fmt.Sprint(v)
			}
			walk(*f.Relation, fp, sub, d)
		}
	}
	props, _ := mappings["properties"].(map[string]any)
	dynamic := "true"
	if v, ok := mappings["dynamic"]; ok {
		dynamic = fmt.Sprint(v)
	}
	walk(doc.Object, "", props, dynamic)
	return missing, unknown
}

// decide is the planning rule, without I/O: ip has Alias and Target set, def is the
// configured version's definition, older the definitions of the other live versions.
func decide(ip IndexPlan, def *Definition, older map[string]*Definition, live *Live) IndexPlan {
	ip.def = def
	ip.AliasOn = live.AliasOn
	ip.Existing = live.Names()
	if ip.Existing == nil {
		ip.Existing = []string{}
	}
	if ip.AliasOn == nil {
		ip.AliasOn = []string{}
	}
	_, exists := live.Indices[ip.Target]

	for _, name := range ip.Existing {
		li := live.Indices[name]
		d := def
		if li.Version != def.Version {
			if d = older[li.Version]; d == nil {
				ip.Notes = append(ip.Notes, name+": no definition for "+li.Version+" in the mapping files; not compared")
				continue
			}
		}
		ip.Drift = append(ip.Drift, Diff(name, d, li.Mapping, li.Settings)...)
	}

	if live.AliasIsIndex {
		ip.Notes = append(ip.Notes, fmt.Sprintf("a concrete index is named %s (auto-created by a write before apply?): "+
			"wye cannot create the alias until it is reindexed or deleted by hand", ip.Alias))
	}
	for _, on := range ip.AliasOn {
		if _, ours := live.Indices[on]; !ours {
			ip.Notes = append(ip.Notes, fmt.Sprintf("alias %s points at %s, which is not one of its versioned indices", ip.Alias, on))
		}
	}
	conflict := live.AliasIsIndex || len(ip.AliasOn) > 1 || (len(ip.AliasOn) == 1 && live.Indices[ip.AliasOn[0]] == nil)
	if len(ip.AliasOn) > 1 {
		ip.Notes = append(ip.Notes, fmt.Sprintf("alias %s points at %d indices; want one", ip.Alias, len(ip.AliasOn)))
	}

	if !exists {
		ip.Actions = append(ip.Actions, Action{Op: "create_index", Index: ip.Target})
	}
	switch {
	case len(ip.AliasOn) == 0 && !live.AliasIsIndex:
		ip.Actions = append(ip.Actions, Action{Op: "add_alias", Index: ip.Target, Alias: ip.Alias})
	case len(ip.AliasOn) == 1 && ip.AliasOn[0] != ip.Target && !conflict:
		ip.Notes = append(ip.Notes, fmt.Sprintf("alias %s stays on %s until `wye mapping switch`; the indexer writes to both",
			ip.Alias, ip.AliasOn[0]))
	}

	switch {
	case conflict:
		ip.Status = StatusConflict
	case len(ip.Drift) > 0:
		ip.Status = StatusDrift
	case len(ip.Actions) > 0:
		ip.Status = StatusPending
	default:
		ip.Status = StatusOK
	}
	slices.SortStableFunc(ip.Drift, func(a, b Drift) int {
		if a.Index != b.Index {
			return versionNumber(live.Indices[a.Index].Version) - versionNumber(live.Indices[b.Index].Version)
		}
		return 0
	})
	return ip
}

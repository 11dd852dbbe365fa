package mapping

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/cluster"
)

// Outcome is what happened to one step of apply, switch or gc.
type Outcome string

const (
	Done    Outcome = "done"
	DryRun  Outcome = "dry-run" // would be done
	Nothing Outcome = "nothing" // already in the wanted state
	Skipped Outcome = "skipped" // not attempted: the family drifted or is in conflict
	Refused Outcome = "refused" // a safety check said no; Reason says why
	Failed  Outcome = "failed"  // the cluster answered an error
)

// Result is one step of apply, switch or gc on one cluster, reported per step (never
// pass/fail per run).
type Result struct {
	Cluster string  `json:"cluster"`
	Alias   string  `json:"alias"`
	Op      string  `json:"op"` // create_index, add_alias, switch_alias, delete_index
	Index   string  `json:"index,omitempty"`
	From    string  `json:"from,omitempty"` // switch_alias: the index the alias leaves
	Outcome Outcome `json:"outcome"`
	Reason  string  `json:"reason,omitempty"`
}

// Incomplete reports whether any step failed, was refused or was skipped.
func Incomplete(rs []Result) bool {
	return slices.ContainsFunc(rs, func(r Result) bool {
		return r.Outcome == Failed || r.Outcome == Refused || r.Outcome == Skipped
	})
}

// Apply performs the actions of p: creates missing indices, then adds missing aliases.
// A family in conflict, or whose target index drifted, is skipped whole: the drift is for a
// person to resolve. Drift on an older version does not stop the creation of the target:
// a version bump is how drift gets fixed. Apply is idempotent: a second run on the same
// state plans nothing.
func Apply(ctx context.Context, p *Plan, clusters []Cluster, dryRun bool) []Result {
	var out []Result
	for _, cp := range p.Clusters {
		t := findCluster(clusters, cp.Cluster)
		for _, ip := range cp.Indices {
			if ip.Status == StatusConflict || ip.Status == StatusFailed || ip.targetDrifted() {
				for _, a := range ip.Actions {
					out = append(out, Result{Cluster: cp.Cluster, Alias: ip.Alias, Op: a.Op, Index: a.Index,
						Outcome: Skipped, Reason: "index family status is " + string(ip.Status)})
				}
				continue
			}
			for _, a := range ip.Actions {
				r := Result{Cluster: cp.Cluster, Alias: ip.Alias, Op: a.Op, Index: a.Index, Outcome: DryRun}
				if !dryRun {
					r.Outcome, r.Reason = Done, ""
					if err := applyAction(ctx, t.API, a, ip.def); err != nil {
						r.Outcome, r.Reason = Failed, err.Error()
					}
				}
				out = append(out, r)
				if r.Outcome == Failed {
					break // no alias on an index that could not be created
				}
			}
		}
	}
	return out
}

func findCluster(clusters []Cluster, name string) Cluster {
	for _, t := range clusters {
		if t.Name == name {
			return t
		}
	}
	return Cluster{Name: name}
}

func applyAction(ctx context.Context, api Requester, a Action, def *Definition) error {
	switch a.Op {
	case "create_index":
		status, body, err := api.Do(ctx, esapi.IndicesCreateRequest{Index: a.Index, Body: bytes.NewReader(def.Body)})
		if err != nil {
			return fmt.Errorf("create index %s: %w", a.Index, err)
		}
		if status/100 != 2 {
			se := cluster.NewStatusError("", status, body)
			if se.Type == "resource_already_exists_exception" {
				return nil // a concurrent apply made it; the next plan compares it
			}
			return fmt.Errorf("create index %s: %w", a.Index, se)
		}
		return nil
	case "add_alias":
		return updateAliases(ctx, api, []aliasAction{{"add": {Index: a.Index, Alias: a.Alias}}}, "add alias "+a.Alias)
	}
	return fmt.Errorf("apply action %q: unknown", a.Op)
}

type aliasAction map[string]struct {
	Index string `json:"index"`
	Alias string `json:"alias"`
}

// updateAliases sends one _aliases request: its actions happen atomically, all or none.
func updateAliases(ctx context.Context, api Requester, actions []aliasAction, what string) error {
	body, err := json.Marshal(map[string]any{"actions": actions})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	_, err = call(ctx, api, esapi.IndicesUpdateAliasesRequest{Body: bytes.NewReader(body)}, what)
	return err
}

// Switch moves each alias to the index of its cluster's configured version, in one atomic
// _aliases request (remove + add). It refuses, saying why, while the target index is missing
// or drifted, while the alias is in conflict, and while the target holds fewer documents
// than the index the alias leaves: an application would lose results. The old index stays
// until GC.
func Switch(ctx context.Context, set *Set, clusters []Cluster, opts Options, dryRun bool) []Result {
	var out []Result
	for _, t := range clusters {
		for _, idx := range set.Indices() {
			out = append(out, switchOne(ctx, set, t, opts, idx, dryRun))
		}
	}
	return out
}

func switchOne(ctx context.Context, set *Set, t Cluster, opts Options, idx string, dryRun bool) Result {
	r := Result{Cluster: t.Name, Alias: opts.AliasName(idx), Op: "switch_alias", Index: opts.IndexName(idx, t.Version)}
	fail := func(o Outcome, format string, args ...any) Result {
		r.Outcome, r.Reason = o, fmt.Sprintf(format, args...)
		return r
	}
	if t.API == nil {
		return fail(Failed, "%v", t.Err)
	}
	ip := planIndex(ctx, set, t, opts, idx)
	switch {
	case ip.Status == StatusFailed:
		return fail(Failed, "%s", ip.Error)
	case ip.Status == StatusConflict:
		return fail(Refused, "alias in conflict: %v", ip.Notes)
	case !slices.Contains(ip.Existing, r.Index):
		return fail(Refused, "%s does not exist: run `wye mapping apply` first", r.Index)
	}
	for _, d := range ip.Drift {
		if d.Index == r.Index {
			return fail(Refused, "%s drifted from its definition (%s %s %s): fix or re-create it first", r.Index, d.Kind, d.Field, d.Change)
		}
	}
	if len(ip.AliasOn) == 1 && ip.AliasOn[0] == r.Index {
		return fail(Nothing, "alias already points at %s", r.Index)
	}
	actions := []aliasAction{}
	if len(ip.AliasOn) == 1 {
		r.From = ip.AliasOn[0]
		counts, err := settledCounts(ctx, t.API, r.From, r.Index)
		if err != nil {
			return fail(Failed, "%v", err)
		}
		if counts[1] < counts[0] {
			return fail(Refused, "%s holds %d documents, fewer than the %d of %s: backfill it first "+
				"(the nightly resync will; until then the indexer writes new changes to both)",
				r.Index, counts[1], counts[0], r.From)
		}
		actions = append(actions, aliasAction{"remove": {Index: r.From, Alias: r.Alias}})
	}
	actions = append(actions, aliasAction{"add": {Index: r.Index, Alias: r.Alias}})
	if dryRun {
		r.Outcome = DryRun
		return r
	}
	if err := updateAliases(ctx, t.API, actions, "switch alias "+r.Alias); err != nil {
		return fail(Failed, "%v", err)
	}
	r.Outcome = Done
	return r
}

// SwitchRecounts is how many times the switch counts the old and the new index before it
// refuses a new index holding fewer documents, SwitchRecountWait apart. With the stream
// running both indices receive every write, but each refreshes on its own: one count can see
// an insert (or miss a delete) that the other does not see yet. A new index that was not
// backfilled stays short on every count.
const (
	SwitchRecounts    = 3
	SwitchRecountWait = time.Second
)

// settledCounts counts from and to (countDocs) until to holds at least as many documents as
// from, SwitchRecounts times at most, and returns the last counts.
func settledCounts(ctx context.Context, api Requester, from, to string) ([]int64, error) {
	for i := 1; ; i++ {
		counts, err := countDocs(ctx, api, from, to)
		if err != nil || counts[1] >= counts[0] || i == SwitchRecounts {
			return counts, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(SwitchRecountWait):
		}
	}
}

// countDocs refreshes the indices (so that documents written a moment ago count) and
// returns their document counts in order.
func countDocs(ctx context.Context, api Requester, indices ...string) ([]int64, error) {
	if _, err := call(ctx, api, esapi.IndicesRefreshRequest{Index: indices}, "refresh indices"); err != nil {
		return nil, err
	}
	out := make([]int64, len(indices))
	for i, name := range indices {
		body, err := call(ctx, api, esapi.CountRequest{Index: []string{name}}, "count documents of "+name)
		if err != nil {
			return nil, err
		}
		var c struct {
			Count int64 `json:"count"`
		}
		if err := json.Unmarshal(body, &c); err != nil {
			return nil, fmt.Errorf("decode count of %s: %w", name, err)
		}
		out[i] = c.Count
	}
	return out, nil
}

// GC deletes the versioned indices of each family that are neither the configured version's
// index nor the alias's. It refuses a family whose alias does not point at the configured
// version yet (run Switch first), and never touches an index outside <alias>_vN.
func GC(ctx context.Context, set *Set, clusters []Cluster, opts Options, dryRun bool) []Result {
	var out []Result
	for _, t := range clusters {
		for _, idx := range set.Indices() {
			alias, target := opts.AliasName(idx), opts.IndexName(idx, t.Version)
			r := Result{Cluster: t.Name, Alias: alias, Op: "delete_index"}
			if t.API == nil {
				r.Outcome, r.Reason = Failed, fmt.Sprint(t.Err)
				out = append(out, r)
				continue
			}
			live, err := Observe(ctx, t.API, alias)
			switch {
			case err != nil:
				r.Outcome, r.Reason = Failed, err.Error()
				out = append(out, r)
				continue
			case len(live.AliasOn) != 1 || live.AliasOn[0] != target:
				r.Outcome, r.Reason = Refused, fmt.Sprintf("alias %s points at %v, not %s: run `wye mapping switch` first", alias, live.AliasOn, target)
				out = append(out, r)
				continue
			}
			deleted := 0
			for _, name := range live.Names() {
				if name == target {
					continue
				}
				r := Result{Cluster: t.Name, Alias: alias, Op: "delete_index", Index: name, Outcome: DryRun}
				if !dryRun {
					r.Outcome = Done
					if _, err := call(ctx, t.API, esapi.IndicesDeleteRequest{Index: []string{name}}, "delete index "+name); err != nil {
						r.Outcome, r.Reason = Failed, err.Error()
					}
				}
				out = append(out, r)
				deleted++
			}
			if deleted == 0 {
				r.Outcome, r.Reason = Nothing, "only "+target+" exists"
				out = append(out, r)
			}
		}
	}
	return out
}

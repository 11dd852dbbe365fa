package status

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/control"
)

// Defaults of the checks.
const (
	DefaultWindow = 5 * time.Minute // the window of "recent" misses when read from the ledger
	// DefaultMaxBehind is how far, in binlog bytes of one file, a cluster's highest version
	// may trail the master's before it is a problem: a live stream keeps slaves a few batches
	// behind, never megabytes.
	DefaultMaxBehind = 16 << 20
	DefaultTimeout   = 10 * time.Second // bound of the whole gathering
)

// Control is the control schema (*control.Store).
type Control interface {
	ClusterRoles(ctx context.Context) (map[string]control.ClusterRole, error)
	LedgerStats(ctx context.Context, window time.Duration) (map[string]control.LedgerStats, error)
	LastRun(ctx context.Context) (control.NightlyRun, bool, error)
	// Journal is the last n rows of promote_journal, newest first.
	Journal(ctx context.Context, n int) ([]control.JournalEntry, error)
}

var _ Control = (*control.Store)(nil)

// Engine is one reachable search cluster (*cluster.Client).
type Engine interface {
	Health(ctx context.Context, indices []string) (string, error)
	Count(ctx context.Context, index string) (int64, error)
	Max(ctx context.Context, indices []string, field string) (float64, bool, error)
}

// Cluster is one configured cluster as status reads it.
type Cluster struct {
	Name       string
	Configured string // the role the configuration gives it (cluster_roles wins once seeded)
	Mapping    string // the mapping version the configuration names
	Engine     Engine // nil when it could not be connected: Err says why
	About      string // engine and version, as detected
	Err        error
	// Drift checks the cluster's indices against its mapping version: "" when they match, else
	// a line naming what differs; err when it could not be checked. nil: not checked.
	Drift func(ctx context.Context) (string, error)
}

// Alias is one entity's index alias and its version field.
type Alias struct{ Name, VersionField string }

// CDC is the binlog reader's state.
type CDC interface {
	// Checkpoint is the reader's saved checkpoint; ok false when it has none.
	Checkpoint(ctx context.Context) (cdc.Checkpoint, bool, error)
	// Leader names the session holding the leader lock; ok false when no reader leads.
	Leader(ctx context.Context) (string, bool, error)
	// Head is the source's current binlog position and identity.
	Head(ctx context.Context) (cdc.Position, string, error)
}

// Queues reads the depth of queues; a queue that does not exist is absent from the map.
type Queues interface {
	Depths(ctx context.Context, names []string) (map[string]int, error)
}

// Writes reads the indexer's document writes per cluster and result class
// (wye_indexer_items_total): counters since the indexer process started.
type Writes interface {
	Items(ctx context.Context) (map[string]map[string]float64, error)
}

// Options configure one gathering.
type Options struct {
	Clusters []Cluster
	Aliases  []Alias
	Control  Control
	CDC      CDC
	Queues   Queues
	// QueueNames are the change queue, then the retry tiers, then the parked queue (Parked).
	QueueNames []string
	Parked     string
	Writes     Writes // nil: the failed share comes from the ledger
	// Previous is the last report of a --watch: the failed share is then the one between the two.
	Previous  *Report
	Window    time.Duration // DefaultWindow
	MaxBehind int64         // DefaultMaxBehind
}

// Report is one reading of everything.
type Report struct {
	Time     time.Time        `json:"time"`
	Clusters []*ClusterStatus `json:"clusters"`
	CDC      CDCStatus        `json:"cdc"`
	Queues   []Queue          `json:"queues"`
	Nightly  *Nightly         `json:"last_nightly"`
	Promote  *Promote         `json:"last_promote"` // nil: never promoted
	// FailedSource says where FailedShare comes from: "metrics" (the indexer's /metrics, since
	// it started, or between two readings of --watch), or "ledger" (misses in the window).
	FailedSource string `json:"failed_source"`
	// FailedWindow is what FailedShare covers: "since the indexer started", the time between
	// two readings of --watch, or the ledger's window.
	FailedWindow string   `json:"failed_window"`
	Problems     []string `json:"problems"`
	// writes is the raw counters read, for the next reading of a --watch.
	writes map[string]map[string]float64
}

// ClusterStatus is one cluster's line.
type ClusterStatus struct {
	Name      string           `json:"name"`
	Role      string           `json:"role"`
	Epoch     int64            `json:"promote_epoch"`
	Engine    string           `json:"engine,omitempty"`
	Reachable bool             `json:"reachable"`
	Error     string           `json:"error,omitempty"`
	Health    string           `json:"health,omitempty"`
	Mapping   string           `json:"mapping_version"`
	Drift     string           `json:"mapping_drift"` // "none", what differs, or "not checked: why"
	Docs      map[string]int64 `json:"documents"`     // per alias
	MaxV      int64            `json:"highest_version"`
	Behind    string           `json:"behind_master"` // "0", "N bytes", "earlier binlog file", ...
	// FailedShare is the share of its document writes that failed (retryable, permanent,
	// dropped); nil when unknown. Failed is the count behind it.
	FailedShare  *float64  `json:"failed_share,omitempty"`
	Failed       float64   `json:"failed_writes"`
	Ledger       int64     `json:"ledger_pending"`
	LedgerOldest time.Time `json:"ledger_oldest,omitzero"`
	LedgerRecent int64     `json:"ledger_recent"` // pending entries missed again within the window
}

// CDCStatus is the binlog reader's line.
type CDCStatus struct {
	Leader     string `json:"leader"` // the lock holder's session, "" when none leads
	Epoch      uint32 `json:"epoch"`
	Position   string `json:"position"` // the checkpoint's file:pos
	Head       string `json:"source_position"`
	Lag        string `json:"lag"` // "N bytes", "N binlog files", or why it is unknown
	LagBytes   int64  `json:"lag_bytes,omitempty"`
	Checkpoint bool   `json:"has_checkpoint"`
	Error      string `json:"error,omitempty"`
}

// Queue is one queue's depth; Depth -1: not declared.
type Queue struct {
	Name  string `json:"name"`
	Depth int    `json:"messages"`
}

// Nightly is the last finished nightly run.
type Nightly struct {
	ID       int64     `json:"run"`
	Status   string    `json:"status"`
	Finished time.Time `json:"finished"`
}

// Promote is the last row of promote_journal: a promote by hand, by the automatic failover,
// or a refused one.
type Promote struct {
	ID       int64     `json:"journal"`
	Finished time.Time `json:"finished"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Outcome  string    `json:"outcome"` // promoted, refused, rolled_back
	Epoch    int64     `json:"epoch"`   // the promote epoch it set; 0 when refused
	Who      string    `json:"who"`
	Message  string    `json:"message,omitempty"`
}

// Healthy reports a reading without problems.
func (r *Report) Healthy() bool { return len(r.Problems) == 0 }

// Gather reads everything at once (each part bounded by ctx) and derives the problems.
func Gather(ctx context.Context, o Options) *Report {
	o.Window = cmp.Or(o.Window, DefaultWindow)
	o.MaxBehind = cmp.Or(o.MaxBehind, DefaultMaxBehind)
	r := &Report{Time: time.Now()}
	g := &gather{o: o, r: r}
	var wg sync.WaitGroup
	r.Clusters = make([]*ClusterStatus, len(o.Clusters))
	for i, c := range o.Clusters {
		wg.Go(func() { r.Clusters[i] = g.cluster(ctx, c) })
	}
	wg.Go(func() { g.control(ctx) })
	wg.Go(func() { g.cdc(ctx) })
	wg.Go(func() { g.queues(ctx) })
	wg.Go(func() { g.writes(ctx) })
	wg.Wait()
	g.merge()
	return r
}

// gather holds one reading's parts until they are merged.
type gather struct {
	o        Options
	r        *Report
	mu       sync.Mutex
	problems []string
	roles    map[string]control.ClusterRole
	ledger   map[string]control.LedgerStats
	items    map[string]map[string]float64
}

func (g *gather) problem(format string, args ...any) {
	g.mu.Lock()
	g.problems = append(g.problems, fmt.Sprintf(format, args...))
	g.mu.Unlock()
}

func (g *gather) cluster(ctx context.Context, c Cluster) *ClusterStatus {
	s := &ClusterStatus{Name: c.Name, Role: c.Configured, Mapping: c.Mapping, Engine: c.About, Docs: map[string]int64{}, Drift: "not checked"}
	if c.Engine == nil {
		s.Error = errString(c.Err)
		g.problem("cluster %s: unreachable: %s", c.Name, s.Error)
		return s
	}
	s.Reachable = true
	var aliases []string
	for _, a := range g.o.Aliases {
		aliases = append(aliases, a.Name)
	}
	health, err := c.Engine.Health(ctx, aliases)
	switch {
	case err != nil:
		s.Health = "unknown"
		g.problem("cluster %s: health: %v", c.Name, err)
	case health == "red":
		s.Health = health
		g.problem("cluster %s: health red on %v (an index or alias is missing, or a primary shard is unassigned)", c.Name, aliases)
	default:
		s.Health = health
	}
	if c.Drift != nil {
		d, err := c.Drift(ctx)
		switch {
		case err != nil:
			s.Drift = "not checked: " + err.Error()
		case d == "":
			s.Drift = "none"
		default:
			s.Drift = d
			g.problem("cluster %s: mapping %s drifts: %s (wye mapping plan)", c.Name, c.Mapping, d)
		}
	}
	for _, a := range g.o.Aliases {
		n, err := c.Engine.Count(ctx, a.Name)
		if err != nil {
			s.Docs[a.Name] = -1
			g.problem("cluster %s: count %s: %v", c.Name, a.Name, err)
			continue
		}
		s.Docs[a.Name] = n
		if v, ok, err := c.Engine.Max(ctx, []string{a.Name}, a.VersionField); err == nil && ok {
			s.MaxV = max(s.MaxV, int64(v))
		}
	}
	return s
}

func (g *gather) control(ctx context.Context) {
	var err error
	if g.roles, err = g.o.Control.ClusterRoles(ctx); err != nil {
		g.problem("control schema: %v", err)
	}
	if g.ledger, err = g.o.Control.LedgerStats(ctx, g.o.Window); err != nil {
		g.problem("control schema: %v", err)
	}
	switch last, err := g.o.Control.Journal(ctx, 1); {
	case err != nil:
		g.problem("control schema: %v", err)
	case len(last) == 1:
		e := last[0]
		g.r.Promote = &Promote{ID: e.ID, Finished: e.Finished, From: e.From, To: e.To, Outcome: e.Outcome, Epoch: e.Epoch,
			Who: e.Who, Message: e.Message}
	}
	run, ok, err := g.o.Control.LastRun(ctx)
	switch {
	case err != nil:
		g.problem("control schema: %v", err)
	case ok:
		g.r.Nightly = &Nightly{ID: run.ID, Status: run.Status, Finished: run.Finished}
		if run.Status != control.RunEqual {
			g.problem("last nightly run %d %s at %s (its report says why; wye nightly)", run.ID, run.Status, run.Finished.Format(time.RFC3339))
		}
	}
}

func (g *gather) cdc(ctx context.Context) {
	s := &g.r.CDC
	if g.o.CDC == nil {
		s.Error = "not read"
		return
	}
	leader, ok, err := g.o.CDC.Leader(ctx)
	switch {
	case err != nil:
		s.Error = err.Error()
		g.problem("cdc: leader: %v", err)
	case !ok:
		g.problem("cdc: no reader holds the leader lock: no change is published (start wye cdc or wye run)")
	default:
		s.Leader = leader
	}
	cp, ok, err := g.o.CDC.Checkpoint(ctx)
	if err != nil {
		s.Error = err.Error()
		g.problem("cdc: checkpoint: %v", err)
		return
	}
	if !ok {
		s.Lag = "unknown: no checkpoint"
		g.problem("cdc: no checkpoint saved: cdc has not run on this control schema")
		return
	}
	s.Checkpoint, s.Epoch, s.Position = true, cp.Epoch, cp.Pos.String()
	head, server, err := g.o.CDC.Head(ctx)
	if err != nil {
		s.Lag = "unknown: " + err.Error()
		return
	}
	s.Head = head.String()
	switch {
	case server != cp.SourceID:
		s.Lag = fmt.Sprintf("unknown: the source is %q, the checkpoint's %q", server, cp.SourceID)
	case head.File == cp.Pos.File:
		s.LagBytes = int64(head.Pos) - int64(cp.Pos.Pos)
		s.Lag = fmt.Sprintf("%d bytes", max(s.LagBytes, 0))
	default:
		hs, _ := cdc.FileSeq(head.File)
		cs, _ := cdc.FileSeq(cp.Pos.File)
		s.Lag = fmt.Sprintf("%d binlog files", int64(hs)-int64(cs))
	}
}

func (g *gather) queues(ctx context.Context) {
	if g.o.Queues == nil || len(g.o.QueueNames) == 0 {
		return
	}
	depths, err := g.o.Queues.Depths(ctx, g.o.QueueNames)
	if err != nil {
		g.problem("broker: %v", err)
		return
	}
	for _, name := range g.o.QueueNames {
		d, ok := depths[name]
		if !ok {
			d = -1
		}
		g.r.Queues = append(g.r.Queues, Queue{Name: name, Depth: d})
		if name == g.o.Parked && d > 0 {
			g.problem("broker: %d %s parked in %s (wye parked list)", d, plural(d, "message"), name)
		}
	}
}

func (g *gather) writes(ctx context.Context) {
	if g.o.Writes == nil {
		return
	}
	items, err := g.o.Writes.Items(ctx)
	if err != nil {
		return // the indexer's endpoint is not reachable from here: the ledger says what it can
	}
	g.items = items
}

// failedResults are the results of wye_indexer_items_total that are a write the cluster missed.
var failedResults = []string{"retryable", "permanent", "dropped"}

// merge joins the parts: roles, ledger, failed writes, versions behind the master.
func (g *gather) merge() {
	r := g.r
	masters := 0
	var master *ClusterStatus
	for _, s := range r.Clusters {
		if role, ok := g.roles[s.Name]; ok {
			s.Role, s.Epoch = role.Role, role.Epoch
		}
		if s.Role == "master" {
			masters++
			master = s
		}
		if l, ok := g.ledger[s.Name]; ok {
			s.Ledger, s.LedgerOldest, s.LedgerRecent = l.Pending, l.Oldest, l.Recent
		}
		if s.Ledger > 0 {
			g.problem("cluster %s: %d %s in the repair ledger, the oldest missed %s ago (wye repair %s)", s.Name, s.Ledger,
				plural(int(s.Ledger), "id"), r.Time.Sub(s.LedgerOldest).Round(time.Second), s.Name)
		}
	}
	if masters != 1 {
		g.problem("%d clusters are master in cluster_roles, want exactly 1", masters)
	}
	r.FailedSource, r.FailedWindow = "ledger", g.o.Window.String()
	if g.items != nil {
		r.FailedSource, r.FailedWindow = "metrics", "since the indexer started"
		if p := g.o.Previous; p != nil && p.writes != nil {
			r.FailedWindow = r.Time.Sub(p.Time).Round(time.Second).String()
		}
		r.writes = g.items
	}
	for _, s := range r.Clusters {
		g.failed(s)
		if master == nil || s == master || !s.Reachable || !master.Reachable {
			s.Behind = "-"
			continue
		}
		s.Behind = g.behind(s, master)
	}
	r.Problems = append(r.Problems, g.problems...)
	slices.Sort(r.Problems)
	if r.Problems == nil {
		r.Problems = []string{}
	}
}

// failed fills the failed share of s: from the indexer's counters (the difference with the
// previous reading of a --watch), else the ledger's misses within the window (a count only).
func (g *gather) failed(s *ClusterStatus) {
	now := g.items[s.Name]
	if now == nil {
		s.Failed = float64(s.LedgerRecent)
		return
	}
	var prev map[string]float64
	if p := g.o.Previous; p != nil && p.writes != nil {
		prev = p.writes[s.Name]
	}
	var total, failed float64
	for result, n := range now {
		d := n - prev[result]
		total += d
		if slices.Contains(failedResults, result) {
			failed += d
		}
	}
	s.Failed = failed
	if total > 0 {
		share := failed / total
		s.FailedShare = &share
	}
}

// behind says how far s's highest version trails the master's, and makes it a problem past
// MaxBehind bytes of one binlog file or in an older epoch.
func (g *gather) behind(s, m *ClusterStatus) string {
	if s.MaxV >= m.MaxV {
		return "0"
	}
	sv, mv := cdc.Version(s.MaxV), cdc.Version(m.MaxV)
	switch {
	case sv.Epoch() < mv.Epoch():
		g.problem("cluster %s: its highest version is from epoch %d, the master's from epoch %d", s.Name, sv.Epoch(), mv.Epoch())
		return fmt.Sprintf("epoch %d < %d", sv.Epoch(), mv.Epoch())
	case sv.FileSeq() < mv.FileSeq():
		return fmt.Sprintf("%d binlog files", mv.FileSeq()-sv.FileSeq())
	}
	n := int64(mv.Pos()) - int64(sv.Pos())
	if n > g.o.MaxBehind {
		g.problem("cluster %s: %d bytes of binlog behind the master %s", s.Name, n, m.Name)
	}
	return fmt.Sprintf("%d bytes", n)
}

func errString(err error) string {
	if err == nil {
		return "not connected"
	}
	return err.Error()
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

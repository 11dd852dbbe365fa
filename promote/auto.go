package promote

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/internal/defaults"
)

// Defaults of the automatic failover (`wye promote --auto`); off unless started.
const (
	// DefaultAutoAfter is how long the master must be unavailable before a failover.
	DefaultAutoAfter = 2 * time.Minute
	// DefaultAutoEvery is how often the watchdog reads the master's health.
	DefaultAutoEvery = 5 * time.Second
)

// Decisions of the watchdog, as wye_promote_auto_decisions_total labels them.
const (
	DecisionPromoted = "promoted"
	DecisionDeclined = "declined"
)

// AutoMetrics are the watchdog's series.
type AutoMetrics struct {
	// Decisions is wye_promote_auto_decisions_total{decision}: failovers promoted or declined.
	Decisions *prometheus.CounterVec
	// MasterUnavailable is wye_promote_auto_master_unavailable_seconds: how long the master has
	// been unavailable (0 while it answers).
	MasterUnavailable prometheus.Gauge
}

// NewAutoMetrics creates the series and registers them with reg (nil: not registered).
func NewAutoMetrics(reg prometheus.Registerer) *AutoMetrics {
	m := &AutoMetrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_promote_auto_decisions_total",
			Help: "Automatic failover decisions once the master was unavailable long enough: promoted or declined (the log says why)."}, []string{"decision"}),
		MasterUnavailable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_promote_auto_master_unavailable_seconds",
			Help: "How long the master has been unavailable (unreachable or red), as the watchdog sees it; 0 while it answers."}),
	}
	if reg != nil {
		reg.MustRegister(m.Decisions, m.MasterUnavailable)
	}
	return m
}

// AutoOptions configure the watchdog. Options gives the clusters, the bounds, the reader switch
// and the adapters, as for a promote by hand; Target, DryRun, Force and Confirm are not used.
type AutoOptions struct {
	Options
	After time.Duration // DefaultAutoAfter
	Every time.Duration // DefaultAutoEvery
	// Held reports an error once this watchdog no longer holds its leader lock; nil: no lock.
	Held    func(ctx context.Context) error
	Logger  *slog.Logger
	Metrics *AutoMetrics
}

// Watch is the automatic failover (docs/architecture.md, "Promote"): every Every it reads the
// master and its health; once the master has been unavailable (unreachable or red) for After,
// it checks every slave on its own (reachable and green, no mapping drift, an empty repair
// ledger, its highest versions within MaxLag of the best slave's: the master cannot be compared
// with) and promotes the first passing slave in the configured order, then runs the reader
// switch. It never forces: within MinInterval of the last promote it declines. Every decision,
// taken or declined, is logged with its reason and counted. It returns when ctx is done.
func Watch(ctx context.Context, o AutoOptions) error {
	o.After = defaults.Positive(o.After, DefaultAutoAfter)
	o.Every = defaults.Positive(o.Every, DefaultAutoEvery)
	o.MinInterval = defaults.Positive(o.MinInterval, DefaultMinInterval)
	o.MaxLag = defaults.Positive(o.MaxLag, DefaultMaxLag)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	o.Metrics = cmp.Or(o.Metrics, NewAutoMetrics(nil))
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Exec != "" && o.Run == nil {
		return errors.New("promote: Exec without Run")
	}
	w := &watch{AutoOptions: o}
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		w.step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type watch struct {
	AutoOptions
	downSince time.Time
	last      string // the last declined reason logged, to log a repeated one once
}

// step is one look at the master, and a failover when it has been unavailable for After.
func (w *watch) step(ctx context.Context) {
	master, ok, err := w.Store.Master(ctx, w.Configured)
	if err != nil || !ok {
		w.Logger.Warn("automatic failover: cannot read the master", "err", err)
		return
	}
	health, err := w.Clusters.Health(ctx, master)
	if err == nil && health != Red {
		if !w.downSince.IsZero() {
			w.Logger.Info("automatic failover: the master answers again", "master", master, "health", health)
		}
		w.downSince, w.last = time.Time{}, ""
		w.Metrics.MasterUnavailable.Set(0)
		return
	}
	why := "health red"
	if err != nil {
		why = err.Error()
	}
	now := w.Now()
	if w.downSince.IsZero() {
		w.downSince = now
		w.Logger.Warn("automatic failover: the master is unavailable", "master", master, "reason", why, "failover_after", w.After)
	}
	down := now.Sub(w.downSince)
	w.Metrics.MasterUnavailable.Set(down.Seconds())
	if down < w.After {
		return
	}
	pick, checks, reasons := w.candidate(ctx, master)
	if pick == "" {
		w.decline(fmt.Sprintf("master %s unavailable for %v (%s) and no slave passes every check: %s",
			master, down.Round(time.Second), why, strings.Join(reasons, " | ")))
		return
	}
	if w.Held != nil {
		if err := w.Held(ctx); err != nil {
			w.decline("the watchdog lost its leader lock: " + err.Error())
			return
		}
	}
	b, _ := json.Marshal(checks)
	p := control.Promotion{Clusters: w.Configured, From: master, To: pick, MinGap: w.MinInterval,
		Who: w.Who + " (automatic failover)", Started: now, Checks: b}
	done, err := switchRoles(ctx, w.Options, p, io.Discard)
	if err != nil {
		w.decline(fmt.Sprintf("promote %s (master %s unavailable for %v): %v", pick, master, down.Round(time.Second), err))
		return
	}
	w.Metrics.Decisions.WithLabelValues(DecisionPromoted).Inc()
	w.Logger.Warn("automatic failover: promoted", "from", master, "to", pick, "epoch", done.Epoch, "journal", done.Journal,
		"master_unavailable", down.Round(time.Second), "reason", why, "readers_switched", w.Exec != "",
		"passed_over", cmp.Or(strings.Join(reasons, " | "), "none"))
	w.downSince, w.last = time.Time{}, ""
	w.Metrics.MasterUnavailable.Set(0)
}

func (w *watch) decline(reason string) {
	w.Metrics.Decisions.WithLabelValues(DecisionDeclined).Inc()
	if reason != w.last {
		w.Logger.Warn("automatic failover: declined", "reason", reason)
		w.last = reason
	}
}

// candidate is the first slave, in the configured order, that passes every check on its own
// and whose highest versions are within MaxLag of the best slave's; reasons say why the
// others did not pass.
func (w *watch) candidate(ctx context.Context, master string) (string, []Check, []string) {
	var passing []string
	var reasons []string
	checksOf := map[string][]Check{}
	versions := map[string]map[string]int64{}
	for _, s := range w.Configured {
		if s == master {
			continue
		}
		checks, _ := slaveChecks(ctx, w.Options, s)
		if failed := failures(checks); failed != "" {
			reasons = append(reasons, s+": "+failed)
			continue
		}
		v, err := w.Clusters.MaxVersions(ctx, s)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: lag: read the highest versions: %v", s, err))
			continue
		}
		passing, checksOf[s], versions[s] = append(passing, s), checks, v
	}
	best := map[string]int64{}
	for _, v := range versions {
		for entity, n := range v {
			best[entity] = max(best[entity], n)
		}
	}
	for _, s := range passing {
		var behind []string
		for _, entity := range slices.Sorted(maps.Keys(best)) {
			if d := best[entity] - versions[s][entity]; d > w.MaxLag {
				behind = append(behind, fmt.Sprintf("%s %d behind", entity, d))
			}
		}
		if len(behind) > 0 {
			reasons = append(reasons, fmt.Sprintf("%s: lag: behind the best slave by more than promote.max_lag %d: %s", s, w.MaxLag, strings.Join(behind, ", ")))
			continue
		}
		return s, append(checksOf[s], Check{Name: "lag", OK: true, Detail: "within promote.max_lag of the best slave"}), reasons
	}
	return "", nil, reasons
}

// failures joins the failed checks, "" when every one passed.
func failures(checks []Check) string {
	var out []string
	for _, c := range checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	return strings.Join(out, "; ")
}

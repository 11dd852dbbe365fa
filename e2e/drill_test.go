package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTheMigrationDrillLosesNoChangeParksNothingAndLeavesEveryClusterEqualToMySQL runs the
// migration drill (examples/drill, `make drill`; issue 17) on the real stack: es7 loaded as the
// master, es8 and os2 joined and loaded, the clusters and the query corpus compared, a mapping
// bump, es8 promoted, os2 cut off for 60 s and repaired, es7 promoted back, os2 promoted, the
// stream drained — under a workload from the first load to the end. It prevents the parts from
// working alone but not together: the drill exits 1 when any step or check fails (a diff
// against MySQL, a parked message, `wye status` unhealthy, a cluster not equal to MySQL at
// the end), and its output names the step.
func TestTheMigrationDrillLosesNoChangeParksNothingAndLeavesEveryClusterEqualToMySQL(t *testing.T) {
	for _, c := range clusterNames {
		requireReachable(t, c, strings.TrimPrefix(clusterURL(t, c), "http://"))
	}
	requireReachable(t, "mysql", mysqlAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "drill")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./examples/drill")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/drill: %v\n%s", err, out)
	}
	began := time.Now()
	cmd := exec.CommandContext(ctx, bin, "--wye", wyeBinary(t), "--repo", "..")
	cmd.Env = append(cmd.Environ(), "WYE_DRILL_MYSQL="+mysqlAddr, "WYE_DRILL_AMQP_URL="+amqpURL,
		"WYE_DRILL_APP_USER="+mysqlAppUser, "WYE_DRILL_APP_PASSWORD="+mysqlAppPass,
		"WYE_DRILL_SOURCE_USER="+mysqlSrcUser, "WYE_DRILL_SOURCE_PASSWORD="+mysqlSrcPass,
		"WYE_DRILL_ES7="+clusterURL(t, "es7"), "WYE_DRILL_ES8="+clusterURL(t, "es8"), "WYE_DRILL_OS2="+clusterURL(t, "os2"))
	out, err := cmd.CombinedOutput()
	t.Logf("drill (%v):\n%s", time.Since(began).Round(time.Second), out)
	if err != nil {
		t.Fatalf("the drill failed: %v", err)
	}
	if !strings.Contains(string(out), "drill passed") {
		t.Fatal("the drill exited 0 without saying it passed")
	}
}

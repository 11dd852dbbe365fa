package main

import (
	"bytes"
	"strings"
	"testing"
)

// A mistyped `wye promote` must exit 2 (usage) before it touches the control schema or a
// cluster, and one without a terminal must not switch the master unless told --yes.
func TestPromoteUsageMistakesExitTwoBeforeAnyCheck(t *testing.T) {
	setDevStackSecrets(t)
	t.Setenv("WYE_CONTROL_PORT", "1") // were a case to get past its usage check, it reaches nothing
	for _, args := range [][]string{
		{"promote"},
		{"promote", "es8", "es7"},
		{"promote", "es9", "--yes"},
		{"promote", "es8"}, // no terminal (stdin is a buffer) and no --yes
		{"promote", "es8", "--yes", "-c", "no-such-file.yaml"},
		{"promote", "--auto", "es8"},
		{"promote", "--auto", "--force"},
	} {
		args = append(args, "--log-level", "error")
		if !strings.Contains(strings.Join(args, " "), " -c ") {
			args = append(args, "-c", "../../wye.example.yaml")
		}
		root, _ := newRootCmd()
		root.SetIn(&bytes.Buffer{})
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(args)
		if code := exitCode(root.Execute()); code != exitUsage {
			t.Errorf("wye %s: exit %d, want %d", strings.Join(args, " "), code, exitUsage)
		}
	}
}

package main

import (
	"strings"
	"testing"
)

func TestRepairRateTakesNOrNPerSecondAndRefusesTheRest(t *testing.T) {
	for in, want := range map[string]float64{"500": 500, "500/s": 500, " 2.5/s": 2.5, "0": -1, "0/s": -1} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-3/s", "5/m"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q): no error", in)
		}
	}
}

func TestRepairWithoutAClusterOrWithBothIsAUsageError(t *testing.T) {
	cases := map[string][]string{"name one cluster": {"repair"}, "or --all": {"repair", "es8", "--all"}, "--rate": {"repair", "es8", "--rate", "fast"}}
	for want, args := range cases {
		root, _ := newRootCmd()
		root.SetArgs(append(args, "-c", "../../wye.example.yaml"))
		root.SetOut(discard{})
		root.SetErr(discard{})
		err := root.Execute()
		if code := exitCode(err); code != exitUsage || !strings.Contains(err.Error(), want) {
			t.Errorf("wye %v: exit %d (%v), want %d naming %q", args, code, err, exitUsage, want)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

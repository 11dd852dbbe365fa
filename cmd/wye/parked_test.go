package main

import (
	"net"
	"strings"
	"testing"
)

// A mistyped `wye parked` command must exit 2 (usage) before it touches the broker, and one
// the broker cannot serve must exit 1: scripts tell "fix the command" from "try again".
func TestParkedUsageMistakesExitTwoAndBrokerFailuresOne(t *testing.T) {
	setDevStackSecrets(t)
	for _, args := range [][]string{
		{"parked", "show", "0"},
		{"parked", "show", "not-an-id"},
		{"parked", "show"},
		{"parked", "list", "extra"},
		{"parked", "replay", "--older-than", "soon"},
		{"parked", "replay", "--older-than", "-1h"},
		{"parked", "list", "--limit", "0"},
		{"parked", "list", "-c", "no-such-file.yaml"},
	} {
		args = append(args, "--log-level", "error")
		if !strings.Contains(strings.Join(args, " "), " -c ") {
			args = append(args, "-c", "../../wye.example.yaml")
		}
		if code, _, stderr := runWye(t, args...); code != exitUsage {
			t.Errorf("wye %s: exit %d, want %d; stderr: %s", strings.Join(args, " "), code, exitUsage, stderr)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0") // a port that refuses once closed
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("WYE_AMQP_URL", "amqp://wye@"+addr+"/")
	for _, args := range [][]string{{"parked", "list"}, {"parked", "show", "1"}, {"parked", "replay", "--dry-run"}} {
		args = append(args, "-c", "../../wye.example.yaml")
		if code, _, stderr := runWye(t, args...); code != exitFailure {
			t.Errorf("wye %s with no broker: exit %d, want %d; stderr: %s", strings.Join(args, " "), code, exitFailure, stderr)
		}
	}
}

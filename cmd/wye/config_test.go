package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// runWye runs the root command as the binary would and returns its exit code and output.
func runWye(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	root, _ := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	return exitCode(root.Execute()), out.String(), errOut.String()
}

// unsetenv removes k for the duration of the test (t.Setenv restores it afterwards).
func unsetenv(t *testing.T, k string) {
	t.Setenv(k, "")
	os.Unsetenv(k)
}

func setDevStackSecrets(t *testing.T) {
	t.Setenv("WYE_SOURCE_PASSWORD", "wye-source")
	t.Setenv("WYE_CONTROL_PASSWORD", "wye-control")
	t.Setenv("WYE_AMQP_PASSWORD", "wye-amqp")
}

func TestConfigCheckPrintsEveryFaultAndExitsUsage(t *testing.T) {
	unsetenv(t, "WYE_SOURCE_PASSWORD")
	code, stdout, stderr := runWye(t, "config", "check", "-c", "../../config/testdata/bad.yaml")
	if code != exitUsage {
		t.Errorf("exit code = %d, want %d", code, exitUsage)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	want := []string{
		`source.password_env: "WYE_SOURCE_PASSWORD": environment variable is not set`,
		`control.databse: unknown key (did you mean "database"?)`,
		`amqp.url: "http://wye@127.0.0.1:5672/": unsupported scheme (want amqp or amqps)`,
		`clusters: must not be empty`,
	}
	if got := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, strings.Join(want, "\n"))
	}
}

func TestConfigCheckAcceptsTheExampleFile(t *testing.T) {
	setDevStackSecrets(t)
	code, stdout, stderr := runWye(t, "config", "check", "-c", "../../wye.example.yaml")
	if code != exitOK {
		t.Fatalf("exit code = %d, want 0; stderr:\n%s", code, stderr)
	}
	want := "ok: ../../wye.example.yaml: 3 clusters (master: es7; slaves: es8, os2), 1 entity, " +
		"source mariadb 127.0.0.1:3306 (server_id 4101), control 127.0.0.1:3306/wye, amqp 127.0.0.1:5672\n"
	if stdout != want {
		t.Errorf("stdout = %q\nwant     %q", stdout, want)
	}
}

func TestConfigCheckPrintShowsNoSecret(t *testing.T) {
	setDevStackSecrets(t)
	code, stdout, stderr := runWye(t, "--log-level", "debug", "config", "check", "--print", "-c", "../../wye.example.yaml")
	if code != exitOK {
		t.Fatalf("exit code = %d, want 0; stderr:\n%s", code, stderr)
	}
	for _, secret := range []string{"wye-source", "wye-control", "wye-amqp"} {
		if strings.Contains(stdout, secret) {
			t.Errorf("--print leaks %q:\n%s", secret, stdout)
		}
	}
	for _, want := range []string{"password: '***'", "password_env: WYE_SOURCE_PASSWORD", "level: debug", "bulk: 1m0s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--print output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestConfigCheckMissingFileExitsUsage(t *testing.T) {
	code, _, _ := runWye(t, "config", "check", "-c", "testdata/does-not-exist.yaml")
	if code != exitUsage {
		t.Errorf("exit code = %d, want %d", code, exitUsage)
	}
}

package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// fullEnv resolves every secret of testdata/full.yaml; fullSecrets are all the values that
// must never appear in printed output.
var (
	fullEnv     = env{"WYE_SOURCE_PASSWORD": "src-env-secret", "WYE_ES7_PASSWORD": "es7-env-secret", "WYE_ES8_API_KEY": "es8-env-secret"}
	fullSecrets = []string{"src-env-secret", "es7-env-secret", "es8-env-secret",
		"control-literal-secret", "amqp-file-secret", "os2-literal-token"}
)

func TestPrintRedactsEverySecret(t *testing.T) {
	c, err := Load("testdata/full.yaml", Options{LookupEnv: fullEnv.lookup})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	// The secrets did resolve: redaction is not just emptiness.
	if c.AMQP.Password.Reveal() != "amqp-file-secret" || c.Clusters[2].Auth.BearerToken.Reveal() != "os2-literal-token" {
		t.Fatalf("secrets not resolved: %q %q", c.AMQP.Password.Reveal(), c.Clusters[2].Auth.BearerToken.Reveal())
	}
	got, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "YAML()", string(got))
	golden := "testdata/full.print.golden"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./config -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("YAML() differs from %s (go test ./config -update rewrites it):\n%s", golden, got)
	}
	if n := strings.Count(string(got), "'***'"); n != len(fullSecrets) {
		t.Errorf("%d redacted values in the output, want %d", n, len(fullSecrets))
	}
}

func TestSecretDoesNotLeakThroughAnyPrinter(t *testing.T) {
	c, err := Load("testdata/full.yaml", Options{LookupEnv: fullEnv.lookup})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	holder := struct {
		Exported Secret
		hidden   Secret // fmt prints unexported fields by reflection, without calling methods
	}{NewSecret("src-env-secret"), NewSecret("es7-env-secret")}

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s"} {
		assertNoSecret(t, verb+" of Config", fmt.Sprintf(verb, *c))
		assertNoSecret(t, verb+" of *Config", fmt.Sprintf(verb, c))
		assertNoSecret(t, verb+" of a Secret", fmt.Sprintf(verb, c.Source.Password))
		assertNoSecret(t, verb+" of a struct holding Secrets", fmt.Sprintf(verb, holder))
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "json.Marshal", string(js))
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "yaml.Marshal", string(y))
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("loaded", "config", c, "password", c.Source.Password, "source", c.Source)
	}
	assertNoSecret(t, "slog", logs.String())
	if !strings.Contains(logs.String(), "***") {
		t.Errorf("slog output shows no redacted value:\n%s", logs.String())
	}
}

func TestEmptySecretPrintsEmpty(t *testing.T) {
	var s Secret
	if got := fmt.Sprintf("%v|%s|%q", s, NewSecret(""), s); got != `||""` {
		t.Errorf("empty secret printed as %q", got)
	}
	if b, _ := json.Marshal(s); string(b) != `""` {
		t.Errorf("empty secret as JSON: %s", b)
	}
	if got := fmt.Sprint(NewSecret("x")); got != "***" {
		t.Errorf("secret printed as %q, want ***", got)
	}
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range fullSecrets {
		if strings.Contains(out, s) {
			t.Errorf("%s leaks %q:\n%s", what, s, out)
		}
	}
}

// TestClusterOnlyCommandLoadsWithoutTheDatabaseAndBrokerPasswords prevents `wye mapping plan`
// from asking for passwords of servers it never contacts (issue 18): with NeedClusters an
// unset source password variable is no fault, the clusters' secrets still resolve, and a
// missing cluster secret is still reported.
func TestClusterOnlyCommandLoadsWithoutTheDatabaseAndBrokerPasswords(t *testing.T) {
	clustersOnly := env{"WYE_ES7_PASSWORD": "es7-env-secret", "WYE_ES8_API_KEY": "es8-env-secret"}
	if _, err := Load("testdata/full.yaml", Options{LookupEnv: clustersOnly.lookup}); err == nil ||
		!strings.Contains(err.Error(), "source.password_env") {
		t.Fatalf("every section needed: want the unset source password reported, got %v", err)
	}
	c, err := Load("testdata/full.yaml", Options{LookupEnv: clustersOnly.lookup, Need: NeedClusters})
	if err != nil {
		t.Fatalf("NeedClusters: %v", err)
	}
	if c.Clusters[0].Auth.Password.Reveal() != "es7-env-secret" || !c.Source.Password.IsZero() || !c.AMQP.Password.IsZero() {
		t.Fatalf("NeedClusters resolved the wrong secrets: es7 %q, source set %v, amqp set %v",
			c.Clusters[0].Auth.Password.Reveal(), !c.Source.Password.IsZero(), !c.AMQP.Password.IsZero())
	}
	if _, err := Load("testdata/full.yaml", Options{LookupEnv: env{}.lookup, Need: NeedClusters}); err == nil ||
		!strings.Contains(err.Error(), "clusters[0].auth.password_env") || strings.Contains(err.Error(), "source.") {
		t.Fatalf("NeedClusters without the cluster secrets: want clusters[0].auth.password_env alone, got %v", err)
	}
	if _, err := Load("testdata/full.yaml", Options{LookupEnv: env{}.lookup, Need: NeedNoSecret}); err != nil {
		t.Fatalf("NeedNoSecret: %v", err)
	}
}

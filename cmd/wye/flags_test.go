package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wyehq/wye/config"
)

// baseConfig is valid and sets no tuning key.
const baseConfig = `
source: {flavor: mariadb, host: 127.0.0.1, user: wye_source, password_env: WYE_TEST_PW, server_id: 4101}
control: {host: 127.0.0.1, user: wye, password_env: WYE_TEST_PW}
amqp: {url: "amqp://wye@127.0.0.1:5672/", password_env: WYE_TEST_PW}
clusters: [{name: es7, urls: ["http://127.0.0.1:9217"], role: master, mapping: v1}]
`

// tunedConfig sets tuning keys that the flags below also set.
const tunedConfig = baseConfig + `
cdc: {name: from-file, window: 64, tables: [catalog.a]}
indexer: {batch_size: 100, batch_wait: 1s, retry_delays: [3s], indices_ttl: 3s}
mapping: {dir: /from/file, index_prefix: file_}
metrics: {listen: "127.0.0.1:1"}
log: {level: warn}
`

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	t.Setenv("WYE_TEST_PW", "x")
	path := filepath.Join(t.TempDir(), "wye.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadAs parses args as the command line would (the command path, then its flags) and loads
// the configuration the way that command's RunE does, without running it.
func loadAs(t *testing.T, args ...string) *config.Config {
	t.Helper()
	root, g := newRootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	var faults bytes.Buffer
	cfg, err := checkConfig(cmd, g, &faults)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, faults.String())
	}
	return cfg
}

// TestFlagOverridesTheFileOnlyWhenGiven prevents both ways a flag can betray a ConfigMap: a
// flag left out replacing the file's value with the flag's default, and a flag given being
// ignored in favour of the file.
func TestFlagOverridesTheFileOnlyWhenGiven(t *testing.T) {
	file := writeConfig(t, tunedConfig)
	for _, tc := range []struct {
		name  string
		args  []string
		check func(c *config.Config) bool
	}{
		{"indexer, no flag: the file's values", []string{"indexer"}, func(c *config.Config) bool {
			return c.Indexer.BatchSize == 100 && c.Indexer.BatchWait == time.Second &&
				reflect.DeepEqual(c.Indexer.RetryDelays, []time.Duration{3 * time.Second}) && c.Indexer.IndicesTTL == 3*time.Second &&
				c.Metrics.Listen == "127.0.0.1:1" && c.Log.Level == "warn" && c.AMQP.Parked == "wye.parked"
		}},
		{"indexer, flags given win; the others keep the file's", []string{"indexer", "--batch-size", "7", "--retry-delays", "1s,2s",
			"--parked-queue", "p", "--metrics-listen", "", "--log-level", "debug"}, func(c *config.Config) bool {
			return c.Indexer.BatchSize == 7 && c.Indexer.BatchWait == time.Second &&
				reflect.DeepEqual(c.Indexer.RetryDelays, []time.Duration{time.Second, 2 * time.Second}) &&
				c.Indexer.IndicesTTL == 3*time.Second && c.AMQP.Parked == "p" && c.Metrics.Listen == "" && c.Log.Level == "debug"
		}},
		{"indexer, the deprecated --targets-ttl still sets indices_ttl", []string{"indexer", "--targets-ttl", "5s"}, func(c *config.Config) bool {
			return c.Indexer.IndicesTTL == 5*time.Second
		}},
		{"indexer, --indices-ttl wins over --targets-ttl", []string{"indexer", "--indices-ttl", "6s", "--targets-ttl", "5s"}, func(c *config.Config) bool {
			return c.Indexer.IndicesTTL == 6*time.Second
		}},
		{"cdc, no flag", []string{"cdc"}, func(c *config.Config) bool {
			return c.CDC.Name == "from-file" && c.CDC.Window == 64 && reflect.DeepEqual(c.CDC.Tables, []string{"catalog.a"})
		}},
		{"cdc, flags given", []string{"cdc", "--window", "8", "--table", "catalog.b", "--table", "catalog.c", "--delivery-limit", "20",
			"--checkpoint-interval", "1s"}, func(c *config.Config) bool {
			return c.CDC.Name == "from-file" && c.CDC.Window == 8 && reflect.DeepEqual(c.CDC.Tables, []string{"catalog.b", "catalog.c"}) &&
				c.AMQP.DeliveryLimit == 20 && c.CDC.CheckpointInterval == time.Second
		}},
		{"cdc bench, --window", []string{"cdc", "bench", "--window", "9"}, func(c *config.Config) bool {
			return c.CDC.Window == 9 && reflect.DeepEqual(c.CDC.Tables, []string{"catalog.a"})
		}},
		{"run, --name; the file's cdc and indexer keys", []string{"run", "--name", "cli"}, func(c *config.Config) bool {
			return c.CDC.Name == "cli" && c.CDC.Window == 64 && c.Indexer.BatchSize == 100
		}},
		{"mapping, a persistent flag of the parent", []string{"mapping", "plan", "--mappings", "/cli"}, func(c *config.Config) bool {
			return c.Mapping.Dir == "/cli" && c.Mapping.IndexPrefix == "file_" && c.Mapping.VersionField == "wye_version"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := loadAs(t, append(tc.args, "-c", file)...)
			if !tc.check(c) {
				t.Errorf("%v: cdc=%+v indexer=%+v mapping=%+v amqp=%+v metrics=%+v log=%+v",
					tc.args, c.CDC, c.Indexer, c.Mapping, c.AMQP, c.Metrics, c.Log)
			}
		})
	}
}

// TestUnsetFlagDoesNotOverrideTheEnvironment prevents a flag's default from beating a WYE_*
// variable: without the flag, the variable decides.
func TestUnsetFlagDoesNotOverrideTheEnvironment(t *testing.T) {
	file := writeConfig(t, baseConfig)
	t.Setenv("WYE_CDC_WINDOW", "33")
	t.Setenv("WYE_INDEXER_RETRY_DELAYS", "4s,8s")
	t.Setenv("WYE_MAPPINGS", "/old/env") // wye mapping's variable before mapping.dir
	if c := loadAs(t, "cdc", "-c", file); c.CDC.Window != 33 {
		t.Errorf("cdc.window = %d, want $WYE_CDC_WINDOW's 33", c.CDC.Window)
	}
	if c := loadAs(t, "indexer", "-c", file); !reflect.DeepEqual(c.Indexer.RetryDelays, []time.Duration{4 * time.Second, 8 * time.Second}) {
		t.Errorf("indexer.retry_delays = %v, want $WYE_INDEXER_RETRY_DELAYS's", c.Indexer.RetryDelays)
	}
	if c := loadAs(t, "mapping", "verify", "-c", file); c.Mapping.Dir != "/old/env" {
		t.Errorf("mapping.dir = %q, want $WYE_MAPPINGS's", c.Mapping.Dir)
	}
	if c := loadAs(t, "cdc", "--window", "5", "-c", file); c.CDC.Window != 5 {
		t.Errorf("cdc.window = %d, want the flag's 5 over the environment", c.CDC.Window)
	}
}

// TestEveryKeyFlagIsTheKeysDefault prevents a flag bound to a key that cannot be overridden
// (the command would fail only when the flag is used) or to the wrong key (its --help default
// would be another key's): each flag's default, given as the override of its key, must load
// and change nothing.
func TestEveryKeyFlagIsTheKeysDefault(t *testing.T) {
	file := writeConfig(t, baseConfig)
	base, err := config.Load(file, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := base.YAML()
	root, _ := newRootCmd()
	bound := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			key := f.Annotations[keyAnnotation]
			if len(key) != 1 {
				return
			}
			bound++
			cfg, err := config.Load(file, config.Options{Overrides: map[string]string{key[0]: flagValue(f)}})
			if err != nil {
				t.Errorf("%s --%s (key %s): its default does not load: %v", c.CommandPath(), f.Name, key[0], err)
				return
			}
			if got, _ := cfg.YAML(); !bytes.Equal(got, want) {
				t.Errorf("%s --%s: its default %q is not the default of %s", c.CommandPath(), f.Name, flagValue(f), key[0])
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if bound < 20 {
		t.Errorf("only %d flags are bound to keys: the walk missed commands", bound)
	}
}

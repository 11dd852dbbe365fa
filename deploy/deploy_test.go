package deploy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/nightly"
)

// The deployment material checked without a cluster: kustomize renders every overlay (in
// process, krusty), every object decodes strictly into its API type, the objects are asserted on what matters (probes on endpoints wye serves,
// real subcommands and flags, the security context, no inline secret, the shipped configuration
// passing `wye config check`), the alerts run through promtool, and every metric name in the
// alerts and the dashboard is one the code registers.

var update = flag.Bool("update", false, "rewrite prometheus/alerts.yaml from prometheus/rules.yaml")

// wyeBin is the wye binary built once for the tests.
var wyeBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "wye-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wyeBin = filepath.Join(dir, "wye")
	if out, err := exec.Command("go", "build", "-o", wyeBin, "../cmd/wye").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build wye: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tool returns the path of a command the tests need; missing, it fails the test (never skips).
func tool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %s", name, install)
	}
	return p
}

// ---------------------------------------------------------------- kustomize output

type object = map[string]any

// rendered caches the kustomize output per directory.
var rendered sync.Map

// render builds the kustomization in dir in process (krusty: what `kubectl kustomize` runs),
// once, and returns a fresh copy of its objects.
func render(t *testing.T, dir string) []object {
	t.Helper()
	out, ok := rendered.Load(dir)
	if !ok {
		res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		b, err := res.AsYaml()
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		rendered.Store(dir, b)
		out = b
	}
	dec := yaml.NewDecoder(bytes.NewReader(out.([]byte)))
	var objs []object
	for {
		var o object
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode the output of kustomize build %s: %v", dir, err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

// get walks obj along path (map keys, or list indices as ints); nil when absent.
func get(obj any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := obj.(map[string]any)
			if !ok {
				return nil
			}
			obj = m[k]
		case int:
			l, ok := obj.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			obj = l[k]
		}
	}
	return obj
}

func str(obj any, path ...any) string { s, _ := get(obj, path...).(string); return s }
func list(obj any, path ...any) []any { l, _ := get(obj, path...).([]any); return l }

func kindName(o object) string { return str(o, "kind") + "/" + str(o, "metadata", "name") }

func find(objs []object, kind, namePrefix string) []object {
	var out []object
	for _, o := range objs {
		if str(o, "kind") == kind && strings.HasPrefix(str(o, "metadata", "name"), namePrefix) {
			out = append(out, o)
		}
	}
	return out
}

func one(t *testing.T, objs []object, kind, namePrefix string) object {
	t.Helper()
	found := find(objs, kind, namePrefix)
	if len(found) != 1 {
		t.Fatalf("want one %s %s*, found %d", kind, namePrefix, len(found))
	}
	return found[0]
}

// podSpec returns the pod template spec of a workload (nil for other kinds).
func podSpec(o object) object {
	var spec any
	switch str(o, "kind") {
	case "Deployment", "Job":
		spec = get(o, "spec", "template", "spec")
	case "CronJob":
		spec = get(o, "spec", "jobTemplate", "spec", "template", "spec")
	}
	m, _ := spec.(map[string]any)
	return m
}

// ---------------------------------------------------------------- checks of one workload

// served are the HTTP paths wye's metrics endpoint answers (cmd/wye/cdc.go serveMetrics).
var served = []string{"/healthz", "/readyz", "/metrics"}

// checkWorkload returns every fault of one workload: pod and container security context,
// resources, probes on the endpoints wye serves at the port it listens on, a command line wye
// accepts, and secrets only by reference.
func checkWorkload(o object) []string {
	var faults []string
	fault := func(format string, args ...any) {
		faults = append(faults, kindName(o)+": "+fmt.Sprintf(format, args...))
	}
	pod := podSpec(o)
	if pod == nil {
		return []string{kindName(o) + ": no pod template"}
	}
	if get(pod, "securityContext", "runAsNonRoot") != true {
		fault("pod securityContext.runAsNonRoot is not true")
	}
	if str(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		fault("pod securityContext.seccompProfile.type is not RuntimeDefault")
	}
	for _, c := range list(pod, "containers") {
		name := str(c, "name")
		sc := get(c, "securityContext")
		if get(sc, "allowPrivilegeEscalation") != false {
			fault("container %s: allowPrivilegeEscalation is not false", name)
		}
		if get(sc, "readOnlyRootFilesystem") != true {
			fault("container %s: readOnlyRootFilesystem is not true", name)
		}
		if get(sc, "runAsNonRoot") != true {
			fault("container %s: runAsNonRoot is not true", name)
		}
		if drop := list(sc, "capabilities", "drop"); len(drop) != 1 || drop[0] != "ALL" {
			fault("container %s: capabilities.drop is %v, want [ALL]", name, drop)
		}
		if str(c, "resources", "requests", "cpu") == "" || str(c, "resources", "requests", "memory") == "" ||
			str(c, "resources", "limits", "memory") == "" {
			fault("container %s: resources want requests.cpu, requests.memory and limits.memory", name)
		}
		if str(c, "image") == "" {
			fault("container %s: no image", name)
		}
		args := strs(list(c, "args"))
		if msg := checkCommandLine(args); msg != "" {
			fault("container %s: %s", name, msg)
		}
		faults = append(faults, prefixed(kindName(o)+": container "+name+": ", checkProbes(c, args))...)
		for _, e := range list(c, "env") {
			if _, literal := get(e, "value").(string); literal && secretName.MatchString(str(e, "name")) {
				fault("container %s: env %s holds a literal value: reference a Secret", name, str(e, "name"))
			}
		}
	}
	return faults
}

var secretName = regexp.MustCompile(`(?i)pass|secret|token|api_?key|credential`)

func strs(l []any) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = fmt.Sprint(v)
	}
	return out
}

func prefixed(prefix string, msgs []string) []string {
	for i := range msgs {
		msgs[i] = prefix + msgs[i]
	}
	return msgs
}

// checkCommandLine runs `wye ARGS --help`: cobra refuses an unknown subcommand or flag before it
// prints help, so exit 0 and a usage line naming the subcommand mean both are real.
func checkCommandLine(args []string) string {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Sprintf("args %q name no subcommand", args)
	}
	out, err := exec.Command(wyeBin, append(slices.Clone(args), "--help")...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("wye %s: %v: %s", strings.Join(args, " "), err, firstLine(out))
	}
	var sub []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		sub = append(sub, a)
	}
	// The usage line may name arguments between the subcommand and its flags ("wye repair
	// <cluster> | --all [flags]").
	want := regexp.MustCompile(`(?m)^  wye ` + regexp.QuoteMeta(strings.Join(sub, " ")) + `( [^\n]*)? \[flags\]$`)
	if !want.Match(out) {
		return fmt.Sprintf("wye %s --help does not show %q: not a runnable subcommand", strings.Join(args, " "), want)
	}
	return ""
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// checkProbes requires every httpGet probe to ask a path wye serves on the port wye listens on
// (--metrics-listen), by name or number; a long-running command must have liveness (and the
// Deployments readiness) probes.
func checkProbes(c any, args []string) []string {
	var faults []string
	listen := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--metrics-listen="); ok {
			listen = v
		}
	}
	port := ""
	if listen != "" {
		_, port, _ = strings.Cut(listen, ":")
	}
	ports := map[string]string{} // name -> containerPort
	for _, p := range list(c, "ports") {
		ports[str(p, "name")] = fmt.Sprint(get(p, "containerPort"))
	}
	for _, kind := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		probe := get(c, kind)
		if probe == nil {
			continue
		}
		path := str(probe, "httpGet", "path")
		if !slices.Contains(served, path) {
			faults = append(faults, fmt.Sprintf("%s path %q is not served by wye (%v)", kind, path, served))
		}
		p := fmt.Sprint(get(probe, "httpGet", "port"))
		if n, ok := ports[p]; ok {
			p = n
		}
		if port == "" || p != port {
			faults = append(faults, fmt.Sprintf("%s port %s is not the metrics port wye listens on (--metrics-listen=%q)", kind, p, listen))
		}
	}
	long := len(args) > 0 && (args[0] == "cdc" || args[0] == "indexer" || args[0] == "run" || args[0] == "nightly" ||
		args[0] == "promote" && slices.Contains(args, "--auto"))
	if long && get(c, "livenessProbe") == nil {
		faults = append(faults, "no livenessProbe on a long-running command")
	}
	return faults
}

// ---------------------------------------------------------------- the overlays

var kustomizations = []string{"kubernetes/base", "kubernetes/overlays/dev", "kubernetes/overlays/production"}

func workloads(objs []object) []object {
	var out []object
	for _, o := range objs {
		if podSpec(o) != nil {
			out = append(out, o)
		}
	}
	return out
}

func TestEveryWorkloadIsLockedDownProbedAndRunsARealCommand(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			ws := workloads(objs)
			if len(ws) != 6 {
				t.Fatalf("want 6 workloads (cdc, indexer, nightly, mapping-apply, diff-docs, repair), got %d", len(ws))
			}
			for _, w := range ws {
				for _, f := range checkWorkload(w) {
					t.Error(f)
				}
			}
		})
	}
}

// The checks catch what they are for: a probe path wye does not serve, a port it does not
// listen on, a flag or a subcommand that does not exist, a privileged container, a literal
// password.
func TestWorkloadChecksRejectWhatWyeWouldNotRun(t *testing.T) {
	good := one(t, render(t, "kubernetes/base"), "Deployment", "wye-indexer")
	if f := checkWorkload(good); len(f) > 0 {
		t.Fatalf("the base indexer is not clean: %v", f)
	}
	for _, tc := range []struct {
		name, want string
		edit       func(c map[string]any)
	}{
		{"probe path", `path "/health" is not served`, func(c map[string]any) {
			c["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)["path"] = "/health"
		}},
		{"probe port", "is not the metrics port", func(c map[string]any) {
			c["livenessProbe"].(map[string]any)["httpGet"].(map[string]any)["port"] = 8080
		}},
		{"unknown flag", "unknown flag: --batch-sise", func(c map[string]any) {
			c["args"] = append(c["args"].([]any), "--batch-sise=10")
		}},
		{"unknown subcommand", "unknown command", func(c map[string]any) {
			c["args"].([]any)[0] = "indexr"
		}},
		{"a group, not a command", "not a runnable subcommand", func(c map[string]any) {
			c["args"] = []any{"mapping"}
		}},
		{"privilege escalation", "allowPrivilegeEscalation is not false", func(c map[string]any) {
			c["securityContext"].(map[string]any)["allowPrivilegeEscalation"] = true
		}},
		{"capabilities", "capabilities.drop", func(c map[string]any) {
			c["securityContext"].(map[string]any)["capabilities"] = map[string]any{"drop": []any{"NET_RAW"}}
		}},
		{"literal secret", "holds a literal value", func(c map[string]any) {
			c["env"] = append(c["env"].([]any), map[string]any{"name": "WYE_SOURCE_PASSWORD", "value": "hunter2"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := one(t, render(t, "kubernetes/base"), "Deployment", "wye-indexer")
			tc.edit(list(podSpec(bad), "containers")[0].(map[string]any))
			faults := strings.Join(checkWorkload(bad), "\n")
			if !strings.Contains(faults, tc.want) {
				t.Fatalf("want a fault containing %q, got:\n%s", tc.want, faults)
			}
		})
	}
}

// secretKeys are the keys of the Secret wye-credentials that the workloads mount.
var secretKeys = []string{"source-password", "control-password", "amqp-password"}

func TestShippedConfigurationPassesConfigCheckWithSecretsOnlyAsMountedFiles(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			cm := one(t, objs, "ConfigMap", "wye-config")
			text := str(cm, "data", "wye.yaml")
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
				t.Fatalf("wye.yaml of %s: %v", kindName(cm), err)
			}
			if lit := literalSecrets(cfg, ""); len(lit) > 0 {
				t.Fatalf("literal secrets in the ConfigMap: %v", lit)
			}
			files := secretFiles(cfg, "")
			if len(files) == 0 {
				t.Fatal("no *_file secret in the configuration")
			}
			// Each *_file must be a key of the Secret at its mount point in every workload.
			for _, w := range workloads(objs) {
				mount := mountOf(w, "wye-credentials")
				if mount == "" {
					t.Errorf("%s does not mount the Secret wye-credentials", kindName(w))
					continue
				}
				for key, path := range files {
					if dir, file := filepath.Split(path); filepath.Clean(dir) != mount || !slices.Contains(secretKeys, file) {
						t.Errorf("%s: %s: %s is not a key of wye-credentials mounted at %s", kindName(w), key, path, mount)
					}
				}
			}
			// `wye config check` on the ConfigMap's text, the secret directory standing in
			// for the mount.
			tmp := t.TempDir()
			for _, k := range secretKeys {
				if err := os.WriteFile(filepath.Join(tmp, k), []byte("x\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(tmp, "wye.yaml")
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "/etc/wye/secrets/", tmp+"/")), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(wyeBin, "config", "check", "-c", path)
			cmd.Env = cleanEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("wye config check of the ConfigMap of %s: %v\n%s", dir, err, out)
			}
			checkSecretObjects(t, dir, objs)
		})
	}
}

// cleanEnv is the environment without WYE_* variables, which would override the file.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "WYE_") {
			env = append(env, e)
		}
	}
	return env
}

// checkSecretObjects: base and production ship no Secret (it is created outside, by name);
// dev's generated one holds only the local stack's dev credentials (e2e/stack/stack.sh).
func checkSecretObjects(t *testing.T, dir string, objs []object) {
	t.Helper()
	secrets := find(objs, "Secret", "")
	if !strings.HasSuffix(dir, "/dev") {
		if len(secrets) > 0 {
			t.Errorf("%s ships a Secret (%s): reference wye-credentials by name instead", dir, kindName(secrets[0]))
		}
		return
	}
	dev := map[string]string{"source-password": "wye-source", "control-password": "wye-control", "amqp-password": "wye-amqp"}
	stack, err := os.ReadFile("../e2e/stack/stack.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		for k, v := range get(s, "data").(map[string]any) {
			b, _ := base64.StdEncoding.DecodeString(fmt.Sprint(v))
			if dev[k] != string(b) || !strings.Contains(string(stack), "_PASS="+string(b)) {
				t.Errorf("dev Secret %s key %s is not one of the local stack's dev credentials", kindName(s), k)
			}
		}
	}
}

func mountOf(w object, secret string) string {
	pod := podSpec(w)
	vol := ""
	for _, v := range list(pod, "volumes") {
		if strings.HasPrefix(str(v, "secret", "secretName"), secret) {
			vol = str(v, "name")
		}
	}
	for _, c := range list(pod, "containers") {
		for _, m := range list(c, "volumeMounts") {
			if str(m, "name") == vol && vol != "" {
				return filepath.Clean(str(m, "mountPath"))
			}
		}
	}
	return ""
}

var secretKey = regexp.MustCompile(`^(password|api_key|bearer_token)$`)

// literalSecrets lists the keys holding a secret value itself (x, not x_env or x_file).
func literalSecrets(v any, path string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && s != "" && secretKey.MatchString(k) {
				out = append(out, path+k)
			}
			out = append(out, literalSecrets(x, path+k+".")...)
		}
	case []any:
		for i, x := range v {
			out = append(out, literalSecrets(x, fmt.Sprintf("%s%d.", path, i))...)
		}
	}
	return out
}

// secretFiles maps each *_file key to the path it names.
func secretFiles(v any, path string) map[string]string {
	out := map[string]string{}
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			if s, ok := x.(string); ok && strings.HasSuffix(k, "_file") && secretKey.MatchString(strings.TrimSuffix(k, "_file")) {
				out[path+k] = s
			}
			for kk, vv := range secretFiles(x, path+k+".") {
				out[kk] = vv
			}
		}
	}
	return out
}

func TestDevConfigurationIsTheExampleWithMountedPaths(t *testing.T) {
	ex, err := os.ReadFile("../wye.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := os.ReadFile("kubernetes/overlays/dev/wye.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := yaml.Unmarshal(ex, &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(dev, &b); err != nil {
		t.Fatal(err)
	}
	// What the dev overlay changes on purpose: secrets as files, mounted paths, ports per component.
	for _, k := range []string{"source", "control", "amqp"} {
		delete(a[k].(map[string]any), "password_env")
		delete(b[k].(map[string]any), "password_file")
	}
	delete(a, "metrics")
	delete(b, "metrics")
	delete(b, "nightly")
	delete(a["mapping"].(map[string]any), "dir")
	delete(b["mapping"].(map[string]any), "dir")
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("deploy/kubernetes/overlays/dev/wye.yaml drifted from wye.example.yaml:\nexample: %s\ndev:     %s", ja, jb)
	}
}

func TestMappingsConfigMapIsTheRepositorysMappingFiles(t *testing.T) {
	objs := render(t, "kubernetes/base")
	cm := one(t, objs, "ConfigMap", "wye-mappings")
	data := get(cm, "data").(map[string]any)
	var want []string
	err := filepath.WalkDir("../mappings", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		rel, _ := filepath.Rel("../mappings", p)
		want = append(want, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		key := strings.ReplaceAll(rel, "/", ".")
		if data[key] != string(b) {
			t.Errorf("ConfigMap key %s differs from mappings/%s (copy it to deploy/kubernetes/base/mappings/)", key, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != len(want) {
		t.Errorf("ConfigMap has %d keys, mappings/ %d files", len(data), len(want))
	}
	for _, w := range workloads(objs) {
		var paths []string
		for _, v := range list(podSpec(w), "volumes") {
			if strings.HasPrefix(str(v, "configMap", "name"), "wye-mappings") {
				for _, it := range list(v, "configMap", "items") {
					paths = append(paths, str(it, "path"))
				}
			}
		}
		sort.Strings(paths)
		sort.Strings(want)
		if !slices.Equal(paths, want) {
			t.Errorf("%s mounts mapping files %v, want %v", kindName(w), paths, want)
		}
	}
}

func TestProductionShape(t *testing.T) {
	objs := render(t, "kubernetes/overlays/production")
	if n := get(one(t, objs, "Deployment", "wye-cdc"), "spec", "replicas"); n != 2 {
		t.Errorf("cdc replicas %v, want 2 (leader + standby)", n)
	}
	cdcStrategy := get(one(t, objs, "Deployment", "wye-cdc"), "spec", "strategy", "rollingUpdate")
	if get(cdcStrategy, "maxSurge") != 0 || get(cdcStrategy, "maxUnavailable") != 1 {
		t.Errorf("cdc rolling update %v, want maxSurge 0, maxUnavailable 1", cdcStrategy)
	}
	hpa := one(t, objs, "HorizontalPodAutoscaler", "wye-indexer")
	if str(hpa, "spec", "scaleTargetRef", "name") != "wye-indexer" {
		t.Errorf("HPA targets %v", get(hpa, "spec", "scaleTargetRef"))
	}
	one(t, objs, "PodDisruptionBudget", "wye-indexer")
	one(t, objs, "ServiceMonitor", "wye")
	one(t, objs, "PodMonitor", "wye-nightly")
	rule := one(t, objs, "PrometheusRule", "wye")
	var want map[string]any
	b, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(get(rule, "spec", "groups"), want["groups"]) {
		t.Error("the PrometheusRule of the production overlay is not prometheus/rules.yaml")
	}

	cron := one(t, objs, "CronJob", "wye-nightly")
	spec := get(cron, "spec")
	if str(spec, "concurrencyPolicy") != "Forbid" {
		t.Errorf("nightly concurrencyPolicy %q, want Forbid", str(spec, "concurrencyPolicy"))
	}
	for _, k := range [][]any{{"startingDeadlineSeconds"}, {"successfulJobsHistoryLimit"}, {"failedJobsHistoryLimit"},
		{"jobTemplate", "spec", "activeDeadlineSeconds"}} {
		if get(spec, k...) == nil {
			t.Errorf("nightly CronJob has no spec.%v", k)
		}
	}
	c := list(podSpec(cron), "containers")[0]
	args := strs(list(c, "args"))
	if args[0] != "nightly" {
		t.Errorf("the nightly CronJob runs %v", args)
	}
	report := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--report="); ok {
			report = v
		}
	}
	onVolume := false
	for _, m := range list(c, "volumeMounts") {
		for _, v := range list(podSpec(cron), "volumes") {
			if str(v, "name") == str(m, "name") && get(v, "persistentVolumeClaim") != nil &&
				strings.HasPrefix(report, str(m, "mountPath")+"/") {
				onVolume = true
			}
		}
	}
	if !onVolume {
		t.Errorf("the nightly report %q is not on a PersistentVolumeClaim", report)
	}
	for _, kind := range []string{"Deployment", "CronJob", "Job"} {
		for _, o := range find(objs, kind, "") {
			if get(podSpec(o), "hostNetwork") == true {
				t.Errorf("%s uses the host network in production", kindName(o))
			}
		}
	}
}

func TestDevIsOneReplicaEachOnTheStacksAddresses(t *testing.T) {
	objs := render(t, "kubernetes/overlays/dev")
	for _, d := range find(objs, "Deployment", "") {
		if n := get(d, "spec", "replicas"); n != 1 {
			t.Errorf("%s has %v replicas, want 1", kindName(d), n)
		}
	}
	text := str(one(t, objs, "ConfigMap", "wye-config"), "data", "wye.yaml")
	for _, addr := range []string{"host: 127.0.0.1\n  port: 3306", "amqp://wye@127.0.0.1:5672/", "http://127.0.0.1:9217"} {
		if !strings.Contains(text, addr) {
			t.Errorf("dev configuration lacks the local stack's %q", addr)
		}
	}
}

// renderKEDA renders the production overlay with the KEDA component.
func renderKEDA(t *testing.T) []object { return renderComponent(t, "keda") }

// renderComponent renders the production overlay with the optional component name.
func renderComponent(t *testing.T, name string) []object {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, abs) // kustomize takes relative paths only
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%s/overlays/production]\ncomponents: [%s/components/%s]\n", rel, rel, name)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return render(t, dir)
}

func TestKEDAComponentReplacesTheHPA(t *testing.T) {
	objs := renderKEDA(t)
	if hpa := find(objs, "HorizontalPodAutoscaler", ""); len(hpa) != 0 {
		t.Errorf("the HPA is still there beside KEDA's")
	}
	so := one(t, objs, "ScaledObject", "wye-indexer")
	if str(so, "spec", "scaleTargetRef", "name") != "wye-indexer" || str(so, "spec", "triggers", 0, "type") != "rabbitmq" {
		t.Errorf("ScaledObject: %v", get(so, "spec"))
	}
}

// TestAutoFailoverComponentIsOneLockedDownWatchdogWithTheUsersReaderSwitch prevents an
// automatic failover deployed where it was not asked for, run twice at once by a surge, killed
// while it waits for its lock, or running a reader switch that is not the user's script.
func TestAutoFailoverComponentIsOneLockedDownWatchdogWithTheUsersReaderSwitch(t *testing.T) {
	for _, dir := range kustomizations {
		if ws := find(render(t, dir), "Deployment", "wye-auto-failover"); len(ws) != 0 {
			t.Errorf("%s deploys the automatic failover: it is an optional component", dir)
		}
	}
	objs := renderComponent(t, "auto-failover")
	if ws := workloads(objs); len(ws) != 7 {
		t.Errorf("want the 6 workloads of production and the watchdog, got %d", len(ws))
	}
	d := one(t, objs, "Deployment", "wye-auto-failover")
	for _, f := range checkWorkload(d) {
		t.Error(f)
	}
	if n := get(d, "spec", "replicas"); n != 1 {
		t.Errorf("%v replicas, want 1", n)
	}
	if s := get(d, "spec", "strategy", "rollingUpdate", "maxSurge"); s != 0 {
		t.Errorf("maxSurge %v, want 0: the new pod starts once the old one is gone", s)
	}
	c := list(podSpec(d), "containers")[0]
	args := strs(list(c, "args"))
	if !slices.Contains(args, "--auto") || !slices.Contains(args, "--exec=sh /etc/wye/failover/switch-readers.sh") {
		t.Errorf("args %q, want promote --auto with the ConfigMap's script as --exec", args)
	}
	for _, kind := range []string{"livenessProbe", "readinessProbe"} {
		if p := str(c, kind, "httpGet", "path"); p != "/healthz" {
			t.Errorf("%s on %s: a standby waiting for the lock answers /healthz, not /readyz", kind, p)
		}
	}
	script := one(t, objs, "ConfigMap", "wye-failover-exec")
	if body := str(script, "data", "switch-readers.sh"); !strings.Contains(body, "exit 1") {
		t.Errorf("the placeholder reader switch does not refuse:\n%s", body)
	}
	mounted := false
	for _, v := range list(podSpec(d), "volumes") {
		mounted = mounted || str(v, "configMap", "name") == str(script, "metadata", "name")
	}
	if !mounted {
		t.Errorf("the reader switch ConfigMap %s is not mounted", str(script, "metadata", "name"))
	}
}

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// ---------------------------------------------------------------- alerts

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) (ruleFile, map[string]any) {
	t.Helper()
	b, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	var raw map[string]any
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	return rf, raw
}

const alertsHeader = `# GENERATED from rules.yaml by ` + "`go test ./deploy -run TestPrometheusRuleIsRulesYAML -update`" + `:
# edit rules.yaml, not this file.
`

func TestPrometheusRuleIsRulesYAML(t *testing.T) {
	_, raw := readRules(t)
	rule := map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata":   map[string]any{"name": "wye", "labels": map[string]any{"app.kubernetes.io/name": "wye"}},
		"spec":       map[string]any{"groups": raw["groups"]},
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(rule); err != nil {
		t.Fatal(err)
	}
	want := alertsHeader + buf.String()
	if *update {
		if err := os.WriteFile("prometheus/alerts.yaml", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("prometheus/alerts.yaml is not rules.yaml as a PrometheusRule: run go test ./deploy -run TestPrometheusRuleIsRulesYAML -update")
	}
}

func TestAlertsPassPromtoolAndItsUnitTestsCoverEveryAlertFiringAndNot(t *testing.T) {
	promtool := tool(t, "promtool", "`make stack-up` installs Debian's prometheus package, which ships it")
	for _, args := range [][]string{{"check", "rules", "prometheus/rules.yaml"}, {"test", "rules", "prometheus/tests.yaml"}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	b, err := os.ReadFile("prometheus/tests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	rf, _ := readRules(t)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if !firing[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: tests.yaml must show it firing (%v) and not firing (%v)", r.Alert, firing[r.Alert], quiet[r.Alert])
			}
		}
	}
}

var alertName = regexp.MustCompile(`^Wye[A-Z][A-Za-z0-9]+$`)

func TestAlertsFollowTheMixinConventionsAndTheirRunbooksExist(t *testing.T) {
	rf, _ := readRules(t)
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(doc))
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n++
			if !alertName.MatchString(r.Alert) {
				t.Errorf("%s: not a CamelCase name with the Wye prefix", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s: no %s", r.Alert, k)
				}
			}
			const base = "https://github.com/wyehq/wye/blob/main/docs/deploy.md#"
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], base)
			if !ok || !anchors[anchor] {
				t.Errorf("%s: runbook_url %q is not a heading of docs/deploy.md", r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert in rules.yaml")
	}
}

// headingAnchors are GitHub's anchors of the markdown headings in doc.
func headingAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
	}
	return out
}

// ---------------------------------------------------------------- metric names

// registered returns every metric name wye's components register, with their kinds: collected
// from the constructors themselves, so a renamed metric fails here.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	rec := &recorder{}
	cdc.NewMetrics(rec)
	cdc.NewRetentionMetrics(rec)
	indexer.NewMetrics(rec)
	nightly.NewMetrics(rec)
	control.NewGaugeMetrics(rec)
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fq.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names[m[1]] = true
			if _, ok := c.(prometheus.Histogram); ok {
				addHistogram(names, m[1])
			}
			if _, ok := c.(*prometheus.HistogramVec); ok {
				addHistogram(names, m[1])
			}
		}
	}
	return names
}

func addHistogram(names map[string]bool, name string) {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		names[name+s] = true
	}
}

// recorder is a prometheus.Registerer that keeps what is registered.
type recorder struct{ collectors []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return false }

var metricRef = regexp.MustCompile(`\bwye_[a-z0-9_]+\b`)

// referenced maps each wye_* name used in exprs to the first expression using it.
func referenced(exprs []string) map[string]string {
	out := map[string]string{}
	for _, e := range exprs {
		for _, n := range metricRef.FindAllString(e, -1) {
			if _, ok := out[n]; !ok {
				out[n] = e
			}
		}
	}
	return out
}

func alertExprs(t *testing.T) []string {
	rf, _ := readRules(t)
	var out []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// dashboardExprs returns every PromQL expression of the dashboard: panel targets and
// annotation queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana/wye.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/wye.json: %v", err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, a.Expr)
		}
	}
	return out
}

func TestAlertsAndDashboardUseOnlyMetricsWyeRegisters(t *testing.T) {
	names := registered(t)
	for _, src := range []struct {
		what  string
		exprs []string
	}{{"prometheus/rules.yaml", alertExprs(t)}, {"grafana/wye.json", dashboardExprs(t)}} {
		if len(src.exprs) == 0 {
			t.Fatalf("%s: no expression", src.what)
		}
		for n, e := range referenced(src.exprs) {
			if !names[n] {
				t.Errorf("%s uses %s, which wye does not register (in %q)", src.what, n, e)
			}
		}
	}
	// The check bites: a typo is not a registered name.
	if names["wye_cdc_leaders"] || !names["wye_cdc_leader"] {
		t.Fatal("the registered names are not what the code registers")
	}
}

func TestDashboardShowsFreshnessFirstAndEveryArea(t *testing.T) {
	b, err := os.ReadFile("grafana/wye.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string         `json:"title"`
			GridPos map[string]int `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Panels) == 0 || !strings.Contains(strings.ToLower(d.Panels[0].Title), "freshness") || d.Panels[0].GridPos["y"] != 0 {
		t.Fatalf("the first panel, on top, must be freshness lag; got %+v", d.Panels[0])
	}
	var all []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			all = append(all, tg.Expr)
		}
	}
	joined := strings.Join(all, "\n")
	for _, m := range []string{"wye_indexer_lag_seconds_bucket", "wye_indexer_items_total", "wye_indexer_bulk_seconds_bucket",
		"wye_indexer_queue_messages", "wye_ledger_open_entries", "wye_nightly_rows_total", "wye_nightly_last_status"} {
		if !strings.Contains(joined, m) {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// ---------------------------------------------------------------- compose

// compose.yaml cannot run here (no Docker engine): its wye services' command lines, the
// configuration they mount and the Prometheus configuration are checked offline.
func TestComposeRunsRealCommandsOnAConfigurationThatPassesConfigCheck(t *testing.T) {
	b, err := os.ReadFile("../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
		Secrets map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"mysql", "rabbitmq", "es7", "es8", "os2", "wye-cdc", "wye-indexer", "prometheus"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("compose.yaml has no service %s", name)
		}
	}
	mysql := strings.Join(c.Services["mysql"].Command, " ")
	for _, opt := range []string{"--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--server-id="} {
		if !strings.Contains(mysql, opt) {
			t.Errorf("compose.yaml's MySQL lacks %s (wye cdc refuses to start without it)", opt)
		}
	}
	config := ""
	for name, s := range c.Services {
		if !strings.HasPrefix(name, "wye-") {
			continue
		}
		if msg := checkCommandLine(s.Command); msg != "" {
			t.Errorf("compose service %s: %s", name, msg)
		}
		for _, v := range s.Volumes {
			if src, dst, _ := strings.Cut(v, ":"); strings.HasPrefix(dst, "/etc/wye/wye.yaml") {
				config = src
			}
		}
	}
	if config == "" {
		t.Fatal("no wye service mounts a configuration at /etc/wye/wye.yaml")
	}
	text, err := os.ReadFile(filepath.Join("..", config))
	if err != nil {
		t.Fatal(err)
	}
	// The secrets are the compose secrets, at /run/secrets/<name>.
	tmp := t.TempDir()
	for name, s := range c.Secrets {
		v, err := os.ReadFile(filepath.Join("..", s.File))
		if err != nil {
			t.Fatalf("compose secret %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(tmp, "wye.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(text), "/run/secrets/", tmp+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wyeBin, "config", "check", "-c", path)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wye config check of %s: %v\n%s", config, err, out)
	}

	promtool := tool(t, "promtool", "`make stack-up` installs Debian's prometheus package, which ships it")
	prom, err := os.ReadFile("compose/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(tmp, "prometheus.yml")
	if err := os.WriteFile(local, []byte(strings.ReplaceAll(string(prom), "/etc/prometheus/rules.yaml", rules)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", local).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config deploy/compose/prometheus.yml: %v\n%s", err, out)
	}
}

// ---------------------------------------------------------------- strict decoding

// kubeTypes are the Kubernetes API types of the objects the overlays render.
var kubeTypes = map[string]func() any{
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"batch/v1/CronJob":                       func() any { return new(batchv1.CronJob) },
	"batch/v1/Job":                           func() any { return new(batchv1.Job) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"v1/ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                              func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":                      func() any { return new(corev1.ServiceAccount) },
	"v1/PersistentVolumeClaim":               func() any { return new(corev1.PersistentVolumeClaim) },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"policy/v1/PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	// The CRDs, checked separately: the subset of their schema these manifests use.
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(serviceMonitor) },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return new(podMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(prometheusRule) },
	"keda.sh/v1alpha1/ScaledObject":           func() any { return new(scaledObject) },
	"keda.sh/v1alpha1/TriggerAuthentication":  func() any { return new(triggerAuthentication) },
}

type crdMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
}

type endpoint struct {
	Port     string `json:"port"`
	Path     string `json:"path"`
	Interval string `json:"interval"`
}

type serviceMonitor struct {
	crdMeta `json:",inline"`
	Spec    struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []endpoint           `json:"endpoints"`
	} `json:"spec"`
}

type podMonitor struct {
	crdMeta `json:",inline"`
	Spec    struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []endpoint           `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	crdMeta `json:",inline"`
	Spec    struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

type scaledObject struct {
	crdMeta `json:",inline"`
	Spec    struct {
		ScaleTargetRef  struct{ Name string } `json:"scaleTargetRef"`
		MinReplicaCount int                   `json:"minReplicaCount"`
		MaxReplicaCount int                   `json:"maxReplicaCount"`
		CooldownPeriod  int                   `json:"cooldownPeriod"`
		Triggers        []struct {
			Type              string                `json:"type"`
			Metadata          map[string]string     `json:"metadata"`
			AuthenticationRef struct{ Name string } `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

type triggerAuthentication struct {
	crdMeta `json:",inline"`
	Spec    struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// decodeStrictly decodes o into its API type, refusing unknown fields and wrong types.
func decodeStrictly(o object) error {
	key := str(o, "apiVersion") + "/" + str(o, "kind")
	mk, ok := kubeTypes[key]
	if !ok {
		return fmt.Errorf("%s: no API type known for %s", kindName(o), key)
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(mk()); err != nil {
		return fmt.Errorf("%s: %w", kindName(o), err)
	}
	return nil
}

func TestEveryObjectDecodesStrictlyIntoItsAPIType(t *testing.T) {
	for _, dir := range append(slices.Clone(kustomizations), "prometheus") {
		t.Run(dir, func(t *testing.T) {
			for _, o := range render(t, dir) {
				if err := decodeStrictly(o); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, o := range append(renderKEDA(t), renderComponent(t, "auto-failover")...) {
		if err := decodeStrictly(o); err != nil {
			t.Error(err)
		}
	}
	// A typo'd field and a wrong type are refused.
	for _, tc := range []struct {
		name string
		edit func(c map[string]any)
		want string
	}{
		{"typo", func(c map[string]any) { c["readinesProbe"] = c["readinessProbe"] }, `unknown field "readinesProbe"`},
		{"type", func(c map[string]any) { c["ports"].([]any)[0].(map[string]any)["containerPort"] = "9465" }, "cannot unmarshal string"},
	} {
		bad := one(t, render(t, "kubernetes/base"), "Deployment", "wye-indexer")
		tc.edit(list(podSpec(bad), "containers")[0].(map[string]any))
		if err := decodeStrictly(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, err)
		}
	}
}

// The rollout order of docs/deploy.md applies `-l app.kubernetes.io/component=config`, then
// `...=mapping-apply`, waits for the Job, then the rest: those two selections must hold all the
// Job needs and nothing that starts the stream.
func TestMappingApplyJobRunsBeforeTheRolloutWithWhatItNeeds(t *testing.T) {
	for _, dir := range kustomizations[1:] {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			first := map[string]bool{}
			for _, o := range objs {
				switch str(o, "metadata", "labels", "app.kubernetes.io/component") {
				case "config", "mapping-apply":
					first[kindName(o)] = true
					if k := str(o, "kind"); k == "Deployment" || k == "CronJob" {
						t.Errorf("%s is applied before the mapping Job", kindName(o))
					}
				}
			}
			job := one(t, objs, "Job", "wye-mapping-apply")
			if args := strs(list(podSpec(job), "containers", 0, "args")); len(args) < 2 || args[0] != "mapping" || args[1] != "apply" {
				t.Fatalf("the mapping Job runs %v", args)
			}
			need := []string{"ServiceAccount/" + str(podSpec(job), "serviceAccountName")}
			for _, v := range list(podSpec(job), "volumes") {
				if n := str(v, "configMap", "name"); n != "" {
					need = append(need, "ConfigMap/"+n)
				}
				if n := str(v, "secret", "secretName"); n != "" && len(find(objs, "Secret", n)) > 0 {
					need = append(need, "Secret/"+n) // production's Secret exists outside the manifests
				}
			}
			for _, n := range need {
				if !first[n] {
					t.Errorf("the mapping Job needs %s, which the first steps do not apply", n)
				}
			}
		})
	}
}

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hookmesh/hookmesh/app"
)

// The manifests under deploy/ say what hookmesh reads and serves: these
// tests hold them to the settings table, the targets and the HTTP paths of
// the binary, so that a renamed setting or target breaks the build here
// rather than a deployment.

const deployDir = "../../deploy"

// hookmeshSetting reports whether name is a variable hookmesh itself reads:
// a row of the settings table read by hookmesh (not only by the scripts or
// the tests), or one of the standard OTLP exporter variables, which the
// table says the exporter honours.
func hookmeshSetting(name string) bool {
	for _, s := range allSettings() {
		if s.Env == name {
			return s.Scope == scopeHookmesh || s.Scope == scopeOTel
		}
	}
	return strings.HasPrefix(name, "OTEL_EXPORTER_OTLP_")
}

var manifestVariable = regexp.MustCompile(`\b((?:HOOKMESH|OTEL)_[A-Z0-9_]+)\b`)

// TestManifestsNameOnlySettings checks every HOOKMESH_* and OTEL_* name in
// deploy/ against the settings table.
func TestManifestsNameOnlySettings(t *testing.T) {
	files := []string{"compose.yaml", "env.example", "Dockerfile"}
	k8s, _ := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	for _, f := range k8s {
		files = append(files, filepath.Join("kubernetes", filepath.Base(f)))
	}
	if len(k8s) < 5 {
		t.Fatalf("found %d Kubernetes manifests", len(k8s))
	}
	// Compose's own variables, not hookmesh's.
	composeOnly := map[string]bool{"HOOKMESH_IMAGE": true}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(deployDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range manifestVariable.FindAllStringSubmatch(string(b), -1) {
			if !hookmeshSetting(m[1]) && !composeOnly[m[1]] {
				t.Errorf("deploy/%s names %s, which hookmesh does not read (see cmd/hookmesh/settings.go)", f, m[1])
			}
		}
	}
}

// targetsOf returns the targets a -target=... argument names, checking each.
func targetsOf(t *testing.T, where string, args []string) []string {
	t.Helper()
	var out []string
	for _, a := range args {
		v, ok := strings.CutPrefix(a, "-target=")
		if !ok {
			continue
		}
		for _, name := range strings.Split(v, ",") {
			if name != app.TargetAll && !slices.Contains(app.AllTargets, name) {
				t.Errorf("%s runs target %q: hookmesh has %s", where, name, strings.Join(app.AllTargets, ", "))
			}
			out = append(out, name)
		}
	}
	return out
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

// TestComposeRunsEveryTarget checks deploy/compose.yaml: a service for
// each target, the brokers and replica set members the URLs name, and a
// health check on /readyz through a command the binary has.
func TestComposeRunsEveryTarget(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("deploy/compose.yaml: %v", err)
	}
	for _, name := range []string{"rabbitmq-1", "rabbitmq-2", "rabbitmq-3", "mongo-1", "mongo-2", "mongo-3", "mongo-init", "postgres"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("deploy/compose.yaml has no service %s", name)
		}
	}
	covered := map[string]bool{}
	for name, s := range c.Services {
		targets := targetsOf(t, "deploy/compose.yaml service "+name, s.Command)
		if len(targets) == 0 {
			continue
		}
		for _, tg := range targets {
			covered[tg] = true
		}
		if name != strings.Join(targets, ",") {
			t.Errorf("service %s runs %v: name it after its target", name, targets)
		}
		if got := s.Healthcheck.Test; len(got) < 3 || got[1] != "/hookmesh" || commands[got[2]] == nil || !slices.Contains(got, "/readyz") {
			t.Errorf("service %s health check %q: want /hookmesh healthcheck /readyz", name, got)
		}
		for _, k := range []string{"HOOKMESH_ADMIN_KEY", "HOOKMESH_SECRET_KEY"} {
			if !strings.HasPrefix(s.Environment[k], "${"+k+":?") {
				t.Errorf("service %s: %s=%q, want it from the env file, required", name, k, s.Environment[k])
			}
		}
		if s.Environment["HOOKMESH_HTTP_ADDR"] != "0.0.0.0:8080" {
			t.Errorf("service %s listens on %q, want 0.0.0.0:8080 (reachable by the other containers)", name, s.Environment["HOOKMESH_HTTP_ADDR"])
		}
		amqp := strings.Split(s.Environment["HOOKMESH_AMQP_URL"], ",")
		for i := range 3 {
			node := "rabbitmq-" + string(rune('1'+i))
			if !slices.ContainsFunc(amqp, func(u string) bool { return strings.Contains(u, "@"+node+":5672/") }) {
				t.Errorf("service %s: HOOKMESH_AMQP_URL does not list %s", name, node)
			}
		}
		if uri := s.Environment["HOOKMESH_MONGODB_URI"]; !strings.Contains(uri, "replicaSet=rs0") || !strings.Contains(uri, "mongo-1:27017,mongo-2:27017,mongo-3:27017") {
			t.Errorf("service %s: HOOKMESH_MONGODB_URI %q does not name the replica set and its members", name, uri)
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			}
		}
		for _, u := range []string{"HOOKMESH_REGISTRY_URL", "HOOKMESH_INGEST_URL", "HOOKMESH_STATUS_URL"} {
			host := strings.TrimSuffix(strings.TrimPrefix(s.Environment[u], "http://"), ":8080")
			if _, ok := c.Services[host]; !ok {
				t.Errorf("service %s: %s=%q is not a service", name, u, s.Environment[u])
			}
		}
	}
	for _, tg := range app.AllTargets {
		if !covered[tg] {
			t.Errorf("deploy/compose.yaml runs no %s", tg)
		}
	}
}

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Metadata struct {
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []struct {
					Image string   `yaml:"image"`
					Args  []string `yaml:"args"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					EnvFrom []struct {
						ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
						SecretRef    *struct{ Name string } `yaml:"secretRef"`
					} `yaml:"envFrom"`
					ReadinessProbe probe `yaml:"readinessProbe"`
					LivenessProbe  probe `yaml:"livenessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// TestKubernetesBaseRunsEveryTarget checks deploy/kubernetes: a Deployment
// per target, probes and Prometheus annotations on the paths and port the
// binary serves, and settings from the ConfigMap and the Secret.
func TestKubernetesBaseRunsEveryTarget(t *testing.T) {
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	var objects []k8sObject
	for _, r := range kust.Resources {
		f, err := os.Open(filepath.Join(deployDir, "kubernetes", r))
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", r, err)
		}
		dec := yaml.NewDecoder(f)
		for {
			var o k8sObject
			if err := dec.Decode(&o); err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("%s: %v", r, err)
				}
				break
			}
			objects = append(objects, o)
		}
		f.Close()
	}
	byKind := map[string]map[string]k8sObject{}
	for _, o := range objects {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]k8sObject{}
		}
		byKind[o.Kind][o.Metadata.Name] = o
	}
	cm, ok := byKind["ConfigMap"]["hookmesh-settings"]
	if !ok {
		t.Fatal("no ConfigMap hookmesh-settings")
	}
	secret, ok := byKind["Secret"]["hookmesh-secrets"]
	if !ok {
		t.Fatal("no Secret hookmesh-secrets")
	}
	for _, k := range []string{"HOOKMESH_SECRET_KEY", "HOOKMESH_ADMIN_KEY", "HOOKMESH_AMQP_URL", "HOOKMESH_MONGODB_URI"} {
		if _, ok := secret.StringData[k]; !ok {
			t.Errorf("the Secret has no %s", k)
		}
		if _, ok := cm.Data[k]; ok {
			t.Errorf("%s, a credential, is in the ConfigMap", k)
		}
	}
	if cm.Data["HOOKMESH_HTTP_ADDR"] != "0.0.0.0:8080" {
		t.Errorf("HOOKMESH_HTTP_ADDR %q, want 0.0.0.0:8080 (the probes and Prometheus reach the pod's address)", cm.Data["HOOKMESH_HTTP_ADDR"])
	}
	for _, u := range []string{"HOOKMESH_REGISTRY_URL", "HOOKMESH_INGEST_URL", "HOOKMESH_STATUS_URL"} {
		svc := strings.TrimSuffix(strings.TrimPrefix(cm.Data[u], "http://"), ":8080")
		if _, ok := byKind["Service"][svc]; !ok {
			t.Errorf("%s=%q names no Service", u, cm.Data[u])
		}
	}
	covered := map[string]bool{}
	for name, d := range byKind["Deployment"] {
		cs := d.Spec.Template.Spec.Containers
		if len(cs) != 1 {
			t.Errorf("%s has %d containers", name, len(cs))
			continue
		}
		c := cs[0]
		targets := targetsOf(t, name, c.Args)
		for _, tg := range targets {
			covered[tg] = true
		}
		if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 {
			t.Errorf("%s: ports %+v, want 8080, the port of HOOKMESH_HTTP_ADDR", name, c.Ports)
			continue
		}
		port := c.Ports[0]
		for what, p := range map[string]struct {
			probe probe
			path  string
		}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}} {
			if p.probe.HTTPGet.Path != p.path || (p.probe.HTTPGet.Port != port.Name && p.probe.HTTPGet.Port != port.ContainerPort) {
				t.Errorf("%s: %s probe %+v, want GET %s on port %s", name, what, p.probe.HTTPGet, p.path, port.Name)
			}
		}
		ann := d.Spec.Template.Metadata.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "8080" || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: annotations %v, want Prometheus to scrape :8080/metrics", name, ann)
		}
		var fromCM, fromSecret bool
		for _, e := range c.EnvFrom {
			fromCM = fromCM || e.ConfigMapRef != nil && e.ConfigMapRef.Name == "hookmesh-settings"
			fromSecret = fromSecret || e.SecretRef != nil && e.SecretRef.Name == "hookmesh-secrets"
		}
		if !fromCM || !fromSecret {
			t.Errorf("%s does not read both the ConfigMap and the Secret", name)
		}
	}
	for _, tg := range app.AllTargets {
		if !covered[tg] {
			t.Errorf("deploy/kubernetes has no Deployment running %s", tg)
		}
	}
}

// TestManifestPathsAreServed keeps the paths the manifests probe
// among those the server mounts.
func TestManifestPathsAreServed(t *testing.T) {
	b, err := os.ReadFile("../../internal/server/server.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{`"GET /healthz"`, `"GET /readyz"`, `"GET /metrics"`} {
		if !strings.Contains(string(b), p) {
			t.Errorf("internal/server no longer mounts %s, which deploy/ probes or scrapes", p)
		}
	}
}

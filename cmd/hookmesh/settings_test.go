package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	readmePath  = "../../README.md"
	beginMarker = "<!-- settings:begin (generated from cmd/hookmesh/settings.go; do not edit) -->\n"
	endMarker   = "<!-- settings:end -->"
)

// TestREADMESettingsAreCurrent keeps the README's settings table equal to
// the one generated from the settings table, so the two cannot drift.
// HOOKMESH_UPDATE_README=1 rewrites it.
func TestREADMESettingsAreCurrent(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		t.Fatalf("README.md has no settings section between %q and %q", beginMarker, endMarker)
	}
	want := s[:i+len(beginMarker)] + settingsMarkdown() + s[j:]
	if os.Getenv("HOOKMESH_UPDATE_README") == "1" {
		if err := os.WriteFile(readmePath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s != want {
		t.Fatal("the settings table in README.md is stale: run HOOKMESH_UPDATE_README=1 go test ./cmd/hookmesh -run TestREADMESettingsAreCurrent")
	}
}

// TestEveryVariableIsASetting finds the HOOKMESH_* and OTEL_* variables the
// code and the scripts read and checks that each is a row of the settings
// table (and so in the README).
func TestEveryVariableIsASetting(t *testing.T) {
	known := map[string]bool{}
	for _, s := range allSettings() {
		if known[s.Env] {
			t.Errorf("%s is declared twice", s.Env)
		}
		known[s.Env] = true
	}
	// The scripts' internal names, which nobody sets.
	internal := map[string]bool{"HOOKMESH_ROOT": true, "HOOKMESH_STATE": true, "HOOKMESH_FERRETDB_BIN": true,
		"HOOKMESH_RABBITMQ_HOST": true, "HOOKMESH_PG_HOST": true, "HOOKMESH_FAULTS_POSTGRESQL_URL": true}
	read := regexp.MustCompile(`\$\{?(HOOKMESH_[A-Z0-9_]+)`)
	goRead := regexp.MustCompile(`[Gg]etenv\("((?:HOOKMESH|OTEL)_[A-Z0-9_]+)"\)`)
	files := map[string]*regexp.Regexp{}
	for _, glob := range []string{"../../scripts/*.sh", "../../Makefile"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			files[p] = read
		}
	}
	for _, glob := range []string{"*.go", "../../internal/testenv/*.go", "../../app/*.go"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			if !strings.HasSuffix(p, "_test.go") {
				files[p] = goRead
			}
		}
	}
	if len(files) < 5 {
		t.Fatalf("found only %d files to scan", len(files))
	}
	for p, re := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if name := m[1]; !known[name] && !internal[name] {
				t.Errorf("%s reads %s, which is not in the settings table of cmd/hookmesh/settings.go", p, name)
			}
		}
	}
}

// TestBadVariableIsRefused checks that a variable that does not parse
// stops hookmesh with its name, instead of being ignored.
func TestBadVariableIsRefused(t *testing.T) {
	for name, value := range map[string]string{"HOOKMESH_STATUS_PARTITIONS": "four", "HOOKMESH_PPROF": "yes please", "HOOKMESH_CACHE_TTL": "5"} {
		_, _, err := parse([]string{"all"}, env(map[string]string{name: value}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: err %v, want one naming the variable", name, value, err)
		}
	}
	for _, origin := range []string{"app.example.com", "https://app.example.com/", "https://app.example.com/ui", "ftp://x.example"} {
		_, _, err := parse([]string{"all"}, env(map[string]string{"HOOKMESH_CORS_ALLOWED_ORIGINS": "http://127.0.0.1:5173," + origin}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "HOOKMESH_CORS_ALLOWED_ORIGINS") || !strings.Contains(err.Error(), origin) {
			t.Errorf("origin %q: err %v, want one naming the variable and the origin", origin, err)
		}
	}
	cfg, _, err := parse([]string{"all"}, env(map[string]string{"HOOKMESH_CORS_ALLOWED_ORIGINS": " https://app.example.com, http://127.0.0.1:5173"}), io.Discard)
	if err != nil || strings.Join(cfg.CORSAllowedOrigins, " ") != "https://app.example.com http://127.0.0.1:5173" {
		t.Fatalf("CORS origins %q, err %v", cfg.CORSAllowedOrigins, err)
	}
	cfg, _, err = parse(nil, env(map[string]string{"HOOKMESH_SHUTDOWN_TIMEOUT": "3s", "HOOKMESH_TARGET": "router,deliverer"}), io.Discard)
	if err != nil || cfg.ShutdownTimeout != 3*time.Second || strings.Join(cfg.Targets, ",") != "router,deliverer" {
		t.Fatalf("cfg %+v, err %v", cfg, err)
	}
}

// TestREADMEStaysInRepository checks that the README points at nothing
// outside the repository, and that the quick start writes its files (which
// hold an API key and a secret) under .hookmesh/, which git ignores.
func TestREADMEStaysInRepository(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	if i := strings.Index(s, "../"); i >= 0 {
		t.Errorf("README.md points outside the repository: %q", s[max(0, i-40):min(len(s), i+40)])
	}
	files := regexp.MustCompile(`(?:tee|>) ([\w./-]+\.json\w*)|open\("([^"]+)"\)`)
	found := 0
	for _, m := range files.FindAllStringSubmatch(s, -1) {
		f := m[1] + m[2]
		found++
		if !strings.HasPrefix(f, ".hookmesh/") {
			t.Errorf("the README writes or reads %s outside .hookmesh/", f)
		}
	}
	if found == 0 {
		t.Error("found no file the quick start writes: has it changed shape?")
	}
	ignore, err := os.ReadFile("../../.gitignore")
	if err != nil || !regexp.MustCompile(`(?m)^/?\.hookmesh/?$`).Match(ignore) {
		t.Errorf(".gitignore does not ignore .hookmesh/ (%v)", err)
	}
}

package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookmesh/hookmesh/app"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// options is what the flags fill: the process's configuration and the few
// values main keeps for itself.
type options struct {
	cfg          app.Config
	logLevel     string
	target       string
	oldSecretKey string
}

// Scopes of a setting: who reads it.
const (
	scopeHookmesh = ""                        // every hookmesh command
	scopeReseal   = "`hookmesh reseal`"       // that command only
	scopeScripts  = "`make run`, `make test`" // the scripts, not hookmesh
	scopeRun      = "`make run`"
	scopeTest     = "`make test`"
	scopeBench    = "`make bench`"
	scopeOTel     = "hookmesh (OpenTelemetry)"
)

// newFlagSet declares every flag of a hookmesh command on a new FlagSet:
// the process's and the services' (each declared once, by its own Config's
// RegisterFlags), main's own, and those of the scopes given. Each flag's
// environment variable is envName of its name.
func newFlagSet(name string, o *options, scopes ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	o.cfg.RegisterFlags(fs)
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.target, "target", "", "services to run when the command line names none: all, or a comma-separated list of registry, ingest, router, deliverer, status")
	if slices.Contains(scopes, scopeReseal) {
		fs.StringVar(&o.oldSecretKey, "old-secret-key", "", "the key the endpoint secrets were sealed with, which hookmesh reseal replaces with -secret-key")
	}
	return fs
}

// flagScopes says who reads a flag that not every hookmesh command has.
var flagScopes = map[string]string{"old-secret-key": scopeReseal}

// envName is the environment variable of a flag: HOOKMESH_ and the flag's
// name in capitals, with underscores for dashes.
func envName(flagName string) string {
	return "HOOKMESH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs whose variable is set, so that the command
// line still overrides it, and names the variable in each flag's usage. A
// variable that does not parse is an error naming it.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		f.Usage += " (" + env + ")"
		v := getenv(env)
		if v == "" || err != nil {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%s=%q: %s", env, v, want(f.Value, serr))
		}
	})
	return err
}

// want says what a value of the flag's type looks like, or why the value
// was refused.
func want(v flag.Value, err error) string {
	if g, ok := v.(flag.Getter); ok {
		switch g.Get().(type) {
		case int:
			return "want a whole number"
		case bool:
			return "want true or false"
		case float64:
			return "want a number"
		case time.Duration:
			return "want a duration such as 500ms, 30s or 2m"
		}
	}
	return err.Error()
}

// shownDefaults are the README's words for defaults that a value alone does
// not explain.
var shownDefaults = map[string]string{
	"postgres-url":           "none (`make run`: `hookmesh_history`)",
	"admin-key":              "none (`make run` keeps one in `.hookmesh/admin-key`)",
	"registry-url":           "the process itself",
	"ingest-url":             "the process itself",
	"status-url":             "the process itself",
	"secret-key":             "none (`make run` keeps one in `.hookmesh/secret-key`)",
	"public-url":             "the scheme and host of the request",
	"allow-private-networks": "`false` (`make run` and tests: `true`)",
	"target":                 "`all`",
}

// variable documents an environment variable that is not a flag's.
type variable struct {
	Env, Usage, Default, Scope string
}

// variables are the variables without a flag: hookmesh's own, OpenTelemetry's
// and the scripts'. Flags document themselves.
var variables = []variable{
	{Env: "OTEL_TRACES_EXPORTER", Usage: "`otlp` or `console` exports spans; `none` or unset exports none (unless an endpoint below is set, which exports over OTLP)", Scope: scopeOTel},
	{Env: "OTEL_EXPORTER_OTLP_ENDPOINT", Usage: "where spans are exported over OTLP; setting it (or the next one) turns export on. The exporter honours the other standard `OTEL_EXPORTER_OTLP_*` variables (protocol, headers, timeout, ...)", Scope: scopeOTel},
	{Env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Usage: "where spans are exported, for traces only", Scope: scopeOTel},

	{Env: "HOOKMESH_FERRETDB_PORT", Usage: "port of the FerretDB `make run` starts when HOOKMESH_MONGODB_URI is not set", Default: "`27017`", Scope: scopeRun},
	{Env: "HOOKMESH_RABBITMQ_PORT", Usage: "port where the scripts look for RabbitMQ on 127.0.0.1 (and start it when missing)", Default: "`5672`", Scope: scopeScripts},
	{Env: "HOOKMESH_PG_PORT", Usage: "port where the scripts look for PostgreSQL on 127.0.0.1", Default: "`5432`", Scope: scopeScripts},
	{Env: "HOOKMESH_PG_CLUSTER", Usage: "the Debian PostgreSQL cluster the scripts start when PostgreSQL is not running", Default: "`main`", Scope: scopeScripts},
	{Env: "HOOKMESH_PG_USER", Usage: "PostgreSQL user the scripts log in as (with HOOKMESH_PG_PASSWORD)", Default: "`postgres`, else a `hookmesh` user they create", Scope: scopeScripts},
	{Env: "HOOKMESH_PG_PASSWORD", Usage: "password of HOOKMESH_PG_USER", Default: "none (a created user's is kept in `.hookmesh/pg-password`)", Scope: scopeScripts},
	{Env: "HOOKMESH_FERRETDB_PG_CONNS", Usage: "PostgreSQL connections of each FerretDB the scripts start", Default: "`20`", Scope: scopeScripts},
	{Env: "HOOKMESH_FERRETDB_LOG_LEVEL", Usage: "log level of each FerretDB the scripts start", Default: "`warn`", Scope: scopeScripts},
	{Env: "HOOKMESH_TEST_MONGODB_URI", Usage: "MongoDB the tests use; no FerretDB is started", Default: "a FerretDB started on HOOKMESH_TEST_FERRETDB_PORT", Scope: scopeTest},
	{Env: "HOOKMESH_TEST_FERRETDB_PORT", Usage: "port of the FerretDB `make test` starts", Default: "`27018`", Scope: scopeTest},
	{Env: "HOOKMESH_TEST_AMQP_URL", Usage: "RabbitMQ the tests use", Default: "`amqp://guest:guest@127.0.0.1:5672/`", Scope: scopeTest},
	{Env: "HOOKMESH_TEST_POSTGRES_URL", Usage: "PostgreSQL database of the tests' delivery history", Default: "the database `hookmesh_test_history`", Scope: scopeTest},
	{Env: "HOOKMESH_REQUIRE_BROWSER", Usage: "`1` makes the dashboard's browser tests fail, instead of skipping, when there is no Chromium", Default: "`1` when `make test` could install Chromium", Scope: scopeTest},
	{Env: "HOOKMESH_CHROMIUM", Usage: "the Chromium binary the dashboard's browser tests drive", Default: "`chromium` on PATH", Scope: scopeTest},
	{Env: "HOOKMESH_UI_SCREENSHOTS", Usage: "`1` makes the dashboard's browser test save screenshots of the main pages to docs/screenshots/", Scope: scopeTest},
	{Env: "HOOKMESH_UPDATE_DEFINITIONS", Usage: "`1` makes `go test ./internal/mesh` rewrite deploy/rabbitmq/definitions.json", Scope: scopeTest},
	{Env: "HOOKMESH_UPDATE_README", Usage: "`1` makes `go test ./cmd/hookmesh` rewrite this table", Scope: scopeTest},
	{Env: "HOOKMESH_BENCH_PORT", Usage: "API port of the hookmesh `make bench` starts", Default: "`8089`", Scope: scopeBench},
	{Env: "HOOKMESH_BENCH_FERRETDB_PORT", Usage: "port of the FerretDB `make bench` starts", Default: "`27019`", Scope: scopeBench},
}

// setting is one row of the README's settings table.
type setting struct {
	Env, Flag, Scope, Usage, Default string
}

// allSettings lists every setting: each flag of every command, then the
// variables without one.
func allSettings() []setting {
	var o options
	fs := newFlagSet("hookmesh", &o, scopeReseal)
	var out []setting
	fs.VisitAll(func(f *flag.Flag) {
		d, ok := shownDefaults[f.Name]
		if !ok {
			d = showDefault(f)
		}
		out = append(out, setting{Env: envName(f.Name), Flag: f.Name, Scope: flagScopes[f.Name], Usage: f.Usage, Default: d})
	})
	for _, v := range variables {
		out = append(out, setting{Env: v.Env, Scope: v.Scope, Usage: v.Usage, Default: v.Default})
	}
	return out
}

// settingsMarkdown is the README's settings table.
func settingsMarkdown() string {
	var b strings.Builder
	b.WriteString("| variable | flag | read by | meaning | default |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range allSettings() {
		flagCol := ""
		if s.Flag != "" {
			flagCol = "`-" + s.Flag + "`"
		}
		scope := s.Scope
		if scope == scopeHookmesh {
			scope = "hookmesh"
		}
		d := s.Default
		if d == "" {
			d = "none"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Env, flagCol, scope, strings.ReplaceAll(s.Usage, "|", "\\|"), d)
	}
	return b.String()
}

// showDefault is a flag's default as the README shows it; empty when none.
func showDefault(f *flag.Flag) string {
	if f.DefValue == "" {
		return ""
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if d, ok := g.Get().(time.Duration); ok {
			return "`" + mesh.TierName(d) + "`"
		}
	}
	return "`" + f.DefValue + "`"
}

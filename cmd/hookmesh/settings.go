package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookmesh/hookmesh/app"
	"github.com/hookmesh/hookmesh/internal/bus"
)

// options is what the settings fill: the process's configuration and the
// few values main turns into it.
type options struct {
	cfg             app.Config
	allowedNetworks string
	corsOrigins     string
	logLevel        string
	target          string
	oldSecretKey    string
}

// defaultOptions are the defaults the settings table shows.
func defaultOptions() options {
	cfg := app.Defaults()
	cfg.Breaker.FailureRatio = 0.7
	cfg.Breaker.MinRequests = 20
	cfg.Breaker.Window = 30 * time.Second
	cfg.Breaker.Cooldown = 30 * time.Second
	cfg.Breaker.MaxCooldown = 10 * time.Minute
	cfg.OutboxSweepInterval = 15 * time.Second
	cfg.OutboxGrace = 30 * time.Second
	cfg.StatusBatchWait = time.Second
	cfg.RetentionInterval = 10 * time.Minute
	cfg.RetentionBatchSize = 5000
	return options{cfg: cfg, logLevel: "info"}
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

// setting is one setting: a flag and its environment variable, or a
// variable alone. This table is the one place settings are declared: main
// makes the flags from it, and the README's settings table is generated
// from it (settings_test.go fails when the README is stale). To add a
// setting, add a row.
type setting struct {
	// Flag is the flag's name, without the dash; empty for a variable
	// without a flag.
	Flag string
	// Env is the environment variable; it sets the flag's default.
	Env string
	// Usage says what it does.
	Usage string
	// Default is the default as the README shows it; empty shows the
	// value of field in defaultOptions ("none" when that is empty).
	Default string
	// Scope says who reads it; empty for hookmesh itself.
	Scope string
	// field points into options: a *string, *int, *bool, *float64 or
	// *time.Duration. Nil for variables hookmesh does not read through
	// this table (OpenTelemetry's, the scripts').
	field func(*options) any
}

var settings = []setting{
	{Flag: "http-addr", Env: "HOOKMESH_HTTP_ADDR", Usage: "address to serve Connect, gRPC, gRPC-Web and REST on",
		field: func(o *options) any { return &o.cfg.HTTPAddr }},
	{Flag: "tls-cert-file", Env: "HOOKMESH_TLS_CERT_FILE", Usage: "TLS certificate for the API (with -tls-key-file); none serves plain HTTP",
		field: func(o *options) any { return &o.cfg.TLSCertFile }},
	{Flag: "tls-key-file", Env: "HOOKMESH_TLS_KEY_FILE", Usage: "TLS key for the API (with -tls-cert-file)",
		field: func(o *options) any { return &o.cfg.TLSKeyFile }},
	{Flag: "mongodb-uri", Env: "HOOKMESH_MONGODB_URI", Usage: "MongoDB or FerretDB connection string (`make run` starts FerretDB when it is not set)",
		field: func(o *options) any { return &o.cfg.MongoURI }},
	{Flag: "postgres-url", Env: "HOOKMESH_POSTGRES_URL", Usage: "PostgreSQL connection string for the delivery history (deliveries, attempts, counters, events); empty keeps it in MongoDB (`make run` sets up the database `hookmesh_history` unless it is `none`)",
		Default: "none (`make run`: `hookmesh_history`)", field: func(o *options) any { return &o.cfg.PostgresURL }},
	{Flag: "database-prefix", Env: "HOOKMESH_DATABASE_PREFIX", Usage: "prefix of the services' database names: `<prefix>_registry`, `_ingest`, `_status`",
		field: func(o *options) any { return &o.cfg.DatabasePrefix }},
	{Flag: "amqp-url", Env: "HOOKMESH_AMQP_URL", Usage: "RabbitMQ URL",
		field: func(o *options) any { return &o.cfg.AMQPURL }},
	{Flag: "amqp-prefix", Env: "HOOKMESH_AMQP_PREFIX", Usage: "prefix of exchange and queue names",
		field: func(o *options) any { return &o.cfg.AMQPPrefix }},
	{Flag: "status-partitions", Env: "HOOKMESH_STATUS_PARTITIONS", Usage: "status queues state changes are spread over; the same in every process",
		field: func(o *options) any { return &o.cfg.StatusPartitions }},
	{Flag: "admin-key", Env: "HOOKMESH_ADMIN_KEY", Usage: "bearer key that manages projects; hookmesh refuses to start without one",
		Default: "none (`make run` keeps one in `.hookmesh/admin-key`)", field: func(o *options) any { return &o.cfg.AdminKey }},
	{Flag: "registry-url", Env: "HOOKMESH_REGISTRY_URL", Usage: "base URL of the registry, for processes without the registry target",
		Default: "the process itself", field: func(o *options) any { return &o.cfg.RegistryURL }},
	{Flag: "ingest-url", Env: "HOOKMESH_INGEST_URL", Usage: "base URL of ingest, for status processes without the ingest target (manual retries read the event)",
		Default: "the process itself", field: func(o *options) any { return &o.cfg.IngestURL }},
	{Flag: "status-url", Env: "HOOKMESH_STATUS_URL", Usage: "base URL of the status service, for ingest processes without the status target (event delivery counts)",
		Default: "the process itself", field: func(o *options) any { return &o.cfg.StatusURL }},
	{Flag: "secret-key", Env: "HOOKMESH_SECRET_KEY", Usage: "32-byte key (hex or base64) encrypting endpoint secrets at rest; the registry refuses to start without it, or with one that cannot open the secrets already stored",
		Default: "none (`make run` keeps one in `.hookmesh/secret-key`)", field: func(o *options) any { return &o.cfg.SecretKey }},
	{Flag: "old-secret-key", Env: "HOOKMESH_OLD_SECRET_KEY", Usage: "the key the endpoint secrets were sealed with, which `hookmesh reseal` replaces with -secret-key",
		Scope: scopeReseal, field: func(o *options) any { return &o.oldSecretKey }},
	{Flag: "public-url", Env: "HOOKMESH_PUBLIC_URL", Usage: "base URL users reach hookmesh at (`https://hooks.example.com`), for the customer portal links CreatePortalLink returns",
		Default: "the scheme and host of the request", field: func(o *options) any { return &o.cfg.PublicURL }},
	{Flag: "require-https", Env: "HOOKMESH_REQUIRE_HTTPS", Usage: "refuse endpoint URLs that are not https",
		field: func(o *options) any { return &o.cfg.RequireHTTPS }},
	{Flag: "allowed-networks", Env: "HOOKMESH_ALLOWED_NETWORKS", Usage: "comma-separated CIDR ranges endpoints may reach even when private networks are not allowed",
		field: func(o *options) any { return &o.allowedNetworks }},
	{Flag: "allow-private-networks", Env: "HOOKMESH_ALLOW_PRIVATE_NETWORKS", Usage: "let endpoints resolve to loopback and private addresses",
		Default: "`false` (`make run` and tests: `true`)", field: func(o *options) any { return &o.cfg.AllowPrivateNetworks }},
	{Flag: "max-event-bytes", Env: "HOOKMESH_MAX_EVENT_BYTES", Usage: "largest event payload accepted",
		field: func(o *options) any { return &o.cfg.MaxEventBytes }},
	{Flag: "delivery-concurrency", Env: "HOOKMESH_DELIVERY_CONCURRENCY", Usage: "webhooks one deliverer sends at once",
		field: func(o *options) any { return &o.cfg.DeliveryConcurrency }},
	{Flag: "breaker-failure-ratio", Env: "HOOKMESH_BREAKER_FAILURE_RATIO", Usage: "share of an endpoint's attempts within the breaker window that, failing, opens its circuit; negative turns the breaker off",
		field: func(o *options) any { return &o.cfg.Breaker.FailureRatio }},
	{Flag: "breaker-min-requests", Env: "HOOKMESH_BREAKER_MIN_REQUESTS", Usage: "attempts the breaker window must hold before the failure ratio counts",
		field: func(o *options) any { return &o.cfg.Breaker.MinRequests }},
	{Flag: "breaker-window", Env: "HOOKMESH_BREAKER_WINDOW", Usage: "how far back the circuit breaker counts attempts",
		field: func(o *options) any { return &o.cfg.Breaker.Window }},
	{Flag: "breaker-cooldown", Env: "HOOKMESH_BREAKER_COOLDOWN", Usage: "how long an open circuit waits before a probe; doubles after each failed probe",
		field: func(o *options) any { return &o.cfg.Breaker.Cooldown }},
	{Flag: "breaker-max-cooldown", Env: "HOOKMESH_BREAKER_MAX_COOLDOWN", Usage: "longest an open circuit waits before a probe",
		field: func(o *options) any { return &o.cfg.Breaker.MaxCooldown }},
	{Flag: "router-workers", Env: "HOOKMESH_ROUTER_WORKERS", Usage: "events one router expands at once",
		field: func(o *options) any { return &o.cfg.RouterWorkers }},
	{Flag: "outbox-sweep-interval", Env: "HOOKMESH_OUTBOX_SWEEP_INTERVAL", Usage: "how often ingest publishes again the events the broker did not confirm",
		field: func(o *options) any { return &o.cfg.OutboxSweepInterval }},
	{Flag: "outbox-grace", Env: "HOOKMESH_OUTBOX_GRACE", Usage: "how old an unconfirmed event must be before it is published again",
		field: func(o *options) any { return &o.cfg.OutboxGrace }},
	{Flag: "status-batch-wait", Env: "HOOKMESH_STATUS_BATCH_WAIT", Usage: "how long the status service gathers state changes before writing them",
		field: func(o *options) any { return &o.cfg.StatusBatchWait }},
	{Flag: "retention-interval", Env: "HOOKMESH_RETENTION_INTERVAL", Usage: "how often the status and ingest services delete the history older than each project's retention",
		field: func(o *options) any { return &o.cfg.RetentionInterval }},
	{Flag: "retention-batch-size", Env: "HOOKMESH_RETENTION_BATCH_SIZE", Usage: "most rows of a kind (deliveries, events, ...) one batch of the pruner deletes; batches are 100 ms apart",
		field: func(o *options) any { return &o.cfg.RetentionBatchSize }},
	{Flag: "cache-ttl", Env: "HOOKMESH_CACHE_TTL", Usage: "how long registry answers are cached by the other services",
		field: func(o *options) any { return &o.cfg.CacheTTL }},
	{Flag: "shutdown-timeout", Env: "HOOKMESH_SHUTDOWN_TIMEOUT", Usage: "bound on the graceful shutdown after SIGINT or SIGTERM",
		field: func(o *options) any { return &o.cfg.ShutdownTimeout }},
	{Flag: "pprof", Env: "HOOKMESH_PPROF", Usage: "serve Go's profiler at /debug/pprof/",
		field: func(o *options) any { return &o.cfg.Pprof }},
	{Flag: "cors-allowed-origins", Env: "HOOKMESH_CORS_ALLOWED_ORIGINS", Usage: "comma-separated browser origins (`https://app.example.com`, `http://127.0.0.1:5173`, or `*`) that may call every API route from another origin; none when empty",
		field: func(o *options) any { return &o.corsOrigins }},
	{Flag: "log-level", Env: "HOOKMESH_LOG_LEVEL", Usage: "debug, info, warn or error",
		field: func(o *options) any { return &o.logLevel }},
	{Env: "HOOKMESH_TARGET", Usage: "services to run when the command line names none: `all`, or a comma-separated list of registry, ingest, router, deliverer, status",
		Default: "`all`", field: func(o *options) any { return &o.target }},

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
	{Env: "HOOKMESH_UPDATE_DEFINITIONS", Usage: "`1` makes `go test ./internal/bus` rewrite deploy/rabbitmq/definitions.json", Scope: scopeTest},
	{Env: "HOOKMESH_UPDATE_README", Usage: "`1` makes `go test ./cmd/hookmesh` rewrite this table", Scope: scopeTest},
	{Env: "HOOKMESH_BENCH_PORT", Usage: "API port of the hookmesh `make bench` starts", Default: "`8089`", Scope: scopeBench},
	{Env: "HOOKMESH_BENCH_FERRETDB_PORT", Usage: "port of the FerretDB `make bench` starts", Default: "`27019`", Scope: scopeBench},
}

// defineFlags makes the flags of the settings in scope on fs, each with
// its variable's value as default; a variable that does not parse is an
// error naming it.
func defineFlags(fs *flag.FlagSet, o *options, getenv func(string) string, scopes ...string) error {
	for _, s := range settings {
		if s.field == nil || s.Flag == "" || !contains(scopes, s.Scope) {
			continue
		}
		// No backquotes: flag would take the quoted words for the value's name.
		usage := strings.ReplaceAll(s.Usage, "`", "") + " (" + s.Env + ")"
		switch p := s.field(o).(type) {
		case *string:
			fs.StringVar(p, s.Flag, *p, usage)
		case *int:
			fs.IntVar(p, s.Flag, *p, usage)
		case *bool:
			fs.BoolVar(p, s.Flag, *p, usage)
		case *float64:
			fs.Float64Var(p, s.Flag, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, s.Flag, *p, usage)
		default:
			panic(fmt.Sprintf("setting %s: unsupported type %T", s.Env, p))
		}
		if v := getenv(s.Env); v != "" {
			if err := fs.Set(s.Flag, v); err != nil {
				return fmt.Errorf("%s=%q: %s", s.Env, v, want(s.field(o)))
			}
		}
	}
	// Variables without a flag (only strings so far).
	for _, s := range settings {
		if s.field != nil && s.Flag == "" && contains(scopes, s.Scope) {
			if v := getenv(s.Env); v != "" {
				*s.field(o).(*string) = v
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// want says what a value of the setting's type looks like.
func want(p any) string {
	switch p.(type) {
	case *int:
		return "want a whole number"
	case *bool:
		return "want true or false"
	case *float64:
		return "want a number"
	case *time.Duration:
		return "want a duration such as 500ms, 30s or 2m"
	}
	return "invalid value"
}

// settingsMarkdown is the README's settings table.
func settingsMarkdown() string {
	def := defaultOptions()
	var b strings.Builder
	b.WriteString("| variable | flag | read by | meaning | default |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range settings {
		flagCol := ""
		if s.Flag != "" {
			flagCol = "`-" + s.Flag + "`"
		}
		scope := s.Scope
		if scope == scopeHookmesh {
			scope = "hookmesh"
		}
		d := s.Default
		if d == "" && s.field != nil {
			d = showDefault(s.field(&def))
		}
		if d == "" {
			d = "none"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Env, flagCol, scope, strings.ReplaceAll(s.Usage, "|", "\\|"), d)
	}
	return b.String()
}

func showDefault(p any) string {
	switch p := p.(type) {
	case *string:
		if *p == "" {
			return ""
		}
		return "`" + *p + "`"
	case *int:
		return "`" + strconv.Itoa(*p) + "`"
	case *bool:
		return "`" + strconv.FormatBool(*p) + "`"
	case *float64:
		return "`" + strconv.FormatFloat(*p, 'g', -1, 64) + "`"
	case *time.Duration:
		return "`" + bus.TierName(*p) + "`"
	}
	return ""
}

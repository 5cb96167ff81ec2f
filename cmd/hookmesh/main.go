// Command hookmesh runs the webhooks gateway: `hookmesh all` runs every
// service in one process; `hookmesh registry|ingest|router|deliverer|status`
// (or a comma-separated list) runs some of them, each as many replicas as
// wanted. Every flag has a HOOKMESH_* environment variable.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookmesh/hookmesh/app"
	"github.com/hookmesh/hookmesh/internal/telemetry"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hookmesh:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, level, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})))
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// parse reads flags, whose defaults come from HOOKMESH_* variables.
func parse(args []string, getenv func(string) string, stderr io.Writer) (app.Config, slog.Level, error) {
	cfg := app.Defaults()
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	envInt := func(name string, def int) int {
		if v, err := strconv.Atoi(getenv(name)); err == nil {
			return v
		}
		return def
	}
	envBool := func(name string) bool {
		v, _ := strconv.ParseBool(getenv(name))
		return v
	}
	envFloat := func(name string, def float64) float64 {
		if v, err := strconv.ParseFloat(getenv(name), 64); err == nil {
			return v
		}
		return def
	}
	envDur := func(name string, def time.Duration) time.Duration {
		if v, err := time.ParseDuration(getenv(name)); err == nil {
			return v
		}
		return def
	}

	fs := flag.NewFlagSet("hookmesh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hookmesh [flags] all|registry|ingest|router|deliverer|status[,...]")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.HTTPAddr, "http-addr", env("HOOKMESH_HTTP_ADDR", cfg.HTTPAddr), "address to serve Connect, gRPC, gRPC-Web and REST on (HOOKMESH_HTTP_ADDR)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert-file", env("HOOKMESH_TLS_CERT_FILE", ""), "TLS certificate for the API (HOOKMESH_TLS_CERT_FILE)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key-file", env("HOOKMESH_TLS_KEY_FILE", ""), "TLS key for the API (HOOKMESH_TLS_KEY_FILE)")
	fs.StringVar(&cfg.MongoURI, "mongodb-uri", env("HOOKMESH_MONGODB_URI", cfg.MongoURI), "MongoDB or FerretDB connection string (HOOKMESH_MONGODB_URI)")
	fs.StringVar(&cfg.PostgresURL, "postgres-url", env("HOOKMESH_POSTGRES_URL", ""), "PostgreSQL connection string for the delivery history (deliveries, attempts, counters, events); empty keeps it in MongoDB (HOOKMESH_POSTGRES_URL)")
	fs.StringVar(&cfg.DatabasePrefix, "database-prefix", env("HOOKMESH_DATABASE_PREFIX", cfg.DatabasePrefix), "prefix of the services' database names (HOOKMESH_DATABASE_PREFIX)")
	fs.StringVar(&cfg.AMQPURL, "amqp-url", env("HOOKMESH_AMQP_URL", cfg.AMQPURL), "RabbitMQ URL (HOOKMESH_AMQP_URL)")
	fs.StringVar(&cfg.AMQPPrefix, "amqp-prefix", env("HOOKMESH_AMQP_PREFIX", cfg.AMQPPrefix), "prefix of exchange and queue names (HOOKMESH_AMQP_PREFIX)")
	fs.IntVar(&cfg.StatusPartitions, "status-partitions", envInt("HOOKMESH_STATUS_PARTITIONS", cfg.StatusPartitions), "status queues state changes are spread over; the same in every process (HOOKMESH_STATUS_PARTITIONS)")
	fs.StringVar(&cfg.AdminKey, "admin-key", env("HOOKMESH_ADMIN_KEY", ""), "bearer key that manages projects (HOOKMESH_ADMIN_KEY)")
	fs.StringVar(&cfg.RegistryURL, "registry-url", env("HOOKMESH_REGISTRY_URL", ""), "base URL of the registry, for processes without the registry target (HOOKMESH_REGISTRY_URL)")
	fs.StringVar(&cfg.IngestURL, "ingest-url", env("HOOKMESH_INGEST_URL", ""), "base URL of ingest, for status processes without the ingest target (manual retries) (HOOKMESH_INGEST_URL)")
	fs.StringVar(&cfg.StatusURL, "status-url", env("HOOKMESH_STATUS_URL", ""), "base URL of the status service, for ingest processes without the status target (HOOKMESH_STATUS_URL)")
	fs.StringVar(&cfg.SecretKey, "secret-key", env("HOOKMESH_SECRET_KEY", ""), "32-byte key (hex or base64) encrypting endpoint secrets at rest (HOOKMESH_SECRET_KEY)")
	fs.BoolVar(&cfg.RequireHTTPS, "require-https", envBool("HOOKMESH_REQUIRE_HTTPS"), "refuse endpoint URLs that are not https (HOOKMESH_REQUIRE_HTTPS)")
	allowed := fs.String("allowed-networks", env("HOOKMESH_ALLOWED_NETWORKS", ""), "comma-separated CIDR ranges endpoints may reach even when private networks are not allowed (HOOKMESH_ALLOWED_NETWORKS)")
	fs.BoolVar(&cfg.AllowPrivateNetworks, "allow-private-networks", envBool("HOOKMESH_ALLOW_PRIVATE_NETWORKS"), "let endpoints resolve to loopback and private addresses (HOOKMESH_ALLOW_PRIVATE_NETWORKS)")
	fs.IntVar(&cfg.MaxEventBytes, "max-event-bytes", envInt("HOOKMESH_MAX_EVENT_BYTES", cfg.MaxEventBytes), "largest event payload accepted (HOOKMESH_MAX_EVENT_BYTES)")
	fs.IntVar(&cfg.DeliveryConcurrency, "delivery-concurrency", envInt("HOOKMESH_DELIVERY_CONCURRENCY", cfg.DeliveryConcurrency), "webhooks one deliverer sends at once (HOOKMESH_DELIVERY_CONCURRENCY)")
	fs.Float64Var(&cfg.Breaker.FailureRatio, "breaker-failure-ratio", envFloat("HOOKMESH_BREAKER_FAILURE_RATIO", 0.7), "share of an endpoint's attempts within the breaker window that, failing, opens its circuit; negative turns the breaker off (HOOKMESH_BREAKER_FAILURE_RATIO)")
	fs.IntVar(&cfg.Breaker.MinRequests, "breaker-min-requests", envInt("HOOKMESH_BREAKER_MIN_REQUESTS", 20), "attempts the breaker window must hold before the failure ratio counts (HOOKMESH_BREAKER_MIN_REQUESTS)")
	fs.DurationVar(&cfg.Breaker.Window, "breaker-window", envDur("HOOKMESH_BREAKER_WINDOW", 30*time.Second), "how far back the circuit breaker counts attempts (HOOKMESH_BREAKER_WINDOW)")
	fs.DurationVar(&cfg.Breaker.Cooldown, "breaker-cooldown", envDur("HOOKMESH_BREAKER_COOLDOWN", 30*time.Second), "how long an open circuit waits before a probe; doubles after each failed probe (HOOKMESH_BREAKER_COOLDOWN)")
	fs.DurationVar(&cfg.Breaker.MaxCooldown, "breaker-max-cooldown", envDur("HOOKMESH_BREAKER_MAX_COOLDOWN", 10*time.Minute), "longest an open circuit waits before a probe (HOOKMESH_BREAKER_MAX_COOLDOWN)")
	fs.IntVar(&cfg.RouterWorkers, "router-workers", envInt("HOOKMESH_ROUTER_WORKERS", cfg.RouterWorkers), "events one router expands at once (HOOKMESH_ROUTER_WORKERS)")
	fs.DurationVar(&cfg.OutboxSweepInterval, "outbox-sweep-interval", envDur("HOOKMESH_OUTBOX_SWEEP_INTERVAL", 15*time.Second), "how often ingest publishes again the events the broker did not confirm (HOOKMESH_OUTBOX_SWEEP_INTERVAL)")
	fs.DurationVar(&cfg.OutboxGrace, "outbox-grace", envDur("HOOKMESH_OUTBOX_GRACE", 30*time.Second), "how old an unconfirmed event must be before it is published again (HOOKMESH_OUTBOX_GRACE)")
	fs.DurationVar(&cfg.StatusBatchWait, "status-batch-wait", envDur("HOOKMESH_STATUS_BATCH_WAIT", time.Second), "how long the status service gathers state changes before writing them (HOOKMESH_STATUS_BATCH_WAIT)")
	fs.DurationVar(&cfg.CacheTTL, "cache-ttl", envDur("HOOKMESH_CACHE_TTL", cfg.CacheTTL), "how long registry answers are cached (HOOKMESH_CACHE_TTL)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", envDur("HOOKMESH_SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout), "bound on the graceful shutdown (HOOKMESH_SHUTDOWN_TIMEOUT)")
	fs.BoolVar(&cfg.Pprof, "pprof", envBool("HOOKMESH_PPROF"), "serve Go's profiler at /debug/pprof/ (HOOKMESH_PPROF)")
	logLevel := fs.String("log-level", env("HOOKMESH_LOG_LEVEL", "info"), "debug, info, warn or error (HOOKMESH_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return cfg, 0, err
	}
	if fs.NArg() > 0 {
		cfg.Targets = fs.Args()
	} else if t := getenv("HOOKMESH_TARGET"); t != "" {
		cfg.Targets = strings.Split(t, ",")
	}
	// Spans are exported only when the standard variables ask for it.
	cfg.ExportTraces = getenv("OTEL_TRACES_EXPORTER") != "" && getenv("OTEL_TRACES_EXPORTER") != "none" ||
		getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	for _, s := range strings.Split(*allowed, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cfg, 0, fmt.Errorf("HOOKMESH_ALLOWED_NETWORKS: %q is not a CIDR range such as 10.1.0.0/16", s)
		}
		cfg.AllowedNetworks = append(cfg.AllowedNetworks, p)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cfg, 0, fmt.Errorf("-log-level %q: want debug, info, warn or error", *logLevel)
	}
	return cfg, level, nil
}

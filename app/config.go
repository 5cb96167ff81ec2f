// Package app assembles hookmesh's services into one process: any set of
// targets (registry, ingest, router, deliverer, status, or all of them),
// served on one address. Services still call each other through their
// Connect clients, over loopback when they share the process, so one process
// behaves like the mesh.
package app

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookmesh/hookmesh/internal/secretbox"
	"github.com/hookmesh/hookmesh/services/deliverer"
)

// Targets.
const (
	TargetAll       = "all"
	TargetRegistry  = "registry"
	TargetIngest    = "ingest"
	TargetRouter    = "router"
	TargetDeliverer = "deliverer"
	TargetStatus    = "status"
)

// AllTargets are the targets `all` runs.
var AllTargets = []string{TargetRegistry, TargetIngest, TargetRouter, TargetDeliverer, TargetStatus}

// Config configures a process. main fills it from flags and HOOKMESH_*
// environment variables.
type Config struct {
	// Targets to run; "all" expands to every service.
	Targets []string
	// HTTPAddr serves Connect, gRPC, gRPC-Web and REST.
	HTTPAddr string
	// TLSCertFile and TLSKeyFile make the API speak TLS.
	TLSCertFile, TLSKeyFile string
	// MongoURI is the MongoDB (or FerretDB) server.
	MongoURI string
	// DatabasePrefix names the services' databases: <prefix>_registry,
	// <prefix>_ingest, <prefix>_status (and the PostgreSQL schemas of the
	// history: <prefix>_ingest, <prefix>_status).
	DatabasePrefix string
	// PostgresURL is the PostgreSQL database that keeps the delivery history
	// (deliveries, attempts, counters, the event list). Empty keeps the
	// history in MongoDB with everything else.
	PostgresURL string
	// AMQPURL is the RabbitMQ broker.
	AMQPURL string
	// AMQPPrefix starts every exchange and queue name.
	AMQPPrefix string
	// StatusPartitions spreads state changes over this many queues.
	StatusPartitions int
	// AdminKey manages projects; the services also call each other with it.
	AdminKey string
	// RegistryURL is where the other services reach the registry; the
	// process's own address when it runs the registry.
	RegistryURL string
	// IngestURL is where the status service reads events for manual
	// retries; the process's own address when it runs ingest. Without it,
	// manual retries are off.
	IngestURL string
	// StatusURL is where ingest asks for the delivery counts of events; the
	// process's own address when it runs the status service. Without it,
	// events are listed without counts.
	StatusURL string
	// AllowPrivateNetworks lets endpoints resolve to private addresses.
	AllowPrivateNetworks bool
	// AllowedNetworks are ranges endpoints may reach even when private
	// networks are not allowed.
	AllowedNetworks []netip.Prefix
	// RequireHTTPS refuses endpoint URLs that are not https.
	RequireHTTPS bool
	// PublicURL is the base URL users reach hookmesh at, for portal links;
	// empty uses the scheme and host of the request that creates one.
	PublicURL string
	// SecretKey encrypts endpoint secrets at rest: 32 bytes, hex or base64.
	// Required by the registry.
	SecretKey string
	// MaxEventBytes caps an event's payload.
	MaxEventBytes int
	// DeliveryConcurrency is how many webhooks one deliverer sends at once.
	DeliveryConcurrency int
	// Breaker sets the deliverers' per-endpoint circuit breaker.
	Breaker deliverer.BreakerConfig
	// RouterWorkers is how many events one router expands at once.
	RouterWorkers int
	// OutboxSweepInterval and OutboxGrace set how often, and after how
	// long, ingest publishes again the events the broker did not confirm
	// (15 s and 30 s when zero).
	OutboxSweepInterval, OutboxGrace time.Duration
	// StatusBatchWait is how long the status service gathers state changes
	// before writing them (see status.Config.BatchWait); 1 s when zero.
	StatusBatchWait time.Duration
	// CacheTTL is how long registry answers are cached by the other services.
	CacheTTL time.Duration
	// RetentionInterval is how often the status and ingest services delete
	// the history older than each project's retention, and
	// RetentionBatchSize the most rows of a kind one batch deletes (see
	// retention.Config: 10 minutes and 5000 when zero).
	RetentionInterval  time.Duration
	RetentionBatchSize int
	// ExportTraces exports spans as the OTEL_* variables say.
	ExportTraces bool
	// SpanProcessors receive every span (tests use an in-memory exporter).
	SpanProcessors []sdktrace.SpanProcessor
	// Pprof serves Go's profiler at /debug/pprof/ on the API address.
	Pprof bool
	// CORSAllowedOrigins may call the API from a browser on another origin.
	CORSAllowedOrigins []string
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
}

// Defaults returns the configuration of API.md's defaults.
func Defaults() Config {
	return Config{
		Targets:             []string{TargetAll},
		HTTPAddr:            "127.0.0.1:8080",
		MongoURI:            "mongodb://127.0.0.1:27017",
		DatabasePrefix:      "hookmesh",
		AMQPURL:             "amqp://guest:guest@127.0.0.1:5672/",
		AMQPPrefix:          "hookmesh",
		StatusPartitions:    4,
		MaxEventBytes:       1 << 20,
		DeliveryConcurrency: 64,
		RouterWorkers:       16,
		CacheTTL:            5 * time.Second,
		ShutdownTimeout:     20 * time.Second,
	}
}

// expand resolves "all" and checks the names.
func (c *Config) expand() error {
	var out []string
	for _, t := range c.Targets {
		for _, name := range strings.Split(t, ",") {
			name = strings.TrimSpace(name)
			switch {
			case name == "":
			case name == TargetAll:
				out = append(out, AllTargets...)
			case slices.Contains(AllTargets, name):
				out = append(out, name)
			default:
				return fmt.Errorf("unknown target %q: want all, %s", name, strings.Join(AllTargets, ", "))
			}
		}
	}
	slices.Sort(out)
	c.Targets = slices.Compact(out)
	if len(c.Targets) == 0 {
		return errors.New("no target: want all, " + strings.Join(AllTargets, ", "))
	}
	return nil
}

func (c *Config) has(target string) bool { return slices.Contains(c.Targets, target) }

// Validate reports a configuration that cannot work, saying what to set.
func (c *Config) Validate() error {
	if err := c.expand(); err != nil {
		return err
	}
	if c.AdminKey == "" {
		return errors.New("HOOKMESH_ADMIN_KEY (-admin-key) is not set: hookmesh refuses to start without an admin key; `make run` generates one for the local stack")
	}
	if len(c.AdminKey) < 16 {
		return errors.New("HOOKMESH_ADMIN_KEY is too short: use at least 16 random characters")
	}
	if c.has(TargetRegistry) {
		if c.SecretKey == "" {
			return errors.New("HOOKMESH_SECRET_KEY (-secret-key) is not set: the registry encrypts endpoint secrets at rest with it; generate one with `openssl rand -base64 32` (`make run` keeps one in .hookmesh/secret-key)")
		}
		if _, err := secretbox.ParseKey(c.SecretKey); err != nil {
			return fmt.Errorf("HOOKMESH_SECRET_KEY: %w", err)
		}
	}
	if !c.has(TargetRegistry) && c.RegistryURL == "" && (c.has(TargetIngest) || c.has(TargetRouter) || c.has(TargetDeliverer) || c.has(TargetStatus)) {
		return errors.New("HOOKMESH_REGISTRY_URL (-registry-url) is not set: a process without the registry target must know where the registry is")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("HOOKMESH_PUBLIC_URL %q: want an http or https URL such as https://hooks.example.com, with no query or fragment", c.PublicURL)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("set both HOOKMESH_TLS_CERT_FILE and HOOKMESH_TLS_KEY_FILE, or neither")
	}
	if c.MaxEventBytes <= 0 || c.DeliveryConcurrency <= 0 || c.StatusPartitions <= 0 {
		return errors.New("max event bytes, delivery concurrency and status partitions must be positive")
	}
	if c.Breaker.FailureRatio > 1 {
		return fmt.Errorf("HOOKMESH_BREAKER_FAILURE_RATIO %v: want a share of attempts between 0 and 1 (negative turns the breaker off)", c.Breaker.FailureRatio)
	}
	if c.Breaker.MinRequests < 0 || c.Breaker.Window < 0 || c.Breaker.Cooldown < 0 || c.Breaker.MaxCooldown < 0 {
		return errors.New("HOOKMESH_BREAKER_MIN_REQUESTS, _WINDOW, _COOLDOWN and _MAX_COOLDOWN must not be negative")
	}
	if c.RetentionInterval < 0 || c.RetentionBatchSize < 0 {
		return fmt.Errorf("HOOKMESH_RETENTION_INTERVAL %s and HOOKMESH_RETENTION_BATCH_SIZE %d must not be negative (0 keeps the defaults, 10m and 5000)", c.RetentionInterval, c.RetentionBatchSize)
	}
	return nil
}

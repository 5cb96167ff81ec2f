// Package app assembles hookmesh's services into one process: any set of
// targets (registry, ingest, router, deliverer, status, or all of them),
// served on one address. Services still call each other through their
// Connect clients, over loopback when they share the process, so one process
// behaves like the mesh.
package app

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookmesh/hookmesh/internal/retention"
	"github.com/hookmesh/hookmesh/services/deliverer"
	"github.com/hookmesh/hookmesh/services/ingest"
	"github.com/hookmesh/hookmesh/services/registry"
	"github.com/hookmesh/hookmesh/services/router"
	"github.com/hookmesh/hookmesh/services/status"
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
// environment variables: RegisterFlags declares the process's own, and each
// service's Config declares its own.
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
	// AMQPURL is the RabbitMQ broker, or several nodes of one cluster,
	// comma-separated (see bus.Config.URL).
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
	// CacheTTL is how long registry answers are cached by the other services.
	CacheTTL time.Duration
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

	// Retention says how often and how fast the status and ingest services
	// prune the history older than each project's retention.
	Retention retention.Config

	// The services' own configurations.
	Registry  registry.Config
	Ingest    ingest.Config
	Status    status.Config
	Router    router.Config
	Deliverer deliverer.Config
}

// RegisterFlags declares on fs the flags of the process and of every
// service, each with its default. Every flag has an environment variable
// named after it (see main).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address to serve Connect, gRPC, gRPC-Web and REST on")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "TLS certificate for the API (with -tls-key-file); none serves plain HTTP")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "TLS key for the API (with -tls-cert-file)")
	fs.StringVar(&c.MongoURI, "mongodb-uri", "mongodb://127.0.0.1:27017", "MongoDB or FerretDB connection string (make run starts FerretDB when it is not set)")
	fs.StringVar(&c.PostgresURL, "postgres-url", "", "PostgreSQL connection string for the delivery history (deliveries, attempts, counters, events); empty keeps it in MongoDB (make run sets up the database hookmesh_history unless it is none)")
	fs.StringVar(&c.DatabasePrefix, "database-prefix", "hookmesh", "prefix of the services' database names: <prefix>_registry, _ingest, _status")
	fs.StringVar(&c.AMQPURL, "amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL, or the URLs of several nodes of one cluster, comma-separated: a process connects to one (starting at a random one) and moves to the next when its connection goes away")
	fs.StringVar(&c.AMQPPrefix, "amqp-prefix", "hookmesh", "prefix of exchange and queue names")
	fs.IntVar(&c.StatusPartitions, "status-partitions", 4, "status queues state changes are spread over; the same in every process")
	fs.StringVar(&c.AdminKey, "admin-key", "", "bearer key that manages projects; hookmesh refuses to start without one")
	fs.StringVar(&c.RegistryURL, "registry-url", "", "base URL of the registry, for processes without the registry target")
	fs.StringVar(&c.IngestURL, "ingest-url", "", "base URL of ingest, for status processes without the ingest target (manual retries read the event)")
	fs.StringVar(&c.StatusURL, "status-url", "", "base URL of the status service, for ingest processes without the status target (event delivery counts)")
	fs.Func("allowed-networks", "comma-separated CIDR ranges endpoints may reach even when private networks are not allowed", func(v string) error {
		c.AllowedNetworks = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("%q is not a CIDR range such as 10.1.0.0/16", s)
			}
			c.AllowedNetworks = append(c.AllowedNetworks, p)
		}
		return nil
	})
	fs.BoolVar(&c.AllowPrivateNetworks, "allow-private-networks", false, "let endpoints resolve to loopback and private addresses")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", 5*time.Second, "how long registry answers are cached by the other services")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "bound on the graceful shutdown after SIGINT or SIGTERM")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/")
	fs.Func("cors-allowed-origins", "comma-separated browser origins (https://app.example.com, http://127.0.0.1:5173, or *) that may call every API route from another origin; none when empty", func(v string) error {
		c.CORSAllowedOrigins = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if err := checkOrigin(s); err != nil {
				return err
			}
			c.CORSAllowedOrigins = append(c.CORSAllowedOrigins, s)
		}
		return nil
	})
	c.Retention.RegisterFlags(fs)
	c.Registry.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	c.Status.RegisterFlags(fs)
	c.Router.RegisterFlags(fs)
	c.Deliverer.RegisterFlags(fs)
}

// checkOrigin accepts "*" or an origin as browsers send it: scheme and host,
// with a port if any, and nothing after.
func checkOrigin(s string) error {
	if s == "*" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin such as https://app.example.com or http://127.0.0.1:5173 (scheme and host, with a port if any, and nothing after)", s)
	}
	if u.Path == "/" {
		return fmt.Errorf("%q: an origin has no path; drop the trailing /", s)
	}
	return nil
}

// Defaults returns the configuration the flags default to, running every
// target.
func Defaults() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	c.Targets = []string{TargetAll}
	return c
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
	if !c.has(TargetRegistry) && c.RegistryURL == "" && needs(c.Targets, moduleRegistryClient) {
		return errors.New("HOOKMESH_REGISTRY_URL (-registry-url) is not set: a process without the registry target must know where the registry is")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("set both HOOKMESH_TLS_CERT_FILE and HOOKMESH_TLS_KEY_FILE, or neither")
	}
	if c.StatusPartitions <= 0 {
		return errors.New("HOOKMESH_STATUS_PARTITIONS must be positive")
	}
	if c.has(TargetIngest) || c.has(TargetStatus) {
		if err := c.Retention.Validate(); err != nil {
			return err
		}
	}
	// Each service checks its own settings, when the process runs it.
	c.Registry.AdminKey = c.AdminKey
	c.Status.Database = c.DatabasePrefix + "_status"
	for _, s := range []struct {
		target   string
		validate func() error
	}{
		{TargetRegistry, c.Registry.Validate},
		{TargetIngest, c.Ingest.Validate},
		{TargetStatus, c.Status.Validate},
		{TargetRouter, c.Router.Validate},
		{TargetDeliverer, c.Deliverer.Validate},
	} {
		if c.has(s.target) {
			if err := s.validate(); err != nil {
				return err
			}
		}
	}
	return nil
}

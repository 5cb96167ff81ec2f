// Package integration runs hookmesh's services in-process on the real
// RabbitMQ and the MongoDB-compatible server: once as `all` in one process,
// and once as separate processes (one App per target, talking over
// loopback), as a deployment would.
package integration

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookmesh/hookmesh/app"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

const (
	adminKey = "test-admin-key-0123456789"
	// testSecretKey encrypts endpoint secrets at rest in tests.
	testSecretKey = "5rnBbP1fKGgpYuN1AzRkW5dYb0Ynbj2AQAq7eUMR5Vs="
)

// mode says how the services are laid out in processes.
type mode string

const (
	modeAll      mode = "all"
	modeSeparate mode = "separate"
)

var modes = []mode{modeAll, modeSeparate}

// stack is a running hookmesh.
type stack struct {
	registryURL, ingestURL, statusURL string
	cfg                               app.Config
	// stop stops the stack's processes and waits for them to finish.
	stop func()
}

type stackOptions struct {
	spans         sdktrace.SpanProcessor
	maxEventBytes int
	configure     func(*app.Config)
	// routers and deliverers are how many of each separate mode starts (1
	// when 0).
	routers, deliverers int
	// after starts the stack on the databases and queues of an earlier one
	// (which must be stopped), as a restart would.
	after *stack
	// logs, when set, also gets every log line at info level and above, as
	// JSON.
	logs io.Writer
	// targets, in modeAll, replaces `all` with these targets in the one
	// process (tests that run a target as a process of its own leave it out).
	targets []string
}

// logger writes the services' warnings and errors to the test's output
// (shown when it fails), and everything with HOOKMESH_TEST_LOG set.
func logger(tb testing.TB) *slog.Logger {
	if os.Getenv("HOOKMESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", tb.Name())
	}
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startStack starts hookmesh in the given mode with its own databases and
// AMQP names, and stops and removes all of it when the test ends.
func startStack(tb testing.TB, m mode, opts stackOptions) *stack {
	tb.Helper()
	name := testenv.DatabaseName(tb)
	if opts.after != nil {
		name = opts.after.cfg.DatabasePrefix
	}
	base := app.Defaults()
	base.HTTPAddr = "127.0.0.1:0"
	base.MongoURI = testenv.MongoURI(tb)
	base.PostgresURL = testenv.PostgresURL()
	base.AMQPURL = testenv.AMQPURL(tb)
	base.DatabasePrefix = name
	base.AMQPPrefix = name
	base.StatusPartitions = 2
	base.AdminKey = adminKey
	base.Registry.SecretKey = testSecretKey
	base.AllowPrivateNetworks = true
	base.Deliverer.Concurrency = 16
	base.Router.Workers = 4
	// Long enough that a test sees a registry change only through the
	// change notifications on the bus, never through expiry.
	base.CacheTTL = time.Minute
	base.ShutdownTimeout = 5 * time.Second
	// Shorter than in production, so that tests see states sooner.
	base.Status.BatchWait = 200 * time.Millisecond
	base.Ingest.SweepInterval = 200 * time.Millisecond
	// Long enough that no event of a busy test is still being published.
	base.Ingest.SweepGrace = 5 * time.Second
	if opts.maxEventBytes > 0 {
		base.Ingest.MaxPayloadBytes = opts.maxEventBytes
	}
	if opts.spans != nil {
		base.SpanProcessors = []sdktrace.SpanProcessor{opts.spans}
	}
	if opts.configure != nil {
		opts.configure(&base)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	launch := func(cfg app.Config, targets ...string) (*app.App, error) {
		cfg.Targets = targets
		l := logger(tb)
		if opts.logs != nil {
			l = slog.New(slog.NewJSONHandler(opts.logs, nil))
		}
		a, err := app.New(ctx, cfg, l.With("targets", targets))
		if err != nil {
			return nil, err
		}
		wg.Go(func() {
			if err := a.Run(ctx); err != nil {
				tb.Errorf("run %v: %v", targets, err)
			}
		})
		return a, nil
	}
	startWith := func(cfg app.Config, targets ...string) *app.App {
		a, err := launch(cfg, targets...)
		if err != nil {
			tb.Fatalf("start %v: %v", targets, err)
		}
		return a
	}
	start := func(targets ...string) *app.App { return startWith(base, targets...) }
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { cancel(); wg.Wait() }) }
	tb.Cleanup(func() {
		stop()
		if opts.after == nil {
			cleanup(tb, base)
		}
	})

	s := &stack{cfg: base, stop: stop}
	switch m {
	case modeAll:
		targets := opts.targets
		if len(targets) == 0 {
			targets = []string{app.TargetAll}
		}
		a := start(targets...)
		s.registryURL, s.ingestURL, s.statusURL = a.URL(), a.URL(), a.URL()
	case modeSeparate:
		reg := start(app.TargetRegistry)
		base.RegistryURL = reg.URL()
		// Status and ingest call each other: choose ingest's address first.
		// Another process may take it before ingest binds it, so a few are
		// tried.
		var st, ing *app.App
		for try := 0; ing == nil; try++ {
			ingestAddr := freeAddr(tb)
			base.IngestURL = "http://" + ingestAddr
			if st == nil || try > 0 {
				st = start(app.TargetStatus)
			}
			base.StatusURL = st.URL()
			ingCfg := base
			ingCfg.HTTPAddr = ingestAddr
			a, err := launch(ingCfg, app.TargetIngest)
			if err != nil && !strings.Contains(err.Error(), "address already in use") || err != nil && try == 4 {
				tb.Fatalf("start ingest: %v", err)
			}
			ing = a
		}
		for range max(opts.routers, 1) {
			start(app.TargetRouter)
		}
		for range max(opts.deliverers, 1) {
			start(app.TargetDeliverer)
		}
		s.registryURL, s.ingestURL, s.statusURL = reg.URL(), ing.URL(), st.URL()
	}
	s.cfg = base
	return s
}

// cleanup drops the stack's databases and AMQP topology.
func cleanup(tb testing.TB, cfg app.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := testenv.Client(tb)
	for _, svc := range []string{"registry", "ingest", "status"} {
		_ = client.Database(cfg.DatabasePrefix + "_" + svc).Drop(ctx)
		if cfg.PostgresURL != "" {
			_ = pgdb.DropSchema(ctx, cfg.PostgresURL, cfg.DatabasePrefix+"_"+svc)
		}
	}
	topo := mesh.NewTopology(cfg.AMQPPrefix, cfg.StatusPartitions)
	conn, err := bus.Dial(ctx, topo.BusConfig(cfg.AMQPURL, ""), sdktrace.NewTracerProvider(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel(ctx)
	if err != nil {
		return
	}
	defer ch.Close()
	_ = topo.Delete(ch)
}

// clients for one key.
type clients struct {
	registry registryv1connect.RegistryServiceClient
	ingest   ingestv1connect.IngestServiceClient
	status   statusv1connect.StatusServiceClient
}

func (s *stack) clients(key string, opts ...connect.ClientOption) clients {
	opts = append([]connect.ClientOption{connect.WithInterceptors(auth.BearerInterceptor(key))}, opts...)
	hc := http.DefaultClient
	return clients{
		registry: registryv1connect.NewRegistryServiceClient(hc, s.registryURL, opts...),
		ingest:   ingestv1connect.NewIngestServiceClient(hc, s.ingestURL, opts...),
		status:   statusv1connect.NewStatusServiceClient(hc, s.statusURL, opts...),
	}
}

// singleAttempt is a project whose deliveries are tried once: what fails
// is FAILED at once.
var singleAttempt = &registryv1.CreateProjectRequest{Name: "single attempt", RetryPolicy: &registryv1.RetryPolicy{
	Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: 1, MaxAttempts: 1}}

// project creates a project and returns its id and key.
func (s *stack) project(tb testing.TB, req *registryv1.CreateProjectRequest) (string, string) {
	tb.Helper()
	if req == nil {
		req = &registryv1.CreateProjectRequest{Name: "test"}
	}
	resp, err := s.clients(adminKey).registry.CreateProject(context.Background(), connect.NewRequest(req))
	if err != nil {
		tb.Fatalf("create project: %v", err)
	}
	return resp.Msg.GetProject().GetId(), resp.Msg.GetKey()
}

// endpoint creates an endpoint and returns it with its secret.
func (s *stack) endpoint(tb testing.TB, key string, req *registryv1.CreateEndpointRequest) *registryv1.Endpoint {
	tb.Helper()
	resp, err := s.clients(key).registry.CreateEndpoint(context.Background(), connect.NewRequest(req))
	if err != nil {
		tb.Fatalf("create endpoint: %v", err)
	}
	return resp.Msg.GetEndpoint()
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/netguard"
	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/internal/retention"
	"github.com/hookmesh/hookmesh/internal/secretbox"
	"github.com/hookmesh/hookmesh/internal/server"
	"github.com/hookmesh/hookmesh/internal/store"
	"github.com/hookmesh/hookmesh/internal/strictjson"
	"github.com/hookmesh/hookmesh/internal/telemetry"
	"github.com/hookmesh/hookmesh/internal/webhook"
	"github.com/hookmesh/hookmesh/services/deliverer"
	"github.com/hookmesh/hookmesh/services/ingest"
	"github.com/hookmesh/hookmesh/services/operations"
	"github.com/hookmesh/hookmesh/services/registry"
	regclient "github.com/hookmesh/hookmesh/services/registry/client"
	"github.com/hookmesh/hookmesh/services/router"
	"github.com/hookmesh/hookmesh/services/status"
	"github.com/hookmesh/hookmesh/ui"
)

// App is one hookmesh process.
type App struct {
	cfg    Config
	logger *slog.Logger
	tel    *telemetry.Telemetry
	server *server.Server
	addr   string

	mongo   *mongo.Client
	bus     *bus.Conn
	pub     *bus.Publisher
	sender  *webhook.Sender
	runners []func(context.Context) error
	closers []func()
}

// New connects to what the targets need, creates indexes and binds the
// address. Run serves.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	a.tel, err = telemetry.Setup(ctx, telemetry.Config{
		ServiceName:    "hookmesh-" + strings.Join(cfg.Targets, "-"),
		ExportTraces:   cfg.ExportTraces,
		SpanProcessors: cfg.SpanProcessors,
	})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.tel.Shutdown(sctx)
	})
	a.server = server.New(server.Config{Addr: cfg.HTTPAddr, ShutdownTimeout: cfg.ShutdownTimeout, TLSCertFile: cfg.TLSCertFile, TLSKeyFile: cfg.TLSKeyFile, Pprof: cfg.Pprof, CORSAllowedOrigins: cfg.CORSAllowedOrigins}, logger, a.tel.Metrics)
	addr, err := a.server.Listen()
	if err != nil {
		return nil, err
	}
	a.addr = addr.String()

	if cfg.has(TargetRegistry) || cfg.has(TargetIngest) || cfg.has(TargetStatus) {
		if a.mongo, err = store.Connect(ctx, cfg.MongoURI); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func() { _ = a.mongo.Disconnect(context.Background()) })
		a.server.AddReadyCheck("mongodb", func(ctx context.Context) error { return a.mongo.Ping(ctx, readpref.Primary()) })
	}
	{
		// Every target uses the bus: the registry announces changes on it, and
		// the others hear them.
		a.bus, err = bus.Dial(ctx, bus.Config{URL: cfg.AMQPURL, Prefix: cfg.AMQPPrefix, StatusPartitions: cfg.StatusPartitions, Name: "hookmesh " + strings.Join(cfg.Targets, ",")},
			a.tel.TracerProvider, a.tel.Propagator, logger)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func() { _ = a.bus.Close() })
		a.pub = a.bus.NewPublisher(4)
		a.closers = append(a.closers, a.pub.Close)
		a.server.AddReadyCheck("rabbitmq", a.bus.Ready)
		if err := a.bus.RegisterQueueMetrics(a.tel.MeterProvider); err != nil {
			return nil, err
		}
	}
	if err := a.assemble(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Addr is the address the process serves on.
func (a *App) Addr() string { return a.addr }

// URL is the base URL of the process's API.
func (a *App) URL() string {
	if a.cfg.TLSCertFile != "" {
		return "https://" + a.addr
	}
	return "http://" + a.addr
}

// history opens the PostgreSQL schema <prefix>_<name> that keeps a
// service's history, or returns nil when no PostgreSQL URL is configured
// (the history then stays in MongoDB).
func (a *App) history(ctx context.Context, name string) (*pgxpool.Pool, error) {
	if a.cfg.PostgresURL == "" {
		return nil, nil
	}
	schema := a.cfg.DatabasePrefix + "_" + name
	pool, err := pgdb.Open(ctx, a.cfg.PostgresURL, schema)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, pool.Close)
	a.server.AddReadyCheck("postgres "+schema, pool.Ping)
	return pool, nil
}

func (a *App) db(name string) *mongo.Database {
	return a.mongo.Database(a.cfg.DatabasePrefix + "_" + name)
}

func (a *App) assemble(ctx context.Context) error {
	cfg := a.cfg
	otel, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(a.tel.TracerProvider),
		otelconnect.WithMeterProvider(a.tel.MeterProvider),
		otelconnect.WithPropagator(a.tel.Propagator),
		// Trust the caller's trace context, so that an event is one trace
		// from the caller (or the calling hookmesh service) onwards.
		otelconnect.WithTrustRemote(),
	)
	if err != nil {
		return fmt.Errorf("create tracing interceptor: %w", err)
	}
	logger := a.logger
	// Responses are compressed only when large: gzipping every small answer
	// cost a twentieth of the CPU of an ingest call.
	compressLarge := connect.WithCompressMinBytes(4 << 10)
	// No request to these APIs needs more; ingest allows events' size.
	readMax := connect.WithReadMaxBytes(1 << 20)
	// JSON requests with a field the schema does not know are refused, not
	// silently trimmed.
	strict := connect.WithHandlerOptions(strictjson.HandlerOptions()...)

	registryURL := cfg.RegistryURL
	var regSvc *registry.Service
	if cfg.has(TargetRegistry) {
		key, err := secretbox.ParseKey(cfg.SecretKey)
		if err != nil {
			return fmt.Errorf("HOOKMESH_SECRET_KEY: %w", err)
		}
		box, err := secretbox.New(key)
		if err != nil {
			return err
		}
		regSvc, err = registry.New(registry.Config{AdminKey: cfg.AdminKey, AllowPrivateNetworks: cfg.AllowPrivateNetworks,
			RequireHTTPS: cfg.RequireHTTPS, Secrets: box, PublicURL: cfg.PublicURL}, a.db("registry"), logger)
		if err != nil {
			return err
		}
		if err := regSvc.Init(ctx); err != nil {
			return fmt.Errorf("start registry: %w", err)
		}
		// A key that cannot open the secrets already stored would fail every
		// delivery to an existing endpoint: refuse to start instead.
		if err := regSvc.CheckSecretKey(ctx); err != nil {
			return fmt.Errorf("start registry: %w", err)
		}
		topo := a.bus.Topology()
		regSvc.SetNotifier(func(ctx context.Context, projectID, procedure string) error {
			return a.pub.Publish(ctx, []bus.Message{topo.ChangeMessage(&busv1.RegistryChange{
				ProjectId: projectID, Procedure: procedure, Time: timestamppb.Now()})})
		})
		keys := auth.NewKeys(cfg.AdminKey, regSvc)
		a.server.AddServices(regSvc.Register(a.server.Mux(), connect.WithInterceptors(otel, apierr.NewInterceptor(logger), keys.Interceptor()), compressLarge, readMax, strict)...)
		if registryURL == "" {
			registryURL = a.URL()
		}
	}

	// internalHTTP carries the services' calls to each other. With TLS it
	// also trusts the process's own certificate, which may be self-signed.
	internalTransport := &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second}
	if cfg.TLSCertFile != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.TLSCertFile)
		if err != nil {
			return fmt.Errorf("read HOOKMESH_TLS_CERT_FILE: %w", err)
		}
		roots.AppendCertsFromPEM(pem)
		internalTransport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		internalTransport.ForceAttemptHTTP2 = true
	}
	internalHTTP := &http.Client{Transport: internalTransport, Timeout: 30 * time.Second}
	var reg *regclient.Client
	if cfg.has(TargetIngest) || cfg.has(TargetRouter) || cfg.has(TargetDeliverer) || cfg.has(TargetStatus) {
		internal := registryv1connect.NewRegistryInternalServiceClient(internalHTTP, registryURL,
			connect.WithInterceptors(otel, auth.BearerInterceptor(cfg.AdminKey)))
		reg = regclient.New(internal, cfg.CacheTTL)
	}
	a.runners = append(a.runners, func(ctx context.Context) error {
		return a.bus.Subscribe(ctx, a.bus.Topology().RegistryExchange, func() {
			if reg != nil {
				reg.InvalidateAll()
			}
		}, func(d *bus.Delivery) {
			var change busv1.RegistryChange
			if err := bus.Decode(d, &change); err != nil {
				logger.Warn("undecodable registry change", "err", err)
				return
			}
			if reg != nil {
				reg.Invalidate(change.GetProjectId())
			}
			if regSvc != nil {
				regSvc.InvalidateProject(change.GetProjectId())
			}
		})
	})
	keys := auth.NewKeys(cfg.AdminKey, reg)
	handlerOpts := func(extra ...connect.HandlerOption) []connect.HandlerOption {
		return append([]connect.HandlerOption{connect.WithInterceptors(otel, apierr.NewInterceptor(logger), keys.Interceptor()), compressLarge, readMax, strict}, extra...)
	}

	if cfg.has(TargetIngest) {
		var summaries ingest.Deliveries
		statusURL := cfg.StatusURL
		if statusURL == "" && cfg.has(TargetStatus) {
			statusURL = a.URL()
		}
		if statusURL != "" {
			summaries = statusSummaries{statusv1connect.NewStatusServiceClient(internalHTTP, statusURL,
				connect.WithInterceptors(otel, auth.BearerInterceptor(cfg.AdminKey)))}
		}
		// The event list lives in PostgreSQL when it is configured, where
		// every list filter is an index range; else in MongoDB.
		pool, err := a.history(ctx, "ingest")
		if err != nil {
			return fmt.Errorf("start ingest: %w", err)
		}
		var events ingest.Store
		if pool != nil {
			events = ingest.NewPostgresStore(pool)
		} else {
			events = ingest.NewMongoStore(a.db("ingest"))
		}
		svc := ingest.New(ingest.Config{MaxPayloadBytes: cfg.MaxEventBytes, SweepInterval: cfg.OutboxSweepInterval, SweepGrace: cfg.OutboxGrace}, events, endpointChecker{reg}, summaries, a.pub, a.bus.Topology(), keys, logger.With("service", "ingest"))
		if err := svc.Init(ctx); err != nil {
			return fmt.Errorf("start ingest: %w", err)
		}
		a.closers = append(a.closers, svc.Close)
		a.runners = append(a.runners, svc.RunSweeper)
		if err := a.prune("ingest", reg, svc); err != nil {
			return err
		}
		rest := func(h http.Handler) http.Handler {
			return otelhttp.NewHandler(h, "ingest.rest", otelhttp.WithTracerProvider(a.tel.TracerProvider), otelhttp.WithPropagators(a.tel.Propagator))
		}
		// The envelope of a request may add JSON escaping to the payload.
		eventMax := connect.WithReadMaxBytes(2*cfg.MaxEventBytes + 64<<10)
		a.server.AddServices(svc.Register(a.server.Mux(), rest, handlerOpts(eventMax)...)...)
	}
	if cfg.has(TargetStatus) {
		// The history is in PostgreSQL when a URL is configured, else in
		// MongoDB.
		pool, err := a.history(ctx, "status")
		if err != nil {
			return fmt.Errorf("start status: %w", err)
		}
		svc := status.New(status.Config{BatchWait: cfg.StatusBatchWait}, a.db("status"), logger, status.WithPostgres(pool))
		if err := svc.Init(ctx); err != nil {
			return fmt.Errorf("start status: %w", err)
		}
		ingestURL := cfg.IngestURL
		if ingestURL == "" && cfg.has(TargetIngest) {
			ingestURL = a.URL()
		}
		if ingestURL != "" {
			events := ingestEvents{ingestv1connect.NewIngestServiceClient(internalHTTP, ingestURL,
				connect.WithInterceptors(otel, auth.BearerInterceptor(cfg.AdminKey)))}
			svc.EnableRetries(events, reg, a.pub, a.bus.Topology())
		}
		svc.EnablePortal(reg)
		a.server.AddServices(svc.Register(a.server.Mux(), handlerOpts()...)...)
		a.server.AddServices(operations.Register(a.server.Mux(), a.bus, handlerOpts()...)...)
		a.runners = append(a.runners, func(ctx context.Context) error { return svc.Consume(ctx, a.bus) })
		if err := a.prune("status", reg, svc); err != nil {
			return err
		}
	}
	// The dashboard calls the public APIs on the origin it was loaded from:
	// every process that serves one serves it too (all of them together in
	// `all` mode).
	if cfg.has(TargetRegistry) || cfg.has(TargetIngest) || cfg.has(TargetStatus) {
		ui.Mount(a.server.Mux())
	}
	if cfg.has(TargetRouter) {
		r := router.New(router.Config{Workers: cfg.RouterWorkers}, a.bus, a.pub, reg, logger.With("service", "router"))
		a.runners = append(a.runners, r.Run)
	}
	if cfg.has(TargetDeliverer) {
		guard := netguard.New(cfg.AllowPrivateNetworks, cfg.AllowedNetworks)
		a.sender = webhook.NewSender(webhook.Config{MaxConnsPerHost: cfg.DeliveryConcurrency, DialControl: guard.DialControl},
			webhook.WithTracerProvider(a.tel.TracerProvider), webhook.WithMeterProvider(a.tel.MeterProvider), webhook.WithPropagator(a.tel.Propagator))
		a.closers = append(a.closers, a.sender.Close)
		d, err := deliverer.New(deliverer.Config{Concurrency: cfg.DeliveryConcurrency, Breaker: cfg.Breaker}, a.bus, a.pub, reg, a.sender, a.tel.MeterProvider, logger.With("service", "deliverer"))
		if err != nil {
			return err
		}
		a.runners = append(a.runners, d.Run)
	}
	return nil
}

// Run serves and consumes until ctx ends or a part fails, then stops every
// part: consumers stop taking messages and finish what they hold, the HTTP
// server finishes its requests, and connections close.
func (a *App) Run(ctx context.Context) error {
	defer a.close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	errs := make(chan error, len(a.runners)+1)
	runPart := func(f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				errs <- err
				cancel(err)
			}
		})
	}
	// Consumers stop before the server so that what they hold is reported
	// while the APIs the reports need are still up.
	consumersDone := make(chan struct{})
	var cwg sync.WaitGroup
	for _, r := range a.runners {
		cwg.Go(func() {
			if err := r(ctx); err != nil {
				errs <- err
				cancel(err)
			}
		})
	}
	go func() { cwg.Wait(); close(consumersDone) }()
	serverCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	runPart(func(context.Context) error { return a.server.Serve(serverCtx) })
	targets := strings.Join(a.cfg.Targets, ",")
	a.logger.Info("hookmesh started", "targets", targets, "addr", a.addr)
	<-ctx.Done()
	stopping := time.Now()
	a.logger.Info("hookmesh stopping", "targets", targets, "reason", context.Cause(ctx).Error())
	<-consumersDone
	stopServer()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	err := errors.Join(all...)
	if err != nil {
		a.logger.Error("hookmesh stopped", "targets", targets, "took", time.Since(stopping).String(), "err", err)
	} else {
		a.logger.Info("hookmesh stopped", "targets", targets, "took", time.Since(stopping).String())
	}
	return err
}

func (a *App) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// prune runs a pruner of a service's history, with each project's
// retention from the registry.
func (a *App) prune(name string, reg *regclient.Client, st retention.Store) error {
	p, err := retention.New(retention.Config{Interval: a.cfg.RetentionInterval, BatchSize: a.cfg.RetentionBatchSize},
		name, reg, st, a.tel.MeterProvider, a.logger.With("service", name))
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	a.runners = append(a.runners, p.Run)
	return nil
}

// endpointChecker answers ingest's question through the registry client.
type endpointChecker struct{ c *regclient.Client }

func (e endpointChecker) EndpointExists(ctx context.Context, projectID, endpointID string) (bool, error) {
	_, err := e.c.GetTarget(ctx, projectID, endpointID)
	if connect.CodeOf(err) == connect.CodeNotFound {
		return false, nil
	}
	return err == nil, err
}

// statusSummaries answers ingest's question through the status client.
type statusSummaries struct {
	c statusv1connect.StatusServiceClient
}

func (s statusSummaries) SummarizeEvents(ctx context.Context, projectID string, eventIDs []string) (map[string]*statusv1.EventSummary, error) {
	resp, err := s.c.SummarizeEvents(ctx, connect.NewRequest(&statusv1.SummarizeEventsRequest{ProjectId: projectID, EventIds: eventIDs}))
	if err != nil {
		return nil, err
	}
	out := make(map[string]*statusv1.EventSummary, len(resp.Msg.GetSummaries()))
	for _, sum := range resp.Msg.GetSummaries() {
		out[sum.GetEventId()] = sum
	}
	return out, nil
}

// ingestEvents answers the status service's question through the ingest
// client.
type ingestEvents struct {
	c ingestv1connect.IngestServiceClient
}

func (e ingestEvents) GetEvent(ctx context.Context, projectID, eventID string) (*ingestv1.Event, error) {
	resp, err := e.c.GetEvent(ctx, connect.NewRequest(&ingestv1.GetEventRequest{ProjectId: projectID, EventId: eventID}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetEvent(), nil
}

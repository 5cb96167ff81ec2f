package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/metaevent"
	"github.com/hookmesh/hookmesh/internal/netguard"
	"github.com/hookmesh/hookmesh/internal/store"
	"github.com/hookmesh/hookmesh/internal/strictjson"
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

// Modules that are not targets: what the targets are built on.
const (
	moduleMongoDB        = "mongodb"
	moduleBus            = "bus"
	moduleRPC            = "rpc"
	moduleRegistryClient = "registry-client"
	moduleChanges        = "changes"
	moduleUI             = "ui"
)

// moduleDeps says what each module needs started before it. A target is a
// module a user can name; running it runs its dependencies too, once each,
// in an order where every module comes after what it needs.
var moduleDeps = map[string][]string{
	moduleMongoDB:        nil,
	moduleBus:            nil,
	moduleRPC:            nil,
	moduleUI:             nil,
	moduleRegistryClient: {moduleRPC},
	// Every process hears registry changes, to drop what it cached.
	moduleChanges:   {moduleBus},
	TargetRegistry:  {moduleMongoDB, moduleBus, moduleRPC, moduleChanges, moduleUI},
	TargetIngest:    {moduleMongoDB, moduleBus, moduleRPC, moduleRegistryClient, moduleChanges, moduleUI},
	TargetStatus:    {moduleMongoDB, moduleBus, moduleRPC, moduleRegistryClient, moduleChanges, moduleUI},
	TargetRouter:    {moduleBus, moduleRegistryClient, moduleChanges},
	TargetDeliverer: {moduleBus, moduleRegistryClient, moduleChanges},
}

// moduleInits builds each module.
var moduleInits = map[string]func(*App, context.Context) error{
	moduleMongoDB:        (*App).initMongoDB,
	moduleBus:            (*App).initBus,
	moduleRPC:            (*App).initRPC,
	moduleUI:             (*App).initUI,
	moduleRegistryClient: (*App).initRegistryClient,
	moduleChanges:        (*App).initChanges,
	TargetRegistry:       (*App).initRegistry,
	TargetIngest:         (*App).initIngest,
	TargetStatus:         (*App).initStatus,
	TargetRouter:         (*App).initRouter,
	TargetDeliverer:      (*App).initDeliverer,
}

// modulesFor returns the modules that targets need, each after its
// dependencies, in a stable order.
func modulesFor(targets []string) []string {
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		deps := slices.Clone(moduleDeps[m])
		slices.Sort(deps)
		for _, d := range deps {
			visit(d)
		}
		order = append(order, m)
	}
	sorted := slices.Clone(targets)
	slices.Sort(sorted)
	for _, t := range sorted {
		visit(t)
	}
	return order
}

// needs says whether the targets need module m.
func needs(targets []string, m string) bool {
	return slices.Contains(modulesFor(targets), m)
}

// initModules builds the modules the configured targets need.
func (a *App) initModules(ctx context.Context) error {
	for _, m := range modulesFor(a.cfg.Targets) {
		if err := moduleInits[m](a, ctx); err != nil {
			return fmt.Errorf("start %s: %w", m, err)
		}
	}
	return nil
}

func (a *App) initMongoDB(ctx context.Context) error {
	var err error
	if a.mongo, err = store.Connect(ctx, a.cfg.MongoURI); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { _ = a.mongo.Disconnect(context.Background()) })
	a.server.AddReadyCheck("mongodb", func(ctx context.Context) error { return a.mongo.Ping(ctx, readpref.Primary()) })
	return nil
}

func (a *App) initBus(ctx context.Context) error {
	cfg := a.cfg
	var err error
	// The connection declares the mesh's exchanges and queues on every
	// (re)connect, parks into its parking queue and reports all its queues.
	a.bus, err = bus.Dial(ctx, a.topo.BusConfig(cfg.AMQPURL, "hookmesh "+strings.Join(cfg.Targets, ",")),
		a.tel.TracerProvider, a.tel.Propagator, a.logger)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, func() { _ = a.bus.Close() })
	a.pub = a.bus.NewPublisher(4)
	a.closers = append(a.closers, a.pub.Close)
	// Ingest's events and the router's and the deliverers' state changes
	// travel in batches, one message per destination.
	a.batchPub = mesh.NewBatchPublisher(a.pub, a.bus, time.Minute)
	a.closers = append(a.closers, a.batchPub.Close)
	a.server.AddReadyCheck("rabbitmq", a.bus.Ready)
	return a.bus.RegisterQueueMetrics(a.tel.MeterProvider)
}

// rpcOptions are what every Connect handler and internal client of the
// process shares.
type rpcOptions struct {
	// otel traces and measures every call.
	otel *otelconnect.Interceptor
	// handler are the options of every public handler but the keys'
	// interceptor, which depends on where API keys are checked.
	handler []connect.HandlerOption
	// internalHTTP carries the services' calls to each other.
	internalHTTP *http.Client
	// internalClient are the options of every internal client.
	internalClient []connect.ClientOption
}

func (a *App) initRPC(context.Context) error {
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
	a.rpc.otel = otel
	a.rpc.handler = []connect.HandlerOption{
		// Responses are compressed only when large: gzipping every small
		// answer cost a twentieth of the CPU of an ingest call.
		connect.WithCompressMinBytes(4 << 10),
		// No request to these APIs needs more; ingest allows events' size.
		connect.WithReadMaxBytes(1 << 20),
		// JSON requests with a field the schema does not know are refused,
		// not silently trimmed.
		connect.WithHandlerOptions(strictjson.HandlerOptions()...),
	}
	// With TLS the internal client also trusts the process's own
	// certificate, which may be self-signed.
	transport := &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second}
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
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		transport.ForceAttemptHTTP2 = true
	}
	a.rpc.internalHTTP = &http.Client{Transport: transport, Timeout: 30 * time.Second}
	a.rpc.internalClient = []connect.ClientOption{connect.WithInterceptors(otel, auth.BearerInterceptor(cfg.AdminKey))}
	return nil
}

// handlerOptions are the options of a public handler whose API keys keys
// checks, then extra.
func (a *App) handlerOptions(keys *auth.Keys, extra ...connect.HandlerOption) []connect.HandlerOption {
	opts := []connect.HandlerOption{connect.WithInterceptors(a.rpc.otel, apierr.NewInterceptor(a.logger), keys.Interceptor())}
	opts = append(opts, a.rpc.handler...)
	return append(opts, extra...)
}

// publicKeys checks API keys through the registry client.
func (a *App) publicKeys() *auth.Keys { return auth.NewKeys(a.cfg.AdminKey, a.regClient) }

// ownURL is url, or the process's own address when url is empty and the
// process runs target.
func (a *App) ownURL(url, target string) string {
	if url == "" && a.cfg.has(target) {
		return a.URL()
	}
	return url
}

// initUI serves the dashboard. It calls the public APIs on the origin it was
// loaded from: every process that serves one serves it too (all of them
// together in `all` mode).
func (a *App) initUI(context.Context) error {
	ui.Mount(a.server.Mux())
	return nil
}

func (a *App) initRegistry(ctx context.Context) error {
	cfg := a.cfg
	topo := a.topo
	rcfg := cfg.Registry
	rcfg.AdminKey = cfg.AdminKey
	rcfg.QueuePrefix = cfg.AMQPPrefix
	rcfg.Notify = func(ctx context.Context, projectID, procedure string) error {
		return a.pub.Publish(ctx, []bus.Message{topo.ChangeMessage(&busv1.RegistryChange{
			ProjectId: projectID, Procedure: procedure, Time: timestamppb.Now()})})
	}
	rcfg.EmitMeta = func(ctx context.Context, projectID, eventType string, data any) error {
		m, err := metaevent.Message(topo, projectID, eventType, time.Now(), data)
		if err != nil {
			return err
		}
		return a.pub.Publish(ctx, []bus.Message{m})
	}
	svc, err := registry.New(rcfg, a.db("registry"), a.logger)
	if err != nil {
		return err
	}
	if err := svc.Init(ctx); err != nil {
		return err
	}
	// A key that cannot open the secrets already stored would fail every
	// delivery to an existing endpoint: refuse to start instead.
	if err := svc.CheckSecretKey(ctx); err != nil {
		return err
	}
	a.registry = svc
	// The registry checks API keys itself, without a client.
	keys := auth.NewKeys(cfg.AdminKey, svc)
	a.server.AddServices(svc.Register(a.server.Mux(), a.handlerOptions(keys)...)...)
	return nil
}

func (a *App) initRegistryClient(context.Context) error {
	// Validate makes sure the URL is set when the registry runs elsewhere.
	internal := registryv1connect.NewRegistryInternalServiceClient(a.rpc.internalHTTP, a.ownURL(a.cfg.RegistryURL, TargetRegistry), a.rpc.internalClient...)
	a.regClient = regclient.New(internal, a.cfg.CacheTTL)
	return nil
}

// changesSources are the registry's procedures after which ingest reads
// the list of sources at once rather than at its next poll.
var changesSources = map[string]bool{
	registryv1connect.RegistryServiceCreateSourceProcedure:   true,
	registryv1connect.RegistryServiceUpdateSourceProcedure:   true,
	registryv1connect.RegistryServiceDeleteSourceProcedure:   true,
	registryv1connect.RegistryServicePauseSourceProcedure:    true,
	registryv1connect.RegistryServiceActivateSourceProcedure: true,
	registryv1connect.RegistryServiceDeleteProjectProcedure:  true,
}

// initChanges drops what this process cached about a project when the
// registry announces a change to it. The caches are looked up when a change
// arrives, so the modules that build them may start after this one.
func (a *App) initChanges(context.Context) error {
	a.runners = append(a.runners, func(ctx context.Context) error {
		return a.bus.Subscribe(ctx, a.topo.RegistryExchange, func() {
			if a.regClient != nil {
				a.regClient.InvalidateAll()
			}
		}, func(d *bus.Delivery) {
			var change busv1.RegistryChange
			if err := bus.Decode(d, &change); err != nil {
				a.logger.Warn("undecodable registry change", "err", err)
				return
			}
			if a.regClient != nil {
				a.regClient.Invalidate(change.GetProjectId())
			}
			if a.registry != nil {
				a.registry.InvalidateProject(change.GetProjectId())
			}
			if a.ingest != nil && changesSources[change.GetProcedure()] {
				a.ingest.RefreshSources()
			}
		})
	})
	return nil
}

func (a *App) initIngest(ctx context.Context) error {
	cfg := a.cfg
	var summaries ingest.Deliveries
	if statusURL := a.ownURL(cfg.StatusURL, TargetStatus); statusURL != "" {
		summaries = statusSummaries{statusv1connect.NewStatusServiceClient(a.rpc.internalHTTP, statusURL, a.rpc.internalClient...)}
	}
	// The event list lives in PostgreSQL when it is configured, where every
	// list filter is an index range; else in MongoDB.
	pool, err := a.history(ctx, "ingest")
	if err != nil {
		return err
	}
	var events ingest.Store
	if pool != nil {
		events = ingest.NewPostgresStore(pool)
	} else {
		events = ingest.NewMongoStore(a.db("ingest"))
	}
	keys := a.publicKeys()
	svc, err := ingest.New(cfg.Ingest, events, endpointChecker{a.regClient}, summaries, a.batchPub, a.topo, keys, a.logger.With("service", "ingest"),
		ingest.WithMetaEvents(a.bus),
		ingest.WithSources(a.bus, a.regClient, a.tel.MeterProvider),
		ingest.WithRetention(cfg.Retention, a.regClient, a.tel.MeterProvider))
	if err != nil {
		return err
	}
	if err := svc.Init(ctx); err != nil {
		return err
	}
	a.closers = append(a.closers, svc.Close)
	a.ingest = svc
	a.runners = append(a.runners, svc.Run)
	rest := func(h http.Handler) http.Handler {
		return otelhttp.NewHandler(h, "ingest.rest", otelhttp.WithTracerProvider(a.tel.TracerProvider), otelhttp.WithPropagators(a.tel.Propagator))
	}
	// The envelope of a request may add JSON escaping to the payload.
	eventMax := connect.WithReadMaxBytes(2*cfg.Ingest.MaxPayloadBytes + 64<<10)
	a.server.AddServices(svc.Register(a.server.Mux(), rest, a.handlerOptions(keys, eventMax)...)...)
	return nil
}

func (a *App) initStatus(ctx context.Context) error {
	cfg := a.cfg
	// The history is in PostgreSQL when a URL is configured, else in
	// MongoDB.
	pool, err := a.history(ctx, "status")
	if err != nil {
		return err
	}
	opts := []status.Option{status.WithPostgres(pool), status.WithPortal(a.regClient)}
	if ingestURL := a.ownURL(cfg.IngestURL, TargetIngest); ingestURL != "" {
		events := ingestEvents{ingestv1connect.NewIngestServiceClient(a.rpc.internalHTTP, ingestURL, a.rpc.internalClient...)}
		opts = append(opts, status.WithRetries(events, a.regClient, a.pub, a.topo))
	}
	opts = append(opts, status.WithConsumer(a.bus, a.topo, a.pub),
		status.WithRetention(cfg.Retention, a.regClient, a.tel.MeterProvider))
	svc, err := status.New(cfg.Status, a.db("status"), a.logger, opts...)
	if err != nil {
		return err
	}
	if err := svc.Init(ctx); err != nil {
		return err
	}
	keys := a.publicKeys()
	a.server.AddServices(svc.Register(a.server.Mux(), a.handlerOptions(keys)...)...)
	a.server.AddServices(operations.Register(a.server.Mux(), a.bus, a.handlerOptions(keys)...)...)
	a.runners = append(a.runners, svc.Run)
	return nil
}

func (a *App) initRouter(context.Context) error {
	r := router.New(a.cfg.Router, a.bus, a.topo, a.batchPub, a.regClient, a.logger.With("service", "router"))
	a.runners = append(a.runners, r.Run)
	return nil
}

func (a *App) initDeliverer(context.Context) error {
	cfg := a.cfg
	guard := netguard.New(cfg.AllowPrivateNetworks, cfg.AllowedNetworks)
	a.sender = webhook.NewSender(webhook.Config{MaxConnsPerHost: cfg.Deliverer.Concurrency, DialControl: guard.DialControl},
		webhook.WithTracerProvider(a.tel.TracerProvider), webhook.WithMeterProvider(a.tel.MeterProvider), webhook.WithPropagator(a.tel.Propagator))
	a.closers = append(a.closers, a.sender.Close)
	d, err := deliverer.New(cfg.Deliverer, a.bus, a.topo, a.batchPub, a.regClient, a.sender, a.tel.MeterProvider, a.logger.With("service", "deliverer"))
	if err != nil {
		return err
	}
	a.runners = append(a.runners, d.Run)
	return nil
}

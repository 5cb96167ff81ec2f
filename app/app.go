package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/mongo"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/internal/server"
	"github.com/hookmesh/hookmesh/internal/telemetry"
	"github.com/hookmesh/hookmesh/internal/webhook"
	"github.com/hookmesh/hookmesh/services/ingest"
	"github.com/hookmesh/hookmesh/services/registry"
	regclient "github.com/hookmesh/hookmesh/services/registry/client"
)

// App is one hookmesh process.
type App struct {
	cfg    Config
	logger *slog.Logger
	tel    *telemetry.Telemetry
	server *server.Server
	addr   string

	mongo *mongo.Client
	bus   *bus.Conn
	pub   *bus.Publisher
	// batchPub batches ingest's events and the router's and the
	// deliverers' state changes.
	batchPub *mesh.BatchPublisher
	topo     mesh.Topology // the exchanges and queues the services share
	sender   *webhook.Sender
	runners  []func(context.Context) error
	closers  []func()

	// What the modules build for the modules that depend on them.
	rpc       rpcOptions
	registry  *registry.Service
	regClient *regclient.Client
	ingest    *ingest.Service
}

// New connects to what the targets need, creates indexes and binds the
// address. Run serves.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, logger: logger, topo: mesh.NewTopology(cfg.AMQPPrefix, cfg.StatusPartitions)}
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

	if err := a.initModules(ctx); err != nil {
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

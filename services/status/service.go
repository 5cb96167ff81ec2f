// Package status is the status service: a read model of deliveries and their
// attempts, in PostgreSQL tables (pgStore) or in MongoDB (deliveryStore),
// built from the state changes that the router and the deliverers publish
// (Apply), and the StatusService API that queries it.
//
// A stored delivery keeps seq = attempt*8 + rank(status); a change is
// written only when its seq is above the stored one, so replayed and
// reordered messages are harmless.
package status

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.opentelemetry.io/otel/metric"

	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/lifecycle"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/retention"
)

// Service owns the status database.
type Service struct {
	cfg     Config
	store   historyStore
	logger  *slog.Logger
	retrier *retrier
	owners  Owners
	// conn and queues, when set, are where Run consumes state changes;
	// pruner, when set, prunes the history.
	conn   *bus.Conn
	queues []string
	pruner *retention.Pruner
	// topo and pub send the tasks of released deliveries in lines; lines
	// keeps the lines (nil on MongoDB, which parks ordered routes).
	topo  mesh.Topology
	pub   Publisher
	lines lineStore
}

// Option gives New where it keeps the history and what optional features
// need.
type Option func(*serviceOptions)

type serviceOptions struct {
	pool      *pgxpool.Pool
	owners    Owners
	retrier   *retrier
	conn      *bus.Conn
	topo      mesh.Topology
	pub       Publisher
	retention *retentionOptions
}

// WithPostgres keeps the history in PostgreSQL tables in pool's schema (see
// pgdb.Open) instead of in the MongoDB database; New's db may then be nil.
// A nil pool changes nothing.
func WithPostgres(pool *pgxpool.Pool) Option {
	return func(o *serviceOptions) { o.pool = pool }
}

// New returns the service over db, the database named by cfg.Database, or
// over PostgreSQL with WithPostgres.
func New(cfg Config, db *mongo.Database, logger *slog.Logger, opts ...Option) (*Service, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.defaults()
	var o serviceOptions
	for _, opt := range opts {
		opt(&o)
	}
	var st historyStore
	var lines lineStore
	if o.pool != nil {
		pg := newPGStore(o.pool)
		st, lines = pg, pg
	} else {
		st = newDeliveryStore(db)
	}
	s := &Service{
		cfg:     cfg,
		store:   st,
		logger:  logger.With("service", "status"),
		retrier: o.retrier,
		owners:  o.owners,
		conn:    o.conn,
		queues:  o.topo.StatusQueues,
		topo:    o.topo,
		pub:     o.pub,
		lines:   lines,
	}
	if o.retention != nil {
		var err error
		s.pruner, err = retention.New(o.retention.cfg, "status", o.retention.source, s, o.retention.mp, s.logger)
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// WithConsumer makes Run apply the state changes of topo's status
// partition queues over conn, and keep the lines of ordered delivery,
// publishing with pub the task of each delivery whose turn comes.
func WithConsumer(conn *bus.Conn, topo mesh.Topology, pub Publisher) Option {
	return func(o *serviceOptions) { o.conn, o.topo, o.pub = conn, topo, pub }
}

// WithRetention makes Run prune the deliveries, attempts and statistics
// older than each project's retention, which source tells; mp receives the
// pruner's metrics.
func WithRetention(cfg retention.Config, source retention.Source, mp metric.MeterProvider) Option {
	return func(o *serviceOptions) { o.retention = &retentionOptions{cfg: cfg, source: source, mp: mp} }
}

type retentionOptions struct {
	cfg    retention.Config
	source retention.Source
	mp     metric.MeterProvider
}

// Run does the status service's background work until ctx ends: it
// applies the state changes and, as configured, prunes the history. It
// returns once both have stopped.
func (s *Service) Run(ctx context.Context) error {
	var parts []lifecycle.Part
	if s.conn != nil {
		parts = append(parts, s.consume)
		if s.lines != nil {
			parts = append(parts, s.sendUnsentTasks)
		}
	}
	if s.pruner != nil {
		parts = append(parts, s.pruner.Run)
	}
	return lifecycle.Run(ctx, parts...)
}

// Init creates the indexes, or the tables; it is safe to call on every
// start.
func (s *Service) Init(ctx context.Context) error {
	if err := s.store.init(ctx); err != nil {
		return fmt.Errorf("init status store: %w", err)
	}
	return nil
}

// Register mounts StatusService on mux and returns its full name, for
// health checking and reflection.
func (s *Service) Register(mux *http.ServeMux, opts ...connect.HandlerOption) []string {
	opts = append(append([]connect.HandlerOption(nil), opts...), connect.WithInterceptors(s.portalInterceptor()))
	path, h := statusv1connect.NewStatusServiceHandler(&handler{store: s.store, retrier: s.retrier, owners: s.owners}, opts...)
	mux.Handle(path, h)
	return []string{statusv1connect.StatusServiceName}
}

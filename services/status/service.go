// Package status is the status service: a read model of deliveries and their
// attempts in MongoDB, built from the state changes that the router and the
// deliverers publish (Apply), and the StatusService API that queries it.
//
// A delivery document keeps seq = attempt*8 + rank(status); a change is
// written only when its seq is above the stored one, so replayed and
// reordered messages are harmless.
package status

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/store"
)

// Service owns the status database.
type Service struct {
	cfg     Config
	store   *deliveryStore
	logger  *slog.Logger
	retrier *retrier
}

// New returns the service over db, the database named by cfg.Database.
func New(cfg Config, db *mongo.Database, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.defaults()
	return &Service{
		cfg:    cfg,
		store:  newDeliveryStore(db),
		logger: logger.With("service", "status"),
	}
}

// Init creates the indexes; it is safe to call on every start.
func (s *Service) Init(ctx context.Context) error {
	if err := store.EnsureIndexes(ctx, s.store.deliveries.Database(), indexes()); err != nil {
		return fmt.Errorf("init status store: %w", err)
	}
	return nil
}

// Register mounts StatusService on mux and returns its full name, for
// health checking and reflection.
func (s *Service) Register(mux *http.ServeMux, opts ...connect.HandlerOption) []string {
	path, h := statusv1connect.NewStatusServiceHandler(&handler{store: s.store, retrier: s.retrier}, opts...)
	mux.Handle(path, h)
	return []string{statusv1connect.StatusServiceName}
}

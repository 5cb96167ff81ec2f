package registry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/secretbox"
	"github.com/hookmesh/hookmesh/internal/store"
	"github.com/hookmesh/hookmesh/services/registry/internal/ttlcache"
)

// Service is the registry service.
type Service struct {
	cfg    Config
	logger *slog.Logger
	store  *mongoStore
	keys   *ttlcache.Cache[keyAnswer]
	// portals keeps AuthenticatePortalToken's answers.
	portals *ttlcache.Cache[portalAnswer]
	// now is the clock; tests move it.
	now func() time.Time
	// notify announces changes; nil announces nothing.
	notify Notifier
	// emitMeta sends meta events; nil sends none.
	emitMeta MetaEmitter
	// box seals endpoint secrets.
	box *secretbox.Box
}

// New returns the registry service on db, which the caller opened (see
// Config.DatabaseName).
func New(cfg Config, db *mongo.Database, logger *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Secrets == nil {
		key, err := secretbox.ParseKey(cfg.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("HOOKMESH_SECRET_KEY: %w", err)
		}
		if cfg.Secrets, err = secretbox.New(key); err != nil {
			return nil, err
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		box:      cfg.Secrets,
		cfg:      cfg,
		notify:   cfg.Notify,
		emitMeta: cfg.EmitMeta,
		logger:   logger.With("service", "registry"),
		store:    newMongoStore(db),
		keys:     ttlcache.New[keyAnswer](ttlcache.DefaultMaxEntries),
		portals:  ttlcache.New[portalAnswer](ttlcache.DefaultMaxEntries),
		now:      time.Now,
	}, nil
}

// Init creates the registry's indexes.
func (s *Service) Init(ctx context.Context) error {
	return store.EnsureIndexes(ctx, s.store.projects.Database(), indexes())
}

// Register mounts RegistryService and RegistryInternalService on mux with
// opts (the caller's interceptors: telemetry, apierr, auth) and returns the
// fully-qualified names of the services, for health checks and reflection.
func (s *Service) Register(mux *http.ServeMux, opts ...connect.HandlerOption) []string {
	public := append(append([]connect.HandlerOption(nil), opts...),
		connect.WithInterceptors(auth.PortalScope(portalProcedures...), s.changeInterceptor()))
	path, h := registryv1connect.NewRegistryServiceHandler(&handler{s: s}, public...)
	mux.Handle(path, withRequestBase(h))
	internal := append(append([]connect.HandlerOption(nil), opts...), connect.WithInterceptors(s.changeInterceptor()))
	mux.Handle(registryv1connect.NewRegistryInternalServiceHandler(&internalHandler{s: s}, internal...))
	return []string{
		registryv1connect.RegistryServiceName,
		registryv1connect.RegistryInternalServiceName,
	}
}

// clock returns the current time as MongoDB stores it (UTC, milliseconds),
// so that what an API answers equals what a later read returns.
func (s *Service) clock() time.Time {
	return s.now().UTC().Truncate(time.Millisecond)
}

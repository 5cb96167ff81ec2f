package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/lifecycle"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/retention"
)

// Endpoints checks that an endpoint exists in a project (the registry's
// client, cached).
type Endpoints interface {
	EndpointExists(ctx context.Context, projectID, endpointID string) (bool, error)
}

// Deliveries summarizes the deliveries of events (the status service).
type Deliveries interface {
	SummarizeEvents(ctx context.Context, projectID string, eventIDs []string) (map[string]*statusv1.EventSummary, error)
}

// Publisher publishes messages with confirms.
type Publisher interface {
	Publish(ctx context.Context, msgs []bus.Message) error
}

// Service is the ingest service.
type Service struct {
	cfg       Config
	store     Store
	endpoints Endpoints
	summaries Deliveries
	pub       Publisher
	topo      mesh.Topology
	keys      *auth.Keys
	logger    *slog.Logger

	// sweepMu guards sweptUntil, the end of the last outbox sweep.
	sweepMu    sync.Mutex
	sweptUntil time.Time
	// publishing holds the ids of the events this process is publishing,
	// which the sweeper leaves to their requests.
	publishing sync.Map
	// marks are the publish markers being written after their request
	// answered, at most cap(markSlots) at once.
	marks     sync.WaitGroup
	markSlots chan struct{}

	// The background parts Run runs besides the outbox sweeper, each nil
	// when not configured.
	metaConn *bus.Conn
	sources  *Sources
	pruner   *retention.Pruner
}

// Option gives New what the optional background work needs.
type Option func(*Service) error

// WithMetaEvents makes Run store and route the meta events that the
// deliverers and the registry publish, consumed from conn.
func WithMetaEvents(conn *bus.Conn) Option {
	return func(s *Service) error {
		s.metaConn = conn
		return nil
	}
}

// WithSources makes Run consume the registry's sources (as cfg.Sources
// says) over conn; reg lists them and keeps their counters, and mp
// receives their metrics.
func WithSources(conn *bus.Conn, reg SourceRegistry, mp metric.MeterProvider) Option {
	return func(s *Service) error {
		var err error
		s.sources, err = s.newSources(s.cfg.Sources, conn, s.pub, reg, mp)
		return err
	}
}

// WithRetention makes Run prune the events and idempotency keys older than
// each project's retention, which source tells; mp receives the pruner's
// metrics.
func WithRetention(cfg retention.Config, source retention.Source, mp metric.MeterProvider) Option {
	return func(s *Service) error {
		var err error
		s.pruner, err = retention.New(cfg, "ingest", source, s, mp, s.logger)
		return err
	}
}

// New returns the ingest service, keeping its events in st (NewPostgresStore
// or NewMongoStore). keys authenticates the REST API; summaries, when not
// nil, adds delivery counts to the events it returns.
func New(cfg Config, st Store, endpoints Endpoints, summaries Deliveries, pub Publisher, topo mesh.Topology, keys *auth.Keys, logger *slog.Logger, opts ...Option) (*Service, error) {
	cfg.defaults()
	s := &Service{cfg: cfg, store: st, endpoints: endpoints, summaries: summaries, pub: pub, topo: topo, keys: keys, logger: logger,
		markSlots: make(chan struct{}, 4096)}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run does ingest's background work until ctx ends: the outbox sweeper,
// and, as configured, the meta events' consumer, the sources' consumers
// and the pruner. It returns once all of them have stopped.
func (s *Service) Run(ctx context.Context) error {
	parts := []lifecycle.Part{s.runSweeper}
	if s.metaConn != nil {
		parts = append(parts, s.runMeta)
	}
	if s.sources != nil {
		parts = append(parts, s.sources.Run)
	}
	if s.pruner != nil {
		parts = append(parts, s.pruner.Run)
	}
	return lifecycle.Run(ctx, parts...)
}

// RefreshSources reads the registry's list of sources now rather than at
// the next poll, after the registry announced a change of them.
func (s *Service) RefreshSources() {
	if s.sources != nil {
		s.sources.Refresh()
	}
}

// summarize adds each event's delivery counts. The events are useful
// without them, so a status service that does not answer costs only the
// counts, with a warning in the log.
func (s *Service) summarize(ctx context.Context, projectID string, events []*ingestv1.Event) {
	if s.summaries == nil || len(events) == 0 {
		return
	}
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.GetId()
	}
	sums, err := s.summaries.SummarizeEvents(ctx, projectID, ids)
	if err != nil {
		s.logger.WarnContext(ctx, "events listed without delivery counts", "project_id", projectID, "err", err)
		return
	}
	for _, ev := range events {
		ev.Deliveries = sums[ev.GetId()]
	}
}

// Close finishes the markers and inserts in progress.
func (s *Service) Close() {
	s.marks.Wait()
	s.store.close()
}

// Init creates the tables or indexes.
func (s *Service) Init(ctx context.Context) error { return s.store.init(ctx) }

// Register mounts the Connect handler and the REST API on mux; rest wraps
// the REST handler (tracing).
func (s *Service) Register(mux *http.ServeMux, rest func(http.Handler) http.Handler, opts ...connect.HandlerOption) []string {
	mux.Handle(ingestv1connect.NewIngestServiceHandler(&handler{s: s}, opts...))
	s.registerREST(mux, rest)
	return []string{ingestv1connect.IngestServiceName}
}

// newEvent is a validated request to create an event.
type newEvent struct {
	projectID      string
	eventType      string
	data           []byte
	customHeaders  map[string]string
	idempotencyKey string
	endpointID     string
	ownerID        string
	broadcast      bool
	// orderingKey, when set, puts the event in the project's line of that
	// key.
	orderingKey string
}

// create stores and publishes an event and returns it as stored.
func (s *Service) create(ctx context.Context, in newEvent) (*ingestv1.Event, error) {
	if err := s.validate(ctx, &in); err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	doc := &eventDoc{
		ID:             ids.NewAt("evt", now),
		ProjectID:      in.projectID,
		EventType:      in.eventType,
		Data:           in.data,
		CustomHeaders:  in.customHeaders,
		IdempotencyKey: in.idempotencyKey,
		EndpointID:     in.endpointID,
		OwnerID:        in.ownerID,
		Broadcast:      in.broadcast,
		CreateTime:     now,
		OrderingKey:    in.orderingKey,
	}
	if in.idempotencyKey != "" {
		orig, claimed, err := s.store.claim(ctx, in.projectID, in.idempotencyKey, doc.ID, now)
		if err != nil {
			return nil, err
		}
		if orig != "" {
			done, err := s.duplicate(ctx, doc, orig, claimed, now)
			if err != nil || done != nil {
				return done, err
			}
		}
	}
	if err := s.store.insert(ctx, doc); err != nil {
		if !errors.Is(err, errDuplicate) {
			return nil, err
		}
		// A repeat of this request took over the claim and stored the event
		// under this id first: it publishes it.
		return s.storedInstead(ctx, doc), nil
	}
	if err := s.publish(ctx, doc); err != nil {
		return nil, err
	}
	return toProto(doc), nil
}

// storedInstead is the answer to a request whose event a repeat stored
// first under the same id: that event, which has the ordering number, or
// doc when it cannot be read.
func (s *Service) storedInstead(ctx context.Context, doc *eventDoc) *ingestv1.Event {
	if doc.OrderingKey != "" {
		if stored, err := s.store.get(ctx, doc.ProjectID, doc.ID); err == nil && stored != nil {
			return toProto(stored)
		}
	}
	return toProto(doc)
}

// duplicate handles a request whose idempotency key was claimed by orig. It
// stores the request as a duplicate and returns it; or, when the claim was
// abandoned (its request died before storing the event), it turns doc into
// the original and returns nil so that create stores and publishes it.
//
// A duplicate is only ever acknowledged once its original is stored, so
// that an accepted event always exists: while the original's request is
// still storing it, the repeat waits a little, then answers Unavailable.
// An original that has waited longer than the sweeper's grace without its
// publish marker (its request died before the broker confirmed it) is
// published at once rather than at the next sweep, unless its request is
// still waiting for the broker in this process.
func (s *Service) duplicate(ctx context.Context, doc *eventDoc, orig string, claimed, now time.Time) (*ingestv1.Event, error) {
	existing, err := s.awaitOriginal(ctx, doc.ProjectID, orig)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		if time.Since(claimed) >= s.cfg.AbandonedClaimAfter {
			doc.ID = orig
			return nil, nil
		}
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"an earlier request with idempotency key %q is still storing event %s: send this one again in a few seconds", doc.IdempotencyKey, orig))
	}
	if _, busy := s.publishing.Load(orig); !busy && now.Sub(existing.CreateTime) >= s.cfg.SweepGrace {
		marked, err := s.store.published(ctx, []string{orig})
		if err != nil {
			return nil, err
		}
		if !marked[orig] {
			if err := s.publish(ctx, existing); err != nil {
				return nil, err
			}
		}
	}
	doc.IsDuplicate = true
	doc.DuplicateOf = orig
	if err := s.store.insert(ctx, doc); err != nil {
		return nil, err
	}
	return toProto(doc), nil
}

// awaitOriginal loads the event an idempotency claim names, waiting up to
// two seconds for a concurrent request to store it; nil when it is not
// there by then.
func (s *Service) awaitOriginal(ctx context.Context, projectID, id string) (*eventDoc, error) {
	deadline := time.Now().Add(2 * time.Second)
	wait := 20 * time.Millisecond
	for {
		existing, err := s.store.get(ctx, projectID, id)
		if err != nil || existing != nil || time.Now().After(deadline) {
			return existing, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 400*time.Millisecond)
	}
}

func (s *Service) publish(ctx context.Context, doc *eventDoc) error {
	s.publishing.Store(doc.ID, struct{}{})
	msg := s.topo.EventMessage(&busv1.EventMessage{
		EventId:        doc.ID,
		ProjectId:      doc.ProjectID,
		EventType:      doc.EventType,
		Data:           doc.Data,
		CustomHeaders:  doc.CustomHeaders,
		IdempotencyKey: doc.IdempotencyKey,
		EndpointId:     doc.EndpointID,
		OwnerId:        doc.OwnerID,
		Broadcast:      doc.Broadcast,
		CreateTime:     timestamppb.New(doc.CreateTime),
		OrderingKey:    doc.OrderingKey,
		OrderingSeq:    doc.OrderingSeq,
	})
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PublishTimeout)
	defer cancel()
	if err := s.pub.Publish(pctx, []bus.Message{msg}); err != nil {
		s.publishing.Delete(doc.ID)
		// The event is stored: the outbox sweeper publishes it once the
		// broker is back. Saying so keeps the client from resending it as
		// a new event.
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("event %s is stored and will be delivered, but the broker did not confirm it yet: %w", doc.ID, err))
	}
	s.markLater(ctx, doc.ID)
	return nil
}

// markLater writes the publish marker of a confirmed event without holding
// up the answer: the event is safe in the broker already. Until the marker
// is written the event stays in publishing, out of the sweeper's way. A
// marker lost in a crash makes the sweeper publish the event again, which
// the router and status service absorb. With too many markers behind, the
// request writes its own, which slows the callers down to the store's pace.
func (s *Service) markLater(ctx context.Context, eventID string) {
	mark := func() {
		defer s.publishing.Delete(eventID)
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PublishTimeout)
		defer cancel()
		if err := s.store.markPublished(mctx, eventID); err != nil {
			s.logger.WarnContext(ctx, "publish marker not stored", "event_id", eventID, "err", err)
		}
	}
	select {
	case s.markSlots <- struct{}{}:
		s.marks.Go(func() {
			defer func() { <-s.markSlots }()
			mark()
		})
	default:
		mark()
	}
}

func toProto(doc *eventDoc) *ingestv1.Event {
	return &ingestv1.Event{
		Id:             doc.ID,
		ProjectId:      doc.ProjectID,
		EventType:      doc.EventType,
		Data:           string(doc.Data),
		CustomHeaders:  doc.CustomHeaders,
		IdempotencyKey: doc.IdempotencyKey,
		EndpointId:     doc.EndpointID,
		OwnerId:        doc.OwnerID,
		Broadcast:      doc.Broadcast,
		IsDuplicate:    doc.IsDuplicate,
		DuplicateOf:    doc.DuplicateOf,
		CreateTime:     timestamppb.New(doc.CreateTime),
		OrderingKey:    doc.OrderingKey,
		OrderingSeq:    doc.OrderingSeq,
	}
}

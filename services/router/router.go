// Package router expands each accepted event into deliveries: it asks the
// registry (through its cached client) which endpoints the event goes to,
// and publishes one delivery task per active endpoint with a SCHEDULED state
// change, or a DISCARDED state change for an endpoint that is not active.
// It owns nothing durable: it acks an event only once every message it
// produced is confirmed, and a redelivered event produces the same delivery
// ids, which the deliverers and the status service treat idempotently.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// Targets resolves the endpoints of an event (the registry's cached client).
type Targets interface {
	ResolveTargets(ctx context.Context, req *registryv1.ResolveTargetsRequest) ([]*registryv1.Target, error)
}

// Publisher publishes messages and returns once the broker confirmed them
// all (a *bus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, msgs []bus.Message) error
}

// Router consumes events and publishes deliveries.
type Router struct {
	cfg     Config
	conn    *bus.Conn
	topo    mesh.Topology
	pub     Publisher
	targets Targets
	filters filters
	logger  *slog.Logger
}

// New returns a router consuming from conn the router queue of topo.
func New(cfg Config, conn *bus.Conn, topo mesh.Topology, pub Publisher, targets Targets, logger *slog.Logger) *Router {
	r := newRouter(cfg, topo, pub, targets, logger)
	r.conn = conn
	return r
}

// newRouter returns a router that builds its messages for topo; only Run
// needs the connection.
func newRouter(cfg Config, topo mesh.Topology, pub Publisher, targets Targets, logger *slog.Logger) *Router {
	cfg.defaults()
	return &Router{cfg: cfg, topo: topo, pub: pub, targets: targets, logger: logger}
}

// Run routes events until ctx ends.
func (r *Router) Run(ctx context.Context) error {
	return r.conn.Consume(ctx, r.topo.RouterQueue, bus.ConsumeOptions{Workers: r.cfg.Workers}, r.handle)
}

// DeliveryID is the id of the delivery of an event to an endpoint: the same
// event and endpoint always give the same id.
func DeliveryID(eventID, endpointID string) string {
	return ids.Deterministic("dlv", eventID, endpointID)
}

func (r *Router) handle(ctx context.Context, d *bus.Delivery) error {
	if d.Type == mesh.TypeEventBatch {
		return r.handleBatch(ctx, d)
	}
	var ev busv1.EventMessage
	if err := bus.Decode(d, &ev); err != nil {
		return err
	}
	msgs, err := r.route(ctx, &ev)
	if err != nil {
		return err
	}
	return r.publish(ctx, msgs, "event "+ev.GetEventId())
}

// handleBatch routes the events of an EventBatch, each in its own trace,
// and publishes their deliveries at once. An event that cannot be routed
// now (the registry is away) or ever (it is malformed) is published again
// alone, before the batch is acked: alone it is retried with backoff, or
// parked with its reason, as any event, and the batch's other events are
// not routed twice.
func (r *Router) handleBatch(ctx context.Context, d *bus.Delivery) error {
	var b busv1.EventBatch
	if err := bus.Decode(d, &b); err != nil {
		return err
	}
	traceparents, _ := d.Headers[mesh.TraceparentsHeader].([]any)
	errs := make([]error, len(b.GetEvents()))
	var wg sync.WaitGroup
	for i, ev := range b.GetEvents() {
		ectx, span := r.eventSpan(ctx, traceparents, i)
		msgs, err := r.route(ectx, ev)
		if err != nil {
			r.logger.WarnContext(ectx, "event of a batch not routed: it goes back to the router queue alone", "event_id", ev.GetEventId(), "err", err)
			m := r.topo.EventMessage(ev)
			m.Headers = amqp.Table{mesh.AloneHeader: err.Error()}
			msgs = []bus.Message{m}
		}
		// Each event's messages go in its own trace, all at once.
		wg.Go(func() {
			defer span.End()
			errs[i] = r.publish(ectx, msgs, "event "+ev.GetEventId())
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// eventSpan starts the span of the batch's event i in its own trace, named
// as a single event's would be.
func (r *Router) eventSpan(ctx context.Context, traceparents []any, i int) (context.Context, trace.Span) {
	if r.conn == nil {
		return ctx, trace.SpanFromContext(context.Background()) // a span that records nothing
	}
	var tp string
	if i < len(traceparents) {
		tp, _ = traceparents[i].(string)
	}
	return r.conn.StartSpan(ctx, tp, r.topo.RouterQueue+" process", trace.SpanKindConsumer)
}

// route returns the messages of an event's deliveries: its targets'
// tasks with their SCHEDULED states, or its route when it has an
// ordering key.
func (r *Router) route(ctx context.Context, ev *busv1.EventMessage) ([]bus.Message, error) {
	if ev.GetEventId() == "" || ev.GetProjectId() == "" {
		return nil, fmt.Errorf("%w: event without id or project", bus.ErrMalformed)
	}
	req := &registryv1.ResolveTargetsRequest{ProjectId: ev.GetProjectId(), EventType: ev.GetEventType()}
	switch {
	case ev.GetBroadcast():
		req.Broadcast = true
	case ev.GetEndpointId() != "":
		req.EndpointId = ev.GetEndpointId()
	case ev.GetOwnerId() != "":
		req.OwnerId = ev.GetOwnerId()
	default:
		return nil, fmt.Errorf("%w: event %s has no target", bus.ErrMalformed, ev.GetEventId())
	}
	targets, err := r.targets.ResolveTargets(ctx, req)
	if connect.CodeOf(err) == connect.CodeNotFound {
		// The endpoint or project was deleted after the event was accepted.
		r.logger.WarnContext(ctx, "event has no target any more", "event_id", ev.GetEventId(), "err", err)
		targets, err = nil, nil
	}
	if connect.CodeOf(err) == connect.CodeInvalidArgument {
		// The registry refuses the event's fields: asking again cannot help.
		return nil, fmt.Errorf("%w: resolve targets of event %s: %w", bus.ErrMalformed, ev.GetEventId(), err)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve targets of event %s: %w", ev.GetEventId(), err)
	}
	return r.messages(ev, r.expand(ev, targets)), nil
}

// expand returns the deliveries of an event: a SCHEDULED state change with
// its task for each active endpoint the event goes to, a DISCARDED one for
// each endpoint that is not active.
func (r *Router) expand(ev *busv1.EventMessage, targets []*registryv1.Target) []routed {
	now := timestamppb.New(time.Now())
	out := make([]routed, 0, len(targets))
	matchOn := &event{data: ev.GetData(), headers: ev.GetCustomHeaders()}
	for _, t := range targets {
		sub, ok := r.filters.choose(t, matchOn)
		if !ok {
			continue
		}
		state := &busv1.StateChange{
			DeliveryId:      DeliveryID(ev.GetEventId(), t.GetEndpointId()),
			ProjectId:       ev.GetProjectId(),
			EventId:         ev.GetEventId(),
			EndpointId:      t.GetEndpointId(),
			EventType:       ev.GetEventType(),
			Attempt:         1,
			Time:            now,
			EventCreateTime: ev.GetCreateTime(),
			OrderingKey:     ev.GetOrderingKey(),
			OrderingSeq:     ev.GetOrderingSeq(),
		}
		if t.GetStatus() != registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE {
			state.Status = statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED
			state.Record = &statusv1.Attempt{DeliveryId: state.DeliveryId, Attempt: 1, StartTime: now,
				Error: "endpoint is " + endpointState(t.GetStatus()) + ": nothing was sent", Url: t.GetUrl()}
			out = append(out, routed{state: state})
			continue
		}
		state.Status = statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED
		out = append(out, routed{state: state, task: &busv1.DeliveryTask{
			DeliveryId:      state.DeliveryId,
			EventId:         ev.GetEventId(),
			ProjectId:       ev.GetProjectId(),
			EndpointId:      t.GetEndpointId(),
			EventType:       ev.GetEventType(),
			Data:            ev.GetData(),
			CustomHeaders:   ev.GetCustomHeaders(),
			IdempotencyKey:  ev.GetIdempotencyKey(),
			Attempt:         1,
			EventCreateTime: ev.GetCreateTime(),
			SubscriptionId:  sub.GetId(),
			RetryPolicy:     sub.GetRetryPolicy(),
			OrderingKey:     ev.GetOrderingKey(),
			OrderingSeq:     ev.GetOrderingSeq(),
		}})
	}
	return out
}

// routed is one delivery of an event: its first state change, and the
// task unless it is DISCARDED.
type routed struct {
	state *busv1.StateChange
	task  *busv1.DeliveryTask
}

// messages returns an event's deliveries as messages. Without an ordering
// key, each task goes to the deliverers at once with its SCHEDULED state.
// With one, they all go in one OrderedRoute to the status partition of the
// key's line, WAITING with their tasks (the status service sends each task
// when its turn comes): even an event that goes nowhere has its route,
// since the line of every endpoint waits until each earlier event of the
// key is routed.
func (r *Router) messages(ev *busv1.EventMessage, ds []routed) []bus.Message {
	topo := r.topo
	if ev.GetOrderingKey() != "" {
		route := &busv1.OrderedRoute{ProjectId: ev.GetProjectId(), EventId: ev.GetEventId(),
			OrderingKey: ev.GetOrderingKey(), OrderingSeq: ev.GetOrderingSeq()}
		for _, d := range ds {
			if d.task != nil {
				d.state.Status = statusv1.DeliveryStatus_DELIVERY_STATUS_WAITING
				d.state.Task = d.task
			}
			route.Deliveries = append(route.Deliveries, d.state)
		}
		return []bus.Message{topo.RouteMessage(route)}
	}
	msgs := make([]bus.Message, 0, 2*len(ds))
	for _, d := range ds {
		if d.task != nil {
			msgs = append(msgs, topo.TaskMessage(d.task))
		}
		msgs = append(msgs, topo.StateMessage(d.state))
	}
	return msgs
}

// publish publishes msgs, BatchSize at a time, each part confirmed before
// the next; what names what they are about in an error.
func (r *Router) publish(ctx context.Context, msgs []bus.Message, what string) error {
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for start := 0; start < len(msgs); start += r.cfg.BatchSize {
		end := min(start+r.cfg.BatchSize, len(msgs))
		if err := r.pub.Publish(pctx, msgs[start:end]); err != nil {
			return fmt.Errorf("publish deliveries of %s: %w", what, err)
		}
	}
	return nil
}

func endpointState(s registryv1.EndpointStatus) string {
	switch s {
	case registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED:
		return "paused"
	case registryv1.EndpointStatus_ENDPOINT_STATUS_DISABLED:
		return "disabled"
	}
	return "not active"
}

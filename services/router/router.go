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
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"
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
	var ev busv1.EventMessage
	if err := bus.Decode(d, &ev); err != nil {
		return err
	}
	if ev.GetEventId() == "" || ev.GetProjectId() == "" {
		return fmt.Errorf("%w: event without id or project", bus.ErrMalformed)
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
		return fmt.Errorf("%w: event %s has no target", bus.ErrMalformed, ev.GetEventId())
	}
	targets, err := r.targets.ResolveTargets(ctx, req)
	if connect.CodeOf(err) == connect.CodeNotFound {
		// The endpoint or project was deleted after the event was accepted.
		r.logger.WarnContext(ctx, "event has no target any more", "event_id", ev.GetEventId(), "err", err)
		targets, err = nil, nil
	}
	if connect.CodeOf(err) == connect.CodeInvalidArgument {
		// The registry refuses the event's fields: asking again cannot help.
		return fmt.Errorf("%w: resolve targets of event %s: %w", bus.ErrMalformed, ev.GetEventId(), err)
	}
	if err != nil {
		return fmt.Errorf("resolve targets of event %s: %w", ev.GetEventId(), err)
	}
	return r.publish(ctx, &ev, r.expand(&ev, targets))
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

// publish sends an event's deliveries. Without an ordering key, each task
// goes to the deliverers at once with its SCHEDULED state. With one, they
// all go in one OrderedRoute to the status partition of the key's line,
// WAITING with their tasks (the status service sends each task when its
// turn comes): even an event that goes nowhere has its route, since the
// line of every endpoint waits until each earlier event of the key is
// routed.
func (r *Router) publish(ctx context.Context, ev *busv1.EventMessage, ds []routed) error {
	topo := r.topo
	var msgs []bus.Message
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
		msgs = []bus.Message{topo.RouteMessage(route)}
	} else {
		msgs = make([]bus.Message, 0, 2*len(ds))
		for _, d := range ds {
			if d.task != nil {
				msgs = append(msgs, topo.TaskMessage(d.task))
			}
			msgs = append(msgs, topo.StateMessage(d.state))
		}
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for start := 0; start < len(msgs); start += r.cfg.BatchSize {
		end := min(start+r.cfg.BatchSize, len(msgs))
		if err := r.pub.Publish(pctx, msgs[start:end]); err != nil {
			return fmt.Errorf("publish deliveries of event %s: %w", ev.GetEventId(), err)
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

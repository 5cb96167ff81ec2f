package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// Events returns an event with its payload (the ingest service).
type Events interface {
	GetEvent(ctx context.Context, projectID, eventID string) (*ingestv1.Event, error)
}

// Targets returns an endpoint's delivery settings (the registry's cached
// client).
type Targets interface {
	GetTarget(ctx context.Context, projectID, endpointID string) (*registryv1.Target, error)
	// Invalidate drops what is cached about a project.
	Invalidate(projectID string)
}

// Publisher publishes messages with confirms.
type Publisher interface {
	Publish(ctx context.Context, msgs []bus.Message) error
}

// retrier queues manual retries: a new attempt of the same delivery, with
// the same webhook-id, sent by the deliverers like any other.
type retrier struct {
	events  Events
	targets Targets
	pub     Publisher
	topo    mesh.Topology
}

// WithRetries gives the service what manual retries need; without it the
// retry RPCs answer Unimplemented.
func WithRetries(events Events, targets Targets, pub Publisher, topo mesh.Topology) Option {
	return func(o *serviceOptions) { o.retrier = &retrier{events: events, targets: targets, pub: pub, topo: topo} }
}

// maxBatchRetry bounds one BatchRetryDeliveries call.
const maxBatchRetry = 10_000

// target returns the endpoint's settings. A cached answer that says the
// endpoint is not active is checked with the registry once more: an
// endpoint activated a moment ago must be retried at once, before the
// announcement of its activation has reached this process.
func (r *retrier) target(ctx context.Context, projectID, endpointID string) (*registryv1.Target, error) {
	t, err := r.targets.GetTarget(ctx, projectID, endpointID)
	if err == nil && t.GetStatus() == registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE {
		return t, nil
	}
	r.targets.Invalidate(projectID)
	return r.targets.GetTarget(ctx, projectID, endpointID)
}

// retryable says whether a delivery in state st may be retried by rpc.
func retryable(force bool, st statusv1.DeliveryStatus) bool {
	if force {
		return st == statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS
	}
	return st == statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED || st == statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED
}

// queue publishes the next attempt of each delivery and its SCHEDULED
// state, after checking that its endpoint is active. It returns the
// deliveries as now SCHEDULED.
func (r *retrier) queue(ctx context.Context, ds []deliveryDoc) ([]*statusv1.Delivery, error) {
	var msgs []bus.Message
	var out []*statusv1.Delivery
	now := time.Now()
	events := map[string]*ingestv1.Event{}
	for i := range ds {
		d := &ds[i]
		t, err := r.target(ctx, d.ProjectID, d.EndpointID)
		if connect.CodeOf(err) == connect.CodeNotFound {
			return nil, apierr.FailedPrecondition("delivery %q cannot be retried: its endpoint %q was deleted", d.ID, d.EndpointID)
		}
		if err != nil {
			return nil, fmt.Errorf("load endpoint %s: %w", d.EndpointID, err)
		}
		if t.GetStatus() != registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE {
			return nil, apierr.FailedPrecondition("delivery %q cannot be retried: endpoint %q is not active; activate it first (ActivateEndpoint)", d.ID, d.EndpointID)
		}
		ev, ok := events[d.EventID]
		if !ok {
			ev, err = r.events.GetEvent(ctx, d.ProjectID, d.EventID)
			if connect.CodeOf(err) == connect.CodeNotFound {
				// The pruner deleted the event (older than the project's
				// retention) and this delivery is next.
				return nil, apierr.FailedPrecondition("delivery %q cannot be retried: its event %q is older than the project's retention and was deleted", d.ID, d.EventID)
			}
			if err != nil {
				return nil, fmt.Errorf("load event %s: %w", d.EventID, err)
			}
			events[d.EventID] = ev
		}
		attempt := uint32(d.Attempts) + 1
		task := &busv1.DeliveryTask{
			DeliveryId: d.ID, EventId: d.EventID, ProjectId: d.ProjectID, EndpointId: d.EndpointID,
			EventType: d.EventType, Data: []byte(ev.GetData()), CustomHeaders: ev.GetCustomHeaders(),
			IdempotencyKey: ev.GetIdempotencyKey(), Attempt: attempt, EventCreateTime: timestamppb.New(d.CreateTime),
		}
		state := &busv1.StateChange{
			DeliveryId: d.ID, ProjectId: d.ProjectID, EventId: d.EventID, EndpointId: d.EndpointID, EventType: d.EventType,
			Status: statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, Attempt: attempt, Time: timestamppb.New(now),
			EventCreateTime: timestamppb.New(d.CreateTime),
		}
		msgs = append(msgs, r.topo.TaskMessage(task), r.topo.StateMessage(state))
		p := d.proto()
		p.Status, p.UpdateTime = statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, timestamppb.New(now)
		out = append(out, p)
	}
	for start := 0; start < len(msgs); start += 500 {
		if err := r.pub.Publish(ctx, msgs[start:min(start+500, len(msgs))]); err != nil {
			return nil, fmt.Errorf("queue retries: %w", err)
		}
	}
	return out, nil
}

func (h *handler) retryOne(ctx context.Context, projectID, deliveryID string, force bool) (*statusv1.Delivery, error) {
	if err := auth.AuthorizeProject(ctx, projectID); err != nil {
		return nil, err
	}
	if h.retrier == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("manual retries are not enabled on this status service"))
	}
	d, err := h.delivery(ctx, projectID, deliveryID)
	if err != nil {
		return nil, err
	}
	st := statusv1.DeliveryStatus(d.Status)
	if !retryable(force, st) {
		if force {
			return nil, apierr.FailedPrecondition("delivery %q is %s: ForceRetryDelivery sends a SUCCESS delivery again; use RetryDelivery for FAILED or DISCARDED ones", deliveryID, st)
		}
		return nil, apierr.FailedPrecondition("delivery %q is %s: RetryDelivery retries FAILED or DISCARDED deliveries (ForceRetryDelivery a SUCCESS one)", deliveryID, st)
	}
	out, err := h.retrier.queue(ctx, []deliveryDoc{*d})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// RetryDelivery sends a FAILED or DISCARDED delivery again.
func (h *handler) RetryDelivery(ctx context.Context, req *connect.Request[statusv1.RetryDeliveryRequest]) (*connect.Response[statusv1.RetryDeliveryResponse], error) {
	d, err := h.retryOne(ctx, req.Msg.GetProjectId(), req.Msg.GetDeliveryId(), false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&statusv1.RetryDeliveryResponse{Delivery: d}), nil
}

// ForceRetryDelivery sends a SUCCESS delivery again, after a false positive.
func (h *handler) ForceRetryDelivery(ctx context.Context, req *connect.Request[statusv1.ForceRetryDeliveryRequest]) (*connect.Response[statusv1.ForceRetryDeliveryResponse], error) {
	d, err := h.retryOne(ctx, req.Msg.GetProjectId(), req.Msg.GetDeliveryId(), true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&statusv1.ForceRetryDeliveryResponse{Delivery: d}), nil
}

// BatchRetryDeliveries retries the FAILED and DISCARDED deliveries (or the
// given statuses among them) that match a filter, at most 10,000 at a time;
// with dry_run it only counts them (matched), queueing none. Deliveries of endpoints that are not
// active are left out.
func (h *handler) BatchRetryDeliveries(ctx context.Context, req *connect.Request[statusv1.BatchRetryDeliveriesRequest]) (*connect.Response[statusv1.BatchRetryDeliveriesResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	if h.retrier == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("manual retries are not enabled on this status service"))
	}
	q, err := batchRetryQuery(m)
	if err != nil {
		return nil, err
	}
	sc, err := h.scope(ctx, q.projectID)
	if err != nil {
		return nil, err
	}
	if ok, err := sc.narrow(q); err != nil {
		return nil, err
	} else if !ok {
		return connect.NewResponse(&statusv1.BatchRetryDeliveriesResponse{}), nil
	}
	ds, err := h.store.listDeliveries(ctx, q)
	if err != nil {
		return nil, err
	}
	ready, err := h.activeDeliveries(ctx, ds)
	if err != nil {
		return nil, err
	}
	resp := &statusv1.BatchRetryDeliveriesResponse{Matched: uint64(len(ready))}
	if !m.GetDryRun() && len(ready) > 0 {
		if _, err := h.retrier.queue(ctx, ready); err != nil {
			return nil, err
		}
		resp.Queued = uint64(len(ready))
	}
	return connect.NewResponse(resp), nil
}

// batchRetryQuery returns the query of the deliveries m retries: FAILED and
// DISCARDED unless m names statuses, which must be among those two.
func batchRetryQuery(m *statusv1.BatchRetryDeliveriesRequest) (*deliveryQuery, error) {
	statuses := m.GetStatuses()
	if len(statuses) == 0 {
		statuses = []statusv1.DeliveryStatus{statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED}
	}
	for i, st := range statuses {
		if !retryable(false, st) {
			return nil, apierr.Invalid(fmt.Sprintf("statuses[%d]", i), "%s cannot be retried in batch: only FAILED and DISCARDED", st)
		}
	}
	q := &deliveryQuery{projectID: m.GetProjectId(), endpointID: m.GetEndpointId(), eventType: m.GetEventType(), statuses: statuses, limit: maxBatchRetry}
	if m.GetStartTime() != nil {
		q.start = m.GetStartTime().AsTime()
	}
	if m.GetEndTime() != nil {
		q.end = m.GetEndTime().AsTime()
	}
	return q, nil
}

// activeDeliveries returns the deliveries of ds whose endpoint is active:
// those of inactive or deleted endpoints stay as they are.
func (h *handler) activeDeliveries(ctx context.Context, ds []deliveryDoc) ([]deliveryDoc, error) {
	var ready []deliveryDoc
	for _, d := range ds {
		t, err := h.retrier.target(ctx, d.ProjectID, d.EndpointID)
		if err == nil && t.GetStatus() == registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE {
			ready = append(ready, d)
		} else if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
			return nil, fmt.Errorf("load endpoint %s: %w", d.EndpointID, err)
		}
	}
	return ready, nil
}

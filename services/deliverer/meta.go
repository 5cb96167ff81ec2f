package deliverer

import (
	"context"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/metaevent"
)

// wantsMeta says whether the target's project wants meta events of type t
// about it. The project's meta settings travel in the cached target, so
// asking costs no call; the meta endpoint's own deliveries and circuit
// never cause meta events, which could otherwise feed on themselves.
func wantsMeta(t *registryv1.Target, typ string) bool {
	return !t.GetMeta() && metaevent.Wants(t.GetMetaEvents(), typ)
}

// deliveryMeta appends to msgs the delivery.* meta event typ about an
// attempt, when the project wants it.
func (d *Deliverer) deliveryMeta(ctx context.Context, msgs []bus.Message, typ string, task *busv1.DeliveryTask, t *registryv1.Target, rec *statusv1.Attempt) []bus.Message {
	if !wantsMeta(t, typ) {
		return msgs
	}
	data := metaevent.Delivery{
		ProjectID: task.GetProjectId(), DeliveryID: task.GetDeliveryId(), EventID: task.GetEventId(), EventType: task.GetEventType(),
		EndpointID: task.GetEndpointId(), OwnerID: t.GetOwnerId(), URL: t.GetUrl(), Attempt: task.GetAttempt(),
		StatusCode: rec.GetStatusCode(), Error: rec.GetError(),
	}
	return d.appendMeta(ctx, msgs, task.GetProjectId(), typ, data)
}

// circuitMeta appends to msgs the meta event of an endpoint's circuit
// opening or closing, when the project wants it.
func (d *Deliverer) circuitMeta(ctx context.Context, msgs []bus.Message, task *busv1.DeliveryTask, t *registryv1.Target, st circuitState) []bus.Message {
	typ := metaevent.EndpointCircuitOpened
	switch st {
	case circuitClosed:
		typ = metaevent.EndpointCircuitClosed
	case circuitHalfOpen:
		return msgs
	}
	if !wantsMeta(t, typ) {
		return msgs
	}
	data := metaevent.Endpoint{ProjectID: task.GetProjectId(), EndpointID: task.GetEndpointId(), OwnerID: t.GetOwnerId(), URL: t.GetUrl(),
		Status: "active"}
	if st == circuitOpen {
		data.CooldownSeconds = int64(d.circuit.cooldown(task.GetEndpointId()).Seconds())
	}
	return d.appendMeta(ctx, msgs, task.GetProjectId(), typ, data)
}

func (d *Deliverer) appendMeta(ctx context.Context, msgs []bus.Message, projectID, typ string, data any) []bus.Message {
	m, err := metaevent.Message(d.topo, projectID, typ, d.now(), data)
	if err != nil {
		d.logger.ErrorContext(ctx, "meta event not built", "type", typ, "project_id", projectID, "err", err)
		return msgs
	}
	return append(msgs, m)
}

package ingest

import (
	"context"
	"errors"
	"fmt"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/metaevent"
)

// runMeta stores and publishes the meta events the other services emit
// (see internal/metaevent), until ctx ends. A meta event becomes an event
// of its project, addressed to the project's meta endpoint, so that it is
// listed, delivered and retried like any other. It is acked only once
// stored and confirmed by the broker; a redelivered one finds itself stored
// and is published again, which the router and the status service absorb.
func (s *Service) runMeta(ctx context.Context) error {
	return s.metaConn.Consume(ctx, s.topo.MetaQueue, bus.ConsumeOptions{Workers: 4}, s.handleMeta)
}

func (s *Service) handleMeta(ctx context.Context, m *bus.Delivery) error {
	var ev busv1.EventMessage
	if err := bus.Decode(m, &ev); err != nil {
		return err
	}
	if ev.GetEventId() == "" || ev.GetProjectId() == "" || !metaevent.IsEndpoint(ev.GetProjectId(), ev.GetEndpointId()) ||
		!metaevent.Known(ev.GetEventType()) || ev.GetCreateTime() == nil {
		return fmt.Errorf("%w: meta event without id, project, meta endpoint, known type or time", bus.ErrMalformed)
	}
	doc := &eventDoc{
		ID:         ev.GetEventId(),
		ProjectID:  ev.GetProjectId(),
		EventType:  ev.GetEventType(),
		Data:       ev.GetData(),
		EndpointID: ev.GetEndpointId(),
		CreateTime: ev.GetCreateTime().AsTime().UTC(),
	}
	if err := s.store.insert(ctx, doc); err != nil && !errors.Is(err, errDuplicate) {
		return fmt.Errorf("store meta event %s: %w", doc.ID, err)
	}
	return s.publish(ctx, doc)
}

package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
)

// Ordered delivery. An event with an ordering key has a place (its seq,
// from 1, given by ingest in the order it accepted the key's events). The
// router does not send its tasks: it sends one OrderedRoute, with every
// delivery WAITING and its task, to the status partition of the key's line
// (mesh.LinePartition), where the deliverers also report every state change
// of those deliveries. So one consumer at a time keeps a key's lines, and
// in the same transaction as it records what happened, it decides whose
// turn it is:
//
//   - A line is (project, key, endpoint): the deliveries to that endpoint of
//     the key's events, by seq.
//   - A route is recorded once; the key's watermark is the highest seq up
//     to which every event has been routed (routers may route out of order).
//   - A line's first delivery is sent (released: its task is published, and
//     it becomes SCHEDULED) once every earlier event of the key is routed
//     (watermark ≥ seq−1); the deliveries of those events to the endpoint
//     have then all ended, or they would come first in the line. The
//     release is stored first; a task whose publish is not confirmed is
//     sent again by sendUnsentTasks, so the broker never holds up the
//     store's transaction.
//   - SUCCESS, FAILED and DISCARDED end a delivery and take it out of its
//     line; RETRY does not, so a retry holds the line.

// errNoLines parks a route on a store that keeps no lines.
var errNoLines = errors.New("ordered delivery needs the PostgreSQL history store (HOOKMESH_POSTGRES_URL); this status service keeps deliveries in MongoDB")

// lineStore keeps the lines of ordered delivery (the PostgreSQL store).
type lineStore interface {
	// advanceLines records routes and the ends of deliveries in lines,
	// and releases the deliveries whose turn came; once that is stored it
	// calls publish with their tasks, and returns them.
	advanceLines(ctx context.Context, step *lineStep, publish func(context.Context, []*busv1.DeliveryTask) error) ([]*busv1.DeliveryTask, error)
	// sendUnsent publishes the released tasks older than before whose
	// publish was not confirmed, at most limit, and returns how many.
	sendUnsent(ctx context.Context, before time.Time, limit int, publish func(context.Context, []*busv1.DeliveryTask) error) (int, error)
}

// Sending released tasks that were not confirmed: how long after their
// release, how often, and how many at a time.
const (
	unsentGrace = 5 * time.Second
	unsentEvery = 5 * time.Second
	unsentBatch = 500
)

// sendUnsentTasks sends, until ctx ends, the released tasks of lines whose
// publish failed or whose process died before the broker confirmed them:
// the task of a delivery whose turn has come is never lost.
func (s *Service) sendUnsentTasks(ctx context.Context) error {
	tick := time.NewTicker(unsentEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for {
			n, err := s.lines.sendUnsent(ctx, time.Now().Add(-unsentGrace), unsentBatch, s.publishTasks)
			if err != nil {
				s.logger.WarnContext(ctx, "released tasks of lines not sent; trying again", "err", err)
			}
			if n > 0 {
				s.logger.InfoContext(ctx, "sent released tasks of lines that were not confirmed", "tasks", n)
			}
			if err != nil || n < unsentBatch {
				break
			}
		}
	}
}

// lineStep is what one batch of the status partition does to lines.
type lineStep struct {
	routes []*busv1.OrderedRoute
	// ended are the changes that end a delivery in a line.
	ended []*busv1.StateChange
}

// keys returns the (project, key) pairs the step touches, sorted.
func (l *lineStep) keys() []lineKey {
	var out []lineKey
	for _, r := range l.routes {
		out = append(out, lineKey{r.GetProjectId(), r.GetOrderingKey()})
	}
	for _, c := range l.ended {
		out = append(out, lineKey{c.GetProjectId(), c.GetOrderingKey()})
	}
	slices.SortFunc(out, func(a, b lineKey) int { return cmp.Or(cmp.Compare(a.project, b.project), cmp.Compare(a.key, b.key)) })
	return slices.Compact(out)
}

type lineKey struct{ project, key string }

// lineOf is a line: the deliveries of a key's events to one endpoint.
type lineOf struct{ project, key, endpoint string }

// ends reports whether a change takes its delivery out of its line.
func ends(c *busv1.StateChange) bool {
	switch c.GetStatus() {
	case statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
		statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED:
		return c.GetOrderingKey() != "" && c.GetOrderingSeq() > 0
	}
	return false
}

// checkRoute reports why a route can never be applied.
func checkRoute(r *busv1.OrderedRoute) error {
	switch {
	case r.GetProjectId() == "" || r.GetEventId() == "":
		return errors.New("route has no project_id or event_id")
	case r.GetOrderingKey() == "" || r.GetOrderingSeq() == 0:
		return fmt.Errorf("route of event %s has no ordering_key or ordering_seq", r.GetEventId())
	}
	for _, c := range r.GetDeliveries() {
		if err := CheckChange(c); err != nil {
			return fmt.Errorf("route of event %s: %w", r.GetEventId(), err)
		}
		if c.GetStatus() == statusv1.DeliveryStatus_DELIVERY_STATUS_WAITING && c.GetTask() == nil {
			return fmt.Errorf("route of event %s: WAITING delivery %s has no task", r.GetEventId(), c.GetDeliveryId())
		}
	}
	return nil
}

// decodeRoute reads a route; a route that can never apply is parked.
func decodeRoute(d *bus.Delivery) (*busv1.OrderedRoute, error) {
	var r busv1.OrderedRoute
	if err := bus.Decode(d, &r); err != nil {
		return nil, err
	}
	if err := checkRoute(&r); err != nil {
		return nil, fmt.Errorf("%w: %w", bus.ErrMalformed, err)
	}
	return &r, nil
}

// advanceLines applies the line part of a batch: it returns the state
// changes the batch implies beyond its own: the deliveries of the routes
// (WAITING, or DISCARDED) and SCHEDULED for each delivery released.
func (s *Service) advanceLines(ctx context.Context, routes []*busv1.OrderedRoute, changes []*busv1.StateChange) ([]*busv1.StateChange, error) {
	step := &lineStep{routes: routes}
	for _, c := range changes {
		if ends(c) {
			step.ended = append(step.ended, c)
		}
	}
	if len(step.routes) == 0 && len(step.ended) == 0 {
		return nil, nil
	}
	released, err := s.lines.advanceLines(ctx, step, s.publishTasks)
	if err != nil {
		return nil, fmt.Errorf("advance the lines of %d keys: %w", len(step.keys()), err)
	}
	var out []*busv1.StateChange
	for _, r := range routes {
		for _, c := range r.GetDeliveries() {
			c = proto.CloneOf(c)
			c.Task = nil
			out = append(out, c)
		}
	}
	now := timestamppb.New(time.Now())
	for _, t := range released {
		out = append(out, &busv1.StateChange{
			DeliveryId: t.GetDeliveryId(), ProjectId: t.GetProjectId(), EventId: t.GetEventId(),
			EndpointId: t.GetEndpointId(), EventType: t.GetEventType(), Attempt: t.GetAttempt(),
			Status: statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, Time: now,
			EventCreateTime: t.GetEventCreateTime(), OrderingKey: t.GetOrderingKey(), OrderingSeq: t.GetOrderingSeq(),
		})
	}
	return out, nil
}

// publishTasks sends released tasks to the deliverers and waits for the
// broker's confirms, for a while: what is not confirmed by then is sent
// again by sendUnsentTasks.
func (s *Service) publishTasks(ctx context.Context, tasks []*busv1.DeliveryTask) error {
	msgs := make([]bus.Message, len(tasks))
	for i, t := range tasks {
		msgs[i] = s.topo.TaskMessage(t)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.pub.Publish(pctx, msgs); err != nil {
		s.logger.WarnContext(ctx, "released tasks of lines not confirmed; they are sent again later", "tasks", len(tasks), "err", err)
		return err
	}
	return nil
}

package status

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// Page sizes of ListDeliveries.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// allStatuses are the statuses CountDeliveries reports, in enum order.
var allStatuses = []statusv1.DeliveryStatus{
	statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED,
	statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING,
	statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS,
	statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY,
	statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
	statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED,
	statusv1.DeliveryStatus_DELIVERY_STATUS_WAITING,
}

// handler serves StatusService. Errors that are not *connect.Error are
// unexpected; the apierr interceptor logs them and answers Internal.
type handler struct {
	store   historyStore
	retrier *retrier
	// owners restricts portal tokens to their owner's endpoints (portal.go).
	owners Owners
}

var _ statusv1connect.StatusServiceHandler = (*handler)(nil)

// GetDelivery returns one delivery of the project.
func (h *handler) GetDelivery(ctx context.Context, req *connect.Request[statusv1.GetDeliveryRequest]) (*connect.Response[statusv1.GetDeliveryResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	d, err := h.delivery(ctx, m.GetProjectId(), m.GetDeliveryId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&statusv1.GetDeliveryResponse{Delivery: d.proto()}), nil
}

// ListAttempts lists a delivery's attempts, first attempt first.
func (h *handler) ListAttempts(ctx context.Context, req *connect.Request[statusv1.ListAttemptsRequest]) (*connect.Response[statusv1.ListAttemptsResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	// A delivery that is not in the project is NotFound, not an empty list.
	if _, err := h.delivery(ctx, m.GetProjectId(), m.GetDeliveryId()); err != nil {
		return nil, err
	}
	docs, err := h.store.listAttempts(ctx, m.GetProjectId(), m.GetDeliveryId())
	if err != nil {
		return nil, err
	}
	out := &statusv1.ListAttemptsResponse{Attempts: make([]*statusv1.Attempt, len(docs))}
	for i := range docs {
		out.Attempts[i] = docs[i].proto()
	}
	return connect.NewResponse(out), nil
}

// ListDeliveries lists the project's deliveries, newest first, a page at a
// time.
func (h *handler) ListDeliveries(ctx context.Context, req *connect.Request[statusv1.ListDeliveriesRequest]) (*connect.Response[statusv1.ListDeliveriesResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	pageSize := m.GetPageSize()
	switch {
	case pageSize == 0:
		pageSize = defaultPageSize
	case pageSize > maxPageSize:
		return nil, apierr.Invalid("page_size", "%d is above the maximum of %d", pageSize, maxPageSize)
	}
	q := &deliveryQuery{
		projectID:  m.GetProjectId(),
		eventID:    m.GetEventId(),
		endpointID: m.GetEndpointId(),
		eventType:  m.GetEventType(),
		limit:      int64(pageSize) + 1, // one more tells whether a next page exists
	}
	var err error
	if q.statuses, err = checkStatuses(m.GetStatuses()); err != nil {
		return nil, err
	}
	sc, err := h.scope(ctx, q.projectID)
	if err != nil {
		return nil, err
	}
	if ok, err := sc.narrow(q); err != nil {
		return nil, err
	} else if !ok {
		return connect.NewResponse(&statusv1.ListDeliveriesResponse{}), nil
	}
	if err := q.setTimeRange(m.GetStartTime(), m.GetEndTime()); err != nil {
		return nil, err
	}
	fp := q.fingerprint()
	if tok := m.GetPageToken(); tok != "" {
		c, err := decodePageToken(tok, fp)
		if err != nil {
			return nil, apierr.Invalid("page_token", "%v", err)
		}
		q.after = &c
	}
	docs, err := h.store.listDeliveries(ctx, q)
	if err != nil {
		return nil, err
	}
	out := &statusv1.ListDeliveriesResponse{}
	if len(docs) > int(pageSize) {
		docs = docs[:pageSize]
		last := docs[len(docs)-1]
		out.NextPageToken = encodePageToken(pageCursor{createTime: last.CreateTime, id: last.ID}, fp)
	}
	out.Deliveries = make([]*statusv1.Delivery, len(docs))
	for i := range docs {
		out.Deliveries[i] = docs[i].proto()
	}
	return connect.NewResponse(out), nil
}

// CountDeliveries counts the project's deliveries per status; every status
// is listed, in enum order, with zero where none has it.
func (h *handler) CountDeliveries(ctx context.Context, req *connect.Request[statusv1.CountDeliveriesRequest]) (*connect.Response[statusv1.CountDeliveriesResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	q := &deliveryQuery{
		projectID:  m.GetProjectId(),
		eventID:    m.GetEventId(),
		endpointID: m.GetEndpointId(),
	}
	counts, err := h.count(ctx, q)
	if err != nil {
		return nil, err
	}
	out := &statusv1.CountDeliveriesResponse{}
	for _, st := range allStatuses {
		out.Counts = append(out.Counts, &statusv1.StatusCount{Status: st, Count: counts[st]})
		out.Total += counts[st]
	}
	return connect.NewResponse(out), nil
}

// count counts q's deliveries per status within the caller's scope: for a
// portal token without an endpoint filter, the sum of its owner's
// endpoints' counts, each from the store's counters.
func (h *handler) count(ctx context.Context, q *deliveryQuery) (map[statusv1.DeliveryStatus]uint64, error) {
	sc, err := h.scope(ctx, q.projectID)
	if err != nil {
		return nil, err
	}
	if !sc.restricted || q.endpointID != "" {
		if _, err := sc.narrow(q); err != nil {
			return nil, err
		}
		return h.store.countDeliveries(ctx, q)
	}
	total := map[statusv1.DeliveryStatus]uint64{}
	for _, ep := range sc.endpoints {
		one := *q
		one.endpointID = ep
		counts, err := h.store.countDeliveries(ctx, &one)
		if err != nil {
			return nil, err
		}
		for st, n := range counts {
			total[st] += n
		}
	}
	return total, nil
}

// delivery loads a delivery of the project, or answers NotFound; a portal
// token gets NotFound for a delivery of another owner's endpoint too.
func (h *handler) delivery(ctx context.Context, projectID, id string) (*deliveryDoc, error) {
	if id == "" {
		return nil, apierr.Invalid("delivery_id", "must not be empty")
	}
	d, err := h.store.getDelivery(ctx, projectID, id)
	if err != nil {
		return nil, err
	}
	if d != nil {
		sc, err := h.scope(ctx, projectID)
		if err != nil {
			return nil, err
		}
		if !sc.has(d.EndpointID) {
			d = nil
		}
	}
	if d == nil {
		return nil, apierr.NotFound("delivery", id, projectID)
	}
	return d, nil
}

// checkStatuses rejects unknown statuses and drops repeats.
func checkStatuses(in []statusv1.DeliveryStatus) ([]statusv1.DeliveryStatus, error) {
	var out []statusv1.DeliveryStatus
	seen := make(map[statusv1.DeliveryStatus]bool, len(in))
	for _, st := range in {
		if _, ok := rank(st); !ok {
			return nil, apierr.Invalid("statuses", "%v is not a delivery status: use WAITING, SCHEDULED, PROCESSING, SUCCESS, RETRY, FAILED or DISCARDED", st)
		}
		if !seen[st] {
			seen[st] = true
			out = append(out, st)
		}
	}
	return out, nil
}

// setTimeRange sets start ≤ create_time < end from optional timestamps.
func (q *deliveryQuery) setTimeRange(start, end *timestamppb.Timestamp) error {
	if start != nil {
		if err := start.CheckValid(); err != nil {
			return apierr.Invalid("start_time", "%v", err)
		}
		q.start = start.AsTime()
	}
	if end != nil {
		if err := end.CheckValid(); err != nil {
			return apierr.Invalid("end_time", "%v", err)
		}
		q.end = end.AsTime()
	}
	if start != nil && end != nil && !q.start.Before(q.end) {
		return apierr.Invalid("end_time", "must be after start_time (%s is not after %s)",
			q.end.Format("2006-01-02T15:04:05.000Z07:00"), q.start.Format("2006-01-02T15:04:05.000Z07:00"))
	}
	return nil
}

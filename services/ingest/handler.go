package ingest

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// BroadcastHeader is the header that, set to "broadcast" on any create
// call, sends the event to every endpoint of the project (Convoy-compatible).
const BroadcastHeader = "X-Convoy-Message-Type"

func isBroadcast(h http.Header) bool {
	return strings.EqualFold(strings.TrimSpace(h.Get(BroadcastHeader)), "broadcast")
}

type handler struct{ s *Service }

func (h *handler) CreateEvent(ctx context.Context, req *connect.Request[ingestv1.CreateEventRequest]) (*connect.Response[ingestv1.CreateEventResponse], error) {
	m := req.Msg
	ev, err := h.s.create(ctx, newEvent{
		projectID: m.GetProjectId(), eventType: m.GetEventType(), data: []byte(m.GetData()),
		customHeaders: m.GetCustomHeaders(), idempotencyKey: m.GetIdempotencyKey(),
		endpointID: m.GetEndpointId(), broadcast: isBroadcast(req.Header()), orderingKey: m.GetOrderingKey(),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ingestv1.CreateEventResponse{Event: ev}), nil
}

func (h *handler) CreateFanoutEvent(ctx context.Context, req *connect.Request[ingestv1.CreateFanoutEventRequest]) (*connect.Response[ingestv1.CreateFanoutEventResponse], error) {
	m := req.Msg
	broadcast := isBroadcast(req.Header())
	if m.GetOwnerId() == "" && !broadcast {
		if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
			return nil, err
		}
		return nil, apierr.Invalid("owner_id", "must not be empty for a fan-out event")
	}
	ev, err := h.s.create(ctx, newEvent{
		projectID: m.GetProjectId(), eventType: m.GetEventType(), data: []byte(m.GetData()),
		customHeaders: m.GetCustomHeaders(), idempotencyKey: m.GetIdempotencyKey(),
		ownerID: m.GetOwnerId(), broadcast: broadcast, orderingKey: m.GetOrderingKey(),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ingestv1.CreateFanoutEventResponse{Event: ev}), nil
}

func (h *handler) CreateBroadcastEvent(ctx context.Context, req *connect.Request[ingestv1.CreateBroadcastEventRequest]) (*connect.Response[ingestv1.CreateBroadcastEventResponse], error) {
	m := req.Msg
	ev, err := h.s.create(ctx, newEvent{
		projectID: m.GetProjectId(), eventType: m.GetEventType(), data: []byte(m.GetData()),
		customHeaders: m.GetCustomHeaders(), idempotencyKey: m.GetIdempotencyKey(),
		broadcast: true, orderingKey: m.GetOrderingKey(),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ingestv1.CreateBroadcastEventResponse{Event: ev}), nil
}

func (h *handler) GetEvent(ctx context.Context, req *connect.Request[ingestv1.GetEventRequest]) (*connect.Response[ingestv1.GetEventResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	if m.GetEventId() == "" {
		return nil, apierr.Invalid("event_id", "must not be empty")
	}
	doc, err := h.s.store.get(ctx, m.GetProjectId(), m.GetEventId())
	if err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, apierr.NotFound("event", m.GetEventId(), m.GetProjectId())
	}
	ev := toProto(doc)
	h.s.summarize(ctx, m.GetProjectId(), []*ingestv1.Event{ev})
	return connect.NewResponse(&ingestv1.GetEventResponse{Event: ev}), nil
}

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func (h *handler) ListEvents(ctx context.Context, req *connect.Request[ingestv1.ListEventsRequest]) (*connect.Response[ingestv1.ListEventsResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	size := int(m.GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	if size > maxPageSize {
		return nil, apierr.Invalid("page_size", "must be at most %d", maxPageSize)
	}
	f := listFilter{
		projectID: m.GetProjectId(), eventType: m.GetEventType(), endpointID: m.GetEndpointId(),
		ownerID: m.GetOwnerId(), idempotencyKey: m.GetIdempotencyKey(), limit: size,
		duplicate: m.IsDuplicate,
	}
	if m.GetStartTime() != nil {
		f.start = m.GetStartTime().AsTime()
	}
	if m.GetEndTime() != nil {
		f.end = m.GetEndTime().AsTime()
	}
	if tok := m.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || !strings.HasPrefix(string(b), "evt_") {
			return nil, apierr.Invalid("page_token", "is not a token returned by ListEvents")
		}
		f.before = string(b)
	}
	docs, err := h.s.store.list(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &ingestv1.ListEventsResponse{}
	for i := range docs {
		resp.Events = append(resp.Events, toProto(&docs[i]))
	}
	h.s.summarize(ctx, m.GetProjectId(), resp.Events)
	if len(docs) == size {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(docs[len(docs)-1].ID))
	}
	return connect.NewResponse(resp), nil
}

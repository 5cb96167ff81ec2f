package registry

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/metaevent"
)

// internalHandler serves RegistryInternalService to the other hookmesh
// services, which call it with the admin key.
type internalHandler struct {
	s *Service
}

var _ registryv1connect.RegistryInternalServiceHandler = (*internalHandler)(nil)

// AuthenticateKey says which project an API key belongs to.
func (h *internalHandler) AuthenticateKey(ctx context.Context, req *connect.Request[registryv1.AuthenticateKeyRequest]) (*connect.Response[registryv1.AuthenticateKeyResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if req.Msg.Key == "" {
		return nil, apierr.Invalid("key", "must not be empty")
	}
	projectID, keyID, err := h.s.AuthenticateKey(ctx, req.Msg.Key)
	if errors.Is(err, auth.ErrUnknownKey) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("API key not found or revoked"))
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.AuthenticateKeyResponse{ProjectId: projectID, KeyId: keyID}), nil
}

// GetTarget returns what a deliverer needs to send to one endpoint.
func (h *internalHandler) GetTarget(ctx context.Context, req *connect.Request[registryv1.GetTargetRequest]) (*connect.Response[registryv1.GetTargetResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("endpoint_id", m.EndpointId); err != nil {
		return nil, err
	}
	if metaevent.IsEndpoint(m.ProjectId, m.EndpointId) {
		t, err := h.s.metaTarget(ctx, m.ProjectId)
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&registryv1.GetTargetResponse{Target: t}), nil
	}
	d, err := h.s.store.endpoint(ctx, m.ProjectId, m.EndpointId)
	if err != nil {
		return nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
	}
	p, err := h.s.store.project(ctx, m.ProjectId)
	if err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	t, unreadable := d.target(h.s.box, p, &p.RetryPolicy, h.s.clock())
	h.s.logUnreadable(ctx, d, unreadable)
	return connect.NewResponse(&registryv1.GetTargetResponse{Target: t}), nil
}

// ResolveTargets returns the endpoints an event goes to, whatever their
// status: the router and the deliverer decide what to do with a paused or
// disabled one.
func (h *internalHandler) ResolveTargets(ctx context.Context, req *connect.Request[registryv1.ResolveTargetsRequest]) (*connect.Response[registryv1.ResolveTargetsResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkText("event_type", m.EventType, maxEventTypeLen, true); err != nil {
		return nil, err
	}
	if err := checkTargetShape(m); err != nil {
		return nil, err
	}
	p, err := h.s.store.project(ctx, m.ProjectId)
	if err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	endpoints, meta, err := h.targetEndpoints(ctx, m, p)
	if err != nil {
		return nil, err
	}
	if meta != nil {
		return connect.NewResponse(&registryv1.ResolveTargetsResponse{Targets: []*registryv1.Target{meta}}), nil
	}
	resp, err := h.targetsOf(ctx, m, p, endpoints)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// checkTargetShape checks that a ResolveTargetsRequest names exactly one of
// an endpoint, an owner or a broadcast.
func checkTargetShape(m *registryv1.ResolveTargetsRequest) error {
	shapes := 0
	for _, set := range []bool{m.EndpointId != "", m.OwnerId != "", m.Broadcast} {
		if set {
			shapes++
		}
	}
	if shapes != 1 {
		return apierr.Invalid("endpoint_id, owner_id, broadcast", "exactly one must be set, got %d", shapes)
	}
	return nil
}

// targetEndpoints loads the endpoints a ResolveTargetsRequest names: one
// endpoint, an owner's or all the project's. For the project's meta
// endpoint it returns its target instead, which has no subscriptions.
func (h *internalHandler) targetEndpoints(ctx context.Context, m *registryv1.ResolveTargetsRequest, p *projectDoc) ([]endpointDoc, *registryv1.Target, error) {
	switch {
	case m.EndpointId != "":
		if err := checkID("endpoint_id", m.EndpointId); err != nil {
			return nil, nil, err
		}
		if metaevent.IsEndpoint(m.ProjectId, m.EndpointId) {
			t, err := p.metaTarget(h.s)
			if err != nil {
				return nil, nil, err
			}
			return nil, t, nil
		}
		d, err := h.s.store.endpoint(ctx, m.ProjectId, m.EndpointId)
		if err != nil {
			return nil, nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
		}
		return []endpointDoc{*d}, nil, nil
	case m.OwnerId != "":
		if err := checkText("owner_id", m.OwnerId, maxNameLen, false); err != nil {
			return nil, nil, err
		}
		endpoints, err := h.s.store.endpointsOf(ctx, m.ProjectId, m.OwnerId, false)
		return endpoints, nil, err
	default:
		endpoints, err := h.s.store.endpointsOf(ctx, m.ProjectId, "", true)
		return endpoints, nil, err
	}
}

// targetsOf returns the targets of the endpoints with a subscription that
// accepts the event, each with those subscriptions.
func (h *internalHandler) targetsOf(ctx context.Context, m *registryv1.ResolveTargetsRequest, p *projectDoc, endpoints []endpointDoc) (*registryv1.ResolveTargetsResponse, error) {
	resp := &registryv1.ResolveTargetsResponse{}
	if len(endpoints) == 0 {
		return resp, nil
	}
	endpointIDs := make([]string, len(endpoints))
	for i := range endpoints {
		endpointIDs[i] = endpoints[i].ID
	}
	subs, err := h.s.store.subscriptionsOf(ctx, m.ProjectId, endpointIDs, m.Broadcast)
	if err != nil {
		return nil, err
	}
	ev := eventInfo{Type: m.EventType}
	now := h.s.clock()
	for i := range endpoints {
		accepting, ok := acceptingSubscriptions(subs[endpoints[i].ID], ev)
		if !ok {
			continue
		}
		_, retry := selectTarget(subs[endpoints[i].ID], ev, &p.RetryPolicy)
		t, unreadable := endpoints[i].target(h.s.box, p, retry, now)
		h.s.logUnreadable(ctx, &endpoints[i], unreadable)
		for _, sub := range accepting {
			ps, err := sub.proto()
			if err != nil {
				return nil, err
			}
			t.Subscriptions = append(t.Subscriptions, ps)
		}
		resp.Targets = append(resp.Targets, t)
	}
	return resp, nil
}

// DisableEndpoint marks an active endpoint DISABLED (a paused one stays
// paused) and announces the change, so that its next deliveries are
// discarded everywhere.
func (h *internalHandler) DisableEndpoint(ctx context.Context, req *connect.Request[registryv1.DisableEndpointRequest]) (*connect.Response[registryv1.DisableEndpointResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("endpoint_id", m.EndpointId); err != nil {
		return nil, err
	}
	if metaevent.IsEndpoint(m.ProjectId, m.EndpointId) {
		// The meta endpoint is turned off only by its project's settings.
		return nil, apierr.Invalid("endpoint_id", "%q is the project's meta endpoint: disable meta events with SetMetaEvents instead", m.EndpointId)
	}
	now := h.s.clock()
	disabled := false
	d, err := h.s.store.modifyEndpoint(ctx, m.ProjectId, m.EndpointId, func(d *endpointDoc) error {
		disabled = false
		if d.Status == statusActive {
			disabled = true
			d.Status = statusDisabled
			d.DisabledReason = m.Reason
			if d.DisabledReason == "" {
				d.DisabledReason = "disabled by hookmesh"
			}
			d.DisableTime = &now
			d.UpdateTime = now
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
	}
	h.s.logger.WarnContext(ctx, "endpoint disabled", "project_id", m.ProjectId, "endpoint_id", m.EndpointId, "reason", m.Reason)
	if disabled {
		reason := metaevent.ReasonFailures
		if strings.HasPrefix(m.Reason, "410") {
			reason = metaevent.ReasonGone
		}
		h.s.endpointMeta(ctx, metaevent.EndpointDisabled, d, statusDisabled, reason, d.DisabledReason)
	}
	return connect.NewResponse(&registryv1.DisableEndpointResponse{Endpoint: d.proto()}), nil
}

// AuthenticatePortalToken says which project, portal link and owner a
// portal token belongs to.
func (h *internalHandler) AuthenticatePortalToken(ctx context.Context, req *connect.Request[registryv1.AuthenticatePortalTokenRequest]) (*connect.Response[registryv1.AuthenticatePortalTokenResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if req.Msg.Token == "" {
		return nil, apierr.Invalid("token", "must not be empty")
	}
	g, err := h.s.AuthenticatePortalToken(ctx, req.Msg.Token)
	if errors.Is(err, auth.ErrUnknownKey) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("portal token not found, expired or revoked"))
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.AuthenticatePortalTokenResponse{
		ProjectId: g.ProjectID, PortalLinkId: g.LinkID, OwnerId: g.OwnerID, ExpireTime: timestamp(g.ExpireTime),
	}), nil
}

// ListOwnerEndpoints returns the ids of an owner's endpoints, oldest first.
func (h *internalHandler) ListOwnerEndpoints(ctx context.Context, req *connect.Request[registryv1.ListOwnerEndpointsRequest]) (*connect.Response[registryv1.ListOwnerEndpointsResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkText("owner_id", m.OwnerId, maxNameLen, true); err != nil {
		return nil, err
	}
	docs, err := h.s.store.endpointsOf(ctx, m.ProjectId, m.OwnerId, false)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListOwnerEndpointsResponse{EndpointIds: make([]string, len(docs))}
	for i := range docs {
		resp.EndpointIds[i] = docs[i].ID
	}
	return connect.NewResponse(resp), nil
}

// maxRetentionPage bounds one page of ListRetentions.
const maxRetentionPage = 1000

// ListRetentions returns how many days each project's history is kept, in
// project id order, a page at a time.
func (h *internalHandler) ListRetentions(ctx context.Context, req *connect.Request[registryv1.ListRetentionsRequest]) (*connect.Response[registryv1.ListRetentionsResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	size := int(req.Msg.PageSize)
	if size == 0 {
		size = maxRetentionPage
	}
	if size > maxRetentionPage {
		return nil, apierr.Invalid("page_size", "must be at most %d, got %d", maxRetentionPage, size)
	}
	after, err := decodePageToken(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	docs, next, err := h.s.store.listProjects(ctx, after, size)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListRetentionsResponse{Retentions: make([]*registryv1.ProjectRetention, 0, len(docs))}
	for i := range docs {
		resp.Retentions = append(resp.Retentions, &registryv1.ProjectRetention{ProjectId: docs[i].ID, Days: docs[i].retentionDays()})
	}
	if next != "" {
		resp.NextPageToken = encodePageToken(next)
	}
	return connect.NewResponse(resp), nil
}

package registry

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/metaevent"
)

// authorizeEndpoint checks the caller and the ids of a request about one
// endpoint.
func authorizeEndpoint(ctx context.Context, projectID, endpointID string) error {
	if err := auth.AuthorizeProject(ctx, projectID); err != nil {
		return err
	}
	if err := checkID("project_id", projectID); err != nil {
		return err
	}
	return checkID("endpoint_id", endpointID)
}

// dropExpiredSecrets removes the previous secrets that expired by now. The
// current secret, first, never expires.
func dropExpiredSecrets(d *endpointDoc, now time.Time) {
	kept := d.Secrets[:0]
	for i, sd := range d.Secrets {
		if i == 0 || sd.ExpireTime == nil || now.Before(*sd.ExpireTime) {
			kept = append(kept, sd)
		}
	}
	d.Secrets = kept
}

// CreateEndpoint registers an endpoint; its secret is generated when empty
// and shown only in this response and RotateEndpointSecret's.
func (h *handler) CreateEndpoint(ctx context.Context, req *connect.Request[registryv1.CreateEndpointRequest]) (*connect.Response[registryv1.CreateEndpointResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := h.s.checkEndpointURL("url", m.Url); err != nil {
		return nil, err
	}
	ownerID, err := newEndpointOwner(ctx, m.OwnerId)
	if err != nil {
		return nil, err
	}
	if err := checkText("name", m.Name, maxNameLen, false); err != nil {
		return nil, err
	}
	if err := checkText("description", m.Description, maxDescriptionLen, false); err != nil {
		return nil, err
	}
	timeout, err := checkTimeout(m.TimeoutSeconds)
	if err != nil {
		return nil, err
	}
	rateLimit, err := checkRateLimit(m.RateLimit)
	if err != nil {
		return nil, err
	}
	secret, publicKey, err := newSecret("secret", m.SignatureAlgorithm, m.Secret)
	if err != nil {
		return nil, err
	}
	p, err := h.s.store.project(ctx, m.ProjectId)
	if err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	headers, err := checkCustomHeaders(m.CustomHeaders, p.Signature.Header)
	if err != nil {
		return nil, err
	}
	id := ids.New("ep")
	sealed, err := sealSecret(h.s.box, id, secret)
	if err != nil {
		return nil, err
	}
	now := h.s.clock()
	d := &endpointDoc{
		ID:             id,
		ProjectID:      m.ProjectId,
		URL:            m.Url,
		OwnerID:        ownerID,
		Name:           m.Name,
		Description:    m.Description,
		TimeoutSeconds: timeout,
		RateLimit:      rateLimit,
		CustomHeaders:  headers,
		Status:         statusActive,
		Secrets:        []secretDoc{{Value: sealed, PublicKey: publicKey}},
		CreateTime:     now,
		UpdateTime:     now,
		Version:        1,
	}
	if err := h.s.store.insertEndpoint(ctx, d); err != nil {
		return nil, err
	}
	h.s.endpointMeta(ctx, metaevent.EndpointCreated, d, d.Status, "", "")
	e, err := d.protoWithSecret(h.s.box)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.CreateEndpointResponse{Endpoint: e}), nil
}

// newEndpointOwner checks the owner_id of a new endpoint and returns its
// owner: a portal token's own owner, whatever the request says.
func newEndpointOwner(ctx context.Context, ownerID string) (string, error) {
	if err := checkText("owner_id", ownerID, maxNameLen, false); err != nil {
		return "", err
	}
	if owner := ownerScope(ctx); owner != "" {
		// A portal token creates endpoints of its own owner only.
		if ownerID != "" && ownerID != owner {
			return "", apierr.PermissionDenied(fmt.Sprintf("owner_id: a portal token creates endpoints of its own owner only; leave owner_id empty or set it to %q", owner))
		}
		ownerID = owner
	}
	return ownerID, nil
}

// GetEndpoint returns one endpoint, without its secret.
func (h *handler) GetEndpoint(ctx context.Context, req *connect.Request[registryv1.GetEndpointRequest]) (*connect.Response[registryv1.GetEndpointResponse], error) {
	m := req.Msg
	if err := authorizeEndpoint(ctx, m.ProjectId, m.EndpointId); err != nil {
		return nil, err
	}
	d, err := h.s.store.endpoint(ctx, m.ProjectId, m.EndpointId)
	if err == nil {
		err = checkOwned(ctx, d)
	}
	if err != nil {
		return nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
	}
	return connect.NewResponse(&registryv1.GetEndpointResponse{Endpoint: d.proto()}), nil
}

// ListEndpoints lists a project's endpoints in creation order, optionally
// those of one owner.
func (h *handler) ListEndpoints(ctx context.Context, req *connect.Request[registryv1.ListEndpointsRequest]) (*connect.Response[registryv1.ListEndpointsResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkText("owner_id", m.OwnerId, maxNameLen, false); err != nil {
		return nil, err
	}
	ownerID := m.OwnerId
	if owner := ownerScope(ctx); owner != "" {
		if ownerID != "" && ownerID != owner {
			return nil, apierr.PermissionDenied(fmt.Sprintf("owner_id: a portal token lists the endpoints of its own owner only; leave owner_id empty or set it to %q", owner))
		}
		ownerID = owner
	}
	size, after, err := pageParams(m.PageSize, m.PageToken)
	if err != nil {
		return nil, err
	}
	docs, next, err := h.s.store.listEndpoints(ctx, m.ProjectId, ownerID, after, size)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListEndpointsResponse{Endpoints: make([]*registryv1.Endpoint, 0, len(docs))}
	for i := range docs {
		resp.Endpoints = append(resp.Endpoints, docs[i].proto())
	}
	if next != "" {
		resp.NextPageToken = encodePageToken(next)
	}
	return connect.NewResponse(resp), nil
}

// UpdateEndpoint changes the fields that are set: the optional ones when
// present, rate_limit when not nil (all zero removes the limit), and the
// custom headers when replace_custom_headers is true.
func (h *handler) UpdateEndpoint(ctx context.Context, req *connect.Request[registryv1.UpdateEndpointRequest]) (*connect.Response[registryv1.UpdateEndpointResponse], error) {
	m := req.Msg
	if err := authorizeEndpoint(ctx, m.ProjectId, m.EndpointId); err != nil {
		return nil, err
	}
	if err := h.checkEndpointUpdateText(ctx, m); err != nil {
		return nil, err
	}
	c, err := h.checkEndpointUpdateSettings(ctx, m)
	if err != nil {
		return nil, err
	}
	now := h.s.clock()
	d, err := h.s.store.modifyEndpoint(ctx, m.ProjectId, m.EndpointId, func(d *endpointDoc) error {
		if err := checkOwned(ctx, d); err != nil {
			return err
		}
		c.apply(d, m)
		dropExpiredSecrets(d, now)
		d.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
	}
	h.s.endpointMeta(ctx, metaevent.EndpointUpdated, d, d.Status, "", "")
	return connect.NewResponse(&registryv1.UpdateEndpointResponse{Endpoint: d.proto()}), nil
}

// checkEndpointUpdateText checks the url, owner_id, name and description
// an UpdateEndpointRequest sets, in that order.
func (h *handler) checkEndpointUpdateText(ctx context.Context, m *registryv1.UpdateEndpointRequest) error {
	if m.Url != nil {
		if err := h.s.checkEndpointURL("url", *m.Url); err != nil {
			return err
		}
	}
	if m.OwnerId != nil {
		if err := checkText("owner_id", *m.OwnerId, maxNameLen, false); err != nil {
			return err
		}
		if owner := ownerScope(ctx); owner != "" && *m.OwnerId != owner {
			return apierr.PermissionDenied("owner_id: a portal token cannot give its endpoints to another owner")
		}
	}
	if m.Name != nil {
		if err := checkText("name", *m.Name, maxNameLen, false); err != nil {
			return err
		}
	}
	if m.Description != nil {
		if err := checkText("description", *m.Description, maxDescriptionLen, false); err != nil {
			return err
		}
	}
	return nil
}

// endpointChanges holds the checked values of an UpdateEndpointRequest's
// timeout, rate limit and custom headers.
type endpointChanges struct {
	timeout   int64
	rateLimit *rateLimitDoc
	headers   []headerDoc
}

// checkEndpointUpdateSettings checks the timeout, rate limit and custom
// headers an UpdateEndpointRequest sets, in that order; the headers are
// checked against the project's signature header.
func (h *handler) checkEndpointUpdateSettings(ctx context.Context, m *registryv1.UpdateEndpointRequest) (endpointChanges, error) {
	var c endpointChanges
	var err error
	if m.TimeoutSeconds != nil {
		if c.timeout, err = checkTimeout(*m.TimeoutSeconds); err != nil {
			return c, err
		}
	}
	if m.RateLimit != nil {
		if c.rateLimit, err = checkRateLimit(m.RateLimit); err != nil {
			return c, err
		}
	}
	if m.ReplaceCustomHeaders {
		p, err := h.s.store.project(ctx, m.ProjectId)
		if err != nil {
			return c, storeErr(err, "project", m.ProjectId, "")
		}
		if c.headers, err = checkCustomHeaders(m.CustomHeaders, p.Signature.Header); err != nil {
			return c, err
		}
	} else if len(m.CustomHeaders) > 0 {
		return c, apierr.Invalid("custom_headers", "are applied only with replace_custom_headers: true, which replaces all of the endpoint's custom headers")
	}
	return c, nil
}

// apply sets on d the fields that m sets, with the checked values of c.
func (c endpointChanges) apply(d *endpointDoc, m *registryv1.UpdateEndpointRequest) {
	if m.Url != nil {
		d.URL = *m.Url
	}
	if m.OwnerId != nil {
		d.OwnerID = *m.OwnerId
	}
	if m.Name != nil {
		d.Name = *m.Name
	}
	if m.Description != nil {
		d.Description = *m.Description
	}
	if m.TimeoutSeconds != nil {
		d.TimeoutSeconds = c.timeout
	}
	if m.RateLimit != nil {
		d.RateLimit = c.rateLimit
	}
	if m.ReplaceCustomHeaders {
		d.CustomHeaders = c.headers
	}
}

// DeleteEndpoint deletes an endpoint and its subscriptions.
func (h *handler) DeleteEndpoint(ctx context.Context, req *connect.Request[registryv1.DeleteEndpointRequest]) (*connect.Response[registryv1.DeleteEndpointResponse], error) {
	m := req.Msg
	if err := authorizeEndpoint(ctx, m.ProjectId, m.EndpointId); err != nil {
		return nil, err
	}
	// The endpoint is read first, for the owner check and for the meta
	// event that describes it.
	d, err := h.s.store.endpoint(ctx, m.ProjectId, m.EndpointId)
	if err == nil {
		err = checkOwned(ctx, d)
	}
	if err != nil {
		return nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
	}
	if err := h.s.store.deleteEndpoint(ctx, m.ProjectId, m.EndpointId); err != nil {
		return nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
	}
	h.s.endpointMeta(ctx, metaevent.EndpointDeleted, d, "deleted", "", "")
	return connect.NewResponse(&registryv1.DeleteEndpointResponse{}), nil
}

// setStatus changes an endpoint's status.
func (h *handler) setStatus(ctx context.Context, projectID, endpointID, status string) (*registryv1.Endpoint, error) {
	if err := authorizeEndpoint(ctx, projectID, endpointID); err != nil {
		return nil, err
	}
	now := h.s.clock()
	previous := ""
	d, err := h.s.store.modifyEndpoint(ctx, projectID, endpointID, func(d *endpointDoc) error {
		if err := checkOwned(ctx, d); err != nil {
			return err
		}
		previous = d.Status
		d.Status = status
		if status != statusDisabled {
			d.DisabledReason, d.DisableTime = "", nil
		}
		dropExpiredSecrets(d, now)
		d.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "endpoint", endpointID, projectID)
	}
	switch {
	case previous == status:
	case status == statusActive:
		h.s.endpointMeta(ctx, metaevent.EndpointEnabled, d, status, "", "")
	case status == statusPaused && previous == statusActive:
		h.s.endpointMeta(ctx, metaevent.EndpointDisabled, d, status, metaevent.ReasonManual, "paused by a user")
	}
	return d.proto(), nil
}

// PauseEndpoint pauses an endpoint: its new deliveries are discarded.
func (h *handler) PauseEndpoint(ctx context.Context, req *connect.Request[registryv1.PauseEndpointRequest]) (*connect.Response[registryv1.PauseEndpointResponse], error) {
	e, err := h.setStatus(ctx, req.Msg.ProjectId, req.Msg.EndpointId, statusPaused)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.PauseEndpointResponse{Endpoint: e}), nil
}

// ActivateEndpoint makes a paused or disabled endpoint active again.
func (h *handler) ActivateEndpoint(ctx context.Context, req *connect.Request[registryv1.ActivateEndpointRequest]) (*connect.Response[registryv1.ActivateEndpointResponse], error) {
	e, err := h.setStatus(ctx, req.Msg.ProjectId, req.Msg.EndpointId, statusActive)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.ActivateEndpointResponse{Endpoint: e}), nil
}

// RotateEndpointSecret makes a new current secret. The previous ones keep
// signing for previous_secret_ttl_seconds (0 drops them now).
func (h *handler) RotateEndpointSecret(ctx context.Context, req *connect.Request[registryv1.RotateEndpointSecretRequest]) (*connect.Response[registryv1.RotateEndpointSecretResponse], error) {
	m := req.Msg
	if err := authorizeEndpoint(ctx, m.ProjectId, m.EndpointId); err != nil {
		return nil, err
	}
	if m.PreviousSecretTtlSeconds > maxPreviousSecretTTL {
		return nil, apierr.Invalid("previous_secret_ttl_seconds", "must be at most %d (7 days), got %d", maxPreviousSecretTTL, m.PreviousSecretTtlSeconds)
	}
	if _, ok := registryv1.SignatureAlgorithm_name[int32(m.SignatureAlgorithm)]; !ok {
		return nil, apierr.Invalid("signature_algorithm", "unknown value %d: use SIGNATURE_ALGORITHM_HMAC_SHA256 or SIGNATURE_ALGORITHM_ED25519", int32(m.SignatureAlgorithm))
	}
	now := h.s.clock()
	ttl := time.Duration(m.PreviousSecretTtlSeconds) * time.Second
	d, err := h.s.store.modifyEndpoint(ctx, m.ProjectId, m.EndpointId, func(d *endpointDoc) error {
		if err := checkOwned(ctx, d); err != nil {
			return err
		}
		// The new secret keeps the endpoint's algorithm unless the request
		// names another.
		alg := m.SignatureAlgorithm
		if alg == registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_UNSPECIFIED {
			alg = d.algorithm()
		}
		s, publicKey, err := newSecret("secret", alg, m.Secret)
		if err != nil {
			return err
		}
		sealed, err := sealSecret(h.s.box, m.EndpointId, s)
		if err != nil {
			return err
		}
		d.Secrets = rotatedSecrets(secretDoc{Value: sealed, PublicKey: publicKey}, d.Secrets, now, ttl)
		d.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
	}
	h.s.endpointMeta(ctx, metaevent.EndpointUpdated, d, d.Status, "", "")
	e, err := d.protoWithSecret(h.s.box)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.RotateEndpointSecretResponse{Endpoint: e}), nil
}

// rotatedSecrets returns an endpoint's secrets after a rotation: current
// first, then the previous ones that have not expired, each ending ttl
// after now at the latest (none when ttl is 0), at most maxSecrets in all.
func rotatedSecrets(current secretDoc, previous []secretDoc, now time.Time, ttl time.Duration) []secretDoc {
	secrets := []secretDoc{current}
	if ttl > 0 {
		expire := now.Add(ttl)
		for _, old := range previous {
			if old.ExpireTime != nil && !now.Before(*old.ExpireTime) {
				continue
			}
			// A secret already on its way out keeps its own, earlier, end.
			e := expire
			if old.ExpireTime != nil && old.ExpireTime.Before(e) {
				e = *old.ExpireTime
			}
			secrets = append(secrets, secretDoc{Value: old.Value, ExpireTime: &e, PublicKey: old.PublicKey})
		}
	}
	if len(secrets) > maxSecrets {
		secrets = secrets[:maxSecrets]
	}
	return secrets
}

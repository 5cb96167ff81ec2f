package registry

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// handler serves RegistryService. Projects are in this file, endpoints and
// subscriptions in handler_endpoint.go and handler_subscription.go.
type handler struct {
	s *Service
}

var _ registryv1connect.RegistryServiceHandler = (*handler)(nil)

// storeErr turns the store's errors about one object into what the caller
// sees; other errors are returned as they are (the apierr interceptor makes
// them Internal).
func storeErr(err error, kind, id, projectID string) error {
	switch {
	case errors.Is(err, errNotFound):
		return apierr.NotFound(kind, id, projectID)
	case errors.Is(err, errConflict):
		return connect.NewError(connect.CodeAborted,
			fmt.Errorf("%s %q was changed by other requests at the same time: retry", kind, id))
	}
	return err
}

// CreateProject creates a project and its first API key.
func (h *handler) CreateProject(ctx context.Context, req *connect.Request[registryv1.CreateProjectRequest]) (*connect.Response[registryv1.CreateProjectResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := checkText("name", m.Name, maxNameLen, true); err != nil {
		return nil, err
	}
	retry, err := checkRetryPolicy("retry_policy", m.RetryPolicy)
	if err != nil {
		return nil, err
	}
	sig, err := checkSignature(m.Signature)
	if err != nil {
		return nil, err
	}
	if err := checkRetention(m.Retention); err != nil {
		return nil, err
	}
	now := h.s.clock()
	p := &projectDoc{
		ID:                       ids.New("prj"),
		Name:                     m.Name,
		RetryPolicy:              retry,
		Signature:                sig,
		DisableEndpointOnFailure: m.DisableEndpointOnFailure,
		DisableAfterFailures:     m.DisableEndpointAfterFailures,
		Retention:                m.Retention,
		CreateTime:               now,
		UpdateTime:               now,
		Version:                  1,
	}
	if err := h.s.store.insertProject(ctx, p); err != nil {
		return nil, err
	}
	k, key := newKeyDoc(p.ID, "default", now)
	if err := h.s.store.insertAPIKey(ctx, k); err != nil {
		// The project stays: CreateAPIKey with the admin key can still give it a key.
		return nil, fmt.Errorf("create first api key of project %s: %w", p.ID, err)
	}
	h.s.logger.InfoContext(ctx, "project created", "project_id", p.ID)
	return connect.NewResponse(&registryv1.CreateProjectResponse{
		Project: p.proto(),
		ApiKey:  k.proto(),
		Key:     key,
	}), nil
}

// GetProject returns one project.
func (h *handler) GetProject(ctx context.Context, req *connect.Request[registryv1.GetProjectRequest]) (*connect.Response[registryv1.GetProjectResponse], error) {
	id := req.Msg.ProjectId
	if err := auth.AuthorizeProject(ctx, id); err != nil {
		return nil, err
	}
	if err := checkID("project_id", id); err != nil {
		return nil, err
	}
	p, err := h.s.store.project(ctx, id)
	if err != nil {
		return nil, storeErr(err, "project", id, "")
	}
	return connect.NewResponse(&registryv1.GetProjectResponse{Project: p.proto()}), nil
}

// ListProjects lists projects, oldest first.
func (h *handler) ListProjects(ctx context.Context, req *connect.Request[registryv1.ListProjectsRequest]) (*connect.Response[registryv1.ListProjectsResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	size, after, err := pageParams(req.Msg.PageSize, req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	docs, next, err := h.s.store.listProjects(ctx, after, size)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListProjectsResponse{Projects: make([]*registryv1.Project, 0, len(docs))}
	for i := range docs {
		resp.Projects = append(resp.Projects, docs[i].proto())
	}
	if next != "" {
		resp.NextPageToken = encodePageToken(next)
	}
	return connect.NewResponse(resp), nil
}

// UpdateProject changes the fields that are set.
func (h *handler) UpdateProject(ctx context.Context, req *connect.Request[registryv1.UpdateProjectRequest]) (*connect.Response[registryv1.UpdateProjectResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if m.Name != nil {
		if err := checkText("name", *m.Name, maxNameLen, true); err != nil {
			return nil, err
		}
	}
	var retry retryDoc
	if m.RetryPolicy != nil {
		var err error
		if retry, err = checkRetryPolicy("retry_policy", m.RetryPolicy); err != nil {
			return nil, err
		}
	}
	var sig signatureDoc
	if m.Signature != nil {
		var err error
		if sig, err = checkSignature(m.Signature); err != nil {
			return nil, err
		}
	}
	if m.Retention != nil {
		if err := checkRetention(*m.Retention); err != nil {
			return nil, err
		}
	}
	now := h.s.clock()
	p, err := h.s.store.modifyProject(ctx, m.ProjectId, func(d *projectDoc) error {
		applyProjectUpdate(d, m, retry, sig)
		d.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	return connect.NewResponse(&registryv1.UpdateProjectResponse{Project: p.proto()}), nil
}

// applyProjectUpdate sets on d the fields that m sets; retry and sig are
// m's retry policy and signature, checked.
func applyProjectUpdate(d *projectDoc, m *registryv1.UpdateProjectRequest, retry retryDoc, sig signatureDoc) {
	if m.Name != nil {
		d.Name = *m.Name
	}
	if m.RetryPolicy != nil {
		d.RetryPolicy = retry
	}
	if m.Signature != nil {
		d.Signature = sig
	}
	if m.DisableEndpointOnFailure != nil {
		d.DisableEndpointOnFailure = *m.DisableEndpointOnFailure
	}
	if m.DisableEndpointAfterFailures != nil {
		d.DisableAfterFailures = *m.DisableEndpointAfterFailures
	}
	if m.Retention != nil {
		d.Retention = *m.Retention
	}
}

// DeleteProject deletes a project, its endpoints and subscriptions, and
// revokes its keys.
func (h *handler) DeleteProject(ctx context.Context, req *connect.Request[registryv1.DeleteProjectRequest]) (*connect.Response[registryv1.DeleteProjectResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	id := req.Msg.ProjectId
	if err := checkID("project_id", id); err != nil {
		return nil, err
	}
	if _, err := h.s.store.project(ctx, id); err != nil {
		return nil, storeErr(err, "project", id, "")
	}
	err := h.s.store.deleteProject(ctx, id, h.s.clock())
	// Even after a partial failure some keys may be revoked: forget them all.
	h.s.keys.InvalidateTag(id)
	h.s.portals.InvalidateTag(id)
	if err != nil {
		return nil, err
	}
	h.s.logger.InfoContext(ctx, "project deleted", "project_id", id)
	return connect.NewResponse(&registryv1.DeleteProjectResponse{}), nil
}

// CreateAPIKey creates a project API key.
func (h *handler) CreateAPIKey(ctx context.Context, req *connect.Request[registryv1.CreateAPIKeyRequest]) (*connect.Response[registryv1.CreateAPIKeyResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkText("name", m.Name, maxNameLen, false); err != nil {
		return nil, err
	}
	if _, err := h.s.store.project(ctx, m.ProjectId); err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	k, key := newKeyDoc(m.ProjectId, m.Name, h.s.clock())
	if err := h.s.store.insertAPIKey(ctx, k); err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.CreateAPIKeyResponse{ApiKey: k.proto(), Key: key}), nil
}

// ListAPIKeys lists a project's keys, without their secret part.
func (h *handler) ListAPIKeys(ctx context.Context, req *connect.Request[registryv1.ListAPIKeysRequest]) (*connect.Response[registryv1.ListAPIKeysResponse], error) {
	id := req.Msg.ProjectId
	if err := auth.AuthorizeProject(ctx, id); err != nil {
		return nil, err
	}
	if err := checkID("project_id", id); err != nil {
		return nil, err
	}
	docs, err := h.s.store.listAPIKeys(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListAPIKeysResponse{ApiKeys: make([]*registryv1.APIKey, 0, len(docs))}
	for i := range docs {
		resp.ApiKeys = append(resp.ApiKeys, docs[i].proto())
	}
	return connect.NewResponse(resp), nil
}

// RevokeAPIKey revokes a key; it stops working in this process at once.
func (h *handler) RevokeAPIKey(ctx context.Context, req *connect.Request[registryv1.RevokeAPIKeyRequest]) (*connect.Response[registryv1.RevokeAPIKeyResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("key_id", m.KeyId); err != nil {
		return nil, err
	}
	k, err := h.s.store.apiKey(ctx, m.ProjectId, m.KeyId)
	if err != nil {
		return nil, storeErr(err, "API key", m.KeyId, m.ProjectId)
	}
	if k.RevokeTime == nil {
		now := h.s.clock()
		err := h.s.store.revokeAPIKey(ctx, k.Hash, now)
		// Invalidate after the write: a load that read the key before it
		// is then not kept (see ttlcache).
		h.s.keys.Invalidate(k.Hash)
		if err != nil {
			return nil, err
		}
		k.RevokeTime = &now
		h.s.logger.InfoContext(ctx, "api key revoked", "project_id", m.ProjectId, "key_id", m.KeyId)
	} else {
		// Revoked elsewhere: this process may still hold the key as valid.
		h.s.keys.Invalidate(k.Hash)
	}
	return connect.NewResponse(&registryv1.RevokeAPIKeyResponse{ApiKey: k.proto()}), nil
}

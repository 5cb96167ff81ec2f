package registry

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// sourceErr is storeErr for sources, which also refuses a queue that
// another source consumes.
func sourceErr(err error, id, projectID, queue string) error {
	if errors.Is(err, errQueueTaken) {
		return connect.NewError(connect.CodeAlreadyExists,
			fmt.Errorf("amqp.queue %q is already the queue of another source: each queue feeds one source", queue))
	}
	return storeErr(err, "source", id, projectID)
}

// authorizeSource checks the caller and the ids of a request about one
// source.
func authorizeSource(ctx context.Context, projectID, sourceID string) error {
	if err := auth.AuthorizeProject(ctx, projectID); err != nil {
		return err
	}
	if err := checkID("project_id", projectID); err != nil {
		return err
	}
	return checkID("source_id", sourceID)
}

// sourceProto returns a source with its counters.
func (s *Service) sourceProto(ctx context.Context, d *sourceDoc) (*registryv1.Source, error) {
	counters, err := s.store.countersOf(ctx, []string{d.ID})
	if err != nil {
		return nil, err
	}
	return d.proto(counters[d.ID]), nil
}

// CreateSource makes ingest consume a queue for the project.
func (h *handler) CreateSource(ctx context.Context, req *connect.Request[registryv1.CreateSourceRequest]) (*connect.Response[registryv1.CreateSourceResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkText("name", m.Name, maxNameLen, true); err != nil {
		return nil, err
	}
	if err := h.s.checkQueue("amqp.queue", m.GetAmqp().GetQueue()); err != nil {
		return nil, err
	}
	if _, err := h.s.store.project(ctx, m.ProjectId); err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	now := h.s.clock()
	d := &sourceDoc{
		ID:         ids.New("src"),
		ProjectID:  m.ProjectId,
		Name:       m.Name,
		Queue:      m.GetAmqp().GetQueue(),
		Status:     statusActive,
		CreateTime: now,
		UpdateTime: now,
		Version:    1,
	}
	if err := h.s.store.insertSource(ctx, d); err != nil {
		return nil, sourceErr(err, d.ID, d.ProjectID, d.Queue)
	}
	h.s.logger.InfoContext(ctx, "source created", "project_id", d.ProjectID, "source_id", d.ID, "queue", d.Queue)
	return connect.NewResponse(&registryv1.CreateSourceResponse{Source: d.proto(nil)}), nil
}

// GetSource returns one source with its counters.
func (h *handler) GetSource(ctx context.Context, req *connect.Request[registryv1.GetSourceRequest]) (*connect.Response[registryv1.GetSourceResponse], error) {
	m := req.Msg
	if err := authorizeSource(ctx, m.ProjectId, m.SourceId); err != nil {
		return nil, err
	}
	d, err := h.s.store.source(ctx, m.ProjectId, m.SourceId)
	if err != nil {
		return nil, storeErr(err, "source", m.SourceId, m.ProjectId)
	}
	src, err := h.s.sourceProto(ctx, d)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.GetSourceResponse{Source: src}), nil
}

// ListSources lists a project's sources with their counters, oldest first.
func (h *handler) ListSources(ctx context.Context, req *connect.Request[registryv1.ListSourcesRequest]) (*connect.Response[registryv1.ListSourcesResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	size, after, err := pageParams(m.PageSize, m.PageToken)
	if err != nil {
		return nil, err
	}
	docs, next, err := h.s.store.listSources(ctx, m.ProjectId, after, size)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(docs))
	for i := range docs {
		ids[i] = docs[i].ID
	}
	counters, err := h.s.store.countersOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListSourcesResponse{Sources: make([]*registryv1.Source, 0, len(docs))}
	for i := range docs {
		resp.Sources = append(resp.Sources, docs[i].proto(counters[docs[i].ID]))
	}
	if next != "" {
		resp.NextPageToken = encodePageToken(next)
	}
	return connect.NewResponse(resp), nil
}

// UpdateSource changes a source's name or queue.
func (h *handler) UpdateSource(ctx context.Context, req *connect.Request[registryv1.UpdateSourceRequest]) (*connect.Response[registryv1.UpdateSourceResponse], error) {
	m := req.Msg
	if err := authorizeSource(ctx, m.ProjectId, m.SourceId); err != nil {
		return nil, err
	}
	if m.Name != nil {
		if err := checkText("name", *m.Name, maxNameLen, true); err != nil {
			return nil, err
		}
	}
	if m.Amqp != nil {
		if err := h.s.checkQueue("amqp.queue", m.Amqp.GetQueue()); err != nil {
			return nil, err
		}
		taken, err := h.s.store.queueTaken(ctx, m.Amqp.GetQueue(), m.SourceId)
		if err != nil {
			return nil, err
		}
		if taken {
			return nil, sourceErr(errQueueTaken, m.SourceId, m.ProjectId, m.Amqp.GetQueue())
		}
	}
	now := h.s.clock()
	d, err := h.s.store.modifySource(ctx, m.ProjectId, m.SourceId, func(d *sourceDoc) error {
		if m.Name != nil {
			d.Name = *m.Name
		}
		if m.Amqp != nil {
			d.Queue = m.Amqp.GetQueue()
		}
		d.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, sourceErr(err, m.SourceId, m.ProjectId, m.GetAmqp().GetQueue())
	}
	src, err := h.s.sourceProto(ctx, d)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.UpdateSourceResponse{Source: src}), nil
}

// DeleteSource forgets a source; ingest stops consuming its queue, which
// stays on the broker with its messages.
func (h *handler) DeleteSource(ctx context.Context, req *connect.Request[registryv1.DeleteSourceRequest]) (*connect.Response[registryv1.DeleteSourceResponse], error) {
	m := req.Msg
	if err := authorizeSource(ctx, m.ProjectId, m.SourceId); err != nil {
		return nil, err
	}
	if err := h.s.store.deleteSource(ctx, m.ProjectId, m.SourceId); err != nil {
		return nil, storeErr(err, "source", m.SourceId, m.ProjectId)
	}
	h.s.logger.InfoContext(ctx, "source deleted", "project_id", m.ProjectId, "source_id", m.SourceId)
	return connect.NewResponse(&registryv1.DeleteSourceResponse{}), nil
}

// PauseSource stops the consumption of a source's queue.
func (h *handler) PauseSource(ctx context.Context, req *connect.Request[registryv1.PauseSourceRequest]) (*connect.Response[registryv1.PauseSourceResponse], error) {
	m := req.Msg
	src, err := h.s.setSourceStatus(ctx, m.ProjectId, m.SourceId, statusPaused)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.PauseSourceResponse{Source: src}), nil
}

// ActivateSource resumes the consumption of a paused source's queue.
func (h *handler) ActivateSource(ctx context.Context, req *connect.Request[registryv1.ActivateSourceRequest]) (*connect.Response[registryv1.ActivateSourceResponse], error) {
	m := req.Msg
	src, err := h.s.setSourceStatus(ctx, m.ProjectId, m.SourceId, statusActive)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&registryv1.ActivateSourceResponse{Source: src}), nil
}

func (s *Service) setSourceStatus(ctx context.Context, projectID, sourceID, status string) (*registryv1.Source, error) {
	if err := authorizeSource(ctx, projectID, sourceID); err != nil {
		return nil, err
	}
	now := s.clock()
	d, err := s.store.modifySource(ctx, projectID, sourceID, func(d *sourceDoc) error {
		if d.Status != status {
			d.Status = status
			d.UpdateTime = now
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "source", sourceID, projectID)
	}
	s.logger.InfoContext(ctx, "source "+status, "project_id", projectID, "source_id", sourceID)
	return s.sourceProto(ctx, d)
}

// ListAllSources returns every project's sources, for ingest.
func (h *internalHandler) ListAllSources(ctx context.Context, _ *connect.Request[registryv1.ListAllSourcesRequest]) (*connect.Response[registryv1.ListAllSourcesResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	docs, err := h.s.store.allSources(ctx)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListAllSourcesResponse{Sources: make([]*registryv1.Source, 0, len(docs))}
	for i := range docs {
		resp.Sources = append(resp.Sources, docs[i].proto(nil))
	}
	return connect.NewResponse(resp), nil
}

// AddSourceCounts adds what ingest counted to the sources' counters.
func (h *internalHandler) AddSourceCounts(ctx context.Context, req *connect.Request[registryv1.AddSourceCountsRequest]) (*connect.Response[registryv1.AddSourceCountsResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	for i, c := range req.Msg.GetCounts() {
		if err := checkID(fmt.Sprintf("counts[%d].project_id", i), c.GetProjectId()); err != nil {
			return nil, err
		}
		if err := checkID(fmt.Sprintf("counts[%d].source_id", i), c.GetSourceId()); err != nil {
			return nil, err
		}
	}
	for _, c := range req.Msg.GetCounts() {
		if err := h.s.store.addSourceCounts(ctx, c.GetProjectId(), c.GetSourceId(),
			int64(c.GetAccepted()), int64(c.GetDuplicates()), int64(c.GetRejected())); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&registryv1.AddSourceCountsResponse{}), nil
}

package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/metaevent"
)

// metaEventsDoc is a project's meta events settings.
type metaEventsDoc struct {
	URL                 string   `bson:"url"`
	EventTypes          []string `bson:"event_types,omitempty"`
	Enabled             bool     `bson:"enabled"`
	AttemptFailingAfter uint32   `bson:"attempt_failing_after,omitempty"`
	// Secret is sealed like an endpoint's, bound to the meta endpoint's id.
	Secret     string    `bson:"secret"`
	UpdateTime time.Time `bson:"update_time"`
}

// MetaEmitter publishes a meta event of a project (in hookmesh, a message
// on the bus for ingest).
type MetaEmitter func(ctx context.Context, projectID, eventType string, data any) error

// maxMetaEventTypes bounds SetMetaEvents' event_types.
const maxMetaEventTypes = 64

func (d *metaEventsDoc) attemptFailingAfter() uint32 {
	if d.AttemptFailingAfter == 0 {
		return metaevent.DefaultAttemptFailingAfter
	}
	return d.AttemptFailingAfter
}

// proto returns the settings without their secret.
func (d *metaEventsDoc) proto(projectID string) *registryv1.MetaEvents {
	if d == nil {
		return nil
	}
	return &registryv1.MetaEvents{
		Url:                 d.URL,
		EventTypes:          d.EventTypes,
		Enabled:             d.Enabled,
		AttemptFailingAfter: d.attemptFailingAfter(),
		EndpointId:          metaevent.EndpointID(projectID),
		UpdateTime:          timestamp(d.UpdateTime),
	}
}

// filter is what the deliverers need to emit the project's meta events; nil
// when it wants none.
func (d *metaEventsDoc) filter() *registryv1.MetaEventsFilter {
	if d == nil || !d.Enabled {
		return nil
	}
	return &registryv1.MetaEventsFilter{EventTypes: d.EventTypes, AttemptFailingAfter: d.attemptFailingAfter()}
}

// wants reports whether the project wants meta events of type t.
func (p *projectDoc) wantsMeta(t string) bool { return metaevent.Wants(p.MetaEvents.filter(), t) }

// metaTarget is the project's meta endpoint as a target: signed with the
// meta events' secret, retried with the project's policy, never disabled
// for its failures, and paused while meta events are disabled.
func (p *projectDoc) metaTarget(s *Service) (*registryv1.Target, error) {
	m := p.MetaEvents
	if m == nil {
		return nil, apierr.NotFound("endpoint", metaevent.EndpointID(p.ID), p.ID)
	}
	t := &registryv1.Target{
		EndpointId:  metaevent.EndpointID(p.ID),
		ProjectId:   p.ID,
		Url:         m.URL,
		Status:      registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED,
		Signature:   p.Signature.proto(),
		RetryPolicy: p.RetryPolicy.proto(),
		Meta:        true,
	}
	if m.Enabled {
		t.Status = registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE
	}
	secret, err := openSecret(s.box, t.EndpointId, m.Secret)
	if err != nil {
		// As for an endpoint: no secret, so the deliverer fails the
		// delivery rather than send it unsigned.
		s.logger.Error("meta events secret cannot be opened with this secret key", "project_id", p.ID, "err", err)
		return t, nil
	}
	t.Secrets = []*registryv1.Secret{{Value: []byte(secret)}}
	return t, nil
}

// checkMetaEventTypes checks SetMetaEvents' event types: each a known one,
// once.
func checkMetaEventTypes(types []string) ([]string, error) {
	if len(types) > maxMetaEventTypes {
		return nil, apierr.Invalid("event_types", "must list at most %d types, got %d", maxMetaEventTypes, len(types))
	}
	var out []string
	for i, t := range types {
		if !metaevent.Known(t) {
			return nil, apierr.Invalid(fmt.Sprintf("event_types[%d]", i), "%q is not a meta event type; the types are %s", truncate(t, 80), strings.Join(metaevent.Types, ", "))
		}
		dup := false
		for _, o := range out {
			dup = dup || o == t
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out, nil
}

// SetMetaEvents sets a project's meta events; the first call generates their
// secret and shows it.
func (h *handler) SetMetaEvents(ctx context.Context, req *connect.Request[registryv1.SetMetaEventsRequest]) (*connect.Response[registryv1.SetMetaEventsResponse], error) {
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
	types, err := checkMetaEventTypes(m.EventTypes)
	if err != nil {
		return nil, err
	}
	if m.AttemptFailingAfter > 100 {
		return nil, apierr.Invalid("attempt_failing_after", "must be at most 100, got %d", m.AttemptFailingAfter)
	}
	now := h.s.clock()
	var secret string
	p, err := h.s.store.modifyProject(ctx, m.ProjectId, func(d *projectDoc) error {
		// A retry after a concurrent change starts over: the secret is
		// shown only when this write is the one that generated it.
		secret = ""
		var sealed string
		if d.MetaEvents != nil {
			sealed = d.MetaEvents.Secret
		} else {
			secret = generateSecret()
			var err error
			if sealed, err = sealSecret(h.s.box, metaevent.EndpointID(d.ID), secret); err != nil {
				return err
			}
		}
		d.MetaEvents = &metaEventsDoc{URL: m.Url, EventTypes: types, Enabled: m.Enabled, AttemptFailingAfter: m.AttemptFailingAfter,
			Secret: sealed, UpdateTime: now}
		d.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	out := p.MetaEvents.proto(p.ID)
	out.Secret = secret
	return connect.NewResponse(&registryv1.SetMetaEventsResponse{MetaEvents: out}), nil
}

// RotateMetaEventsSecret gives a project's meta events a new secret, shown
// only in the response. The previous one stops signing at once.
func (h *handler) RotateMetaEventsSecret(ctx context.Context, req *connect.Request[registryv1.RotateMetaEventsSecretRequest]) (*connect.Response[registryv1.RotateMetaEventsSecretResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	now := h.s.clock()
	secret := generateSecret()
	p, err := h.s.store.modifyProject(ctx, m.ProjectId, func(d *projectDoc) error {
		if d.MetaEvents == nil {
			return apierr.FailedPrecondition("project %q has no meta events to rotate the secret of: set them first (SetMetaEvents)", d.ID)
		}
		sealed, err := sealSecret(h.s.box, metaevent.EndpointID(d.ID), secret)
		if err != nil {
			return err
		}
		d.MetaEvents.Secret, d.MetaEvents.UpdateTime, d.UpdateTime = sealed, now, now
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	out := p.MetaEvents.proto(p.ID)
	out.Secret = secret
	return connect.NewResponse(&registryv1.RotateMetaEventsSecretResponse{MetaEvents: out}), nil
}

// endpointMeta sends the endpoint.* meta event t about d, when its project
// wants it. It reads the project, which an endpoint change can afford; a
// meta event that cannot be sent is logged, as the change itself is done.
func (s *Service) endpointMeta(ctx context.Context, t string, d *endpointDoc, status, reason, detail string) {
	if s.emitMeta == nil {
		return
	}
	p, err := s.store.project(ctx, d.ProjectID)
	if err != nil {
		s.logger.WarnContext(ctx, "meta event not sent: project not read", "type", t, "project_id", d.ProjectID, "err", err)
		return
	}
	if !p.wantsMeta(t) {
		return
	}
	data := metaevent.Endpoint{ProjectID: d.ProjectID, EndpointID: d.ID, OwnerID: d.OwnerID, URL: d.URL, Name: d.Name,
		Status: status, Reason: reason, Detail: detail}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.emitMeta(ectx, d.ProjectID, t, data); err != nil {
		s.logger.WarnContext(ctx, "meta event not sent", "type", t, "project_id", d.ProjectID, "endpoint_id", d.ID, "err", err)
	}
}

// metaTarget loads a project and returns its meta endpoint as a target.
func (s *Service) metaTarget(ctx context.Context, projectID string) (*registryv1.Target, error) {
	p, err := s.store.project(ctx, projectID)
	if err != nil {
		return nil, storeErr(err, "project", projectID, "")
	}
	return p.metaTarget(s)
}

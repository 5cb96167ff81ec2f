package registry

import (
	"context"
	"slices"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// subscriptionFields are the checked, stored forms of what a subscription
// request sets.
type subscriptionFields struct {
	name   string
	filter filterDoc
	retry  *retryDoc
}

func checkSubscription(name string, f *registryv1.Filter, retry *registryv1.RetryPolicy) (subscriptionFields, error) {
	var out subscriptionFields
	if err := checkText("name", name, maxNameLen, false); err != nil {
		return out, err
	}
	out.name = name
	if f != nil {
		if err := checkEventTypes("filter.event_types", f.EventTypes); err != nil {
			return out, err
		}
		out.filter.EventTypes = slices.Clone(f.EventTypes)
		if err := checkFilterText("filter.body", f.Body); err != nil {
			return out, err
		}
		if err := checkFilterText("filter.headers", f.Headers); err != nil {
			return out, err
		}
		out.filter.BodyText, out.filter.HeadersText = f.Body, f.Headers
	}
	if retry != nil {
		r, err := checkRetryPolicy("retry_policy", retry)
		if err != nil {
			return out, err
		}
		out.retry = &r
	}
	return out, nil
}

// authorizeSubscription checks the caller and the ids of a request about
// one subscription.
func authorizeSubscription(ctx context.Context, projectID, subscriptionID string) error {
	if err := auth.AuthorizeProject(ctx, projectID); err != nil {
		return err
	}
	if err := checkID("project_id", projectID); err != nil {
		return err
	}
	return checkID("subscription_id", subscriptionID)
}

func subscriptionResponse[R any](d *subscriptionDoc, wrap func(*registryv1.Subscription) *R) (*connect.Response[R], error) {
	sub, err := d.proto()
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(wrap(sub)), nil
}

// CreateSubscription subscribes an endpoint of the project to events.
func (h *handler) CreateSubscription(ctx context.Context, req *connect.Request[registryv1.CreateSubscriptionRequest]) (*connect.Response[registryv1.CreateSubscriptionResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("endpoint_id", m.EndpointId); err != nil {
		return nil, err
	}
	f, err := checkSubscription(m.Name, m.Filter, m.RetryPolicy)
	if err != nil {
		return nil, err
	}
	if _, err := h.s.store.endpoint(ctx, m.ProjectId, m.EndpointId); err != nil {
		return nil, storeErr(err, "endpoint", m.EndpointId, m.ProjectId)
	}
	now := h.s.clock()
	d := &subscriptionDoc{
		ID:          ids.New("sub"),
		ProjectID:   m.ProjectId,
		EndpointID:  m.EndpointId,
		Name:        f.name,
		Filter:      f.filter,
		RetryPolicy: f.retry,
		CreateTime:  now,
		UpdateTime:  now,
		Version:     1,
	}
	if err := h.s.store.insertSubscription(ctx, d); err != nil {
		return nil, err
	}
	return subscriptionResponse(d, func(s *registryv1.Subscription) *registryv1.CreateSubscriptionResponse {
		return &registryv1.CreateSubscriptionResponse{Subscription: s}
	})
}

// GetSubscription returns one subscription.
func (h *handler) GetSubscription(ctx context.Context, req *connect.Request[registryv1.GetSubscriptionRequest]) (*connect.Response[registryv1.GetSubscriptionResponse], error) {
	m := req.Msg
	if err := authorizeSubscription(ctx, m.ProjectId, m.SubscriptionId); err != nil {
		return nil, err
	}
	d, err := h.s.store.subscription(ctx, m.ProjectId, m.SubscriptionId)
	if err != nil {
		return nil, storeErr(err, "subscription", m.SubscriptionId, m.ProjectId)
	}
	return subscriptionResponse(d, func(s *registryv1.Subscription) *registryv1.GetSubscriptionResponse {
		return &registryv1.GetSubscriptionResponse{Subscription: s}
	})
}

// ListSubscriptions lists a project's subscriptions in creation order,
// optionally those of one endpoint.
func (h *handler) ListSubscriptions(ctx context.Context, req *connect.Request[registryv1.ListSubscriptionsRequest]) (*connect.Response[registryv1.ListSubscriptionsResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if m.EndpointId != "" {
		if err := checkID("endpoint_id", m.EndpointId); err != nil {
			return nil, err
		}
	}
	size, after, err := pageParams(m.PageSize, m.PageToken)
	if err != nil {
		return nil, err
	}
	docs, next, err := h.s.store.listSubscriptions(ctx, m.ProjectId, m.EndpointId, after, size)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListSubscriptionsResponse{Subscriptions: make([]*registryv1.Subscription, 0, len(docs))}
	for i := range docs {
		sub, err := docs[i].proto()
		if err != nil {
			return nil, err
		}
		resp.Subscriptions = append(resp.Subscriptions, sub)
	}
	if next != "" {
		resp.NextPageToken = encodePageToken(next)
	}
	return connect.NewResponse(resp), nil
}

// UpdateSubscription replaces a subscription's name, filter and retry
// policy; its endpoint stays.
func (h *handler) UpdateSubscription(ctx context.Context, req *connect.Request[registryv1.UpdateSubscriptionRequest]) (*connect.Response[registryv1.UpdateSubscriptionResponse], error) {
	m := req.Msg
	if err := authorizeSubscription(ctx, m.ProjectId, m.SubscriptionId); err != nil {
		return nil, err
	}
	f, err := checkSubscription(m.Name, m.Filter, m.RetryPolicy)
	if err != nil {
		return nil, err
	}
	now := h.s.clock()
	d, err := h.s.store.modifySubscription(ctx, m.ProjectId, m.SubscriptionId, func(d *subscriptionDoc) error {
		d.Name = f.name
		d.Filter = f.filter
		d.RetryPolicy = f.retry
		d.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "subscription", m.SubscriptionId, m.ProjectId)
	}
	return subscriptionResponse(d, func(s *registryv1.Subscription) *registryv1.UpdateSubscriptionResponse {
		return &registryv1.UpdateSubscriptionResponse{Subscription: s}
	})
}

// DeleteSubscription deletes a subscription.
func (h *handler) DeleteSubscription(ctx context.Context, req *connect.Request[registryv1.DeleteSubscriptionRequest]) (*connect.Response[registryv1.DeleteSubscriptionResponse], error) {
	m := req.Msg
	if err := authorizeSubscription(ctx, m.ProjectId, m.SubscriptionId); err != nil {
		return nil, err
	}
	if err := h.s.store.deleteSubscription(ctx, m.ProjectId, m.SubscriptionId); err != nil {
		return nil, storeErr(err, "subscription", m.SubscriptionId, m.ProjectId)
	}
	return connect.NewResponse(&registryv1.DeleteSubscriptionResponse{}), nil
}

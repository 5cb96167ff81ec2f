package status

import (
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// Owners says which endpoints an owner has (the registry's cached client).
type Owners interface {
	OwnerEndpoints(ctx context.Context, projectID, ownerID string) ([]string, error)
}

// WithPortal lets portal tokens call the StatusService calls in
// portalProcedures, restricted to the deliveries of their owner's
// endpoints, which owners tells. Without it portal tokens are refused.
func WithPortal(owners Owners) Option {
	return func(o *serviceOptions) { o.owners = owners }
}

// portalProcedures are the calls a portal token may make; each handler
// keeps to the owner's endpoints through h.scope.
var portalProcedures = []string{
	statusv1connect.StatusServiceGetDeliveryProcedure,
	statusv1connect.StatusServiceListDeliveriesProcedure,
	statusv1connect.StatusServiceCountDeliveriesProcedure,
	statusv1connect.StatusServiceListAttemptsProcedure,
	statusv1connect.StatusServiceRetryDeliveryProcedure,
	statusv1connect.StatusServiceForceRetryDeliveryProcedure,
	statusv1connect.StatusServiceBatchRetryDeliveriesProcedure,
	statusv1connect.StatusServiceGetDeliveryStatsProcedure,
	statusv1connect.StatusServiceGetEndpointHealthProcedure,
}

// portalInterceptor refuses portal tokens every call not in
// portalProcedures, or every call when the portal is not enabled.
func (s *Service) portalInterceptor() connect.Interceptor {
	if s.owners == nil {
		return auth.PortalScope()
	}
	return auth.PortalScope(portalProcedures...)
}

// endpointScope is what a caller may see of a project's deliveries: all of
// them, or those of the listed endpoints only.
type endpointScope struct {
	restricted bool
	endpoints  []string
}

// has reports whether the scope reaches the endpoint.
func (sc endpointScope) has(endpointID string) bool {
	return !sc.restricted || slices.Contains(sc.endpoints, endpointID)
}

// scope returns what the caller may see of the project's deliveries: a
// portal token sees those of its owner's endpoints only. Every handler that
// portal tokens reach calls it.
func (h *handler) scope(ctx context.Context, projectID string) (endpointScope, error) {
	owner, ok := auth.PortalOwner(ctx)
	if !ok {
		return endpointScope{}, nil
	}
	if h.owners == nil {
		return endpointScope{}, apierr.PermissionDenied("portal tokens are not enabled on this status service")
	}
	ids, err := h.owners.OwnerEndpoints(ctx, projectID, owner)
	if err != nil {
		return endpointScope{}, fmt.Errorf("load the endpoints of owner %s: %w", owner, err)
	}
	return endpointScope{restricted: true, endpoints: ids}, nil
}

// narrow applies the scope to a query: a portal token's query of another
// owner's endpoint answers NotFound for it, as if it did not exist; one
// with no endpoint filter keeps to the owner's endpoints. It reports false
// when the owner has no endpoint, so nothing can match.
func (sc endpointScope) narrow(q *deliveryQuery) (bool, error) {
	if !sc.restricted {
		return true, nil
	}
	if q.endpointID != "" {
		if !sc.has(q.endpointID) {
			return false, apierr.NotFound("endpoint", q.endpointID, q.projectID)
		}
		return true, nil
	}
	if len(sc.endpoints) == 0 {
		return false, nil
	}
	q.endpointIDs = sc.endpoints
	return true, nil
}

package registry

import (
	"context"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
)

// Notifier tells every process that caches registry answers that a
// project's configuration changed (in hookmesh, a message on the bus).
type Notifier func(ctx context.Context, projectID, procedure string) error

// InvalidateProject drops the API keys and portal tokens this registry has cached for a
// project, when another registry replica changed it.
func (s *Service) InvalidateProject(projectID string) {
	s.keys.InvalidateTag(projectID)
	s.portals.InvalidateTag(projectID)
}

// changes declares, for every procedure the registry serves, whether a
// successful call changes a project's configuration and must be announced.
// A test fails when a procedure is missing, so a new RPC cannot skip cache
// invalidation by its name alone.
var changes = map[string]bool{
	registryv1connect.RegistryServiceCreateProjectProcedure:          true,
	registryv1connect.RegistryServiceGetProjectProcedure:             false,
	registryv1connect.RegistryServiceListProjectsProcedure:           false,
	registryv1connect.RegistryServiceUpdateProjectProcedure:          true,
	registryv1connect.RegistryServiceDeleteProjectProcedure:          true,
	registryv1connect.RegistryServiceCreateAPIKeyProcedure:           true,
	registryv1connect.RegistryServiceListAPIKeysProcedure:            false,
	registryv1connect.RegistryServiceRevokeAPIKeyProcedure:           true,
	registryv1connect.RegistryServiceCreatePortalLinkProcedure:       true,
	registryv1connect.RegistryServiceListPortalLinksProcedure:        false,
	registryv1connect.RegistryServiceRevokePortalLinkProcedure:       true,
	registryv1connect.RegistryServiceGetCurrentPortalLinkProcedure:   false,
	registryv1connect.RegistryServiceCreateEndpointProcedure:         true,
	registryv1connect.RegistryServiceGetEndpointProcedure:            false,
	registryv1connect.RegistryServiceListEndpointsProcedure:          false,
	registryv1connect.RegistryServiceUpdateEndpointProcedure:         true,
	registryv1connect.RegistryServiceDeleteEndpointProcedure:         true,
	registryv1connect.RegistryServicePauseEndpointProcedure:          true,
	registryv1connect.RegistryServiceActivateEndpointProcedure:       true,
	registryv1connect.RegistryServiceRotateEndpointSecretProcedure:   true,
	registryv1connect.RegistryServiceCreateSubscriptionProcedure:     true,
	registryv1connect.RegistryServiceGetSubscriptionProcedure:        false,
	registryv1connect.RegistryServiceListSubscriptionsProcedure:      false,
	registryv1connect.RegistryServiceUpdateSubscriptionProcedure:     true,
	registryv1connect.RegistryServiceDeleteSubscriptionProcedure:     true,
	registryv1connect.RegistryServiceCreateSourceProcedure:           true,
	registryv1connect.RegistryServiceGetSourceProcedure:              false,
	registryv1connect.RegistryServiceListSourcesProcedure:            false,
	registryv1connect.RegistryServiceUpdateSourceProcedure:           true,
	registryv1connect.RegistryServiceDeleteSourceProcedure:           true,
	registryv1connect.RegistryServicePauseSourceProcedure:            true,
	registryv1connect.RegistryServiceActivateSourceProcedure:         true,
	registryv1connect.RegistryServiceSetMetaEventsProcedure:          true,
	registryv1connect.RegistryServiceRotateMetaEventsSecretProcedure: true,

	registryv1connect.RegistryInternalServiceAuthenticateKeyProcedure:         false,
	registryv1connect.RegistryInternalServiceAuthenticatePortalTokenProcedure: false,
	registryv1connect.RegistryInternalServiceListOwnerEndpointsProcedure:      false,
	registryv1connect.RegistryInternalServiceResolveTargetsProcedure:          false,
	registryv1connect.RegistryInternalServiceGetTargetProcedure:               false,
	registryv1connect.RegistryInternalServiceDisableEndpointProcedure:         true,
	// Counters only: nothing cached depends on them.
	registryv1connect.RegistryInternalServiceListAllSourcesProcedure:  false,
	registryv1connect.RegistryInternalServiceAddSourceCountsProcedure: false,
	registryv1connect.RegistryInternalServiceListRetentionsProcedure:  false,
}

// changeInterceptor calls the notifier after each successful call that
// changes declares as a change.
func (s *Service) changeInterceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			resp, err := next(ctx, req)
			procedure := req.Spec().Procedure
			if err != nil || s.notify == nil || req.Spec().IsClient || !changes[procedure] {
				return resp, err
			}
			projectID := ""
			if m, ok := req.Any().(interface{ GetProjectId() string }); ok {
				projectID = m.GetProjectId()
			}
			if projectID == "" {
				if m, ok := resp.Any().(*registryv1.CreateProjectResponse); ok {
					projectID = m.GetProject().GetId()
				}
			}
			if projectID == "" {
				return resp, err
			}
			nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if nerr := s.notify(nctx, projectID, procedure); nerr != nil {
				// The change is stored; caches still expire within their TTL.
				s.logger.WarnContext(ctx, "registry change not announced", "project_id", projectID, "procedure", procedure, "err", nerr)
			}
			return resp, err
		}
	})
}

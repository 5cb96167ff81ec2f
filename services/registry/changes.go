package registry

import (
	"context"
	"strings"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// Notifier tells every process that caches registry answers that a
// project's configuration changed (in hookmesh, a message on the bus).
type Notifier func(ctx context.Context, projectID, procedure string) error

// SetNotifier makes every successful change of a project notify n before
// the call answers, so that when a client sees its change acknowledged, the
// caches that could hide it are already being dropped.
func (s *Service) SetNotifier(n Notifier) { s.notify = n }

// InvalidateProject drops the API keys and portal tokens this registry has cached for a
// project, when another registry replica changed it.
func (s *Service) InvalidateProject(projectID string) {
	s.keys.InvalidateTag(projectID)
	s.portals.InvalidateTag(projectID)
}

// changing lists the verbs of RegistryService that change a project.
var changing = []string{"Create", "Update", "Delete", "Pause", "Activate", "Rotate", "Revoke", "Set"}

// changeInterceptor calls the notifier after each successful change.
func (s *Service) changeInterceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			resp, err := next(ctx, req)
			if err != nil || s.notify == nil || req.Spec().IsClient {
				return resp, err
			}
			procedure := req.Spec().Procedure
			method := procedure[strings.LastIndexByte(procedure, '/')+1:]
			if !hasAnyPrefix(method, changing) {
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

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Package auth authenticates API calls by bearer key and carries the caller
// in the context. The admin key manages projects; a project API key reaches
// only its own project. A key of one project asking for another project's
// data gets NotFound, never PermissionDenied, so that it learns nothing about
// what exists.
package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/hookmesh/hookmesh/internal/apierr"
)

// ErrUnknownKey is returned by an Authenticator for a key that does not
// exist or was revoked.
var ErrUnknownKey = errors.New("unknown or revoked API key")

// Principal is the caller of a request.
type Principal struct {
	// Admin is true for the admin key.
	Admin bool
	// ProjectID and KeyID are set for a project API key.
	ProjectID string
	KeyID     string
}

// Authenticator resolves a project API key.
type Authenticator interface {
	AuthenticateKey(ctx context.Context, key string) (projectID, keyID string, err error)
}

type principalKey struct{}

// WithPrincipal returns a context that carries p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller stored by the interceptor.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// RequireAdmin fails unless the caller used the admin key.
func RequireAdmin(ctx context.Context) error {
	p, ok := FromContext(ctx)
	if !ok {
		return apierr.Unauthenticated("missing API key: send Authorization: Bearer <key>")
	}
	if !p.Admin {
		return apierr.PermissionDenied("this call needs the admin key")
	}
	return nil
}

// AuthorizeProject fails unless the caller may act inside projectID: the
// admin key, or a key of that project. Other projects' keys get NotFound.
func AuthorizeProject(ctx context.Context, projectID string) error {
	if projectID == "" {
		return apierr.Invalid("project_id", "must not be empty")
	}
	p, ok := FromContext(ctx)
	if !ok {
		return apierr.Unauthenticated("missing API key: send Authorization: Bearer <key>")
	}
	if p.Admin || p.ProjectID == projectID {
		return nil
	}
	return apierr.NotFound("project", projectID, "")
}

// Keys checks bearer keys against the admin key and an Authenticator.
type Keys struct {
	admin []byte
	auth  Authenticator
}

// NewKeys returns a checker for the admin key and project keys resolved by a.
func NewKeys(adminKey string, a Authenticator) *Keys {
	return &Keys{admin: []byte(adminKey), auth: a}
}

// Authenticate resolves an Authorization header value.
func (k *Keys) Authenticate(ctx context.Context, header string) (Principal, error) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return Principal{}, apierr.Unauthenticated("missing API key: send Authorization: Bearer <key>")
	}
	if len(k.admin) > 0 && subtle.ConstantTimeCompare([]byte(token), k.admin) == 1 {
		return Principal{Admin: true}, nil
	}
	if k.auth == nil {
		return Principal{}, apierr.Unauthenticated("invalid API key")
	}
	projectID, keyID, err := k.auth.AuthenticateKey(ctx, token)
	if errors.Is(err, ErrUnknownKey) {
		return Principal{}, apierr.Unauthenticated("invalid or revoked API key")
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{ProjectID: projectID, KeyID: keyID}, nil
}

// Interceptor authenticates every Connect call with Keys.
func (k *Keys) Interceptor() connect.Interceptor { return &interceptor{keys: k} }

// Principal authenticates a plain HTTP request (the REST API).
func (k *Keys) Principal(r *http.Request) (Principal, error) {
	return k.Authenticate(r.Context(), r.Header.Get("Authorization"))
}

type interceptor struct{ keys *Keys }

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		p, err := i.keys.Authenticate(ctx, req.Header().Get("Authorization"))
		if err != nil {
			return nil, err
		}
		return next(WithPrincipal(ctx, p), req)
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		p, err := i.keys.Authenticate(ctx, conn.RequestHeader().Get("Authorization"))
		if err != nil {
			return err
		}
		return next(WithPrincipal(ctx, p), conn)
	}
}

// BearerInterceptor adds a static bearer key to every outgoing call: the
// services call each other with the admin key.
func BearerInterceptor(key string) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Spec().IsClient {
				req.Header().Set("Authorization", "Bearer "+key)
			}
			return next(ctx, req)
		}
	})
}

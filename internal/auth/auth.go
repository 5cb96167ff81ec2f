// Package auth authenticates API calls by bearer key and carries the caller
// in the context. The admin key manages projects; a project API key reaches
// only its own project. A key of one project asking for another project's
// data gets NotFound, never PermissionDenied, so that it learns nothing about
// what exists.
//
// A portal token (see PortalTokenPrefix) reaches one owner's endpoints in
// one project: its Principal has an OwnerID. Such a caller is refused by
// AuthorizeProject everywhere, except in the calls a service lets portal
// tokens make (PortalScope), which must then keep to the owner's data.
package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

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
	// OwnerID is set for a portal token, whose KeyID is the portal link's
	// id: the caller is that owner of endpoints in ProjectID.
	OwnerID string
}

// Portal reports whether the caller used a portal token.
func (p Principal) Portal() bool { return p.OwnerID != "" }

// PortalTokenPrefix starts every portal token, which tells it from an API
// key (hm_...) without a lookup.
const PortalTokenPrefix = "hmp_"

// PortalGrant is what a portal token gives.
type PortalGrant struct {
	ProjectID  string
	LinkID     string
	OwnerID    string
	ExpireTime time.Time
}

// PortalAuthenticator resolves portal tokens. An Authenticator that also
// implements it lets Keys accept them; an unknown, revoked or expired
// token returns ErrUnknownKey.
type PortalAuthenticator interface {
	AuthenticatePortalToken(ctx context.Context, token string) (PortalGrant, error)
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
// A portal token gets PermissionDenied unless the call is one its service
// opened to portal tokens (PortalScope).
func AuthorizeProject(ctx context.Context, projectID string) error {
	if projectID == "" {
		return apierr.Invalid("project_id", "must not be empty")
	}
	p, ok := FromContext(ctx)
	if !ok {
		return apierr.Unauthenticated("missing API key: send Authorization: Bearer <key>")
	}
	if p.Portal() && !inPortalScope(ctx) {
		return errPortalDenied()
	}
	if p.Admin || p.ProjectID == projectID {
		return nil
	}
	return apierr.NotFound("project", projectID, "")
}

// PortalOwner returns the owner a portal token is restricted to, and false
// for any other caller.
func PortalOwner(ctx context.Context) (string, bool) {
	p, ok := FromContext(ctx)
	if !ok || !p.Portal() {
		return "", false
	}
	return p.OwnerID, true
}

func errPortalDenied() error {
	return apierr.PermissionDenied("a portal token reaches only its owner's endpoints, their deliveries and attempts, and retries of those")
}

type portalScopeKey struct{}

func inPortalScope(ctx context.Context) bool {
	v, _ := ctx.Value(portalScopeKey{}).(bool)
	return v
}

// PortalScope lets portal tokens make the given calls (full procedure
// names) of one service, and refuses every other call of that service to
// them with PermissionDenied. The handlers of the calls it lets through
// restrict what they answer to PortalOwner's data. It runs after Keys'
// interceptor.
func PortalScope(procedures ...string) connect.Interceptor {
	allowed := make(map[string]bool, len(procedures))
	for _, p := range procedures {
		allowed[p] = true
	}
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Spec().IsClient {
				return next(ctx, req)
			}
			p, _ := FromContext(ctx)
			if !p.Portal() {
				return next(ctx, req)
			}
			if !allowed[req.Spec().Procedure] {
				return nil, errPortalDenied()
			}
			return next(context.WithValue(ctx, portalScopeKey{}, true), req)
		}
	})
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
	if strings.HasPrefix(token, PortalTokenPrefix) {
		return k.authenticatePortal(ctx, token)
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

// authenticatePortal resolves a portal token. Its expiry is checked here,
// on every call, whatever the Authenticator keeps.
func (k *Keys) authenticatePortal(ctx context.Context, token string) (Principal, error) {
	pa, ok := k.auth.(PortalAuthenticator)
	if !ok {
		return Principal{}, apierr.Unauthenticated("invalid portal token")
	}
	g, err := pa.AuthenticatePortalToken(ctx, token)
	if errors.Is(err, ErrUnknownKey) || (err == nil && !time.Now().Before(g.ExpireTime)) {
		return Principal{}, apierr.Unauthenticated("invalid, expired or revoked portal token: ask for a new portal link")
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{ProjectID: g.ProjectID, KeyID: g.LinkID, OwnerID: g.OwnerID}, nil
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

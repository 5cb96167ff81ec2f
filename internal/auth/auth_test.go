package auth

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// onlyKeys resolves no portal token: it is not a PortalAuthenticator.
type onlyKeys struct{}

func (onlyKeys) AuthenticateKey(context.Context, string) (string, string, error) {
	return "", "", ErrUnknownKey
}

// grants resolves portal tokens from a table.
type grants map[string]PortalGrant

func (grants) AuthenticateKey(context.Context, string) (string, string, error) {
	return "", "", ErrUnknownKey
}

func (g grants) AuthenticatePortalToken(_ context.Context, token string) (PortalGrant, error) {
	if gr, ok := g[token]; ok {
		return gr, nil
	}
	return PortalGrant{}, ErrUnknownKey
}

func TestPortalTokens(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	live, expired := PortalTokenPrefix+"live", PortalTokenPrefix+"expired"
	k := NewKeys("admin-key-0123456789", grants{
		live:    {ProjectID: "prj_1", LinkID: "pl_1", OwnerID: "acme", ExpireTime: time.Now().Add(time.Hour)},
		expired: {ProjectID: "prj_1", LinkID: "pl_2", OwnerID: "acme", ExpireTime: time.Now().Add(-time.Second)},
	})
	p, err := k.Authenticate(ctx, "Bearer "+live)
	if err != nil || !p.Portal() || p.OwnerID != "acme" || p.ProjectID != "prj_1" || p.KeyID != "pl_1" || p.Admin {
		t.Fatalf("live token: %+v, %v", p, err)
	}
	for _, tok := range []string{expired, PortalTokenPrefix + "unknown"} {
		if _, err := k.Authenticate(ctx, "Bearer "+tok); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("%s: %v", tok, err)
		}
	}
	if _, err := NewKeys("admin-key-0123456789", onlyKeys{}).Authenticate(ctx, "Bearer "+live); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("without a portal authenticator: %v", err)
	}

	// Outside PortalScope a portal principal is refused even in its own
	// project; inside, it is let into its project only.
	pctx := WithPrincipal(ctx, p)
	if err := AuthorizeProject(pctx, "prj_1"); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("outside the portal scope: %v", err)
	}
	scoped := context.WithValue(pctx, portalScopeKey{}, true)
	if err := AuthorizeProject(scoped, "prj_1"); err != nil {
		t.Fatalf("inside the portal scope: %v", err)
	}
	if err := AuthorizeProject(scoped, "prj_2"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("another project inside the portal scope: %v", err)
	}
	if err := RequireAdmin(scoped); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("RequireAdmin: %v", err)
	}
}

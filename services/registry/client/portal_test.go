package client_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// TestPortalTokens: portal answers are cached like keys', dropped with
// their project's, and never served past the token's expiry.
func TestPortalTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	p, _ := f.project(t)
	link := func(ttl time.Duration) *registryv1.CreatePortalLinkResponse {
		return must(f.public.CreatePortalLink(ctx, connect.NewRequest(&registryv1.CreatePortalLinkRequest{
			ProjectId: p.Id, OwnerId: "acme", Ttl: durationpb.New(ttl)})))(t).Msg
	}
	const proc = registryv1connect.RegistryInternalServiceAuthenticatePortalTokenProcedure

	l := link(time.Hour)
	for range 3 {
		g, err := f.client.AuthenticatePortalToken(ctx, l.Token)
		if err != nil || g.ProjectID != p.Id || g.OwnerID != "acme" || g.LinkID != l.PortalLink.Id {
			t.Fatalf("AuthenticatePortalToken = %+v, %v", g, err)
		}
	}
	if n := f.calls.count(proc); n != 1 {
		t.Fatalf("%d calls for a cached token, want 1", n)
	}
	must(f.public.RevokePortalLink(ctx, connect.NewRequest(&registryv1.RevokePortalLinkRequest{ProjectId: p.Id, PortalLinkId: l.PortalLink.Id})))(t)
	f.client.Invalidate(p.Id)
	if _, err := f.client.AuthenticatePortalToken(ctx, l.Token); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("revoked token after Invalidate: %v, want auth.ErrUnknownKey", err)
	}

	// The client keeps answers for a minute; a one-second token is refused
	// once its second has passed, however recent the cached answer.
	short := link(time.Second)
	if _, err := f.client.AuthenticatePortalToken(ctx, short.Token); err != nil && time.Now().Before(short.PortalLink.ExpireTime.AsTime()) {
		t.Fatalf("fresh token: %v", err)
	}
	time.Sleep(time.Until(short.PortalLink.ExpireTime.AsTime()) + 10*time.Millisecond)
	if _, err := f.client.AuthenticatePortalToken(ctx, short.Token); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("expired token: %v, want auth.ErrUnknownKey", err)
	}

	// An owner's endpoints, cached until the project changes.
	ep := f.endpoint(t, p.Id, "acme")
	f.endpoint(t, p.Id, "globex")
	if ids := must(f.client.OwnerEndpoints(ctx, p.Id, "acme"))(t); !slices.Equal(ids, []string{ep}) {
		t.Fatalf("OwnerEndpoints = %v, want [%s]", ids, ep)
	}
	second := f.endpoint(t, p.Id, "acme")
	f.client.Invalidate(p.Id)
	// Ids made in the same millisecond may sort either way.
	if ids := slices.Sorted(slices.Values(must(f.client.OwnerEndpoints(ctx, p.Id, "acme"))(t))); !slices.Equal(ids, slices.Sorted(slices.Values([]string{ep, second}))) {
		t.Fatalf("OwnerEndpoints after a change = %v", ids)
	}
}

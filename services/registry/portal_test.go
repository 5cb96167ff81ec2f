package registry

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestPortalLinks: a portal link's token manages its owner's endpoints and
// nothing else, over every protocol, until it is revoked or its project
// deleted.
func TestPortalLinks(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "portal")
		other, otherKey := newProject(t, c, "other")
		mine := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id, OwnerId: "acme"})
		theirs := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id, OwnerId: "globex"})
		elsewhere := newEndpoint(t, c, otherKey, &registryv1.CreateEndpointRequest{ProjectId: other.Id, OwnerId: "acme"})

		_, err := c.CreatePortalLink(ctx, key, &registryv1.CreatePortalLinkRequest{ProjectId: p.Id, OwnerId: "acme", Ttl: durationpb.New(0)})
		wantErr(t, err, connect.CodeInvalidArgument, "ttl")
		_, err = c.CreatePortalLink(ctx, key, &registryv1.CreatePortalLinkRequest{ProjectId: other.Id, OwnerId: "acme"})
		wantErr(t, err, connect.CodeNotFound, other.Id)
		created := must(c.CreatePortalLink(ctx, key, &registryv1.CreatePortalLinkRequest{ProjectId: p.Id, OwnerId: "acme", Ttl: durationpb.New(time.Minute)}))(t)
		token, link := created.Token, created.PortalLink
		if !strings.HasPrefix(link.Url, "http://") || !strings.HasSuffix(link.Url, "/ui/portal?token="+token) ||
			link.ExpireTime.AsTime().Sub(link.CreateTime.AsTime()) != time.Minute {
			t.Fatalf("portal link %v", link)
		}
		g := must(c.AuthenticatePortalToken(ctx, testAdminKey, &registryv1.AuthenticatePortalTokenRequest{Token: token}))(t)
		if g.ProjectId != p.Id || g.OwnerId != "acme" || g.PortalLinkId != link.Id {
			t.Fatalf("AuthenticatePortalToken = %v", g)
		}
		cur := must(c.GetCurrentPortalLink(ctx, token, &registryv1.GetCurrentPortalLinkRequest{}))(t).PortalLink
		if cur.Id != link.Id || cur.ProjectId != p.Id || cur.OwnerId != "acme" || cur.Url != "" {
			t.Fatalf("GetCurrentPortalLink = %v", cur)
		}
		_, err = c.GetCurrentPortalLink(ctx, key, &registryv1.GetCurrentPortalLinkRequest{})
		wantErr(t, err, connect.CodePermissionDenied, "portal tokens only")
		owned := must(c.ListOwnerEndpoints(ctx, testAdminKey, &registryv1.ListOwnerEndpointsRequest{ProjectId: p.Id, OwnerId: "acme"}))(t)
		if len(owned.EndpointIds) != 1 || owned.EndpointIds[0] != mine.Id {
			t.Fatalf("ListOwnerEndpoints = %v", owned)
		}

		// Its own endpoints: yes; the other owner's, or another project's: NotFound.
		must(c.UpdateEndpoint(ctx, token, &registryv1.UpdateEndpointRequest{ProjectId: p.Id, EndpointId: mine.Id, Name: new("renamed")}))(t)
		_, err = c.UpdateEndpoint(ctx, token, &registryv1.UpdateEndpointRequest{ProjectId: p.Id, EndpointId: mine.Id, OwnerId: new("globex")})
		wantErr(t, err, connect.CodePermissionDenied, "owner_id")
		if e := must(c.RotateEndpointSecret(ctx, token, &registryv1.RotateEndpointSecretRequest{ProjectId: p.Id, EndpointId: mine.Id}))(t).Endpoint; e.Secret == "" {
			t.Fatal("RotateEndpointSecret of its own endpoint returned no secret")
		}
		_, err = c.RotateEndpointSecret(ctx, token, &registryv1.RotateEndpointSecretRequest{ProjectId: p.Id, EndpointId: theirs.Id})
		wantErr(t, err, connect.CodeNotFound, theirs.Id)
		_, err = c.ActivateEndpoint(ctx, token, &registryv1.ActivateEndpointRequest{ProjectId: p.Id, EndpointId: theirs.Id})
		wantErr(t, err, connect.CodeNotFound, theirs.Id)
		_, err = c.DeleteEndpoint(ctx, token, &registryv1.DeleteEndpointRequest{ProjectId: p.Id, EndpointId: theirs.Id})
		wantErr(t, err, connect.CodeNotFound, theirs.Id)
		must(c.GetEndpoint(ctx, key, &registryv1.GetEndpointRequest{ProjectId: p.Id, EndpointId: theirs.Id}))(t)
		_, err = c.GetEndpoint(ctx, token, &registryv1.GetEndpointRequest{ProjectId: other.Id, EndpointId: elsewhere.Id})
		wantErr(t, err, connect.CodeNotFound, other.Id)
		_, err = c.CreateSubscription(ctx, token, &registryv1.CreateSubscriptionRequest{ProjectId: p.Id, EndpointId: mine.Id})
		wantErr(t, err, connect.CodePermissionDenied, "portal token")
		_, err = c.RevokePortalLink(ctx, token, &registryv1.RevokePortalLinkRequest{ProjectId: p.Id, PortalLinkId: link.Id})
		wantErr(t, err, connect.CodePermissionDenied, "portal token")
		_, err = c.AuthenticateKey(ctx, token, &registryv1.AuthenticateKeyRequest{Key: key})
		wantErr(t, err, connect.CodePermissionDenied, "admin key")
		must(c.DeleteEndpoint(ctx, token, &registryv1.DeleteEndpointRequest{ProjectId: p.Id, EndpointId: mine.Id}))(t)

		// Revoked: refused at once, and listed as revoked.
		_, err = c.RevokePortalLink(ctx, key, &registryv1.RevokePortalLinkRequest{ProjectId: p.Id, PortalLinkId: "pl_unknown"})
		wantErr(t, err, connect.CodeNotFound, "pl_unknown")
		must(c.RevokePortalLink(ctx, key, &registryv1.RevokePortalLinkRequest{ProjectId: p.Id, PortalLinkId: link.Id}))(t)
		_, err = c.ListEndpoints(ctx, token, &registryv1.ListEndpointsRequest{ProjectId: p.Id})
		wantErr(t, err, connect.CodeUnauthenticated, "portal token")
		_, err = c.AuthenticatePortalToken(ctx, testAdminKey, &registryv1.AuthenticatePortalTokenRequest{Token: token})
		wantErr(t, err, connect.CodeNotFound, "")
		links := must(c.ListPortalLinks(ctx, key, &registryv1.ListPortalLinksRequest{ProjectId: p.Id}))(t).PortalLinks
		if len(links) != 1 || links[0].RevokeTime == nil || links[0].Url != "" {
			t.Fatalf("ListPortalLinks = %v", links)
		}

		// A deleted project's links stop working.
		second := must(c.CreatePortalLink(ctx, key, &registryv1.CreatePortalLinkRequest{ProjectId: p.Id, OwnerId: "globex"}))(t).Token
		must(c.ListEndpoints(ctx, second, &registryv1.ListEndpointsRequest{ProjectId: p.Id}))(t)
		must(c.DeleteProject(ctx, testAdminKey, &registryv1.DeleteProjectRequest{ProjectId: p.Id}))(t)
		_, err = c.ListEndpoints(ctx, second, &registryv1.ListEndpointsRequest{ProjectId: p.Id})
		wantErr(t, err, connect.CodeUnauthenticated, "portal token")
	})
}

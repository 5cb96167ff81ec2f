// Package client is how the other hookmesh services ask the registry: it
// calls RegistryInternalService and keeps its answers for a while, so that
// the hot path (authenticating every request, resolving every event's
// targets) does not cost a registry call each time.
package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/services/registry/internal/ttlcache"
)

// NegativeTTL is how long a "not found" answer is kept: briefly, so that a
// key or endpoint created a moment later is soon seen.
const NegativeTTL = time.Second

type keyAnswer struct {
	projectID string
	keyID     string
}

// Client calls RegistryInternalService and caches its answers. It is safe
// for concurrent use; concurrent misses of one answer make one call.
//
// The targets it returns are shared by every caller that gets them from the
// cache: read them, never modify them.
type Client struct {
	rpc     registryv1connect.RegistryInternalServiceClient
	ttl     time.Duration
	keys    *ttlcache.Cache[keyAnswer]
	targets *ttlcache.Cache[[]*registryv1.Target]
	target  *ttlcache.Cache[*registryv1.Target]
	portals *ttlcache.Cache[auth.PortalGrant]
	owners  *ttlcache.Cache[[]string]
}

var (
	_ auth.Authenticator       = (*Client)(nil)
	_ auth.PortalAuthenticator = (*Client)(nil)
)

// New returns a client of c, which the caller built with an interceptor that
// sends the admin key, keeping answers for ttl.
func New(c registryv1connect.RegistryInternalServiceClient, ttl time.Duration) *Client {
	return &Client{
		rpc:     c,
		ttl:     ttl,
		keys:    ttlcache.New[keyAnswer](ttlcache.DefaultMaxEntries),
		targets: ttlcache.New[[]*registryv1.Target](ttlcache.DefaultMaxEntries),
		target:  ttlcache.New[*registryv1.Target](ttlcache.DefaultMaxEntries),
		portals: ttlcache.New[auth.PortalGrant](ttlcache.DefaultMaxEntries),
		owners:  ttlcache.New[[]string](ttlcache.DefaultMaxEntries),
	}
}

// notFound reports whether err is the registry saying that what was asked
// for does not exist; such answers are kept for NegativeTTL.
func notFound(err error) bool {
	return connect.CodeOf(err) == connect.CodeNotFound
}

// AuthenticateKey resolves a project API key. It implements
// auth.Authenticator: a key the registry does not know (NotFound), or a call
// the registry refuses (Unauthenticated, which also means that this
// process's admin key is wrong), returns auth.ErrUnknownKey. Other errors
// (the registry unreachable) are returned as they are and not kept.
func (c *Client) AuthenticateKey(ctx context.Context, key string) (projectID, keyID string, err error) {
	// The cache is keyed by the key's hash so that keys are not kept in
	// memory longer than the request that carried them.
	sum := sha256.Sum256([]byte(key))
	a, err := c.keys.Load(ctx, hex.EncodeToString(sum[:]), func(ctx context.Context) (keyAnswer, string, time.Duration, error) {
		resp, err := c.rpc.AuthenticateKey(ctx, connect.NewRequest(&registryv1.AuthenticateKeyRequest{Key: key}))
		if err != nil {
			switch connect.CodeOf(err) {
			case connect.CodeNotFound, connect.CodeUnauthenticated, connect.CodeInvalidArgument:
				return keyAnswer{}, "", NegativeTTL, auth.ErrUnknownKey
			}
			return keyAnswer{}, "", 0, err
		}
		a := keyAnswer{projectID: resp.Msg.ProjectId, keyID: resp.Msg.KeyId}
		return a, a.projectID, c.ttl, nil
	})
	if err != nil {
		return "", "", err
	}
	return a.projectID, a.keyID, nil
}

// AuthenticatePortalToken resolves a portal token like AuthenticateKey
// resolves an API key. An answer is kept for the client's ttl, never past
// the token's expiry, and dropped with its project's other answers when the
// registry announces a change (a revocation).
func (c *Client) AuthenticatePortalToken(ctx context.Context, token string) (auth.PortalGrant, error) {
	sum := sha256.Sum256([]byte(token))
	g, err := c.portals.Load(ctx, "p"+hex.EncodeToString(sum[:]), func(ctx context.Context) (auth.PortalGrant, string, time.Duration, error) {
		resp, err := c.rpc.AuthenticatePortalToken(ctx, connect.NewRequest(&registryv1.AuthenticatePortalTokenRequest{Token: token}))
		if err != nil {
			switch connect.CodeOf(err) {
			case connect.CodeNotFound, connect.CodeUnauthenticated, connect.CodeInvalidArgument:
				return auth.PortalGrant{}, "", NegativeTTL, auth.ErrUnknownKey
			}
			return auth.PortalGrant{}, "", 0, err
		}
		m := resp.Msg
		g := auth.PortalGrant{ProjectID: m.ProjectId, LinkID: m.PortalLinkId, OwnerID: m.OwnerId, ExpireTime: m.ExpireTime.AsTime()}
		ttl := min(c.ttl, time.Until(g.ExpireTime))
		if ttl <= 0 {
			return auth.PortalGrant{}, g.ProjectID, NegativeTTL, auth.ErrUnknownKey
		}
		return g, g.ProjectID, ttl, nil
	})
	if err != nil {
		return auth.PortalGrant{}, err
	}
	if !time.Now().Before(g.ExpireTime) {
		return auth.PortalGrant{}, auth.ErrUnknownKey
	}
	return g, nil
}

// OwnerEndpoints returns the ids of an owner's endpoints in a project,
// cached by project and owner. Callers must not modify the slice.
func (c *Client) OwnerEndpoints(ctx context.Context, projectID, ownerID string) ([]string, error) {
	return c.owners.Load(ctx, cacheKey(projectID, ownerID), func(ctx context.Context) ([]string, string, time.Duration, error) {
		resp, err := c.rpc.ListOwnerEndpoints(ctx, connect.NewRequest(&registryv1.ListOwnerEndpointsRequest{ProjectId: projectID, OwnerId: ownerID}))
		if err != nil {
			return nil, "", 0, err
		}
		return resp.Msg.EndpointIds, projectID, c.ttl, nil
	})
}

// ResolveTargets returns the targets of an event, cached by project,
// endpoint_id, owner_id, broadcast and event type.
func (c *Client) ResolveTargets(ctx context.Context, req *registryv1.ResolveTargetsRequest) ([]*registryv1.Target, error) {
	key := cacheKey(req.GetProjectId(), req.GetEndpointId(), req.GetOwnerId(),
		strconv.FormatBool(req.GetBroadcast()), req.GetEventType())
	return c.targets.Load(ctx, key, func(ctx context.Context) ([]*registryv1.Target, string, time.Duration, error) {
		gen := c.target.Gen()
		resp, err := c.rpc.ResolveTargets(ctx, connect.NewRequest(req))
		if err != nil {
			if notFound(err) {
				return nil, req.GetProjectId(), NegativeTTL, err
			}
			return nil, "", 0, err
		}
		// The targets also answer GetTarget, which a deliverer in this
		// process asks next for each of them: a broadcast to thousands of
		// endpoints then costs one registry call, not one per endpoint.
		for _, t := range resp.Msg.Targets {
			c.target.PutAt(gen, cacheKey(t.GetProjectId(), t.GetEndpointId()), t, t.GetProjectId(), c.ttl)
		}
		return resp.Msg.Targets, req.GetProjectId(), c.ttl, nil
	})
}

// GetTarget returns what a deliverer needs to send to one endpoint. A
// missing endpoint returns the registry's NotFound error unchanged.
func (c *Client) GetTarget(ctx context.Context, projectID, endpointID string) (*registryv1.Target, error) {
	return c.target.Load(ctx, cacheKey(projectID, endpointID), func(ctx context.Context) (*registryv1.Target, string, time.Duration, error) {
		resp, err := c.rpc.GetTarget(ctx, connect.NewRequest(&registryv1.GetTargetRequest{
			ProjectId:  projectID,
			EndpointId: endpointID,
		}))
		if err != nil {
			if notFound(err) {
				return nil, projectID, NegativeTTL, err
			}
			return nil, "", 0, err
		}
		return resp.Msg.Target, projectID, c.ttl, nil
	})
}

// DisableEndpoint marks an endpoint DISABLED and drops what was kept about
// its project.
func (c *Client) DisableEndpoint(ctx context.Context, projectID, endpointID, reason string) error {
	_, err := c.rpc.DisableEndpoint(ctx, connect.NewRequest(&registryv1.DisableEndpointRequest{ProjectId: projectID, EndpointId: endpointID, Reason: reason}))
	c.Invalidate(projectID)
	return err
}

// Invalidate drops every answer kept about a project, so that the next
// call asks the registry.
func (c *Client) Invalidate(projectID string) {
	c.keys.InvalidateTag(projectID)
	c.targets.InvalidateTag(projectID)
	c.target.InvalidateTag(projectID)
	c.portals.InvalidateTag(projectID)
	c.owners.InvalidateTag(projectID)
}

// InvalidateAll drops every answer kept, after changes may have been missed
// (the change notifications were cut off).
func (c *Client) InvalidateAll() {
	c.keys.Clear()
	c.targets.Clear()
	c.target.Clear()
	c.portals.Clear()
	c.owners.Clear()
}

// cacheKey joins parts unambiguously: each is prefixed by its length.
func cacheKey(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

// ListAllSources returns every project's sources, uncached: ingest polls it
// to know which queues to consume.
func (c *Client) ListAllSources(ctx context.Context) ([]*registryv1.Source, error) {
	resp, err := c.rpc.ListAllSources(ctx, connect.NewRequest(&registryv1.ListAllSourcesRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetSources(), nil
}

// AddSourceCounts adds what ingest counted to sources' counters.
func (c *Client) AddSourceCounts(ctx context.Context, counts []*registryv1.SourceCounts) error {
	_, err := c.rpc.AddSourceCounts(ctx, connect.NewRequest(&registryv1.AddSourceCountsRequest{Counts: counts}))
	return err
}

// ListRetentions returns how many days each project's history is kept,
// asking the registry page by page; nothing is cached, as the pruners ask
// once a run.
func (c *Client) ListRetentions(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	token := ""
	for {
		resp, err := c.rpc.ListRetentions(ctx, connect.NewRequest(&registryv1.ListRetentionsRequest{PageToken: token}))
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Msg.GetRetentions() {
			out[r.GetProjectId()] = int(r.GetDays())
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/bson"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// Portal links. A link's token is auth.PortalTokenPrefix followed by 32
// random bytes; like an API key, only its SHA-256 is stored, as the _id of
// the link's document.
const (
	collPortalLinks = "portal_links"

	// DefaultPortalTTL is how long a portal link works when its request
	// sets no ttl; MaxPortalTTL the longest it may ask for.
	DefaultPortalTTL = time.Hour
	MaxPortalTTL     = 30 * 24 * time.Hour

	portalTokenBytes = 32
	// portalPath is where the dashboard serves its portal mode.
	portalPath = "/ui/portal"
)

// portalLinkDoc is a portal link.
type portalLinkDoc struct {
	Hash       string     `bson:"_id"`
	LinkID     string     `bson:"link_id"`
	ProjectID  string     `bson:"project_id"`
	OwnerID    string     `bson:"owner_id"`
	CreateTime time.Time  `bson:"create_time"`
	ExpireTime time.Time  `bson:"expire_time"`
	RevokeTime *time.Time `bson:"revoke_time"`
}

func (d *portalLinkDoc) proto() *registryv1.PortalLink {
	l := &registryv1.PortalLink{
		Id:         d.LinkID,
		ProjectId:  d.ProjectID,
		OwnerId:    d.OwnerID,
		CreateTime: timestamp(d.CreateTime),
		ExpireTime: timestamp(d.ExpireTime),
	}
	if d.RevokeTime != nil {
		l.RevokeTime = timestamp(*d.RevokeTime)
	}
	return l
}

// portalAnswer is what AuthenticatePortalToken caches for a token.
type portalAnswer struct {
	grant auth.PortalGrant
}

// newPortalToken returns a new portal token.
func newPortalToken() string {
	secret := make([]byte, portalTokenBytes)
	_, _ = rand.Read(secret) // never fails: crypto/rand crashes the program instead
	return auth.PortalTokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
}

// portalProcedures are the RegistryService calls a portal token may make;
// each of their handlers keeps to the token's owner (ownerScope).
var portalProcedures = []string{
	registryv1connect.RegistryServiceGetCurrentPortalLinkProcedure,
	registryv1connect.RegistryServiceCreateEndpointProcedure,
	registryv1connect.RegistryServiceGetEndpointProcedure,
	registryv1connect.RegistryServiceListEndpointsProcedure,
	registryv1connect.RegistryServiceUpdateEndpointProcedure,
	registryv1connect.RegistryServiceDeleteEndpointProcedure,
	registryv1connect.RegistryServicePauseEndpointProcedure,
	registryv1connect.RegistryServiceActivateEndpointProcedure,
	registryv1connect.RegistryServiceRotateEndpointSecretProcedure,
}

// ownerScope returns the owner a portal token is restricted to ("" for
// every other caller, who sees every owner).
func ownerScope(ctx context.Context) string {
	owner, _ := auth.PortalOwner(ctx)
	return owner
}

// checkOwned answers NotFound, as for a missing endpoint, when a portal
// token asks for an endpoint of another owner.
func checkOwned(ctx context.Context, d *endpointDoc) error {
	if owner := ownerScope(ctx); owner != "" && d.OwnerID != owner {
		return errNotFound
	}
	return nil
}

// portalTTL checks a CreatePortalLink ttl.
func portalTTL(m *registryv1.CreatePortalLinkRequest) (time.Duration, error) {
	if m.Ttl == nil {
		return DefaultPortalTTL, nil
	}
	if err := m.Ttl.CheckValid(); err != nil {
		return 0, apierr.Invalid("ttl", "%v", err)
	}
	ttl := m.Ttl.AsDuration()
	if ttl < time.Second || ttl > MaxPortalTTL {
		return 0, apierr.Invalid("ttl", "must be between 1s and %s (30 days), got %s", MaxPortalTTL, ttl)
	}
	return ttl, nil
}

// baseKey carries the scheme and host a request came to, for portal URLs.
type baseKey struct{}

// withRequestBase keeps the scheme and host of each request in its
// context: Connect handlers do not see the Host header.
func withRequestBase(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base := scheme + "://" + r.Host
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), baseKey{}, base)))
	})
}

// portalURL returns the dashboard's portal page for a token: under the
// configured public URL, else the scheme and host of the request.
func (s *Service) portalURL(ctx context.Context, token string) string {
	base := strings.TrimRight(s.cfg.PublicURL, "/")
	if base == "" {
		base, _ = ctx.Value(baseKey{}).(string)
	}
	return base + portalPath + "?token=" + url.QueryEscape(token)
}

// CreatePortalLink creates a portal link for one owner of endpoints.
func (h *handler) CreatePortalLink(ctx context.Context, req *connect.Request[registryv1.CreatePortalLinkRequest]) (*connect.Response[registryv1.CreatePortalLinkResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkText("owner_id", m.OwnerId, maxNameLen, true); err != nil {
		return nil, err
	}
	ttl, err := portalTTL(m)
	if err != nil {
		return nil, err
	}
	if _, err := h.s.store.project(ctx, m.ProjectId); err != nil {
		return nil, storeErr(err, "project", m.ProjectId, "")
	}
	now := h.s.clock()
	token := newPortalToken()
	d := &portalLinkDoc{
		Hash:       hashKey(token),
		LinkID:     ids.New("pl"),
		ProjectID:  m.ProjectId,
		OwnerID:    m.OwnerId,
		CreateTime: now,
		ExpireTime: now.Add(ttl),
	}
	if _, err := h.s.store.portalLinks.InsertOne(ctx, d); err != nil {
		return nil, err
	}
	h.s.logger.InfoContext(ctx, "portal link created", "project_id", d.ProjectID, "portal_link_id", d.LinkID, "owner_id", d.OwnerID)
	link := d.proto()
	link.Url = h.s.portalURL(ctx, token)
	return connect.NewResponse(&registryv1.CreatePortalLinkResponse{PortalLink: link, Token: token}), nil
}

// ListPortalLinks lists a project's portal links, oldest first, without
// their token.
func (h *handler) ListPortalLinks(ctx context.Context, req *connect.Request[registryv1.ListPortalLinksRequest]) (*connect.Response[registryv1.ListPortalLinksResponse], error) {
	id := req.Msg.ProjectId
	if err := auth.AuthorizeProject(ctx, id); err != nil {
		return nil, err
	}
	if err := checkID("project_id", id); err != nil {
		return nil, err
	}
	docs, err := findAll[portalLinkDoc](ctx, h.s.store.portalLinks, bson.D{{Key: "project_id", Value: id}},
		bson.D{{Key: "link_id", Value: 1}}, 0)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListPortalLinksResponse{PortalLinks: make([]*registryv1.PortalLink, 0, len(docs))}
	for i := range docs {
		resp.PortalLinks = append(resp.PortalLinks, docs[i].proto())
	}
	return connect.NewResponse(resp), nil
}

// RevokePortalLink revokes a portal link. It stops working in this process
// at once, and in the others when they hear of the change (changes.go).
func (h *handler) RevokePortalLink(ctx context.Context, req *connect.Request[registryv1.RevokePortalLinkRequest]) (*connect.Response[registryv1.RevokePortalLinkResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("project_id", m.ProjectId); err != nil {
		return nil, err
	}
	if err := checkID("portal_link_id", m.PortalLinkId); err != nil {
		return nil, err
	}
	var d portalLinkDoc
	filter := bson.D{{Key: "project_id", Value: m.ProjectId}, {Key: "link_id", Value: m.PortalLinkId}}
	if err := findOne(ctx, h.s.store.portalLinks, filter, &d); err != nil {
		return nil, storeErr(err, "portal link", m.PortalLinkId, m.ProjectId)
	}
	if d.RevokeTime == nil {
		now := h.s.clock()
		_, err := h.s.store.portalLinks.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: d.Hash}, {Key: "revoke_time", Value: nil}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "revoke_time", Value: now}}}})
		// Invalidate after the write: a load that read the link before it
		// is then not kept (see ttlcache).
		h.s.portals.Invalidate(d.Hash)
		if err != nil {
			return nil, err
		}
		d.RevokeTime = &now
		h.s.logger.InfoContext(ctx, "portal link revoked", "project_id", m.ProjectId, "portal_link_id", m.PortalLinkId)
	} else {
		h.s.portals.Invalidate(d.Hash)
	}
	return connect.NewResponse(&registryv1.RevokePortalLinkResponse{PortalLink: d.proto()}), nil
}

// GetCurrentPortalLink returns the calling portal token's link, so that
// the portal learns its project and owner from the token alone.
func (h *handler) GetCurrentPortalLink(ctx context.Context, _ *connect.Request[registryv1.GetCurrentPortalLinkRequest]) (*connect.Response[registryv1.GetCurrentPortalLinkResponse], error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return nil, apierr.Unauthenticated("missing API key: send Authorization: Bearer <key>")
	}
	if !p.Portal() {
		return nil, apierr.PermissionDenied("GetCurrentPortalLink answers portal tokens only; a project key lists links with ListPortalLinks")
	}
	var d portalLinkDoc
	filter := bson.D{{Key: "project_id", Value: p.ProjectID}, {Key: "link_id", Value: p.KeyID}}
	if err := findOne(ctx, h.s.store.portalLinks, filter, &d); err != nil {
		return nil, storeErr(err, "portal link", p.KeyID, p.ProjectID)
	}
	return connect.NewResponse(&registryv1.GetCurrentPortalLinkResponse{PortalLink: d.proto()}), nil
}

// AuthenticatePortalToken resolves a portal token to its project, link and
// owner. It implements auth.PortalAuthenticator: an unknown, revoked or
// expired token returns auth.ErrUnknownKey. Answers are kept as API keys'
// are, never past the link's expiry.
func (s *Service) AuthenticatePortalToken(ctx context.Context, token string) (auth.PortalGrant, error) {
	if !strings.HasPrefix(token, auth.PortalTokenPrefix) || len(token) > maxKeyLen {
		return auth.PortalGrant{}, auth.ErrUnknownKey
	}
	hash := hashKey(token)
	a, err := s.portals.Load(ctx, hash, func(ctx context.Context) (portalAnswer, string, time.Duration, error) {
		var d portalLinkDoc
		err := findOne(ctx, s.store.portalLinks, bson.D{{Key: "_id", Value: hash}}, &d)
		switch {
		case errors.Is(err, errNotFound):
			return portalAnswer{}, "", keyNegativeCacheTTL, auth.ErrUnknownKey
		case err != nil:
			return portalAnswer{}, "", 0, err
		case d.RevokeTime != nil:
			return portalAnswer{}, d.ProjectID, keyNegativeCacheTTL, auth.ErrUnknownKey
		}
		ttl := min(keyCacheTTL, time.Until(d.ExpireTime))
		if ttl <= 0 {
			return portalAnswer{}, d.ProjectID, keyNegativeCacheTTL, auth.ErrUnknownKey
		}
		return portalAnswer{grant: auth.PortalGrant{ProjectID: d.ProjectID, LinkID: d.LinkID, OwnerID: d.OwnerID, ExpireTime: d.ExpireTime}},
			d.ProjectID, ttl, nil
	})
	if err != nil {
		return auth.PortalGrant{}, err
	}
	if !s.now().Before(a.grant.ExpireTime) {
		return auth.PortalGrant{}, auth.ErrUnknownKey
	}
	return a.grant, nil
}

package status

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// Portal tokens of the tests: acme owns ep_0 and ep_2 of project A, nobody
// owns nothing, and the expired token's link ended an hour ago.
const (
	tokenAcme    = auth.PortalTokenPrefix + "acme"
	tokenNobody  = auth.PortalTokenPrefix + "nobody"
	tokenExpired = auth.PortalTokenPrefix + "expired"
)

// portalKeys authenticates project A's key and the portal tokens.
type portalKeys struct{}

func (portalKeys) AuthenticateKey(_ context.Context, key string) (string, string, error) {
	if key == keyA {
		return projectA, "key_a", nil
	}
	return "", "", auth.ErrUnknownKey
}

func (portalKeys) AuthenticatePortalToken(_ context.Context, token string) (auth.PortalGrant, error) {
	later, earlier := time.Now().Add(time.Hour), time.Now().Add(-time.Hour)
	switch token {
	case tokenAcme:
		return auth.PortalGrant{ProjectID: projectA, LinkID: "pl_acme", OwnerID: "acme", ExpireTime: later}, nil
	case tokenNobody:
		return auth.PortalGrant{ProjectID: projectA, LinkID: "pl_nobody", OwnerID: "nobody", ExpireTime: later}, nil
	case tokenExpired:
		return auth.PortalGrant{ProjectID: projectA, LinkID: "pl_expired", OwnerID: "acme", ExpireTime: earlier}, nil
	}
	return auth.PortalGrant{}, auth.ErrUnknownKey
}

// ownerTable is the registry's answer about owners.
type ownerTable map[string][]string

func (o ownerTable) OwnerEndpoints(_ context.Context, projectID, ownerID string) ([]string, error) {
	if projectID != projectA {
		return nil, nil
	}
	return o[ownerID], nil
}

// servePortal serves s with portal tokens enabled (or not) and returns a
// Connect client maker.
func servePortal(t *testing.T, s *Service, enable bool) func(key string) statusv1connect.StatusServiceClient {
	t.Helper()
	if enable {
		s.owners = ownerTable{"acme": {"ep_0", "ep_2"}}
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	mux := http.NewServeMux()
	s.Register(mux, connect.WithInterceptors(apierr.NewInterceptor(logger), auth.NewKeys(adminKey, portalKeys{}).Interceptor()))
	srv := testenv.Server(t, mux)
	return func(key string) statusv1connect.StatusServiceClient {
		return statusv1connect.NewStatusServiceClient(srv.Client(), srv.URL, connect.WithInterceptors(auth.BearerInterceptor(key)))
	}
}

// TestPortalScope: a portal token sees the deliveries of its owner's
// endpoints only, through every call it may make, on both stores.
func TestPortalScope(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		f := seed(t, kind)
		dial := servePortal(t, f.s, true)
		ctx := context.Background()
		acme := dial(tokenAcme)

		var want, others []string
		for _, d := range f.all {
			if d.GetEndpointId() == "ep_0" || d.GetEndpointId() == "ep_2" {
				want = append(want, d.GetId())
			} else {
				others = append(others, d.GetId())
			}
		}
		// Every page of a listing without an endpoint filter.
		var got []string
		token := ""
		for {
			resp, err := acme.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectA, PageSize: 2, PageToken: token}))
			if err != nil {
				t.Fatalf("ListDeliveries: %v", err)
			}
			for _, d := range resp.Msg.GetDeliveries() {
				got = append(got, d.GetId())
			}
			if token = resp.Msg.GetNextPageToken(); token == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("portal ListDeliveries = %v, want %v", got, want)
		}
		count, err := acme.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: projectA}))
		if err != nil || count.Msg.GetTotal() != uint64(len(want)) {
			t.Fatalf("portal CountDeliveries = %v, %v; want a total of %d", count, err, len(want))
		}
		if _, err := acme.GetDelivery(ctx, connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: projectA, DeliveryId: want[0]})); err != nil {
			t.Fatalf("GetDelivery of its own: %v", err)
		}
		if _, err := acme.GetDelivery(ctx, connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: projectA, DeliveryId: others[0]})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("GetDelivery of another owner's: %v", err)
		}
		if _, err := acme.ListAttempts(ctx, connect.NewRequest(&statusv1.ListAttemptsRequest{ProjectId: projectA, DeliveryId: others[0]})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("ListAttempts of another owner's: %v", err)
		}
		if _, err := acme.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectA, EndpointId: "ep_1"})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("ListDeliveries of another owner's endpoint: %v", err)
		}
		if _, err := acme.SummarizeEvents(ctx, connect.NewRequest(&statusv1.SummarizeEventsRequest{ProjectId: projectA, EventIds: []string{"evt_0"}})); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("SummarizeEvents: %v", err)
		}
		// The project's key still sees everything.
		all, err := dial(keyA).CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: projectA}))
		if err != nil || all.Msg.GetTotal() != uint64(len(f.all)) {
			t.Fatalf("project key CountDeliveries = %v, %v", all, err)
		}

		nobody := dial(tokenNobody)
		none, err := nobody.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectA}))
		if err != nil || len(none.Msg.GetDeliveries()) != 0 {
			t.Fatalf("ListDeliveries of an owner without endpoints: %v, %v", none, err)
		}
		zero, err := nobody.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: projectA}))
		if err != nil || zero.Msg.GetTotal() != 0 {
			t.Fatalf("CountDeliveries of an owner without endpoints: %v, %v", zero, err)
		}
		if _, err := dial(tokenExpired).ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectA})); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("an expired token: %v", err)
		}
	})
}

// TestPortalDisabled: a status service that cannot tell owners' endpoints
// refuses portal tokens.
func TestPortalDisabled(t *testing.T) {
	t.Parallel()
	dial := servePortal(t, testService(t, onMongoDB), false)
	_, err := dial(tokenAcme).ListDeliveries(context.Background(), connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectA}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("ListDeliveries with the portal disabled: %v", err)
	}
}

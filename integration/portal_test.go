package integration

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// TestPortalLinks gives owner acme a portal link in a project where globex
// also has an endpoint: the token reaches acme's endpoints, deliveries and
// attempts, and retries them, and nothing of globex's nor anything else;
// revoked or expired, it is refused.
func TestPortalLinks(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{})
			ctx := context.Background()
			projectID, key := s.project(t, singleAttempt)
			c := s.clients(key)

			var down atomic.Bool
			down.Store(true)
			recvA := newReceiver(t)
			recvA.respond = func(*http.Request) int {
				if down.Load() {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			}
			recvB := newReceiver(t)
			epA := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recvA.URL, OwnerId: "acme"})
			epB := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recvB.URL, OwnerId: "globex"})
			failedA := waitDelivery(t, c, projectID, sendEvent(t, c, projectID, epA.GetId(), "invoice.paid", `{"a":1}`), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
			doneB := waitDelivery(t, c, projectID, sendEvent(t, c, projectID, epB.GetId(), "invoice.paid", `{"b":1}`), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)

			// Bad ttls are refused, naming the field.
			for _, ttl := range []*durationpb.Duration{durationpb.New(-time.Second), durationpb.New(31 * 24 * time.Hour)} {
				_, err := c.registry.CreatePortalLink(ctx, connect.NewRequest(&registryv1.CreatePortalLinkRequest{ProjectId: projectID, OwnerId: "acme", Ttl: ttl}))
				if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "ttl") {
					t.Fatalf("ttl %v: %v", ttl.AsDuration(), err)
				}
			}
			if _, err := c.registry.CreatePortalLink(ctx, connect.NewRequest(&registryv1.CreatePortalLinkRequest{ProjectId: projectID})); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "owner_id") {
				t.Fatalf("no owner_id: %v", err)
			}

			created, err := c.registry.CreatePortalLink(ctx, connect.NewRequest(&registryv1.CreatePortalLinkRequest{ProjectId: projectID, OwnerId: "acme"}))
			if err != nil {
				t.Fatal(err)
			}
			link, token := created.Msg.GetPortalLink(), created.Msg.GetToken()
			if !strings.HasPrefix(link.GetId(), "pl_") || link.GetOwnerId() != "acme" || token == "" ||
				link.GetUrl() != s.registryURL+"/ui/portal?token="+token {
				t.Fatalf("portal link: %v, token %q", link, token)
			}
			if ttl := link.GetExpireTime().AsTime().Sub(link.GetCreateTime().AsTime()); ttl != time.Hour {
				t.Fatalf("default ttl %s, want 1h", ttl)
			}
			p := s.clients(token)
			// The portal learns its project and owner from the token.
			if cur, err := p.registry.GetCurrentPortalLink(ctx, connect.NewRequest(&registryv1.GetCurrentPortalLinkRequest{})); err != nil ||
				cur.Msg.GetPortalLink().GetProjectId() != projectID || cur.Msg.GetPortalLink().GetOwnerId() != "acme" {
				t.Fatalf("GetCurrentPortalLink: %v %v", cur, err)
			}

			// Endpoints: acme's only.
			eps, err := p.registry.ListEndpoints(ctx, connect.NewRequest(&registryv1.ListEndpointsRequest{ProjectId: projectID}))
			if err != nil || len(eps.Msg.GetEndpoints()) != 1 || eps.Msg.GetEndpoints()[0].GetId() != epA.GetId() {
				t.Fatalf("portal ListEndpoints: %v %v", eps, err)
			}
			if _, err := p.registry.ListEndpoints(ctx, connect.NewRequest(&registryv1.ListEndpointsRequest{ProjectId: projectID, OwnerId: "globex"})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Fatalf("portal ListEndpoints of globex: %v", err)
			}
			if _, err := p.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectID, EndpointId: epA.GetId()})); err != nil {
				t.Fatalf("portal GetEndpoint of its own: %v", err)
			}
			if _, err := p.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectID, EndpointId: epB.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("portal GetEndpoint of globex's: %v", err)
			}
			if _, err := p.registry.PauseEndpoint(ctx, connect.NewRequest(&registryv1.PauseEndpointRequest{ProjectId: projectID, EndpointId: epB.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("portal PauseEndpoint of globex's: %v", err)
			}
			if _, err := p.registry.UpdateEndpoint(ctx, connect.NewRequest(&registryv1.UpdateEndpointRequest{ProjectId: projectID, EndpointId: epB.GetId(), Name: new("mine")})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("portal UpdateEndpoint of globex's: %v", err)
			}
			own, err := p.registry.CreateEndpoint(ctx, connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recvA.URL + "/second"}))
			if err != nil || own.Msg.GetEndpoint().GetOwnerId() != "acme" {
				t.Fatalf("portal CreateEndpoint: %v %v", own, err)
			}
			if _, err := p.registry.CreateEndpoint(ctx, connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recvA.URL, OwnerId: "globex"})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Fatalf("portal CreateEndpoint for globex: %v", err)
			}

			// Deliveries and attempts: acme's only.
			list, err := p.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID}))
			if err != nil || len(list.Msg.GetDeliveries()) != 1 || list.Msg.GetDeliveries()[0].GetId() != failedA.GetId() {
				t.Fatalf("portal ListDeliveries: %v %v", list, err)
			}
			if _, err := p.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID, EndpointId: epB.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("portal ListDeliveries of globex's endpoint: %v", err)
			}
			if _, err := p.status.GetDelivery(ctx, connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: projectID, DeliveryId: failedA.GetId()})); err != nil {
				t.Fatalf("portal GetDelivery of its own: %v", err)
			}
			if _, err := p.status.GetDelivery(ctx, connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: projectID, DeliveryId: doneB.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("portal GetDelivery of globex's: %v", err)
			}
			attempts, err := p.status.ListAttempts(ctx, connect.NewRequest(&statusv1.ListAttemptsRequest{ProjectId: projectID, DeliveryId: failedA.GetId()}))
			if err != nil || len(attempts.Msg.GetAttempts()) != 1 {
				t.Fatalf("portal ListAttempts of its own: %v %v", attempts, err)
			}
			if _, err := p.status.ListAttempts(ctx, connect.NewRequest(&statusv1.ListAttemptsRequest{ProjectId: projectID, DeliveryId: doneB.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("portal ListAttempts of globex's: %v", err)
			}
			waitTrue(t, "the portal's count of acme's one delivery", func() bool {
				n, err := p.status.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: projectID}))
				return err == nil && n.Msg.GetTotal() == 1
			})
			if _, err := p.status.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: projectID, EndpointId: epB.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("portal CountDeliveries of globex's endpoint: %v", err)
			}

			// Retries: acme's failed delivery, not globex's.
			if _, err := p.status.ForceRetryDelivery(ctx, connect.NewRequest(&statusv1.ForceRetryDeliveryRequest{ProjectId: projectID, DeliveryId: doneB.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("portal ForceRetryDelivery of globex's: %v", err)
			}
			down.Store(false)
			if _, err := p.status.RetryDelivery(ctx, connect.NewRequest(&statusv1.RetryDeliveryRequest{ProjectId: projectID, DeliveryId: failedA.GetId()})); err != nil {
				t.Fatalf("portal RetryDelivery of its own: %v", err)
			}
			if d := waitDelivery(t, p, projectID, failedA.GetEventId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS); d.GetAttempts() != 2 {
				t.Fatalf("after the portal's retry: %v", d)
			}
			batch, err := p.status.BatchRetryDeliveries(ctx, connect.NewRequest(&statusv1.BatchRetryDeliveriesRequest{ProjectId: projectID, DryRun: true}))
			if err != nil || batch.Msg.GetMatched() != 0 {
				t.Fatalf("portal BatchRetryDeliveries: %v %v", batch, err)
			}

			// Everything else is refused.
			refused := func(what string, err error) {
				t.Helper()
				if code := connect.CodeOf(err); code != connect.CodePermissionDenied && code != connect.CodeNotFound {
					t.Fatalf("portal %s: %v, want PermissionDenied or NotFound", what, err)
				}
			}
			_, err = p.registry.ListProjects(ctx, connect.NewRequest(&registryv1.ListProjectsRequest{}))
			refused("ListProjects", err)
			_, err = p.registry.GetProject(ctx, connect.NewRequest(&registryv1.GetProjectRequest{ProjectId: projectID}))
			refused("GetProject", err)
			_, err = p.registry.ListAPIKeys(ctx, connect.NewRequest(&registryv1.ListAPIKeysRequest{ProjectId: projectID}))
			refused("ListAPIKeys", err)
			_, err = p.registry.CreateAPIKey(ctx, connect.NewRequest(&registryv1.CreateAPIKeyRequest{ProjectId: projectID}))
			refused("CreateAPIKey", err)
			_, err = p.registry.ListSubscriptions(ctx, connect.NewRequest(&registryv1.ListSubscriptionsRequest{ProjectId: projectID}))
			refused("ListSubscriptions", err)
			_, err = p.registry.CreatePortalLink(ctx, connect.NewRequest(&registryv1.CreatePortalLinkRequest{ProjectId: projectID, OwnerId: "globex"}))
			refused("CreatePortalLink", err)
			_, err = p.registry.ListPortalLinks(ctx, connect.NewRequest(&registryv1.ListPortalLinksRequest{ProjectId: projectID}))
			refused("ListPortalLinks", err)
			_, err = p.registry.SetMetaEvents(ctx, connect.NewRequest(&registryv1.SetMetaEventsRequest{ProjectId: projectID, Url: recvA.URL, Enabled: true}))
			refused("SetMetaEvents", err)
			_, err = p.registry.RotateMetaEventsSecret(ctx, connect.NewRequest(&registryv1.RotateMetaEventsSecretRequest{ProjectId: projectID}))
			refused("RotateMetaEventsSecret", err)
			_, err = p.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: epA.GetId(), EventType: "x", Data: `{}`}))
			refused("CreateEvent", err)
			_, err = p.ingest.ListEvents(ctx, connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: projectID}))
			refused("ListEvents", err)
			req, _ := http.NewRequest(http.MethodPost, s.ingestURL+"/api/v1/projects/"+projectID+"/events",
				strings.NewReader(`{"endpoint_id":"`+epA.GetId()+`","event_type":"x","data":{}}`))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
				t.Fatalf("portal REST event: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}

			// Revoked: refused everywhere, promptly.
			if _, err := c.registry.RevokePortalLink(ctx, connect.NewRequest(&registryv1.RevokePortalLinkRequest{ProjectId: projectID, PortalLinkId: link.GetId()})); err != nil {
				t.Fatal(err)
			}
			waitUnauthenticated(t, "the revoked token", p, projectID, 10*time.Second)
			links, err := c.registry.ListPortalLinks(ctx, connect.NewRequest(&registryv1.ListPortalLinksRequest{ProjectId: projectID}))
			if err != nil || len(links.Msg.GetPortalLinks()) != 1 || links.Msg.GetPortalLinks()[0].GetRevokeTime() == nil || links.Msg.GetPortalLinks()[0].GetUrl() != "" {
				t.Fatalf("ListPortalLinks after revocation: %v %v", links, err)
			}

			// Expired: refused everywhere.
			short, err := c.registry.CreatePortalLink(ctx, connect.NewRequest(&registryv1.CreatePortalLinkRequest{ProjectId: projectID, OwnerId: "acme", Ttl: durationpb.New(2 * time.Second)}))
			if err != nil {
				t.Fatal(err)
			}
			e := s.clients(short.Msg.GetToken())
			if _, err := e.registry.ListEndpoints(ctx, connect.NewRequest(&registryv1.ListEndpointsRequest{ProjectId: projectID})); err != nil &&
				time.Now().Before(short.Msg.GetPortalLink().GetExpireTime().AsTime()) {
				t.Fatalf("a fresh short-lived token: %v", err)
			}
			waitUnauthenticated(t, "the expired token", e, projectID, 30*time.Second)
		})
	}
}

// waitUnauthenticated waits until both the registry and the status service
// refuse c's token as Unauthenticated.
func waitUnauthenticated(t *testing.T, what string, c clients, projectID string, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(within)
	for {
		_, errReg := c.registry.ListEndpoints(ctx, connect.NewRequest(&registryv1.ListEndpointsRequest{ProjectId: projectID}))
		_, errSt := c.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID}))
		if connect.CodeOf(errReg) == connect.CodeUnauthenticated && connect.CodeOf(errSt) == connect.CodeUnauthenticated {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still works after %s: registry %v, status %v", what, within, errReg, errSt)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitTrue waits up to 30 s for cond.
func waitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package integration

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// TestManualRetries fails deliveries, then retries them one by one, by
// force and in batch (after a dry run): each is a new attempt of the same
// delivery, with the same webhook-id.
func TestManualRetries(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{})
			var down atomic.Bool
			down.Store(true)
			recv := newReceiver(t)
			recv.respond = func(*http.Request) int {
				if down.Load() {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			}
			projectID, key := s.project(t, singleAttempt)
			c := s.clients(key)
			ctx := context.Background()
			ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
			send := func() string { return sendEvent(t, c, projectID, ep.GetId(), "manual", `{"m":1}`) }
			first := waitDelivery(t, c, projectID, send(), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)

			// A FAILED delivery cannot be force-retried, a failed one retried.
			if _, err := c.status.ForceRetryDelivery(ctx, connect.NewRequest(&statusv1.ForceRetryDeliveryRequest{ProjectId: projectID, DeliveryId: first.GetId()})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
				t.Fatalf("force retry of a FAILED delivery: %v", err)
			}
			down.Store(false)
			retried, err := c.status.RetryDelivery(ctx, connect.NewRequest(&statusv1.RetryDeliveryRequest{ProjectId: projectID, DeliveryId: first.GetId()}))
			if err != nil || retried.Msg.GetDelivery().GetAttempts() != 1 ||
				retried.Msg.GetDelivery().GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED {
				t.Fatalf("retry: %v %v", retried, err)
			}
			d := waitDelivery(t, c, projectID, first.GetEventId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
			if d.GetAttempts() != 2 {
				t.Fatalf("after the retry: %v", d)
			}
			if _, err := c.status.RetryDelivery(ctx, connect.NewRequest(&statusv1.RetryDeliveryRequest{ProjectId: projectID, DeliveryId: first.GetId()})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
				t.Fatalf("retry of a SUCCESS delivery: %v", err)
			}
			if _, err := c.status.ForceRetryDelivery(ctx, connect.NewRequest(&statusv1.ForceRetryDeliveryRequest{ProjectId: projectID, DeliveryId: first.GetId()})); err != nil {
				t.Fatal(err)
			}
			recv.waitFor(t, "the forced retry", func(r []received) bool { return len(r) == 3 })
			for i, g := range recv.requests() {
				if g.header.Get("Webhook-Id") != first.GetId() || g.header.Get("X-Hookmesh-Attempt") != []string{"1", "2", "3"}[i] {
					t.Fatalf("request %d: webhook-id %s attempt %s", i, g.header.Get("Webhook-Id"), g.header.Get("X-Hookmesh-Attempt"))
				}
			}

			// Pause: new deliveries are DISCARDED and cannot be retried
			// until the endpoint is active again; then a batch retries
			// them with the FAILED ones.
			down.Store(true)
			failed := waitDelivery(t, c, projectID, send(), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
			if _, err := c.registry.PauseEndpoint(ctx, connect.NewRequest(&registryv1.PauseEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()})); err != nil {
				t.Fatal(err)
			}
			discarded := waitDelivery(t, c, projectID, send(), statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED)
			_, err = c.status.RetryDelivery(ctx, connect.NewRequest(&statusv1.RetryDeliveryRequest{ProjectId: projectID, DeliveryId: discarded.GetId()}))
			if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "not active") {
				t.Fatalf("retry with the endpoint paused: %v", err)
			}
			if _, err := c.registry.ActivateEndpoint(ctx, connect.NewRequest(&registryv1.ActivateEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()})); err != nil {
				t.Fatal(err)
			}
			down.Store(false)
			dry, err := c.status.BatchRetryDeliveries(ctx, connect.NewRequest(&statusv1.BatchRetryDeliveriesRequest{ProjectId: projectID, EndpointId: ep.GetId(), DryRun: true}))
			// A dry run says how many match and queues none.
			if err != nil || dry.Msg.GetMatched() != 2 || dry.Msg.GetQueued() != 0 {
				t.Fatalf("dry run: %v %v, want 2 matched and 0 queued", dry, err)
			}
			if n := len(recv.requests()); n != 4 {
				t.Fatalf("the dry run sent something: %d requests", n)
			}
			batch, err := c.status.BatchRetryDeliveries(ctx, connect.NewRequest(&statusv1.BatchRetryDeliveriesRequest{ProjectId: projectID, EndpointId: ep.GetId()}))
			if err != nil || batch.Msg.GetQueued() != 2 || batch.Msg.GetMatched() != 2 {
				t.Fatalf("batch: %v %v, want 2 matched and queued", batch, err)
			}
			waitDelivery(t, c, projectID, failed.GetEventId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
			waitDelivery(t, c, projectID, discarded.GetEventId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
			if _, err := c.status.BatchRetryDeliveries(ctx, connect.NewRequest(&statusv1.BatchRetryDeliveriesRequest{ProjectId: projectID,
				Statuses: []statusv1.DeliveryStatus{statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS}})); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("batch retry of SUCCESS deliveries: %v", err)
			}
		})
	}
}

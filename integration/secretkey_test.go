package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hookmesh/hookmesh/app"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// otherSecretKey is a valid key that did not seal the tests' secrets.
const otherSecretKey = "0000000000000000000000000000000000000000000000000000000000000001"

// TestRestartWithAnotherSecretKeyIsRefused restarts a registry with another
// secret key on the same databases, as after a lost .hookmesh/secret-key:
// it refuses to start and says what to do, instead of answering `internal
// error` to every event.
func TestRestartWithAnotherSecretKeyIsRefused(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	projectID, key := s.project(t, nil)
	s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: "http://127.0.0.1:9/hook"})
	s.stop()

	cfg := s.cfg
	cfg.Targets = []string{app.TargetRegistry}
	cfg.Registry.SecretKey = otherSecretKey
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := app.New(ctx, cfg, logger(t))
	if err == nil {
		rctx, stop := context.WithCancel(ctx)
		stop()
		_ = a.Run(rctx)
		t.Fatal("a registry with another secret key started")
	}
	for _, want := range []string{"HOOKMESH_SECRET_KEY", "cannot open", "restore", "hookmesh reset-secrets", "hookmesh reseal -old-secret-key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// With the key that sealed them, it starts again.
	s2 := startStack(t, modeAll, stackOptions{after: s})
	if _, err := s2.clients(key).registry.ListEndpoints(ctx, connect.NewRequest(&registryv1.ListEndpointsRequest{ProjectId: projectID})); err != nil {
		t.Fatal(err)
	}
}

// TestUnsignableDeliveryEndsFailed gives an endpoint a stored secret that
// the registry's key cannot open: its deliveries end FAILED, saying why,
// and nothing unsigned is sent, instead of being retried forever.
func TestUnsignableDeliveryEndsFailed(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	c := s.clients(key)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	// A secret sealed with another key (this one opens with none).
	ctx := context.Background()
	_, err := testenv.Client(t).Database(s.cfg.DatabasePrefix+"_registry").Collection("endpoints").UpdateOne(ctx,
		bson.D{{Key: "_id", Value: ep.GetId()}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "secrets", Value: bson.A{bson.D{{Key: "value", Value: "hmgcm1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, {Key: "expire_time", Value: nil}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	eventID := sendEvent(t, c, projectID, ep.GetId(), "unsignable", `{"a":1}`)
	d := waitDelivery(t, c, projectID, eventID, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
	if !strings.Contains(d.GetLastError(), "cannot sign") {
		t.Fatalf("last_error %q does not say the webhook cannot be signed", d.GetLastError())
	}
	if n := len(recv.requests()); n != 0 {
		t.Fatalf("the receiver got %d requests, want none (nothing unsigned is sent)", n)
	}
}

// TestTaskOfDeletedEndpointEndsVisibly deletes an endpoint, and a project,
// while a delivery to it waits in the delay queues for its next attempt:
// the delivery ends DISCARDED with the reason instead of being tried again.
func TestTaskOfDeletedEndpointEndsVisibly(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	recv.respond = func(*http.Request) int { return http.StatusInternalServerError }
	for _, what := range []string{"endpoint", "project"} {
		t.Run(what, func(t *testing.T) {
			projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "deleted " + what, RetryPolicy: linearPolicy(5, 10)})
			c := s.clients(key)
			admin := s.clients(adminKey)
			ctx := context.Background()
			ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
			eventID := sendEvent(t, c, projectID, ep.GetId(), "deleted", `{}`)
			waitDelivery(t, c, projectID, eventID, statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY)
			var err error
			if what == "endpoint" {
				_, err = c.registry.DeleteEndpoint(ctx, connect.NewRequest(&registryv1.DeleteEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()}))
			} else {
				_, err = admin.registry.DeleteProject(ctx, connect.NewRequest(&registryv1.DeleteProjectRequest{ProjectId: projectID}))
			}
			if err != nil {
				t.Fatal(err)
			}
			// The project's own key may be revoked with it: read as admin.
			deadline := time.Now().Add(60 * time.Second)
			for {
				resp, err := admin.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID, EventId: eventID}))
				if err != nil {
					t.Fatal(err)
				}
				if ds := resp.Msg.GetDeliveries(); len(ds) == 1 && ds[0].GetStatus() == statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED {
					if !strings.Contains(ds[0].GetLastError(), "deleted") {
						t.Fatalf("last_error %q does not say the endpoint was deleted", ds[0].GetLastError())
					}
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("the delivery did not end DISCARDED after its %s was deleted: %v", what, ds)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/hookmesh/hookmesh/app"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/pgdb"
)

// TestRetention runs the pruners of a stack every 200 ms over the
// PostgreSQL history, makes rows old by moving their create_time back,
// and checks what the APIs show: an event past the retention is gone, and
// a manual retry of its delivery answers FailedPrecondition; a delivery
// past a retention set over Connect is gone from every query; the rest
// stays.
func TestRetention(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{configure: func(c *app.Config) { c.Retention.Interval = 200 * time.Millisecond }})
			if s.cfg.PostgresURL == "" {
				t.Skip("the history is in PostgreSQL only with HOOKMESH_TEST_POSTGRES_URL")
			}
			ctx := context.Background()
			recv := newReceiver(t)
			recv.respond = func(*http.Request) int { return http.StatusInternalServerError }
			projectID, key := s.project(t, singleAttempt)
			c := s.clients(key)
			ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
			evA := sendEvent(t, c, projectID, ep.GetId(), "retention", `{"n":1}`)
			evB := sendEvent(t, c, projectID, ep.GetId(), "retention", `{"n":2}`)
			evC := sendEvent(t, c, projectID, ep.GetId(), "retention", `{"n":3}`)
			dA := waitDelivery(t, c, projectID, evA, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
			dB := waitDelivery(t, c, projectID, evB, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
			waitDelivery(t, c, projectID, evC, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)

			age := func(service, table, id string, by time.Duration) {
				t.Helper()
				pool, err := pgdb.Open(ctx, s.cfg.PostgresURL, s.cfg.DatabasePrefix+"_"+service)
				if err != nil {
					t.Fatal(err)
				}
				defer pool.Close()
				if _, err := pool.Exec(ctx, "UPDATE "+table+" SET create_time = create_time - $2::interval WHERE id = $1", id, by.String()); err != nil {
					t.Fatalf("age %s %s: %v", table, id, err)
				}
			}

			// Event A is 40 days old (its delivery is not): the ingest
			// pruner deletes it, and its delivery can no longer be retried.
			age("ingest", "events", evA, 40*24*time.Hour)
			waitTrue(t, "the old event to be pruned", func() bool {
				_, err := c.ingest.GetEvent(ctx, connect.NewRequest(&ingestv1.GetEventRequest{ProjectId: projectID, EventId: evA}))
				return connect.CodeOf(err) == connect.CodeNotFound
			})
			_, err := c.status.RetryDelivery(ctx, connect.NewRequest(&statusv1.RetryDeliveryRequest{ProjectId: projectID, DeliveryId: dA.GetId()}))
			if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "retention") {
				t.Fatalf("retry of a delivery whose event was pruned: %v, want FailedPrecondition about the retention", err)
			}

			// A retention of one day, set over Connect, and delivery B two
			// days old: the status pruner deletes it.
			upd, err := c.registry.UpdateProject(ctx, connect.NewRequest(&registryv1.UpdateProjectRequest{ProjectId: projectID, Retention: proto.Int32(1)}))
			if err != nil || upd.Msg.GetProject().GetRetention() != 1 {
				t.Fatalf("set retention: %v %v", upd, err)
			}
			age("status", "deliveries", dB.GetId(), 48*time.Hour)
			waitTrue(t, "the old delivery to be pruned", func() bool {
				_, err := c.status.GetDelivery(ctx, connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: projectID, DeliveryId: dB.GetId()}))
				return connect.CodeOf(err) == connect.CodeNotFound
			})
			list, err := c.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID}))
			if err != nil || len(list.Msg.GetDeliveries()) != 2 {
				t.Fatalf("after the prune, %d deliveries listed (%v), want 2", len(list.Msg.GetDeliveries()), err)
			}
			count, err := c.status.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: projectID}))
			if err != nil || count.Msg.GetTotal() != 2 {
				t.Fatalf("after the prune, counted %v (%v), want 2", count.Msg, err)
			}
			events, err := c.ingest.ListEvents(ctx, connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: projectID}))
			if err != nil || len(events.Msg.GetEvents()) != 2 {
				t.Fatalf("after the prune, %d events listed (%v), want 2 (B and C)", len(events.Msg.GetEvents()), err)
			}
		})
	}
}

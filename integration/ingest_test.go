package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

func TestRepeatedIdempotencyKeyIsStoredAsDuplicate(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	c := s.clients(key)
	send := func(idem, data string) *ingestv1.Event {
		t.Helper()
		resp, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
			ProjectId: projectID, EndpointId: ep.GetId(), EventType: "order.created", Data: data, IdempotencyKey: idem}))
		if err != nil {
			t.Fatalf("create event: %v", err)
		}
		return resp.Msg.GetEvent()
	}
	first := send("order-42", `{"n":1}`)
	recv.waitFor(t, "the first event", func(r []received) bool { return len(r) == 1 })
	dup := send("order-42", `{"n":2}`)
	if !dup.GetIsDuplicate() || dup.GetDuplicateOf() != first.GetId() || dup.GetId() == first.GetId() {
		t.Fatalf("repeat = %v, want a duplicate of %s", dup, first.GetId())
	}
	// A later event with another key is delivered; the duplicate never is.
	sentinel := send("order-43", `{"n":3}`)
	recv.waitFor(t, "the sentinel", func(r []received) bool { return len(r) >= 2 })
	waitDelivery(t, c, projectID, sentinel.GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	if n := len(recv.byEvent(dup.GetId())); n != 0 {
		t.Fatalf("duplicate was delivered %d times", n)
	}
	if n := len(recv.byEvent(first.GetId())); n != 1 {
		t.Fatalf("first event delivered %d times, want 1", n)
	}
	ds, err := c.status.ListDeliveries(context.Background(), connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID, EventId: dup.GetId()}))
	if err != nil || len(ds.Msg.GetDeliveries()) != 0 {
		t.Fatalf("duplicate has deliveries: %v %v", ds, err)
	}
	stored, err := c.ingest.GetEvent(context.Background(), connect.NewRequest(&ingestv1.GetEventRequest{ProjectId: projectID, EventId: dup.GetId()}))
	if err != nil || !stored.Msg.GetEvent().GetIsDuplicate() || stored.Msg.GetEvent().GetDuplicateOf() != first.GetId() {
		t.Fatalf("stored duplicate = %v, %v", stored, err)
	}
	list, err := c.ingest.ListEvents(context.Background(), connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: projectID, IdempotencyKey: "order-42"}))
	if err != nil || len(list.Msg.GetEvents()) != 2 {
		t.Fatalf("events with the key = %v, %v", list, err)
	}
}

func TestInactiveEndpointIsDiscarded(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{})
			recv := newReceiver(t)
			projectID, key := s.project(t, nil)
			c := s.clients(key)
			ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
			if _, err := c.registry.PauseEndpoint(context.Background(), connect.NewRequest(&registryv1.PauseEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()})); err != nil {
				t.Fatal(err)
			}
			// No waiting: the pause is announced to every process before the
			// call answers.
			resp, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
				ProjectId: projectID, EndpointId: ep.GetId(), EventType: "order.created", Data: `{}`}))
			if err != nil {
				t.Fatal(err)
			}
			d := waitDelivery(t, c, projectID, resp.Msg.GetEvent().GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED)
			if d.GetLastError() == "" {
				t.Errorf("discarded delivery does not say why: %v", d)
			}
			if n := len(recv.requests()); n != 0 {
				t.Fatalf("paused endpoint received %d requests", n)
			}
		})
	}
}

// TestIngestOverEveryProtocol sends events with a Connect client, a
// gRPC-Web client and a plain google.golang.org/grpc client.
func TestIngestOverEveryProtocol(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	req := func(tag string) *ingestv1.CreateEventRequest {
		return &ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "proto.test", Data: fmt.Sprintf(`{"via":%q}`, tag)}
	}

	ids := map[string]string{}
	resp, err := s.clients(key).ingest.CreateEvent(context.Background(), connect.NewRequest(req("connect")))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	ids["connect"] = resp.Msg.GetEvent().GetId()
	resp, err = s.clients(key, connect.WithGRPCWeb()).ingest.CreateEvent(context.Background(), connect.NewRequest(req("grpc-web")))
	if err != nil {
		t.Fatalf("grpc-web: %v", err)
	}
	ids["grpc-web"] = resp.Msg.GetEvent().GetId()

	conn, err := grpc.NewClient(strings.TrimPrefix(s.ingestURL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gc := ingestv1.NewIngestServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
	gresp, err := gc.CreateEvent(ctx, req("grpc"))
	if err != nil {
		t.Fatalf("grpc: %v", err)
	}
	ids["grpc"] = gresp.GetEvent().GetId()
	// Errors keep their codes over gRPC too.
	_, err = gc.CreateEvent(ctx, &ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: "ep_missing", EventType: "x", Data: `{}`})
	if grpcstatus.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `endpoint "ep_missing" not found`) {
		t.Fatalf("grpc unknown endpoint: %v", err)
	}
	_, err = gc.CreateEvent(context.Background(), req("no key"))
	if grpcstatus.Code(err) != codes.Unauthenticated {
		t.Fatalf("grpc without key: %v", err)
	}

	recv.waitFor(t, "three events", func(r []received) bool { return len(r) == 3 })
	for via, id := range ids {
		got := recv.byEvent(id)
		if len(got) != 1 || string(got[0].body) != fmt.Sprintf(`{"via":%q}`, via) {
			t.Fatalf("%s: received %v", via, got)
		}
	}
}

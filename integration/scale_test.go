package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// TestFanoutAndBroadcastToAThousandEndpoints fans an event out to an owner
// with 1,000 endpoints and broadcasts another to them and one more: every
// endpoint gets each event once and every delivery shows in status. (make
// bench measures the same with 10,000 endpoints.)
func TestFanoutAndBroadcastToAThousandEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1,000 endpoints")
	}
	t.Parallel()
	const n = 1000
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	c := s.clients(key)
	ctx := context.Background()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				_, err := c.registry.CreateEndpoint(ctx, connect.NewRequest(&registryv1.CreateEndpointRequest{
					ProjectId: projectID, Url: fmt.Sprintf("%s/big/%d", recv.URL, i), OwnerId: "big"}))
				if err != nil {
					t.Errorf("endpoint %d: %v", i, err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL + "/other", OwnerId: "small"})

	fan, err := c.ingest.CreateFanoutEvent(ctx, connect.NewRequest(&ingestv1.CreateFanoutEventRequest{ProjectId: projectID, OwnerId: "big", EventType: "scale.fanout", Data: `{}`}))
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.ingest.CreateBroadcastEvent(ctx, connect.NewRequest(&ingestv1.CreateBroadcastEventRequest{ProjectId: projectID, EventType: "scale.broadcast", Data: `{}`}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want int
	}{{fan.Msg.GetEvent().GetId(), n}, {all.Msg.GetEvent().GetId(), n + 1}} {
		recv.waitFor(t, fmt.Sprintf("%d deliveries of %s", tc.want, tc.id), func([]received) bool { return len(recv.byEvent(tc.id)) >= tc.want })
		paths := map[string]bool{}
		for _, g := range recv.byEvent(tc.id) {
			id := g.header.Get("Webhook-Id")
			if paths[id] {
				t.Fatalf("event %s delivered twice with webhook-id %s", tc.id, id)
			}
			paths[id] = true
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := c.status.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: projectID, EventId: tc.id}))
			if err != nil {
				t.Fatal(err)
			}
			success := uint64(0)
			for _, sc := range resp.Msg.GetCounts() {
				if sc.GetStatus() == statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS {
					success = sc.GetCount()
				}
			}
			if success == uint64(tc.want) && resp.Msg.GetTotal() == uint64(tc.want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s: status shows %d of %d deliveries as SUCCESS (%d in all)", tc.id, success, tc.want, resp.Msg.GetTotal())
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

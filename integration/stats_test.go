package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// statsTotals sums the buckets of a GetDeliveryStats answer: deliveries
// per status, attempts, and whether every bucket with attempts has
// latencies.
func statsTotals(resp *statusv1.GetDeliveryStatsResponse) (string, uint64, bool) {
	counts := map[statusv1.DeliveryStatus]uint64{}
	var attempts uint64
	latencies := true
	for _, b := range resp.GetBuckets() {
		for _, c := range b.GetStatuses() {
			counts[c.GetStatus()] += c.GetCount()
		}
		attempts += b.GetAttempts()
		if b.GetAttempts() > 0 && (b.GetLatencyP50Ms() == 0 || b.GetLatencyP99Ms() < b.GetLatencyP50Ms()) {
			latencies = false
		}
	}
	return fmt.Sprintf("success=%d retry=%d failed=%d discarded=%d",
		counts[statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS], counts[statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY],
		counts[statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED], counts[statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED]), attempts, latencies
}

// TestDeliveryStatsThroughTheAPI delivers to two endpoints, one of them
// failing (a retry, then FAILED), and reads the statistics of the project
// and of each endpoint, and each endpoint's health, through the API.
func TestDeliveryStatsThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	good := newReceiver(t)
	bad := newReceiver(t)
	bad.respond = func(*http.Request) int { return http.StatusInternalServerError }
	projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "stats", RetryPolicy: linearPolicy(1, 2)})
	c := s.clients(key)
	ctx := context.Background()
	goodEP := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: good.URL})
	badEP := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: bad.URL})
	start := time.Now().Add(-time.Minute)
	for range 2 {
		waitDelivery(t, c, projectID, sendEvent(t, c, projectID, goodEP.GetId(), "stats", `{}`), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	}
	waitDelivery(t, c, projectID, sendEvent(t, c, projectID, badEP.GetId(), "stats", `{}`), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)

	for _, w := range []struct {
		name, endpoint, want string
		attempts             uint64
	}{
		{"project", "", "success=2 retry=1 failed=1 discarded=0", 4},
		{"good endpoint", goodEP.GetId(), "success=2 retry=0 failed=0 discarded=0", 2},
		{"failing endpoint", badEP.GetId(), "success=0 retry=1 failed=1 discarded=0", 2},
	} {
		var got string
		var attempts uint64
		var latencies bool
		waitTrue(t, "the statistics of the "+w.name, func() bool {
			resp, err := c.status.GetDeliveryStats(ctx, connect.NewRequest(&statusv1.GetDeliveryStatsRequest{
				ProjectId: projectID, EndpointId: w.endpoint, StartTime: timestamppb.New(start), Bucket: durationpb.New(time.Minute)}))
			if err != nil {
				t.Fatalf("GetDeliveryStats of the %s: %v", w.name, err)
			}
			got, attempts, latencies = statsTotals(resp.Msg)
			return got == w.want && attempts == w.attempts
		})
		if !latencies {
			t.Errorf("the %s's buckets with attempts have no latencies", w.name)
		}
	}

	health, err := c.status.GetEndpointHealth(ctx, connect.NewRequest(&statusv1.GetEndpointHealthRequest{ProjectId: projectID, EndpointId: badEP.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	if h := health.Msg; h.GetRecentFailures() != 2 || h.GetRecentSuccesses() != 0 || h.GetLastFailureStatusCode() != 500 ||
		h.GetLastFailureTime() == nil || h.GetLastSuccessTime() != nil {
		t.Fatalf("health of the failing endpoint = %v", h)
	}
	health, err = c.status.GetEndpointHealth(ctx, connect.NewRequest(&statusv1.GetEndpointHealthRequest{ProjectId: projectID, EndpointId: goodEP.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	if h := health.Msg; h.GetRecentSuccesses() != 2 || h.GetRecentFailures() != 0 || h.GetLastSuccessTime() == nil || h.GetLastFailureTime() != nil {
		t.Fatalf("health of the good endpoint = %v", h)
	}
}

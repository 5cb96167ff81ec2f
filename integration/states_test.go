package integration

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// TestEveryStateIsSeenInTheStatusService walks deliveries through the
// in-flight states of the lifecycle and reads each from the status
// service while it lasts: SCHEDULED (held back by a rate limit), PROCESSING
// (a receiver that takes its time), RETRY (a failed first attempt, with the
// time of the next one), then SUCCESS. FAILED and DISCARDED are shown by
// the retry and endpoint tests.
func TestEveryStateIsSeenInTheStatusService(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	release := make(chan struct{})
	var flakyCalls atomic.Int32
	recv := newReceiver(t)
	recv.respond = func(r *http.Request) int {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
		case "/flaky":
			// The second call is a retry 3 s after the first.
			if flakyCalls.Add(1) == 1 {
				return http.StatusBadGateway
			}
		}
		return http.StatusOK
	}
	projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "states", RetryPolicy: linearPolicy(3, 3)})
	c := s.clients(key)
	endpoint := func(path string, req *registryv1.CreateEndpointRequest) string {
		req.ProjectId, req.Url = projectID, recv.URL+path
		return s.endpoint(t, key, req).GetId()
	}
	limited := endpoint("/limited", &registryv1.CreateEndpointRequest{RateLimit: &registryv1.RateLimit{Count: 1, DurationSeconds: 60}})
	slow := endpoint("/slow", &registryv1.CreateEndpointRequest{TimeoutSeconds: 30})
	flaky := endpoint("/flaky", &registryv1.CreateEndpointRequest{})
	send := func(endpointID string) string { return sendEvent(t, c, projectID, endpointID, "states", `{}`) }

	// SCHEDULED: the endpoint takes one request a minute; the second event
	// waits its turn in the delay queues, not yet attempted.
	waitDelivery(t, c, projectID, send(limited), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	if d := waitDelivery(t, c, projectID, send(limited), statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED); d.GetAttempts() != 0 {
		t.Fatalf("scheduled delivery lists %d attempts, want 0", d.GetAttempts())
	}

	// PROCESSING while the receiver holds the request; SUCCESS once it
	// answers.
	held := send(slow)
	waitDelivery(t, c, projectID, held, statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING)
	close(release)
	waitDelivery(t, c, projectID, held, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)

	// RETRY after a 502, with the next attempt 3 s later; then SUCCESS.
	retried := send(flaky)
	d := waitDelivery(t, c, projectID, retried, statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY)
	if d.GetAttempts() != 1 || d.GetLastStatusCode() != http.StatusBadGateway || d.GetNextAttemptTime() == nil ||
		d.GetNextAttemptTime().AsTime().Before(d.GetUpdateTime().AsTime()) {
		t.Fatalf("delivery in RETRY = %v; want 1 attempt, the 502 and the next attempt's time", d)
	}
	if d := waitDelivery(t, c, projectID, retried, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS); d.GetAttempts() != 2 {
		t.Fatalf("retried delivery lists %d attempts, want 2", d.GetAttempts())
	}
}

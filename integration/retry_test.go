package integration

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/hookmesh/hookmesh/app"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/services/deliverer"
)

func linearPolicy(interval, attempts uint32) *registryv1.RetryPolicy {
	return &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: interval, MaxAttempts: attempts}
}

// TestRetriesThroughDelayQueues runs each schedule on the real delay
// queues: the attempts arrive when the schedule says, with the same
// webhook-id, and the delivery ends SUCCESS or FAILED.
func TestRetriesThroughDelayQueues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		policy   *registryv1.RetryPolicy
		override *registryv1.RetryPolicy
		respond  func(n int32, w http.Header) int
		attempts int
		final    statusv1.DeliveryStatus
		minGap   time.Duration
		codes    []int32
	}{
		{"fails twice then succeeds", linearPolicy(1, 5), nil,
			func(n int32, _ http.Header) int {
				if n <= 2 {
					return 500
				}
				return 200
			}, 3, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, time.Second, []int32{500, 500, 200}},
		{"always fails", linearPolicy(1, 3), nil,
			func(int32, http.Header) int { return 502 }, 3, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, time.Second, []int32{502, 502, 502}},
		{"429 with Retry-After", linearPolicy(1, 2), nil,
			func(n int32, h http.Header) int {
				if n == 1 {
					h.Set("Retry-After", "3")
					return 429
				}
				return 200
			}, 2, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, 3 * time.Second, []int32{429, 200}},
		{"a redirect is a failure", linearPolicy(1, 2), nil,
			func(int32, http.Header) int { return 307 }, 2, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, time.Second, []int32{307, 307}},
		{"subscription override", linearPolicy(1, 5), linearPolicy(1, 2),
			func(int32, http.Header) int { return 500 }, 2, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, time.Second, []int32{500, 500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, modeAll, stackOptions{})
			var calls atomic.Int32
			recv := newReceiver(t)
			recv.respondHeader = func(w http.Header) int { return tc.respond(calls.Add(1), w) }
			projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "retry", RetryPolicy: tc.policy})
			c := s.clients(key)
			ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
			if tc.override != nil {
				if _, err := c.registry.CreateSubscription(context.Background(), connect.NewRequest(&registryv1.CreateSubscriptionRequest{
					ProjectId: projectID, EndpointId: ep.GetId(), Filter: &registryv1.Filter{EventTypes: []string{"*"}}, RetryPolicy: tc.override})); err != nil {
					t.Fatal(err)
				}
			}
			eventID := sendEvent(t, c, projectID, ep.GetId(), "retry.me", `{}`)
			got := recv.waitFor(t, "every attempt", func(r []received) bool { return len(r) >= tc.attempts })
			d := waitDelivery(t, c, projectID, eventID, tc.final)
			if int(d.GetAttempts()) != tc.attempts {
				t.Fatalf("delivery = %v, want %d attempts", d, tc.attempts)
			}
			for i, g := range got {
				if g.header.Get("Webhook-Id") != d.GetId() || g.header.Get("X-Hookmesh-Attempt") != strconv.Itoa(i+1) {
					t.Fatalf("request %d: webhook-id %q attempt %q", i+1, g.header.Get("Webhook-Id"), g.header.Get("X-Hookmesh-Attempt"))
				}
				if i > 0 {
					gap := g.at.Sub(got[i-1].at)
					// Generous: a due task may leave its last delay tier up
					// to 100 ms early, and this machine is shared.
					if gap < tc.minGap-300*time.Millisecond || gap > tc.minGap+5*time.Second {
						t.Errorf("attempt %d came %v after the previous one, want about %v", i+1, gap, tc.minGap)
					}
				}
			}
			attempts, err := c.status.ListAttempts(context.Background(), connect.NewRequest(&statusv1.ListAttemptsRequest{ProjectId: projectID, DeliveryId: d.GetId()}))
			if err != nil {
				t.Fatal(err)
			}
			var codes []int32
			for _, a := range attempts.Msg.GetAttempts() {
				codes = append(codes, a.GetStatusCode())
			}
			if len(codes) != len(tc.codes) {
				t.Fatalf("attempts %v, want %v", codes, tc.codes)
			}
			for i := range codes {
				if codes[i] != tc.codes[i] {
					t.Fatalf("attempts %v, want %v", codes, tc.codes)
				}
			}
			// No attempt beyond the schedule.
			time.Sleep(1500 * time.Millisecond)
			if n := len(recv.requests()); n != tc.attempts {
				t.Fatalf("receiver got %d requests, want %d", n, tc.attempts)
			}
		})
	}
}

// TestGoneDisablesTheEndpoint: a 410 ends the delivery FAILED at once and
// disables the endpoint, whose next deliveries are DISCARDED until it is
// activated again.
func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	var gone atomic.Bool
	gone.Store(true)
	recv.respond = func(*http.Request) int {
		if gone.Load() {
			return http.StatusGone
		}
		return http.StatusOK
	}
	projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "gone", RetryPolicy: linearPolicy(1, 5)})
	c := s.clients(key)
	ctx := context.Background()
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	send := func() string { return sendEvent(t, c, projectID, ep.GetId(), "gone", `{}`) }
	d := waitDelivery(t, c, projectID, send(), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
	if d.GetAttempts() != 1 || d.GetLastStatusCode() != 410 {
		t.Fatalf("delivery = %v, want FAILED after one 410", d)
	}
	got, err := c.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()}))
	if err != nil || got.Msg.GetEndpoint().GetStatus() != registryv1.EndpointStatus_ENDPOINT_STATUS_DISABLED {
		t.Fatalf("endpoint after 410: %v %v", got, err)
	}
	if r := got.Msg.GetEndpoint().GetDisabledReason(); !strings.Contains(r, "410 Gone") || got.Msg.GetEndpoint().GetDisableTime() == nil {
		t.Fatalf("disabled endpoint says why %q, when %v; want the 410 and a time", r, got.Msg.GetEndpoint().GetDisableTime())
	}
	waitDelivery(t, c, projectID, send(), statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED)
	gone.Store(false)
	act, err := c.registry.ActivateEndpoint(ctx, connect.NewRequest(&registryv1.ActivateEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	if r := act.Msg.GetEndpoint().GetDisabledReason(); r != "" || act.Msg.GetEndpoint().GetDisableTime() != nil {
		t.Fatalf("an activated endpoint still says it was disabled: %q", r)
	}
	waitDelivery(t, c, projectID, send(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	if n := len(recv.requests()); n != 2 {
		t.Fatalf("receiver got %d requests, want 2 (the 410 and the last)", n)
	}
}

// TestRateLimitAcrossDeliverers sends a burst to an endpoint limited to 4
// requests a second while two deliverers share the work: they keep to the
// limit together, nothing is dropped, and waiting is not an attempt.
func TestRateLimitAcrossDeliverers(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeSeparate, stackOptions{deliverers: 2})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	c := s.clients(key)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL,
		RateLimit: &registryv1.RateLimit{Count: 4, DurationSeconds: 1}})
	// Each deliverer counts the consumers of the queue once a second.
	time.Sleep(1500 * time.Millisecond)
	const n = 24
	var ids []string
	for range n {
		ids = append(ids, sendEvent(t, c, projectID, ep.GetId(), "limited", `{}`))
	}
	got := recv.waitFor(t, "every event", func(r []received) bool { return len(r) >= n })
	// At most 4 in any second, with one of slack for the edges of the
	// buckets; a burst of 24 at 4 a second takes about 5 s.
	for i := range got {
		in := 0
		for j := i; j < len(got) && got[j].at.Sub(got[i].at) < time.Second; j++ {
			in++
		}
		if in > 5 {
			t.Fatalf("%d requests within one second from request %d, limit 4", in, i)
		}
	}
	if span := got[len(got)-1].at.Sub(got[0].at); span < 3*time.Second {
		t.Fatalf("%d requests in %v: the limit did not hold", n, span)
	}
	for _, id := range ids {
		if d := waitDelivery(t, c, projectID, id, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS); d.GetAttempts() != 1 {
			t.Fatalf("delivery %s took %d attempts: waiting for the limit counted", d.GetId(), d.GetAttempts())
		}
	}
	if len(recv.requests()) != n {
		t.Fatalf("receiver got %d requests, want %d", len(recv.requests()), n)
	}
}

// TestAutoDisableAfterARunOfFailures: a project that asks for it has an
// endpoint disabled after 3 failed attempts in a row; its next delivery is
// DISCARDED, and after ActivateEndpoint it can be retried.
func TestAutoDisableAfterARunOfFailures(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	var up atomic.Bool
	recv := newReceiver(t)
	recv.respond = func(*http.Request) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	}
	projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "fragile", RetryPolicy: linearPolicy(1, 1),
		DisableEndpointOnFailure: true, DisableEndpointAfterFailures: 3})
	c := s.clients(key)
	ctx := context.Background()
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	send := func() string { return sendEvent(t, c, projectID, ep.GetId(), "fragile", `{}`) }
	for range 3 {
		waitDelivery(t, c, projectID, send(), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
	}
	got, err := c.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()}))
	if err != nil || got.Msg.GetEndpoint().GetStatus() != registryv1.EndpointStatus_ENDPOINT_STATUS_DISABLED {
		t.Fatalf("endpoint after 3 failures: %v %v", got, err)
	}
	if r := got.Msg.GetEndpoint().GetDisabledReason(); r != "3 failed attempts in a row" {
		t.Fatalf("disabled endpoint says why %q, want the run of failures", r)
	}
	discarded := waitDelivery(t, c, projectID, send(), statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED)
	up.Store(true)
	if _, err := c.registry.ActivateEndpoint(ctx, connect.NewRequest(&registryv1.ActivateEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.status.RetryDelivery(ctx, connect.NewRequest(&statusv1.RetryDeliveryRequest{ProjectId: projectID, DeliveryId: discarded.GetId()})); err != nil {
		t.Fatal(err)
	}
	waitDelivery(t, c, projectID, discarded.GetEventId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	if n := len(recv.requests()); n != 4 {
		t.Fatalf("receiver got %d requests, want 4 (3 failures and the retry)", n)
	}
}

// TestCircuitBreakerHoldsBackAFailingEndpoint: once most attempts to an
// endpoint fail, its circuit opens and its deliveries wait instead of
// hammering it; probes find it back, and then everything is delivered.
// Waiting is not an attempt: each delivery lists exactly the requests the
// receiver got for it.
func TestCircuitBreakerHoldsBackAFailingEndpoint(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{configure: func(cfg *app.Config) {
		cfg.Deliverer.Breaker = deliverer.BreakerConfig{FailureRatio: 0.5, MinRequests: 4, Window: 10 * time.Second,
			Cooldown: 2 * time.Second, MaxCooldown: 4 * time.Second}
	}})
	var up atomic.Bool
	recv := newReceiver(t)
	recv.respond = func(*http.Request) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	// Without the breaker each of the 10 deliveries would be tried every
	// second while the endpoint is down.
	projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "breaker", RetryPolicy: linearPolicy(1, 30)})
	c := s.clients(key)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, TimeoutSeconds: 2})
	send := func() string { return sendEvent(t, c, projectID, ep.GetId(), "breaker", `{}`) }
	var ids []string
	for range 4 {
		ids = append(ids, send())
	}
	// Four failures of four: the circuit opens (once the deliverer has
	// read the fourth answer).
	recv.waitFor(t, "the first four attempts", func(r []received) bool { return len(r) >= 4 })
	time.Sleep(200 * time.Millisecond)
	for range 6 {
		ids = append(ids, send())
	}
	const down = 8 * time.Second
	time.Sleep(down)
	failing := len(recv.requests())
	// 4 attempts, then a probe after 2 s and after 4 more (one more if a
	// delay tier rounds late): far from the ~80 of ten deliveries retried
	// each second.
	if failing > 8 {
		t.Fatalf("the receiver got %d requests in %v while down: the circuit did not hold them back", failing, down)
	}
	up.Store(true)
	for _, id := range ids {
		d := waitDelivery(t, c, projectID, id, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
		got := recv.byEvent(id)
		if int(d.GetAttempts()) != len(got) {
			t.Fatalf("delivery of %s lists %d attempts; the receiver got %d requests for it", id, d.GetAttempts(), len(got))
		}
	}
	if n := len(recv.requests()); n > failing+len(ids) {
		t.Fatalf("receiver got %d requests: %d while down and %d after, want at most one per delivery after", n, failing, n-failing)
	}
}

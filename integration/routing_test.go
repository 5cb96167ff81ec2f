package integration

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// routed is a project with named endpoints, each at its own path of one
// receiver, for telling apart who got what.
type routed struct {
	s         *stack
	recv      *receiver
	projectID string
	key       string
	c         clients
	endpoints map[string]*registryv1.Endpoint
}

func newRouted(t *testing.T, s *stack) *routed {
	projectID, key := s.project(t, nil)
	return &routed{s: s, recv: newReceiver(t), projectID: projectID, key: key, c: s.clients(key), endpoints: map[string]*registryv1.Endpoint{}}
}

func (r *routed) endpoint(t *testing.T, name, owner string, subs ...*registryv1.Filter) {
	t.Helper()
	ep := r.s.endpoint(t, r.key, &registryv1.CreateEndpointRequest{ProjectId: r.projectID, Url: r.recv.URL + "/" + name, OwnerId: owner, Name: name})
	r.endpoints[name] = ep
	for i, f := range subs {
		_, err := r.c.registry.CreateSubscription(context.Background(), connect.NewRequest(&registryv1.CreateSubscriptionRequest{
			ProjectId: r.projectID, EndpointId: ep.GetId(), Name: fmt.Sprintf("%s-%d", name, i), Filter: f}))
		if err != nil {
			t.Fatalf("subscription of %s: %v", name, err)
		}
	}
}

// deliveredTo waits until the event's deliveries are final and returns the
// names of the endpoints that received it, sorted, checking that each got
// it once.
func (r *routed) deliveredTo(t *testing.T, eventID string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := r.c.status.ListDeliveries(context.Background(), connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: r.projectID, EventId: eventID}))
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, d := range resp.Msg.GetDeliveries() {
			if d.GetStatus() == statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS {
				done++
			}
		}
		if done == want && len(resp.Msg.GetDeliveries()) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s: %d of %d deliveries done: %v", eventID, done, want, resp.Msg.GetDeliveries())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var names []string
	for _, g := range r.recv.byEvent(eventID) {
		names = append(names, strings.TrimPrefix(g.header.Get("X-Hookmesh-Test-Path"), "/"))
	}
	sort.Strings(names)
	return names
}

func TestRoutingShapesAndFilters(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{})
			r := newRouted(t, s)
			r.recv.pathHeader = true
			// acme's endpoints: all events; invoices only; large EUR
			// invoices (body filter, nested path, $or); none of invoice.*.
			r.endpoint(t, "acme-all", "acme")
			r.endpoint(t, "acme-invoices", "acme", &registryv1.Filter{EventTypes: []string{"invoice.*"}})
			r.endpoint(t, "acme-big-eur", "acme", &registryv1.Filter{EventTypes: []string{"invoice.paid"}, Body: `{
				"amount":   {"$gte": 1000},
				"customer": {"$or": [{"address.country": "FR"}, {"tier": "gold"}]}}`})
			r.endpoint(t, "acme-users", "acme", &registryv1.Filter{EventTypes: []string{"user.created"}})
			// Two matching subscriptions still make one delivery.
			r.endpoint(t, "acme-twice", "acme", &registryv1.Filter{EventTypes: []string{"*"}}, &registryv1.Filter{EventTypes: []string{"invoice.paid"}})
			// A header filter.
			r.endpoint(t, "acme-eu-header", "acme", &registryv1.Filter{Headers: `{"X-Region": "eu"}`})
			r.endpoint(t, "globex-all", "globex")

			send := func(shape, eventType, data string, headers map[string]string, extra ...string) string {
				t.Helper()
				ctx := context.Background()
				var ev *ingestv1.Event
				switch shape {
				case "fanout":
					req := connect.NewRequest(&ingestv1.CreateFanoutEventRequest{ProjectId: r.projectID, OwnerId: "acme", EventType: eventType, Data: data, CustomHeaders: headers})
					resp, err := r.c.ingest.CreateFanoutEvent(ctx, req)
					if err != nil {
						t.Fatal(err)
					}
					ev = resp.Msg.GetEvent()
				case "broadcast":
					resp, err := r.c.ingest.CreateBroadcastEvent(ctx, connect.NewRequest(&ingestv1.CreateBroadcastEventRequest{ProjectId: r.projectID, EventType: eventType, Data: data, CustomHeaders: headers}))
					if err != nil {
						t.Fatal(err)
					}
					ev = resp.Msg.GetEvent()
				default: // single, to the endpoint named by extra[0], maybe with the broadcast header
					req := connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: r.projectID, EndpointId: r.endpoints[extra[0]].GetId(), EventType: eventType, Data: data, CustomHeaders: headers})
					if len(extra) > 1 {
						req.Header().Set("X-Convoy-Message-Type", "broadcast")
					}
					resp, err := r.c.ingest.CreateEvent(ctx, req)
					if err != nil {
						t.Fatal(err)
					}
					ev = resp.Msg.GetEvent()
				}
				return ev.GetId()
			}
			bigFR := `{"amount": 5000, "customer": {"address": {"country": "FR"}, "tier": "silver"}}`
			smallFR := `{"amount": 10, "customer": {"address": {"country": "FR"}}}`
			bigGold := `{"amount": 12345678901234567890, "customer": {"tier": "gold", "address": {"country": "US"}}}`
			cases := []struct {
				name string
				id   func() string
				want []string
			}{
				{"fan-out of a large FR invoice", func() string { return send("fanout", "invoice.paid", bigFR, nil) },
					[]string{"acme-all", "acme-big-eur", "acme-invoices", "acme-twice"}},
				{"fan-out of a small invoice", func() string { return send("fanout", "invoice.paid", smallFR, nil) },
					[]string{"acme-all", "acme-invoices", "acme-twice"}},
				{"fan-out of a gold customer's invoice with the EU header", func() string {
					return send("fanout", "invoice.paid", bigGold, map[string]string{"X-Region": "eu"})
				}, []string{"acme-all", "acme-big-eur", "acme-eu-header", "acme-invoices", "acme-twice"}},
				{"fan-out of a user event", func() string { return send("fanout", "user.created", `{}`, nil) },
					[]string{"acme-all", "acme-twice", "acme-users"}},
				{"broadcast of a user event", func() string { return send("broadcast", "user.created", `{}`, nil) },
					[]string{"acme-all", "acme-twice", "acme-users", "globex-all"}},
				{"broadcast excludes by event type", func() string { return send("broadcast", "invoice.refunded", `{}`, map[string]string{"x-region": "EU"}) },
					[]string{"acme-all", "acme-invoices", "acme-twice", "globex-all"}},
				{"single endpoint honours its subscription", func() string { return send("single", "user.created", `{}`, nil, "acme-invoices") },
					nil},
				{"single endpoint without subscription", func() string { return send("single", "anything.at.all", `{}`, nil, "globex-all") },
					[]string{"globex-all"}},
				{"broadcast header on a single-endpoint event", func() string { return send("single", "user.created", `{}`, nil, "globex-all", "broadcast") },
					[]string{"acme-all", "acme-twice", "acme-users", "globex-all"}},
			}
			var none []string
			for _, tc := range cases {
				id := tc.id()
				if len(tc.want) == 0 {
					// Checked at the end, once the events sent after it
					// have all been routed and delivered.
					none = append(none, id)
					continue
				}
				got := r.deliveredTo(t, id, len(tc.want))
				if strings.Join(got, ",") != strings.Join(tc.want, ",") {
					t.Errorf("%s: delivered to %v, want %v", tc.name, got, tc.want)
				}
			}
			for _, id := range none {
				if got := r.deliveredTo(t, id, 0); len(got) != 0 {
					t.Errorf("event %s should reach no endpoint, reached %v", id, got)
				}
			}
		})
	}
}

// TestIdempotencyRace sends one idempotency key 20 times at once: exactly
// one event is delivered, the other 19 are stored as its duplicates.
func TestIdempotencyRace(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	r := newRouted(t, s)
	r.endpoint(t, "only", "")
	const n = 20
	events := make([]*ingestv1.Event, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			resp, err := r.c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
				ProjectId: r.projectID, EndpointId: r.endpoints["only"].GetId(), EventType: "race", Data: fmt.Sprintf(`{"i":%d}`, i), IdempotencyKey: "same-key"}))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			events[i] = resp.Msg.GetEvent()
		})
	}
	close(start)
	wg.Wait()
	var originals []string
	for _, ev := range events {
		if ev != nil && !ev.GetIsDuplicate() {
			originals = append(originals, ev.GetId())
		}
	}
	if len(originals) != 1 {
		t.Fatalf("%d originals, want 1: %v", len(originals), originals)
	}
	for _, ev := range events {
		if ev.GetIsDuplicate() && ev.GetDuplicateOf() != originals[0] {
			t.Fatalf("duplicate %s names %s, want %s", ev.GetId(), ev.GetDuplicateOf(), originals[0])
		}
	}
	r.deliveredTo(t, originals[0], 1)
	list, err := r.c.ingest.ListEvents(context.Background(), connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: r.projectID, IdempotencyKey: "same-key"}))
	if err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, ev := range list.Msg.GetEvents() {
		if ev.GetIsDuplicate() {
			dups++
		}
	}
	if len(list.Msg.GetEvents()) != n || dups != n-1 {
		t.Fatalf("stored %d events with %d duplicates, want %d and %d", len(list.Msg.GetEvents()), dups, n, n-1)
	}
	// Nothing but the original was delivered.
	time.Sleep(300 * time.Millisecond)
	if got := len(r.recv.requests()); got != 1 {
		t.Fatalf("receiver got %d requests, want 1", got)
	}
}

// TestSubscriptionChangeReachesEveryRouter changes a subscription while two
// router replicas have it cached (for a minute, in tests): within a second
// both route by the new filter, which only the change notification on the
// bus can explain.
func TestSubscriptionChangeReachesEveryRouter(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeSeparate, stackOptions{routers: 2})
	r := newRouted(t, s)
	r.endpoint(t, "ep", "owner", &registryv1.Filter{EventTypes: []string{"a.*"}})
	ctx := context.Background()
	sendBatch := func(eventType string) []string {
		var ids []string
		for i := range 10 {
			resp, err := r.c.ingest.CreateFanoutEvent(ctx, connect.NewRequest(&ingestv1.CreateFanoutEventRequest{
				ProjectId: r.projectID, OwnerId: "owner", EventType: eventType, Data: fmt.Sprintf(`{"i":%d}`, i)}))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, resp.Msg.GetEvent().GetId())
		}
		return ids
	}
	// Both routers take events from the queue in turn, so both cache the
	// subscription.
	for _, id := range sendBatch("a.created") {
		r.deliveredTo(t, id, 1)
	}
	subs, err := r.c.registry.ListSubscriptions(ctx, connect.NewRequest(&registryv1.ListSubscriptionsRequest{ProjectId: r.projectID}))
	if err != nil || len(subs.Msg.GetSubscriptions()) != 1 {
		t.Fatalf("subscriptions: %v %v", subs, err)
	}
	sub := subs.Msg.GetSubscriptions()[0]
	if _, err := r.c.registry.UpdateSubscription(ctx, connect.NewRequest(&registryv1.UpdateSubscriptionRequest{
		ProjectId: r.projectID, SubscriptionId: sub.GetId(), Name: sub.GetName(), Filter: &registryv1.Filter{EventTypes: []string{"b.*"}}})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	stale := sendBatch("a.created")
	for _, id := range sendBatch("b.created") {
		r.deliveredTo(t, id, 1)
	}
	for _, id := range stale {
		if got := r.deliveredTo(t, id, 0); len(got) != 0 {
			t.Fatalf("event %s was routed by the old subscription", id)
		}
	}
}

// TestRESTShapes sends the three shapes and the broadcast header through
// the Convoy-compatible REST paths.
func TestRESTShapes(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	r := newRouted(t, s)
	r.recv.pathHeader = true
	r.endpoint(t, "a1", "alice")
	r.endpoint(t, "a2", "alice")
	r.endpoint(t, "b1", "bob", &registryv1.Filter{EventTypes: []string{"user.*"}})
	base := s.ingestURL + "/api/v1/projects/" + r.projectID + "/events"
	post := func(path, body string, header http.Header) string {
		t.Helper()
		status, out := postREST(t, base+path, r.key, body, header)
		return restEventID(t, status, out)
	}
	broadcastHeader := http.Header{"X-Convoy-Message-Type": []string{"broadcast"}}
	for _, tc := range []struct {
		name, path, body string
		header           http.Header
		want             []string
	}{
		{"single", "", fmt.Sprintf(`{"endpoint_id": %q, "event_type": "order.paid", "data": {"n": 1}}`, r.endpoints["a2"].GetId()), nil, []string{"a2"}},
		{"fan-out", "/fanout", `{"owner_id": "alice", "event_type": "order.paid", "data": [1, 2]}`, nil, []string{"a1", "a2"}},
		{"broadcast", "/broadcast", `{"event_type": "user.created", "data": "text"}`, nil, []string{"a1", "a2", "b1"}},
		{"broadcast excluding by type", "/broadcast", `{"event_type": "order.paid", "data": null}`, nil, []string{"a1", "a2"}},
		{"header on a fan-out", "/fanout", `{"owner_id": "alice", "event_type": "user.deleted", "data": {}}`, broadcastHeader, []string{"a1", "a2", "b1"}},
		// Fields of Convoy's bodies that hookmesh does not use are accepted.
		{"single with Convoy's app_id", "", fmt.Sprintf(`{"app_id": "app_1", "endpoint_id": %q, "event_type": "order.paid", "data": {}}`, r.endpoints["a1"].GetId()), nil, []string{"a1"}},
		{"broadcast with Convoy's acknowledged_at", "/broadcast", `{"event_type": "user.x", "data": 1, "acknowledged_at": "2026-01-02T03:04:05Z"}`, nil, []string{"a1", "a2", "b1"}},
	} {
		id := post(tc.path, tc.body, tc.header)
		if got := r.deliveredTo(t, id, len(tc.want)); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: delivered to %v, want %v", tc.name, got, tc.want)
		}
	}
	if status, out := postREST(t, base+"/fanout", r.key, `{"event_type": "x", "data": {}}`, nil); status != 400 || !strings.Contains(out, "owner_id") {
		t.Fatalf("fan-out without owner: %d %s", status, out)
	}
}

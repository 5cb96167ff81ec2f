package integration

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookmesh/hookmesh/app"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// payload has what re-encoding would break: an integer beyond 2^53, keys
// out of order, unicode raw and escaped, and odd whitespace.
const payload = "{\n  \"zeta\": 12345678901234567890123,\t\"alpha\" : [1.50, -0, 1e400],\n  \"name\": \"Zoë \\u00e9\\ud83d\\ude00 😀\", \"nested\": {\"b\":null,\"a\":true}  }"

// waitDelivery polls the status service until the event's delivery reaches
// want, and returns it.
func waitDelivery(tb testing.TB, c clients, projectID, eventID string, want statusv1.DeliveryStatus) *statusv1.Delivery {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []*statusv1.Delivery
	for time.Now().Before(deadline) {
		resp, err := c.status.ListDeliveries(context.Background(), connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID, EventId: eventID}))
		if err != nil {
			tb.Fatalf("list deliveries: %v", err)
		}
		last = resp.Msg.GetDeliveries()
		if len(last) == 1 && last[0].GetStatus() == want {
			return last[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("delivery of %s did not reach %s: %v", eventID, want, last)
	return nil
}

// sendEvent creates an event for one endpoint and returns its id.
func sendEvent(tb testing.TB, c clients, projectID, endpointID, eventType, data string) string {
	tb.Helper()
	resp, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
		ProjectId: projectID, EndpointId: endpointID, EventType: eventType, Data: data}))
	if err != nil {
		tb.Fatalf("create event: %v", err)
	}
	return resp.Msg.GetEvent().GetId()
}

func TestEventDeliveredEndToEnd(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{})
			recv := newReceiver(t)
			projectID, key := s.project(t, nil)
			ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{
				ProjectId: projectID, Url: recv.URL + "/hooks", TimeoutSeconds: 5,
				CustomHeaders: map[string]string{"X-Team": "payments"},
			})
			c := s.clients(key)
			resp, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
				ProjectId: projectID, EndpointId: ep.GetId(), EventType: "invoice.paid", Data: payload,
				CustomHeaders: map[string]string{"X-Request-Origin": "billing"}, IdempotencyKey: "idem-1",
			}))
			if err != nil {
				t.Fatalf("create event: %v", err)
			}
			ev := resp.Msg.GetEvent()
			if ev.GetData() != payload || ev.GetIsDuplicate() {
				t.Fatalf("event as stored: %v", ev)
			}
			got := recv.waitFor(t, "the event", func(r []received) bool { return len(r) >= 1 })[0]

			if !bytes.Equal(got.body, []byte(payload)) {
				t.Fatalf("body changed in transit:\n got %q\nwant %q", got.body, payload)
			}
			h := got.header
			// Standard Webhooks, verified by its own library.
			wh, err := standardwebhooks.NewWebhook(ep.GetSecret())
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(got.body, h); err != nil {
				t.Fatalf("standard webhooks signature: %v", err)
			}
			// Convoy-style: hex HMAC-SHA256 of the body with the secret.
			mac := hmac.New(sha256.New, []byte(ep.GetSecret()))
			mac.Write(got.body)
			if h.Get("X-Hookmesh-Signature") != hex.EncodeToString(mac.Sum(nil)) {
				t.Fatalf("X-Hookmesh-Signature = %q, want the hex HMAC of the body", h.Get("X-Hookmesh-Signature"))
			}
			deliveryID := h.Get("X-Hookmesh-Delivery-Id")
			for name, want := range map[string]string{
				"Content-Type":               "application/json",
				"Webhook-Id":                 deliveryID,
				"X-Hookmesh-Event-Type":      "invoice.paid",
				"X-Hookmesh-Event-Id":        ev.GetId(),
				"X-Hookmesh-Attempt":         "1",
				"X-Hookmesh-Idempotency-Key": "idem-1",
				"X-Team":                     "payments",
				"X-Request-Origin":           "billing",
			} {
				if h.Get(name) != want {
					t.Errorf("header %s = %q, want %q", name, h.Get(name), want)
				}
			}
			if !strings.HasPrefix(h.Get("Traceparent"), "00-") {
				t.Errorf("no traceparent: %q", h.Get("Traceparent"))
			}

			d := waitDelivery(t, c, projectID, ev.GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
			if d.GetId() != deliveryID || d.GetEndpointId() != ep.GetId() || d.GetAttempts() != 1 || d.GetLastStatusCode() != 200 {
				t.Fatalf("delivery = %v", d)
			}
			one, err := c.status.GetDelivery(context.Background(), connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: projectID, DeliveryId: deliveryID}))
			if err != nil || one.Msg.GetDelivery().GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS {
				t.Fatalf("get delivery: %v %v", one, err)
			}
			attempts, err := c.status.ListAttempts(context.Background(), connect.NewRequest(&statusv1.ListAttemptsRequest{ProjectId: projectID, DeliveryId: deliveryID}))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(attempts.Msg.GetAttempts()); n != 1 {
				t.Fatalf("attempts = %d, want 1", n)
			}
			a := attempts.Msg.GetAttempts()[0]
			if a.GetStatusCode() != 200 || a.GetResponseBody() != `{"ok":true}` || a.GetUrl() != recv.URL+"/hooks" || a.GetRemoteIp() == "" {
				t.Fatalf("attempt = %v", a)
			}
			if len(recv.requests()) != 1 {
				t.Fatalf("receiver got %d requests, want 1", len(recv.requests()))
			}
		})
	}
}

func TestRESTEventWithAdvancedSignature(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "rest", Signature: &registryv1.SignatureSettings{Advanced: true, Header: "X-Acme-Signature"}})
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, Secret: "my-own-secret-123"})

	body := fmt.Sprintf(`{"endpoint_id":%q,"event_type":"user.created","data":%s,"custom_headers":{"X-Trace":"abc"},"idempotency_key":"rest-1"}`, ep.GetId(), payload)
	status, out := postREST(t, s.ingestURL+"/api/v1/projects/"+projectID+"/events", key, body, nil)
	if status != 201 {
		t.Fatalf("REST ingest: %d %s", status, out)
	}
	got := recv.waitFor(t, "the event", func(r []received) bool { return len(r) == 1 })[0]
	if !bytes.Equal(got.body, []byte(payload)) {
		t.Fatalf("body changed in transit:\n got %q\nwant %q", got.body, payload)
	}
	// Advanced form: t=<unix>,v1=<hex HMAC of "<t>,<body>">.
	sig := got.header.Get("X-Acme-Signature")
	parts := strings.Split(sig, ",")
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "t=") || !strings.HasPrefix(parts[1], "v1=") {
		t.Fatalf("advanced signature %q", sig)
	}
	ts := strings.TrimPrefix(parts[0], "t=")
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		t.Fatalf("timestamp %q", ts)
	}
	mac := hmac.New(sha256.New, []byte("my-own-secret-123"))
	mac.Write([]byte(ts + ","))
	mac.Write(got.body)
	if strings.TrimPrefix(parts[1], "v1=") != hex.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("advanced signature does not verify: %q", sig)
	}
	if got.header.Get("X-Trace") != "abc" {
		t.Fatalf("custom header lost")
	}
}

// TestPrivateDestinationsRefusedByDefault runs hookmesh without
// HOOKMESH_ALLOW_PRIVATE_NETWORKS: a webhook to a loopback receiver is never
// sent, and the delivery fails saying why.
func TestPrivateDestinationsRefusedByDefault(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{configure: func(c *app.Config) { c.AllowPrivateNetworks = false }})
	recv := newReceiver(t)
	projectID, key := s.project(t, singleAttempt)
	c := s.clients(key)
	for _, url := range []string{recv.URL, strings.Replace(recv.URL, "127.0.0.1", "localhost", 1), strings.Replace(recv.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1)} {
		ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: url})
		resp, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
			ProjectId: projectID, EndpointId: ep.GetId(), EventType: "ssrf", Data: `{}`}))
		if err != nil {
			t.Fatal(err)
		}
		d := waitDelivery(t, c, projectID, resp.Msg.GetEvent().GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
		if !strings.Contains(d.GetLastError(), "private or reserved range") {
			t.Errorf("%s: delivery failed with %q, want the guard's reason", url, d.GetLastError())
		}
	}
	if n := len(recv.requests()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
}

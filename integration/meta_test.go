package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hookmesh/hookmesh/app"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// metaEvent is a meta event as its receiver reads it.
type metaEvent struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
	header    http.Header
}

// metaEvents parses every request of the meta receiver, checking that each
// verifies with the Standard Webhooks library under one of secrets and is
// typed as its header says.
func metaEvents(t *testing.T, got []received, secrets ...string) []metaEvent {
	t.Helper()
	out := make([]metaEvent, 0, len(got))
	for _, r := range got {
		verified := false
		for _, s := range secrets {
			wh, err := standardwebhooks.NewWebhook(s)
			if err != nil {
				t.Fatal(err)
			}
			verified = verified || wh.Verify(r.body, r.header) == nil
		}
		if !verified {
			t.Fatalf("meta event %s does not verify with its secret: %s", r.header.Get("Webhook-Id"), r.body)
		}
		var ev metaEvent
		dec := json.NewDecoder(bytes.NewReader(r.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil || ev.Type == "" || ev.Timestamp.IsZero() || ev.Data == nil {
			t.Fatalf("meta event body %s: %v", r.body, err)
		}
		if h := r.header.Get("X-Hookmesh-Event-Type"); h != ev.Type {
			t.Fatalf("meta event of type %q sent with X-Hookmesh-Event-Type %q", ev.Type, h)
		}
		ev.header = r.header
		out = append(out, ev)
	}
	return out
}

// waitMeta waits until the meta receiver got an event of type typ whose
// data has every key and value of want, and returns it.
func waitMeta(t *testing.T, recv *receiver, secrets []string, typ string, want map[string]any) metaEvent {
	t.Helper()
	var found metaEvent
	recv.waitFor(t, "meta event "+typ, func(got []received) bool {
		for _, ev := range metaEvents(t, got, secrets...) {
			if ev.Type != typ {
				continue
			}
			match := true
			for k, v := range want {
				match = match && ev.Data[k] == v
			}
			if match {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// TestMetaEvents sets a project's meta events and checks that each type
// arrives signed (verified with the Standard Webhooks library) when its
// change happens: endpoint created, updated, disabled (410, failures,
// manual), enabled and deleted; a delivery failing, failed and recovered;
// a circuit opened and closed. Then it checks the rule that meta events are
// never about meta deliveries: a failing meta endpoint fails its delivery,
// which is listed and retried like any, and no meta event is about it.
func TestMetaEvents(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{configure: func(c *app.Config) {
				// A circuit opens after two failed attempts in a row and
				// probes after a second.
				c.Deliverer.Breaker.FailureRatio, c.Deliverer.Breaker.MinRequests, c.Deliverer.Breaker.Window, c.Deliverer.Breaker.Cooldown = 0.9, 2, time.Minute, time.Second
			}})
			ctx := context.Background()
			projectID, key := s.project(t, &registryv1.CreateProjectRequest{Name: "meta", RetryPolicy: linearPolicy(1, 3),
				DisableEndpointOnFailure: true, DisableEndpointAfterFailures: 3})
			c := s.clients(key)
			metaRecv := newReceiver(t)
			var metaDown atomic.Bool
			metaRecv.respond = func(*http.Request) int {
				if metaDown.Load() {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			}

			// Bad settings are refused naming what is wrong.
			_, err := c.registry.SetMetaEvents(ctx, connect.NewRequest(&registryv1.SetMetaEventsRequest{ProjectId: projectID, Url: metaRecv.URL,
				EventTypes: []string{"delivery.failed", "endpoint.exploded"}, Enabled: true}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), `event_types[1]`) || !strings.Contains(err.Error(), "endpoint.exploded") {
				t.Fatalf("unknown meta event type: %v", err)
			}
			_, err = c.registry.SetMetaEvents(ctx, connect.NewRequest(&registryv1.SetMetaEventsRequest{ProjectId: projectID, Url: "ftp://example.com/x", Enabled: true}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "url") {
				t.Fatalf("bad meta events url: %v", err)
			}
			if _, err := c.registry.RotateMetaEventsSecret(ctx, connect.NewRequest(&registryv1.RotateMetaEventsSecretRequest{ProjectId: projectID})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
				t.Fatalf("rotating the secret of unset meta events: %v", err)
			}

			// An endpoint the deliverers know from before meta events were
			// set: setting them must reach what they cached.
			var warmCalls atomic.Int32
			warm := newReceiver(t)
			warm.respond = func(*http.Request) int {
				if warmCalls.Add(1) == 1 {
					return http.StatusOK
				}
				return http.StatusBadRequest
			}
			w := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: warm.URL})
			waitDelivery(t, c, projectID, sendEvent(t, c, projectID, w.GetId(), "warm.up", `{}`), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)

			set, err := c.registry.SetMetaEvents(ctx, connect.NewRequest(&registryv1.SetMetaEventsRequest{ProjectId: projectID, Url: metaRecv.URL,
				Enabled: true, AttemptFailingAfter: 2}))
			if err != nil {
				t.Fatal(err)
			}
			secret, metaEndpoint := set.Msg.GetMetaEvents().GetSecret(), set.Msg.GetMetaEvents().GetEndpointId()
			if !strings.HasPrefix(secret, "whsec_") || metaEndpoint == "" {
				t.Fatalf("SetMetaEvents: %v", set.Msg)
			}
			// The secret is shown once and sealed at rest.
			got, err := c.registry.GetProject(ctx, connect.NewRequest(&registryv1.GetProjectRequest{ProjectId: projectID}))
			if err != nil || got.Msg.GetProject().GetMetaEvents().GetSecret() != "" || got.Msg.GetProject().GetMetaEvents().GetUrl() != metaRecv.URL ||
				got.Msg.GetProject().GetMetaEvents().GetAttemptFailingAfter() != 2 {
				t.Fatalf("GetProject: %v %v", got, err)
			}
			raw, err := testenv.Client(t).Database(s.cfg.DatabasePrefix+"_registry").Collection("projects").FindOne(ctx, bson.D{{Key: "_id", Value: projectID}}).Raw()
			if err != nil || bytes.Contains(raw, []byte(strings.TrimPrefix(secret, "whsec_"))) {
				t.Fatalf("the meta events secret is stored in clear (%v)", err)
			}
			// Setting them again keeps the secret.
			if again, err := c.registry.SetMetaEvents(ctx, connect.NewRequest(&registryv1.SetMetaEventsRequest{ProjectId: projectID, Url: metaRecv.URL,
				Enabled: true, AttemptFailingAfter: 2})); err != nil || again.Msg.GetMetaEvents().GetSecret() != "" {
				t.Fatalf("SetMetaEvents again: %v %v", again, err)
			}
			// Nobody but hookmesh sends to the meta endpoint.
			if _, err := c.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: metaEndpoint,
				EventType: "delivery.failed", Data: `{}`})); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("an event sent to the meta endpoint: %v", err)
			}
			secrets := []string{secret}
			evW := sendEvent(t, c, projectID, w.GetId(), "warm.up", `{}`)
			waitMeta(t, metaRecv, secrets, "delivery.failed", map[string]any{"event_id": evW, "endpoint_id": w.GetId()})
			waitMeta(t, metaRecv, secrets, "endpoint.disabled", map[string]any{"endpoint_id": w.GetId(), "reason": "failures"})

			// Endpoint lifecycle.
			var flakyCalls atomic.Int32
			flaky := newReceiver(t)
			flaky.respond = func(*http.Request) int {
				if flakyCalls.Add(1) <= 2 {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			}
			a := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: flaky.URL, OwnerId: "customer-1", Name: "flaky"})
			created := waitMeta(t, metaRecv, secrets, "endpoint.created", map[string]any{"endpoint_id": a.GetId()})
			if created.Data["url"] != flaky.URL || created.Data["owner_id"] != "customer-1" || created.Data["project_id"] != projectID || created.Data["status"] != "active" {
				t.Fatalf("endpoint.created: %v", created.Data)
			}
			name := "renamed"
			if _, err := c.registry.UpdateEndpoint(ctx, connect.NewRequest(&registryv1.UpdateEndpointRequest{ProjectId: projectID, EndpointId: a.GetId(), Name: &name})); err != nil {
				t.Fatal(err)
			}
			waitMeta(t, metaRecv, secrets, "endpoint.updated", map[string]any{"endpoint_id": a.GetId(), "name": "renamed"})

			// A delivery failing twice, then succeeding: attempt_failing at
			// the second attempt, the circuit opening and closing, and
			// recovered.
			evA := sendEvent(t, c, projectID, a.GetId(), "invoice.paid", `{"n":1}`)
			dA := waitDelivery(t, c, projectID, evA, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
			failing := waitMeta(t, metaRecv, secrets, "delivery.attempt_failing", map[string]any{"delivery_id": dA.GetId()})
			if failing.Data["attempt"] != 2.0 || failing.Data["status_code"] != 500.0 || failing.Data["event_id"] != evA || failing.Data["event_type"] != "invoice.paid" {
				t.Fatalf("delivery.attempt_failing: %v", failing.Data)
			}
			if rec := waitMeta(t, metaRecv, secrets, "delivery.recovered", map[string]any{"delivery_id": dA.GetId()}); rec.Data["attempt"] != 3.0 {
				t.Fatalf("delivery.recovered: %v", rec.Data)
			}
			opened := waitMeta(t, metaRecv, secrets, "endpoint.circuit_opened", map[string]any{"endpoint_id": a.GetId()})
			if opened.Data["cooldown_seconds"] != 1.0 {
				t.Fatalf("endpoint.circuit_opened: %v", opened.Data)
			}
			waitMeta(t, metaRecv, secrets, "endpoint.circuit_closed", map[string]any{"endpoint_id": a.GetId()})

			// A delivery failing every attempt: failed, and the endpoint
			// disabled for its run of failures.
			refusing := newReceiver(t)
			refusing.respond = func(*http.Request) int { return http.StatusBadRequest }
			b := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: refusing.URL})
			evB := sendEvent(t, c, projectID, b.GetId(), "invoice.paid", `{"n":2}`)
			dB := waitDelivery(t, c, projectID, evB, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
			if f := waitMeta(t, metaRecv, secrets, "delivery.failed", map[string]any{"delivery_id": dB.GetId()}); f.Data["attempt"] != 3.0 || f.Data["status_code"] != 400.0 {
				t.Fatalf("delivery.failed: %v", f.Data)
			}
			waitMeta(t, metaRecv, secrets, "endpoint.disabled", map[string]any{"endpoint_id": b.GetId(), "reason": "failures", "status": "disabled"})
			if _, err := c.registry.DeleteEndpoint(ctx, connect.NewRequest(&registryv1.DeleteEndpointRequest{ProjectId: projectID, EndpointId: b.GetId()})); err != nil {
				t.Fatal(err)
			}
			waitMeta(t, metaRecv, secrets, "endpoint.deleted", map[string]any{"endpoint_id": b.GetId(), "status": "deleted"})

			// 410 Gone disables; activating enables; pausing is a manual
			// disabling.
			gone := newReceiver(t)
			gone.respond = func(*http.Request) int { return http.StatusGone }
			cEp := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: gone.URL})
			sendEvent(t, c, projectID, cEp.GetId(), "invoice.paid", `{"n":3}`)
			waitMeta(t, metaRecv, secrets, "endpoint.disabled", map[string]any{"endpoint_id": cEp.GetId(), "reason": "gone"})
			if _, err := c.registry.ActivateEndpoint(ctx, connect.NewRequest(&registryv1.ActivateEndpointRequest{ProjectId: projectID, EndpointId: cEp.GetId()})); err != nil {
				t.Fatal(err)
			}
			waitMeta(t, metaRecv, secrets, "endpoint.enabled", map[string]any{"endpoint_id": cEp.GetId(), "status": "active"})
			if _, err := c.registry.PauseEndpoint(ctx, connect.NewRequest(&registryv1.PauseEndpointRequest{ProjectId: projectID, EndpointId: cEp.GetId()})); err != nil {
				t.Fatal(err)
			}
			waitMeta(t, metaRecv, secrets, "endpoint.disabled", map[string]any{"endpoint_id": cEp.GetId(), "reason": "manual", "status": "paused"})

			// A failing meta endpoint: its delivery ends FAILED like any
			// (after its circuit opens, too), is listed under the meta
			// endpoint and retried by hand, and causes no meta event.
			metaDown.Store(true)
			before := len(metaRecv.requests())
			if _, err := c.registry.UpdateEndpoint(ctx, connect.NewRequest(&registryv1.UpdateEndpointRequest{ProjectId: projectID, EndpointId: a.GetId(), Name: &name})); err != nil {
				t.Fatal(err)
			}
			var metaFailed *statusv1.Delivery
			waitTrue(t, "the meta delivery to fail", func() bool {
				resp, err := c.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID, EndpointId: metaEndpoint,
					Statuses: []statusv1.DeliveryStatus{statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED}}))
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range resp.Msg.GetDeliveries() {
					if d.GetEventType() == "endpoint.updated" {
						metaFailed = d
					}
				}
				return metaFailed != nil
			})
			if metaFailed.GetAttempts() != 3 || metaFailed.GetLastStatusCode() != 500 {
				t.Fatalf("failed meta delivery: %v", metaFailed)
			}
			metaDown.Store(false)
			// A rotated secret signs what follows.
			rot, err := c.registry.RotateMetaEventsSecret(ctx, connect.NewRequest(&registryv1.RotateMetaEventsSecretRequest{ProjectId: projectID}))
			if err != nil || !strings.HasPrefix(rot.Msg.GetMetaEvents().GetSecret(), "whsec_") || rot.Msg.GetMetaEvents().GetSecret() == secret {
				t.Fatalf("RotateMetaEventsSecret: %v %v", rot, err)
			}
			if _, err := c.status.RetryDelivery(ctx, connect.NewRequest(&statusv1.RetryDeliveryRequest{ProjectId: projectID, DeliveryId: metaFailed.GetId()})); err != nil {
				t.Fatal(err)
			}
			retried := waitDelivery(t, c, projectID, metaFailed.GetEventId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
			if retried.GetAttempts() != 4 {
				t.Fatalf("retried meta delivery: %v", retried)
			}
			newSecret := rot.Msg.GetMetaEvents().GetSecret()
			var last received
			for _, r := range metaRecv.requests() {
				if r.header.Get("Webhook-Id") == metaFailed.GetId() && r.header.Get("X-Hookmesh-Attempt") == "4" {
					last = r
				}
			}
			if last.body == nil || len(metaEvents(t, []received{last}, newSecret)) != 1 {
				t.Fatalf("the retried meta event: %s %v", last.body, last.header)
			}
			if wh, _ := standardwebhooks.NewWebhook(secret); wh.Verify(last.body, last.header) == nil {
				t.Fatal("a meta event after the rotation verifies with the old secret")
			}
			// A last meta event, after all of the above: once it arrives,
			// none of what came before may be about the meta endpoint.
			secrets = []string{secret, newSecret}
			if _, err := c.registry.DeleteEndpoint(ctx, connect.NewRequest(&registryv1.DeleteEndpointRequest{ProjectId: projectID, EndpointId: cEp.GetId()})); err != nil {
				t.Fatal(err)
			}
			waitMeta(t, metaRecv, secrets, "endpoint.deleted", map[string]any{"endpoint_id": cEp.GetId()})
			for _, ev := range metaEvents(t, metaRecv.requests()[before:], secrets...) {
				if ev.Data["endpoint_id"] == metaEndpoint {
					t.Fatalf("a meta event about the meta endpoint: %s %v", ev.Type, ev.Data)
				}
			}
			stored, err := c.ingest.ListEvents(ctx, connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: projectID, EndpointId: metaEndpoint, PageSize: 100}))
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range stored.Msg.GetEvents() {
				if strings.Contains(ev.GetData(), metaEndpoint) {
					t.Fatalf("a stored meta event about the meta endpoint: %s", ev.GetData())
				}
			}
			if len(stored.Msg.GetEvents()) < 12 {
				t.Fatalf("%d meta events stored, want every one sent", len(stored.Msg.GetEvents()))
			}
		})
	}
}

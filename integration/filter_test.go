package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// restEventID returns the event id of a REST answer (Convoy's envelope).
func restEventID(tb testing.TB, status int, out string) string {
	tb.Helper()
	var env struct {
		Status bool `json:"status"`
		Data   struct {
			UID string `json:"uid"`
		} `json:"data"`
	}
	if status != 201 || json.Unmarshal([]byte(out), &env) != nil || !env.Status || env.Data.UID == "" {
		tb.Fatalf("REST answered %d %s", status, out)
	}
	return env.Data.UID
}

// TestBigNumberFilterIsExact checks that a body filter's numbers keep every
// digit: saved over Connect's JSON and over gRPC, returned as written, and
// matched exactly against events sent over Connect and REST. An amount just
// above 2^63 matches; one that differs in the last digit does not.
func TestBigNumberFilterIsExact(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	r := newRouted(t, s)
	r.recv.pathHeader = true
	// "all" has no subscription and receives every broadcast: its delivery
	// shows that the router has expanded an event.
	r.endpoint(t, "all", "o")
	r.endpoint(t, "json", "o")
	r.endpoint(t, "grpc", "o")

	// Over Connect's JSON the filter is JSON text, as an event's data is.
	jsonBody := `{"amount": 12345678901234567890}`
	req, err := json.Marshal(map[string]any{
		"projectId": r.projectID, "endpointId": r.endpoints["json"].GetId(), "name": "exact",
		"filter": map[string]any{"eventTypes": []string{"invoice.*"}, "body": jsonBody},
	})
	if err != nil {
		t.Fatal(err)
	}
	status, out := postREST(t, s.registryURL+"/hookmesh.registry.v1.RegistryService/CreateSubscription", r.key, string(req), nil)
	var created struct {
		Subscription struct {
			ID     string `json:"id"`
			Filter struct {
				Body string `json:"body"`
			} `json:"filter"`
		} `json:"subscription"`
	}
	if status != 200 || json.Unmarshal([]byte(out), &created) != nil || created.Subscription.Filter.Body != jsonBody {
		t.Fatalf("CreateSubscription over JSON: %d %s; want the filter body %s as written", status, out, jsonBody)
	}

	// Over gRPC, with spacing and an operator of its own.
	grpcBody := "{ \"amount\" : {\"$eq\":12345678901234567890 } }"
	grpcRegistry := registryv1connect.NewRegistryServiceClient(testenv.H2CClient(), s.registryURL,
		connect.WithGRPC(), connect.WithInterceptors(auth.BearerInterceptor(r.key)))
	sub, err := grpcRegistry.CreateSubscription(context.Background(), connect.NewRequest(&registryv1.CreateSubscriptionRequest{
		ProjectId: r.projectID, EndpointId: r.endpoints["grpc"].GetId(), Filter: &registryv1.Filter{Body: grpcBody}}))
	if err != nil {
		t.Fatalf("CreateSubscription over gRPC: %v", err)
	}
	got, err := grpcRegistry.GetSubscription(context.Background(), connect.NewRequest(&registryv1.GetSubscriptionRequest{
		ProjectId: r.projectID, SubscriptionId: sub.Msg.GetSubscription().GetId()}))
	if err != nil || got.Msg.GetSubscription().GetFilter().GetBody() != grpcBody {
		t.Fatalf("GetSubscription = %v, %v; want the filter body %q as written", got, err, grpcBody)
	}
	status, out = postREST(t, s.registryURL+"/hookmesh.registry.v1.RegistryService/GetSubscription", r.key,
		fmt.Sprintf(`{"projectId": %q, "subscriptionId": %q}`, r.projectID, created.Subscription.ID), nil)
	if status != 200 || !strings.Contains(out, `"body":"{\"amount\": 12345678901234567890}"`) {
		t.Fatalf("GetSubscription over JSON: %d %s", status, out)
	}

	viaConnect := func(data string) string {
		t.Helper()
		resp, err := r.c.ingest.CreateBroadcastEvent(context.Background(), connect.NewRequest(&ingestv1.CreateBroadcastEventRequest{
			ProjectId: r.projectID, EventType: "invoice.paid", Data: data}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.GetEvent().GetId()
	}
	viaREST := func(data string) string {
		t.Helper()
		status, out := postREST(t, s.ingestURL+"/api/v1/projects/"+r.projectID+"/events/broadcast", r.key,
			`{"event_type": "invoice.paid", "data": `+data+`}`, nil)
		return restEventID(t, status, out)
	}
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"connect, equal", `{"amount": 12345678901234567890}`, []string{"all", "grpc", "json"}},
		{"connect, last digit differs", `{"amount": 12345678901234567891}`, []string{"all"}},
		{"connect, the double's rounding", `{"amount": 12345678901234567000}`, []string{"all"}},
		{"rest, equal", `{"amount":12345678901234567890,"note":"x"}`, []string{"all", "grpc", "json"}},
		{"rest, last digit differs", `{"amount":12345678901234567891}`, []string{"all"}},
	} {
		send := viaConnect
		if strings.HasPrefix(tc.name, "rest") {
			send = viaREST
		}
		id := send(tc.data)
		if got := r.deliveredTo(t, id, len(tc.want)); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: delivered to %v, want %v", tc.name, got, tc.want)
		}
	}
}

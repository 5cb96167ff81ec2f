package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestBadInputIsRefusedAndNothingIsStoredOrSent sends every kind of bad
// request over REST and Connect, then checks that no event was stored and
// nothing reached the receiver.
func TestBadInputIsRefusedAndNothingIsStoredOrSent(t *testing.T) {
	t.Parallel()
	const limit = 4 << 10
	s := startStack(t, modeAll, stackOptions{maxEventBytes: limit})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	otherProject, otherKey := s.project(t, &registryv1.CreateProjectRequest{Name: "other"})
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	big := `{"pad":"` + strings.Repeat("x", limit) + `"}`
	url := s.ingestURL + "/api/v1/projects/" + projectID + "/events"

	c := s.clients(key)
	rest := []struct {
		name, key, body string
		status          int
		message         string
	}{
		{"malformed JSON", key, `{"endpoint_id": "` + ep.GetId() + `", "event_type": "a", "data": {`, 400, "body"},
		{"data not JSON", key, `{"endpoint_id": "` + ep.GetId() + `", "event_type": "a", "data": nope}`, 400, "body"},
		{"missing event type", key, fmt.Sprintf(`{"endpoint_id": %q, "data": {}}`, ep.GetId()), 400, "event_type"},
		{"missing data", key, fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a"}`, ep.GetId()), 400, "data"},
		{"missing endpoint", key, `{"event_type": "a", "data": {}}`, 400, "endpoint_id"},
		{"unknown endpoint", key, `{"endpoint_id": "ep_nope", "event_type": "a", "data": {}}`, 404, `ep_nope`},
		{"event type too long", key, fmt.Sprintf(`{"endpoint_id": %q, "event_type": %q, "data": {}}`, ep.GetId(), strings.Repeat("a", 256)), 400, "event_type"},
		{"header injection", key, fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a", "data": {}, "custom_headers": {"X-A": "1\r\nX-B: 2"}}`, ep.GetId()), 400, "custom_headers"},
		{"reserved header", key, fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a", "data": {}, "custom_headers": {"Host": "evil"}}`, ep.GetId()), 400, "custom_headers"},
		{"payload over the limit", key, fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a", "data": %s}`, ep.GetId(), big), 400, "limit"},
		{"the Connect spelling of a field", key, fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a", "data": {}, "idempotencyKey": "k"}`, ep.GetId()), 400,
			`"status":false,"message":"unknown field \"idempotencyKey\" in the request; did you mean \"idempotency_key\"?"`},
		{"a field of another route", key, fmt.Sprintf(`{"endpoint_id": %q, "owner_id": "o", "event_type": "a", "data": {}}`, ep.GetId()), 400,
			`unknown field \"owner_id\" in the request (known fields: app_id, custom_headers, data, endpoint_id, event_type, idempotency_key, ordering_key)`},
		{"a field of the wrong type", key, fmt.Sprintf(`{"endpoint_id": %q, "event_type": 5, "data": {}}`, ep.GetId()), 400, "event_type: must be a string, got a JSON number"},
		{"no key", "", fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a", "data": {}}`, ep.GetId()), 401, "API key"},
		{"wrong key", "hm_wrong_key", fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a", "data": {}}`, ep.GetId()), 401, "API key"},
		{"another project's key", otherKey, fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a", "data": {}}`, ep.GetId()), 404, "not found"},
	}
	for _, tc := range rest {
		t.Run("rest/"+tc.name, func(t *testing.T) {
			status, body := postREST(t, url, tc.key, tc.body, nil)
			if status != tc.status || !strings.Contains(body, tc.message) {
				t.Fatalf("got %d %s, want %d mentioning %q", status, body, tc.status, tc.message)
			}
		})
	}
	t.Run("rest/body far over the limit", func(t *testing.T) {
		status, out := postREST(t, url, key, fmt.Sprintf(`{"endpoint_id": %q, "event_type": "a", "data": %s}`, ep.GetId(), strings.Repeat(" ", 200<<10)+"{}"), nil)
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(out, fmt.Sprintf(`{"status":false,"message":"request body too large: at most %d bytes"`, limit+64<<10)) {
			t.Fatalf("got %d %s, want 413 in Convoy's envelope", status, out)
		}
	})

	// Connect's JSON refuses unknown fields too, naming the closest one,
	// inside nested messages as well.
	connectJSON := []struct {
		name, path, body, message string
	}{
		{"event", "/hookmesh.ingest.v1.IngestService/CreateEvent",
			fmt.Sprintf(`{"projectId": %q, "endpointId": %q, "eventType": "a", "data": "{}", "idempotencyKy": "k"}`, projectID, ep.GetId()),
			`unknown field \"idempotencyKy\" in the request; did you mean \"idempotencyKey\"?`},
		{"subscription filter", "/hookmesh.registry.v1.RegistryService/CreateSubscription",
			fmt.Sprintf(`{"projectId": %q, "endpointId": %q, "filter": {"eventType": ["invoice.*"]}}`, projectID, ep.GetId()),
			`unknown field \"eventType\" in filter; did you mean \"eventTypes\"?`},
		{"subscription filter, charset", "/hookmesh.registry.v1.RegistryService/CreateSubscription",
			fmt.Sprintf(`{"project_id": %q, "endpoint_id": %q, "filter": {"event_type": ["invoice.*"]}}`, projectID, ep.GetId()),
			`unknown field \"event_type\" in filter; did you mean \"event_types\"?`},
	}
	for _, tc := range connectJSON {
		t.Run("connect-json/"+tc.name, func(t *testing.T) {
			header := http.Header{}
			if strings.HasSuffix(tc.name, "charset") {
				header.Set("Content-Type", "application/json; charset=utf-8")
			}
			status, out := postREST(t, s.ingestURL+tc.path, key, tc.body, header)
			if status != http.StatusBadRequest || !strings.Contains(out, `"code":"invalid_argument"`) || !strings.Contains(out, tc.message) {
				t.Fatalf("got %d %s, want 400 invalid_argument mentioning %s", status, out, tc.message)
			}
		})
	}
	subs, err := c.registry.ListSubscriptions(context.Background(), connect.NewRequest(&registryv1.ListSubscriptionsRequest{ProjectId: projectID}))
	if err != nil || len(subs.Msg.GetSubscriptions()) != 0 {
		t.Fatalf("subscriptions stored from bad requests: %v, %v", subs, err)
	}

	rpc := []struct {
		name string
		req  *ingestv1.CreateEventRequest
		code connect.Code
		msg  string
	}{
		{"invalid JSON", &ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "a", Data: `{"a":`}, connect.CodeInvalidArgument, "data: is not valid JSON"},
		{"empty data", &ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "a"}, connect.CodeInvalidArgument, "data"},
		{"missing project", &ingestv1.CreateEventRequest{EndpointId: ep.GetId(), EventType: "a", Data: `{}`}, connect.CodeInvalidArgument, "project_id"},
		{"other project", &ingestv1.CreateEventRequest{ProjectId: otherProject, EndpointId: ep.GetId(), EventType: "a", Data: `{}`}, connect.CodeNotFound, "project"},
		{"unknown endpoint", &ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: "ep_x", EventType: "a", Data: `{}`}, connect.CodeNotFound, "endpoint"},
		{"oversize", &ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "a", Data: big}, connect.CodeInvalidArgument, "limit"},
	}
	for _, tc := range rpc {
		t.Run("connect/"+tc.name, func(t *testing.T) {
			_, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(tc.req))
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.code, tc.msg)
			}
		})
	}
	t.Run("connect/fanout without owner", func(t *testing.T) {
		_, err := c.ingest.CreateFanoutEvent(context.Background(), connect.NewRequest(&ingestv1.CreateFanoutEventRequest{ProjectId: projectID, EventType: "a", Data: `{}`}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "owner_id") {
			t.Fatalf("got %v", err)
		}
	})

	list, err := c.ingest.ListEvents(context.Background(), connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: projectID}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.Msg.GetEvents()); n != 0 {
		t.Fatalf("%d events were stored from bad requests", n)
	}
	// Give anything wrongly published time to arrive before checking.
	time.Sleep(500 * time.Millisecond)
	if n := len(recv.requests()); n != 0 {
		t.Fatalf("receiver got %d requests from bad input", n)
	}
}

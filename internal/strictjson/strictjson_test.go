package strictjson

import (
	"strings"
	"testing"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

func TestCodecRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	c := &codec{name: codecNameJSON}
	for _, tc := range []struct {
		body, want string
	}{
		{`{"projectId": "p", "filter": {"eventType": ["invoice.*"]}}`, `unknown field "eventType" in filter; did you mean "eventTypes"?`},
		{`{"project_id": "p", "filter": {"event_type": ["invoice.*"]}}`, `unknown field "event_type" in filter; did you mean "event_types"?`},
		{`{"projectID": "p"}`, `unknown field "projectID" in the request; did you mean "projectId"?`},
		{`{"projectId": "p", "retryPolicy": {"maxAttempt": 3}}`, `unknown field "maxAttempt" in retryPolicy; did you mean "maxAttempts"?`},
		{`{"projectId": "p", "filter": {"body": {"amount": 12345678901234567890}}}`, `filter.body: must be a string, got a JSON object; a filter or an event's data is sent as its JSON text, as in "body": "{\"amount\": 42}"`},
		{`{"projectId": "p", "colour": "red"}`, `unknown field "colour" in the request (known fields: endpointId, endpoint_id, filter,`},
	} {
		err := c.Unmarshal([]byte(tc.body), &registryv1.CreateSubscriptionRequest{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Unmarshal(%s) = %v, want %q", tc.body, err, tc.want)
		}
	}
	// Lists, maps of messages and well-known types are followed, and known
	// fields in either spelling pass.
	var list registryv1.ListSubscriptionsResponse
	err := c.Unmarshal([]byte(`{"subscriptions": [{"id": "a"}, {"id": "b", "filter": {"body": "{}", "headerz": ""}}]}`), &list)
	if err == nil || !strings.Contains(err.Error(), `unknown field "headerz" in subscriptions[1].filter; did you mean "headers"?`) {
		t.Errorf("list: %v", err)
	}
	var ev ingestv1.CreateEventRequest
	if err := c.Unmarshal([]byte(`{"project_id": "p", "endpointId": "e", "data": "{\"amount\": 12345678901234567890}", "customHeaders": {"a": "b"}}`), &ev); err != nil {
		t.Fatalf("a valid request was refused: %v", err)
	}
	if ev.GetProjectId() != "p" || ev.GetEndpointId() != "e" || ev.GetCustomHeaders()["a"] != "b" {
		t.Fatalf("decoded %v", &ev)
	}
	var br statusv1.BatchRetryDeliveriesRequest
	if err := c.Unmarshal([]byte(`{"projectId": "p", "startTime": "2026-01-02T03:04:05Z", "dryRun": true}`), &br); err != nil || !br.GetDryRun() || br.GetStartTime().AsTime().Year() != 2026 {
		t.Fatalf("a request with a Timestamp: %v, %v", &br, err)
	}
	if err := c.Unmarshal(nil, &ev); err == nil {
		t.Fatal("an empty body was accepted")
	}
}

func TestClosest(t *testing.T) {
	t.Parallel()
	known := []string{"endpoint_id", "event_type", "data", "custom_headers", "idempotency_key"}
	for name, want := range map[string]string{
		"idempotencyKey": "idempotency_key",
		"IdempotencyKey": "idempotency_key",
		"eventType":      "event_type",
		"event_types":    "event_type",
		"customHeaders":  "custom_headers",
		"dat":            "data",
		"owner_id":       "",
		"x":              "",
		"payload":        "",
	} {
		if got := Closest(name, known); got != want {
			t.Errorf("Closest(%q) = %q, want %q", name, got, want)
		}
	}
}

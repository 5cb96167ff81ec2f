package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// The shapes below are those of Convoy's Go SDK (github.com/frain-dev/convoy-go:
// models.APIResponse, and client.ModelsEventResponse generated from Convoy's
// OpenAPI document), with their JSON tags, so that the test reads hookmesh's
// REST answers as a Convoy client does.

// convoyAPIResponse is Convoy's envelope.
type convoyAPIResponse struct {
	Status  bool             `json:"status"`
	Message string           `json:"message"`
	Data    *json.RawMessage `json:"data,omitempty"`
}

// convoyEventResponse is Convoy's event.
type convoyEventResponse struct {
	AcknowledgedAt   *string                   `json:"acknowledged_at,omitempty"`
	AppId            *string                   `json:"app_id,omitempty"`
	CreatedAt        *string                   `json:"created_at,omitempty"`
	Data             *map[string]interface{}   `json:"data,omitempty"`
	DeletedAt        *string                   `json:"deleted_at,omitempty"`
	EndpointMetadata *[]map[string]interface{} `json:"endpoint_metadata,omitempty"`
	Endpoints        *[]string                 `json:"endpoints,omitempty"`
	EventType        *string                   `json:"event_type,omitempty"`
	FailureReason    *string                   `json:"failure_reason,omitempty"`
	Headers          *map[string][]string      `json:"headers,omitempty"`
	IdempotencyKey   *string                   `json:"idempotency_key,omitempty"`
	IsDuplicateEvent *bool                     `json:"is_duplicate_event,omitempty"`
	ProjectId        *string                   `json:"project_id,omitempty"`
	Raw              *string                   `json:"raw,omitempty"`
	SourceId         *string                   `json:"source_id,omitempty"`
	Status           *string                   `json:"status,omitempty"`
	Uid              *string                   `json:"uid,omitempty"`
	UpdatedAt        *string                   `json:"updated_at,omitempty"`
	UrlPath          *string                   `json:"url_path,omitempty"`
	UrlQueryParams   *string                   `json:"url_query_params,omitempty"`
}

// TestRESTAnswersReadAsConvoys sends events over REST and reads the answers
// with the Convoy SDK's types: the envelope, the event's Convoy fields, the
// answer to a duplicate, and errors.
func TestRESTAnswersReadAsConvoys(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, OwnerId: "o"})
	base := s.ingestURL + "/api/v1/projects/" + projectID + "/events"

	read := func(path, body string, wantStatus int) (convoyAPIResponse, *convoyEventResponse) {
		t.Helper()
		status, out := postREST(t, base+path, key, body, nil)
		var env convoyAPIResponse
		if err := json.Unmarshal([]byte(out), &env); err != nil || status != wantStatus {
			t.Fatalf("POST %s: %d %s (%v), want %d", path, status, out, err, wantStatus)
		}
		if env.Data == nil {
			return env, nil
		}
		var ev convoyEventResponse
		if err := json.Unmarshal(*env.Data, &ev); err != nil {
			t.Fatalf("POST %s: data %s does not decode as Convoy's event: %v", path, *env.Data, err)
		}
		return env, &ev
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}

	body := fmt.Sprintf(`{"endpoint_id": %q, "event_type": "invoice.paid", "data": {"amount": 42, "id": "inv_1"},
		"custom_headers": {"X-Tenant": "t1"}, "idempotency_key": "inv-1"}`, ep.GetId())
	env, ev := read("", body, 201)
	if !env.Status || env.Message != "Endpoint event created successfully" || ev == nil {
		t.Fatalf("answer %+v", env)
	}
	if !strings.HasPrefix(str(ev.Uid), "evt_") || str(ev.EventType) != "invoice.paid" || str(ev.ProjectId) != projectID ||
		str(ev.IdempotencyKey) != "inv-1" || ev.IsDuplicateEvent == nil || *ev.IsDuplicateEvent {
		t.Fatalf("event = uid %s type %s project %s key %s duplicate %v", str(ev.Uid), str(ev.EventType), str(ev.ProjectId), str(ev.IdempotencyKey), ev.IsDuplicateEvent)
	}
	if ev.Endpoints == nil || len(*ev.Endpoints) != 1 || (*ev.Endpoints)[0] != ep.GetId() {
		t.Fatalf("endpoints = %v, want [%s]", ev.Endpoints, ep.GetId())
	}
	if ev.Headers == nil || strings.Join((*ev.Headers)["X-Tenant"], ",") != "t1" {
		t.Fatalf("headers = %v", ev.Headers)
	}
	if ev.Data == nil || (*ev.Data)["id"] != "inv_1" {
		t.Fatalf("data = %v", ev.Data)
	}
	for name, v := range map[string]*string{"created_at": ev.CreatedAt, "updated_at": ev.UpdatedAt, "acknowledged_at": ev.AcknowledgedAt} {
		if ts, err := time.Parse(time.RFC3339Nano, str(v)); err != nil || time.Since(ts) > time.Hour {
			t.Errorf("%s = %s (%v)", name, str(v), err)
		}
	}

	// A repeated idempotency key: stored as a duplicate, never sent.
	dupEnv, dup := read("", body, 201)
	if !dupEnv.Status || dupEnv.Message != "Duplicate event received, but will not be sent" || dup == nil ||
		dup.IsDuplicateEvent == nil || !*dup.IsDuplicateEvent || str(dup.Uid) == str(ev.Uid) {
		t.Fatalf("duplicate answered %+v", dupEnv)
	}

	fanEnv, fan := read("/fanout", `{"owner_id": "o", "event_type": "invoice.paid", "data": {"n": 1}}`, 201)
	if fanEnv.Message != "Endpoint fanout event created successfully" || fan == nil || fan.Endpoints == nil || len(*fan.Endpoints) != 0 {
		t.Fatalf("fan-out answered %+v %+v", fanEnv, fan)
	}
	bcEnv, bc := read("/broadcast", `{"event_type": "invoice.paid", "data": {"n": 2}}`, 201)
	if bcEnv.Message != "Broadcast event created successfully" || bc == nil || str(bc.Uid) == "<nil>" {
		t.Fatalf("broadcast answered %+v", bcEnv)
	}

	errEnv, errEv := read("", `{"event_type": "invoice.paid", "data": {}}`, 400)
	if errEnv.Status || !strings.Contains(errEnv.Message, "endpoint_id") || errEv != nil {
		t.Fatalf("error answered %+v", errEnv)
	}
	// The original and the two others are delivered; the duplicate is not.
	recv.waitFor(t, "three deliveries", func(r []received) bool { return len(r) == 3 })
	if n := len(recv.byEvent(str(dup.Uid))); n != 0 {
		t.Fatalf("the duplicate was delivered %d times", n)
	}
}

package metaevent

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

func TestWants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    *registryv1.MetaEventsFilter
		typ  string
		want bool
	}{
		{"no settings want nothing", nil, DeliveryFailed, false},
		{"no types want all", &registryv1.MetaEventsFilter{}, EndpointCircuitOpened, true},
		{"listed type", &registryv1.MetaEventsFilter{EventTypes: []string{DeliveryFailed, EndpointDisabled}}, EndpointDisabled, true},
		{"unlisted type", &registryv1.MetaEventsFilter{EventTypes: []string{DeliveryFailed}}, DeliveryRecovered, false},
	} {
		if got := Wants(tc.f, tc.typ); got != tc.want {
			t.Errorf("%s: Wants(%v, %s) = %v", tc.name, tc.f, tc.typ, got)
		}
	}
}

func TestEndpointIDIsPerProject(t *testing.T) {
	t.Parallel()
	a, b := EndpointID("prj_a"), EndpointID("prj_b")
	if a == b || a != EndpointID("prj_a") {
		t.Fatalf("meta endpoint ids %s and %s", a, b)
	}
	if !IsEndpoint("prj_a", a) || IsEndpoint("prj_b", a) || IsEndpoint("prj_a", "ep_1") {
		t.Fatal("IsEndpoint confuses projects or endpoints")
	}
	for _, typ := range Types {
		if !Known(typ) {
			t.Errorf("%s is listed but not known", typ)
		}
	}
	if Known("delivery.*") || Known("") {
		t.Error("a pattern or nothing is a known type")
	}
}

func TestMessageCarriesThePayloadToIngest(t *testing.T) {
	t.Parallel()
	topo := mesh.NewTopology("test", 1)
	now := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("x", 3600))
	m, err := Message(topo, "prj_a", DeliveryFailed, now, Delivery{ProjectID: "prj_a", DeliveryID: "dlv_1", Attempt: 3, StatusCode: 500})
	if err != nil {
		t.Fatal(err)
	}
	if m.Exchange != topo.EventsExchange || m.Key != "meta" {
		t.Fatalf("routed to %s/%s, want the meta queue's binding", m.Exchange, m.Key)
	}
	var ev busv1.EventMessage
	if err := proto.Unmarshal(m.Body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.GetEndpointId() != EndpointID("prj_a") || ev.GetEventType() != DeliveryFailed || ev.GetEventId() == "" ||
		!ev.GetCreateTime().AsTime().Equal(now.Truncate(time.Millisecond)) {
		t.Fatalf("event message: %v", &ev)
	}
	var p struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ev.GetData(), &p); err != nil {
		t.Fatal(err)
	}
	want := `{"project_id":"prj_a","delivery_id":"dlv_1","event_id":"","event_type":"","endpoint_id":"","url":"","attempt":3,"status_code":500}`
	if p.Type != DeliveryFailed || p.Timestamp != "2026-01-02T02:04:05.678Z" || string(p.Data) != want {
		t.Fatalf("payload %s", ev.GetData())
	}
}

// Package metaevent names hookmesh's meta events (the webhooks a project
// receives about its own deliveries and endpoints) and builds them. A meta
// event is an event like any other, addressed to the project's meta
// endpoint: the services that see a change publish it on the bus for
// ingest, which stores it and sends it to the router, so that it is signed,
// retried, listed and retried by hand like any delivery.
package metaevent

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// The meta event types.
const (
	// DeliveryFailed: a delivery's last attempt failed; it is FAILED.
	DeliveryFailed = "delivery.failed"
	// DeliveryAttemptFailing: a delivery has failed its first N attempts
	// (MetaEvents.attempt_failing_after, 3 by default) and is retried.
	DeliveryAttemptFailing = "delivery.attempt_failing"
	// DeliveryRecovered: a delivery succeeded after failed attempts.
	DeliveryRecovered = "delivery.recovered"
	// EndpointCreated: an endpoint was created.
	EndpointCreated = "endpoint.created"
	// EndpointUpdated: an endpoint's settings or secret changed.
	EndpointUpdated = "endpoint.updated"
	// EndpointDeleted: an endpoint was deleted.
	EndpointDeleted = "endpoint.deleted"
	// EndpointDisabled: an endpoint stopped receiving deliveries: hookmesh
	// disabled it (a 410 Gone answer, a run of failures) or a user paused
	// it (reason "manual").
	EndpointDisabled = "endpoint.disabled"
	// EndpointEnabled: a paused or disabled endpoint was activated.
	EndpointEnabled = "endpoint.enabled"
	// EndpointCircuitOpened: a deliverer stopped sending to an endpoint for
	// a while, as too many recent attempts failed.
	EndpointCircuitOpened = "endpoint.circuit_opened"
	// EndpointCircuitClosed: an endpoint's circuit closed again after a
	// successful probe.
	EndpointCircuitClosed = "endpoint.circuit_closed"
)

// Types lists every meta event type.
var Types = []string{
	DeliveryFailed, DeliveryAttemptFailing, DeliveryRecovered,
	EndpointCreated, EndpointUpdated, EndpointDeleted, EndpointDisabled, EndpointEnabled,
	EndpointCircuitOpened, EndpointCircuitClosed,
}

// Known reports whether t is a meta event type.
func Known(t string) bool { return slices.Contains(Types, t) }

// DefaultAttemptFailingAfter is the attempt whose failure sends
// delivery.attempt_failing when the project does not say.
const DefaultAttemptFailingAfter = 3

// Reasons an endpoint is disabled, in endpoint.disabled.
const (
	ReasonGone     = "gone"
	ReasonFailures = "failures"
	ReasonManual   = "manual"
)

// EndpointID returns the id of a project's meta endpoint, under which the
// deliveries of its meta events are kept.
func EndpointID(projectID string) string { return ids.Deterministic("mep", projectID) }

// IsEndpoint reports whether endpointID is the meta endpoint of projectID.
func IsEndpoint(projectID, endpointID string) bool {
	return strings.HasPrefix(endpointID, "mep_") && endpointID == EndpointID(projectID)
}

// Wants reports whether a project with filter f wants meta events of type
// t; a nil filter wants none, an empty list of types all.
func Wants(f *registryv1.MetaEventsFilter, t string) bool {
	if f == nil {
		return false
	}
	return len(f.GetEventTypes()) == 0 || slices.Contains(f.GetEventTypes(), t)
}

// Payload is the body of every meta event.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// Delivery is the data of the delivery.* events.
type Delivery struct {
	ProjectID  string `json:"project_id"`
	DeliveryID string `json:"delivery_id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	EndpointID string `json:"endpoint_id"`
	OwnerID    string `json:"owner_id,omitempty"`
	URL        string `json:"url"`
	// Attempt is the number of the attempt the event is about.
	Attempt uint32 `json:"attempt"`
	// StatusCode is the endpoint's answer to it; 0 for none.
	StatusCode int32 `json:"status_code"`
	// Error says why it failed.
	Error string `json:"error,omitempty"`
}

// Endpoint is the data of the endpoint.* events.
type Endpoint struct {
	ProjectID  string `json:"project_id"`
	EndpointID string `json:"endpoint_id"`
	OwnerID    string `json:"owner_id,omitempty"`
	URL        string `json:"url"`
	Name       string `json:"name,omitempty"`
	// Status is the endpoint's status after the change: active, paused,
	// disabled or deleted.
	Status string `json:"status"`
	// Reason says, in endpoint.disabled, why: gone (a 410 answer),
	// failures (a run of failed attempts) or manual (paused by a user).
	Reason string `json:"reason,omitempty"`
	// Detail says more about the reason, as hookmesh logged it.
	Detail string `json:"detail,omitempty"`
	// CooldownSeconds is, in endpoint.circuit_opened, how long the circuit
	// stays open before a probe.
	CooldownSeconds int64 `json:"cooldown_seconds,omitempty"`
}

// Message returns the bus message that carries a meta event of type t to
// ingest.
func Message(topo mesh.Topology, projectID, t string, now time.Time, data any) (bus.Message, error) {
	// Stored times are milliseconds, as ingest stores its events.
	now = now.UTC().Truncate(time.Millisecond)
	body, err := json.Marshal(Payload{Type: t, Timestamp: now.UTC(), Data: data})
	if err != nil {
		return bus.Message{}, fmt.Errorf("encode meta event %s: %w", t, err)
	}
	return topo.MetaEventMessage(&busv1.EventMessage{
		EventId:    ids.NewAt("evt", now),
		ProjectId:  projectID,
		EventType:  t,
		Data:       body,
		EndpointId: EndpointID(projectID),
		CreateTime: timestamppb.New(now),
	}), nil
}

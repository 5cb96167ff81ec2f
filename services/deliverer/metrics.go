package deliverer

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// metrics are what operators watch: outcomes by state and how long
// endpoints take to answer.
type metrics struct {
	outcomes metric.Int64Counter
	latency  metric.Float64Histogram
	circuits metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("github.com/hookmesh/hookmesh/services/deliverer")
	outcomes, err := m.Int64Counter("hookmesh.deliveries",
		metric.WithDescription("Delivery state changes reported by deliverers, by status."))
	if err != nil {
		return nil, err
	}
	latency, err := m.Float64Histogram("hookmesh.attempt.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Time from sending a webhook to the end of its response, by outcome."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	if err != nil {
		return nil, err
	}
	circuits, err := m.Int64Counter("hookmesh.endpoint.circuit.changes",
		metric.WithDescription("Endpoint circuit breakers that opened or closed, by the state they moved to."))
	if err != nil {
		return nil, err
	}
	return &metrics{outcomes: outcomes, latency: latency, circuits: circuits}, nil
}

func (m *metrics) circuit(ctx context.Context, st circuitState) {
	m.circuits.Add(ctx, 1, metric.WithAttributes(attribute.String("state", st.String())))
}

func (m *metrics) outcome(ctx context.Context, st statusv1.DeliveryStatus) {
	m.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("status", statusName(st))))
}

func (m *metrics) attempt(ctx context.Context, st statusv1.DeliveryStatus, d time.Duration) {
	m.latency.Record(ctx, d.Seconds(), metric.WithAttributes(attribute.String("outcome", statusName(st))))
}

func statusName(st statusv1.DeliveryStatus) string {
	switch st {
	case statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED:
		return "scheduled"
	case statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING:
		return "processing"
	case statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS:
		return "success"
	case statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY:
		return "retry"
	case statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED:
		return "failed"
	case statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED:
		return "discarded"
	}
	return "unknown"
}

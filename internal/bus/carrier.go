package bus

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tableCarrier carries the trace context (traceparent, tracestate, baggage)
// in AMQP message headers.
type tableCarrier amqp.Table

func (t tableCarrier) Get(key string) string {
	if v, ok := t[key].(string); ok {
		return v
	}
	return ""
}

func (t tableCarrier) Set(key, value string) { t[key] = value }

func (t tableCarrier) Keys() []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	return keys
}

// Traceparent returns the W3C traceparent of ctx's span, "" without one:
// what a message that travels inside another (a batch) keeps of its trace.
func (c *Conn) Traceparent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	c.propagator.Inject(ctx, carrier)
	return carrier.Get("traceparent")
}

// StartSpan starts a span in the trace that traceparent names (ctx's own
// when it is empty or invalid), linked to ctx's span: the work on one
// message of a batch, in that message's trace.
func (c *Conn) StartSpan(ctx context.Context, traceparent, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	parent := ctx
	if traceparent != "" {
		parent = c.propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
	}
	return c.tracer.Start(parent, name, trace.WithSpanKind(kind), trace.WithLinks(trace.LinkFromContext(ctx)))
}

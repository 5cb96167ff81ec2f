package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// idTracerProvider makes spans that carry ids and nothing else: what a
// process that exports no spans needs, so that trace and span ids still
// reach the logs, the AMQP headers and the webhook's traceparent. The SDK's
// provider would record every span (attributes, events, timestamps, a
// lock) only to drop it, at about a tenth of hookmesh's CPU per delivery.
// Its ids and flags are those the SDK's default sampler gives: a new trace
// is sampled, a child inherits its parent's trace, flags and trace state.
type idTracerProvider struct{ embedded.TracerProvider }

// Tracer returns the provider's only tracer.
func (idTracerProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return idTracer{} }

type idTracer struct{ embedded.Tracer }

// Start returns ctx with a span that has a new span id, in the parent's
// trace or, without a parent (or with trace.WithNewRoot), in a new one.
func (idTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var parent trace.SpanContext
	if len(opts) == 0 || !newRoot(opts) {
		parent = trace.SpanContextFromContext(ctx)
	}
	cfg := trace.SpanContextConfig{SpanID: newSpanID()}
	if parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID, cfg.TraceFlags = newTraceID(), trace.FlagsSampled
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	return ctx, trace.SpanFromContext(ctx)
}

func newRoot(opts []trace.SpanStartOption) bool {
	cfg := trace.NewSpanStartConfig(opts...)
	return cfg.NewRoot()
}

// newTraceID and newSpanID are random and never all zeros (invalid), as
// the SDK's are.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

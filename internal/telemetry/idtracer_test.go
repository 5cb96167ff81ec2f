package telemetry

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// setUp returns the tracer of a process that exports no spans.
func setUp(t *testing.T, cfg Config) (*Telemetry, trace.Tracer) {
	t.Helper()
	tel, err := Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, tel.TracerProvider.Tracer("test")
}

func TestUnexportedSpansCarryIDs(t *testing.T) {
	t.Parallel()
	tel, tr := setUp(t, Config{ServiceName: "test"})
	if _, ok := tel.TracerProvider.(*sdktrace.TracerProvider); ok {
		t.Fatal("a process that exports no spans records them with the SDK")
	}

	rootCtx, root := tr.Start(context.Background(), "root")
	rsc := root.SpanContext()
	if !rsc.IsValid() || !rsc.IsSampled() {
		t.Fatalf("root span context %v: want valid and sampled, as the SDK's default sampler makes it", rsc)
	}
	childCtx, child := tr.Start(rootCtx, "child")
	csc := child.SpanContext()
	if csc.TraceID() != rsc.TraceID() || csc.SpanID() == rsc.SpanID() || !csc.SpanID().IsValid() || !csc.IsSampled() {
		t.Fatalf("child %v of %v: want the parent's trace, a span id of its own, sampled", csc, rsc)
	}
	if got := trace.SpanContextFromContext(childCtx); !got.Equal(csc) {
		t.Fatalf("context carries %v, want the child's %v", got, csc)
	}
	_, other := tr.Start(context.Background(), "other root")
	if other.SpanContext().TraceID() == rsc.TraceID() {
		t.Fatal("two roots share a trace id")
	}
	_, newRoot := tr.Start(rootCtx, "new root", trace.WithNewRoot())
	if newRoot.SpanContext().TraceID() == rsc.TraceID() {
		t.Fatal("WithNewRoot kept the parent's trace")
	}

	// What goes out (AMQP headers, the webhook's traceparent) is the
	// child's context.
	h := propagation.HeaderCarrier{}
	tel.Propagator.Inject(childCtx, h)
	want := "00-" + csc.TraceID().String() + "-" + csc.SpanID().String() + "-01"
	if got := h.Get("traceparent"); got != want {
		t.Fatalf("traceparent = %q, want %q", got, want)
	}
}

func TestUnexportedSpansFollowARemoteParent(t *testing.T) {
	t.Parallel()
	tel, tr := setUp(t, Config{ServiceName: "test"})
	// A caller that did not sample its trace: the spans under it are not
	// sampled either, and its trace state goes on.
	h := propagation.HeaderCarrier{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	h.Set("tracestate", "vendor=x")
	ctx := tel.Propagator.Extract(context.Background(), h)
	_, span := tr.Start(ctx, "handle")
	sc := span.SpanContext()
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() == "00f067aa0ba902b7" || sc.IsSampled() || sc.IsRemote() {
		t.Fatalf("span under a remote unsampled parent: %v", sc)
	}
	if sc.TraceState().String() != "vendor=x" {
		t.Fatalf("trace state = %q, want the parent's", sc.TraceState().String())
	}
	out := propagation.HeaderCarrier{}
	tel.Propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), out)
	if !strings.HasSuffix(out.Get("traceparent"), "-00") {
		t.Fatalf("traceparent %q: want the parent's flags (not sampled)", out.Get("traceparent"))
	}
}

func TestSpanProcessorsGetRecordedSpans(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	_, tr := setUp(t, Config{ServiceName: "test", SpanProcessors: []sdktrace.SpanProcessor{sdktrace.NewSimpleSpanProcessor(exp)}})
	_, span := tr.Start(context.Background(), "op")
	span.End()
	if spans := exp.GetSpans(); len(spans) != 1 || spans[0].Name != "op" {
		t.Fatalf("exported spans = %v, want the one made", spans)
	}
}

package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestOneEventIsOneTrace follows an event from the ingest call to the
// receiver: the receiver's traceparent carries the trace of the ingest
// call, and the spans of every hop in between belong to it.
func TestOneEventIsOneTrace(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			exp := tracetest.NewInMemoryExporter()
			s := startStack(t, m, stackOptions{spans: sdktrace.NewSimpleSpanProcessor(exp)})
			recv := newReceiver(t)
			projectID, key := s.project(t, nil)
			ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
			resp, err := s.clients(key).ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
				ProjectId: projectID, EndpointId: ep.GetId(), EventType: "traced", Data: `{}`}))
			if err != nil {
				t.Fatal(err)
			}
			got := recv.waitFor(t, "the event", func(r []received) bool { return len(r) == 1 })[0]
			parts := strings.Split(got.header.Get("Traceparent"), "-")
			if len(parts) != 4 {
				t.Fatalf("traceparent %q", got.header.Get("Traceparent"))
			}
			traceID, err := trace.TraceIDFromHex(parts[1])
			if err != nil {
				t.Fatal(err)
			}
			// The ingest server span is the root of that trace.
			want := map[string]bool{
				"hookmesh.ingest.v1.IngestService/CreateEvent": false, // ingest call
				".events publish":     false, // ingest → router
				".router process":     false, // router
				".deliveries publish": false, // router → deliverer
				".deliver process":    false, // deliverer
				"HTTP POST":           false, // the webhook request
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				for _, sp := range exp.GetSpans() {
					if sp.SpanContext.TraceID() != traceID {
						continue
					}
					for name := range want {
						if strings.HasSuffix(sp.Name, name) || sp.Name == name {
							want[name] = true
						}
					}
					if sp.Name == "hookmesh.ingest.v1.IngestService/CreateEvent" && sp.SpanKind == trace.SpanKindServer && sp.Parent.IsValid() && sp.Parent.TraceID() != traceID {
						t.Fatalf("ingest span is not in the receiver's trace")
					}
				}
				missing := []string{}
				for name, seen := range want {
					if !seen {
						missing = append(missing, name)
					}
				}
				if len(missing) == 0 {
					break
				}
				if time.Now().After(deadline) {
					var names []string
					for _, sp := range exp.GetSpans() {
						names = append(names, sp.Name+"@"+sp.SpanContext.TraceID().String()[:8])
					}
					t.Fatalf("trace %s lacks spans %v; spans: %v (event %s)", traceID, missing, names, resp.Msg.GetEvent().GetId())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

package bus_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

func dial(t *testing.T, tp *sdktrace.TracerProvider) *bus.Conn {
	t.Helper()
	url := testenv.AMQPURL(t)
	if tp == nil {
		tp = sdktrace.NewTracerProvider()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := bus.Dial(ctx, bus.Config{URL: url, Prefix: testenv.DatabaseName(t), StatusPartitions: 2}, tp, propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch, err := c.Channel(context.Background())
		if err == nil {
			_ = c.Topology().Delete(ch)
			_ = ch.Close()
		}
		_ = c.Close()
	})
	return c
}

func TestPublishConsumeCarriesTrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	c := dial(t, tp)
	pub := c.NewPublisher(2)
	defer pub.Close()

	ctx, span := tp.Tracer("test").Start(context.Background(), "root")
	var msgs []bus.Message
	for i := range 50 {
		msgs = append(msgs, c.Topology().EventMessage(&busv1.EventMessage{EventId: "evt_" + string(rune('a'+i%26)), Data: []byte(`{"i":1}`)}))
	}
	if err := pub.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	span.End()

	got := make(chan *bus.Delivery, 100)
	cctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = c.Consume(cctx, c.Topology().RouterQueue, bus.ConsumeOptions{Workers: 4}, func(d *bus.Delivery) error {
			got <- d
			return nil
		})
	})
	for range 50 {
		select {
		case d := <-got:
			var ev busv1.EventMessage
			if err := bus.Decode(d, &ev); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&ev, &busv1.EventMessage{EventId: ev.EventId, Data: []byte(`{"i":1}`)}) {
				t.Fatalf("message changed in transit: %v", &ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("messages did not arrive")
		}
	}
	cancel()
	wg.Wait()
	// Every consumer span belongs to the publisher's trace.
	n := 0
	for _, s := range exp.GetSpans() {
		if s.SpanKind.String() == "consumer" {
			n++
			if s.SpanContext.TraceID() != span.SpanContext().TraceID() {
				t.Fatalf("consumer span in another trace")
			}
		}
	}
	if n != 50 {
		t.Fatalf("consumer spans = %d, want 50", n)
	}
}

func TestMalformedIsParked(t *testing.T) {
	t.Parallel()
	c := dial(t, nil)
	pub := c.NewPublisher(1)
	defer pub.Close()
	bad := bus.Message{Exchange: c.Topology().StatusExchange, Key: "0", Body: []byte{0xff, 0xff, 0xff}}
	if err := pub.Publish(context.Background(), []bus.Message{bad}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = c.ConsumeBatch(ctx, c.Topology().StatusQueues[0], bus.ConsumeOptions{}, bus.BatchOptions{}, func(_ context.Context, ds []*bus.Delivery) error {
			for _, d := range ds {
				if err := bus.Decode(d, &busv1.StateChange{}); err != nil {
					return err
				}
			}
			return nil
		})
	}()
	ch, err := c.Channel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d, ok, err := ch.Get(c.Topology().ParkingQueue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if d.Headers["x-hookmesh-parked-from"] != c.Topology().StatusQueues[0] {
				t.Fatalf("parked message lacks its origin: %v", d.Headers)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("malformed message was not parked")
}

// TestFailedHandlingIsRetriedWithoutRequeue: a handler that fails for a
// passing reason is called again for the same delivery, which never goes
// back to the queue (each requeue counts against the message where the
// broker caps deliveries).
func TestFailedHandlingIsRetriedWithoutRequeue(t *testing.T) {
	t.Parallel()
	c := dial(t, nil)
	pub := c.NewPublisher(1)
	defer pub.Close()
	if err := pub.Publish(context.Background(), []bus.Message{c.Topology().EventMessage(&busv1.EventMessage{EventId: "evt_retry"})}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan bool, 10)
	go func() {
		n := 0
		_ = c.Consume(ctx, c.Topology().RouterQueue, bus.ConsumeOptions{}, func(d *bus.Delivery) error {
			n++
			calls <- d.Redelivered
			if n <= 3 {
				return errors.New("database unavailable")
			}
			return nil
		})
	}()
	for i := range 4 {
		select {
		case redelivered := <-calls:
			if redelivered {
				t.Fatalf("call %d: the message went back to the queue", i+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d did not come", i+1)
		}
	}
	select {
	case <-calls:
		t.Fatal("handled again after it succeeded")
	case <-time.After(300 * time.Millisecond):
	}
}

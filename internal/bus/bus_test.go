package bus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

func TestPublishConsumeCarriesTrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	c, names := dialNames(t, testenv.AMQPURL(t), "", tp)
	pub := c.NewPublisher(2)
	defer pub.Close()

	ctx, span := tp.Tracer("test").Start(context.Background(), "root")
	var msgs []Message
	for i := range 50 {
		id := "evt_" + string(rune('a'+i%26))
		msgs = append(msgs, names.work(id, &busv1.EventMessage{EventId: id, Data: []byte(`{"i":1}`)}))
	}
	if err := pub.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	span.End()

	got := make(chan *Delivery, 100)
	cctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = c.Consume(cctx, names.WorkQueue, ConsumeOptions{Workers: 4}, func(_ context.Context, d *Delivery) error {
			got <- d
			return nil
		})
	})
	for range 50 {
		select {
		case d := <-got:
			var ev busv1.EventMessage
			if err := Decode(d, &ev); err != nil {
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

// TestMalformedIsParked: a message that does not decode goes to the
// parking queue, through a parking exchange or, without one, straight to
// the queue.
func TestMalformedIsParked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		exchange bool
	}{{"through the parking exchange", true}, {"straight to the parking queue", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, names := dialConfig(t, newTestNames(testenv.DatabaseName(t)), func(n testNames) Config {
				cfg := n.config(testenv.AMQPURL(t), "")
				if !tc.exchange {
					cfg.ParkingExchange = ""
				}
				return cfg
			}, nil)
			pub := c.NewPublisher(1)
			defer pub.Close()
			bad := Message{Exchange: names.WorkExchange, Key: workKey, Body: []byte{0xff, 0xff, 0xff}}
			if err := pub.Publish(context.Background(), []Message{bad}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				_ = c.ConsumeBatch(ctx, names.WorkQueue, ConsumeOptions{}, BatchOptions{}, func(_ context.Context, ds []*Delivery) error {
					for _, d := range ds {
						if err := Decode(d, &busv1.StateChange{}); err != nil {
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
				d, ok, err := ch.Get(names.ParkingQueue, true)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					if d.Headers[HeaderParkedFrom] != names.WorkQueue {
						t.Fatalf("parked message lacks its origin: %v", d.Headers)
					}
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatal("malformed message was not parked")
		})
	}
}

// TestDialWantsParkingQueue: a connection whose consumers could not park
// what they cannot process is refused at start-up.
func TestDialWantsParkingQueue(t *testing.T) {
	t.Parallel()
	cfg := newTestNames(testenv.DatabaseName(t)).config(testenv.AMQPURL(t), "")
	cfg.ParkingQueue = ""
	if _, err := Dial(context.Background(), cfg, sdktrace.NewTracerProvider(), nil, nil); err == nil {
		t.Fatal("dial succeeded without a parking queue")
	}
}

// TestFailedHandlingIsRetriedWithoutRequeue: a handler that fails for a
// passing reason is called again for the same delivery, which never goes
// back to the queue (each requeue counts against the message where the
// broker caps deliveries).
func TestFailedHandlingIsRetriedWithoutRequeue(t *testing.T) {
	t.Parallel()
	c, names := dialNames(t, testenv.AMQPURL(t), "", nil)
	pub := c.NewPublisher(1)
	defer pub.Close()
	if err := pub.Publish(context.Background(), []Message{names.work("evt_retry", &busv1.EventMessage{EventId: "evt_retry"})}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan bool, 10)
	go func() {
		n := 0
		_ = c.Consume(ctx, names.WorkQueue, ConsumeOptions{}, func(_ context.Context, d *Delivery) error {
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

// TestUrgentBatchDoesNotWaitToFill: a batch that waits an hour to fill is
// handled at once when it holds an urgent delivery, with what came before.
func TestUrgentBatchDoesNotWaitToFill(t *testing.T) {
	t.Parallel()
	c, names := dialNames(t, testenv.AMQPURL(t), "", nil)
	pub := c.NewPublisher(1)
	defer pub.Close()
	plain := names.work("plain", &busv1.EventMessage{EventId: "plain"})
	urgent := names.work("urgent", &busv1.EventMessage{EventId: "urgent"})
	urgent.Headers = amqp.Table{"x-urgent": true}
	if err := pub.Publish(context.Background(), []Message{plain, urgent}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := make(chan []string, 4)
	go func() {
		_ = c.ConsumeBatch(ctx, names.WorkQueue, ConsumeOptions{}, BatchOptions{MaxWait: time.Hour,
			Urgent: func(d *amqp.Delivery) bool { return d.Headers["x-urgent"] != nil }},
			func(_ context.Context, ds []*Delivery) error {
				var got []string
				for _, d := range ds {
					got = append(got, d.MessageId)
				}
				batches <- got
				return nil
			})
	}()
	select {
	case got := <-batches:
		if strings.Join(got, ",") != "plain,urgent" {
			t.Fatalf("batch = %v, want plain and urgent together", got)
		}
	case <-time.After(time.Minute):
		t.Fatal("the batch with an urgent delivery waited to fill")
	}
}

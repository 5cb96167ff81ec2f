package bus

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/hookmesh/hookmesh/internal/testenv"
)

// What the RabbitMQ management console shows of a process: a named
// connection, a readable subscription queue, and queue metrics for every
// queue it was told of.

func TestConnectionNamedAfterProcess(t *testing.T) {
	t.Parallel()
	c, _ := dialNames(t, testenv.AMQPURL(t), "hookmesh deliverer,router", nil)
	host, _ := os.Hostname()
	want := fmt.Sprintf("hookmesh deliverer,router on %s pid %d", host, os.Getpid())
	if c.Name() != want {
		t.Fatalf("connection name %q, want %q", c.Name(), want)
	}
	if got := c.amqpConfig().Properties["connection_name"]; got != want {
		t.Fatalf("connection_name client property %v, want %q", got, want)
	}
}

// Not parallel: it predicts the next subscription number of the process.
func TestSubscriptionQueueReadable(t *testing.T) {
	c, names := dialNames(t, testenv.AMQPURL(t), "", nil)
	exchange := names.NotifyExchange
	host, _ := os.Hostname()
	want := fmt.Sprintf("%s.changes.%s.%d.%d", exchange, host, os.Getpid(), subscriptions.Load()+1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	connected := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.Subscribe(ctx, exchange, func() { connected <- struct{}{} }, func(*Delivery) {})
	}()
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatal("subscription did not start")
	}
	// An exclusive queue can be inspected on its own connection.
	ch, err := c.Channel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(want, false, true, true, false, nil)
	if err != nil {
		t.Fatalf("subscription queue %s is not declared: %v", want, err)
	}
	if q.Consumers != 1 {
		t.Fatalf("subscription queue %s has %d consumers, want 1", want, q.Consumers)
	}
	cancel()
	<-done
}

func TestQueueMetricsCoverEveryQueue(t *testing.T) {
	t.Parallel()
	c, names := dialNames(t, testenv.AMQPURL(t), "", nil)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	if err := c.RegisterQueueMetrics(mp); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "hookmesh.queue.messages" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key("queue"))
				seen = append(seen, v.AsString())
			}
		}
	}
	for _, q := range names.queues() {
		if !slices.Contains(seen, q) {
			t.Errorf("hookmesh_queue_messages has no figure for %s (has %s)", q, strings.Join(seen, ", "))
		}
	}
}

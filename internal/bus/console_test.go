package bus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookmesh/hookmesh/internal/testenv"
)

// What the RabbitMQ management console shows of hookmesh: named
// connections, delay queues named as the README names them, a readable
// subscription queue, and queue metrics for every queue declared.

func dialInternal(t *testing.T, name string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{URL: testenv.AMQPURL(t), Prefix: testenv.DatabaseName(t), StatusPartitions: 2, Name: name},
		sdktrace.NewTracerProvider(), propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
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

func TestConnectionNamedAfterProcess(t *testing.T) {
	t.Parallel()
	c := dialInternal(t, "hookmesh deliverer,router")
	host, _ := os.Hostname()
	want := fmt.Sprintf("hookmesh deliverer,router on %s pid %d", host, os.Getpid())
	if c.Name() != want {
		t.Fatalf("connection name %q, want %q", c.Name(), want)
	}
	if got := c.amqpConfig().Properties["connection_name"]; got != want {
		t.Fatalf("connection_name client property %v, want %q", got, want)
	}
}

func TestDelayQueuesNamedAsWritten(t *testing.T) {
	t.Parallel()
	c := dialInternal(t, "")
	p := c.Topology().Prefix
	var got []string
	for _, d := range c.Topology().Delays {
		got = append(got, d.Name)
	}
	want := []string{p + ".delay.1s", p + ".delay.5s", p + ".delay.30s", p + ".delay.2m", p + ".delay.10m", p + ".delay.1h"}
	if !slices.Equal(got, want) {
		t.Fatalf("delay queues %v, want %v", got, want)
	}
	// Declared on the broker under those names.
	ch, err := c.Channel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for _, q := range want {
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
			t.Fatalf("queue %s is not declared: %v", q, err)
		}
	}
	for d, name := range map[time.Duration]string{90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 500 * time.Millisecond: "500ms", 2 * time.Hour: "2h"} {
		if got := TierName(d); got != name {
			t.Errorf("TierName(%v) = %q, want %q", d, got, name)
		}
	}
}

// Not parallel: it predicts the next subscription number of the process.
func TestSubscriptionQueueReadable(t *testing.T) {
	c := dialInternal(t, "")
	exchange := c.Topology().RegistryExchange
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
	c := dialInternal(t, "")
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
	topo := c.Topology()
	want := []string{topo.RouterQueue, topo.DeliverQueue, topo.ParkingQueue}
	want = append(want, topo.StatusQueues...)
	for _, d := range topo.Delays {
		want = append(want, d.Name)
	}
	for _, q := range want {
		if !slices.Contains(seen, q) {
			t.Errorf("hookmesh_queue_messages has no figure for %s (has %s)", q, strings.Join(seen, ", "))
		}
	}
}

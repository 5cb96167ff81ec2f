package mesh_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// dial connects to the test broker with a topology of the test's own,
// declared as a process declares it, and deletes it at the end.
func dial(t *testing.T) (*bus.Conn, mesh.Topology) {
	t.Helper()
	topo := mesh.NewTopology(testenv.DatabaseName(t), 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := bus.Dial(ctx, topo.BusConfig(testenv.AMQPURL(t), ""), sdktrace.NewTracerProvider(), propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch, err := c.Channel(context.Background())
		if err == nil {
			_ = topo.Delete(ch)
			_ = ch.Close()
		}
		_ = c.Close()
	})
	return c, topo
}

func TestDelayQueuesNamedAsWritten(t *testing.T) {
	t.Parallel()
	c, topo := dial(t)
	p := topo.Prefix
	var got []string
	for _, d := range topo.Delays {
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
		if got := mesh.TierName(d); got != name {
			t.Errorf("TierName(%v) = %q, want %q", d, got, name)
		}
	}
}

// TestQueueMetricsCoverEveryQueue: a process connected for the topology
// reports every queue of it, work, status, parking and delay queues alike.
func TestQueueMetricsCoverEveryQueue(t *testing.T) {
	t.Parallel()
	c, topo := dial(t)
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
	want := []string{topo.RouterQueue, topo.MetaQueue, topo.DeliverQueue, topo.ParkingQueue}
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

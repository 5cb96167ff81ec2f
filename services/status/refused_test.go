package status

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// TestRefusedStateChangeIsParked sends, in one partition, a state change
// whose attempt the database refuses (FerretDB on PostgreSQL refuses NUL in
// a string; MongoDB stores it, and the test is skipped) beside a good one: the good one is stored and the refused one
// goes to the parking queue with the reason, instead of holding the
// partition forever.
func TestRefusedStateChangeIsParked(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{onMongoDB, onPostgres} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testRefusedStateChangeIsParked(t, kind)
		})
	}
}

func testRefusedStateChangeIsParked(t *testing.T, kind string) {
	s := testService(t, kind)
	s.cfg.BatchWait = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topo := mesh.NewTopology(testenv.DatabaseName(t), 1)
	conn := testBus(ctx, t, topo)
	now := time.Now()
	change := func(id, url string) *busv1.StateChange {
		return &busv1.StateChange{DeliveryId: id, ProjectId: "prj_refused", EventId: "evt_" + id, EndpointId: "ep_1", EventType: "t",
			Status: statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, Attempt: 1, Time: timestamppb.New(now),
			Record: &statusv1.Attempt{Attempt: 1, StatusCode: 500, Url: url, StartTime: timestamppb.New(now)}}
	}
	pub := conn.NewPublisher(1)
	defer pub.Close()
	if err := pub.Publish(ctx, []bus.Message{
		topo.StateMessage(change("dlv_refused", "http://example.com/\x00nul")),
		topo.StateMessage(change("dlv_good", "http://example.com/ok")),
	}); err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	s.conn, s.queues = conn, topo.StatusQueues
	go func() { done <- s.Run(cctx) }()
	defer func() { stop(); <-done }()

	deadline := time.Now().Add(90 * time.Second)
	for {
		if d, err := s.store.getDelivery(ctx, "prj_refused", "dlv_good"); err == nil && d != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the good state change was not stored: the refused one holds its partition")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d, err := s.store.getDelivery(ctx, "prj_refused", "dlv_refused"); err == nil && d != nil {
		t.Skip("this database stores NUL in strings: nothing to refuse")
	}
	ch, err := conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for {
		m, ok, err := ch.Get(topo.ParkingQueue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			reason, _ := m.Headers["x-hookmesh-parked-reason"].(string)
			if !strings.Contains(reason, "refuses") || !strings.Contains(reason, "dlv_refused") {
				t.Fatalf("parked with reason %q, want the store's refusal of dlv_refused", reason)
			}
			if from, _ := m.Headers["x-hookmesh-parked-from"].(string); from != topo.StatusQueues[0] {
				t.Fatalf("parked from %q, want %q", from, topo.StatusQueues[0])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the refused state change is neither stored nor parked")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testBus connects to RabbitMQ with topo declared, and deletes the topology
// and closes the connection when the test ends.
func testBus(ctx context.Context, t *testing.T, topo mesh.Topology) *bus.Conn {
	t.Helper()
	conn, err := bus.Dial(ctx, topo.BusConfig(testenv.AMQPURL(t), ""),
		sdktrace.NewTracerProvider(), propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := conn.Channel(context.Background()); err == nil {
			_ = topo.Delete(ch)
			_ = ch.Close()
		}
		_ = conn.Close()
	})
	return conn
}

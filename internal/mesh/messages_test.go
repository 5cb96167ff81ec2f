package mesh_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// get waits for a message on queue and takes it off. It consumes rather
// than gets: the status partitions, with a single active consumer, refuse
// basic.get.
func get(t *testing.T, c *bus.Conn, queue string) amqp.Delivery {
	t.Helper()
	ch, err := c.Channel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	msgs, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", queue, err)
	}
	select {
	case d := <-msgs:
		return d
	case <-time.After(30 * time.Second):
		t.Fatalf("no message reached %s", queue)
		return amqp.Delivery{}
	}
}

// TestMessagesReachTheirQueues: each message of the contract, published as
// a service publishes it, lands in the queue of the service that consumes
// it; a delayed task comes back to the deliverers when its tier expires,
// still saying when it is due.
func TestMessagesReachTheirQueues(t *testing.T) {
	t.Parallel()
	c, topo := dial(t)
	pub := c.NewPublisher(1)
	defer pub.Close()
	ctx := context.Background()
	now := time.Now()
	task := &busv1.DeliveryTask{DeliveryId: "dlv_1", EventId: "evt_1", Attempt: 2}
	for _, tc := range []struct {
		msg   bus.Message
		queue string
		typ   string
	}{
		{topo.EventMessage(&busv1.EventMessage{EventId: "evt_1"}), topo.RouterQueue, mesh.TypeEvent},
		{topo.MetaEventMessage(&busv1.EventMessage{EventId: "evt_meta"}), topo.MetaQueue, mesh.TypeEvent},
		{topo.TaskMessage(task), topo.DeliverQueue, mesh.TypeTask},
		{topo.StateMessage(&busv1.StateChange{DeliveryId: "dlv_1", Attempt: 1}), topo.StatusQueues[topo.StatusPartition("dlv_1")], mesh.TypeState},
		{topo.DelayedTaskMessage(task, now.Add(time.Second), now), topo.DeliverQueue, mesh.TypeTask},
	} {
		if err := pub.Publish(ctx, []bus.Message{tc.msg}); err != nil {
			t.Fatal(err)
		}
		d := get(t, c, tc.queue)
		if d.Type != tc.typ || d.MessageId != tc.msg.MessageID {
			t.Fatalf("%s got %s %s, want %s %s", tc.queue, d.Type, d.MessageId, tc.typ, tc.msg.MessageID)
		}
		if tc.msg.Exchange == "" {
			// The delayed task: due when it was asked to be.
			due, ok := mesh.Due(&bus.Delivery{Delivery: d})
			if !ok || due.UnixMilli() != now.Add(time.Second).UnixMilli() {
				t.Fatalf("delayed task came back due %v (%v), want %v", due, ok, now.Add(time.Second))
			}
		}
	}
}

// TestUnprocessableGoesToTheParkingQueue: a consumer of a mesh queue parks
// what it cannot decode in the mesh's parking queue, which the operators'
// listing reads.
func TestUnprocessableGoesToTheParkingQueue(t *testing.T) {
	t.Parallel()
	c, topo := dial(t)
	pub := c.NewPublisher(1)
	defer pub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bad := bus.Message{Exchange: topo.DeliveriesExchange, Key: "task", Body: []byte{0xff, 0xff}, MessageID: "bad", Type: mesh.TypeTask}
	if err := pub.Publish(ctx, []bus.Message{bad}); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = c.Consume(ctx, topo.DeliverQueue, bus.ConsumeOptions{}, func(_ context.Context, d *bus.Delivery) error {
			return bus.Decode(d, &busv1.DeliveryTask{})
		})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		parked, total, err := c.ListParked(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if total == 1 {
			if parked[0].From != topo.DeliverQueue || parked[0].MessageID != "bad" {
				t.Fatalf("parked %+v, want the bad task from %s", parked[0], topo.DeliverQueue)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the undecodable task was not parked")
}

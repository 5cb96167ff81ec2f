package mesh

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
)

// slowPublisher keeps what it is given and takes a while to confirm, as a
// broker under load does, so that callers queue up behind it.
type slowPublisher struct {
	mu    sync.Mutex
	calls [][]bus.Message
}

func (p *slowPublisher) Publish(_ context.Context, msgs []bus.Message) error {
	time.Sleep(5 * time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, slices.Clone(msgs))
	return nil
}

// TestBatchPublisherBatchesPerPartition publishes, from 200 callers at
// once, a task and a state change each: every task goes as it is, every
// change reaches its own partition exactly once, byte for byte, in fewer
// messages than changes, and a line's changes keep their header.
func TestBatchPublisherBatchesPerPartition(t *testing.T) {
	t.Parallel()
	topo := NewTopology("batch-test", 4)
	inner := &slowPublisher{}
	sp := NewBatchPublisher(inner, nil, time.Minute)
	defer sp.Close()
	want := map[string]*busv1.StateChange{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 200 {
		sc := &busv1.StateChange{DeliveryId: fmt.Sprintf("dlv_%03d", i), ProjectId: "prj_1",
			Status: statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, Attempt: 1}
		if i%10 == 0 {
			sc.OrderingKey, sc.OrderingSeq = "order-1", uint64(i/10+1)
		}
		mu.Lock()
		want[sc.DeliveryId] = sc
		mu.Unlock()
		wg.Go(func() {
			task := topo.TaskMessage(&busv1.DeliveryTask{DeliveryId: sc.DeliveryId, Attempt: 2})
			if err := sp.Publish(context.Background(), []bus.Message{task, topo.StateMessage(sc)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	tasks, batches := 0, 0
	for _, call := range inner.calls {
		for _, m := range call {
			switch m.Type {
			case TypeTask:
				tasks++
			case TypeStateBatch:
				batches++
				checkBatch(t, topo, m, want)
			default:
				t.Fatalf("published %q", m.Type)
			}
		}
	}
	if tasks != 200 || len(want) != 0 {
		t.Fatalf("%d tasks published, %d changes never published", tasks, len(want))
	}
	if batches >= 200 {
		t.Fatalf("200 changes in %d messages: nothing was batched", batches)
	}
	t.Logf("200 changes in %d messages", batches)
}

// checkBatch decodes a batch and crosses its changes off want.
func checkBatch(t *testing.T, topo Topology, m bus.Message, want map[string]*busv1.StateChange) {
	t.Helper()
	var b busv1.StateBatch
	if err := proto.Unmarshal(m.Body, &b); err != nil {
		t.Fatal(err)
	}
	line := false
	for _, sc := range b.GetChanges() {
		w, ok := want[sc.GetDeliveryId()]
		if !ok || !proto.Equal(w, sc) {
			t.Fatalf("batch holds %v, want %v (once)", sc, w)
		}
		delete(want, sc.GetDeliveryId())
		if alone := topo.StateMessage(sc); alone.Key != m.Key || alone.Exchange != m.Exchange {
			t.Fatalf("change of %s batched for partition %s, its own is %s", sc.GetDeliveryId(), m.Key, alone.Key)
		}
		line = line || sc.GetOrderingKey() != ""
	}
	if InLine(&amqp.Delivery{Headers: m.Headers}) != line {
		t.Fatalf("batch with a line's change = %v, marked %v", line, m.Headers)
	}
}

// TestBatchPublisherEvents: events for the router travel in batches, meta
// events and events marked to travel alone do not.
func TestBatchPublisherEvents(t *testing.T) {
	t.Parallel()
	topo := NewTopology("batch-test", 4)
	inner := &slowPublisher{}
	bp := NewBatchPublisher(inner, nil, time.Minute)
	defer bp.Close()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			ev := &busv1.EventMessage{EventId: fmt.Sprintf("evt_%03d", i), ProjectId: "prj_1"}
			if err := bp.Publish(context.Background(), []bus.Message{topo.EventMessage(ev)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	meta := topo.MetaEventMessage(&busv1.EventMessage{EventId: "evt_meta"})
	alone := topo.EventMessage(&busv1.EventMessage{EventId: "evt_alone"})
	alone.Headers = amqp.Table{AloneHeader: "registry away"}
	if err := bp.Publish(context.Background(), []bus.Message{meta, alone}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	batches := 0
	for _, call := range inner.calls {
		for _, m := range call {
			switch m.Type {
			case TypeEventBatch:
				batches++
				if m.Exchange != topo.EventsExchange || m.Key != eventKey {
					t.Fatalf("event batch sent to %s/%s", m.Exchange, m.Key)
				}
				var b busv1.EventBatch
				if err := proto.Unmarshal(m.Body, &b); err != nil {
					t.Fatal(err)
				}
				for _, ev := range b.GetEvents() {
					if seen[ev.GetEventId()] {
						t.Fatalf("%s sent twice", ev.GetEventId())
					}
					seen[ev.GetEventId()] = true
				}
			case TypeEvent:
				seen[m.MessageID] = true
			default:
				t.Fatalf("published %q", m.Type)
			}
		}
	}
	if len(seen) != 102 || !seen["evt_meta"] || !seen["evt_alone"] || batches >= 100 {
		t.Fatalf("%d events seen in %d batches (meta %v, alone %v)", len(seen), batches, seen["evt_meta"], seen["evt_alone"])
	}
}

package status

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// TestStateBatchesApplied sends, through RabbitMQ, the SCHEDULED and
// SUCCESS of 300 deliveries from 64 callers at once through the batching
// publisher the router and the deliverers use, and one change that can
// never apply among them: every delivery ends SUCCESS with its attempt,
// and the message that carried the bad change is parked with the reason.
func TestStateBatchesApplied(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		s.cfg.BatchWait = 100 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		topo := mesh.NewTopology(testenv.DatabaseName(t), 4)
		conn := testBus(ctx, t, topo)
		pub := conn.NewPublisher(2)
		defer pub.Close()
		sp := mesh.NewBatchPublisher(pub, conn, time.Minute)
		defer sp.Close()
		now := time.Now()
		const n = 300
		work := make(chan int)
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for i := range work {
					id := fmt.Sprintf("dlv_batch_%03d", i)
					base := busv1.StateChange{DeliveryId: id, ProjectId: "prj_batch", EventId: "evt_" + id, EndpointId: "ep_1",
						EventType: "t", Attempt: 1, Time: timestamppb.New(now)}
					scheduled, done := &base, &busv1.StateChange{}
					*done = busv1.StateChange{DeliveryId: id, ProjectId: "prj_batch", EventId: "evt_" + id, EndpointId: "ep_1",
						EventType: "t", Attempt: 1, Time: timestamppb.New(now.Add(time.Millisecond)),
						Status: statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS,
						Record: &statusv1.Attempt{Attempt: 1, StatusCode: 200, StartTime: timestamppb.New(now)}}
					scheduled.Status = statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED
					msgs := []bus.Message{topo.StateMessage(scheduled), topo.StateMessage(done)}
					if i == n/2 {
						// No project: can never be stored.
						msgs = append(msgs, topo.StateMessage(&busv1.StateChange{DeliveryId: "dlv_orphan",
							Status: statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, Attempt: 1}))
					}
					if err := sp.Publish(ctx, msgs); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()

		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		s.conn, s.queues = conn, topo.StatusQueues
		go func() { done <- s.Run(cctx) }()
		defer func() { stop(); <-done }()
		deadline := time.Now().Add(90 * time.Second)
		for {
			counts, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: "prj_batch"})
			if err != nil {
				t.Fatal(err)
			}
			if counts[statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS] == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("counts %v, want %d SUCCESS", counts, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, i := range []int{0, n / 2, n - 1} {
			id := fmt.Sprintf("dlv_batch_%03d", i)
			as, err := s.store.listAttempts(ctx, "prj_batch", id)
			if err != nil || len(as) != 1 || as[0].StatusCode != http.StatusOK {
				t.Fatalf("attempts of %s = %v, %v", id, as, err)
			}
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
				if m.Type != mesh.TypeStateBatch || !strings.Contains(reason, "dlv_orphan") || !strings.Contains(reason, "others were applied") {
					t.Fatalf("parked a %s with reason %q, want the batch, naming dlv_orphan", m.Type, reason)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the batch with a change that can never apply was not parked")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

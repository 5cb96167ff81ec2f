package status

import (
	"context"
	"sync"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
)

// Consume applies state changes from every status partition until ctx ends.
// Each partition queue has a single active consumer across all status
// replicas, so one delivery's changes have one writer at a time; the changes
// of a batch are applied together and acked only once they are stored.
func (s *Service) Consume(ctx context.Context, conn *bus.Conn) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(conn.Topology().StatusQueues))
	for _, q := range conn.Topology().StatusQueues {
		wg.Go(func() {
			errs <- conn.ConsumeBatch(ctx, q, bus.ConsumeOptions{Prefetch: 2 * s.cfg.BatchSize},
				bus.BatchOptions{MaxBatch: s.cfg.BatchSize, MaxWait: s.cfg.BatchWait}, s.applyDeliveries)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) applyDeliveries(ctx context.Context, ds []*bus.Delivery) error {
	changes := make([]*busv1.StateChange, 0, len(ds))
	for _, d := range ds {
		var sc busv1.StateChange
		if err := bus.Decode(d, &sc); err != nil {
			d.Park(err)
			continue
		}
		// A change that can never apply is parked, not silently dropped.
		if err := CheckChange(&sc); err != nil {
			d.Park(err)
			continue
		}
		changes = append(changes, &sc)
	}
	return s.Apply(ctx, changes)
}

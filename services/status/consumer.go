package status

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/pgdb"
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
	from := make([]*bus.Delivery, 0, len(ds))
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
		from = append(from, d)
	}
	refused, err := s.applyOrRefuse(ctx, changes)
	for i, err := range refused {
		from[i].Park(err)
	}
	return err
}

// applyOrRefuse applies changes. When the store refuses the batch for good
// (PostgreSQL answers that a value cannot be stored, not that it is away),
// it applies the changes one at a time, so that one change it can never
// store does not hold up its partition for ever: it returns those the store
// refuses, by index, for the caller to park. Apply is order-insensitive, so
// applying them apart changes nothing else.
func (s *Service) applyOrRefuse(ctx context.Context, changes []*busv1.StateChange) (map[int]error, error) {
	err := s.Apply(ctx, changes)
	if err == nil || !refusedForGood(err) || len(changes) == 0 {
		return nil, err
	}
	s.logger.Warn("store refused a batch; applying its changes one at a time", "changes", len(changes), "err", err)
	refused := map[int]error{}
	for i, c := range changes {
		if err := s.Apply(ctx, []*busv1.StateChange{c}); err != nil {
			if !refusedForGood(err) {
				return nil, err
			}
			s.logger.Warn("park state change that the store refuses", "delivery_id", c.GetDeliveryId(), "err", err)
			refused[i] = err
		}
	}
	return refused, nil
}

// refusedForGood reports an error of PostgreSQL about the statement or its
// values, which trying again cannot fix.
func refusedForGood(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && !pgdb.Retryable(err)
}

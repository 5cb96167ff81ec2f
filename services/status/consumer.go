package status

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
	err := s.Apply(ctx, changes)
	if err == nil || s.storeWrites(ctx) != nil {
		// Applied, or the store takes no write at all (away, full): the
		// batch is tried again.
		return err
	}
	// The store takes writes but refuses the batch: apply its changes one
	// at a time, so that only a change the store refuses (a document it
	// rejects) is set aside, in the parking queue with the reason, instead
	// of holding its partition forever. Apply is idempotent and
	// order-insensitive, so applying again what the batch stored is
	// harmless.
	s.logger.WarnContext(ctx, "the status store refused a batch of state changes; applying them one by one", "changes", len(changes), "err", err)
	for i, c := range changes {
		var cerr error
		for attempt := range refusedAttempts {
			if cerr = s.Apply(ctx, []*busv1.StateChange{c}); cerr == nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
		}
		if cerr == nil {
			continue
		}
		// Refused alone, while the store takes other writes: refused for
		// what it holds.
		if s.storeWrites(ctx) != nil {
			return cerr
		}
		s.logger.ErrorContext(ctx, "the status store refuses a state change; parking it", "delivery_id", c.GetDeliveryId(),
			"project_id", c.GetProjectId(), "status", c.GetStatus().String(), "err", cerr)
		from[i].Park(fmt.Errorf("the status store refuses this state change of delivery %s: %w", c.GetDeliveryId(), cerr))
	}
	return nil
}

// refusedAttempts is how many times a change is applied alone before a
// refusal counts as final.
const refusedAttempts = 3

// storeWrites makes a harmless write to the status database (the time in
// the one document of its "probe" collection): when the store takes it, a
// write it refuses is refused for what it holds, not because the store is
// away or full.
func (s *Service) storeWrites(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.store.deliveries.Database().Collection(probeCollection).UpdateOne(pctx,
		bson.D{{Key: "_id", Value: "probe"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "time", Value: time.Now().UTC()}}}},
		options.UpdateOne().SetUpsert(true))
	return err
}

// probeCollection holds the document storeWrites writes.
const probeCollection = "probe"

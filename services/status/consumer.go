package status

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/pgdb"
)

// consume applies state changes from every status partition queue until
// ctx ends.
// Each partition queue has a single active consumer across all status
// replicas, so one delivery's changes have one writer at a time; the changes
// of a batch are applied together and acked only once they are stored. A
// batch holding a message about a line of ordered delivery is written
// within milliseconds rather than after BatchWait: the line's next delivery
// waits on it.
func (s *Service) consume(ctx context.Context) error {
	conn, queues := s.conn, s.queues
	var wg sync.WaitGroup
	errs := make(chan error, len(queues))
	for _, q := range queues {
		wg.Go(func() {
			errs <- conn.ConsumeBatch(ctx, q, bus.ConsumeOptions{Prefetch: 2 * s.cfg.BatchSize},
				bus.BatchOptions{MaxBatch: s.cfg.BatchSize, MaxWait: s.cfg.BatchWait, Urgent: mesh.InLine}, s.applyDeliveries)
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
	in := s.decode(ds)
	implied, err := s.advanceLines(ctx, in.routes, in.changes)
	if err != nil {
		return err
	}
	refused, err := s.applyOrRefuse(ctx, append(in.changes, implied...))
	for i, err := range refused {
		if i < len(in.from) {
			in.from[i].Park(err)
			continue
		}
		// A change implied by a route: the route's line is recorded, so
		// the delivery only shows an older state until its next change.
		s.logger.ErrorContext(ctx, "the status store refuses the state of a delivery in a line", "err", err)
	}
	return err
}

// received is what a batch of deliveries holds: the state changes, each
// with the delivery it came in, and the routes of ordered events.
type received struct {
	changes []*busv1.StateChange
	from    []*bus.Delivery
	routes  []*busv1.OrderedRoute
}

// decode reads the deliveries of a batch; what can never apply is parked,
// not silently dropped.
func (s *Service) decode(ds []*bus.Delivery) *received {
	in := &received{changes: make([]*busv1.StateChange, 0, len(ds)), from: make([]*bus.Delivery, 0, len(ds))}
	for _, d := range ds {
		switch d.Type {
		case mesh.TypeRoute:
			if r := s.route(d); r != nil {
				in.routes = append(in.routes, r)
			}
		case mesh.TypeStateBatch:
			in.addBatch(d)
		default:
			var sc busv1.StateChange
			if err := bus.Decode(d, &sc); err != nil {
				d.Park(err)
				continue
			}
			if err := CheckChange(&sc); err != nil {
				d.Park(err)
				continue
			}
			in.changes, in.from = append(in.changes, &sc), append(in.from, d)
		}
	}
	return in
}

// addBatch adds the changes of a StateBatch. A change that can never apply
// parks the message, with the reason, once the others are applied (a
// replay of it applies them again, harmlessly).
func (in *received) addBatch(d *bus.Delivery) {
	var b busv1.StateBatch
	if err := bus.Decode(d, &b); err != nil {
		d.Park(err)
		return
	}
	var bad []error
	for _, sc := range b.GetChanges() {
		if err := CheckChange(sc); err != nil {
			bad = append(bad, err)
			continue
		}
		in.changes, in.from = append(in.changes, sc), append(in.from, d)
	}
	if len(bad) > 0 {
		d.Park(fmt.Errorf("%d of the %d state changes of this batch can never apply (the others were applied): %w", len(bad), len(b.GetChanges()), errors.Join(bad...)))
	}
}

// route decodes an ordered route, or parks it when it can never apply
// here.
func (s *Service) route(d *bus.Delivery) *busv1.OrderedRoute {
	if s.lines == nil {
		d.Park(errNoLines)
		return nil
	}
	r, err := decodeRoute(d)
	if err != nil {
		d.Park(err)
		return nil
	}
	return r
}

// applyOrRefuse applies changes. When the store refuses the batch for what
// it holds (a value it cannot store), not because it is away or full, it
// applies the changes one at a time, so that one change it can never store
// does not hold up its partition forever: it returns those the store
// refuses, by index, for the caller to park with the reason. Apply is
// idempotent and order-insensitive, so applying again what the batch stored
// is harmless.
func (s *Service) applyOrRefuse(ctx context.Context, changes []*busv1.StateChange) (map[int]error, error) {
	err := s.Apply(ctx, changes)
	if err == nil || len(changes) == 0 || !s.refusedForGood(ctx, err) {
		// Applied, or the store is away: the batch is tried again.
		return nil, err
	}
	s.logger.WarnContext(ctx, "the status store refused a batch of state changes; applying them one by one", "changes", len(changes), "err", err)
	refused := map[int]error{}
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
		if !s.refusedForGood(ctx, cerr) {
			return nil, cerr
		}
		s.logger.ErrorContext(ctx, "the status store refuses a state change; parking it", "delivery_id", c.GetDeliveryId(),
			"project_id", c.GetProjectId(), "status", c.GetStatus().String(), "err", cerr)
		refused[i] = fmt.Errorf("the status store refuses this state change of delivery %s: %w", c.GetDeliveryId(), cerr)
	}
	return refused, nil
}

// refusedAttempts is how many times a change is applied alone before a
// refusal counts as final.
const refusedAttempts = 3

// refusedForGood reports whether err is the store refusing what a change
// holds rather than the store being away (see historyStore.refused).
func (s *Service) refusedForGood(ctx context.Context, err error) bool {
	return s.store.refused(ctx, err)
}

// refused: PostgreSQL tells a refusal by the error's class, and must still
// answer a statement.
func (s *pgStore) refused(ctx context.Context, err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && !pgdb.Retryable(err) && s.probe(ctx) == nil
}

// refused: MongoDB's errors do not tell a refusal from an outage; a
// harmless write that succeeds shows the store takes writes.
func (s *deliveryStore) refused(ctx context.Context, _ error) bool {
	return s.storeWrites(ctx) == nil
}

// probe checks that PostgreSQL takes a statement on the store's pool.
func (s *pgStore) probe(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.pool.Exec(pctx, "SELECT 1")
	return err
}

// storeWrites makes a harmless write to the status database (the time in
// the one document of its "probe" collection).
func (s *deliveryStore) storeWrites(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.deliveries.Database().Collection(probeCollection).UpdateOne(pctx,
		bson.D{{Key: "_id", Value: "probe"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "time", Value: time.Now().UTC()}}}},
		options.UpdateOne().SetUpsert(true))
	return err
}

// probeCollection holds the document storeWrites writes.
const probeCollection = "probe"

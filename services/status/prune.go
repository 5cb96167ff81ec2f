package status

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/retention"
)

// finished are the statuses of a delivery that nothing moves any more but a
// manual retry: the only ones the pruner deletes. A delivery in flight
// (SCHEDULED, PROCESSING, RETRY) stays, however old.
var finished = []int16{
	int16(statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS),
	int16(statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED),
	int16(statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED),
}

// PruneBatch deletes one batch of a project's finished deliveries created
// before cutoff, with their attempts, and its statistics of the minutes
// before cutoff; the counts of deliveries move with them. It implements
// retention.Store for the pruner.
func (s *Service) PruneBatch(ctx context.Context, projectID string, cutoff time.Time, limit int) (retention.Counts, bool, error) {
	return s.store.prune(ctx, projectID, cutoff, limit)
}

// The statements of the PostgreSQL store's pruner.
const (
	// sqlPruneDeliveries deletes up to $3 finished deliveries of project
	// $1 created before $2, oldest first, found by deliveries_by_time; it
	// returns what it deleted, grouped as the counters count them, with
	// the ids. A delivery a writer holds (a retry moving it) is skipped,
	// not waited for; one that a writer moved out of the finished statuses
	// in the meantime is read again and left.
	sqlPruneDeliveries = `WITH doomed AS (
	SELECT id FROM deliveries
	WHERE project_id = $1 AND create_time < $2 AND status = ANY($4::smallint[])
	ORDER BY create_time, id
	LIMIT $3
	FOR UPDATE SKIP LOCKED
), gone AS (
	DELETE FROM deliveries WHERE id = ANY(ARRAY(SELECT id FROM doomed))
	RETURNING endpoint_id, event_id, status, id
)
SELECT endpoint_id, event_id, status, count(*), array_agg(id)
FROM gone GROUP BY endpoint_id, event_id, status`

	// sqlPruneAttempts deletes the attempts of the deliveries $1, by the
	// primary key. It is a statement of its own, after
	// sqlPruneDeliveries, because a statement sees the rows committed
	// before it began: a retry that committed a new attempt and moved its
	// delivery while sqlPruneDeliveries ran has its delivery deleted (read
	// again as it is now) but its new attempt would not be seen there.
	sqlPruneAttempts = `DELETE FROM attempts WHERE delivery_id = ANY($1::text[])`

	// The counter rows of project $1 that a prune brought to zero go, by
	// the primary keys.
	sqlDropProjectCounts  = `DELETE FROM project_counts WHERE project_id = $1 AND n <= 0`
	sqlDropEndpointCounts = `DELETE FROM endpoint_counts WHERE project_id = $1 AND endpoint_id = $2 AND n <= 0`
	sqlDropEventCounts    = `DELETE FROM event_counts WHERE project_id = $1 AND event_id = ANY($2::text[]) AND n <= 0`

	// sqlPruneDeliveryStats and sqlPruneAttemptStats delete up to $3
	// statistics rows of project $1 of the minutes before $2, by the
	// _by_minute indexes.
	sqlPruneDeliveryStats = `DELETE FROM delivery_stats WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM delivery_stats WHERE project_id = $1 AND minute < $2 LIMIT $3))`
	sqlPruneAttemptStats = `DELETE FROM attempt_stats WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM attempt_stats WHERE project_id = $1 AND minute < $2 LIMIT $3))`
)

// prune deletes one batch in one transaction: the deliveries and their
// attempts, then the counters moved down by what was deleted (in key
// order, last, like every writer, so that they do not deadlock; a
// deadlock anyway runs the batch again), and the counter rows that
// reached zero. The statistics go in transactions of their own.
func (s *pgStore) prune(ctx context.Context, projectID string, cutoff time.Time, limit int) (retention.Counts, bool, error) {
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	out := retention.Counts{}
	var err error
	for range 5 {
		var deliveries, attempts int64
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			deliveries, attempts = 0, 0
			rows, err := tx.Query(ctx, sqlPruneDeliveries, projectID, cutoff, limit, finished)
			if err != nil {
				return err
			}
			deltas := newCounterDeltas()
			var endpoint, event string
			var st int16
			var n int64
			var ids, gone []string
			if _, err := pgx.ForEachRow(rows, []any{&endpoint, &event, &st, &n, &ids}, func() error {
				deltas.add(projectID, endpoint, event, st, -n)
				deliveries += n
				gone = append(gone, ids...)
				return nil
			}); err != nil {
				return err
			}
			if len(gone) > 0 {
				tag, err := tx.Exec(ctx, sqlPruneAttempts, gone)
				if err != nil {
					return err
				}
				attempts = tag.RowsAffected()
			}
			return dropCountsTx(ctx, tx, projectID, deltas)
		})
		if err == nil {
			out[retention.KindDeliveries] += deliveries
			out[retention.KindAttempts] += attempts
			break
		}
		if !isConflict(err) {
			return out, false, fmt.Errorf("prune deliveries of %s: %w", projectID, err)
		}
	}
	if err != nil {
		return out, false, fmt.Errorf("prune deliveries of %s: %w", projectID, err)
	}
	more := out[retention.KindDeliveries] >= int64(limit)
	cutMinute := statMinute(cutoff)
	for _, stmt := range []string{sqlPruneDeliveryStats, sqlPruneAttemptStats} {
		tag, err := s.pool.Exec(ctx, stmt, projectID, cutMinute, limit)
		if err != nil {
			return out, false, fmt.Errorf("prune statistics of %s: %w", projectID, err)
		}
		out[retention.KindStatistics] += tag.RowsAffected()
		more = more || tag.RowsAffected() >= int64(limit)
	}
	return out, more, nil
}

// dropCountsTx moves the counters of projectID by deltas (negative: what
// a prune deleted) and deletes the rows that reached zero.
func dropCountsTx(ctx context.Context, tx pgx.Tx, projectID string, deltas *counterDeltas) error {
	if p, _, st, n := sortedDeltas(deltas.project); len(p) > 0 {
		if _, err := tx.Exec(ctx, sqlAddProjectCounts, p, st, n); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlDropProjectCounts, projectID); err != nil {
			return err
		}
	}
	if p, k, st, n := sortedDeltas(deltas.endpoint); len(p) > 0 {
		if _, err := tx.Exec(ctx, sqlAddEndpointCounts, p, k, st, n); err != nil {
			return err
		}
		// One statement an endpoint, in one round trip: a batch touches
		// few endpoints, and each is a range of the primary key.
		b := &pgx.Batch{}
		for _, ep := range slices.Compact(k) {
			b.Queue(sqlDropEndpointCounts, projectID, ep)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
	}
	if p, k, st, n := sortedDeltas(deltas.event); len(p) > 0 {
		if _, err := tx.Exec(ctx, sqlAddEventCounts, p, k, st, n); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlDropEventCounts, projectID, slices.Compact(k)); err != nil {
			return err
		}
	}
	return nil
}

// prune deletes one batch from MongoDB: it finds up to limit finished
// deliveries created before cutoff (by the project_id, create_time index),
// forgets them as written (so that a later change of one of them inserts
// it again rather than updating nothing), deletes those still as found,
// then the attempts found and the statistics marks of those that are
// gone, then up to limit statistics of the minutes before cutoff. Without
// transactions, a delivery that a retry moved between the find and the
// delete is left as the retry made it; a write that raced the delete
// stores its delivery again (writeDeliveries).
func (s *deliveryStore) prune(ctx context.Context, projectID string, cutoff time.Time, limit int) (retention.Counts, bool, error) {
	out := retention.Counts{}
	fin := bson.A{}
	for _, st := range finished {
		fin = append(fin, int32(st))
	}
	found, err := s.findPrunable(ctx, projectID, cutoff, limit, fin)
	if err != nil {
		return out, false, err
	}
	more := len(found) >= limit
	if len(found) > 0 {
		if err := s.pruneFound(ctx, projectID, found, fin, out); err != nil {
			return out, false, err
		}
	}
	if err := s.pruneStatistics(ctx, projectID, cutoff, out); err != nil {
		return out, false, err
	}
	return out, more, nil
}

// prunable is a finished delivery that prune found, with its number of
// attempts when found.
type prunable struct {
	ID       string `bson:"_id"`
	Attempts int64  `bson:"attempts"`
}

// findPrunable returns up to limit deliveries of projectID created before
// cutoff whose status is among fin, oldest first.
func (s *deliveryStore) findPrunable(ctx context.Context, projectID string, cutoff time.Time, limit int, fin bson.A) ([]prunable, error) {
	cur, err := s.deliveries.Find(ctx, bson.D{
		{Key: "project_id", Value: projectID},
		{Key: "create_time", Value: bson.D{{Key: "$lt", Value: cutoff}}},
		{Key: "status", Value: bson.D{{Key: "$in", Value: fin}}},
	}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "attempts", Value: 1}}).
		SetSort(bson.D{{Key: "create_time", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("find deliveries of %s to prune: %w", projectID, err)
	}
	var found []prunable
	if err := cur.All(ctx, &found); err != nil {
		return nil, fmt.Errorf("find deliveries of %s to prune: %w", projectID, err)
	}
	return found, nil
}

// pruneFound deletes the deliveries found that are still as found, then
// the attempts and statistics marks of those that are gone, adding what it
// deleted to out.
func (s *deliveryStore) pruneFound(ctx context.Context, projectID string, found []prunable, fin bson.A, out retention.Counts) error {
	ids := make([]string, len(found))
	// Deliveries are deleted as they were found, grouped by their number
	// of attempts: one that a retry moved since (a new attempt, even
	// finished already) is left, and so is the new attempt.
	byAttempts := map[int64][]string{}
	for i, f := range found {
		ids[i] = f.ID
		byAttempts[f.Attempts] = append(byAttempts[f.Attempts], f.ID)
	}
	s.forget(ids)
	for n, group := range byAttempts {
		res, err := s.deliveries.DeleteMany(ctx, bson.D{
			{Key: "_id", Value: bson.D{{Key: "$in", Value: group}}},
			{Key: "attempts", Value: n},
			{Key: "status", Value: bson.D{{Key: "$in", Value: fin}}},
		})
		if err != nil {
			return fmt.Errorf("prune deliveries of %s: %w", projectID, err)
		}
		out[retention.KindDeliveries] += res.DeletedCount
	}
	// The ones still there were left, or stored again by a change since:
	// their attempts stay.
	left, err := s.existing(ctx, ids)
	if err != nil {
		return err
	}
	marks, err := s.pruneGoneAttempts(ctx, projectID, byAttempts, left, out)
	if err != nil {
		return err
	}
	if len(marks) > 0 {
		if _, err := s.marks.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: marks}}}}); err != nil {
			return fmt.Errorf("prune statistics marks of %s: %w", projectID, err)
		}
	}
	return nil
}

// pruneGoneAttempts deletes the attempts of the deliveries of byAttempts
// (ids by their number of attempts when found) that are not left, adding
// them to out, and returns the ids of their statistics marks.
func (s *deliveryStore) pruneGoneAttempts(ctx context.Context, projectID string, byAttempts map[int64][]string, left map[string]bool, out retention.Counts) ([]string, error) {
	var marks []string
	for n, group := range byAttempts {
		var gone []string
		for _, id := range group {
			if left[id] {
				continue
			}
			gone = append(gone, id)
			for a := int64(1); a <= n; a++ {
				marks = append(marks, fmt.Sprintf("%s:%d", id, a*8+3))
			}
		}
		if len(gone) == 0 {
			continue
		}
		deleted, err := s.deleteAttempts(ctx, projectID, gone, n)
		if err != nil {
			return nil, err
		}
		out[retention.KindAttempts] += deleted
	}
	return marks, nil
}

// deleteAttempts deletes the attempts up to n of the deliveries gone, and
// returns how many stay deleted. A retry racing the prune may have stored
// one of those deliveries again meanwhile (see restorePruned): its
// attempts, read before the delete, are then inserted again, so that no
// delivery is left without the attempts it had.
func (s *deliveryStore) deleteAttempts(ctx context.Context, projectID string, gone []string, n int64) (int64, error) {
	filter := bson.D{
		{Key: "delivery_id", Value: bson.D{{Key: "$in", Value: gone}}},
		{Key: "attempt", Value: bson.D{{Key: "$lte", Value: n}}},
	}
	cur, err := s.attempts.Find(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("read attempts of %s to prune: %w", projectID, err)
	}
	var docs []attemptDoc
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("read attempts of %s to prune: %w", projectID, err)
	}
	res, err := s.attempts.DeleteMany(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("prune attempts of %s: %w", projectID, err)
	}
	back, err := s.existing(ctx, gone)
	if err != nil {
		return 0, err
	}
	var again []any
	for i := range docs {
		if back[docs[i].DeliveryID] {
			again = append(again, &docs[i])
		}
	}
	if len(again) == 0 {
		return res.DeletedCount, nil
	}
	_, err = s.attempts.InsertMany(ctx, again, options.InsertMany().SetOrdered(false))
	fresh, err := insertedOf(len(again), err)
	if err != nil {
		return 0, fmt.Errorf("insert again %d attempts of %s: %w", len(again), projectID, err)
	}
	deleted := res.DeletedCount
	for _, f := range fresh {
		if f {
			deleted--
		}
	}
	return deleted, nil
}

// pruneStatistics deletes the statistics of projectID of the minutes
// before cutoff, adding them to out.
func (s *deliveryStore) pruneStatistics(ctx context.Context, projectID string, cutoff time.Time, out retention.Counts) error {
	old := bson.D{{Key: "project_id", Value: projectID}, {Key: "minute", Value: bson.D{{Key: "$lt", Value: statMinute(cutoff)}}}}
	for _, c := range []*mongo.Collection{s.deliveryStats, s.attemptStats} {
		res, err := c.DeleteMany(ctx, old)
		if err != nil {
			return fmt.Errorf("prune statistics of %s: %w", projectID, err)
		}
		out[retention.KindStatistics] += res.DeletedCount
	}
	return nil
}

// existing returns which of ids are stored.
func (s *deliveryStore) existing(ctx context.Context, ids []string) (map[string]bool, error) {
	cur, err := s.deliveries.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("find deliveries: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("find deliveries: %w", err)
	}
	out := make(map[string]bool, len(docs))
	for _, d := range docs {
		out[d.ID] = true
	}
	return out, nil
}

// forget drops ids from the deliveries known to be stored.
func (s *deliveryStore) forget(ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.stored, id)
	}
}

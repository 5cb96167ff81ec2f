package ingest

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hookmesh/hookmesh/internal/retention"
)

// PruneBatch deletes one batch of a project's idempotency claims and events
// created before cutoff (with their outbox rows or publish markers). It
// implements retention.Store for the pruner.
//
// The claims go first: a key whose claim is gone can be used again at once
// by a new event, while a claim whose event were gone first would make its
// key's next request take the old event's id over as abandoned.
func (s *Service) PruneBatch(ctx context.Context, projectID string, cutoff time.Time, limit int) (retention.Counts, bool, error) {
	return s.store.prune(ctx, projectID, cutoff, limit)
}

// The statements of the PostgreSQL store's pruner.
const (
	// pgPruneClaims deletes up to $3 claims of project $1 made before $2,
	// oldest first, by claims_by_time (the order keeps the planner on the
	// index when it guesses the range large).
	pgPruneClaims = `DELETE FROM claims WHERE (project_id, key) IN (
	SELECT project_id, key FROM claims WHERE project_id = $1 AND create_time < $2
	ORDER BY create_time LIMIT $3 FOR UPDATE SKIP LOCKED)`

	// pgPruneEvents deletes up to $3 events of project $1 created before
	// $2, oldest first, by events_by_time, and their outbox rows (an event
	// the broker never confirmed in all that time) by the primary key.
	pgPruneEvents = `WITH doomed AS (
	SELECT id FROM events WHERE project_id = $1 AND create_time < $2
	ORDER BY create_time, id LIMIT $3 FOR UPDATE SKIP LOCKED
), gone AS (
	DELETE FROM events e USING doomed WHERE e.id = doomed.id RETURNING e.id
), unsent AS (
	DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM gone))
)
SELECT count(*) FROM gone`
)

func (s *pgStore) prune(ctx context.Context, projectID string, cutoff time.Time, limit int) (retention.Counts, bool, error) {
	out := retention.Counts{}
	tag, err := s.pool.Exec(ctx, pgPruneClaims, projectID, cutoff, limit)
	if err != nil {
		return out, false, fmt.Errorf("prune idempotency keys of %s: %w", projectID, err)
	}
	out[retention.KindClaims] = tag.RowsAffected()
	var n int64
	if err := s.pool.QueryRow(ctx, pgPruneEvents, projectID, cutoff, limit).Scan(&n); err != nil {
		return out, false, fmt.Errorf("prune events of %s: %w", projectID, err)
	}
	out[retention.KindEvents] = n
	return out, out[retention.KindClaims] >= int64(limit) || n >= int64(limit), nil
}

// prune deletes, from MongoDB, up to limit claims and up to limit events
// (found by their project_id, create_time indexes) and the publish markers
// of those events.
func (s *mongoStore) prune(ctx context.Context, projectID string, cutoff time.Time, limit int) (retention.Counts, bool, error) {
	out := retention.Counts{}
	old := bson.D{{Key: "project_id", Value: projectID}, {Key: "create_time", Value: bson.D{{Key: "$lt", Value: cutoff}}}}
	more := false
	for _, kind := range []struct {
		name, coll, marks string
	}{{retention.KindClaims, claimsCollection, ""}, {retention.KindEvents, eventsCollection, publishedCollection}} {
		coll := s.db.Collection(kind.coll)
		cur, err := coll.Find(ctx, old, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
		if err != nil {
			return out, false, fmt.Errorf("find %s of %s to prune: %w", kind.name, projectID, err)
		}
		var found []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &found); err != nil {
			return out, false, fmt.Errorf("find %s of %s to prune: %w", kind.name, projectID, err)
		}
		if len(found) == 0 {
			continue
		}
		more = more || len(found) >= limit
		ids := make([]string, len(found))
		for i := range found {
			ids[i] = found[i].ID
		}
		// The time is checked again: a claim taken over since is kept.
		filter := append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, old...)
		res, err := coll.DeleteMany(ctx, filter)
		if err != nil {
			return out, false, fmt.Errorf("prune %s of %s: %w", kind.name, projectID, err)
		}
		out[kind.name] = res.DeletedCount
		if kind.marks != "" {
			if _, err := s.db.Collection(kind.marks).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
				return out, false, fmt.Errorf("prune publish markers of %s: %w", projectID, err)
			}
		}
	}
	return out, more, nil
}

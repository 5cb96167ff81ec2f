package ingest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hookmesh/hookmesh/internal/store"
)

// The outbox: an event is stored before it is published, and once the
// broker has confirmed it, a marker with the event's id is inserted into
// publishedCollection. An event without a marker was stored but perhaps not
// published (the broker was away, or the process died in between); it is
// published again by the sweeper, or at once when its idempotency key is
// sent again. The router and the status service are idempotent, so an
// event published twice (a marker lost in a crash) makes no second
// delivery id.
const publishedCollection = "published"

// publishedDoc marks an event as confirmed by the broker.
type publishedDoc struct {
	ID   string    `bson:"_id"`
	Time time.Time `bson:"time"`
}

// markPublished records that the broker confirmed the event.
func (s *eventStore) markPublished(ctx context.Context, eventID string) error {
	err := s.markers.Insert(ctx, publishedDoc{ID: eventID, Time: time.Now().UTC()})
	if err != nil && !store.IsDuplicateKey(err) {
		return fmt.Errorf("mark event %s published: %w", eventID, err)
	}
	return nil
}

// published reports which of ids have a marker.
func (s *eventStore) published(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := s.db.Collection(publishedCollection).Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read publish markers: %w", err)
	}
	var docs []publishedDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read publish markers: %w", err)
	}
	for _, d := range docs {
		out[d.ID] = true
	}
	return out, nil
}

// unpublishedSince returns the original (not duplicate) events created in
// [from, to) that have no marker. It reads only ids until it knows which
// events need publishing.
func (s *eventStore) unpublishedSince(ctx context.Context, from, to time.Time) ([]eventDoc, error) {
	cur, err := s.db.Collection(eventsCollection).Find(ctx, bson.D{
		{Key: "is_duplicate", Value: false},
		{Key: "create_time", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}},
	}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("find events to sweep: %w", err)
	}
	var found []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &found); err != nil {
		return nil, fmt.Errorf("find events to sweep: %w", err)
	}
	ids := make([]string, len(found))
	for i := range found {
		ids[i] = found[i].ID
	}
	done, err := s.published(ctx, ids)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range ids {
		if !done[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	cur, err = s.db.Collection(eventsCollection).Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: missing}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("load events to sweep: %w", err)
	}
	var docs []eventDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("load events to sweep: %w", err)
	}
	return docs, nil
}

// Sweep publishes the events stored at least grace ago, and since the last
// sweep of this process (at most lookback ago), that have no publish
// marker. RunSweeper calls it periodically; it is safe on several ingest
// replicas at once (a double publish is harmless).
func (s *Service) Sweep(ctx context.Context, lookback, grace time.Duration) (int, error) {
	now := time.Now().UTC()
	to := now.Add(-grace)
	from := now.Add(-lookback)
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	// Overlap the previous window by grace, for events stamped by a replica
	// whose clock is a little behind.
	if !s.sweptUntil.IsZero() && s.sweptUntil.Add(-grace).After(from) {
		from = s.sweptUntil.Add(-grace)
	}
	docs, err := s.store.unpublishedSince(ctx, from, to)
	if err != nil {
		return 0, err
	}
	// An event whose request is still waiting for the broker's confirm
	// (the broker is away, say) is its request's to publish; the next
	// sweeps look at it again, in case the request gives up.
	until := to
	docs = slices.DeleteFunc(docs, func(d eventDoc) bool {
		_, busy := s.publishing.Load(d.ID)
		if busy && d.CreateTime.Before(until) {
			until = d.CreateTime
		}
		return busy
	})
	for i := range docs {
		if err := s.publish(ctx, &docs[i]); err != nil {
			return i, err
		}
	}
	s.sweptUntil = until
	if len(docs) > 0 {
		s.logger.InfoContext(ctx, "published events the broker had not confirmed", "events", len(docs))
	}
	return len(docs), nil
}

// RunSweeper sweeps every interval until ctx ends.
func (s *Service) RunSweeper(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Sweep(ctx, s.cfg.SweepLookback, s.cfg.SweepGrace); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "outbox sweep failed", "err", err)
		}
	}
}

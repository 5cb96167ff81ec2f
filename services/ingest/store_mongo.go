package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hookmesh/hookmesh/internal/store"
)

const (
	eventsCollection = "events"
	claimsCollection = "idempotency_keys"
)

// claimDoc reserves an idempotency key for the first event that used it.
// Its deterministic _id (project and key) makes the claim a plain insert that
// exactly one request wins, on MongoDB and FerretDB alike.
type claimDoc struct {
	ID         string    `bson:"_id"`
	ProjectID  string    `bson:"project_id"`
	EventID    string    `bson:"event_id"`
	CreateTime time.Time `bson:"create_time"`
}

// claimID is unambiguous because project ids have a fixed shape without ':'.
func claimID(projectID, key string) string { return projectID + ":" + key }

// mongoStore keeps events in MongoDB (or FerretDB). Inserts from concurrent
// requests are written together (store.Inserter): each request still waits
// for its own event to be durable.
type mongoStore struct {
	db      *mongo.Database
	events  *store.Inserter
	claims  *store.Inserter
	markers *store.Inserter
}

// NewMongoStore returns a Store keeping events in db.
func NewMongoStore(db *mongo.Database) Store {
	return &mongoStore{
		db:      db,
		events:  store.NewInserter(db.Collection(eventsCollection), 4, 256),
		claims:  store.NewInserter(db.Collection(claimsCollection), 2, 256),
		markers: store.NewInserter(db.Collection(publishedCollection), 2, 256),
	}
}

func (s *mongoStore) close() {
	s.events.Close()
	s.claims.Close()
	s.markers.Close()
}

func (s *mongoStore) init(ctx context.Context) error {
	return store.EnsureIndexes(ctx, s.db, []store.Index{
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "_id", Value: -1}}}},
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "idempotency_key", Value: 1}}}},
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "event_type", Value: 1}, {Key: "_id", Value: -1}}}},
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "is_duplicate", Value: 1}, {Key: "create_time", Value: 1}}}},
		// These also create the collections up front: FerretDB creates a
		// collection on its first insert, and concurrent first inserts can
		// race.
		{Collection: claimsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}}}},
		// The pruner finds a project's old claims and events by these.
		{Collection: claimsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "create_time", Value: 1}}}},
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "create_time", Value: 1}}}},
		{Collection: publishedCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "time", Value: 1}}}},
	})
}

// claim tries to reserve the key for eventID. It returns "" when this event
// won, else the event id of the claim that exists and its age.
func (s *mongoStore) claim(ctx context.Context, projectID, key, eventID string, now time.Time) (string, time.Time, error) {
	doc := claimDoc{ID: claimID(projectID, key), ProjectID: projectID, EventID: eventID, CreateTime: now}
	err := s.claims.Insert(ctx, doc)
	if err == nil {
		return "", time.Time{}, nil
	}
	if !store.IsDuplicateKey(err) {
		return "", time.Time{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	var existing claimDoc
	if err := s.db.Collection(claimsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: doc.ID}}).Decode(&existing); err != nil {
		return "", time.Time{}, fmt.Errorf("read idempotency claim: %w", err)
	}
	return existing.EventID, existing.CreateTime, nil
}

// orders is false: numbering a key's events gap-free needs the sequence
// bumped in the transaction that stores the event, and FerretDB has no
// transactions.
func (s *mongoStore) orders() bool { return false }

func (s *mongoStore) insert(ctx context.Context, doc *eventDoc) error {
	err := s.events.Insert(ctx, doc)
	if store.IsDuplicateKey(err) {
		return errDuplicate
	}
	if err != nil {
		return fmt.Errorf("store event: %w", err)
	}
	return nil
}

func (s *mongoStore) get(ctx context.Context, projectID, id string) (*eventDoc, error) {
	var doc eventDoc
	err := s.db.Collection(eventsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "project_id", Value: projectID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load event %s: %w", id, err)
	}
	return &doc, nil
}

func (s *mongoStore) list(ctx context.Context, f listFilter) ([]eventDoc, error) {
	q := bson.D{{Key: "project_id", Value: f.projectID}}
	if f.eventType != "" {
		q = append(q, bson.E{Key: "event_type", Value: f.eventType})
	}
	if f.endpointID != "" {
		q = append(q, bson.E{Key: "endpoint_id", Value: f.endpointID})
	}
	if f.ownerID != "" {
		q = append(q, bson.E{Key: "owner_id", Value: f.ownerID})
	}
	if f.idempotencyKey != "" {
		q = append(q, bson.E{Key: "idempotency_key", Value: f.idempotencyKey})
	}
	if f.duplicate != nil {
		q = append(q, bson.E{Key: "is_duplicate", Value: *f.duplicate})
	}
	timeRange := bson.D{}
	if !f.start.IsZero() {
		timeRange = append(timeRange, bson.E{Key: "$gte", Value: f.start})
	}
	if !f.end.IsZero() {
		timeRange = append(timeRange, bson.E{Key: "$lt", Value: f.end})
	}
	if len(timeRange) > 0 {
		q = append(q, bson.E{Key: "create_time", Value: timeRange})
	}
	if f.before != "" {
		q = append(q, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: f.before}}})
	}
	cur, err := s.db.Collection(eventsCollection).Find(ctx, q, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(f.limit)))
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	var docs []eventDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return docs, nil
}

// In MongoDB, the outbox is a marker with the event's id, inserted into
// publishedCollection once the broker has confirmed the event.
const publishedCollection = "published"

// publishedDoc marks an event as confirmed by the broker.
type publishedDoc struct {
	ID   string    `bson:"_id"`
	Time time.Time `bson:"time"`
}

// markPublished records that the broker confirmed the event.
func (s *mongoStore) markPublished(ctx context.Context, eventID string) error {
	err := s.markers.Insert(ctx, publishedDoc{ID: eventID, Time: time.Now().UTC()})
	if err != nil && !store.IsDuplicateKey(err) {
		return fmt.Errorf("mark event %s published: %w", eventID, err)
	}
	return nil
}

// published reports which of ids have a marker.
func (s *mongoStore) published(ctx context.Context, ids []string) (map[string]bool, error) {
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
func (s *mongoStore) unpublishedSince(ctx context.Context, from, to time.Time) ([]eventDoc, error) {
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

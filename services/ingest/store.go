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

// eventDoc is an event as stored.
type eventDoc struct {
	ID             string            `bson:"_id"`
	ProjectID      string            `bson:"project_id"`
	EventType      string            `bson:"event_type"`
	Data           []byte            `bson:"data"`
	CustomHeaders  map[string]string `bson:"custom_headers,omitempty"`
	IdempotencyKey string            `bson:"idempotency_key,omitempty"`
	EndpointID     string            `bson:"endpoint_id,omitempty"`
	OwnerID        string            `bson:"owner_id,omitempty"`
	Broadcast      bool              `bson:"broadcast"`
	IsDuplicate    bool              `bson:"is_duplicate"`
	DuplicateOf    string            `bson:"duplicate_of,omitempty"`
	CreateTime     time.Time         `bson:"create_time"`
}

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

// eventStore keeps events. Inserts from concurrent requests are written
// together (store.Inserter): each request still waits for its own event to
// be durable.
type eventStore struct {
	db      *mongo.Database
	events  *store.Inserter
	claims  *store.Inserter
	markers *store.Inserter
}

func newEventStore(db *mongo.Database) *eventStore {
	return &eventStore{
		db:      db,
		events:  store.NewInserter(db.Collection(eventsCollection), 4, 256),
		claims:  store.NewInserter(db.Collection(claimsCollection), 2, 256),
		markers: store.NewInserter(db.Collection(publishedCollection), 2, 256),
	}
}

func (s *eventStore) close() {
	s.events.Close()
	s.claims.Close()
	s.markers.Close()
}

func (s *eventStore) init(ctx context.Context) error {
	return store.EnsureIndexes(ctx, s.db, []store.Index{
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "_id", Value: -1}}}},
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "idempotency_key", Value: 1}}}},
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "event_type", Value: 1}, {Key: "_id", Value: -1}}}},
		{Collection: eventsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "is_duplicate", Value: 1}, {Key: "create_time", Value: 1}}}},
		// These also create the collections up front: FerretDB creates a
		// collection on its first insert, and concurrent first inserts can
		// race.
		{Collection: claimsCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}}}},
		{Collection: publishedCollection, Model: mongo.IndexModel{Keys: bson.D{{Key: "time", Value: 1}}}},
	})
}

// claim tries to reserve the key for eventID. It returns "" when this event
// won, else the event id of the claim that exists and its age.
func (s *eventStore) claim(ctx context.Context, projectID, key, eventID string, now time.Time) (string, time.Time, error) {
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

// insert stores an event; errDuplicate when its _id exists.
func (s *eventStore) insert(ctx context.Context, doc *eventDoc) error {
	err := s.events.Insert(ctx, doc)
	if store.IsDuplicateKey(err) {
		return errDuplicate
	}
	if err != nil {
		return fmt.Errorf("store event: %w", err)
	}
	return nil
}

var errDuplicate = errors.New("event exists")

func (s *eventStore) get(ctx context.Context, projectID, id string) (*eventDoc, error) {
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

type listFilter struct {
	projectID, eventType, endpointID, ownerID, idempotencyKey string
	start, end                                                time.Time
	before                                                    string
	limit                                                     int
	duplicate                                                 *bool
}

func (s *eventStore) list(ctx context.Context, f listFilter) ([]eventDoc, error) {
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

package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/hookmesh/hookmesh/internal/retention"
)

// Store keeps ingest's events, the idempotency claims and the outbox (which
// events the broker has confirmed). NewPostgresStore keeps them in
// PostgreSQL tables, NewMongoStore in MongoDB collections; both behave
// alike.
type Store interface {
	// init creates the tables or indexes.
	init(ctx context.Context) error
	// close finishes the writes in progress.
	close()
	// claim tries to reserve the idempotency key for eventID: a plain
	// insert that exactly one of concurrent requests wins. It returns ""
	// when this event won, else the event id of the existing claim and the
	// time it was made.
	claim(ctx context.Context, projectID, key, eventID string, now time.Time) (string, time.Time, error)
	// insert stores an event, written together with the events of
	// concurrent requests; it returns once the event is durable, and
	// errDuplicate when an event with its id exists. For an original with
	// an ordering key it sets doc.OrderingSeq (see orders).
	insert(ctx context.Context, doc *eventDoc) error
	// get loads an event of a project; nil when there is none.
	get(ctx context.Context, projectID, id string) (*eventDoc, error)
	// list returns a project's events that match f, newest first, at most
	// f.limit, starting after the event f.before. Newest is by create_time
	// then id in PostgreSQL, by id in MongoDB: the same order, but for an
	// event stored under an abandoned claim, whose id is older than its
	// create_time.
	list(ctx context.Context, f listFilter) ([]eventDoc, error)
	// markPublished records that the broker confirmed the event.
	markPublished(ctx context.Context, eventID string) error
	// published reports which of ids, stored events, the broker
	// confirmed.
	published(ctx context.Context, ids []string) (map[string]bool, error)
	// unpublishedSince returns the original (not duplicate) events created
	// in [from, to) that the broker has not confirmed, by id.
	unpublishedSince(ctx context.Context, from, to time.Time) ([]eventDoc, error)
	// orders reports whether the store numbers the events of an ordering
	// key: insert then sets OrderingSeq of an original event with an
	// OrderingKey, in the transaction that stores it. A store that cannot
	// (MongoDB: FerretDB has no transactions) refuses such events.
	orders() bool
	// prune deletes up to limit of a project's idempotency claims and up to
	// limit of its events (with their outbox rows or markers) created
	// before cutoff; more says there may be more.
	prune(ctx context.Context, projectID string, cutoff time.Time, limit int) (deleted retention.Counts, more bool, err error)
}

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
	// OrderingKey puts the event in its project's line of that key;
	// OrderingSeq is its place there, from 1, set when an original is
	// stored (0 for a duplicate and for an event without a key).
	OrderingKey string `bson:"ordering_key,omitempty"`
	OrderingSeq uint64 `bson:"ordering_seq,omitempty"`
}

// listFilter selects events for list. Empty strings, zero times and a nil
// duplicate select everything.
type listFilter struct {
	projectID, eventType, endpointID, ownerID, idempotencyKey string
	start, end                                                time.Time
	before                                                    string
	limit                                                     int
	duplicate                                                 *bool
}

var errDuplicate = errors.New("event exists")

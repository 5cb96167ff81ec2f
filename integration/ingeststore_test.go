package integration

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// ingestStore reaches into the events a stack's ingest keeps (PostgreSQL
// when the stack has a PostgreSQL URL, else MongoDB), to leave behind what
// a crash leaves.
type ingestStore struct {
	mongo *mongo.Database
	pg    *pgxpool.Pool
}

func openIngestStore(tb testing.TB, s *stack) *ingestStore {
	tb.Helper()
	if s.cfg.PostgresURL == "" {
		return &ingestStore{mongo: testenv.Client(tb).Database(s.cfg.DatabasePrefix + "_ingest")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgdb.Open(ctx, s.cfg.PostgresURL, s.cfg.DatabasePrefix+"_ingest")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return &ingestStore{pg: pool}
}

// storedEvent is an event as a crashed request left it.
type storedEvent struct {
	id, projectID, eventType, idempotencyKey, endpointID string
	data                                                 []byte
	createTime                                           time.Time
}

// insertUnconfirmed stores ev as ingest does before the broker confirms it.
func (st *ingestStore) insertUnconfirmed(tb testing.TB, ev storedEvent) {
	tb.Helper()
	ctx := context.Background()
	if st.pg != nil {
		tx, err := st.pg.Begin(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `INSERT INTO events (id, project_id, event_type, data, idempotency_key, endpoint_id, owner_id, broadcast, is_duplicate, duplicate_of, create_time)
VALUES ($1, $2, $3, $4, $5, $6, '', false, false, '', $7)`, ev.id, ev.projectID, ev.eventType, ev.data, ev.idempotencyKey, ev.endpointID, ev.createTime); err != nil {
			tb.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, create_time) VALUES ($1, $2)`, ev.id, ev.createTime); err != nil {
			tb.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			tb.Fatal(err)
		}
		return
	}
	doc := bson.D{
		{Key: "_id", Value: ev.id}, {Key: "project_id", Value: ev.projectID}, {Key: "event_type", Value: ev.eventType},
		{Key: "data", Value: ev.data}, {Key: "endpoint_id", Value: ev.endpointID},
		{Key: "broadcast", Value: false}, {Key: "is_duplicate", Value: false},
		{Key: "create_time", Value: ev.createTime},
	}
	if ev.idempotencyKey != "" {
		doc = append(doc, bson.E{Key: "idempotency_key", Value: ev.idempotencyKey})
	}
	if _, err := st.mongo.Collection("events").InsertOne(ctx, doc); err != nil {
		tb.Fatal(err)
	}
}

// claim reserves an idempotency key for eventID, as a request does first.
func (st *ingestStore) claim(tb testing.TB, projectID, key, eventID string, at time.Time) {
	tb.Helper()
	ctx := context.Background()
	if st.pg != nil {
		if _, err := st.pg.Exec(ctx, `INSERT INTO claims (project_id, key, event_id, create_time) VALUES ($1, $2, $3, $4)`, projectID, key, eventID, at); err != nil {
			tb.Fatal(err)
		}
		return
	}
	if _, err := st.mongo.Collection("idempotency_keys").InsertOne(ctx, bson.D{{Key: "_id", Value: projectID + ":" + key},
		{Key: "project_id", Value: projectID}, {Key: "event_id", Value: eventID}, {Key: "create_time", Value: at}}); err != nil {
		tb.Fatal(err)
	}
}

// confirmed reports whether ingest recorded the broker's confirm of the
// stored event eventID.
func (st *ingestStore) confirmed(tb testing.TB, eventID string) bool {
	tb.Helper()
	ctx := context.Background()
	if st.pg != nil {
		var stored, queued bool
		err := st.pg.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE id = $1), EXISTS (SELECT 1 FROM outbox WHERE id = $1)`, eventID).Scan(&stored, &queued)
		if err != nil {
			tb.Fatal(err)
		}
		return stored && !queued
	}
	n, err := st.mongo.Collection("published").CountDocuments(ctx, bson.D{{Key: "_id", Value: eventID}})
	if err != nil {
		tb.Fatal(err)
	}
	return n == 1
}

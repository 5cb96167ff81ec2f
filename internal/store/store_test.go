package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hookmesh/hookmesh/internal/store"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// The concerns a replica set needs are set on the client, and the server
// the tests run on (FerretDB here, MongoDB elsewhere) accepts them.
func TestClientAsksForMajority(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	sent := map[string]bson.Raw{}
	opts := store.ClientOptions(testenv.MongoURI(t)).SetMonitor(&event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			mu.Lock()
			defer mu.Unlock()
			sent[e.CommandName] = append(bson.Raw(nil), e.Command...)
		},
	})
	if opts.RetryWrites == nil || !*opts.RetryWrites || opts.RetryReads == nil || !*opts.RetryReads {
		t.Fatal("retryable writes and reads are not on")
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	db := client.Database(testenv.DatabaseName(t))
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatalf("insert with write concern majority: %v", err)
	}
	var got bson.M
	if err := db.Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil {
		t.Fatalf("read back with read concern majority: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if w, err := sent["insert"].LookupErr("writeConcern", "w"); err != nil || w.StringValue() != "majority" {
		t.Errorf("insert sent writeConcern.w %v (%v), want majority", w, err)
	}
	if lvl, err := sent["find"].LookupErr("readConcern", "level"); err != nil || lvl.StringValue() != "majority" {
		t.Errorf("find sent readConcern.level %v (%v), want majority", lvl, err)
	}
}

// A URI cannot weaken them.
func TestURICannotWeakenConcerns(t *testing.T) {
	t.Parallel()
	opts := store.ClientOptions("mongodb://127.0.0.1:27017/?w=1&readConcernLevel=local&retryWrites=false")
	if opts.WriteConcern.W != "majority" || opts.ReadConcern.Level != "majority" || !*opts.RetryWrites {
		t.Fatalf("w=%v readConcern=%v retryWrites=%v, want majority, majority, true", opts.WriteConcern.W, opts.ReadConcern.Level, *opts.RetryWrites)
	}
}

package integration

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// TestOutboxPublishesWhatWasStoredButNotConfirmed stores an event the way
// ingest does but, as if the process died before the broker confirmed it,
// with no publish marker: the sweeper publishes it, it is delivered once,
// and it is not published again.
func TestOutboxPublishesWhatWasStoredButNotConfirmed(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	const eventID = "evt_06h22zzzzzzzzzzzzzzzzzzzzz"
	// Stamped just past the sweeper's grace (5 s in tests), as an event
	// whose request died a moment ago.
	db := testenv.Client(t).Database(s.cfg.DatabasePrefix + "_ingest")
	_, err := db.Collection("events").InsertOne(context.Background(), bson.D{
		{Key: "_id", Value: eventID}, {Key: "project_id", Value: projectID}, {Key: "event_type", Value: "orphan"},
		{Key: "data", Value: []byte(`{"stored":"not published"}`)}, {Key: "endpoint_id", Value: ep.GetId()},
		{Key: "broadcast", Value: false}, {Key: "is_duplicate", Value: false},
		{Key: "create_time", Value: time.Now().UTC().Add(-6 * time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := recv.waitFor(t, "the swept event", func(r []received) bool { return len(r) == 1 })[0]
	if string(got.body) != `{"stored":"not published"}` || got.header.Get("X-Hookmesh-Event-Id") != eventID {
		t.Fatalf("received %s %v", got.body, got.header)
	}
	// Several sweeps later, nothing more.
	time.Sleep(5 * s.cfg.OutboxSweepInterval)
	if n := len(recv.requests()); n != 1 {
		t.Fatalf("the swept event was delivered %d times", n)
	}
	n, err := db.Collection("published").CountDocuments(context.Background(), bson.D{{Key: "_id", Value: eventID}})
	if err != nil || n != 1 {
		t.Fatalf("publish marker: %d %v", n, err)
	}
}

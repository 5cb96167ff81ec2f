package status

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// Short names for the statuses.
const (
	scheduled  = statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED
	processing = statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING
	success    = statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS
	retry      = statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY
	failed     = statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED
	discarded  = statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED
)

// testService returns a service over a fresh database with its indexes.
func testService(tb testing.TB) (*Service, *mongo.Database) {
	tb.Helper()
	db := testenv.Database(tb)
	s := New(DefaultConfig(), db, slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Init(ctx); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	return s, db
}

// delivery describes a test delivery; its changes are made by change.
type delivery struct {
	id, project, event, endpoint, eventType string
	created                                 time.Time
}

// change returns the state change of d moving to st in attempt n. Its time
// grows with (attempt, phase); outcomes carry a record and a RETRY a next
// attempt time.
func (d delivery) change(st statusv1.DeliveryStatus, n uint32) *busv1.StateChange {
	r, _ := rank(st)
	at := d.created.Add(time.Duration(n)*time.Minute + time.Duration(r)*time.Second)
	c := &busv1.StateChange{
		DeliveryId:      d.id,
		ProjectId:       d.project,
		EventId:         d.event,
		EndpointId:      d.endpoint,
		EventType:       d.eventType,
		Status:          st,
		Attempt:         n,
		Time:            timestamppb.New(at),
		EventCreateTime: timestamppb.New(d.created),
	}
	switch st {
	case success, retry, failed:
		code := int32(200)
		errText := ""
		if st != success {
			code, errText = 503, fmt.Sprintf("endpoint answered 503 on attempt %d", n)
		}
		c.Record = &statusv1.Attempt{
			DeliveryId:      d.id,
			Attempt:         n,
			StatusCode:      code,
			LatencyMs:       12 + n,
			RequestHeaders:  map[string]string{"X-Hookmesh-Attempt": fmt.Sprint(n), "Content-Type": "application/json"},
			ResponseHeaders: map[string]string{"Server": "test", "X.Dotted": "legal in HTTP", "$dollar": "too"},
			ResponseBody:    `{"ok":true}`,
			Error:           errText,
			RemoteIp:        "127.0.0.1",
			StartTime:       timestamppb.New(at.Add(-time.Second)),
			Url:             "https://example.test/hook",
		}
	}
	if st == retry {
		c.NextAttemptTime = timestamppb.New(at.Add(30 * time.Second))
	}
	return c
}

// snapshot returns the stored documents of the given deliveries and their
// attempts, for comparing before and after a replay.
func snapshot(tb testing.TB, db *mongo.Database, ids ...string) string {
	tb.Helper()
	ctx := context.Background()
	var out string
	for _, coll := range []struct{ name, key string }{{deliveriesCollection, "_id"}, {attemptsCollection, "delivery_id"}} {
		cur, err := db.Collection(coll.name).Find(ctx,
			bson.D{{Key: coll.key, Value: bson.D{{Key: "$in", Value: ids}}}},
			options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			tb.Fatalf("snapshot %s: %v", coll.name, err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			tb.Fatalf("snapshot %s: %v", coll.name, err)
		}
		for _, d := range docs {
			out += d.String() + "\n"
		}
	}
	return out
}

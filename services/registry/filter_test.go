package registry

import (
	"encoding/json"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestLegacyFilterText checks that a filter stored as a BSON document, as
// versions before filters were text stored them (keys escaped), is shown as
// the JSON text of the same document.
func TestLegacyFilterText(t *testing.T) {
	t.Parallel()
	raw, err := bson.Marshal(bson.D{
		{Key: "%24and", Value: bson.A{bson.D{{Key: "data%2Etotal", Value: bson.D{{Key: "%24gt", Value: 10.5}}}}, bson.D{{Key: "tags", Value: bson.A{nil, true, "x", bson.A{}}}}}},
		{Key: "100%25", Value: "%2E"},
		{Key: "n", Value: int64(-3)},
	})
	if err != nil {
		t.Fatal(err)
	}
	text, err := legacyFilterText(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal([]byte(text), &got); err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	_ = json.Unmarshal([]byte(`{"$and": [{"data.total": {"$gt": 10.5}}, {"tags": [null, true, "x", []]}], "100%": "%2E", "n": -3}`), &want)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Fatalf("legacy filter = %s, want %s", gb, wb)
	}
	if err := checkFilterText("filter.body", text); err != nil {
		t.Fatalf("the legacy filter's text does not compile: %v", err)
	}
	if text, err := legacyFilterText(nil); text != "" || err != nil {
		t.Fatalf("no filter = %q, %v", text, err)
	}
}

// TestLegacyFilterThroughTheAPI stores a subscription as versions before
// filters were text did, and reads it through the API as JSON text; an
// update then stores text and drops the old document.
func TestLegacyFilterThroughTheAPI(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	c := env.clients[0]
	ctx := t.Context()
	p, key := newProject(t, c, "legacy")
	ep := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id})
	body, err := bson.Marshal(bson.D{{Key: "amount", Value: bson.D{{Key: "%24gte", Value: 10.5}}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	doc := subscriptionDoc{ID: "sub_legacy", ProjectID: p.Id, EndpointID: ep.Id, Name: "old",
		Filter: filterDoc{EventTypes: []string{"invoice.*"}, Body: body}, CreateTime: now, UpdateTime: now, Version: 1}
	if _, err := env.svc.store.subscriptions.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	got := must(c.GetSubscription(ctx, key, &registryv1.GetSubscriptionRequest{ProjectId: p.Id, SubscriptionId: doc.ID}))(t).Subscription
	if got.GetFilter().GetBody() != `{"amount":{"$gte":10.5}}` || got.GetFilter().GetHeaders() != "" {
		t.Fatalf("legacy filter read as %v", got.GetFilter())
	}
	must(c.UpdateSubscription(ctx, key, &registryv1.UpdateSubscriptionRequest{ProjectId: p.Id, SubscriptionId: doc.ID,
		Filter: &registryv1.Filter{Body: `{"amount": 12345678901234567890}`}}))(t)
	var stored subscriptionDoc
	if err := env.svc.store.subscriptions.FindOne(ctx, bson.D{{Key: "_id", Value: doc.ID}}).Decode(&stored); err != nil {
		t.Fatal(err)
	}
	if stored.Filter.BodyText != `{"amount": 12345678901234567890}` || len(stored.Filter.Body) != 0 {
		t.Fatalf("stored filter after the update: %+v", stored.Filter)
	}
}

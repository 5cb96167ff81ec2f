package registry

import (
	"encoding/json"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
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

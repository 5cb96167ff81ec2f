package store_test

import (
	"context"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hookmesh/hookmesh/internal/store"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// TestInserterGivesEachCallerItsOwnOutcome inserts from many goroutines at
// once, some with _ids that collide: each caller learns its own outcome and
// every document that was accepted is stored.
func TestInserterGivesEachCallerItsOwnOutcome(t *testing.T) {
	t.Parallel()
	db := testenv.Database(t)
	coll := db.Collection("docs")
	ins := store.NewInserter(coll, 2, 16)
	defer ins.Close()
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Every tenth document reuses the _id of the one before it.
			id := i
			if i%10 == 9 {
				id = i - 1
			}
			errs[i] = ins.Insert(context.Background(), bson.D{{Key: "_id", Value: id}, {Key: "i", Value: i}})
		})
	}
	wg.Wait()
	dups := 0
	for i, err := range errs {
		switch {
		case err == nil:
		case store.IsDuplicateKey(err) && (i%10 == 9 || i%10 == 8):
			dups++
		default:
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	if dups != n/10 {
		t.Fatalf("%d duplicate-key answers, want %d", dups, n/10)
	}
	count, err := coll.CountDocuments(context.Background(), bson.D{})
	if err != nil || count != n-n/10 {
		t.Fatalf("stored %d documents (%v), want %d", count, err, n-n/10)
	}
}

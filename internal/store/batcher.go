package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Inserter inserts documents one at a time for its callers but many at a
// time into the database: concurrent Insert calls are gathered into one
// unordered InsertMany (a group commit). It waits for nothing to fill a
// batch: a lone caller writes at once, and under load the callers that
// arrive while a batch is being written form the next one. FerretDB takes
// about seven times more documents per second this way than one by one.
type Inserter struct {
	coll     *mongo.Collection
	maxBatch int
	reqs     chan insertReq
	stop     chan struct{}
	wg       sync.WaitGroup
}

type insertReq struct {
	doc  any
	done chan error
}

// NewInserter starts writers goroutines inserting into coll, each batch at
// most maxBatch documents. Close stops them.
func NewInserter(coll *mongo.Collection, writers, maxBatch int) *Inserter {
	b := &Inserter{coll: coll, maxBatch: maxBatch, reqs: make(chan insertReq, writers*maxBatch), stop: make(chan struct{})}
	for range writers {
		b.wg.Go(b.run)
	}
	return b
}

// ErrInserterClosed is returned by Insert after Close.
var ErrInserterClosed = errors.New("store: inserter closed")

// Insert inserts doc and returns its own outcome: nil, a duplicate-key
// error (IsDuplicateKey), or the batch's error.
func (b *Inserter) Insert(ctx context.Context, doc any) error {
	req := insertReq{doc: doc, done: make(chan error, 1)}
	select {
	case b.reqs <- req:
	case <-b.stop:
		return ErrInserterClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the insert happens whatever the caller does: wait for it
	// so that the answer says what was stored.
	return <-req.done
}

// Close stops the writers after the queued inserts are done.
func (b *Inserter) Close() {
	close(b.stop)
	b.wg.Wait()
}

func (b *Inserter) run() {
	for {
		var first insertReq
		select {
		case first = <-b.reqs:
		case <-b.stop:
			// Finish what is queued.
			for {
				select {
				case r := <-b.reqs:
					b.write([]insertReq{r})
				default:
					return
				}
			}
		}
		batch := []insertReq{first}
	fill:
		for len(batch) < b.maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.write(batch)
	}
}

func (b *Inserter) write(batch []insertReq) {
	docs := make([]any, len(batch))
	for i, r := range batch {
		docs[i] = r.doc
	}
	ctx := context.Background()
	_, err := b.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		for _, r := range batch {
			r.done <- nil
		}
		return
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	failed := make(map[int]error, len(bwe.WriteErrors))
	for _, we := range bwe.WriteErrors {
		failed[we.Index] = mongo.WriteException{WriteErrors: []mongo.WriteError{we.WriteError}}
	}
	for i, r := range batch {
		if ferr, ok := failed[i]; ok {
			r.done <- fmt.Errorf("insert into %s: %w", b.coll.Name(), ferr)
			continue
		}
		r.done <- nil
	}
}

// Package groupcommit writes many callers' items with one statement: each
// caller hands in its item and waits for its own outcome, while writers
// gather the items that arrive together into one batch (a group commit).
package groupcommit

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Group gathers items of type T and writes them in batches; R is what each
// caller learns about its own item.
//
// A Group waits for nothing to fill a batch: a lone caller is written at
// once, and under load the callers that arrive while a batch is being
// written form the next one, up to the batch size.
type Group[T, R any] struct {
	write    func(ctx context.Context, items []T) ([]R, error)
	maxBatch int
	timeout  time.Duration
	reqs     chan req[T, R]
	stop     chan struct{}
	wg       sync.WaitGroup
	// mu orders Do's enqueueing before Close: once closed is set no item
	// enters the queue, so every queued item is written.
	mu     sync.RWMutex
	closed bool
}

type req[T, R any] struct {
	item T
	done chan result[R]
}

type result[R any] struct {
	r   R
	err error
}

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("groupcommit: closed")

// New starts writers goroutines that call write with at most maxBatch items
// at a time, each call bounded by timeout. write returns one result per
// item, in order, or an error that every item of the batch gets.
func New[T, R any](writers, maxBatch int, timeout time.Duration, write func(ctx context.Context, items []T) ([]R, error)) *Group[T, R] {
	g := &Group[T, R]{write: write, maxBatch: maxBatch, timeout: timeout,
		reqs: make(chan req[T, R], writers*maxBatch), stop: make(chan struct{})}
	for range writers {
		g.wg.Go(g.run)
	}
	return g
}

// Do writes item with others and returns its own result. Once the item is
// queued it is written whatever the caller's context does, and Do waits for
// that, so that its answer says what was stored.
func (g *Group[T, R]) Do(ctx context.Context, item T) (R, error) {
	r := req[T, R]{item: item, done: make(chan result[R], 1)}
	var zero R
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return zero, ErrClosed
	}
	select {
	case g.reqs <- r:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return zero, ctx.Err()
	}
	res := <-r.done
	return res.r, res.err
}

// Close stops the writers after the queued items are written.
func (g *Group[T, R]) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.stop)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *Group[T, R]) run() {
	for {
		var first req[T, R]
		select {
		case first = <-g.reqs:
		case <-g.stop:
			// Finish what is queued.
			for {
				select {
				case r := <-g.reqs:
					g.flush([]req[T, R]{r})
				default:
					return
				}
			}
		}
		batch := []req[T, R]{first}
	fill:
		for len(batch) < g.maxBatch {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		g.flush(batch)
	}
}

func (g *Group[T, R]) flush(batch []req[T, R]) {
	items := make([]T, len(batch))
	for i, r := range batch {
		items[i] = r.item
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	out, err := g.write(ctx, items)
	if err == nil && len(out) != len(items) {
		err = errors.New("groupcommit: write returned a result count unlike its item count")
	}
	for i, r := range batch {
		if err != nil {
			r.done <- result[R]{err: err}
			continue
		}
		r.done <- result[R]{r: out[i]}
	}
}

package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEachCallerGetsItsOwnResult writes from many goroutines at once: each
// gets the result for its own item, and the items travel in fewer batches
// than callers once they queue up behind a slow write.
func TestEachCallerGetsItsOwnResult(t *testing.T) {
	t.Parallel()
	var batches, biggest atomic.Int64
	g := New(1, 64, time.Minute, func(ctx context.Context, items []int) ([]int, error) {
		batches.Add(1)
		if n := int64(len(items)); n > biggest.Load() {
			biggest.Store(n)
		}
		time.Sleep(5 * time.Millisecond)
		out := make([]int, len(items))
		for i, v := range items {
			out[i] = v * 2
		}
		return out, nil
	})
	defer g.Close()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			got, err := g.Do(context.Background(), i)
			if err != nil || got != 2*i {
				t.Errorf("Do(%d) = %d, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	if batches.Load() >= 200 || biggest.Load() < 2 {
		t.Fatalf("%d batches for 200 items (largest %d): nothing was grouped", batches.Load(), biggest.Load())
	}
}

func TestBatchErrorReachesEveryCaller(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	g := New(2, 8, time.Minute, func(ctx context.Context, items []string) ([]bool, error) { return nil, boom })
	if _, err := g.Do(context.Background(), "x"); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	g.Close()
	if _, err := g.Do(context.Background(), "y"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunStopsEveryPartOnTheFirstFailure checks that a failing part stops
// the others and that Run waits for all of them.
func TestRunStopsEveryPartOnTheFirstFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	var stopped atomic.Int32
	waiter := func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // draining
		stopped.Add(1)
		return nil
	}
	err := Run(context.Background(), waiter, func(context.Context) error { return boom }, waiter)
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want %v", err, boom)
	}
	if n := stopped.Load(); n != 2 {
		t.Fatalf("%d parts had drained when Run returned, want 2", n)
	}
}

// TestRunEndsWithItsContext checks that Run returns nil once ctx ends and
// every part has returned nil.
func TestRunEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, func(ctx context.Context) error { <-ctx.Done(); return nil })
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

package ttlcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock that tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newCache(tb testing.TB, maxEntries int) (*Cache[int], *fakeClock) {
	tb.Helper()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	c := New[int](maxEntries)
	c.SetClock(clock.Now)
	return c, clock
}

// counting returns a loader that answers v under tag for ttl, and counts
// its calls.
func counting(calls *atomic.Int64, v int, tag string, ttl time.Duration, err error) Loader[int] {
	return func(context.Context) (int, string, time.Duration, error) {
		calls.Add(1)
		return v, tag, ttl, err
	}
}

func TestLoadKeepsAnswersForTheirTTL(t *testing.T) {
	t.Parallel()
	c, clock := newCache(t, 0)
	ctx := context.Background()
	var calls atomic.Int64
	for range 3 {
		if v, err := c.Load(ctx, "k", counting(&calls, 7, "p", time.Minute, nil)); v != 7 || err != nil {
			t.Fatalf("Load = %v, %v", v, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d loads for one key, want 1", calls.Load())
	}
	clock.Add(time.Minute)
	if v, _ := c.Load(ctx, "k", counting(&calls, 8, "p", time.Minute, nil)); v != 8 || calls.Load() != 2 {
		t.Fatalf("after expiry: %v with %d loads", v, calls.Load())
	}
}

func TestErrorsAreKeptOnlyWithATTL(t *testing.T) {
	t.Parallel()
	c, clock := newCache(t, 0)
	ctx := context.Background()
	notFound, unavailable := errors.New("not found"), errors.New("unavailable")
	var calls atomic.Int64
	for range 2 {
		if _, err := c.Load(ctx, "gone", counting(&calls, 0, "", time.Second, notFound)); !errors.Is(err, notFound) {
			t.Fatalf("Load = %v", err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("negative answer loaded %d times, want 1", calls.Load())
	}
	clock.Add(time.Second)
	c.Load(ctx, "gone", counting(&calls, 0, "", time.Second, notFound))
	if calls.Load() != 2 {
		t.Fatalf("negative answer outlived its ttl")
	}
	calls.Store(0)
	for range 2 {
		c.Load(ctx, "down", counting(&calls, 0, "", 0, unavailable))
	}
	if calls.Load() != 2 {
		t.Fatalf("an error with no ttl was kept")
	}
}

func TestInvalidate(t *testing.T) {
	t.Parallel()
	c, _ := newCache(t, 0)
	ctx := context.Background()
	var calls atomic.Int64
	c.Load(ctx, "a", counting(&calls, 1, "p1", time.Minute, nil))
	c.Load(ctx, "b", counting(&calls, 2, "p1", time.Minute, nil))
	c.Load(ctx, "c", counting(&calls, 3, "p2", time.Minute, nil))
	c.InvalidateTag("p1")
	for key, wantHit := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, ok, _ := c.Get(key); ok != wantHit {
			t.Errorf("after InvalidateTag(p1), Get(%s) hit = %v, want %v", key, ok, wantHit)
		}
	}
	c.Invalidate("c")
	if _, ok, _ := c.Get("c"); ok {
		t.Error("Invalidate(c) kept c")
	}
}

// TestInvalidateWinsOverARunningLoad checks that a load which read the
// source before an invalidation does not store its stale answer.
func TestInvalidateWinsOverARunningLoad(t *testing.T) {
	t.Parallel()
	c, _ := newCache(t, 0)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan int)
	go func() {
		v, _ := c.Load(ctx, "k", func(context.Context) (int, string, time.Duration, error) {
			close(started)
			<-release
			return 1, "p", time.Minute, nil // read before the invalidation
		})
		done <- v
	}()
	<-started
	c.Invalidate("k")
	// A caller after the invalidation does not join the stale load.
	var calls atomic.Int64
	if v, _ := c.Load(ctx, "k", counting(&calls, 2, "p", time.Minute, nil)); v != 2 || calls.Load() != 1 {
		t.Fatalf("Load after Invalidate = %v (%d loads), want a fresh 2", v, calls.Load())
	}
	close(release)
	if v := <-done; v != 1 {
		t.Fatalf("the waiting caller got %v, want its own answer 1", v)
	}
	if v, ok, _ := c.Get("k"); !ok || v != 2 {
		t.Fatalf("kept %v (hit %v), want the fresh 2", v, ok)
	}
}

func TestConcurrentMissesLoadOnce(t *testing.T) {
	t.Parallel()
	c, _ := newCache(t, 0)
	var calls atomic.Int64
	release := make(chan struct{})
	load := func(context.Context) (int, string, time.Duration, error) {
		calls.Add(1)
		<-release
		return 42, "", time.Minute, nil
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if v, err := c.Load(context.Background(), "k", load); v != 42 || err != nil {
				t.Errorf("Load = %v, %v", v, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // let the callers pile up on the flight
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d loads for 50 concurrent misses, want 1", calls.Load())
	}
}

func TestCallerGivingUpDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	c, _ := newCache(t, 0)
	release := make(chan struct{})
	load := func(ctx context.Context) (int, string, time.Duration, error) {
		select {
		case <-release:
			return 5, "", time.Minute, nil
		case <-ctx.Done():
			return 0, "", 0, ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error)
	go func() {
		_, err := c.Load(ctx, "k", load)
		first <- err
	}()
	time.Sleep(20 * time.Millisecond)
	second := make(chan int)
	go func() {
		v, _ := c.Load(context.Background(), "k", load)
		second <- v
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller got %v", err)
	}
	close(release)
	if v := <-second; v != 5 {
		t.Fatalf("second caller got %v, want 5", v)
	}
}

func TestBounded(t *testing.T) {
	t.Parallel()
	c, clock := newCache(t, 100)
	ctx := context.Background()
	var calls atomic.Int64
	for i := range 50 {
		c.Load(ctx, fmt.Sprint("short", i), counting(&calls, i, "", time.Second, nil))
	}
	clock.Add(2 * time.Second)
	for i := range 1000 {
		c.Load(ctx, fmt.Sprint("k", i), counting(&calls, i, "", time.Hour, nil))
		if n := c.Len(); n > 100 {
			t.Fatalf("cache holds %d entries, max 100", n)
		}
	}
	// The newest answer is always kept.
	if v, ok, _ := c.Get("k999"); !ok || v != 999 {
		t.Fatalf("newest entry missing")
	}
}

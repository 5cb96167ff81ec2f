// Package ttlcache is a small cache of answers that expire, safe for
// concurrent use and bounded in size. Concurrent misses of one key make one
// load (singleflight), and an invalidation wins over a load that was already
// running: its answer is handed to the callers that waited for it but not
// kept.
package ttlcache

import (
	"context"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultMaxEntries is the size past which a cache evicts.
const DefaultMaxEntries = 10_000

// loadTimeout bounds a shared load: it runs detached from the context of the
// caller that started it, so that one caller giving up does not fail the
// others waiting for the same answer.
const loadTimeout = 30 * time.Second

// Loader computes the answer for a key. It returns the value or the error to
// answer with, the tag under which InvalidateTag drops the answer (for
// example a project id), and how long to keep it; ttl <= 0 keeps nothing.
type Loader[V any] func(ctx context.Context) (val V, tag string, ttl time.Duration, err error)

// Cache maps string keys to values or errors, each kept for its own TTL.
type Cache[V any] struct {
	max   int
	now   func() time.Time
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]entry[V]
	// gen counts invalidations. A load stores its answer only if no
	// invalidation happened since it started, so a revocation is never
	// undone by a load that read the database before it.
	gen uint64
}

type entry[V any] struct {
	val     V
	err     error
	tag     string
	expires time.Time
}

type result[V any] struct {
	val V
	err error
}

// New returns a cache that evicts once it holds more than maxEntries
// (DefaultMaxEntries when maxEntries <= 0).
func New[V any](maxEntries int) *Cache[V] {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	return &Cache[V]{max: maxEntries, now: time.Now, entries: make(map[string]entry[V])}
}

// SetClock replaces the cache's clock, for tests.
func (c *Cache[V]) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// Get returns the answer kept for key, and false when there is none or it
// has expired.
func (c *Cache[V]) Get(key string) (V, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false, nil
	}
	return e.val, true, e.err
}

// Load returns the answer kept for key or, on a miss, calls load once for
// all the callers missing key at the same time.
func (c *Cache[V]) Load(ctx context.Context, key string, load Loader[V]) (V, error) {
	if v, ok, err := c.Get(key); ok {
		return v, err
	}
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	// The generation is part of the flight's key: a caller that arrives
	// after an invalidation does not join a load that started before it.
	ch := c.group.DoChan(strconv.FormatUint(gen, 10)+"\x00"+key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		v, tag, ttl, err := load(lctx)
		if ttl > 0 {
			c.put(gen, key, entry[V]{val: v, err: err, tag: tag, expires: c.clock().Add(ttl)})
		}
		return result[V]{val: v, err: err}, nil
	})
	select {
	case r := <-ch:
		// Errors travel inside the result: singleflight's own error is never set.
		res := r.Val.(result[V])
		return res.val, res.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// Invalidate drops the answer kept for key.
func (c *Cache[V]) Invalidate(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.entries, key)
}

// InvalidateTag drops every answer kept under tag.
func (c *Cache[V]) InvalidateTag(tag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.entries {
		if e.tag == tag {
			delete(c.entries, k)
		}
	}
}

// Clear drops every answer.
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

// Gen returns the cache's invalidation count, for PutAt.
func (c *Cache[V]) Gen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// PutAt keeps v for key under tag for ttl, unless the cache was invalidated
// since Gen returned gen: an answer read before an invalidation is never
// kept after it.
func (c *Cache[V]) PutAt(gen uint64, key string, v V, tag string, ttl time.Duration) {
	c.put(gen, key, entry[V]{val: v, tag: tag, expires: c.clock().Add(ttl)})
}

// Len returns the number of answers kept, expired ones included.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache[V]) clock() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now()
}

func (c *Cache[V]) put(gen uint64, key string, e entry[V]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		c.evict()
	}
	c.entries[key] = e
}

// evict drops expired answers and, if that is not enough, arbitrary ones
// until a tenth of the room is free again. Called with mu held.
func (c *Cache[V]) evict() {
	now := c.now()
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	target := c.max - c.max/10
	if target >= c.max {
		target = c.max - 1
	}
	for k := range c.entries {
		if len(c.entries) <= target {
			break
		}
		delete(c.entries, k)
	}
}

package deliverer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// rateLimits holds, per rate-limited endpoint, the times of this
// deliverer's recent and reserved sends. An endpoint's limit (count per
// duration) is shared out between the deliverer replicas (the consumers of
// the deliver queue): each keeps to floor(count/replicas), at least one, in
// any window of the duration, so together they stay within the limit
// without talking to each other. While the replica count changes, and for a
// limit smaller than the number of replicas, the sum may be off by a share.
type rateLimits struct {
	mu       sync.Mutex
	windows  map[string]*window
	replicas atomic.Int32
}

// window is a sliding log of send times, oldest first; times in the future
// are reservations of senders waiting for them.
type window struct {
	count, seconds uint32
	sends          []time.Time
}

func newRateLimits() *rateLimits {
	r := &rateLimits{windows: map[string]*window{}}
	r.replicas.Store(1)
	return r
}

// setReplicas records how many deliverers share the queue.
func (r *rateLimits) setReplicas(n int) {
	if n < 1 {
		n = 1
	}
	r.replicas.Store(int32(n))
}

// reserve finds the endpoint's next free send time and returns how long to
// wait for it (zero: send now). It books the time only when the wait is at
// most maxWait, and says so; a caller that would wait longer puts the work
// off and asks again later.
func (r *rateLimits) reserve(t *registryv1.Target, now time.Time, maxWait time.Duration) (time.Duration, bool) {
	rl := t.GetRateLimit()
	if rl.GetCount() == 0 || rl.GetDurationSeconds() == 0 {
		return 0, true
	}
	share := max(int(rl.GetCount())/int(r.replicas.Load()), 1)
	span := time.Duration(rl.GetDurationSeconds()) * time.Second
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.windows[t.GetEndpointId()]
	if !ok || w.count != rl.GetCount() || w.seconds != rl.GetDurationSeconds() {
		w = &window{count: rl.GetCount(), seconds: rl.GetDurationSeconds()}
		r.windows[t.GetEndpointId()] = w
	}
	// Forget sends that left the window.
	i := 0
	for i < len(w.sends) && !w.sends[i].After(now.Add(-span)) {
		i++
	}
	w.sends = w.sends[i:]
	at := now
	if len(w.sends) >= share {
		if next := w.sends[len(w.sends)-share].Add(span); next.After(now) {
			at = next
		}
	}
	if wait := at.Sub(now); wait > maxWait {
		return wait, false
	}
	w.sends = append(w.sends, at)
	return at.Sub(now), true
}

// watchReplicas keeps the replica count current: a passive queue declare a
// second.
func (d *Deliverer) watchReplicas(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if n, err := d.conn.Consumers(ctx, d.topo.DeliverQueue); err == nil {
			d.limits.setReplicas(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

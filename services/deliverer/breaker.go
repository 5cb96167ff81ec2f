package deliverer

import (
	"sync"
	"time"
)

// BreakerConfig sets the per-endpoint circuit breaker. An endpoint whose
// recent attempts failed too often (connection errors, timeouts, 429 and
// 5xx answers; other answers show a live endpoint) is not sent to for a
// cooldown; then one probe goes through: its success closes the circuit,
// its failure opens it again for twice as long, up to MaxCooldown. The work
// that arrives meanwhile waits in the delay queues: it is never dropped and
// never counts as an attempt.
type BreakerConfig struct {
	// FailureRatio is the share of failed attempts within Window that
	// opens the circuit; 0.7 when zero, and a negative ratio turns the
	// breaker off.
	FailureRatio float64
	// MinRequests is how many attempts Window must hold before the ratio
	// counts; 20 when zero.
	MinRequests int
	// Window is how far back attempts count; 30 s when zero.
	Window time.Duration
	// Cooldown is how long an open circuit stays open before a probe;
	// 30 s when zero.
	Cooldown time.Duration
	// MaxCooldown caps the cooldown as failed probes double it; 10 min
	// when zero.
	MaxCooldown time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.FailureRatio == 0 {
		c.FailureRatio = 0.7
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 20
	}
	if c.Window <= 0 {
		c.Window = 30 * time.Second
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 30 * time.Second
	}
	if c.MaxCooldown < c.Cooldown {
		c.MaxCooldown = max(10*time.Minute, c.Cooldown)
	}
	return c
}

// breakerBuckets is how many slices Window is counted in.
const breakerBuckets = 10

// circuitState is where an endpoint's circuit is.
type circuitState int

const (
	circuitClosed circuitState = iota
	circuitOpen
	circuitHalfOpen
)

func (s circuitState) String() string {
	switch s {
	case circuitOpen:
		return "open"
	case circuitHalfOpen:
		return "half-open"
	}
	return "closed"
}

// breakers holds this deliverer's circuits, one per endpoint that has
// been sent to. Each replica keeps its own: a replica sees its share of an
// endpoint's attempts, in the same proportions, so each trips on its own
// evidence at about the same time.
type breakers struct {
	cfg       BreakerConfig
	mu        sync.Mutex
	circuits  map[string]*circuit
	lastSweep time.Time
}

// circuit is one endpoint's breaker: its attempts in a ring of time
// buckets, and where it is.
type circuit struct {
	state    circuitState
	buckets  [breakerBuckets]bucket
	openedAt time.Time
	cooldown time.Duration
	// probeUntil, while half-open, is when the probe in flight is given
	// up for lost (its worker may have died) and another may go.
	probeUntil time.Time
}

type bucket struct {
	start           time.Time
	total, failures int
}

func newBreakers(cfg BreakerConfig) *breakers {
	return &breakers{cfg: cfg.withDefaults(), circuits: map[string]*circuit{}}
}

// sweep forgets, once a window, the closed circuits of endpoints not sent
// to within the window. Called with mu held.
func (b *breakers) sweep(now time.Time) {
	if now.Sub(b.lastSweep) < b.cfg.Window {
		return
	}
	b.lastSweep = now
	for id, c := range b.circuits {
		if c.state != circuitClosed {
			continue
		}
		idle := true
		for _, x := range c.buckets {
			if now.Sub(x.start) < b.cfg.Window {
				idle = false
				break
			}
		}
		if idle {
			delete(b.circuits, id)
		}
	}
}

// halfOpenRecheck is how long work waits while a probe is in flight.
const halfOpenRecheck = 5 * time.Second

// allow says whether an attempt to the endpoint may go now. When not, it
// says how long to put the work off. probe is true for the one attempt let
// through a half-open circuit; probeTimeout bounds how long it may take.
func (b *breakers) allow(endpointID string, now time.Time, probeTimeout time.Duration) (wait time.Duration, probe, ok bool) {
	if b.cfg.FailureRatio < 0 {
		return 0, false, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.circuits[endpointID]
	if c == nil {
		return 0, false, true
	}
	switch c.state {
	case circuitOpen:
		if reopen := c.openedAt.Add(c.cooldown); now.Before(reopen) {
			return reopen.Sub(now), false, false
		}
		c.state = circuitHalfOpen
		c.probeUntil = now.Add(probeTimeout)
		return 0, true, true
	case circuitHalfOpen:
		if now.Before(c.probeUntil) {
			return min(halfOpenRecheck, c.probeUntil.Sub(now)), false, false
		}
		c.probeUntil = now.Add(probeTimeout)
		return 0, true, true
	}
	return 0, false, true
}

// release gives back a probe that was not sent after all.
func (b *breakers) release(endpointID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.circuits[endpointID]; c != nil && c.state == circuitHalfOpen {
		c.probeUntil = time.Time{}
	}
}

// record counts an attempt's outcome and moves the circuit; it returns the
// new state and whether it changed.
func (b *breakers) record(endpointID string, now time.Time, failed, probe bool) (circuitState, bool) {
	if b.cfg.FailureRatio < 0 {
		return circuitClosed, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweep(now)
	c := b.circuits[endpointID]
	if c == nil {
		c = &circuit{}
		b.circuits[endpointID] = c
	}
	switch {
	case c.state == circuitHalfOpen && probe:
		if failed {
			c.state, c.openedAt = circuitOpen, now
			c.cooldown = min(2*c.cooldown, b.cfg.MaxCooldown)
			return circuitOpen, true
		}
		// Closed again, with a clean slate.
		delete(b.circuits, endpointID)
		return circuitClosed, true
	case c.state != circuitClosed:
		// Attempts that were under way when the circuit opened.
		return c.state, false
	}
	span := b.cfg.Window / breakerBuckets
	start := now.Truncate(span)
	bk := &c.buckets[int(start.UnixNano()/int64(span))%breakerBuckets]
	if !bk.start.Equal(start) {
		*bk = bucket{start: start}
	}
	bk.total++
	if failed {
		bk.failures++
	}
	total, failures := 0, 0
	for _, x := range c.buckets {
		if now.Sub(x.start) < b.cfg.Window {
			total += x.total
			failures += x.failures
		}
	}
	if total >= b.cfg.MinRequests && float64(failures) >= b.cfg.FailureRatio*float64(total) {
		c.state, c.openedAt, c.cooldown = circuitOpen, now, b.cfg.Cooldown
		c.buckets = [breakerBuckets]bucket{}
		return circuitOpen, true
	}
	return circuitClosed, false
}

// cooldown is how long the endpoint's open circuit stays open; 0 when it
// is not open.
func (b *breakers) cooldown(endpointID string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.circuits[endpointID]; c != nil && c.state == circuitOpen {
		return c.cooldown
	}
	return 0
}

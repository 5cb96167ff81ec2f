package deliverer

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// Bounds of the retry schedule.
const (
	// maxBackoff caps an exponential schedule.
	maxBackoff = 6 * time.Hour
	// minRetryAfter and maxRetryAfter bound an endpoint's Retry-After.
	minRetryAfter = time.Second
	maxRetryAfter = time.Hour
	// defaultMaxAttempts applies when a policy does not say.
	defaultMaxAttempts = 10
)

// maxAttempts is how many attempts a policy allows, the first included.
func maxAttempts(p *registryv1.RetryPolicy) uint32 {
	if p.GetMaxAttempts() == 0 {
		return defaultMaxAttempts
	}
	return p.GetMaxAttempts()
}

// backoff is the wait after failed attempt n (from 1): interval for a
// linear policy; interval * 2^(n-1) with ±20 % jitter, capped, for an
// exponential one (the default).
func backoff(p *registryv1.RetryPolicy, n uint32, jitter func() float64) time.Duration {
	interval := time.Duration(p.GetIntervalSeconds()) * time.Second
	if interval <= 0 {
		interval = 10 * time.Second
	}
	if p.GetStrategy() == registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR {
		return interval
	}
	d := float64(interval) * math.Pow(2, float64(min(n, 40)-1))
	d = min(d, float64(maxBackoff))
	d *= 0.8 + 0.4*jitter()
	return time.Duration(d)
}

// randomJitter is backoff's source of jitter.
func randomJitter() float64 { return rand.Float64() }

// retryAfter reads the Retry-After of a 429 or 503 answer (seconds or an
// HTTP date), bounded, and false when there is none to honour.
func retryAfter(status int, h http.Header, now time.Time) (time.Duration, bool) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return 0, false
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, minRetryAfter), maxRetryAfter), true
}

package deliverer

import (
	"net/http"
	"testing"
	"time"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	half := func() float64 { return 0.5 } // no jitter
	linear := &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: 7}
	exp := &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_EXPONENTIAL, IntervalSeconds: 10}
	for _, tc := range []struct {
		p    *registryv1.RetryPolicy
		n    uint32
		want time.Duration
	}{
		{linear, 1, 7 * time.Second}, {linear, 9, 7 * time.Second},
		{exp, 1, 10 * time.Second}, {exp, 2, 20 * time.Second}, {exp, 4, 80 * time.Second},
		{exp, 30, maxBackoff}, {nil, 1, 10 * time.Second},
	} {
		if got := backoff(tc.p, tc.n, half); got != tc.want {
			t.Errorf("backoff(%v, %d) = %v, want %v", tc.p, tc.n, got, tc.want)
		}
	}
	lo, hi := backoff(exp, 3, func() float64 { return 0 }), backoff(exp, 3, func() float64 { return 1 })
	if lo != 32*time.Second || hi != 48*time.Second {
		t.Errorf("jitter bounds = %v..%v, want 32s..48s", lo, hi)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	for _, tc := range []struct {
		status int
		h      http.Header
		want   time.Duration
		ok     bool
	}{
		{429, h("5"), 5 * time.Second, true},
		{503, h(now.Add(90 * time.Second).Format(http.TimeFormat)), 90 * time.Second, true},
		{429, h("0"), minRetryAfter, true},
		{429, h("999999"), maxRetryAfter, true},
		{500, h("5"), 0, false},
		{429, h("soon"), 0, false},
		{429, http.Header{}, 0, false},
	} {
		got, ok := retryAfter(tc.status, tc.h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%d, %v) = %v, %v; want %v, %v", tc.status, tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

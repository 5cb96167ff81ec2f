package deliverer

import (
	"testing"
	"time"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestRateLimitWindow checks that a replica's sends keep to its share in
// any window: with 4 a second shared by 2 replicas, 2 now, the next ones a
// second after those.
func TestRateLimitWindow(t *testing.T) {
	t.Parallel()
	r := newRateLimits()
	r.setReplicas(2)
	tg := &registryv1.Target{EndpointId: "ep", RateLimit: &registryv1.RateLimit{Count: 4, DurationSeconds: 1}}
	now := time.Unix(1000, 0)
	var waits []time.Duration
	for range 5 {
		w, booked := r.reserve(tg, now, time.Hour)
		if !booked {
			t.Fatal("a reservation within maxWait was not booked")
		}
		waits = append(waits, w)
	}
	want := []time.Duration{0, 0, time.Second, time.Second, 2 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits = %v, want %v", waits, want)
		}
	}
	// A wait beyond maxWait is not booked: the next caller is told the same.
	for range 2 {
		if w, booked := r.reserve(tg, now, time.Second); booked || w != 2*time.Second {
			t.Fatalf("reserve beyond maxWait = %v, %v", w, booked)
		}
	}
	if w, booked := r.reserve(tg, now.Add(1500*time.Millisecond), time.Second); !booked || w != 500*time.Millisecond {
		t.Fatalf("later reserve = %v, %v; want 500ms, booked", w, booked)
	}
	if w, _ := r.reserve(&registryv1.Target{EndpointId: "free"}, now, 0); w != 0 {
		t.Fatalf("an endpoint without a limit waited %v", w)
	}
}

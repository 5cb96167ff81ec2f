package deliverer

import (
	"testing"
	"time"
)

func TestBreakerOpensOnFailureRatio(t *testing.T) {
	b := newBreakers(BreakerConfig{FailureRatio: 0.5, MinRequests: 4, Window: 10 * time.Second, Cooldown: 2 * time.Second, MaxCooldown: 5 * time.Second})
	now := time.Unix(1_700_000_000, 0)
	for i, failed := range []bool{false, true, false} {
		if st, _ := b.record("ep", now.Add(time.Duration(i)*time.Second), failed, false); st != circuitClosed {
			t.Fatalf("after %d attempts the circuit is %s; want closed", i+1, st)
		}
	}
	// 2 failures in 4 attempts: half of them.
	if st, changed := b.record("ep", now.Add(3*time.Second), true, false); st != circuitOpen || !changed {
		t.Fatalf("at a ratio of 0.5 the circuit is %s (changed %v); want it opened", st, changed)
	}
	now = now.Add(3 * time.Second)
	if wait, _, ok := b.allow("ep", now.Add(time.Second), time.Second); ok || wait != time.Second {
		t.Fatalf("open circuit: allow = wait %v, ok %v; want a wait of the cooldown's rest (1s)", wait, ok)
	}
	if _, _, ok := b.allow("other", now, time.Second); !ok {
		t.Fatal("another endpoint was held back")
	}
	// After the cooldown one probe goes; the others wait for it.
	_, probe, ok := b.allow("ep", now.Add(2*time.Second), time.Second)
	if !ok || !probe {
		t.Fatalf("after the cooldown: probe %v, ok %v; want a probe", probe, ok)
	}
	if wait, _, ok := b.allow("ep", now.Add(2*time.Second), time.Second); ok || wait <= 0 {
		t.Fatalf("while a probe is in flight: ok %v, wait %v; want a wait", ok, wait)
	}
	// A failed probe opens the circuit for twice as long.
	if st, _ := b.record("ep", now.Add(2500*time.Millisecond), true, true); st != circuitOpen {
		t.Fatalf("after a failed probe the circuit is %s; want open", st)
	}
	if wait, _, ok := b.allow("ep", now.Add(2500*time.Millisecond), time.Second); ok || wait != 4*time.Second {
		t.Fatalf("after a failed probe: wait %v, ok %v; want 4s", wait, ok)
	}
	// Twice again, capped at 5 s.
	_, probe, _ = b.allow("ep", now.Add(7*time.Second), time.Second)
	b.record("ep", now.Add(7*time.Second), true, probe)
	if wait, _, _ := b.allow("ep", now.Add(7*time.Second), time.Second); wait != 5*time.Second {
		t.Fatalf("cooldown after two failed probes: %v; want the 5s cap", wait)
	}
	// A successful probe closes it with a clean slate.
	_, probe, _ = b.allow("ep", now.Add(12*time.Second), time.Second)
	if st, changed := b.record("ep", now.Add(12*time.Second), false, probe); st != circuitClosed || !changed {
		t.Fatalf("after a successful probe the circuit is %s (changed %v); want closed", st, changed)
	}
	if _, probe, ok := b.allow("ep", now.Add(12*time.Second), time.Second); !ok || probe {
		t.Fatalf("closed circuit: probe %v, ok %v", probe, ok)
	}
	if st, _ := b.record("ep", now.Add(13*time.Second), true, false); st != circuitClosed {
		t.Fatalf("one failure after closing opened the circuit (%s)", st)
	}
}

func TestBreakerLostProbeIsReplaced(t *testing.T) {
	b := newBreakers(BreakerConfig{FailureRatio: 1, MinRequests: 1, Window: time.Second, Cooldown: time.Second})
	now := time.Unix(1_700_000_000, 0)
	b.record("ep", now, true, false)
	if _, probe, _ := b.allow("ep", now.Add(time.Second), 3*time.Second); !probe {
		t.Fatal("no probe after the cooldown")
	}
	// Its worker died: after the probe's bound, another may go.
	if _, _, ok := b.allow("ep", now.Add(3*time.Second), 3*time.Second); ok {
		t.Fatal("a second probe went while the first was in flight")
	}
	if _, probe, ok := b.allow("ep", now.Add(4*time.Second), 3*time.Second); !ok || !probe {
		t.Fatal("the lost probe was not replaced after its bound")
	}
	// A probe given back (put off by the rate limit) is replaced at once.
	b.release("ep")
	if _, probe, ok := b.allow("ep", now.Add(4*time.Second), 3*time.Second); !ok || !probe {
		t.Fatal("a released probe was not replaced")
	}
}

func TestBreakerForgetsOldFailuresAndCanBeOff(t *testing.T) {
	b := newBreakers(BreakerConfig{FailureRatio: 0.6, MinRequests: 3, Window: 10 * time.Second})
	now := time.Unix(1_700_000_000, 0)
	b.record("ep", now, true, false)
	b.record("ep", now.Add(time.Second), true, false)
	// Both failures have left the window: 1 failure in 3 attempts.
	b.record("ep", now.Add(11*time.Second), false, false)
	b.record("ep", now.Add(12*time.Second), false, false)
	if st, _ := b.record("ep", now.Add(12*time.Second), true, false); st != circuitClosed {
		t.Fatalf("old failures still counted: circuit %s", st)
	}
	// Within the window they count: 3 failures in 4.
	b2 := newBreakers(BreakerConfig{FailureRatio: 0.6, MinRequests: 3, Window: 10 * time.Second})
	b2.record("ep", now, true, false)
	b2.record("ep", now.Add(time.Second), true, false)
	b2.record("ep", now.Add(5*time.Second), false, false)
	if st, _ := b2.record("ep", now.Add(9*time.Second), true, false); st != circuitOpen {
		t.Fatalf("3 failures of 4 within the window: circuit %s; want open", st)
	}
	off := newBreakers(BreakerConfig{FailureRatio: -1, MinRequests: 1})
	for i := range 10 {
		off.record("ep", now.Add(time.Duration(i)*time.Millisecond), true, false)
	}
	if _, _, ok := off.allow("ep", now.Add(time.Second), time.Second); !ok {
		t.Fatal("a breaker turned off held an endpoint back")
	}
}

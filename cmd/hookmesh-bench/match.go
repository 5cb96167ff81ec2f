package main

import "time"

// missingDelivery is an expected delivery that did not arrive.
type missingDelivery struct {
	eventID  string
	endpoint int
}

// tally is the deliveries received, matched to the calls that caused them.
type tally struct {
	expected int
	matched  int
	missing  []missingDelivery
	// unexpected are deliveries of unknown events or to the wrong endpoint.
	unexpected int
	// redelivered are deliveries of an event to an endpoint that had already
	// arrived under another webhook-id.
	redelivered int
	lastReceipt time.Time
	// latencies are receipt minus the call's due time, per matched delivery.
	latencies []time.Duration
}

// match pairs every receipt with the call of its event: each successful call
// expects one delivery to each endpoint of its shape.
func match(cfg *config, calls []call, got []receipt) tally {
	fan := cfg.fan()
	seqOf := make(map[string]int, len(calls))
	t := tally{}
	for seq := range calls {
		if c := &calls[seq]; !c.start.IsZero() && c.err == nil {
			seqOf[c.eventID] = seq
			t.expected += fan
		}
	}
	seen := make([]bool, len(calls)*fan)
	for _, r := range got {
		seq, ok := seqOf[r.eventID]
		slot := -1
		switch {
		case !ok:
		case cfg.shape == shapeSingle:
			if r.endpoint == seq%cfg.endpoints {
				slot = seq
			}
		case r.endpoint >= 0 && r.endpoint < fan:
			slot = seq*fan + r.endpoint
		}
		switch {
		case slot < 0:
			t.unexpected++
		case seen[slot]:
			t.redelivered++
		default:
			seen[slot] = true
			t.matched++
			t.latencies = append(t.latencies, r.at.Sub(calls[seq].intended))
			if r.at.After(t.lastReceipt) {
				t.lastReceipt = r.at
			}
		}
	}
	for seq := range calls {
		if c := &calls[seq]; c.start.IsZero() || c.err != nil {
			continue
		}
		for k := range fan {
			if seen[seq*fan+k] {
				continue
			}
			endpoint := k
			if cfg.shape == shapeSingle {
				endpoint = seq % cfg.endpoints
			}
			t.missing = append(t.missing, missingDelivery{eventID: calls[seq].eventID, endpoint: endpoint})
		}
	}
	return t
}

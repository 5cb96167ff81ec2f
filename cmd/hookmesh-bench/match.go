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
		if ok {
			slot = deliverySlot(cfg, fan, seq, r.endpoint)
		}
		switch {
		case slot < 0:
			t.unexpected++
		case seen[slot]:
			t.redelivered++
		default:
			seen[slot] = true
			t.record(r.at, calls[seq].intended)
		}
	}
	t.missing = missingDeliveries(cfg, calls, seen)
	return t
}

// deliverySlot is where in the seen list the delivery of the call seq's
// event to endpoint goes: seq*fan+endpoint, or seq alone for the single
// shape, whose calls go round-robin to one endpoint each; -1 when the call
// expects no delivery to that endpoint.
func deliverySlot(cfg *config, fan, seq, endpoint int) int {
	switch {
	case cfg.shape == shapeSingle:
		if endpoint == seq%cfg.endpoints {
			return seq
		}
	case endpoint >= 0 && endpoint < fan:
		return seq*fan + endpoint
	}
	return -1
}

// record counts a delivery matched for the first time, received at at for
// a call due at intended.
func (t *tally) record(at, intended time.Time) {
	t.matched++
	t.latencies = append(t.latencies, at.Sub(intended))
	if at.After(t.lastReceipt) {
		t.lastReceipt = at
	}
}

// missingDeliveries are the deliveries the successful calls expect that
// seen does not hold, in call order.
func missingDeliveries(cfg *config, calls []call, seen []bool) []missingDelivery {
	fan := cfg.fan()
	var missing []missingDelivery
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
			missing = append(missing, missingDelivery{eventID: calls[seq].eventID, endpoint: endpoint})
		}
	}
	return missing
}

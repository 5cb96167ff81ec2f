package main

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// call is one ingest call.
type call struct {
	eventID string
	// intended is when the call was due: its start when sending as fast as
	// possible, its slot in the schedule with -rate. Latencies are measured
	// from it, so that a call delayed by the ones before it (all workers
	// busy) counts its wait too, instead of hiding it (coordinated omission).
	intended time.Time
	// start and end bound the call itself; start is zero for a call that
	// was never made (interrupted run).
	start, end time.Time
	err        error
}

// loader sends cfg.events events through ing.
type loader struct {
	cfg   *config
	ing   ingester
	calls []call
	done  atomic.Int64 // calls finished, for progress
}

func newLoader(cfg *config, ing ingester) *loader {
	return &loader{cfg: cfg, ing: ing, calls: make([]call, cfg.events)}
}

// run sends every event, or stops early when ctx ends, and returns the calls.
func (l *loader) run(ctx context.Context) []call {
	if l.cfg.rate > 0 {
		l.runSchedule(ctx)
	} else {
		l.runClosed(ctx)
	}
	return l.calls
}

// runClosed keeps cfg.concurrency calls in flight: each worker sends its
// next event as soon as its previous call returns.
func (l *loader) runClosed(ctx context.Context) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(l.cfg.concurrency, l.cfg.events) {
		wg.Go(func() {
			for ctx.Err() == nil {
				seq := int(next.Add(1) - 1)
				if seq >= l.cfg.events {
					return
				}
				l.send(ctx, seq, time.Now())
			}
		})
	}
	wg.Wait()
}

// runSchedule starts event i at start + i/rate whatever the calls before it
// are doing (open loop), with at most cfg.concurrency in flight: when all
// are busy the next call starts late, and its latency includes the delay.
func (l *loader) runSchedule(ctx context.Context) {
	sem := make(chan struct{}, l.cfg.concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for seq := range l.cfg.events {
		// From seq, not by adding intervals, so that rounding does not drift.
		due := start.Add(time.Duration(float64(seq) * float64(time.Second) / l.cfg.rate))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			l.send(ctx, seq, due)
		})
	}
}

// send makes the call of event seq, due at intended.
func (l *loader) send(ctx context.Context, seq int, intended time.Time) {
	c := &l.calls[seq]
	c.intended = intended
	c.start = time.Now()
	c.eventID, c.err = l.ing.send(ctx, seq, payload(seq, c.start, l.cfg.payloadBytes))
	c.end = time.Now()
	l.done.Add(1)
}

// minPayloadBytes is the longest the payload's fixed fields can be.
const minPayloadBytes = len(`{"seq":2147483647,"sent_unix_nano":-9223372036854775808,"pad":""}`)

// payload is the JSON of event seq, padded to size bytes. It carries the
// sequence number and the send time, for whoever looks at a delivery.
func payload(seq int, sent time.Time, size int) string {
	var b strings.Builder
	b.Grow(size)
	b.WriteString(`{"seq":`)
	b.WriteString(strconv.Itoa(seq))
	b.WriteString(`,"sent_unix_nano":`)
	b.WriteString(strconv.FormatInt(sent.UnixNano(), 10))
	b.WriteString(`,"pad":"`)
	if pad := size - b.Len() - len(`"}`); pad > 0 {
		b.WriteString(strings.Repeat("x", pad))
	}
	b.WriteString(`"}`)
	return b.String()
}

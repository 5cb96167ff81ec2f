//go:build faults

package faults

// The scale suite's ordering run: events with ordering keys, on the
// three-node cluster with two of each replicated service, to an endpoint
// that fails at random, while a broker node is stopped and started again.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

const (
	orderEvents = 2000
	orderKeys   = 50
	// orderFailShare of the receiver's answers are 500s, first attempts
	// and retries alike.
	orderFailShare = 0.3
)

// orderedEvent is an event ingest accepted with an ordering key.
type orderedEvent struct {
	id, key string
	seq     uint64
}

// sendOrderedEvents sends n events over keys from 16 clients, event i with
// key i mod keys, through the ingest processes in turn; a failed call is
// made again on the next process with the same idempotency key, as the
// load of the other runs does. It returns the events as ingest accepted
// them (a repeat answers the original: its key and seq are read back).
func sendOrderedEvents(ctx context.Context, p *project, n, keys int) (map[string]orderedEvent, int, error) {
	var (
		mu      sync.Mutex
		out     = make(map[string]orderedEvent, n)
		retried int
		firstEr error
	)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				ev, tries, err := sendOrdered(ctx, p, i, fmt.Sprintf("order-%02d", i%keys))
				mu.Lock()
				if err != nil && firstEr == nil {
					firstEr = err
				}
				if err == nil {
					out[ev.id] = ev
				}
				if tries > 0 {
					retried++
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return out, retried, firstEr
}

func sendOrdered(ctx context.Context, p *project, i int, key string) (orderedEvent, int, error) {
	req := &ingestv1.CreateEventRequest{ProjectId: p.id, EndpointId: p.endpoints[0], EventType: "order.updated",
		Data: fmt.Sprintf(`{"n":%d}`, i), IdempotencyKey: fmt.Sprintf("ordered-%d", i), OrderingKey: key}
	deadline := time.Now().Add(3 * time.Minute)
	for tries := 0; ; tries++ {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := p.ingests[(i+tries)%len(p.ingests)].CreateEvent(cctx, connect.NewRequest(req))
		cancel()
		if err == nil {
			ev := resp.Msg.GetEvent()
			if ev.GetIsDuplicate() {
				orig, err := p.ingests[0].GetEvent(ctx, connect.NewRequest(&ingestv1.GetEventRequest{ProjectId: p.id, EventId: ev.GetDuplicateOf()}))
				if err != nil {
					return orderedEvent{}, tries, fmt.Errorf("read back event %s: %w", ev.GetDuplicateOf(), err)
				}
				ev = orig.Msg.GetEvent()
			}
			return orderedEvent{id: ev.GetId(), key: ev.GetOrderingKey(), seq: ev.GetOrderingSeq()}, tries, nil
		}
		if c := connect.CodeOf(err); c == connect.CodeInvalidArgument || c == connect.CodeFailedPrecondition || time.Now().After(deadline) {
			return orderedEvent{}, tries, fmt.Errorf("create event %d: %w", i, err)
		}
		if !pollCtx(ctx, 500*time.Millisecond) {
			return orderedEvent{}, tries, ctx.Err()
		}
	}
}

// orderFigures is what the ordering run found, per key's line.
type orderFigures struct {
	// delivered: events answered 2xx. outOfOrder: events whose first
	// request came before the previous event of the key was answered 2xx.
	// repeats: requests for an event after its 2xx (at least once);
	// repeatsLate: those among them that came after a later event of the
	// key had started.
	delivered, outOfOrder, repeats, repeatsLate, requests int
	gaps                                                  []string
	examples                                              []string
}

// checkOrder reads the receiver's requests in the order they came, per
// key: event seq s+1 must not come before event s was answered 2xx.
func checkOrder(events map[string]orderedEvent, hits []hit) orderFigures {
	var f orderFigures
	byKey := map[string][]hit{}
	for _, h := range hits {
		if ev, ok := events[h.eventID]; ok {
			byKey[ev.key] = append(byKey[ev.key], h)
			f.requests++
		}
	}
	seqs := map[string][]uint64{}
	for _, ev := range events {
		seqs[ev.key] = append(seqs[ev.key], ev.seq)
	}
	for key, ss := range seqs {
		sort.Slice(ss, func(i, j int) bool { return ss[i] < ss[j] })
		for i, s := range ss {
			if s != uint64(i+1) {
				f.gaps = append(f.gaps, fmt.Sprintf("key %s has seqs %v", key, ss))
				break
			}
		}
	}
	for key, hs := range byKey {
		sort.SliceStable(hs, func(i, j int) bool { return hs[i].at.Before(hs[j].at) })
		succeeded := map[uint64]bool{}
		var highest uint64 // the highest seq that has started
		for _, h := range hs {
			s := events[h.eventID].seq
			switch {
			case succeeded[s]:
				f.repeats++
				if highest > s {
					f.repeatsLate++
				}
			case s > 1 && !succeeded[s-1] && highest < s:
				f.outOfOrder++
				if len(f.examples) < 5 {
					f.examples = append(f.examples, fmt.Sprintf("key %s: seq %d (%s) sent before seq %d succeeded", key, s, h.eventID, s-1))
				}
			}
			highest = max(highest, s)
			if h.code >= 200 && h.code < 300 && !succeeded[s] {
				succeeded[s] = true
				f.delivered++
			}
		}
	}
	return f
}

func TestScaleOrdering(t *testing.T) {
	if len(suite.cluster) == 0 {
		t.Skip("the fault suite's node is running, not the scale suite's cluster")
	}
	ctx := context.Background()
	dir := filepath.Join(suite.dir, "ordering")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	recv, err := startReceiver(behaviour{latency: 5 * time.Millisecond, failShare: orderFailShare}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.close()
	s, err := startScaleStack(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	p, err := newProject(ctx, recv, 1, s.core.url(), s.ingestURLs()...)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{name: "ordering", dir: dir, proj: p, recv: recv, start: time.Now()}
	r.note("%d events over %d ordering keys to one endpoint answering 500 to %.0f %% of requests at random, from 16 clients over 2 ingest processes; 2 routers, 2 deliverers",
		orderEvents, orderKeys, 100*orderFailShare)
	bounced := make(chan error, 1)
	go func() {
		// The node goes away while the events are being sent and
		// delivered: one that some processes use but that leads no quorum
		// queue, if there is one. On RabbitMQ 3.10 a delay queue whose
		// leader moves can stop dead-lettering its retries for good
		// (at-least-once dead-lettering; see the README), which would hold
		// every line with a retry in it; TestScale moves the leaders.
		time.Sleep(time.Second)
		bounced <- bounceNode(r, s, false)
	}()
	events, retried, err := sendOrderedEvents(ctx, p, orderEvents, orderKeys)
	if err != nil {
		t.Fatal(err)
	}
	r.note("%d events accepted (%d calls made again on the other ingest)", len(events), retried)
	if err := <-bounced; err != nil {
		t.Fatalf("stopping and starting a node: %v", err)
	}
	var f orderFigures
	if err := waitFor(nil, 5*time.Minute, "every ordered event delivered", func() bool {
		f = checkOrder(events, recv.snapshot())
		return f.delivered == len(events)
	}); err != nil {
		t.Errorf("%v: %d of %d delivered", err, f.delivered, len(events))
	}
	// The status service trails the receiver: wait for it to count every
	// delivery SUCCESS.
	var stuck int
	var ds []*statusv1.Delivery
	_ = waitFor(nil, time.Minute, "the status service to show every delivery SUCCESS", func() bool {
		var err error
		if ds, err = p.deliveries(ctx); err != nil {
			return false
		}
		stuck = 0
		for _, d := range ds {
			if d.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS {
				stuck++
			}
		}
		return stuck == 0 && len(ds) == len(events)
	})
	r.note("delivered %d of %d in %.0fs, %d requests (%d answered 500 and retried); out of order: %d; repeats of a delivered event: %d, of which %d after a later event of the key had started; deliveries not SUCCESS in the status service: %d of %d",
		f.delivered, len(events), time.Since(r.start).Seconds(), f.requests, f.requests-f.delivered-f.repeats, f.outOfOrder, f.repeats, f.repeatsLate, stuck, len(ds))
	if len(f.gaps) > 0 {
		t.Errorf("ingest's seqs have gaps or repeats: %s", strings.Join(f.gaps, "; "))
	}
	if f.outOfOrder != 0 {
		t.Errorf("%d events sent before the previous event of their key succeeded: %s", f.outOfOrder, strings.Join(f.examples, "; "))
	}
	if stuck != 0 || len(ds) != len(events) {
		t.Errorf("%d of %d deliveries are not SUCCESS in the status service (%d events)", stuck, len(ds), len(events))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## ordering: %d events over %d keys, a node stopped and started\n\n", orderEvents, orderKeys)
	for _, n := range r.notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	fmt.Fprint(os.Stderr, "\n"+b.String())
	report, err := os.OpenFile(filepath.Join(suite.dir, "report.md"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer report.Close()
	if _, err := report.WriteString("\n" + b.String()); err != nil {
		t.Error(err)
	}
}

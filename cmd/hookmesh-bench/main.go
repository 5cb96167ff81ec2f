// Command hookmesh-bench loads a running hookmesh and measures it end to
// end. It creates a project and endpoints that point at its own webhook
// receiver, sends events through the ingest API (Connect with binary proto,
// or REST), waits for every delivery, and reports ingest and delivery
// throughput, ingest→receipt latency percentiles, duplicates and missing
// deliveries, the CPU time hookmesh used (-pid), and how far the status
// service lags behind the deliveries. scripts/bench.sh (make bench) starts a
// hookmesh of its own and runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	code, err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookmesh-bench:", err)
	}
	os.Exit(code)
}

// run returns the exit code: 0 when every event was accepted and delivered,
// 1 otherwise or on an error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (int, error) {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return 2, err
	}
	// Ctrl-C stops sending and waiting; what was measured is still reported.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "hookmesh-bench: "+format+"\n", args...) }

	meter, err := newCPUMeter(cfg.pid, cfg.watch)
	if err != nil {
		return 1, err
	}
	recv, err := startReceiver(cfg.receiverAddr)
	if err != nil {
		return 1, err
	}
	defer recv.stop()
	if cfg.suite {
		return runSuite(ctx, &cfg, meter, recv, stdout, logf)
	}

	var history *historyResult
	if cfg.history > 0 {
		if history, err = runHistory(ctx, &cfg, logf); err != nil {
			return 1, err
		}
	}
	if cfg.prune {
		return runPruneMode(ctx, &cfg, recv, history, stdout, logf)
	}
	return runOnce(ctx, &cfg, meter, recv, history, stdout, logf)
}

// runPruneMode measures the pruner on history (-prune), prints what it
// measured and returns the exit code: 1 when a pruner failed or a
// delivery went missing.
func runPruneMode(ctx context.Context, cfg *config, recv *receiver, history *historyResult, stdout io.Writer, logf func(string, ...any)) (int, error) {
	p, err := setUp(ctx, cfg, recv)
	if err != nil {
		return 1, err
	}
	pr, err := runPrune(ctx, cfg, p, recv, history, logf)
	if err != nil {
		return 1, err
	}
	if !cfg.jsonOnly {
		history.printHuman(stdout)
		pr.printHuman(stdout)
	}
	if err := json.NewEncoder(stdout).Encode(map[string]any{"history": history, "prune": pr}); err != nil {
		return 1, err
	}
	if pr.Status.Error != "" || pr.Ingest.Error != "" || pr.Baseline.Missing > 0 || pr.Pruning.Missing > 0 {
		return 1, fmt.Errorf("-prune: status pruner %q, ingest pruner %q, %d and %d deliveries missing", pr.Status.Error, pr.Ingest.Error, pr.Baseline.Missing, pr.Pruning.Missing)
	}
	return 0, nil
}

// runOnce runs the one benchmark the flags ask for, prints its figures
// (and history's, when -history measured one) and returns the exit code.
func runOnce(ctx context.Context, cfg *config, meter *cpuMeter, recv *receiver, history *historyResult, stdout io.Writer, logf func(string, ...any)) (int, error) {
	var prof *profileSpec
	if cfg.profile != "" {
		prof = &profileSpec{url: cfg.apiURL, file: cfg.profile, seconds: cfg.profileSeconds}
	}
	r, err := measure(ctx, cfg, meter, recv, prof, logf)
	if err != nil {
		return 1, err
	}
	r.History = history

	if !cfg.jsonOnly {
		if history != nil {
			history.printHuman(stdout)
		}
		r.printHuman(stdout)
	}
	if err := r.printJSON(stdout); err != nil {
		return 1, err
	}
	if err := r.failure(); err != nil {
		return 1, err
	}
	return 0, nil
}

// measure runs one benchmark as cfg says: it creates a project and its
// endpoints, sends the events, waits for every delivery (and, with
// cfg.statusCheck, for the status service to count them), and returns the
// figures. With prof it also records a CPU profile of hookmesh meanwhile.
func measure(ctx context.Context, cfg *config, meter *cpuMeter, recv *receiver, prof *profileSpec, logf func(string, ...any)) (*result, error) {
	recv.reset()
	p, err := setUp(ctx, cfg, recv)
	if err != nil {
		return nil, err
	}
	logf("project %s, %d endpoint(s) at %s/hooks/N; sending %d events (%s)", p.id, len(p.endpointIDs), recv.url, cfg.events, cfg.shape)

	ld := newLoader(cfg, newIngester(cfg, p))
	progressDone := make(chan struct{})
	go progress(logf, ld, recv, cfg.events, progressDone)

	var profiled <-chan error
	if prof != nil {
		profiled = prof.start(ctx, logf)
	}
	start := meter.sample()
	calls := ld.run(ctx)
	sent := time.Now()
	waitDeliveries(ctx, cfg, calls, recv)
	close(progressDone)
	delivered := meter.sample()
	got, duplicates, anonymous := recv.snapshot()
	t := match(cfg, calls, got)

	r := newResult(cfg, p, calls, t, duplicates+t.redelivered, anonymous)
	if t.lastReceipt.IsZero() {
		t.lastReceipt = sent
	}
	cpu := meter.window(start, delivered)
	r.CPU = &cpu

	status := newStatusClient(cfg, p)
	if cfg.statusCheck {
		logf("waiting up to %s for the status service to count %d deliveries as SUCCESS", cfg.statusTimeout, t.expected)
		s := waitStatus(ctx, cfg, status, p, t.expected, t.lastReceipt, logf)
		r.Status = &s
		total := meter.window(start, meter.sample())
		r.CPUTotal = &total
	}
	if len(t.missing) > 0 {
		// Its own deadline: the run's context may have been interrupted.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		r.MissingExamples = describeMissing(dctx, status, p, t.missing[:min(len(t.missing), 5)])
		cancel()
	}
	if profiled != nil {
		// hookmesh is stopped once the benchmark returns: the profile must
		// be in before.
		if err := <-profiled; err != nil {
			r.Errors = append(r.Errors, err.Error())
		} else {
			r.Profile = prof.file
		}
	}
	return r, nil
}

// failure says what went wrong in the run, or nil when every event was
// accepted and delivered.
func (r *result) failure() error {
	if r.IngestErrors > 0 || r.Missing > 0 || r.EventsSent < r.EventsPlanned {
		return fmt.Errorf("%d of %d events sent (%d ingest errors), %d of %d deliveries missing",
			r.EventsSent, r.EventsPlanned, r.IngestErrors, r.Missing, r.ExpectedDeliveries)
	}
	return nil
}

// waitDeliveries waits until every delivery the successful calls expect
// has arrived, or cfg.timeout has passed, or ctx ends.
func waitDeliveries(ctx context.Context, cfg *config, calls []call, recv *receiver) {
	deadline := time.NewTimer(cfg.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	expected := 0
	for i := range calls {
		if !calls[i].start.IsZero() && calls[i].err == nil {
			expected += cfg.fan()
		}
	}
	var lastMatch time.Time
	for {
		// Matching is exact but costs a pass over everything: do it only
		// once enough has arrived, and then at most twice a second.
		if recv.count() >= expected && time.Since(lastMatch) > 500*time.Millisecond {
			got, _, _ := recv.snapshot()
			lastMatch = time.Now()
			if len(match(cfg, calls, got).missing) == 0 {
				return
			}
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// progress logs every few seconds how far sending and delivering are, and
// every 30 s that nothing moved.
func progress(logf func(string, ...any), ld *loader, recv *receiver, events int, done <-chan struct{}) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var sent int64
	var received int
	moved, logged := time.Now(), time.Now()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		s, r := ld.done.Load(), recv.count()
		switch {
		case s != sent || r != received:
			sent, received, moved, logged = s, r, time.Now(), time.Now()
			logf("sent %d/%d, received %d", s, events, r)
		case time.Since(logged) >= 30*time.Second:
			logf("sent %d/%d, received %d: nothing new for %s", s, events, r, time.Since(moved).Round(time.Second))
			logged = time.Now()
		}
	}
}

// newResult computes the figures of a run.
func newResult(cfg *config, p *project, calls []call, t tally, duplicates, anonymous int) *result {
	r := &result{
		Shape: cfg.shape, Protocol: cfg.protocol, Endpoints: cfg.endpoints, Concurrency: cfg.concurrency,
		Rate: cfg.rate, PayloadBytes: cfg.payloadBytes, ProjectID: p.id, EventsPlanned: cfg.events,
		ExpectedDeliveries: t.expected, DeliveriesReceived: t.matched, Missing: len(t.missing),
		Duplicates: duplicates, Unexpected: t.unexpected,
	}
	var first, last time.Time
	var ingest []time.Duration
	errorsSeen := map[string]int{}
	for i := range calls {
		c := &calls[i]
		if c.start.IsZero() {
			continue
		}
		if first.IsZero() || c.start.Before(first) {
			first = c.start
		}
		if c.end.After(last) {
			last = c.end
		}
		if lag := millis(c.start.Sub(c.intended)); lag > r.ScheduleLagMaxMillis {
			r.ScheduleLagMaxMillis = lag
		}
		if c.err != nil {
			r.IngestErrors++
			if msg := c.err.Error(); errorsSeen[msg] == 0 && len(errorsSeen) < 5 {
				r.Errors = append(r.Errors, "ingest: "+msg)
			}
			errorsSeen[c.err.Error()]++
			continue
		}
		r.EventsSent++
		ingest = append(ingest, c.end.Sub(c.intended))
	}
	if anonymous > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("receiver: %d requests without a webhook-id header", anonymous))
	}
	r.IngestSeconds = last.Sub(first).Seconds()
	r.IngestPerSecond = perSecond(r.EventsSent+r.IngestErrors, r.IngestSeconds)
	r.IngestLatency = summarize(ingest)
	if !t.lastReceipt.IsZero() {
		r.DeliverySeconds = t.lastReceipt.Sub(first).Seconds()
	}
	r.DeliveriesPerSecond = perSecond(t.matched, r.DeliverySeconds)
	r.DeliveryLatency = summarize(t.latencies)
	return r
}

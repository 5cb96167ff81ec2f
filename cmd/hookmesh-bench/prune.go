package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/internal/retention"
	"github.com/hookmesh/hookmesh/services/ingest"
	"github.com/hookmesh/hookmesh/services/status"
)

// pruneResult is what -prune measured: the pruner deleting the oldest day
// of a history of -history deliveries spread over -prune-days days, and
// the steady load before (baseline) and meanwhile (pruning).
type pruneResult struct {
	Days       int          `json:"days"`
	BatchSize  int          `json:"batch_size"`
	Status     prunerResult `json:"status"`
	Ingest     prunerResult `json:"ingest"`
	Baseline   loadResult   `json:"baseline"`
	Pruning    loadResult   `json:"pruning"`
	RatePerSec float64      `json:"rate"`
}

// prunerResult is one service's pruner over the oldest day.
type prunerResult struct {
	Seconds    float64          `json:"seconds"`
	Rows       retention.Counts `json:"rows"`
	RowsPerSec float64          `json:"rows_per_second"`
	Error      string           `json:"error,omitempty"`
}

// loadResult is the steady load of one phase: ingest calls, ingest→receipt,
// and the first page of ListDeliveries over the history's projects.
type loadResult struct {
	Events         int     `json:"events"`
	Ingest         latency `json:"ingest_ms"`
	Delivery       latency `json:"delivery_ms"`
	ListDeliveries latency `json:"list_deliveries_ms"`
	Missing        int     `json:"missing"`
}

// staticRetentions keeps each history project for the same days.
type staticRetentions map[string]int

func (s staticRetentions) ListRetentions(context.Context) (map[string]int, error) { return s, nil }

// runPrune measures the pruner on the history runHistory stored: a steady
// load of cfg.rate events/s for cfg.pruneSeconds (baseline), then the same
// load while the status and ingest pruners, with the code and settings
// hookmesh runs them with, delete what is older than cfg.pruneDays-1 days:
// the oldest day of the history.
func runPrune(ctx context.Context, cfg *config, p *project, recv *receiver, hist *historyResult, logf func(string, ...any)) (*pruneResult, error) {
	pool, err := pgdb.Open(ctx, cfg.postgresURL, cfg.historySchema)
	if err != nil {
		return nil, fmt.Errorf("-prune: %w", err)
	}
	defer pool.Close()
	ipool, err := pgdb.Open(ctx, cfg.postgresURL, strings.TrimSuffix(cfg.historySchema, "_status")+"_ingest")
	if err != nil {
		return nil, fmt.Errorf("-prune: %w", err)
	}
	defer ipool.Close()
	quiet := slog.New(slog.DiscardHandler)
	statusSvc, err := status.New(status.DefaultConfig(), nil, quiet, status.WithPostgres(pool))
	if err != nil {
		return nil, fmt.Errorf("-prune: %w", err)
	}
	ingestSvc, err := ingest.New(ingest.Config{}, ingest.NewPostgresStore(ipool), nil, nil, nil, mesh.Topology{}, nil, quiet)
	if err != nil {
		return nil, fmt.Errorf("-prune: %w", err)
	}
	defer ingestSvc.Close()

	out := &pruneResult{Days: cfg.pruneDays, BatchSize: cfg.pruneBatch, RatePerSec: cfg.rate}
	logf("-prune: baseline, %.0f events/s for %s", cfg.rate, cfg.pruneFor)
	out.Baseline = steadyLoad(ctx, cfg, p, recv, hist, nil)

	days := staticRetentions{}
	for _, id := range hist.projects {
		days[id] = cfg.pruneDays - 1
	}
	logf("-prune: the same load while the pruners delete what is older than %d days", cfg.pruneDays-1)
	var wg sync.WaitGroup
	window := &pruneWindow{start: time.Now()}
	prune := func(name string, st retention.Store, res *prunerResult) {
		defer wg.Done()
		pr, err := retention.New(retention.Config{BatchSize: cfg.pruneBatch}, name, days, st, nil, quiet)
		if err != nil {
			res.Error = err.Error()
			return
		}
		t0 := time.Now()
		rows, err := pr.RunOnce(ctx)
		res.Seconds = time.Since(t0).Seconds()
		res.Rows = rows
		res.RowsPerSec = perSecond(int(rows.Total()), res.Seconds)
		if err != nil {
			res.Error = err.Error()
		}
		logf("-prune: %s pruner deleted %v in %.1f s", name, rows, res.Seconds)
	}
	wg.Add(2)
	go prune("status", statusSvc, &out.Status)
	go prune("ingest", ingestSvc, &out.Ingest)
	go func() { wg.Wait(); window.finish() }()
	out.Pruning = steadyLoad(ctx, cfg, p, recv, hist, window)
	wg.Wait()
	return out, nil
}

// pruneWindow is when the pruners ran.
type pruneWindow struct {
	mu         sync.Mutex
	start, end time.Time
}

func (w *pruneWindow) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.end = time.Now()
}

// during says whether t is while the pruners ran.
func (w *pruneWindow) during(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !t.Before(w.start) && (w.end.IsZero() || t.Before(w.end))
}

// steadyLoad sends cfg.rate events/s for cfg.pruneFor, waits for their
// deliveries, and meanwhile lists the first page of a history project's
// deliveries every 20 ms. With a window, only what started while the
// pruners ran is counted (the load goes on for cfg.pruneFor even when they
// finish sooner).
func steadyLoad(ctx context.Context, cfg *config, p *project, recv *receiver, hist *historyResult, window *pruneWindow) loadResult {
	phase := *cfg
	phase.events = max(int(cfg.rate*cfg.pruneFor.Seconds()), 1)
	ld := newLoader(&phase, newIngester(&phase, p))
	stopProbe := startProbe(ctx, cfg, hist.projects, window)
	calls := ld.run(ctx)
	probes := stopProbe()
	waitDeliveries(ctx, &phase, calls, recv)
	got, _, _ := recv.snapshot()
	t := match(&phase, calls, got)
	ingestLat, deliveryLat := loadLatencies(calls, got, window)
	return loadResult{Events: len(ingestLat), Ingest: summarize(ingestLat), Delivery: summarize(deliveryLat),
		ListDeliveries: summarize(probes), Missing: len(t.missing)}
}

// startProbe lists the first page of one of projects' deliveries every
// 20 ms until the function it returns is called, which returns how long
// each call took of those that succeeded and started within window (all of
// them without one).
func startProbe(ctx context.Context, cfg *config, projects []string, window *pruneWindow) func() []time.Duration {
	client := statusv1connect.NewStatusServiceClient(&http.Client{Timeout: time.Minute}, cfg.statusURL,
		connect.WithInterceptors(auth.BearerInterceptor(cfg.adminKey)))
	probeCtx, stopProbe := context.WithCancel(ctx)
	var probes []time.Duration
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		rng := rand.New(rand.NewPCG(4, 5))
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-probeCtx.Done():
				return
			case <-tick.C:
			}
			t0 := time.Now()
			_, err := client.ListDeliveries(probeCtx, connect.NewRequest(&statusv1.ListDeliveriesRequest{
				ProjectId: projects[rng.IntN(len(projects))], PageSize: historyPageSize}))
			if err == nil && (window == nil || window.during(t0)) {
				probes = append(probes, time.Since(t0))
			}
		}
	}()
	return func() []time.Duration {
		stopProbe()
		<-probeDone
		return probes
	}
}

// loadLatencies are the ingest call and ingest→receipt latencies of the
// calls counted: those that succeeded and were due within window (all of
// them without one). Receipts of other phases and runs are not among them.
func loadLatencies(calls []call, got []receipt, window *pruneWindow) (ingestLat, deliveryLat []time.Duration) {
	intended := map[string]time.Time{}
	for i := range calls {
		c := &calls[i]
		if c.start.IsZero() || c.err != nil || (window != nil && !window.during(c.intended)) {
			continue
		}
		ingestLat = append(ingestLat, c.end.Sub(c.intended))
		intended[c.eventID] = c.intended
	}
	for _, r := range got {
		if at, ok := intended[r.eventID]; ok {
			deliveryLat = append(deliveryLat, r.at.Sub(at))
		}
	}
	return ingestLat, deliveryLat
}

func (r *pruneResult) printHuman(w io.Writer) {
	fmt.Fprintf(w, "\npruning the oldest of %d days (batches of %d) under %.0f events/s:\n", r.Days, r.BatchSize, r.RatePerSec)
	for _, s := range []struct {
		name string
		p    prunerResult
	}{{"status", r.Status}, {"ingest", r.Ingest}} {
		fmt.Fprintf(w, "  %-7s pruner: %v in %.1f s (%.0f rows/s)", s.name, s.p.Rows, s.p.Seconds, s.p.RowsPerSec)
		if s.p.Error != "" {
			fmt.Fprintf(w, ", error: %s", s.p.Error)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-34s %10s %10s\n", "steady load, p50 / p99 ms", "baseline", "pruning")
	row := func(name string, a, b latency) {
		fmt.Fprintf(w, "%-34s %10s %10s\n", name, fmt.Sprintf("%.1f/%.1f", a.P50, a.P99), fmt.Sprintf("%.1f/%.1f", b.P50, b.P99))
	}
	row("ingest call", r.Baseline.Ingest, r.Pruning.Ingest)
	row("ingest→receipt", r.Baseline.Delivery, r.Pruning.Delivery)
	row("ListDeliveries, history, page 1", r.Baseline.ListDeliveries, r.Pruning.ListDeliveries)
	fmt.Fprintf(w, "%-34s %10d %10d\n", "events counted", r.Baseline.Events, r.Pruning.Events)
}

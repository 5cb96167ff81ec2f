// Package retention deletes the history that projects no longer keep: a
// Pruner asks the registry how many days each project keeps (a Source) and
// has the stores of one service (a Store: the status service's deliveries,
// or ingest's events) delete what is older, in batches, with a pause
// between batches so that the requests and writes of the hot path keep
// their share of the database. Its progress is in OpenTelemetry metrics
// and in the log.
package retention

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Kinds of rows a Store deletes, the "kind" attribute of the metrics.
const (
	KindDeliveries = "deliveries"
	KindAttempts   = "attempts"
	KindStatistics = "statistics"
	KindEvents     = "events"
	KindClaims     = "idempotency_keys"
)

// Counts are the rows deleted, by kind.
type Counts map[string]int64

// Add adds c2 to c.
func (c Counts) Add(c2 Counts) {
	for k, n := range c2 {
		c[k] += n
	}
}

// Total is the rows deleted, of every kind.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Source says how many days each project keeps its history (the registry's
// ListRetentions).
type Source interface {
	ListRetentions(ctx context.Context) (map[string]int, error)
}

// Store deletes a project's history older than cutoff, one batch of at most
// limit rows of each kind a call. more says that the batch was full, so
// that there may be more to delete.
type Store interface {
	PruneBatch(ctx context.Context, projectID string, cutoff time.Time, limit int) (deleted Counts, more bool, err error)
}

// Config says how often and how fast a Pruner deletes.
type Config struct {
	// Interval is the time between the starts of two runs; 10 minutes when
	// zero.
	Interval time.Duration
	// BatchSize is the most rows of a kind one batch deletes; 5000 when
	// zero.
	BatchSize int
	// Pause is the wait between two batches; 100 ms when zero.
	Pause time.Duration
}

// DefaultConfig is the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{Interval: 10 * time.Minute, BatchSize: 5000, Pause: 100 * time.Millisecond}
}

// RegisterFlags declares the configuration's flags on fs, with the
// defaults of DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.DurationVar(&c.Interval, "retention-interval", d.Interval, "how often the status and ingest services delete the history older than each project's retention")
	fs.IntVar(&c.BatchSize, "retention-batch-size", d.BatchSize, "most rows of a kind (deliveries, events, ...) one batch of the pruner deletes; batches are 100 ms apart")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Interval <= 0 || c.BatchSize <= 0 {
		return errors.New("HOOKMESH_RETENTION_INTERVAL and HOOKMESH_RETENTION_BATCH_SIZE must be positive")
	}
	return nil
}

func (c *Config) defaults() {
	d := DefaultConfig()
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = d.BatchSize
	}
	if c.Pause <= 0 {
		c.Pause = d.Pause
	}
}

// Pruner deletes, every Interval, the history of every project that is
// older than its retention, from one service's store.
type Pruner struct {
	cfg     Config
	name    string
	source  Source
	store   Store
	logger  *slog.Logger
	now     func() time.Time
	pruned  metric.Int64Counter
	runs    metric.Int64Counter
	lastRun metric.Float64Gauge
	attr    metric.MeasurementOption
}

// New returns a pruner of store, named after its service (the "service"
// attribute of its metrics and logs). mp may be nil.
func New(cfg Config, name string, source Source, store Store, mp metric.MeterProvider, logger *slog.Logger) (*Pruner, error) {
	cfg.defaults()
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := mp.Meter("github.com/hookmesh/hookmesh/internal/retention")
	pruned, err := m.Int64Counter("hookmesh.retention.pruned",
		metric.WithDescription("Rows deleted because they were older than their project's retention, by kind."))
	if err != nil {
		return nil, fmt.Errorf("create retention metrics: %w", err)
	}
	runs, err := m.Int64Counter("hookmesh.retention.runs",
		metric.WithDescription("Runs of the pruner, by outcome (ok or error)."))
	if err != nil {
		return nil, fmt.Errorf("create retention metrics: %w", err)
	}
	lastRun, err := m.Float64Gauge("hookmesh.retention.last_run.duration", metric.WithUnit("s"),
		metric.WithDescription("How long the pruner's last run took."))
	if err != nil {
		return nil, fmt.Errorf("create retention metrics: %w", err)
	}
	return &Pruner{cfg: cfg, name: name, source: source, store: store, logger: logger.With("pruner", name), now: time.Now,
		pruned: pruned, runs: runs, lastRun: lastRun, attr: metric.WithAttributes(attribute.String("service", name))}, nil
}

// Run prunes at once and then every Interval until ctx ends. A failed run is
// logged and tried again at the next one.
func (p *Pruner) Run(ctx context.Context) error {
	for {
		if _, err := p.RunOnce(ctx); err != nil && ctx.Err() == nil {
			p.logger.WarnContext(ctx, "retention run failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.cfg.Interval):
		}
	}
}

// RunOnce deletes, project by project, what is older than each project's
// retention, and returns what it deleted. An error with one project is
// reported after the others were pruned.
func (p *Pruner) RunOnce(ctx context.Context) (Counts, error) {
	start := p.now()
	total := Counts{}
	retentions, err := p.source.ListRetentions(ctx)
	if err != nil {
		p.runs.Add(ctx, 1, p.attr, metric.WithAttributes(attribute.String("outcome", "error")))
		return total, fmt.Errorf("list retentions: %w", err)
	}
	var errs []error
	for _, projectID := range slices.Sorted(maps.Keys(retentions)) {
		days := retentions[projectID]
		if days <= 0 {
			continue
		}
		cutoff := start.Add(-time.Duration(days) * 24 * time.Hour)
		got, err := p.PruneProject(ctx, projectID, cutoff)
		total.Add(got)
		if err != nil {
			if ctx.Err() != nil {
				return total, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("prune project %s: %w", projectID, err))
		}
	}
	took := p.now().Sub(start)
	p.lastRun.Record(ctx, took.Seconds(), p.attr)
	outcome := "ok"
	if len(errs) > 0 {
		outcome = "error"
	}
	p.runs.Add(ctx, 1, p.attr, metric.WithAttributes(attribute.String("outcome", outcome)))
	args := []any{"projects", len(retentions), "took", took.String(), "rows", total.Total()}
	for _, k := range slices.Sorted(maps.Keys(total)) {
		args = append(args, k, total[k])
	}
	if total.Total() > 0 || len(errs) > 0 {
		p.logger.InfoContext(ctx, "retention run finished", args...)
	} else {
		p.logger.DebugContext(ctx, "retention run finished", args...)
	}
	return total, errors.Join(errs...)
}

// PruneProject deletes a project's history older than cutoff, batch after
// batch with a pause between them, and returns what it deleted.
func (p *Pruner) PruneProject(ctx context.Context, projectID string, cutoff time.Time) (Counts, error) {
	total := Counts{}
	for {
		got, more, err := p.store.PruneBatch(ctx, projectID, cutoff, p.cfg.BatchSize)
		for kind, n := range got {
			if n > 0 {
				p.pruned.Add(ctx, n, p.attr, metric.WithAttributes(attribute.String("kind", kind)))
			}
		}
		total.Add(got)
		if err != nil {
			return total, err
		}
		if !more {
			if total.Total() > 0 {
				p.logger.DebugContext(ctx, "project pruned", "project_id", projectID, "cutoff", cutoff, "rows", total.Total())
			}
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(p.cfg.Pause):
		}
	}
}

package status

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// HistorySpec describes a made-up delivery history, for measuring the
// PostgreSQL store at a given size (FillHistory).
type HistorySpec struct {
	// Deliveries is how many to store.
	Deliveries int
	// Projects share the deliveries evenly, an event each in turn; each
	// event goes to PerEvent of its project's endpoints.
	Projects []HistoryProject
	// PerEvent is the deliveries of one event; 10 when zero.
	PerEvent int
	// Span is how far back create times go, evenly spread up to now; 30
	// days when zero.
	Span time.Duration
	// Seed makes the history the same from one run to the next.
	Seed uint64
}

// HistoryProject is a project of a made-up history and its endpoints.
type HistoryProject struct {
	ID          string
	EndpointIDs []string
}

// History is what FillHistory stored, to choose realistic queries from.
type History struct {
	// Events are each project's event ids, oldest first.
	Events map[string][]string
	// EventList is every event, in the order stored, with its project,
	// type and time (ingest.FillEvents stores them in the event list).
	EventList []HistoryEvent
	// Types are the event types used.
	Types []string
	// Sample is about one delivery in a hundred.
	Sample []SampledDelivery
	// Start and End bound the create times.
	Start, End time.Time
}

// HistoryEvent is an event of a made-up history.
type HistoryEvent struct {
	ID, ProjectID, EventType string
	CreateTime               time.Time
}

// SampledDelivery is a delivery FillHistory stored.
type SampledDelivery struct {
	ID, ProjectID, EventID, EndpointID, EventType string
	Status                                        statusv1.DeliveryStatus
	CreateTime                                    time.Time
}

// FillHistory stores spec.Deliveries deliveries in the PostgreSQL schema of
// pool (setting up its tables first), with COPY: most SUCCESS at the first
// attempt, some after a retry, a few FAILED after three attempts, RETRY,
// DISCARDED, or still SCHEDULED or PROCESSING; every attempt with the
// headers and body a receiver typically answers. The counters are moved to
// match, then the tables are analyzed. Delivery and event ids are new, so a
// schema may be filled more than once.
func FillHistory(ctx context.Context, pool *pgxpool.Pool, spec HistorySpec) (*History, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	if err := newPGStore(pool).init(ctx); err != nil {
		return nil, fmt.Errorf("fill history: %w", err)
	}
	f := newHistoryFiller(spec)
	for ev := 0; f.made < spec.Deliveries; ev++ {
		f.event(ev)
		if len(f.deliveries) >= 20_000 {
			if err := f.flush(ctx, pool); err != nil {
				return nil, err
			}
		}
	}
	if err := f.flush(ctx, pool); err != nil {
		return nil, err
	}
	if err := addFilledCounts(ctx, pool, f.deltas); err != nil {
		return nil, err
	}
	if err := addFilledStats(ctx, pool, f.stats); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, "ANALYZE deliveries, attempts, project_counts, endpoint_counts, event_counts, delivery_stats, attempt_stats"); err != nil {
		return nil, fmt.Errorf("fill history: analyze: %w", err)
	}
	return f.h, nil
}

// check says what is missing from spec.
func (spec *HistorySpec) check() error {
	if spec.Deliveries < 0 || len(spec.Projects) == 0 {
		return errors.New("fill history: want a number of deliveries and at least one project")
	}
	for _, p := range spec.Projects {
		if p.ID == "" || len(p.EndpointIDs) == 0 {
			return fmt.Errorf("fill history: project %q needs an id and at least one endpoint", p.ID)
		}
	}
	return nil
}

// The headers of every made-up attempt: what a receiver typically gets and
// answers.
const (
	fillRequestHeaders  = `{"Content-Type":"application/json","User-Agent":"hookmesh","webhook-id":"x","webhook-signature":"v1,abc","webhook-timestamp":"1700000000"}`
	fillResponseHeaders = `{"Content-Length":"11","Content-Type":"application/json","Date":"Mon, 07 Dec 2026 20:00:00 GMT","Server":"receiver"}`
)

// historyFiller makes up the deliveries of a HistorySpec, event by event,
// and gathers their rows, counters and statistics until they are stored.
type historyFiller struct {
	spec     HistorySpec
	perEvent int
	// rng is drawn from in a fixed order, so that a seed gives the same
	// history every time.
	rng  *rand.Rand
	h    *History
	step time.Duration
	run  string

	deltas               *counterDeltas
	stats                *statDeltas
	deliveries, attempts [][]any
	made                 int
}

func newHistoryFiller(spec HistorySpec) *historyFiller {
	perEvent := cmpOr(spec.PerEvent, 10)
	span := spec.Span
	if span <= 0 {
		span = 30 * 24 * time.Hour
	}
	h := &History{
		Events: map[string][]string{},
		Types:  []string{"invoice.paid", "invoice.failed", "customer.created", "customer.updated", "charge.refunded"},
		End:    time.Now().UTC().Truncate(time.Millisecond),
	}
	h.Start = h.End.Add(-span)
	nEvents := (spec.Deliveries + perEvent - 1) / perEvent
	return &historyFiller{
		spec:     spec,
		perEvent: perEvent,
		rng:      rand.New(rand.NewPCG(spec.Seed, uint64(spec.Deliveries))),
		h:        h,
		step:     span / time.Duration(nEvents+1),
		run:      ids.Random(6),
		deltas:   newCounterDeltas(),
		stats:    newStatDeltas(),
	}
}

// event makes up the event numbered ev and its deliveries, as many as
// PerEvent and the deliveries still to make allow.
func (f *historyFiller) event(ev int) {
	prj := f.spec.Projects[ev%len(f.spec.Projects)]
	evID := fmt.Sprintf("evt_%s%09d", f.run, ev)
	f.h.Events[prj.ID] = append(f.h.Events[prj.ID], evID)
	created := f.h.Start.Add(time.Duration(ev+1) * f.step).Truncate(time.Millisecond)
	evType := f.h.Types[f.rng.IntN(len(f.h.Types))]
	e := HistoryEvent{ID: evID, ProjectID: prj.ID, EventType: evType, CreateTime: created}
	f.h.EventList = append(f.h.EventList, e)
	first := f.rng.IntN(len(prj.EndpointIDs))
	for k := 0; k < f.perEvent && f.made < f.spec.Deliveries; k++ {
		ep := prj.EndpointIDs[(first+k)%len(prj.EndpointIDs)]
		f.delivery(e, ep, fmt.Sprintf("dlv_%s%09d_%d", f.run, ev, k))
	}
}

// delivery makes up the delivery id of the event e to the endpoint ep,
// with its attempts, and counts it.
func (f *historyFiller) delivery(e HistoryEvent, ep, id string) {
	st, tries := fillOutcome(f.rng)
	rk, _ := rank(st)
	seq := int64(max(tries, 1))*8 + rk
	updated := e.CreateTime.Add(time.Duration(tries) * time.Second)
	code, lastErr := fillLastResult(st, tries)
	var next any
	if st == statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY {
		next = updated.Add(time.Minute)
	}
	f.deliveries = append(f.deliveries, []any{id, e.ProjectID, e.ID, ep, e.EventType, int16(st), seq, int64(tries), e.CreateTime, updated, next, code, lastErr})
	f.attemptsOf(e, ep, id, st, tries)
	f.deltas.add(e.ProjectID, ep, e.ID, int16(st), 1)
	f.stats.outcome(e.ProjectID, ep, int32(st), updated)
	if f.made%97 == 0 {
		f.h.Sample = append(f.h.Sample, SampledDelivery{ID: id, ProjectID: e.ProjectID, EventID: e.ID, EndpointID: ep, EventType: e.EventType,
			Status: st, CreateTime: e.CreateTime})
	}
	f.made++
}

// attemptsOf makes up the attempts of the delivery id of e to ep, which
// ended in st after tries attempts: each answered 503 but a success's
// last, and a delivery under way has no result for its last yet.
func (f *historyFiller) attemptsOf(e HistoryEvent, ep, id string, st statusv1.DeliveryStatus, tries int) {
	success := st == statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS
	processing := st == statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING
	for a := 1; a <= tries; a++ {
		if processing && a == tries {
			break // under way: no result yet
		}
		ac, ae := int32(503), "endpoint answered 503"
		if success && a == tries {
			ac, ae = 200, ""
		}
		latency, start := int64(20+f.rng.IntN(200)), e.CreateTime.Add(time.Duration(a)*time.Second)
		f.attempts = append(f.attempts, []any{id, int64(a), e.ProjectID, ac, latency, fillRequestHeaders, fillResponseHeaders,
			`{"ok":true}`, ae, "10.0.0.7", start, "https://receiver.example/hooks/" + ep})
		f.stats.attempt(&attemptDoc{ProjectID: e.ProjectID, EndpointID: ep, LatencyMS: latency, StartTime: &start})
	}
}

// fillOutcome draws a made-up delivery's status and how many attempts it
// took: 88% SUCCESS (one in ten of them after a retry), 5% FAILED, 3%
// RETRY, 2% DISCARDED, 1% SCHEDULED and 1% PROCESSING.
func fillOutcome(rng *rand.Rand) (statusv1.DeliveryStatus, int) {
	switch r := rng.IntN(100); {
	case r < 88:
		return statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, 1 + rng.IntN(10)/9
	case r < 93:
		return statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, 3
	case r < 96:
		return statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY, 1 + rng.IntN(2)
	case r < 98:
		return statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, rng.IntN(2)
	case r < 99:
		return statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, 0
	}
	return statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING, 1
}

// fillLastResult is the status code and error of a made-up delivery's
// last finished attempt: none before the first, or while it is under way.
func fillLastResult(st statusv1.DeliveryStatus, tries int) (int32, string) {
	if tries == 0 || st == statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING {
		return 0, ""
	}
	if st != statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS {
		return 503, "endpoint answered 503"
	}
	return 200, ""
}

// flush stores the rows gathered so far with COPY, and forgets them.
func (f *historyFiller) flush(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"deliveries"}, []string{"id", "project_id", "event_id", "endpoint_id", "event_type",
		"status", "seq", "attempts", "create_time", "update_time", "next_attempt_time", "last_status_code", "last_error"},
		pgx.CopyFromRows(f.deliveries)); err != nil {
		return fmt.Errorf("fill history: copy deliveries: %w", err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"attempts"}, []string{"delivery_id", "attempt", "project_id", "status_code", "latency_ms",
		"request_headers", "response_headers", "response_body", "error", "remote_ip", "start_time", "url"},
		pgx.CopyFromRows(f.attempts)); err != nil {
		return fmt.Errorf("fill history: copy attempts: %w", err)
	}
	f.deliveries, f.attempts = f.deliveries[:0], f.attempts[:0]
	return nil
}

// fillChunk is how many counter rows one statement adds to, as writes do.
const fillChunk = 20_000

// inChunks calls exec with the bounds [i, j) of n rows, fillChunk at a
// time, until it fails.
func inChunks(n int, exec func(i, j int) error) error {
	for i := 0; i < n; i += fillChunk {
		if err := exec(i, min(i+fillChunk, n)); err != nil {
			return err
		}
	}
	return nil
}

// addFilledCounts adds the counter changes of the stored deliveries to
// what the counters hold, as writes do, in chunks.
func addFilledCounts(ctx context.Context, pool *pgxpool.Pool, deltas *counterDeltas) error {
	p, st, n := splitDeltas(deltas.project)
	err := inChunks(len(p), func(i, j int) error {
		_, err := pool.Exec(ctx, sqlAddProjectCounts, p[i:j], st[i:j], n[i:j])
		return err
	})
	if err != nil {
		return fmt.Errorf("fill history: count: %w", err)
	}
	for _, c := range []struct {
		sql    string
		deltas map[counterKey]int64
	}{{sqlAddEndpointCounts, deltas.endpoint}, {sqlAddEventCounts, deltas.event}} {
		p, k, st, n := sortedDeltas(c.deltas)
		err := inChunks(len(p), func(i, j int) error {
			_, err := pool.Exec(ctx, c.sql, p[i:j], k[i:j], st[i:j], n[i:j])
			return err
		})
		if err != nil {
			return fmt.Errorf("fill history: count: %w", err)
		}
	}
	return nil
}

// addFilledStats adds the statistics of the stored deliveries and
// attempts to what the counters hold, in chunks.
func addFilledStats(ctx context.Context, pool *pgxpool.Pool, stats *statDeltas) error {
	for _, c := range []struct {
		sql  string
		m    map[statKey]statValue
		args func(map[statKey]statValue, []statKey) []any
	}{{sqlAddDeliveryStats, stats.deliveries, deliveryStatsArgs}, {sqlAddAttemptStats, stats.attempts, attemptStatsArgs}} {
		ks := sortedStats(c.m)
		err := inChunks(len(ks), func(i, j int) error {
			_, err := pool.Exec(ctx, c.sql, c.args(c.m, ks[i:j])...)
			return err
		})
		if err != nil {
			return fmt.Errorf("fill history: statistics: %w", err)
		}
	}
	return nil
}

// splitDeltas is sortedDeltas for project_counts, which has no key column.
func splitDeltas(m map[counterKey]int64) ([]string, []int16, []int64) {
	p, _, st, n := sortedDeltas(m)
	return p, st, n
}

func cmpOr(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

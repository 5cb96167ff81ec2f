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
	if spec.Deliveries < 0 || len(spec.Projects) == 0 {
		return nil, errors.New("fill history: want a number of deliveries and at least one project")
	}
	for _, p := range spec.Projects {
		if p.ID == "" || len(p.EndpointIDs) == 0 {
			return nil, fmt.Errorf("fill history: project %q needs an id and at least one endpoint", p.ID)
		}
	}
	perEvent := cmpOr(spec.PerEvent, 10)
	span := spec.Span
	if span <= 0 {
		span = 30 * 24 * time.Hour
	}
	if err := newPGStore(pool).init(ctx); err != nil {
		return nil, fmt.Errorf("fill history: %w", err)
	}
	rng := rand.New(rand.NewPCG(spec.Seed, uint64(spec.Deliveries)))
	h := &History{
		Events: map[string][]string{},
		Types:  []string{"invoice.paid", "invoice.failed", "customer.created", "customer.updated", "charge.refunded"},
		End:    time.Now().UTC().Truncate(time.Millisecond),
	}
	h.Start = h.End.Add(-span)
	nEvents := (spec.Deliveries + perEvent - 1) / perEvent
	step := span / time.Duration(nEvents+1)
	run := ids.Random(6)

	deltas := newCounterDeltas()
	stats := newStatDeltas()
	var deliveries, attempts [][]any
	reqHeaders := `{"Content-Type":"application/json","User-Agent":"hookmesh","webhook-id":"x","webhook-signature":"v1,abc","webhook-timestamp":"1700000000"}`
	resHeaders := `{"Content-Length":"11","Content-Type":"application/json","Date":"Mon, 07 Dec 2026 20:00:00 GMT","Server":"receiver"}`
	flush := func() error {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"deliveries"}, []string{"id", "project_id", "event_id", "endpoint_id", "event_type",
			"status", "seq", "attempts", "create_time", "update_time", "next_attempt_time", "last_status_code", "last_error"},
			pgx.CopyFromRows(deliveries)); err != nil {
			return fmt.Errorf("fill history: copy deliveries: %w", err)
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"attempts"}, []string{"delivery_id", "attempt", "project_id", "status_code", "latency_ms",
			"request_headers", "response_headers", "response_body", "error", "remote_ip", "start_time", "url"},
			pgx.CopyFromRows(attempts)); err != nil {
			return fmt.Errorf("fill history: copy attempts: %w", err)
		}
		deliveries, attempts = deliveries[:0], attempts[:0]
		return nil
	}
	made := 0
	for ev := 0; made < spec.Deliveries; ev++ {
		prj := spec.Projects[ev%len(spec.Projects)]
		evID := fmt.Sprintf("evt_%s%09d", run, ev)
		h.Events[prj.ID] = append(h.Events[prj.ID], evID)
		created := h.Start.Add(time.Duration(ev+1) * step).Truncate(time.Millisecond)
		evType := h.Types[rng.IntN(len(h.Types))]
		h.EventList = append(h.EventList, HistoryEvent{ID: evID, ProjectID: prj.ID, EventType: evType, CreateTime: created})
		first := rng.IntN(len(prj.EndpointIDs))
		for k := 0; k < perEvent && made < spec.Deliveries; k++ {
			ep := prj.EndpointIDs[(first+k)%len(prj.EndpointIDs)]
			id := fmt.Sprintf("dlv_%s%09d_%d", run, ev, k)
			var st statusv1.DeliveryStatus
			var tries int
			switch r := rng.IntN(100); {
			case r < 88:
				st, tries = statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, 1+rng.IntN(10)/9
			case r < 93:
				st, tries = statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, 3
			case r < 96:
				st, tries = statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY, 1+rng.IntN(2)
			case r < 98:
				st, tries = statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, rng.IntN(2)
			case r < 99:
				st, tries = statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, 0
			default:
				st, tries = statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING, 1
			}
			success := st == statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS
			processing := st == statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING
			rk, _ := rank(st)
			seq := int64(max(tries, 1))*8 + rk
			updated := created.Add(time.Duration(tries) * time.Second)
			var next any
			code, lastErr := int32(0), ""
			if tries > 0 && !processing {
				code = 200
				if !success {
					code, lastErr = 503, "endpoint answered 503"
				}
			}
			if st == statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY {
				next = updated.Add(time.Minute)
			}
			deliveries = append(deliveries, []any{id, prj.ID, evID, ep, evType, int16(st), seq, int64(tries), created, updated, next, code, lastErr})
			for a := 1; a <= tries; a++ {
				if processing && a == tries {
					break // under way: no result yet
				}
				ac, ae := int32(503), "endpoint answered 503"
				if success && a == tries {
					ac, ae = 200, ""
				}
				latency, start := int64(20+rng.IntN(200)), created.Add(time.Duration(a)*time.Second)
				attempts = append(attempts, []any{id, int64(a), prj.ID, ac, latency, reqHeaders, resHeaders,
					`{"ok":true}`, ae, "10.0.0.7", start, "https://receiver.example/hooks/" + ep})
				stats.attempt(&attemptDoc{ProjectID: prj.ID, EndpointID: ep, LatencyMS: latency, StartTime: &start})
			}
			deltas.add(prj.ID, ep, evID, int16(st), 1)
			stats.outcome(prj.ID, ep, int32(st), updated)
			if made%97 == 0 {
				h.Sample = append(h.Sample, SampledDelivery{ID: id, ProjectID: prj.ID, EventID: evID, EndpointID: ep, EventType: evType,
					Status: st, CreateTime: created})
			}
			made++
		}
		if len(deliveries) >= 20_000 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	// The counters are added to what is there, as writes do, in chunks.
	const chunk = 20_000
	p, st, n := splitDeltas(deltas.project)
	for i := 0; i < len(p); i += chunk {
		j := min(i+chunk, len(p))
		if _, err := pool.Exec(ctx, sqlAddProjectCounts, p[i:j], st[i:j], n[i:j]); err != nil {
			return nil, fmt.Errorf("fill history: count: %w", err)
		}
	}
	for _, c := range []struct {
		sql    string
		deltas map[counterKey]int64
	}{{sqlAddEndpointCounts, deltas.endpoint}, {sqlAddEventCounts, deltas.event}} {
		p, k, st, n := sortedDeltas(c.deltas)
		for i := 0; i < len(p); i += chunk {
			j := min(i+chunk, len(p))
			if _, err := pool.Exec(ctx, c.sql, p[i:j], k[i:j], st[i:j], n[i:j]); err != nil {
				return nil, fmt.Errorf("fill history: count: %w", err)
			}
		}
	}
	for _, c := range []struct {
		sql  string
		m    map[statKey]statValue
		args func(map[statKey]statValue, []statKey) []any
	}{{sqlAddDeliveryStats, stats.deliveries, deliveryStatsArgs}, {sqlAddAttemptStats, stats.attempts, attemptStatsArgs}} {
		ks := sortedStats(c.m)
		for i := 0; i < len(ks); i += chunk {
			if _, err := pool.Exec(ctx, c.sql, c.args(c.m, ks[i:min(i+chunk, len(ks))])...); err != nil {
				return nil, fmt.Errorf("fill history: statistics: %w", err)
			}
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE deliveries, attempts, project_counts, endpoint_counts, event_counts, delivery_stats, attempt_stats"); err != nil {
		return nil, fmt.Errorf("fill history: analyze: %w", err)
	}
	return h, nil
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

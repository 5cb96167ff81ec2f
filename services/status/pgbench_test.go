package status

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// BenchmarkHistory measures the queries of the status API on the
// PostgreSQL store over a history of HOOKMESH_BENCH_HISTORY deliveries
// (100,000 when unset), filled with COPY as fillHistory does: GetDelivery,
// ListAttempts (as the handler makes them: the delivery, then its
// attempts), ListDeliveries with each filter, first page and 20th page of
// 50, CountDeliveries, the summaries of a page of 50 events, and Apply of
// 100 new deliveries (their SCHEDULED, then their SUCCESS). Each reports
// its p50 and p99 in milliseconds. It needs HOOKMESH_TEST_POSTGRES_URL:
//
//	HOOKMESH_BENCH_HISTORY=1000000 go test -run '^$' -bench BenchmarkHistory -benchtime 300x ./services/status/
func BenchmarkHistory(b *testing.B) {
	size := 100_000
	if v := os.Getenv("HOOKMESH_BENCH_HISTORY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < fillPerEvent {
			b.Fatalf("HOOKMESH_BENCH_HISTORY=%q: want a number of deliveries, at least %d", v, fillPerEvent)
		}
		size = n
	}
	s := testService(b, onPostgres)
	pool := s.store.(*pgStore).pool
	start := time.Now()
	h := fillHistory(b, pool, size)
	b.Logf("filled %d deliveries in %v", size, time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	project := func() string { return pick(h.projects) }
	week := h.end.Add(-7 * 24 * time.Hour)

	type filter struct {
		name string
		q    func(prj string) deliveryQuery
	}
	filters := []filter{
		{"all", func(string) deliveryQuery { return deliveryQuery{} }},
		{"event", func(prj string) deliveryQuery { return deliveryQuery{eventID: pick(h.events[prj])} }},
		{"endpoint", func(prj string) deliveryQuery { return deliveryQuery{endpointID: h.endpoints[prj][0]} }},
		{"event type", func(string) deliveryQuery { return deliveryQuery{eventType: h.types[1]} }},
		{"status FAILED", func(string) deliveryQuery { return deliveryQuery{statuses: []statusv1.DeliveryStatus{failed}} }},
		{"statuses FAILED+DISCARDED", func(string) deliveryQuery {
			return deliveryQuery{statuses: []statusv1.DeliveryStatus{failed, discarded}}
		}},
		{"last 7 days", func(string) deliveryQuery { return deliveryQuery{start: week} }},
		{"endpoint+SUCCESS+7 days", func(prj string) deliveryQuery {
			return deliveryQuery{endpointID: h.endpoints[prj][0], statuses: []statusv1.DeliveryStatus{success}, start: week}
		}},
	}
	query := func(f filter, prj string, after *pageCursor) *deliveryQuery {
		q := f.q(prj)
		q.projectID, q.limit, q.after = prj, defaultPageSize+1, after
		return &q
	}
	// The cursor after the 19th page of each filter in each project, found
	// once (the event filter has one page).
	cursors := map[string]map[string]*pageCursor{}
	for _, f := range filters {
		cursors[f.name] = map[string]*pageCursor{}
		for _, prj := range h.projects {
			var after *pageCursor
			for range 19 {
				docs, err := s.store.listDeliveries(ctx, query(f, prj, after))
				if err != nil {
					b.Fatal(err)
				}
				if len(docs) <= defaultPageSize {
					after = nil
					break
				}
				last := docs[defaultPageSize-1]
				after = &pageCursor{createTime: last.CreateTime, id: last.ID}
			}
			if after != nil {
				cursors[f.name][prj] = after
			}
		}
	}

	measure := func(name string, op func() error) {
		b.Run(name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := op(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			at := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(at(0.50), "p50-ms")
			b.ReportMetric(at(0.99), "p99-ms")
		})
	}
	sample := func() SampledDelivery { return h.sample[rng.IntN(len(h.sample))] }
	measure("GetDelivery", func() error {
		d := sample()
		_, err := s.store.getDelivery(ctx, d.ProjectID, d.ID)
		return err
	})
	measure("ListAttempts", func() error {
		d := sample()
		if _, err := s.store.getDelivery(ctx, d.ProjectID, d.ID); err != nil {
			return err
		}
		_, err := s.store.listAttempts(ctx, d.ProjectID, d.ID)
		return err
	})
	for _, f := range filters {
		measure("ListDeliveries/"+f.name+"/page 1", func() error {
			_, err := s.store.listDeliveries(ctx, query(f, project(), nil))
			return err
		})
		if len(cursors[f.name]) == len(h.projects) {
			measure("ListDeliveries/"+f.name+"/page 20", func() error {
				prj := project()
				_, err := s.store.listDeliveries(ctx, query(f, prj, cursors[f.name][prj]))
				return err
			})
		}
	}
	measure("CountDeliveries/project", func() error {
		_, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: project()})
		return err
	})
	measure("CountDeliveries/endpoint", func() error {
		prj := project()
		_, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: prj, endpointID: pick(h.endpoints[prj])})
		return err
	})
	measure("CountDeliveries/event", func() error {
		prj := project()
		_, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: prj, eventID: pick(h.events[prj])})
		return err
	})
	measure("SummarizeEvents/50 events", func() error {
		prj := project()
		evs := h.events[prj]
		i := rng.IntN(len(evs) - 50)
		_, err := s.store.countByEvent(ctx, prj, evs[i:i+50])
		return err
	})
	measure("Apply/100 new deliveries, 2 batches", func() error {
		prj := project()
		var sched, done []*busv1.StateChange
		for range 100 {
			d := delivery{id: ids.New("dlv"), project: prj, event: "evt_bench", endpoint: pick(h.endpoints[prj]), eventType: "t", created: time.Now()}
			sched = append(sched, d.change(scheduled, 1))
			done = append(done, d.change(success, 1))
		}
		if err := s.Apply(ctx, sched); err != nil {
			return err
		}
		return s.Apply(ctx, done)
	})
	b.Logf("history: %s deliveries in %d projects, %d per event", strconv.Itoa(size), len(h.projects), fillPerEvent)
}

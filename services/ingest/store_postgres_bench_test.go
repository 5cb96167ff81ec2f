package ingest

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkPostgresStore measures GetEvent's and ListEvents' queries
// through the PostgreSQL store over 100,000 stored events in 5 projects
// (fillHistory), each page 50 events, and reports p50 and p99 besides the
// mean. Run it on a quiet machine:
//
//	go test -run '^$' -bench PostgresStore ./services/ingest/
func BenchmarkPostgresStore(b *testing.B) {
	pool := testPool(b)
	h := fillHistory(b, pool, 100_000, 5)
	st := NewPostgresStore(pool)
	b.Cleanup(st.close)
	ctx := context.Background()
	yes := true
	for _, tc := range []struct {
		name string
		f    listFilter
	}{
		{"all", listFilter{}},
		{"event type", listFilter{eventType: "type.7"}},
		{"endpoint", listFilter{endpointID: "ep_9"}},
		{"owner", listFilter{ownerID: "owner_3"}},
		{"duplicates", listFilter{duplicate: &yes}},
		{"time range", listFilter{start: h.newest.Add(-50 * time.Minute), end: h.newest.Add(-10 * time.Minute)}},
		{"type in a time range", listFilter{eventType: "type.7", start: h.newest.Add(-50 * time.Minute), end: h.newest.Add(-10 * time.Minute)}},
	} {
		f := tc.f
		f.projectID, f.limit = "prj_0", 50
		first := f
		// The 20th page starts after the last event of the 19th.
		pages := 0
		for range 19 {
			docs, err := st.list(ctx, f)
			if err != nil {
				b.Fatal(err)
			}
			if len(docs) < f.limit {
				break
			}
			f.before = docs[len(docs)-1].ID
			pages++
		}
		for _, page := range []struct {
			name string
			f    listFilter
		}{{"first page", first}, {"20th page", f}} {
			b.Run("ListEvents/"+tc.name+"/"+page.name, func(b *testing.B) {
				if page.f.before != "" && pages < 19 {
					b.Skipf("only %d full pages match", pages)
				}
				measure(b, func() {
					docs, err := st.list(ctx, page.f)
					if err != nil || len(docs) == 0 {
						b.Fatalf("%d events, %v", len(docs), err)
					}
				})
			})
		}
	}
	b.Run("GetEvent", func(b *testing.B) {
		id := h.sample["prj_3"].ID
		measure(b, func() {
			doc, err := st.get(ctx, "prj_3", id)
			if err != nil || doc == nil {
				b.Fatalf("%v, %v", doc, err)
			}
		})
	})
}

// measure runs op b.N times and reports its p50 and p99 in milliseconds.
func measure(b *testing.B, op func()) {
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		op()
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	at := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkPostgresStoreInsert stores events from 64 concurrent callers, as
// concurrent ingest requests do (each with an idempotency key: a claim,
// then the event, then its publish mark).
func BenchmarkPostgresStoreInsert(b *testing.B) {
	pool := testPool(b)
	st := NewPostgresStore(pool)
	b.Cleanup(st.close)
	ctx := context.Background()
	if err := st.init(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := testEvent("prj_1", time.Now())
			d.IdempotencyKey = d.ID
			if orig, _, err := st.claim(ctx, d.ProjectID, d.IdempotencyKey, d.ID, d.CreateTime); err != nil || orig != "" {
				b.Fatalf("claim: %q, %v", orig, err)
			}
			if err := st.insert(ctx, d); err != nil {
				b.Fatal(err)
			}
			if err := st.markPublished(ctx, d.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

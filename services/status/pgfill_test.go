package status

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// history describes a filled history, for choosing realistic parameters.
type history struct {
	projects  []string
	endpoints map[string][]string // by project
	events    map[string][]string // by project, oldest first
	types     []string
	sample    []deliveryDoc // every 97th delivery
	base, end time.Time     // create_time range
}

const (
	fillProjects           = 4
	fillEndpointsByProject = 20
	fillPerEvent           = 10
)

// fillHistory stores n deliveries (fillPerEvent per event, events spread
// over several projects and 30 days, statuses mostly SUCCESS), their
// attempts and the counters that match them, with COPY, then ANALYZEs the
// tables. The schema must be empty and set up.
func fillHistory(tb testing.TB, pool *pgxpool.Pool, n int) *history {
	tb.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	h := &history{
		endpoints: map[string][]string{},
		events:    map[string][]string{},
		types:     []string{"invoice.paid", "invoice.failed", "customer.created", "customer.updated", "charge.refunded"},
		end:       time.Now().UTC().Truncate(time.Millisecond),
	}
	h.base = h.end.Add(-30 * 24 * time.Hour)
	for p := range fillProjects {
		prj := fmt.Sprintf("prj_fill%d", p)
		h.projects = append(h.projects, prj)
		for e := range fillEndpointsByProject {
			h.endpoints[prj] = append(h.endpoints[prj], fmt.Sprintf("ep_%d_%02d", p, e))
		}
	}
	nEvents := (n + fillPerEvent - 1) / fillPerEvent
	step := h.end.Sub(h.base) / time.Duration(nEvents+1)

	type key struct {
		project, key string
		status       int16
	}
	projectCounts, endpointCounts, eventCounts := map[key]int64{}, map[key]int64{}, map[key]int64{}
	var deliveries, attempts [][]any
	reqHeaders := `{"Content-Type":"application/json","User-Agent":"hookmesh","webhook-id":"x","webhook-signature":"v1,abc","webhook-timestamp":"1700000000"}`
	resHeaders := `{"Content-Length":"11","Content-Type":"application/json","Date":"Mon, 07 Dec 2026 20:00:00 GMT","Server":"receiver"}`
	flush := func() {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"deliveries"}, []string{"id", "project_id", "event_id", "endpoint_id", "event_type",
			"status", "seq", "attempts", "create_time", "update_time", "next_attempt_time", "last_status_code", "last_error"},
			pgx.CopyFromRows(deliveries)); err != nil {
			tb.Fatalf("copy deliveries: %v", err)
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"attempts"}, []string{"delivery_id", "attempt", "project_id", "status_code", "latency_ms",
			"request_headers", "response_headers", "response_body", "error", "remote_ip", "start_time", "url"},
			pgx.CopyFromRows(attempts)); err != nil {
			tb.Fatalf("copy attempts: %v", err)
		}
		deliveries, attempts = deliveries[:0], attempts[:0]
	}
	made := 0
	for ev := 0; made < n; ev++ {
		prj := h.projects[ev%fillProjects]
		evID := fmt.Sprintf("evt_%09d", ev)
		h.events[prj] = append(h.events[prj], evID)
		created := h.base.Add(time.Duration(ev+1) * step).Truncate(time.Millisecond)
		evType := h.types[rng.IntN(len(h.types))]
		first := rng.IntN(fillEndpointsByProject)
		for k := 0; k < fillPerEvent && made < n; k++ {
			ep := h.endpoints[prj][(first+k)%fillEndpointsByProject]
			id := fmt.Sprintf("dlv_%09d_%d", ev, k)
			var st statusv1.DeliveryStatus
			var tries int
			switch r := rng.IntN(100); {
			case r < 88:
				st, tries = success, 1+rng.IntN(10)/9
			case r < 93:
				st, tries = failed, 3
			case r < 96:
				st, tries = retry, 1+rng.IntN(2)
			case r < 98:
				st, tries = discarded, rng.IntN(2)
			case r < 99:
				st, tries = scheduled, 0
			default:
				st, tries = processing, 1
			}
			rk, _ := rank(st)
			seq := int64(max(tries, 1))*8 + rk
			updated := created.Add(time.Duration(tries) * time.Second)
			var next any
			code, lastErr := int32(0), ""
			if tries > 0 && st != processing {
				code = 200
				if st != success {
					code, lastErr = 503, "endpoint answered 503"
				}
			}
			if st == retry {
				next = updated.Add(time.Minute)
			}
			deliveries = append(deliveries, []any{id, prj, evID, ep, evType, int16(st), seq, int64(tries), created, updated, next, code, lastErr})
			for a := 1; a <= tries; a++ {
				if st == processing && a == tries {
					break
				}
				ac, ae := int32(503), "endpoint answered 503"
				if st == success && a == tries {
					ac, ae = 200, ""
				}
				attempts = append(attempts, []any{id, int64(a), prj, ac, int64(20 + rng.IntN(200)), reqHeaders, resHeaders,
					`{"ok":true}`, ae, "10.0.0.7", created.Add(time.Duration(a) * time.Second), "https://receiver.example/hooks/" + ep})
			}
			projectCounts[key{prj, "", int16(st)}]++
			endpointCounts[key{prj, ep, int16(st)}]++
			eventCounts[key{prj, evID, int16(st)}]++
			if made%97 == 0 {
				h.sample = append(h.sample, deliveryDoc{ID: id, ProjectID: prj, EventID: evID, EndpointID: ep, EventType: evType,
					Status: int32(st), Seq: seq, CreateTime: created})
			}
			made++
		}
		if len(deliveries) >= 20_000 {
			flush()
		}
	}
	flush()
	for table, counts := range map[string]map[key]int64{"project_counts": projectCounts, "endpoint_counts": endpointCounts, "event_counts": eventCounts} {
		var rows [][]any
		cols := []string{"project_id", "key", "status", "n"}
		switch table {
		case "project_counts":
			cols = []string{"project_id", "status", "n"}
		case "endpoint_counts":
			cols[1] = "endpoint_id"
		case "event_counts":
			cols[1] = "event_id"
		}
		for k, v := range counts {
			if table == "project_counts" {
				rows = append(rows, []any{k.project, k.status, v})
			} else {
				rows = append(rows, []any{k.project, k.key, k.status, v})
			}
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows)); err != nil {
			tb.Fatalf("copy %s: %v", table, err)
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE deliveries, attempts, project_counts, endpoint_counts, event_counts"); err != nil {
		tb.Fatalf("analyze: %v", err)
	}
	return h
}

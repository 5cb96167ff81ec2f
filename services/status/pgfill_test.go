package status

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// history describes a filled history, for choosing realistic parameters.
type history struct {
	projects  []string
	endpoints map[string][]string // by project
	events    map[string][]string // by project, oldest first
	types     []string
	sample    []SampledDelivery
	base, end time.Time // create_time range
}

const (
	fillProjects           = 4
	fillEndpointsByProject = 20
	fillPerEvent           = 10
)

// fillHistory stores n deliveries with FillHistory: fillPerEvent per
// event, events spread over fillProjects projects of
// fillEndpointsByProject endpoints and 30 days, the same from one run to
// the next.
func fillHistory(tb testing.TB, pool *pgxpool.Pool, n int) *history {
	tb.Helper()
	h := &history{endpoints: map[string][]string{}}
	spec := HistorySpec{Deliveries: n, PerEvent: fillPerEvent, Seed: 42}
	for p := range fillProjects {
		prj := fmt.Sprintf("prj_fill%d", p)
		h.projects = append(h.projects, prj)
		for e := range fillEndpointsByProject {
			h.endpoints[prj] = append(h.endpoints[prj], fmt.Sprintf("ep_%d_%02d", p, e))
		}
		spec.Projects = append(spec.Projects, HistoryProject{ID: prj, EndpointIDs: h.endpoints[prj]})
	}
	filled, err := FillHistory(context.Background(), pool, spec)
	if err != nil {
		tb.Fatal(err)
	}
	h.events, h.types, h.sample, h.base, h.end = filled.Events, filled.Types, filled.Sample, filled.Start, filled.End
	return h
}

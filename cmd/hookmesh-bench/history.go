package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/services/ingest"
	"github.com/hookmesh/hookmesh/services/status"
)

// History made up by -history: projects of their own (the benchmark's
// project stays empty, so the run's own figures are unchanged), each with
// historyEndpoints endpoints.
const (
	historyProjects  = 4
	historyEndpoints = 20
	historyPageSize  = 50
)

// historyResult is what -history measured: each status API query over a
// history of Deliveries deliveries, called Calls times.
type historyResult struct {
	Deliveries  int            `json:"deliveries"`
	Events      int            `json:"events"`
	FillSeconds float64        `json:"fill_seconds"`
	Queries     []historyQuery `json:"queries"`
	// projects are the history's project ids, for -prune.
	projects []string
}

type historyQuery struct {
	Name    string  `json:"name"`
	Latency latency `json:"latency_ms"`
}

// runHistory fills the status service's PostgreSQL history with
// cfg.history made-up deliveries (status.FillHistory: COPY, not the API),
// then calls each query of the status API cfg.historyCalls times with the
// admin key, one at a time, and times them.
func runHistory(ctx context.Context, cfg *config, logf func(string, ...any)) (*historyResult, error) {
	pool, err := pgdb.Open(ctx, cfg.postgresURL, cfg.historySchema)
	if err != nil {
		return nil, fmt.Errorf("-history: %w", err)
	}
	defer pool.Close()
	spec := newHistorySpec(cfg)
	logf("storing %d made-up deliveries in PostgreSQL schema %s", cfg.history, cfg.historySchema)
	start := time.Now()
	h, err := status.FillHistory(ctx, pool, spec)
	if err != nil {
		return nil, err
	}
	events, err := fillHistoryEvents(ctx, cfg, h, logf)
	if err != nil {
		return nil, err
	}
	out := &historyResult{Deliveries: cfg.history, Events: events, FillSeconds: time.Since(start).Seconds()}
	for _, p := range spec.Projects {
		out.projects = append(out.projects, p.ID)
	}
	// Write what COPY loaded out to disk now, so that the run measures a
	// store that holds a history, not one still writing out a bulk load.
	// CHECKPOINT needs a superuser or pg_checkpoint: without, say so and go
	// on.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		logf("no CHECKPOINT after the load (%v): the run may pay for writing it out", err)
	}
	logf("stored in %.1f s; timing the status API's queries, %d calls each", out.FillSeconds, cfg.historyCalls)

	q := newHistoryQueries(cfg, spec, h)
	steps, err := q.steps(ctx)
	if err != nil {
		return nil, err
	}
	steps = append(steps, eventSteps(ctx, cfg, spec, h, q.rng)...)
	for _, s := range steps {
		lat, err := timeCalls(cfg.historyCalls, s.op)
		if err != nil {
			return nil, fmt.Errorf("-history: %s: %w", s.name, err)
		}
		out.Queries = append(out.Queries, historyQuery{Name: s.name, Latency: lat})
	}
	return out, nil
}

// newHistorySpec is the history -history stores: historyProjects projects
// of historyEndpoints endpoints each, named after a random run id so that
// runs on the same database do not collide; with -prune it spans
// cfg.pruneDays days.
func newHistorySpec(cfg *config) status.HistorySpec {
	spec := status.HistorySpec{Deliveries: cfg.history, Seed: 1}
	if cfg.prune {
		spec.Span = time.Duration(cfg.pruneDays) * 24 * time.Hour
	}
	run := ids.Random(5)
	for p := range historyProjects {
		hp := status.HistoryProject{ID: fmt.Sprintf("prj_history_%s_%d", run, p)}
		for e := range historyEndpoints {
			hp.EndpointIDs = append(hp.EndpointIDs, fmt.Sprintf("ep_history_%s_%d_%02d", run, p, e))
		}
		spec.Projects = append(spec.Projects, hp)
	}
	return spec
}

// fillHistoryEvents stores the events of the history's deliveries in
// ingest's event list, beside the status schema, and returns how many.
func fillHistoryEvents(ctx context.Context, cfg *config, h *status.History, logf func(string, ...any)) (int, error) {
	ingestSchema := strings.TrimSuffix(cfg.historySchema, "_status") + "_ingest"
	ipool, err := pgdb.Open(ctx, cfg.postgresURL, ingestSchema)
	if err != nil {
		return 0, fmt.Errorf("-history: %w", err)
	}
	defer ipool.Close()
	events := make([]ingest.FilledEvent, len(h.EventList))
	for i, e := range h.EventList {
		events[i] = ingest.FilledEvent{ID: e.ID, ProjectID: e.ProjectID, EventType: e.EventType, CreateTime: e.CreateTime}
	}
	logf("storing their %d events in PostgreSQL schema %s", len(events), ingestSchema)
	if err := ingest.FillEvents(ctx, ipool, events, cfg.payloadBytes); err != nil {
		return 0, err
	}
	return len(events), nil
}

// timeCalls calls op n times, one at a time, and summarizes how long each
// call took; it stops at the first error.
func timeCalls(n int, op func() error) (latency, error) {
	samples := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if err := op(); err != nil {
			return latency{}, err
		}
		samples = append(samples, time.Since(t0))
	}
	return summarize(samples), nil
}

// historyQueries calls the status API over a stored history, picking
// projects, endpoints and events with its own seeded rng so that every run
// asks the same questions.
type historyQueries struct {
	client statusv1connect.StatusServiceClient
	rng    *rand.Rand
	spec   status.HistorySpec
	h      *status.History
}

// deliveryFilter is one ListDeliveries filter -history times, built for a
// project.
type deliveryFilter struct {
	name string
	req  func(p status.HistoryProject) *statusv1.ListDeliveriesRequest
}

// newHistoryQueries calls cfg's status API with the admin key.
func newHistoryQueries(cfg *config, spec status.HistorySpec, h *status.History) *historyQueries {
	return &historyQueries{
		client: statusv1connect.NewStatusServiceClient(&http.Client{Timeout: time.Minute}, cfg.statusURL,
			connect.WithInterceptors(auth.BearerInterceptor(cfg.adminKey))),
		rng:  rand.New(rand.NewPCG(2, 3)),
		spec: spec,
		h:    h,
	}
}

// project is one of the history's projects, at random.
func (q *historyQueries) project() status.HistoryProject {
	return q.spec.Projects[q.rng.IntN(len(q.spec.Projects))]
}

// pick is one of xs, at random.
func (q *historyQueries) pick(xs []string) string { return xs[q.rng.IntN(len(xs))] }

// sample is one of the history's sampled deliveries, at random.
func (q *historyQueries) sample() status.SampledDelivery {
	return q.h.Sample[q.rng.IntN(len(q.h.Sample))]
}

// list calls ListDeliveries for one page of project p's deliveries.
func (q *historyQueries) list(ctx context.Context, p status.HistoryProject, req *statusv1.ListDeliveriesRequest, token string) (*statusv1.ListDeliveriesResponse, error) {
	req.ProjectId, req.PageSize, req.PageToken = p.ID, historyPageSize, token
	resp, err := q.client.ListDeliveries(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// filters are the ListDeliveries filters timed, each on its first and, when
// every project has one, its 20th page.
func (q *historyQueries) filters() []deliveryFilter {
	h := q.h
	week := timestamppb.New(h.End.Add(-7 * 24 * time.Hour))
	failedOnly := []statusv1.DeliveryStatus{statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED}
	return []deliveryFilter{
		{"all", func(status.HistoryProject) *statusv1.ListDeliveriesRequest { return &statusv1.ListDeliveriesRequest{} }},
		{"event", func(p status.HistoryProject) *statusv1.ListDeliveriesRequest {
			return &statusv1.ListDeliveriesRequest{EventId: q.pick(h.Events[p.ID])}
		}},
		{"endpoint", func(p status.HistoryProject) *statusv1.ListDeliveriesRequest {
			return &statusv1.ListDeliveriesRequest{EndpointId: p.EndpointIDs[0]}
		}},
		{"event type", func(status.HistoryProject) *statusv1.ListDeliveriesRequest {
			return &statusv1.ListDeliveriesRequest{EventType: h.Types[1]}
		}},
		{"status FAILED", func(status.HistoryProject) *statusv1.ListDeliveriesRequest {
			return &statusv1.ListDeliveriesRequest{Statuses: failedOnly}
		}},
		{"statuses FAILED, DISCARDED", func(status.HistoryProject) *statusv1.ListDeliveriesRequest {
			return &statusv1.ListDeliveriesRequest{Statuses: []statusv1.DeliveryStatus{
				statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED}}
		}},
		{"last 7 days", func(status.HistoryProject) *statusv1.ListDeliveriesRequest {
			return &statusv1.ListDeliveriesRequest{StartTime: week}
		}},
		{"endpoint, SUCCESS, last 7 days", func(p status.HistoryProject) *statusv1.ListDeliveriesRequest {
			return &statusv1.ListDeliveriesRequest{EndpointId: p.EndpointIDs[0], StartTime: week,
				Statuses: []statusv1.DeliveryStatus{statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS}}
		}},
	}
}

// page20Tokens is the token of each project's 20th page under filter f,
// found once; a project with fewer pages (the event filter has a single
// page) is left out.
func (q *historyQueries) page20Tokens(ctx context.Context, f deliveryFilter) (map[string]string, error) {
	tokens := map[string]string{}
	for _, p := range q.spec.Projects {
		token := ""
		for range 19 {
			resp, err := q.list(ctx, p, f.req(p), token)
			if err != nil {
				return nil, fmt.Errorf("-history: list deliveries: %w", err)
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if token != "" {
			tokens[p.ID] = token
		}
	}
	return tokens, nil
}

// steps are the status API queries -history times, in order: GetDelivery,
// ListAttempts, each ListDeliveries filter, CountDeliveries and
// SummarizeEvents.
func (q *historyQueries) steps(ctx context.Context) ([]historyStep, error) {
	client, h := q.client, q.h
	steps := []historyStep{
		{"GetDelivery", func() error {
			d := q.sample()
			_, err := client.GetDelivery(ctx, connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: d.ProjectID, DeliveryId: d.ID}))
			return err
		}},
		{"ListAttempts", func() error {
			d := q.sample()
			_, err := client.ListAttempts(ctx, connect.NewRequest(&statusv1.ListAttemptsRequest{ProjectId: d.ProjectID, DeliveryId: d.ID}))
			return err
		}},
	}
	for _, f := range q.filters() {
		steps = append(steps, historyStep{"ListDeliveries, " + f.name + ", page 1", func() error {
			p := q.project()
			_, err := q.list(ctx, p, f.req(p), "")
			return err
		}})
		tokens, err := q.page20Tokens(ctx, f)
		if err != nil {
			return nil, err
		}
		if len(tokens) < len(q.spec.Projects) {
			continue
		}
		steps = append(steps, historyStep{"ListDeliveries, " + f.name + ", page 20", func() error {
			p := q.project()
			_, err := q.list(ctx, p, f.req(p), tokens[p.ID])
			return err
		}})
	}
	return append(steps, []historyStep{
		{"CountDeliveries, project", func() error {
			_, err := client.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: q.project().ID}))
			return err
		}},
		{"CountDeliveries, endpoint", func() error {
			p := q.project()
			_, err := client.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: p.ID, EndpointId: q.pick(p.EndpointIDs)}))
			return err
		}},
		{"CountDeliveries, event", func() error {
			p := q.project()
			_, err := client.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: p.ID, EventId: q.pick(h.Events[p.ID])}))
			return err
		}},
		{"SummarizeEvents, 50 events", func() error {
			p := q.project()
			evs := h.Events[p.ID]
			i := q.rng.IntN(max(len(evs)-50, 1))
			_, err := client.SummarizeEvents(ctx, connect.NewRequest(&statusv1.SummarizeEventsRequest{ProjectId: p.ID, EventIds: evs[i:min(i+50, len(evs))]}))
			return err
		}},
	}...), nil
}

func (h *historyResult) printHuman(w io.Writer) {
	fmt.Fprintf(w, "\nstatus and ingest APIs over %d stored deliveries and %d events (stored in %.1f s), ms:\n", h.Deliveries, h.Events, h.FillSeconds)
	fmt.Fprintf(w, "%-56s %8s %8s %8s\n", "query", "p50", "p99", "max")
	for _, q := range h.Queries {
		fmt.Fprintf(w, "%-56s %8.2f %8.2f %8.2f\n", q.Name, q.Latency.P50, q.Latency.P99, q.Latency.Max)
	}
}

// historyStep is one query -history times.
type historyStep = struct {
	name string
	op   func() error
}

// eventSteps time ingest's GetEvent and ListEvents (whose pages carry each
// event's delivery counts from the status service) over the history's
// events: the first and the 20th page, unfiltered, by event type and over
// the last 7 days.
func eventSteps(ctx context.Context, cfg *config, spec status.HistorySpec, h *status.History, rng *rand.Rand) []historyStep {
	client := ingestv1connect.NewIngestServiceClient(&http.Client{Timeout: time.Minute}, cfg.ingestURL,
		connect.WithInterceptors(auth.BearerInterceptor(cfg.adminKey)))
	week := timestamppb.New(h.End.Add(-7 * 24 * time.Hour))
	filters := []struct {
		name string
		req  func() *ingestv1.ListEventsRequest
	}{
		{"all", func() *ingestv1.ListEventsRequest { return &ingestv1.ListEventsRequest{} }},
		{"event type", func() *ingestv1.ListEventsRequest { return &ingestv1.ListEventsRequest{EventType: h.Types[1]} }},
		{"last 7 days", func() *ingestv1.ListEventsRequest { return &ingestv1.ListEventsRequest{StartTime: week} }},
	}
	project := func() string { return spec.Projects[rng.IntN(len(spec.Projects))].ID }
	list := func(projectID string, req *ingestv1.ListEventsRequest, token string) (*ingestv1.ListEventsResponse, error) {
		req.ProjectId, req.PageSize, req.PageToken = projectID, historyPageSize, token
		resp, err := client.ListEvents(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	steps := []historyStep{{"GetEvent", func() error {
		e := h.EventList[rng.IntN(len(h.EventList))]
		_, err := client.GetEvent(ctx, connect.NewRequest(&ingestv1.GetEventRequest{ProjectId: e.ProjectID, EventId: e.ID}))
		return err
	}}}
	for _, f := range filters {
		steps = append(steps, historyStep{"ListEvents, " + f.name + ", page 1", func() error {
			_, err := list(project(), f.req(), "")
			return err
		}})
		tokens := map[string]string{}
		for _, p := range spec.Projects {
			token := ""
			for range 19 {
				resp, err := list(p.ID, f.req(), token)
				if err != nil || resp.GetNextPageToken() == "" {
					token = ""
					break
				}
				token = resp.GetNextPageToken()
			}
			if token != "" {
				tokens[p.ID] = token
			}
		}
		if len(tokens) < len(spec.Projects) {
			continue
		}
		steps = append(steps, historyStep{"ListEvents, " + f.name + ", page 20", func() error {
			p := project()
			_, err := list(p, f.req(), tokens[p])
			return err
		}})
	}
	return steps
}

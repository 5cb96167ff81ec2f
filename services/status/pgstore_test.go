package status

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// namedStatement is one statement the PostgreSQL store issues, with
// realistic arguments.
type namedStatement struct {
	name string
	sql  string
	args []any
	page bool // a page of deliveries
	read bool // a query (not a write): explained with ANALYZE
}

// pgStatements returns every statement pgStore issues, with arguments
// taken from h: the fixed ones, each shape of listDeliveriesSQL and
// countSQL that the handlers build, and the writes of a batch that inserts
// new deliveries and moves stored ones forward.
func pgStatements(h *history) []namedStatement {
	d := h.sample[len(h.sample)/2]
	prj := d.ProjectID
	events := h.events[prj]
	ep := h.endpoints[prj][3]
	week := h.end.Add(-7 * 24 * time.Hour)
	// A cursor some pages into the listing (about the 20th of 50).
	var cursorDoc SampledDelivery
	for _, s := range h.sample {
		if s.ProjectID == prj && s.CreateTime.After(h.end.Add(-72*time.Hour)) {
			cursorDoc = s
			break
		}
	}
	cursor := &pageCursor{createTime: cursorDoc.CreateTime, id: cursorDoc.ID}

	out := []namedStatement{
		{read: true, name: "get delivery", sql: sqlGetDelivery, args: []any{d.ID, prj}},
		{read: true, name: "list attempts", sql: sqlListAttempts, args: []any{d.ID, prj}},
		{read: true, name: "project counts", sql: sqlProjectCounts, args: []any{prj}},
		{read: true, name: "endpoint counts", sql: sqlEndpointCounts, args: []any{prj, ep}},
		{read: true, name: "event summaries", sql: sqlEventCounts, args: []any{prj, events[len(events)-50:]}},
	}
	for _, c := range []struct {
		name string
		q    deliveryQuery
	}{
		{"count by event", deliveryQuery{projectID: prj, eventID: d.EventID}},
		{"count by event and endpoint", deliveryQuery{projectID: prj, eventID: d.EventID, endpointID: d.EndpointID}},
	} {
		stmt, args := countSQL(&c.q)
		out = append(out, namedStatement{name: c.name, sql: stmt, args: args, read: true})
	}
	pages := []struct {
		name string
		q    deliveryQuery
	}{
		{"all", deliveryQuery{}},
		{"event", deliveryQuery{eventID: d.EventID}},
		{"endpoint", deliveryQuery{endpointID: ep}},
		{"event type", deliveryQuery{eventType: h.types[1]}},
		{"one status", deliveryQuery{statuses: []statusv1.DeliveryStatus{failed}}},
		{"statuses", deliveryQuery{statuses: []statusv1.DeliveryStatus{failed, discarded}}},
		{"time range", deliveryQuery{start: week, end: h.end.Add(-24 * time.Hour)}},
		{"combined", deliveryQuery{endpointID: ep, statuses: []statusv1.DeliveryStatus{failed}, start: week}},
		{"event type and status", deliveryQuery{eventType: h.types[0], statuses: []statusv1.DeliveryStatus{success}}},
		{"batch retry", deliveryQuery{endpointID: ep, statuses: []statusv1.DeliveryStatus{failed, discarded}, limit: maxBatchRetry}},
	}
	for _, p := range pages {
		for _, next := range []bool{false, true} {
			q := p.q
			q.projectID = prj
			if q.limit == 0 {
				q.limit = defaultPageSize + 1
			}
			name := "list " + p.name
			if next {
				q.after = cursor
				name += ", a later page"
			}
			stmt, args := listDeliveriesSQL(&q)
			// A batch retry reads up to 10,000 deliveries of an
			// endpoint: sorting what its index finds is what it costs.
			out = append(out, namedStatement{name: name, sql: stmt, args: args, page: q.limit <= maxPageSize+1, read: true})
		}
	}

	// A batch of 100 changes: half move sampled deliveries forward, half
	// are new deliveries.
	var changes []*busv1.StateChange
	for i, s := range h.sample[:50] {
		dl := delivery{id: s.ID, project: s.ProjectID, event: s.EventID, endpoint: s.EndpointID, eventType: s.EventType, created: s.CreateTime}
		changes = append(changes, dl.change(retry, uint32(4+i%2)))
		nd := delivery{id: ids.New("dlv"), project: prj, event: "evt_new", endpoint: ep, eventType: "t", created: h.end}
		changes = append(changes, nd.change(success, 1))
	}
	svc := &Service{logger: slog.New(slog.DiscardHandler)}
	writes, attempts := svc.plan(changes, time.Now())
	wids := make([]string, len(writes))
	for i, w := range writes {
		wids[i] = w.doc.ID
	}
	deltas := newCounterDeltas()
	for _, w := range writes {
		deltas.add(w.doc.ProjectID, w.doc.EndpointID, w.doc.EventID, int16(w.doc.Status), 1)
		deltas.add(w.doc.ProjectID, w.doc.EndpointID, w.doc.EventID, int16(success), -1)
	}
	pp, _, pst, pn := sortedDeltas(deltas.project)
	epp, epk, epst, epn := sortedDeltas(deltas.endpoint)
	evp, evk, evst, evn := sortedDeltas(deltas.event)
	out = append(out,
		namedStatement{name: "insert attempts", sql: sqlInsertAttempts, args: insertAttemptsArgs(attempts)},
		namedStatement{name: "lock deliveries", sql: sqlLockDeliveries, args: []any{wids}},
		namedStatement{name: "insert deliveries", sql: sqlInsertDeliveries, args: insertDeliveriesArgs(alternate(writes, 1))},
		namedStatement{name: "update deliveries", sql: sqlUpdateDeliveries, args: updateDeliveriesArgs(alternate(writes, 0))},
		namedStatement{name: "add project counts", sql: sqlAddProjectCounts, args: []any{pp, pst, pn}},
		namedStatement{name: "add endpoint counts", sql: sqlAddEndpointCounts, args: []any{epp, epk, epst, epn}},
		namedStatement{name: "add event counts", sql: sqlAddEventCounts, args: []any{evp, evk, evst, evn}},
	)
	stats := newStatDeltas()
	for _, w := range writes {
		stats.outcome(w.doc.ProjectID, w.doc.EndpointID, w.doc.Status, w.doc.UpdateTime)
	}
	for i := range attempts {
		stats.attempt(&attempts[i])
	}
	out = append(out,
		namedStatement{name: "add delivery statistics", sql: sqlAddDeliveryStats, args: deliveryStatsArgs(stats.deliveries, sortedStats(stats.deliveries))},
		namedStatement{name: "add attempt statistics", sql: sqlAddAttemptStats, args: attemptStatsArgs(stats.attempts, sortedStats(stats.attempts))},
	)
	// The statistics of a day in hours, and of an hour in minutes, of the
	// project, of an endpoint and of a portal owner's endpoints: a row per
	// minute, endpoint and status or latency bucket of the window, whatever
	// the deliveries.
	for _, w := range []struct {
		name   string
		span   time.Duration
		bucket time.Duration
	}{{"a day", 24 * time.Hour, time.Hour}, {"an hour", time.Hour, time.Minute}} {
		start := statMinute(h.end.Add(-w.span))
		args := []any{prj, start, start.Add(w.span), int64(w.bucket / time.Second)}
		out = append(out,
			namedStatement{name: "delivery statistics of " + w.name, sql: sqlDeliveryStats, args: args, read: true},
			namedStatement{name: "attempt statistics of " + w.name, sql: sqlAttemptStats, args: args, read: true},
			namedStatement{name: "endpoint delivery statistics of " + w.name, sql: sqlEndpointDeliveryStats, args: append(slices.Clone(args), ep), read: true},
			namedStatement{name: "endpoint attempt statistics of " + w.name, sql: sqlEndpointAttemptStats, args: append(slices.Clone(args), ep), read: true},
			namedStatement{name: "endpoints delivery statistics of " + w.name, sql: sqlEndpointsDeliveryStats, args: append(slices.Clone(args), h.endpoints[prj][:2]), read: true},
			namedStatement{name: "endpoints attempt statistics of " + w.name, sql: sqlEndpointsAttemptStats, args: append(slices.Clone(args), h.endpoints[prj][:2]), read: true},
		)
	}
	// The pruner's batch, of the oldest of the 30 days, and its counter
	// clean-up.
	cutoff := h.end.Add(-29 * 24 * time.Hour)
	out = append(out,
		namedStatement{name: "prune deliveries", sql: sqlPruneDeliveries, args: []any{prj, cutoff, 5000, finished}},
		namedStatement{name: "prune attempts", sql: sqlPruneAttempts, args: []any{wids}},
		namedStatement{name: "prune delivery statistics", sql: sqlPruneDeliveryStats, args: []any{prj, cutoff, 5000}},
		namedStatement{name: "prune attempt statistics", sql: sqlPruneAttemptStats, args: []any{prj, cutoff, 5000}},
		namedStatement{name: "drop project counts", sql: sqlDropProjectCounts, args: []any{prj}},
		namedStatement{name: "drop endpoint counts", sql: sqlDropEndpointCounts, args: []any{prj, ep}},
		namedStatement{name: "drop event counts", sql: sqlDropEventCounts, args: []any{prj, evk}},
	)
	return out
}

// alternate returns every other write, from the first.
func alternate(ws []*deliveryWrite, first int) []*deliveryWrite {
	var out []*deliveryWrite
	for i := first; i < len(ws); i += 2 {
		out = append(out, ws[i])
	}
	return out
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType       string     `json:"Node Type"`
	RelationName   string     `json:"Relation Name"`
	IndexName      string     `json:"Index Name"`
	ActualRows     float64    `json:"Actual Rows"`
	ActualLoops    float64    `json:"Actual Loops"`
	RemovedFilter  float64    `json:"Rows Removed by Filter"`
	RemovedRecheck float64    `json:"Rows Removed by Index Recheck"`
	Plans          []planNode `json:"Plans"`
}

// rowsRead is how many rows the scans of the plan read, as EXPLAIN ANALYZE
// counts them (those they returned and those their filters removed).
func rowsRead(n planNode) float64 {
	var total float64
	if strings.HasSuffix(n.NodeType, "Scan") && n.NodeType != "Function Scan" {
		total += (n.ActualRows + n.RemovedFilter + n.RemovedRecheck) * max(n.ActualLoops, 1)
	}
	for _, c := range n.Plans {
		total += rowsRead(c)
	}
	return total
}

func (n planNode) String() string {
	var b strings.Builder
	var walk func(n planNode, depth int)
	walk = func(n planNode, depth int) {
		fmt.Fprintf(&b, "%s%s", strings.Repeat("  ", depth), n.NodeType)
		if n.RelationName != "" {
			fmt.Fprintf(&b, " on %s", n.RelationName)
		}
		if n.IndexName != "" {
			fmt.Fprintf(&b, " using %s", n.IndexName)
		}
		if n.ActualLoops > 0 {
			fmt.Fprintf(&b, " (rows %v, removed %v, loops %v)", n.ActualRows, n.RemovedFilter+n.RemovedRecheck, n.ActualLoops)
		}
		b.WriteString("\n")
		for _, c := range n.Plans {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// explain returns the plan PostgreSQL chooses for st.
func explain(tb testing.TB, pool *pgxpool.Pool, st namedStatement) planNode {
	tb.Helper()
	var raw []byte
	opts := "FORMAT JSON"
	if st.read {
		opts = "ANALYZE, FORMAT JSON"
	}
	if err := pool.QueryRow(context.Background(), "EXPLAIN ("+opts+") "+st.sql, st.args...).Scan(&raw); err != nil {
		tb.Fatalf("%s: explain: %v\n%s", st.name, err, st.sql)
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		tb.Fatalf("%s: read plan: %v", st.name, err)
	}
	return plans[0].Plan
}

// seqScans returns the tables of the history that plan reads whole.
func seqScans(n planNode) []string {
	var out []string
	if n.NodeType == "Seq Scan" {
		switch n.RelationName {
		case "deliveries", "attempts", "event_counts", "endpoint_counts", "delivery_stats", "attempt_stats":
			out = append(out, n.RelationName)
		}
	}
	for _, c := range n.Plans {
		out = append(out, seqScans(c)...)
	}
	return out
}

// maxRowsRead bounds the rows a query may read in TestPGStatementsUseIndexes
// (2 % of its history): a page of 51 deliveries read from an index that
// matches its filters reads about 51; one that reads a project's deliveries
// (12,500) to sort or filter them fails.
const maxRowsRead = 1000

// TestPGStatementsUseIndexes checks, with 50,000 stored deliveries, that
// PostgreSQL serves every statement of the store with an index: no
// sequential scan of a table that grows with the history, and no query (a
// page of deliveries with any filter, a later page, a count) that reads
// more than a page's worth of rows, whatever sorting it does, as EXPLAIN
// ANALYZE counts them. Counts, not timings.
func TestPGStatementsUseIndexes(t *testing.T) {
	t.Parallel()
	s := testService(t, onPostgres)
	pool := s.store.(*pgStore).pool
	h := fillHistory(t, pool, 50_000)
	stmts := pgStatements(h)
	for _, st := range stmts {
		plan := explain(t, pool, st)
		if scans := seqScans(plan); len(scans) > 0 {
			t.Errorf("%s reads %v whole:\n%s\n%s", st.name, scans, st.sql, plan)
		}
		if st.read {
			if n := rowsRead(plan); n > maxRowsRead {
				t.Errorf("%s reads %v rows, more than %d:\n%s\n%s", st.name, n, maxRowsRead, st.sql, plan)
			}
		}
		if testing.Verbose() {
			t.Logf("%s:\n%s", st.name, plan)
		}
	}
	// Every statement constant of the store is among them.
	listed := map[string]bool{}
	for _, st := range stmts {
		listed[st.sql] = true
	}
	for _, sql := range []string{sqlGetDelivery, sqlListAttempts, sqlInsertAttempts, sqlLockDeliveries, sqlInsertDeliveries,
		sqlUpdateDeliveries, sqlAddProjectCounts, sqlAddEndpointCounts, sqlAddEventCounts, sqlProjectCounts, sqlEndpointCounts, sqlEventCounts,
		sqlAddDeliveryStats, sqlAddAttemptStats, sqlDeliveryStats, sqlEndpointDeliveryStats, sqlEndpointsDeliveryStats,
		sqlAttemptStats, sqlEndpointAttemptStats, sqlEndpointsAttemptStats, sqlPruneDeliveries, sqlPruneAttempts, sqlPruneDeliveryStats,
		sqlPruneAttemptStats, sqlDropProjectCounts, sqlDropEndpointCounts, sqlDropEventCounts} {
		if !listed[sql] {
			t.Errorf("statement not explained: %s", sql)
		}
	}
}

// TestCountsFollowChanges applies the changes of many deliveries in random
// order, in batches of several partitions applied concurrently, and checks every count the API gives against the
// deliveries' final states: the PostgreSQL counters move only when a
// delivery's status does.
func TestCountsFollowChanges(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(7, 7))
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		type final struct {
			d  delivery
			st statusv1.DeliveryStatus
		}
		// Four partitions, as the status queues: a delivery's changes are
		// all in one, applied in batches one after the other; partitions
		// apply concurrently, moving the same counters.
		const partitions = 4
		var finals []final
		changes := make([][]*busv1.StateChange, partitions)
		for i := range 120 {
			d := delivery{id: ids.New("dlv"), project: fmt.Sprintf("prj_c%d", i%2), event: fmt.Sprintf("evt_%d", i%12),
				endpoint: fmt.Sprintf("ep_%d", i%5), eventType: "t", created: base.Add(time.Duration(i%12) * time.Second)}
			life := []*busv1.StateChange{d.change(scheduled, 1), d.change(processing, 1)}
			st := []statusv1.DeliveryStatus{scheduled, processing, success, retry, failed, discarded}[i%6]
			switch st {
			case scheduled:
				life = life[:1]
			case processing:
			case retry:
				life = append(life, d.change(retry, 1))
			case failed:
				life = append(life, d.change(retry, 1), d.change(scheduled, 2), d.change(processing, 2), d.change(failed, 2))
			default:
				life = append(life, d.change(st, 1))
			}
			finals = append(finals, final{d, st})
			p := (i / 7) % partitions
			changes[p] = append(changes[p], life...)
			if i%3 == 0 {
				changes[p] = append(changes[p], life[rng.IntN(len(life))]) // a duplicate
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, partitions)
		for _, part := range changes {
			rng.Shuffle(len(part), func(i, j int) { part[i], part[j] = part[j], part[i] })
			wg.Go(func() {
				for start := 0; start < len(part); start += 15 {
					if err := s.Apply(ctx, part[start:min(start+15, len(part))]); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Apply: %v", err)
		}

		type filter struct{ project, event, endpoint string }
		want := map[filter]map[statusv1.DeliveryStatus]uint64{}
		count := func(f filter, st statusv1.DeliveryStatus) {
			if want[f] == nil {
				want[f] = map[statusv1.DeliveryStatus]uint64{}
			}
			want[f][st]++
		}
		for _, f := range finals {
			got, err := s.store.getDelivery(ctx, f.d.project, f.d.id)
			if err != nil || got == nil || statusv1.DeliveryStatus(got.Status) != f.st {
				t.Fatalf("delivery %s = %+v, %v; want %v", f.d.id, got, err, f.st)
			}
			count(filter{f.d.project, "", ""}, f.st)
			count(filter{f.d.project, f.d.event, ""}, f.st)
			count(filter{f.d.project, "", f.d.endpoint}, f.st)
			count(filter{f.d.project, f.d.event, f.d.endpoint}, f.st)
		}
		for f, w := range want {
			got, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: f.project, eventID: f.event, endpointID: f.endpoint})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, w) {
				t.Errorf("countDeliveries(%+v) = %v, want %v", f, got, w)
			}
		}
		for _, prj := range []string{"prj_c0", "prj_c1"} {
			var events []string
			for i := range 13 { // evt_12 has no delivery
				events = append(events, fmt.Sprintf("evt_%d", i))
			}
			got, err := s.store.countByEvent(ctx, prj, events)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range events {
				if w := want[filter{prj, ev, ""}]; !maps.Equal(got[ev], w) {
					t.Errorf("countByEvent(%s, %s) = %v, want %v", prj, ev, got[ev], w)
				}
			}
		}
		if pg, ok := s.store.(*pgStore); ok {
			checkCounters(t, pg.pool)
		}
	})
}

// TestPGConcurrentWritersOfOneDelivery has several writers apply the same
// deliveries' changes at once, in different orders (which Apply's callers
// avoid, one partition having one consumer): the PostgreSQL store still
// ends with each delivery's latest state and counters that match.
func TestPGConcurrentWritersOfOneDelivery(t *testing.T) {
	t.Parallel()
	s := testService(t, onPostgres)
	pool := s.store.(*pgStore).pool
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var all []*busv1.StateChange
	var ds []delivery
	for i := range 30 {
		d := delivery{id: ids.New("dlv"), project: "prj_w", event: fmt.Sprintf("evt_%d", i%3), endpoint: "ep_1", eventType: "t", created: base}
		ds = append(ds, d)
		all = append(all, d.change(scheduled, 1), d.change(processing, 1), d.change(retry, 1), d.change(processing, 2), d.change(success, 2))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for w := range 6 {
		mine := slices.Clone(all)
		rand.New(rand.NewPCG(uint64(w), 1)).Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
		wg.Go(func() {
			for start := 0; start < len(mine); start += 10 {
				if err := s.Apply(ctx, mine[start:min(start+10, len(mine))]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
	for _, d := range ds {
		got, err := s.store.getDelivery(ctx, d.project, d.id)
		if err != nil || got == nil || statusv1.DeliveryStatus(got.Status) != success || got.Attempts != 2 {
			t.Fatalf("delivery %s = %+v, %v; want SUCCESS after 2 attempts", d.id, got, err)
		}
	}
	got, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: "prj_w"})
	if err != nil || !maps.Equal(got, map[statusv1.DeliveryStatus]uint64{success: 30}) {
		t.Errorf("counts = %v, %v; want 30 SUCCESS", got, err)
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM event_counts WHERE n <> 0 AND status <> $1", int16(success)).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d event counter rows of other statuses are not zero (%v)", rows, err)
	}
	if n := countAttempts(t, s); n != 60 {
		t.Errorf("attempts = %d, want 60", n)
	}
}

// TestPGRefusedChangeIsSetApart checks that a change PostgreSQL can never
// store (here a delivery id too long for an index) is returned to be
// parked, and the rest of its batch is stored, instead of the batch being
// tried again for ever.
func TestPGRefusedChangeIsSetApart(t *testing.T) {
	t.Parallel()
	s := testService(t, onPostgres)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	good1 := delivery{id: ids.New("dlv"), project: "prj_r", event: "evt_1", endpoint: "ep_1", eventType: "t", created: now}
	good2 := delivery{id: ids.New("dlv"), project: "prj_r", event: "evt_1", endpoint: "ep_2", eventType: "t", created: now}
	long := make([]byte, 8000)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range long {
		long[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)]
	}
	bad := delivery{id: "dlv_" + string(long), project: "prj_r", event: "evt_1", endpoint: "ep_3", eventType: "t", created: now}
	changes := []*busv1.StateChange{good1.change(success, 1), bad.change(scheduled, 1), good2.change(failed, 1)}
	refused, err := s.applyOrRefuse(ctx, changes)
	if err != nil {
		t.Fatalf("applyOrRefuse: %v", err)
	}
	if len(refused) != 1 || refused[1] == nil {
		t.Fatalf("refused = %v, want the change at index 1", refused)
	}
	for _, d := range []delivery{good1, good2} {
		if got, err := s.store.getDelivery(ctx, d.project, d.id); err != nil || got == nil {
			t.Errorf("delivery %s = %v, %v; want it stored", d.id, got, err)
		}
	}
	counts, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: "prj_r"})
	if err != nil || !maps.Equal(counts, map[statusv1.DeliveryStatus]uint64{success: 1, failed: 1}) {
		t.Errorf("counts = %v, %v; want 1 SUCCESS and 1 FAILED", counts, err)
	}
	// A batch the store takes is applied whole.
	if refused, err := s.applyOrRefuse(ctx, []*busv1.StateChange{good1.change(success, 1)}); err != nil || len(refused) != 0 {
		t.Errorf("applyOrRefuse of a good batch = %v, %v", refused, err)
	}
}

// checkCounters checks that every counter row holds the number of
// deliveries it counts, and that none is missing.
func checkCounters(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	for _, q := range []string{
		`SELECT count(*) FROM project_counts c FULL JOIN (SELECT project_id, status, count(*) AS n FROM deliveries GROUP BY 1, 2) d
		USING (project_id, status) WHERE coalesce(c.n, 0) <> coalesce(d.n, 0)`,
		`SELECT count(*) FROM endpoint_counts c FULL JOIN (SELECT project_id, endpoint_id, status, count(*) AS n FROM deliveries GROUP BY 1, 2, 3) d
		USING (project_id, endpoint_id, status) WHERE coalesce(c.n, 0) <> coalesce(d.n, 0)`,
		`SELECT count(*) FROM event_counts c FULL JOIN (SELECT project_id, event_id, status, count(*) AS n FROM deliveries GROUP BY 1, 2, 3) d
		USING (project_id, event_id, status) WHERE coalesce(c.n, 0) <> coalesce(d.n, 0)`,
	} {
		var bad int
		if err := pool.QueryRow(context.Background(), q).Scan(&bad); err != nil || bad != 0 {
			tb.Errorf("%d counter rows differ from the deliveries (%v):\n%s", bad, err, q)
		}
	}
}

// TestFillHistory fills a schema twice (as a benchmark on a running
// service may) and checks the counters against the rows.
func TestFillHistory(t *testing.T) {
	t.Parallel()
	s := testService(t, onPostgres)
	pool := s.store.(*pgStore).pool
	fillHistory(t, pool, 3_000)
	h := fillHistory(t, pool, 2_005)
	checkCounters(t, pool)
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM deliveries").Scan(&n); err != nil || n != 5_005 {
		t.Errorf("deliveries = %d, %v; want 5005", n, err)
	}
	if len(h.sample) == 0 || len(h.events[h.projects[0]]) == 0 {
		t.Errorf("history = %+v, want sampled deliveries and events", h)
	}
	got, err := s.store.getDelivery(context.Background(), h.sample[0].ProjectID, h.sample[0].ID)
	if err != nil || got == nil || got.EventID != h.sample[0].EventID {
		t.Errorf("sampled delivery = %+v, %v", got, err)
	}
}

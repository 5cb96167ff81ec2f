package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookmesh/hookmesh/internal/ids"
)

// history describes the events fillHistory stored.
type history struct {
	// newest is the create_time of the newest event.
	newest time.Time
	// sample is an event of each project, about a thousand events from its
	// newest (what the 20th page of 50 starts after).
	sample map[string]eventDoc
	// keyed is an event of prj_0 with an idempotency key.
	keyed eventDoc
}

// fillHistory bulk-loads n events across projects projects (with claims,
// duplicates and a few events not yet confirmed by the broker) and
// analyzes the tables. The events are spread over the fields like the
// traffic of a busy project: 20 event types, 10 endpoints and 5 owners a
// project, half the events with an idempotency key, 2 % duplicates.
func fillHistory(tb testing.TB, pool *pgxpool.Pool, n, projects int) history {
	tb.Helper()
	ctx := context.Background()
	st := NewPostgresStore(pool)
	defer st.close()
	if err := st.init(ctx); err != nil {
		tb.Fatal(err)
	}
	h := history{sample: map[string]eventDoc{}}
	start := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Duration(n) * 50 * time.Millisecond)
	data := []byte(`{"order_id":"ord_0000000000","amount":12345,"currency":"EUR","customer":{"id":"cus_00000000","email":"someone@example.com"},"items":[{"sku":"sku_1","qty":2}]}`)
	var events, claims, outbox [][]any
	seqs := map[string]uint64{}
	for i := range n {
		at := start.Add(time.Duration(i) * 50 * time.Millisecond)
		project := fmt.Sprintf("prj_%d", i%projects)
		k := i / projects
		d := eventDoc{ID: ids.NewAt("evt", at), ProjectID: project, EventType: fmt.Sprintf("type.%d", k%20), Data: data, CreateTime: at}
		switch k % 10 {
		case 0:
			d.Broadcast = true
		case 1, 2, 3:
			d.OwnerID = fmt.Sprintf("owner_%d", k/10%5)
		default:
			d.EndpointID = fmt.Sprintf("ep_%d", k/10%10)
		}
		if k%2 == 0 {
			d.IdempotencyKey = fmt.Sprintf("key-%d", k)
			if k%50 == 0 && k > 0 {
				d.IdempotencyKey = fmt.Sprintf("key-%d", k-2)
				d.IsDuplicate, d.DuplicateOf = true, "evt_earlier"
			} else {
				claims = append(claims, []any{project, d.IdempotencyKey, d.ID, at})
			}
		}
		var headers []byte
		if k%3 == 0 {
			headers = []byte(`{"X-Source":"shop"}`)
		}
		// A tenth of the events are in a line, of 20 keys a project.
		if k%10 == 7 && !d.IsDuplicate {
			line := fmt.Sprintf("%s/order-%d", project, k/10%20)
			seqs[line]++
			d.OrderingKey, d.OrderingSeq = fmt.Sprintf("order-%d", k/10%20), seqs[line]
		}
		events = append(events, []any{d.ID, d.ProjectID, d.EventType, d.Data, headers, d.IdempotencyKey, d.EndpointID, d.OwnerID, d.Broadcast, d.IsDuplicate, d.DuplicateOf, d.CreateTime, d.OrderingKey, int64(d.OrderingSeq)})
		if !d.IsDuplicate && i >= n-n/100 {
			outbox = append(outbox, []any{d.ID, at})
		}
		if i >= n-1000*projects && i < n-1000*projects+projects {
			h.sample[project] = d
		}
		if project == "prj_0" && d.IdempotencyKey != "" && !d.IsDuplicate {
			h.keyed = d
		}
		h.newest = at
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"events", strings.Split(strings.ReplaceAll(pgEventColumns, " ", ""), ","), events},
		{"claims", []string{"project_id", "key", "event_id", "create_time"}, claims},
		{"outbox", []string{"id", "create_time"}, outbox},
		{"ordering_keys", []string{"project_id", "ordering_key", "seq"}, orderingRows(seqs)},
	} {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			tb.Fatalf("fill %s: %v", c.table, err)
		}
	}
	var stored int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&stored); err != nil || stored != n {
		tb.Fatalf("%d events stored, want %d: %v", stored, n, err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE events, claims, outbox, ordering_keys"); err != nil {
		tb.Fatal(err)
	}
	return h
}

// orderingRows are the rows of ordering_keys for the counts of
// "project/key" lines.
func orderingRows(seqs map[string]uint64) [][]any {
	var rows [][]any
	for line, seq := range seqs {
		project, key, _ := strings.Cut(line, "/")
		rows = append(rows, []any{project, key, int64(seq)})
	}
	return rows
}

// plannedStatement is a statement of the PostgreSQL store with realistic
// parameters.
type plannedStatement struct {
	name string
	sql  string
	args []any
	// page is true for the statements that answer a page (or one event):
	// they must not sort.
	page bool
	// list is true for the list statements, which run after
	// pgPageSettings; read are the indexes they may read, those of their
	// filters.
	list bool
	read []string
}

// storeStatements lists every statement the PostgreSQL store issues, with
// parameters taken from h.
func storeStatements(h history) []plannedStatement {
	batch := func(n int, f func(i int) []any) [][]any {
		out := make([][]any, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	// A batch of 100 new events, as writeEvents sends it.
	now := h.newest.Add(time.Second)
	newEvents := batch(100, func(i int) []any {
		return []any{ids.NewAt("evt", now), "prj_1", "type.3", []byte(`{}`), []byte(nil), fmt.Sprintf("new-%d", i), "ep_1", "", false, false, "", now, fmt.Sprintf("order-%d", i%20)}
	})
	column := func(rows [][]any, c int) any {
		switch rows[0][c].(type) {
		case string:
			out := make([]string, len(rows))
			for i := range rows {
				out[i] = rows[i][c].(string)
			}
			return out
		case []byte:
			out := make([][]byte, len(rows))
			for i := range rows {
				out[i] = rows[i][c].([]byte)
			}
			return out
		case bool:
			out := make([]bool, len(rows))
			for i := range rows {
				out[i] = rows[i][c].(bool)
			}
			return out
		default:
			out := make([]time.Time, len(rows))
			for i := range rows {
				out[i] = rows[i][c].(time.Time)
			}
			return out
		}
	}
	var insertArgs []any
	for c := range 13 {
		insertArgs = append(insertArgs, column(newEvents, c))
	}
	newIDs := column(newEvents, 0)
	claimArgs := []any{column(batch(100, func(int) []any { return []any{"prj_1"} }), 0), column(newEvents, 5), newIDs, column(newEvents, 11)}
	sample := h.sample["prj_0"]
	recent := []string{h.keyed.ID}

	// The batch's lines: 20 keys of prj_1 that have events, and one new.
	lineProjects, lineKeys, lineCounts := []string{}, []string{}, []int64{}
	for k := range 21 {
		lineProjects, lineKeys, lineCounts = append(lineProjects, "prj_1"), append(lineKeys, fmt.Sprintf("order-%d", k)), append(lineCounts, 5)
	}
	newSeqs := make([]int64, 100)
	for i := range newSeqs {
		newSeqs[i] = int64(1000 + i)
	}

	out := []plannedStatement{
		{name: "insert events", sql: pgInsertEvents, args: insertArgs},
		{name: "bump ordering keys", sql: pgBumpOrderingKeys, args: []any{lineProjects, lineKeys, lineCounts}},
		{name: "set ordering seqs", sql: pgSetOrderingSeqs, args: []any{newIDs, newSeqs}},
		{name: "insert claims", sql: pgInsertClaims, args: claimArgs},
		{name: "read claim", sql: pgGetClaim, args: []any{"prj_0", h.keyed.IdempotencyKey}, page: true},
		{name: "get event", sql: pgGetEvent, args: []any{sample.ID, "prj_0"}, page: true},
		{name: "mark published", sql: pgMarkPublished, args: []any{newIDs}},
		{name: "published, one", sql: pgPublished, args: []any{recent}},
		{name: "published, a batch", sql: pgPublished, args: []any{newIDs}},
		{name: "sweep window", sql: pgUnpublished, args: []any{h.newest.Add(-75 * time.Second), h.newest.Add(-30 * time.Second)}},
		{name: "sweep after a start", sql: pgUnpublished, args: []any{h.newest.Add(-24 * time.Hour), h.newest.Add(-30 * time.Second)}},
		// The pruner, with a cutoff that leaves out all but the oldest
		// part of the history.
		{name: "prune claims", sql: pgPruneClaims, args: []any{"prj_0", h.newest.Add(-40 * time.Minute), 5000}},
		{name: "prune events", sql: pgPruneEvents, args: []any{"prj_0", h.newest.Add(-40 * time.Minute), 5000}},
	}
	yes := true
	filters := map[string]listFilter{
		"all":             {},
		"event type":      {eventType: "type.7"},
		"endpoint":        {endpointID: "ep_9"},
		"owner":           {ownerID: "owner_3"},
		"idempotency key": {idempotencyKey: h.keyed.IdempotencyKey},
		"duplicates":      {duplicate: &yes},
		"type and owner":  {eventType: "type.7", ownerID: "owner_3"},
	}
	for name, f := range filters {
		f.projectID, f.limit = "prj_0", 50
		ranged := f
		ranged.start, ranged.end = h.newest.Add(-2*time.Hour), h.newest.Add(-10*time.Minute)
		later := f
		later.before = sample.ID
		laterRanged := ranged
		laterRanged.before = sample.ID
		for variant, f := range map[string]listFilter{"first page": f, "first page in a time range": ranged, "20th page": later, "20th page in a time range": laterRanged} {
			out = append(out, plannedStatement{name: "list, " + name + ", " + variant, sql: listStatement(f), args: listArgs(f), page: true, list: true, read: filterIndexes(f)})
		}
	}
	return out
}

// TestPostgresStoreUsesIndexes plans every statement of the PostgreSQL
// store over 50,000 stored events: none reads a whole table, and none
// that answers a page sorts. It checks the plan PostgreSQL makes for the
// parameters given and the generic plan it may switch to for a prepared
// statement.
func TestPostgresStoreUsesIndexes(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	h := fillHistory(t, pool, 50_000, 5)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	statements := storeStatements(h)
	for _, sql := range pgStatements {
		if !slices.ContainsFunc(statements, func(st plannedStatement) bool { return st.sql == sql }) {
			t.Errorf("statement not checked: %s", sql)
		}
	}
	for i, st := range statements {
		for _, generic := range []bool{false, true} {
			plan := explain(t, conn.Conn(), fmt.Sprintf("s%d", i), st, generic)
			if testing.Verbose() {
				t.Logf("%s (generic plan: %v):\n%s", st.name, generic, planText(plan))
			}
			var problems []string
			used := false
			walkPlan(plan, func(node map[string]any) {
				typ, _ := node["Node Type"].(string)
				rel, _ := node["Relation Name"].(string)
				if index, _ := node["Index Name"].(string); slices.Contains(st.read, index) {
					used = true
				}
				if typ == "Seq Scan" && (rel == "events" || rel == "claims") {
					problems = append(problems, "reads all of "+rel)
				}
				if st.page && strings.Contains(typ, "Sort") {
					problems = append(problems, "sorts")
				}
			})
			if st.list && !used {
				problems = append(problems, "reads none of "+strings.Join(st.read, ", "))
			}
			if len(problems) > 0 {
				t.Errorf("%s (generic plan: %v): %s\n%s", st.name, generic, strings.Join(problems, ", "), planText(plan))
			}
		}
	}
}

// filterIndexes are the indexes that serve f: one of its equality
// filters', or the project's by time.
func filterIndexes(f listFilter) []string {
	var out []string
	for _, c := range []struct {
		set   bool
		index string
	}{
		{f.eventType != "", "events_by_type"},
		{f.endpointID != "", "events_by_endpoint"},
		{f.ownerID != "", "events_by_owner"},
		{f.idempotencyKey != "", "events_by_key"},
		{f.duplicate != nil, "events_by_duplicate"},
	} {
		if c.set {
			out = append(out, c.index)
		}
	}
	if len(out) == 0 {
		out = []string{"events_by_time"}
	}
	return out
}

// explain returns the plan of st: the one made for its parameters, or the
// generic one of a prepared statement.
func explain(tb testing.TB, conn *pgx.Conn, name string, st plannedStatement, generic bool) map[string]any {
	tb.Helper()
	ctx := context.Background()
	var raw []byte
	tx, err := conn.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if st.list {
		// As the store runs them.
		if _, err := tx.Exec(ctx, pgPageSettings); err != nil {
			tb.Fatal(err)
		}
	}
	if !generic {
		if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+st.sql, st.args...).Scan(&raw); err != nil {
			tb.Fatalf("explain %s: %v", st.name, err)
		}
	} else {
		if _, err := tx.Prepare(ctx, name, st.sql); err != nil {
			tb.Fatalf("prepare %s: %v", st.name, err)
		}
		defer func() { _ = conn.Deallocate(ctx, name) }()
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
			tb.Fatal(err)
		}
		// EXECUTE's arguments cannot be bound: pgx writes them in as
		// literals (the simple protocol).
		params := make([]string, len(st.args))
		for i := range params {
			params[i] = fmt.Sprintf("$%d", i+1)
		}
		args := append([]any{pgx.QueryExecModeSimpleProtocol}, st.args...)
		if err := tx.QueryRow(ctx, fmt.Sprintf("EXPLAIN (FORMAT JSON) EXECUTE %s(%s)", name, strings.Join(params, ", ")), args...).Scan(&raw); err != nil {
			tb.Fatalf("explain the generic plan of %s: %v", st.name, err)
		}
	}
	var plans []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		tb.Fatalf("explain %s: %v in %s", st.name, err, raw)
	}
	return plans[0].Plan
}

// walkPlan calls f on node and every node under it.
func walkPlan(node map[string]any, f func(map[string]any)) {
	f(node)
	subs, _ := node["Plans"].([]any)
	for _, s := range subs {
		if m, ok := s.(map[string]any); ok {
			walkPlan(m, f)
		}
	}
}

// planText is a plan's nodes, one a line.
func planText(plan map[string]any) string {
	var b strings.Builder
	var walk func(node map[string]any, depth int)
	walk = func(node map[string]any, depth int) {
		fmt.Fprintf(&b, "%s%v", strings.Repeat("  ", depth), node["Node Type"])
		for _, k := range []string{"Relation Name", "Index Name", "Index Cond", "Recheck Cond", "Filter", "Sort Key", "Plan Rows"} {
			if v, ok := node[k]; ok {
				fmt.Fprintf(&b, " [%s: %v]", k, v)
			}
		}
		b.WriteByte('\n')
		subs, _ := node["Plans"].([]any)
		for _, s := range subs {
			if m, ok := s.(map[string]any); ok {
				walk(m, depth+1)
			}
		}
	}
	walk(plan, 1)
	return b.String()
}

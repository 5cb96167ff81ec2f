package status

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/pgdb"
)

// pgStore keeps the delivery history in PostgreSQL tables, in the schema the
// pool's search_path names.
//
// Every query is served by an index: a delivery by its primary key, a page
// of deliveries by a keyset scan of one of the (project_id[, filter],
// create_time DESC, id DESC) indexes that stops after the page, attempts by
// (delivery_id, attempt). Counts per status come from counter tables (per
// project, per endpoint, per event) that every write moves in the same
// transaction, so counting costs as much for a million deliveries as for
// ten.
type pgStore struct {
	pool *pgxpool.Pool
}

func newPGStore(pool *pgxpool.Pool) *pgStore {
	return &pgStore{pool: pool}
}

// pgSchema creates the tables and indexes; each statement is safe to run
// again.
var pgSchema = []string{
	`CREATE TABLE IF NOT EXISTS deliveries (
	id text PRIMARY KEY,
	project_id text NOT NULL,
	event_id text NOT NULL DEFAULT '',
	endpoint_id text NOT NULL DEFAULT '',
	event_type text NOT NULL DEFAULT '',
	status smallint NOT NULL,
	seq bigint NOT NULL,
	attempts bigint NOT NULL,
	create_time timestamptz NOT NULL,
	update_time timestamptz NOT NULL,
	next_attempt_time timestamptz,
	last_status_code integer NOT NULL DEFAULT 0,
	last_error text NOT NULL DEFAULT '',
	ordering_key text NOT NULL DEFAULT ''
)`,
	// Databases made before ordered delivery.
	`ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS ordering_key text NOT NULL DEFAULT ''`,
	`CREATE INDEX IF NOT EXISTS deliveries_by_time ON deliveries (project_id, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (project_id, event_id, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS deliveries_by_endpoint ON deliveries (project_id, endpoint_id, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS deliveries_by_type ON deliveries (project_id, event_type, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (project_id, status, create_time DESC, id DESC)`,
	// An endpoint's deliveries of one status: what a dashboard shows (the
	// failures of an endpoint) and what a batch retry selects.
	`CREATE INDEX IF NOT EXISTS deliveries_by_endpoint_status ON deliveries (project_id, endpoint_id, status, create_time DESC, id DESC)`,
	`CREATE TABLE IF NOT EXISTS attempts (
	delivery_id text NOT NULL,
	attempt bigint NOT NULL,
	project_id text NOT NULL,
	status_code integer NOT NULL,
	latency_ms bigint NOT NULL,
	request_headers jsonb,
	response_headers jsonb,
	response_body text NOT NULL DEFAULT '',
	error text NOT NULL DEFAULT '',
	remote_ip text NOT NULL DEFAULT '',
	start_time timestamptz,
	url text NOT NULL DEFAULT '',
	PRIMARY KEY (delivery_id, attempt)
)`,
	`CREATE TABLE IF NOT EXISTS project_counts (
	project_id text NOT NULL,
	status smallint NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (project_id, status)
)`,
	`CREATE TABLE IF NOT EXISTS endpoint_counts (
	project_id text NOT NULL,
	endpoint_id text NOT NULL,
	status smallint NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (project_id, endpoint_id, status)
)`,
	`CREATE TABLE IF NOT EXISTS event_counts (
	project_id text NOT NULL,
	event_id text NOT NULL,
	status smallint NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (project_id, event_id, status)
)`,
	// The statistics (stats.go): counters per endpoint and minute, read by
	// the primary key for an endpoint and by the _by_minute index for a
	// project.
	`CREATE TABLE IF NOT EXISTS delivery_stats (
	project_id text NOT NULL,
	endpoint_id text NOT NULL,
	minute timestamptz NOT NULL,
	status smallint NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (project_id, endpoint_id, minute, status)
)`,
	`CREATE INDEX IF NOT EXISTS delivery_stats_by_minute ON delivery_stats (project_id, minute)`,
	`CREATE TABLE IF NOT EXISTS attempt_stats (
	project_id text NOT NULL,
	endpoint_id text NOT NULL,
	minute timestamptz NOT NULL,
	latency_bucket smallint NOT NULL,
	n bigint NOT NULL,
	sum_ms bigint NOT NULL,
	PRIMARY KEY (project_id, endpoint_id, minute, latency_bucket)
)`,
	`CREATE INDEX IF NOT EXISTS attempt_stats_by_minute ON attempt_stats (project_id, minute)`,
}

func (s *pgStore) init(ctx context.Context) error {
	return pgdb.Migrate(ctx, s.pool, "status", append(slices.Clone(pgSchema), pgLineSchema...))
}

// The statements the store issues (listDeliveriesSQL and countSQL build the
// rest); the index test explains each of them.
const (
	deliveryColumns = `id, project_id, event_id, endpoint_id, event_type, status, seq, attempts,
	create_time, update_time, next_attempt_time, last_status_code, last_error, ordering_key`

	sqlGetDelivery = `SELECT ` + deliveryColumns + ` FROM deliveries WHERE id = $1 AND project_id = $2`

	sqlListAttempts = `SELECT delivery_id, project_id, attempt, status_code, latency_ms, request_headers,
	response_headers, response_body, error, remote_ip, start_time, url
FROM attempts WHERE delivery_id = $1 AND project_id = $2 ORDER BY attempt`

	sqlInsertAttempts = `INSERT INTO attempts (delivery_id, attempt, project_id, status_code, latency_ms,
	request_headers, response_headers, response_body, error, remote_ip, start_time, url)
SELECT delivery_id, attempt, project_id, status_code, latency_ms, request_headers::jsonb,
	response_headers::jsonb, response_body, error, remote_ip, start_time, url
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::integer[], $5::bigint[], $6::text[],
	$7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[])
	AS u(delivery_id, attempt, project_id, status_code, latency_ms, request_headers,
	response_headers, response_body, error, remote_ip, start_time, url)
ON CONFLICT (delivery_id, attempt) DO NOTHING
RETURNING delivery_id, attempt`

	// sqlLockDeliveries reads, and locks until the transaction ends, the
	// stored state of deliveries about to be updated.
	sqlLockDeliveries = `SELECT id, project_id, event_id, endpoint_id, status, seq
FROM deliveries WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`

	// sqlInsertDeliveries inserts the deliveries not stored yet and returns
	// their ids.
	sqlInsertDeliveries = `INSERT INTO deliveries (id, project_id, event_id, endpoint_id, event_type, status, seq,
	attempts, create_time, update_time, next_attempt_time, last_status_code, last_error, ordering_key)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[],
	$7::bigint[], $8::bigint[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[],
	$12::integer[], $13::text[], $14::text[])
ON CONFLICT (id) DO NOTHING
RETURNING id`

	// sqlUpdateDeliveries moves existing deliveries forward: a change with
	// a seq not above the stored one changes nothing. A descriptive field
	// a change left out keeps its value, and so do the last_* fields when
	// the change has no attempt result.
	sqlUpdateDeliveries = `UPDATE deliveries AS d SET
	project_id = u.project_id,
	event_id = CASE WHEN u.event_id <> '' THEN u.event_id ELSE d.event_id END,
	endpoint_id = CASE WHEN u.endpoint_id <> '' THEN u.endpoint_id ELSE d.endpoint_id END,
	event_type = CASE WHEN u.event_type <> '' THEN u.event_type ELSE d.event_type END,
	status = u.status,
	seq = u.seq,
	attempts = u.attempts,
	update_time = u.update_time,
	next_attempt_time = u.next_attempt_time,
	last_status_code = CASE WHEN u.has_record THEN u.last_status_code ELSE d.last_status_code END,
	last_error = CASE WHEN u.has_record THEN u.last_error ELSE d.last_error END,
	ordering_key = CASE WHEN u.ordering_key <> '' THEN u.ordering_key ELSE d.ordering_key END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[], $7::bigint[],
	$8::bigint[], $9::timestamptz[], $10::timestamptz[], $11::boolean[], $12::integer[], $13::text[], $14::text[])
	AS u(id, project_id, event_id, endpoint_id, event_type, status, seq, attempts, update_time,
	next_attempt_time, has_record, last_status_code, last_error, ordering_key)
WHERE d.id = u.id AND d.seq < u.seq`

	sqlAddProjectCounts = `INSERT INTO project_counts AS c (project_id, status, n)
SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[])
ON CONFLICT (project_id, status) DO UPDATE SET n = c.n + excluded.n`

	sqlAddEndpointCounts = `INSERT INTO endpoint_counts AS c (project_id, endpoint_id, status, n)
SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[])
ON CONFLICT (project_id, endpoint_id, status) DO UPDATE SET n = c.n + excluded.n`

	sqlAddEventCounts = `INSERT INTO event_counts AS c (project_id, event_id, status, n)
SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[])
ON CONFLICT (project_id, event_id, status) DO UPDATE SET n = c.n + excluded.n`

	sqlAddDeliveryStats = `INSERT INTO delivery_stats AS c (project_id, endpoint_id, minute, status, n)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::smallint[], $5::bigint[])
ON CONFLICT (project_id, endpoint_id, minute, status) DO UPDATE SET n = c.n + excluded.n`

	sqlAddAttemptStats = `INSERT INTO attempt_stats AS c (project_id, endpoint_id, minute, latency_bucket, n, sum_ms)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::smallint[], $5::bigint[], $6::bigint[])
ON CONFLICT (project_id, endpoint_id, minute, latency_bucket) DO UPDATE SET n = c.n + excluded.n, sum_ms = c.sum_ms + excluded.sum_ms`

	// The statistics of a window ($2 to $3) in buckets of $4 seconds, of a
	// project, of one endpoint ($5) or of some (ANY $5).
	statsBucketExpr  = `floor(extract(epoch FROM minute - $2::timestamptz) / $4::bigint)::bigint`
	sqlDeliveryStats = `SELECT ` + statsBucketExpr + ` AS b, status, sum(n)::bigint FROM delivery_stats
WHERE project_id = $1 AND minute >= $2 AND minute < $3 GROUP BY b, status`
	sqlEndpointDeliveryStats = `SELECT ` + statsBucketExpr + ` AS b, status, sum(n)::bigint FROM delivery_stats
WHERE project_id = $1 AND endpoint_id = $5 AND minute >= $2 AND minute < $3 GROUP BY b, status`
	sqlEndpointsDeliveryStats = `SELECT ` + statsBucketExpr + ` AS b, status, sum(n)::bigint FROM delivery_stats
WHERE project_id = $1 AND endpoint_id = ANY($5::text[]) AND minute >= $2 AND minute < $3 GROUP BY b, status`
	sqlAttemptStats = `SELECT ` + statsBucketExpr + ` AS b, latency_bucket, sum(n)::bigint, sum(sum_ms)::bigint FROM attempt_stats
WHERE project_id = $1 AND minute >= $2 AND minute < $3 GROUP BY b, latency_bucket`
	sqlEndpointAttemptStats = `SELECT ` + statsBucketExpr + ` AS b, latency_bucket, sum(n)::bigint, sum(sum_ms)::bigint FROM attempt_stats
WHERE project_id = $1 AND endpoint_id = $5 AND minute >= $2 AND minute < $3 GROUP BY b, latency_bucket`
	sqlEndpointsAttemptStats = `SELECT ` + statsBucketExpr + ` AS b, latency_bucket, sum(n)::bigint, sum(sum_ms)::bigint FROM attempt_stats
WHERE project_id = $1 AND endpoint_id = ANY($5::text[]) AND minute >= $2 AND minute < $3 GROUP BY b, latency_bucket`

	sqlProjectCounts  = `SELECT status, n FROM project_counts WHERE project_id = $1`
	sqlEndpointCounts = `SELECT status, n FROM endpoint_counts WHERE project_id = $1 AND endpoint_id = $2`
	sqlEventCounts    = `SELECT event_id, status, n FROM event_counts WHERE project_id = $1 AND event_id = ANY($2::text[])`
)

// pgCtx bounds a call whose context has no deadline.
func pgCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, pgdb.Timeout)
}

// pgText is s as PostgreSQL text accepts it (no NUL, valid UTF-8).
func pgText(s string) string {
	return strings.ToValidUTF8(storable(s), "\uFFFD")
}

func pgTime(t *time.Time) pgtype.Timestamptz {
	if t == nil {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: *t, Valid: true}
}

func headersJSON(hs []headerDoc) *string {
	if len(hs) == 0 {
		return nil
	}
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[pgText(h.Name)] = pgText(h.Value)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil // cannot happen for a map of strings
	}
	s := string(b)
	return &s
}

func headersFromJSON(b []byte) ([]headerDoc, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	out := make([]headerDoc, 0, len(m))
	for k, v := range m {
		out = append(out, headerDoc{Name: k, Value: v})
	}
	slices.SortFunc(out, func(a, b headerDoc) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// insertAttemptsArgs returns sqlInsertAttempts' arguments for docs.
func insertAttemptsArgs(docs []attemptDoc) []any {
	n := len(docs)
	var (
		ids, projects, bodies, errs, ips, urls = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		nums, latencies                        = make([]int64, n), make([]int64, n)
		codes                                  = make([]int32, n)
		reqH, resH                             = make([]*string, n), make([]*string, n)
		starts                                 = make([]pgtype.Timestamptz, n)
	)
	for i, a := range docs {
		ids[i], nums[i], projects[i], codes[i], latencies[i] = a.DeliveryID, a.Attempt, a.ProjectID, a.StatusCode, a.LatencyMS
		reqH[i], resH[i] = headersJSON(a.RequestHeaders), headersJSON(a.ResponseHeaders)
		bodies[i], errs[i], ips[i], urls[i] = pgText(a.ResponseBody), pgText(a.Error), pgText(a.RemoteIP), pgText(a.URL)
		starts[i] = pgTime(a.StartTime)
	}
	return []any{ids, nums, projects, codes, latencies, reqH, resH, bodies, errs, ips, starts, urls}
}

// storedState is what sqlLockDeliveries reads of a delivery.
type storedState struct {
	projectID, eventID, endpointID string
	status                         int16
	seq                            int64
}

// write applies a batch in one transaction, a statement for each step: it
// inserts the attempts (a replayed one is left as it is), inserts the
// deliveries that do not exist yet, locks the others and updates those
// that the write moves forward (seq above the stored one), and moves the
// counters by what actually changed. Rows are taken in id order and the
// counters last, so that concurrent writers do not deadlock; if they do
// anyway, the transaction runs again (at most five times).
func (s *pgStore) write(ctx context.Context, all []*deliveryWrite, attempts []attemptDoc) error {
	if len(all) == 0 && len(attempts) == 0 {
		return nil
	}
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	ws := dedupeWrites(all)
	attempts = slices.Clone(attempts)
	slices.SortFunc(attempts, func(a, b attemptDoc) int {
		return cmp.Or(cmp.Compare(a.DeliveryID, b.DeliveryID), cmp.Compare(a.Attempt, b.Attempt))
	})
	var err error
	for range 5 {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			stats := newStatDeltas()
			if len(attempts) > 0 {
				if err := insertAttemptsTx(ctx, tx, attempts, stats); err != nil {
					return fmt.Errorf("insert %d attempts: %w", len(attempts), err)
				}
			}
			if len(ws) > 0 {
				if err := writeDeliveriesTx(ctx, tx, ws, stats); err != nil {
					return err
				}
			}
			return addStatsTx(ctx, tx, stats)
		})
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			break
		}
	}
	return fmt.Errorf("write %d deliveries: %w", len(ws), err)
}

// isConflict reports a deadlock or a serialization failure.
func isConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// dedupeWrites keeps the highest-seq write of each delivery (Apply already
// gives one per delivery).
func dedupeWrites(ws []*deliveryWrite) []*deliveryWrite {
	byID := make(map[string]int, len(ws))
	out := make([]*deliveryWrite, 0, len(ws))
	for _, w := range ws {
		if i, ok := byID[w.doc.ID]; ok {
			if w.doc.Seq > out[i].doc.Seq {
				out[i] = w
			}
			continue
		}
		byID[w.doc.ID] = len(out)
		out = append(out, w)
	}
	return out
}

// counterKey is one row of a counter table; key is the endpoint or event id
// (empty for project_counts).
type counterKey struct {
	project, key string
	status       int16
}

// counterDeltas gathers the counter changes of a transaction.
type counterDeltas struct {
	project, endpoint, event map[counterKey]int64
}

func newCounterDeltas() *counterDeltas {
	return &counterDeltas{project: map[counterKey]int64{}, endpoint: map[counterKey]int64{}, event: map[counterKey]int64{}}
}

func (c *counterDeltas) add(project, endpoint, event string, status int16, n int64) {
	c.project[counterKey{project, "", status}] += n
	if endpoint != "" {
		c.endpoint[counterKey{project, endpoint, status}] += n
	}
	if event != "" {
		c.event[counterKey{project, event, status}] += n
	}
}

// sortedDeltas returns the non-zero deltas in key order: every transaction
// locks counter rows in the same order, which keeps them from deadlocking.
func sortedDeltas(m map[counterKey]int64) (projects, keys []string, statuses []int16, ns []int64) {
	ks := make([]counterKey, 0, len(m))
	for k, n := range m {
		if n != 0 {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b counterKey) int {
		return cmp.Or(cmp.Compare(a.project, b.project), cmp.Compare(a.key, b.key), cmp.Compare(a.status, b.status))
	})
	for _, k := range ks {
		projects, keys, statuses, ns = append(projects, k.project), append(keys, k.key), append(statuses, k.status), append(ns, m[k])
	}
	return projects, keys, statuses, ns
}

// insertAttemptsTx inserts attempts and counts in stats those that were
// not stored yet.
func insertAttemptsTx(ctx context.Context, tx pgx.Tx, attempts []attemptDoc, stats *statDeltas) error {
	rows, err := tx.Query(ctx, sqlInsertAttempts, insertAttemptsArgs(attempts)...)
	if err != nil {
		return err
	}
	type key struct {
		id string
		n  int64
	}
	inserted := map[key]bool{}
	var k key
	if _, err := pgx.ForEachRow(rows, []any{&k.id, &k.n}, func() error {
		inserted[k] = true
		return nil
	}); err != nil {
		return err
	}
	for i := range attempts {
		if inserted[key{attempts[i].DeliveryID, attempts[i].Attempt}] {
			stats.attempt(&attempts[i])
		}
	}
	return nil
}

// addStatsTx adds the statistics of a write, in key order, last in the
// transaction.
func addStatsTx(ctx context.Context, tx pgx.Tx, stats *statDeltas) error {
	if ks := sortedStats(stats.deliveries); len(ks) > 0 {
		if _, err := tx.Exec(ctx, sqlAddDeliveryStats, deliveryStatsArgs(stats.deliveries, ks)...); err != nil {
			return fmt.Errorf("add delivery statistics: %w", err)
		}
	}
	if ks := sortedStats(stats.attempts); len(ks) > 0 {
		if _, err := tx.Exec(ctx, sqlAddAttemptStats, attemptStatsArgs(stats.attempts, ks)...); err != nil {
			return fmt.Errorf("add attempt statistics: %w", err)
		}
	}
	return nil
}

// deliveryStatsArgs returns sqlAddDeliveryStats' arguments for the rows ks
// of m.
func deliveryStatsArgs(m map[statKey]statValue, ks []statKey) []any {
	n := len(ks)
	projects, endpoints, minutes, statuses, ns := make([]string, n), make([]string, n), make([]time.Time, n), make([]int16, n), make([]int64, n)
	for i, k := range ks {
		projects[i], endpoints[i], minutes[i], statuses[i], ns[i] = k.project, k.endpoint, k.minute, k.key, m[k].n
	}
	return []any{projects, endpoints, minutes, statuses, ns}
}

// attemptStatsArgs returns sqlAddAttemptStats' arguments for the rows ks
// of m.
func attemptStatsArgs(m map[statKey]statValue, ks []statKey) []any {
	n := len(ks)
	projects, endpoints, minutes, buckets, ns, sums := make([]string, n), make([]string, n), make([]time.Time, n), make([]int16, n), make([]int64, n), make([]int64, n)
	for i, k := range ks {
		v := m[k]
		projects[i], endpoints[i], minutes[i], buckets[i], ns[i], sums[i] = k.project, k.endpoint, k.minute, k.key, v.n, v.sumMS
	}
	return []any{projects, endpoints, minutes, buckets, ns, sums}
}

// writeDeliveriesTx applies one write per delivery in tx: it inserts them
// all, locks and moves forward those that existed, then moves the counters.
// Deliveries are written in id order, so transactions lock rows in the same
// order.
func writeDeliveriesTx(ctx context.Context, tx pgx.Tx, ws []*deliveryWrite, stats *statDeltas) error {
	ws = slices.Clone(ws)
	slices.SortFunc(ws, func(a, b *deliveryWrite) int { return cmp.Compare(a.doc.ID, b.doc.ID) })
	deltas := newCounterDeltas()

	// First every delivery is inserted whole: a new one is then done (the
	// common case: its changes were coalesced into one write), and its
	// create_time is set by whichever change stored it first. An insert
	// that meets a delivery another transaction is inserting waits for it.
	fresh, err := insertDeliveriesTx(ctx, tx, ws, nil)
	if err != nil {
		return err
	}
	var existing []string
	for _, w := range ws {
		if fresh[w.doc.ID] {
			countNewDelivery(w, deltas, stats)
		} else {
			existing = append(existing, w.doc.ID)
		}
	}

	if len(existing) > 0 {
		if err := writeExistingTx(ctx, tx, ws, existing, fresh, deltas, stats); err != nil {
			return err
		}
	}

	// The counters last: their rows are shared by every writer of a
	// project, so they are held for the least time.
	return addCountsTx(ctx, tx, deltas)
}

// insertDeliveriesTx inserts ws whole and returns fresh (a new map when nil)
// with the ids of those that were not stored yet marked.
func insertDeliveriesTx(ctx context.Context, tx pgx.Tx, ws []*deliveryWrite, fresh map[string]bool) (map[string]bool, error) {
	rows, err := tx.Query(ctx, sqlInsertDeliveries, insertDeliveriesArgs(ws)...)
	if err != nil {
		return nil, err
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if fresh == nil {
		fresh = make(map[string]bool, len(inserted))
	}
	for _, id := range inserted {
		fresh[id] = true
	}
	return fresh, nil
}

// countNewDelivery counts a delivery that w stored anew: one more in its
// status, and every outcome it carries.
func countNewDelivery(w *deliveryWrite, deltas *counterDeltas, stats *statDeltas) {
	deltas.add(w.doc.ProjectID, w.doc.EndpointID, w.doc.EventID, int16(w.doc.Status), 1)
	for _, o := range w.outcomes {
		stats.outcome(w.doc.ProjectID, w.doc.EndpointID, o.status, o.time)
	}
}

// writeExistingTx writes the deliveries of ws whose ids are in existing:
// they existed at the insert, so their stored state, locked until the end,
// says which writes move them forward and how the counters move.
func writeExistingTx(ctx context.Context, tx pgx.Tx, ws []*deliveryWrite, existing []string, fresh map[string]bool, deltas *counterDeltas, stats *statDeltas) error {
	stored, err := lockDeliveriesTx(ctx, tx, existing)
	if err != nil {
		return err
	}
	// A delivery that existed at the insert but is gone now was deleted by
	// the pruner in between (a retry racing the prune of a finished
	// delivery): it is stored anew, whole, like a new one, so that the
	// attempts this write inserted belong to a delivery.
	var vanished []*deliveryWrite
	for _, w := range ws {
		if _, ok := stored[w.doc.ID]; !ok && !fresh[w.doc.ID] {
			vanished = append(vanished, w)
		}
	}
	if len(vanished) > 0 {
		if _, err := insertDeliveriesTx(ctx, tx, vanished, fresh); err != nil {
			return err
		}
		for _, w := range vanished {
			if fresh[w.doc.ID] {
				countNewDelivery(w, deltas, stats)
			}
		}
	}
	if forward := moveForward(ws, stored, deltas, stats); len(forward) > 0 {
		if _, err := tx.Exec(ctx, sqlUpdateDeliveries, updateDeliveriesArgs(forward)...); err != nil {
			return err
		}
	}
	return nil
}

// lockDeliveriesTx locks the deliveries ids until the end of tx and returns
// the state stored of those that still exist.
func lockDeliveriesTx(ctx context.Context, tx pgx.Tx, ids []string) (map[string]storedState, error) {
	rows, err := tx.Query(ctx, sqlLockDeliveries, ids)
	if err != nil {
		return nil, err
	}
	stored := make(map[string]storedState, len(ids))
	var id string
	var st storedState
	if _, err := pgx.ForEachRow(rows, []any{&id, &st.projectID, &st.eventID, &st.endpointID, &st.status, &st.seq}, func() error {
		stored[id] = st
		return nil
	}); err != nil {
		return nil, err
	}
	return stored, nil
}

// moveForward returns the writes of ws that move their stored delivery
// forward, and counts the outcomes they pass and the status changes they
// make.
func moveForward(ws []*deliveryWrite, stored map[string]storedState, deltas *counterDeltas, stats *statDeltas) []*deliveryWrite {
	var forward []*deliveryWrite
	for _, w := range ws {
		d := &w.doc
		old, ok := stored[d.ID]
		if !ok || old.seq >= d.Seq {
			continue // new (inserted above), or not forward: nothing changes
		}
		forward = append(forward, w)
		endpoint, event := cmp.Or(d.EndpointID, old.endpointID), cmp.Or(d.EventID, old.eventID)
		// The outcomes the delivery passes on its way forward are new: an
		// attempt's outcome has one seq.
		for _, o := range w.outcomes {
			if o.seq > old.seq {
				stats.outcome(d.ProjectID, endpoint, o.status, o.time)
			}
		}
		if old.status != int16(d.Status) || old.projectID != d.ProjectID || old.endpointID != endpoint || old.eventID != event {
			deltas.add(old.projectID, old.endpointID, old.eventID, old.status, -1)
			deltas.add(d.ProjectID, endpoint, event, int16(d.Status), 1)
		}
	}
	return forward
}

// addCountsTx adds the counter deltas, per project, then per endpoint, then
// per event, each in key order.
func addCountsTx(ctx context.Context, tx pgx.Tx, deltas *counterDeltas) error {
	if p, _, st, n := sortedDeltas(deltas.project); len(p) > 0 {
		if _, err := tx.Exec(ctx, sqlAddProjectCounts, p, st, n); err != nil {
			return err
		}
	}
	if p, k, st, n := sortedDeltas(deltas.endpoint); len(p) > 0 {
		if _, err := tx.Exec(ctx, sqlAddEndpointCounts, p, k, st, n); err != nil {
			return err
		}
	}
	if p, k, st, n := sortedDeltas(deltas.event); len(p) > 0 {
		if _, err := tx.Exec(ctx, sqlAddEventCounts, p, k, st, n); err != nil {
			return err
		}
	}
	return nil
}

// insertDeliveriesArgs returns sqlInsertDeliveries' arguments for ws.
func insertDeliveriesArgs(ws []*deliveryWrite) []any {
	n := len(ws)
	var (
		ids, projects, events, endpoints, types, lastErrs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		orderingKeys                                      = make([]string, n)
		statuses                                          = make([]int16, n)
		seqs, attempts                                    = make([]int64, n), make([]int64, n)
		created, updated, next                            = make([]time.Time, n), make([]time.Time, n), make([]pgtype.Timestamptz, n)
		codes                                             = make([]int32, n)
	)
	for i, w := range ws {
		d := &w.doc
		ids[i], projects[i], events[i], endpoints[i], types[i] = d.ID, d.ProjectID, d.EventID, d.EndpointID, d.EventType
		statuses[i], seqs[i], attempts[i] = int16(d.Status), d.Seq, d.Attempts
		created[i], updated[i], next[i] = d.CreateTime, d.UpdateTime, pgTime(d.NextAttemptTime)
		codes[i], lastErrs[i], orderingKeys[i] = d.LastStatusCode, pgText(d.LastError), d.OrderingKey
	}
	return []any{ids, projects, events, endpoints, types, statuses, seqs, attempts, created, updated, next, codes, lastErrs, orderingKeys}
}

// updateDeliveriesArgs returns sqlUpdateDeliveries' arguments for ws.
func updateDeliveriesArgs(ws []*deliveryWrite) []any {
	n := len(ws)
	var (
		ids, projects, events, endpoints, types, lastErrs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		statuses                                          = make([]int16, n)
		seqs, attempts                                    = make([]int64, n), make([]int64, n)
		updated, next                                     = make([]time.Time, n), make([]pgtype.Timestamptz, n)
		hasRecord                                         = make([]bool, n)
		codes                                             = make([]int32, n)
		orderingKeys                                      = make([]string, n)
	)
	for i, w := range ws {
		d := &w.doc
		ids[i], projects[i], events[i], endpoints[i], types[i] = d.ID, d.ProjectID, d.EventID, d.EndpointID, d.EventType
		statuses[i], seqs[i], attempts[i] = int16(d.Status), d.Seq, d.Attempts
		updated[i], next[i] = d.UpdateTime, pgTime(d.NextAttemptTime)
		hasRecord[i], codes[i], lastErrs[i], orderingKeys[i] = w.hasRecord, d.LastStatusCode, pgText(d.LastError), d.OrderingKey
	}
	return []any{ids, projects, events, endpoints, types, statuses, seqs, attempts, updated, next, hasRecord, codes, lastErrs, orderingKeys}
}

func scanDelivery(row pgx.CollectableRow) (deliveryDoc, error) {
	var d deliveryDoc
	var status int16
	var next pgtype.Timestamptz
	err := row.Scan(&d.ID, &d.ProjectID, &d.EventID, &d.EndpointID, &d.EventType, &status, &d.Seq, &d.Attempts,
		&d.CreateTime, &d.UpdateTime, &next, &d.LastStatusCode, &d.LastError, &d.OrderingKey)
	if err != nil {
		return d, err
	}
	d.Status = int32(status)
	d.CreateTime, d.UpdateTime = d.CreateTime.UTC(), d.UpdateTime.UTC()
	if next.Valid {
		t := next.Time.UTC()
		d.NextAttemptTime = &t
	}
	return d, nil
}

func (s *pgStore) getDelivery(ctx context.Context, projectID, id string) (*deliveryDoc, error) {
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlGetDelivery, id, projectID)
	if err != nil {
		return nil, fmt.Errorf("find delivery %s: %w", id, err)
	}
	d, err := pgx.CollectOneRow(rows, scanDelivery)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find delivery %s: %w", id, err)
	}
	return &d, nil
}

func (s *pgStore) listAttempts(ctx context.Context, projectID, deliveryID string) ([]attemptDoc, error) {
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlListAttempts, deliveryID, projectID)
	if err != nil {
		return nil, fmt.Errorf("find attempts of %s: %w", deliveryID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (attemptDoc, error) {
		var a attemptDoc
		var reqH, resH []byte
		var start pgtype.Timestamptz
		if err := row.Scan(&a.DeliveryID, &a.ProjectID, &a.Attempt, &a.StatusCode, &a.LatencyMS, &reqH, &resH,
			&a.ResponseBody, &a.Error, &a.RemoteIP, &start, &a.URL); err != nil {
			return a, err
		}
		a.ID = attemptID(a.DeliveryID, clampUint32(a.Attempt))
		var err error
		if a.RequestHeaders, err = headersFromJSON(reqH); err != nil {
			return a, err
		}
		if a.ResponseHeaders, err = headersFromJSON(resH); err != nil {
			return a, err
		}
		if start.Valid {
			t := start.Time.UTC()
			a.StartTime = &t
		}
		return a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", deliveryID, err)
	}
	return out, nil
}

// deliveryWhere returns the conditions of q other than status, and their
// arguments, numbered from $1.
func deliveryWhere(q *deliveryQuery) (string, []any) {
	args := []any{q.projectID}
	conds := []string{"project_id = $1"}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if q.eventID != "" {
		add("event_id = $%d", q.eventID)
	}
	if q.endpointID != "" {
		add("endpoint_id = $%d", q.endpointID)
	}
	if len(q.endpointIDs) > 0 {
		add("endpoint_id = ANY($%d::text[])", q.endpointIDs)
	}
	if q.eventType != "" {
		add("event_type = $%d", q.eventType)
	}
	if !q.start.IsZero() {
		add("create_time >= $%d", storeTime(q.start))
	}
	if !q.end.IsZero() {
		add("create_time < $%d", storeTime(q.end))
	}
	if q.after != nil {
		// Keyset pagination on the immutable (create_time, id), which the
		// indexes keep in this order: the scan starts right after the
		// cursor.
		args = append(args, q.after.createTime, q.after.id)
		conds = append(conds, fmt.Sprintf("(create_time, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	return strings.Join(conds, " AND "), args
}

// listDeliveriesSQL returns the statement that lists q's page and its
// arguments. With several statuses it is one index scan per status, each
// stopping after a page, merged: `status = ANY(...)` would read every
// delivery of those statuses and sort them.
func listDeliveriesSQL(q *deliveryQuery) (string, []any) {
	where, args := deliveryWhere(q)
	const order = ` ORDER BY create_time DESC, id DESC LIMIT `
	args = append(args, q.limit)
	limit := fmt.Sprintf("$%d", len(args))
	switch len(q.statuses) {
	case 0:
		return `SELECT ` + deliveryColumns + ` FROM deliveries WHERE ` + where + order + limit, args
	case 1:
		args = append(args, int16(q.statuses[0]))
		return fmt.Sprintf(`SELECT %s FROM deliveries WHERE %s AND status = $%d%s%s`, deliveryColumns, where, len(args), order, limit), args
	}
	parts := make([]string, len(q.statuses))
	for i, st := range q.statuses {
		args = append(args, int16(st))
		parts[i] = fmt.Sprintf(`(SELECT %s FROM deliveries WHERE %s AND status = $%d%s%s)`, deliveryColumns, where, len(args), order, limit)
	}
	return `SELECT ` + deliveryColumns + ` FROM (` + strings.Join(parts, " UNION ALL ") + `) AS d` + order + limit, args
}

func (s *pgStore) listDeliveries(ctx context.Context, q *deliveryQuery) ([]deliveryDoc, error) {
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	stmt, args := listDeliveriesSQL(q)
	rows, err := s.pool.Query(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("find deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return out, nil
}

// countSQL returns the statement that counts q's deliveries per status, and
// its arguments: a counter table when q filters by project, endpoint or
// event alone, else a count of the matching rows (by event and endpoint,
// the few deliveries of one event).
func countSQL(q *deliveryQuery) (string, []any) {
	if q.eventType == "" && len(q.statuses) == 0 && len(q.endpointIDs) == 0 && q.start.IsZero() && q.end.IsZero() && q.after == nil {
		switch {
		case q.eventID == "" && q.endpointID == "":
			return sqlProjectCounts, []any{q.projectID}
		case q.eventID == "":
			return sqlEndpointCounts, []any{q.projectID, q.endpointID}
		case q.endpointID == "":
			return `SELECT status, n FROM event_counts WHERE project_id = $1 AND event_id = $2`, []any{q.projectID, q.eventID}
		}
	}
	where, args := deliveryWhere(q)
	if len(q.statuses) > 0 {
		sts := make([]int16, len(q.statuses))
		for i, st := range q.statuses {
			sts[i] = int16(st)
		}
		args = append(args, sts)
		where += fmt.Sprintf(" AND status = ANY($%d::smallint[])", len(args))
	}
	return `SELECT status, count(*) FROM deliveries WHERE ` + where + ` GROUP BY status`, args
}

func (s *pgStore) countDeliveries(ctx context.Context, q *deliveryQuery) (map[statusv1.DeliveryStatus]uint64, error) {
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	stmt, args := countSQL(q)
	rows, err := s.pool.Query(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	out := map[statusv1.DeliveryStatus]uint64{}
	var st int16
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		if n > 0 {
			out[statusv1.DeliveryStatus(st)] += uint64(n)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	return out, nil
}

func (s *pgStore) countByEvent(ctx context.Context, projectID string, eventIDs []string) (map[string]map[statusv1.DeliveryStatus]uint64, error) {
	out := make(map[string]map[statusv1.DeliveryStatus]uint64, len(eventIDs))
	if len(eventIDs) == 0 {
		return out, nil
	}
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlEventCounts, projectID, eventIDs)
	if err != nil {
		return nil, fmt.Errorf("count deliveries by event: %w", err)
	}
	var ev string
	var st int16
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&ev, &st, &n}, func() error {
		if n <= 0 {
			return nil
		}
		if out[ev] == nil {
			out[ev] = map[statusv1.DeliveryStatus]uint64{}
		}
		out[ev][statusv1.DeliveryStatus(st)] += uint64(n)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count deliveries by event: %w", err)
	}
	return out, nil
}

// stats reads the statistics of q, summed per bucket.
func (s *pgStore) stats(ctx context.Context, q *statsQuery) (*statsRows, error) {
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	deliverySQL, attemptSQL := sqlDeliveryStats, sqlAttemptStats
	args := []any{q.projectID, q.start, q.end, int64(q.bucket / time.Second)}
	switch {
	case q.endpointID != "":
		deliverySQL, attemptSQL = sqlEndpointDeliveryStats, sqlEndpointAttemptStats
		args = append(args, q.endpointID)
	case len(q.endpointIDs) > 0:
		deliverySQL, attemptSQL = sqlEndpointsDeliveryStats, sqlEndpointsAttemptStats
		args = append(args, q.endpointIDs)
	}
	out := &statsRows{}
	rows, err := s.pool.Query(ctx, deliverySQL, args...)
	if err != nil {
		return nil, fmt.Errorf("read delivery statistics: %w", err)
	}
	var sr statusRow
	if _, err := pgx.ForEachRow(rows, []any{&sr.bucket, &sr.status, &sr.n}, func() error {
		out.statuses = append(out.statuses, sr)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read delivery statistics: %w", err)
	}
	rows, err = s.pool.Query(ctx, attemptSQL, args...)
	if err != nil {
		return nil, fmt.Errorf("read attempt statistics: %w", err)
	}
	var lr latencyRow
	if _, err := pgx.ForEachRow(rows, []any{&lr.bucket, &lr.latency, &lr.n, &lr.sumMS}, func() error {
		out.latencies = append(out.latencies, lr)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read attempt statistics: %w", err)
	}
	return out, nil
}

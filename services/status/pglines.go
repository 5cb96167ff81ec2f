package status

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// pgLineSchema keeps the lines of ordered delivery (lines.go):
//
//   - order_keys: per key, the watermark (every event up to routed_through
//     is routed); its row is locked while a batch moves the key's lines.
//   - order_routed: the seqs routed above the watermark (routers may route
//     out of order); deleted as the watermark passes them.
//   - order_lines: the deliveries in lines that have not ended, with the
//     task to send when their turn comes; released when it comes (with
//     the time), sent once the broker confirmed the task. A line's first
//     row is its primary key's first in (project, key, endpoint);
//     order_lines_by_seq finds the lines a watermark move may free, and
//     order_lines_unsent the released tasks not confirmed yet.
var pgLineSchema = []string{
	`CREATE TABLE IF NOT EXISTS order_keys (
	project_id text NOT NULL,
	ordering_key text NOT NULL,
	routed_through bigint NOT NULL,
	PRIMARY KEY (project_id, ordering_key)
)`,
	`CREATE TABLE IF NOT EXISTS order_routed (
	project_id text NOT NULL,
	ordering_key text NOT NULL,
	seq bigint NOT NULL,
	PRIMARY KEY (project_id, ordering_key, seq)
)`,
	`CREATE TABLE IF NOT EXISTS order_lines (
	project_id text NOT NULL,
	ordering_key text NOT NULL,
	endpoint_id text NOT NULL,
	seq bigint NOT NULL,
	delivery_id text NOT NULL,
	task bytea NOT NULL,
	released boolean NOT NULL DEFAULT false,
	release_time timestamptz,
	sent boolean NOT NULL DEFAULT false,
	PRIMARY KEY (project_id, ordering_key, endpoint_id, seq)
)`,
	`CREATE INDEX IF NOT EXISTS order_lines_by_seq ON order_lines (project_id, ordering_key, seq)`,
	`CREATE INDEX IF NOT EXISTS order_lines_unsent ON order_lines (release_time) WHERE released AND NOT sent`,
}

// The statements of the lines; the index test explains each of them.
const (
	sqlEnsureKeys = `INSERT INTO order_keys (project_id, ordering_key, routed_through)
SELECT p, k, 0 FROM unnest($1::text[], $2::text[]) AS u(p, k)
ON CONFLICT (project_id, ordering_key) DO NOTHING`

	sqlLockKeys = `SELECT project_id, ordering_key, routed_through FROM order_keys
WHERE (project_id, ordering_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY project_id, ordering_key FOR UPDATE`

	// sqlInsertRouted records routes; it returns those not recorded yet.
	sqlInsertRouted = `INSERT INTO order_routed (project_id, ordering_key, seq)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT (project_id, ordering_key, seq) DO NOTHING
RETURNING project_id, ordering_key, seq`

	sqlInsertLines = `INSERT INTO order_lines (project_id, ordering_key, endpoint_id, seq, delivery_id, task)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bytea[])
ON CONFLICT (project_id, ordering_key, endpoint_id, seq) DO NOTHING`

	sqlRoutedAbove = `SELECT r.project_id, r.ordering_key, r.seq
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(p, k, w)
JOIN order_routed r ON r.project_id = u.p AND r.ordering_key = u.k AND r.seq > u.w
ORDER BY r.project_id, r.ordering_key, r.seq`

	sqlSetWatermarks = `UPDATE order_keys AS o SET routed_through = u.w
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(p, k, w)
WHERE o.project_id = u.p AND o.ordering_key = u.k`

	sqlDropRouted = `DELETE FROM order_routed AS r
USING unnest($1::text[], $2::text[], $3::bigint[]) AS u(p, k, w)
WHERE r.project_id = u.p AND r.ordering_key = u.k AND r.seq <= u.w`

	sqlEndLines = `DELETE FROM order_lines AS l
USING unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(p, k, e, s)
WHERE l.project_id = u.p AND l.ordering_key = u.k AND l.endpoint_id = u.e AND l.seq = u.s`

	// sqlFreedLines returns the lines with a delivery in a seq range of
	// their key, (lo, hi]: those a watermark move from lo to hi-1 may free.
	sqlFreedLines = `SELECT DISTINCT l.project_id, l.ordering_key, l.endpoint_id
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(p, k, lo, hi)
JOIN order_lines l ON l.project_id = u.p AND l.ordering_key = u.k AND l.seq > u.lo AND l.seq <= u.hi`

	// sqlLineHeads returns the first delivery of each line.
	sqlLineHeads = `SELECT h.project_id, h.ordering_key, h.endpoint_id, h.seq, h.task, h.released
FROM unnest($1::text[], $2::text[], $3::text[]) AS u(p, k, e)
CROSS JOIN LATERAL (SELECT * FROM order_lines l
	WHERE l.project_id = u.p AND l.ordering_key = u.k AND l.endpoint_id = u.e
	ORDER BY l.seq LIMIT 1) AS h`

	sqlReleaseLines = `UPDATE order_lines AS l SET released = true, release_time = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(p, k, e, s)
WHERE l.project_id = u.p AND l.ordering_key = u.k AND l.endpoint_id = u.e AND l.seq = u.s`

	sqlMarkSent = `UPDATE order_lines SET sent = true WHERE delivery_id = ANY($1::text[]) AND released`

	// sqlUnsent locks the released tasks older than $1 whose confirm was
	// not recorded (their publish failed, or the process died first).
	sqlUnsent = `SELECT delivery_id, task FROM order_lines
WHERE released AND NOT sent AND release_time < $1
ORDER BY release_time LIMIT $2 FOR UPDATE SKIP LOCKED`
)

// advanceLines runs a batch's line step in one transaction: it locks the
// keys, records the new routes and their waiting deliveries, moves the
// watermarks, takes ended deliveries out of their lines, and releases the
// first delivery of each line it touched whose turn has come. After the
// commit it publishes the released tasks and records that the broker
// confirmed them; a task whose publish fails, or whose process dies first,
// is sent by sendUnsent. The transaction never waits for the broker.
func (s *pgStore) advanceLines(ctx context.Context, step *lineStep, publish func(context.Context, []*busv1.DeliveryTask) error) ([]*busv1.DeliveryTask, error) {
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	var released []*busv1.DeliveryTask
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		marks, err := lockKeys(ctx, tx, step.keys())
		if err != nil {
			return err
		}
		touched, err := recordRoutes(ctx, tx, step.routes, marks)
		if err != nil {
			return err
		}
		ended, err := endLines(ctx, tx, step.ended)
		if err != nil {
			return err
		}
		released, err = releaseHeads(ctx, tx, append(touched, ended...), marks)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(released) > 0 {
		s.send(ctx, released, publish)
	}
	return released, nil
}

// send publishes released tasks and records that they were confirmed; on
// failure it leaves them to sendUnsent.
func (s *pgStore) send(ctx context.Context, tasks []*busv1.DeliveryTask, publish func(context.Context, []*busv1.DeliveryTask) error) {
	if err := publish(ctx, tasks); err != nil {
		return
	}
	ids := make([]string, len(tasks))
	for i, t := range tasks {
		ids[i] = t.GetDeliveryId()
	}
	_, _ = s.pool.Exec(ctx, sqlMarkSent, ids)
}

// sendUnsent publishes, at most limit at a time, the released tasks older
// than before that were not confirmed, and records them sent; it returns
// how many it sent. Rows are locked while they are sent, so that status
// replicas do not send the same ones.
func (s *pgStore) sendUnsent(ctx context.Context, before time.Time, limit int, publish func(context.Context, []*busv1.DeliveryTask) error) (int, error) {
	ctx, cancel := pgCtx(ctx)
	defer cancel()
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sqlUnsent, before, limit)
		if err != nil {
			return err
		}
		var ids []string
		var tasks []*busv1.DeliveryTask
		var id string
		var raw []byte
		if _, err := pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
			var t busv1.DeliveryTask
			if err := proto.Unmarshal(raw, &t); err != nil {
				return fmt.Errorf("decode the task of delivery %s: %w", id, err)
			}
			ids, tasks = append(ids, id), append(tasks, &t)
			return nil
		}); err != nil {
			return err
		}
		if len(tasks) == 0 {
			return nil
		}
		if err := publish(ctx, tasks); err != nil {
			return err
		}
		n = len(tasks)
		_, err = tx.Exec(ctx, sqlMarkSent, ids)
		return err
	})
	return n, err
}

// lockKeys creates the keys' rows if need be, locks them, and returns
// their watermarks.
func lockKeys(ctx context.Context, tx pgx.Tx, keys []lineKey) (map[lineKey]int64, error) {
	projects, names := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		projects[i], names[i] = k.project, k.key
	}
	if _, err := tx.Exec(ctx, sqlEnsureKeys, projects, names); err != nil {
		return nil, fmt.Errorf("create ordering keys: %w", err)
	}
	rows, err := tx.Query(ctx, sqlLockKeys, projects, names)
	if err != nil {
		return nil, fmt.Errorf("lock ordering keys: %w", err)
	}
	marks := make(map[lineKey]int64, len(keys))
	var k lineKey
	var w int64
	_, err = pgx.ForEachRow(rows, []any{&k.project, &k.key, &w}, func() error {
		marks[k] = w
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lock ordering keys: %w", err)
	}
	return marks, nil
}

// recordRoutes records the routes not recorded yet, inserts their waiting
// deliveries in their lines and moves the watermarks; it returns the lines
// the move may have freed.
func recordRoutes(ctx context.Context, tx pgx.Tx, routes []*busv1.OrderedRoute, marks map[lineKey]int64) ([]lineOf, error) {
	var projects, keys []string
	var seqs []int64
	for _, r := range routes {
		if int64(r.GetOrderingSeq()) <= marks[lineKey{r.GetProjectId(), r.GetOrderingKey()}] {
			continue // recorded and passed long ago
		}
		projects, keys, seqs = append(projects, r.GetProjectId()), append(keys, r.GetOrderingKey()), append(seqs, int64(r.GetOrderingSeq()))
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, sqlInsertRouted, projects, keys, seqs)
	if err != nil {
		return nil, fmt.Errorf("record routes: %w", err)
	}
	fresh := map[lineKey]map[int64]bool{}
	var k lineKey
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&k.project, &k.key, &seq}, func() error {
		if fresh[k] == nil {
			fresh[k] = map[int64]bool{}
		}
		fresh[k][seq] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("record routes: %w", err)
	}
	if err := insertLines(ctx, tx, routes, fresh); err != nil {
		return nil, err
	}
	return moveWatermarks(ctx, tx, marks)
}

// insertLines inserts the waiting deliveries of the fresh routes.
func insertLines(ctx context.Context, tx pgx.Tx, routes []*busv1.OrderedRoute, fresh map[lineKey]map[int64]bool) error {
	var projects, keys, endpoints, deliveries []string
	var seqs []int64
	var tasks [][]byte
	for _, r := range routes {
		if !fresh[lineKey{r.GetProjectId(), r.GetOrderingKey()}][int64(r.GetOrderingSeq())] {
			continue
		}
		for _, c := range r.GetDeliveries() {
			if c.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_WAITING {
				continue
			}
			b, err := proto.Marshal(c.GetTask())
			if err != nil {
				return fmt.Errorf("marshal task of delivery %s: %w", c.GetDeliveryId(), err)
			}
			projects, keys, endpoints = append(projects, r.GetProjectId()), append(keys, r.GetOrderingKey()), append(endpoints, c.GetEndpointId())
			seqs, deliveries, tasks = append(seqs, int64(r.GetOrderingSeq())), append(deliveries, c.GetDeliveryId()), append(tasks, b)
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, sqlInsertLines, projects, keys, endpoints, seqs, deliveries, tasks); err != nil {
		return fmt.Errorf("insert %d deliveries in lines: %w", len(seqs), err)
	}
	return nil
}

// moveWatermarks moves each key's watermark over the routes recorded
// without a gap above it, updates marks, and returns the lines with a
// delivery after the old watermark up to the new one +1: the deliveries
// whose turn the move may have brought.
func moveWatermarks(ctx context.Context, tx pgx.Tx, marks map[lineKey]int64) ([]lineOf, error) {
	var projects, keys []string
	var olds []int64
	for k, w := range marks {
		projects, keys, olds = append(projects, k.project), append(keys, k.key), append(olds, w)
	}
	rows, err := tx.Query(ctx, sqlRoutedAbove, projects, keys, olds)
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	next := make(map[lineKey]int64, len(marks))
	var k lineKey
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&k.project, &k.key, &seq}, func() error {
		w, ok := next[k]
		if !ok {
			w = marks[k]
		}
		if seq == w+1 {
			next[k] = seq
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	if len(next) == 0 {
		return nil, nil
	}
	var ps, ks []string
	var los, ws, his []int64
	for k, w := range next {
		ps, ks, los, ws, his = append(ps, k.project), append(ks, k.key), append(los, marks[k]), append(ws, w), append(his, w+1)
		marks[k] = w
	}
	if _, err := tx.Exec(ctx, sqlSetWatermarks, ps, ks, ws); err != nil {
		return nil, fmt.Errorf("move watermarks: %w", err)
	}
	if _, err := tx.Exec(ctx, sqlDropRouted, ps, ks, ws); err != nil {
		return nil, fmt.Errorf("drop passed routes: %w", err)
	}
	rows, err = tx.Query(ctx, sqlFreedLines, ps, ks, los, his)
	if err != nil {
		return nil, fmt.Errorf("find freed lines: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (lineOf, error) {
		var l lineOf
		err := row.Scan(&l.project, &l.key, &l.endpoint)
		return l, err
	})
}

// endLines takes ended deliveries out of their lines and returns those
// lines.
func endLines(ctx context.Context, tx pgx.Tx, ended []*busv1.StateChange) ([]lineOf, error) {
	if len(ended) == 0 {
		return nil, nil
	}
	var projects, keys, endpoints []string
	var seqs []int64
	var lines []lineOf
	for _, c := range ended {
		projects, keys, endpoints = append(projects, c.GetProjectId()), append(keys, c.GetOrderingKey()), append(endpoints, c.GetEndpointId())
		seqs = append(seqs, int64(c.GetOrderingSeq()))
		lines = append(lines, lineOf{c.GetProjectId(), c.GetOrderingKey(), c.GetEndpointId()})
	}
	if _, err := tx.Exec(ctx, sqlEndLines, projects, keys, endpoints, seqs); err != nil {
		return nil, fmt.Errorf("take %d ended deliveries out of their lines: %w", len(seqs), err)
	}
	return lines, nil
}

// releaseHeads releases the first delivery of each of lines whose turn
// has come (not released yet, every earlier event of its key routed) and
// returns their tasks.
func releaseHeads(ctx context.Context, tx pgx.Tx, lines []lineOf, marks map[lineKey]int64) ([]*busv1.DeliveryTask, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	seen := make(map[lineOf]bool, len(lines))
	var projects, keys, endpoints []string
	for _, l := range lines {
		if !seen[l] {
			seen[l] = true
			projects, keys, endpoints = append(projects, l.project), append(keys, l.key), append(endpoints, l.endpoint)
		}
	}
	rows, err := tx.Query(ctx, sqlLineHeads, projects, keys, endpoints)
	if err != nil {
		return nil, fmt.Errorf("read the heads of %d lines: %w", len(projects), err)
	}
	var tasks []*busv1.DeliveryTask
	var rp, rk, re []string
	var rs []int64
	var l lineOf
	var seq int64
	var task []byte
	var wasReleased bool
	if _, err := pgx.ForEachRow(rows, []any{&l.project, &l.key, &l.endpoint, &seq, &task, &wasReleased}, func() error {
		if wasReleased || seq-1 > marks[lineKey{l.project, l.key}] {
			return nil
		}
		var t busv1.DeliveryTask
		if err := proto.Unmarshal(task, &t); err != nil {
			return fmt.Errorf("decode the task of line %s/%s seq %d: %w", l.key, l.endpoint, seq, err)
		}
		tasks = append(tasks, &t)
		rp, rk, re, rs = append(rp, l.project), append(rk, l.key), append(re, l.endpoint), append(rs, seq)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the heads of %d lines: %w", len(projects), err)
	}
	if len(tasks) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, sqlReleaseLines, rp, rk, re, rs); err != nil {
		return nil, fmt.Errorf("release %d deliveries: %w", len(tasks), err)
	}
	return tasks, nil
}

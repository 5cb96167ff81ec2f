package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookmesh/hookmesh/internal/groupcommit"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/pgdb"
)

// pgSchema creates ingest's tables in PostgreSQL.
//
// events is the event list. Every page of ListEvents is one range of one
// index, newest first, whatever its filters: (project_id, create_time,
// id) for the project and the time range, and one more with each equality
// filter in between. A page never sorts and never reads what it does not
// return, however long the history.
//
// claims reserves an idempotency key: its primary key makes the claim a
// plain insert that exactly one request wins.
//
// outbox holds the original events the broker has not confirmed yet: a row
// is inserted with its event, in the same statement, and deleted once the
// broker confirms it. It stays as small as what is in flight, so the
// sweeper reads only what it has to publish. (A published flag on events
// would rewrite the event and every index of it on each confirm.)
//
// ordering_keys holds, for each ordering key of a project, the number of
// its events stored so far: the last ordering_seq given. It is bumped in
// the transaction that stores the events, so a key's numbers have no gap
// and follow the order in which the events were committed (the row's lock
// holds a second batch of the key until the first commits). Its rows
// outlive the pruned events: a key's line goes on from where it was.
var pgSchema = []string{
	`CREATE TABLE IF NOT EXISTS events (
	id text PRIMARY KEY,
	project_id text NOT NULL,
	event_type text NOT NULL,
	data bytea,
	custom_headers jsonb,
	idempotency_key text NOT NULL,
	endpoint_id text NOT NULL,
	owner_id text NOT NULL,
	broadcast boolean NOT NULL,
	is_duplicate boolean NOT NULL,
	duplicate_of text NOT NULL,
	create_time timestamptz NOT NULL,
	ordering_key text NOT NULL DEFAULT '',
	ordering_seq bigint NOT NULL DEFAULT 0
)`,
	// For the tables made before events had ordering keys.
	`ALTER TABLE events ADD COLUMN IF NOT EXISTS ordering_key text NOT NULL DEFAULT ''`,
	`ALTER TABLE events ADD COLUMN IF NOT EXISTS ordering_seq bigint NOT NULL DEFAULT 0`,
	`CREATE INDEX IF NOT EXISTS events_by_time ON events (project_id, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS events_by_type ON events (project_id, event_type, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS events_by_endpoint ON events (project_id, endpoint_id, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS events_by_owner ON events (project_id, owner_id, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS events_by_key ON events (project_id, idempotency_key, create_time DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS events_by_duplicate ON events (project_id, is_duplicate, create_time DESC, id DESC)`,
	`CREATE TABLE IF NOT EXISTS claims (
	project_id text NOT NULL,
	key text NOT NULL,
	event_id text NOT NULL,
	create_time timestamptz NOT NULL,
	PRIMARY KEY (project_id, key)
)`,
	// The pruner finds a project's old claims by this index.
	`CREATE INDEX IF NOT EXISTS claims_by_time ON claims (project_id, create_time)`,
	`CREATE TABLE IF NOT EXISTS outbox (
	id text PRIMARY KEY,
	create_time timestamptz NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS outbox_by_time ON outbox (create_time)`,
	`CREATE TABLE IF NOT EXISTS ordering_keys (
	project_id text NOT NULL,
	ordering_key text NOT NULL,
	seq bigint NOT NULL,
	PRIMARY KEY (project_id, ordering_key)
)`,
}

// pgStatements are the statements the PostgreSQL store issues, all of them:
// a test checks each one's plan.
var pgStatements = []string{pgInsertEvents, pgBumpOrderingKeys, pgSetOrderingSeqs, pgInsertClaims, pgGetClaim, pgGetEvent, pgMarkPublished, pgPublished, pgUnpublished,
	pgPruneClaims, pgPruneEvents, pgListAll, pgListByType, pgListByEndpoint, pgListByOwner, pgListByKey, pgListByDuplicate}

const (
	// pgInsertEvents inserts a batch of events, and the outbox rows of the
	// originals among them, in one statement; it returns the ids it
	// inserted (an id that exists is skipped).
	pgInsertEvents = `WITH ins AS (
	INSERT INTO events (id, project_id, event_type, data, custom_headers, idempotency_key, endpoint_id, owner_id, broadcast, is_duplicate, duplicate_of, create_time, ordering_key)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[], $6::text[], $7::text[], $8::text[], $9::boolean[], $10::boolean[], $11::text[], $12::timestamptz[], $13::text[])
	ON CONFLICT (id) DO NOTHING
	RETURNING id, is_duplicate, create_time
), queued AS (
	INSERT INTO outbox (id, create_time) SELECT id, create_time FROM ins WHERE NOT is_duplicate
)
SELECT id FROM ins`

	// pgBumpOrderingKeys adds to the count of each (project, key) the
	// number of its events a batch stored, and returns the new counts. The
	// keys come sorted, so that two batches lock their rows in the same
	// order.
	pgBumpOrderingKeys = `INSERT INTO ordering_keys (project_id, ordering_key, seq)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT (project_id, ordering_key) DO UPDATE SET seq = ordering_keys.seq + EXCLUDED.seq
RETURNING project_id, ordering_key, seq`

	// pgSetOrderingSeqs writes the numbers given to a batch's events.
	pgSetOrderingSeqs = `UPDATE events e SET ordering_seq = x.seq
FROM unnest($1::text[], $2::bigint[]) AS x(id, seq)
WHERE e.id = x.id`

	// pgInsertClaims inserts a batch of claims and returns the event ids of
	// those that won.
	pgInsertClaims = `INSERT INTO claims (project_id, key, event_id, create_time)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
ON CONFLICT (project_id, key) DO NOTHING
RETURNING event_id`

	// pgGetClaim reads the claim that won.
	pgGetClaim = `SELECT event_id, create_time FROM claims WHERE project_id = $1 AND key = $2`

	pgGetEvent = `SELECT ` + pgEventColumns + ` FROM events WHERE id = $1 AND project_id = $2`

	// pgMarkPublished empties the outbox of a batch of confirmed events.
	pgMarkPublished = `DELETE FROM outbox WHERE id = ANY($1)`

	pgPublished = `SELECT e.id FROM events e WHERE e.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = e.id)`

	pgUnpublished = `SELECT ` + pgEventColumnsOf + ` FROM outbox o JOIN events e ON e.id = o.id
WHERE o.create_time >= $1 AND o.create_time < $2 AND NOT e.is_duplicate ORDER BY e.id`

	// The list statements take the same parameters: $1 project, $2 event
	// type, $3 endpoint, $4 owner, $5 idempotency key ('' for any), $6
	// is_duplicate (NULL for any), $7 and $8 the time range (-infinity and
	// infinity when open), $9 the id of the last event of the previous page
	// ('' for the first page) and $10 its create_time if it cannot be read
	// (infinity for the first page), $11 the page size. Each one is the
	// range of the index of its mandatory filter; the other filters are
	// checked on the rows of that range.
	pgListAll         = pgListHead + pgListType + pgListEndpoint + pgListOwner + pgListKey + pgListDuplicate + pgListTail
	pgListByType      = pgListHead + `AND event_type = $2 ` + pgListEndpoint + pgListOwner + pgListKey + pgListDuplicate + pgListTail
	pgListByEndpoint  = pgListHead + pgListType + `AND endpoint_id = $3 ` + pgListOwner + pgListKey + pgListDuplicate + pgListTail
	pgListByOwner     = pgListHead + pgListType + pgListEndpoint + `AND owner_id = $4 ` + pgListKey + pgListDuplicate + pgListTail
	pgListByKey       = pgListHead + pgListType + pgListEndpoint + pgListOwner + `AND idempotency_key = $5 ` + pgListDuplicate + pgListTail
	pgListByDuplicate = pgListHead + pgListType + pgListEndpoint + pgListOwner + pgListKey + `AND is_duplicate = $6 ` + pgListTail

	pgListHead      = `SELECT ` + pgEventColumns + ` FROM events WHERE project_id = $1 `
	pgListType      = `AND ($2 = '' OR event_type = $2) `
	pgListEndpoint  = `AND ($3 = '' OR endpoint_id = $3) `
	pgListOwner     = `AND ($4 = '' OR owner_id = $4) `
	pgListKey       = `AND ($5 = '' OR idempotency_key = $5) `
	pgListDuplicate = `AND ($6::boolean IS NULL OR is_duplicate = $6) `
	pgListTail      = `AND create_time >= $7 AND create_time < $8
AND (create_time, id) < (COALESCE((SELECT c.create_time FROM events c WHERE c.id = $9 AND c.project_id = $1), $10), $9)
ORDER BY create_time DESC, id DESC LIMIT $11`

	// pgPageSettings runs before a list statement, in its transaction: a
	// page is always read in the order of its index. Left to itself the
	// planner gathers the rows of a range it believes small and sorts
	// them, and when that belief is wrong (a generic plan of a prepared
	// statement, statistics behind the data) it sorts a project's whole
	// history to return fifty events.
	pgPageSettings = `SELECT set_config('enable_sort', 'off', true)`

	pgEventColumns   = `id, project_id, event_type, data, custom_headers, idempotency_key, endpoint_id, owner_id, broadcast, is_duplicate, duplicate_of, create_time, ordering_key, ordering_seq`
	pgEventColumnsOf = `e.id, e.project_id, e.event_type, e.data, e.custom_headers, e.idempotency_key, e.endpoint_id, e.owner_id, e.broadcast, e.is_duplicate, e.duplicate_of, e.create_time, e.ordering_key, e.ordering_seq`
)

// pgStore keeps events in PostgreSQL. Inserts from concurrent requests are
// written together, one statement a batch (groupcommit): each request
// still waits for its own event to be durable.
type pgStore struct {
	pool    *pgxpool.Pool
	events  *groupcommit.Group[*eventDoc, error]
	claims  *groupcommit.Group[pgClaim, bool]
	markers *groupcommit.Group[string, struct{}]
}

type pgClaim struct {
	projectID, key, eventID string
	time                    time.Time
}

// NewPostgresStore returns a Store keeping events in pool's schema (see
// pgdb.Open).
func NewPostgresStore(pool *pgxpool.Pool) Store {
	s := &pgStore{pool: pool}
	s.events = groupcommit.New(3, 256, pgdb.Timeout, s.writeEvents)
	s.claims = groupcommit.New(2, 256, pgdb.Timeout, s.writeClaims)
	s.markers = groupcommit.New(1, 512, pgdb.Timeout, s.writeMarks)
	return s
}

func (s *pgStore) init(ctx context.Context) error {
	return pgdb.Migrate(ctx, s.pool, "ingest", pgSchema)
}

func (s *pgStore) close() {
	s.events.Close()
	s.claims.Close()
	s.markers.Close()
}

func (s *pgStore) claim(ctx context.Context, projectID, key, eventID string, now time.Time) (string, time.Time, error) {
	won, err := s.claims.Do(ctx, pgClaim{projectID: projectID, key: key, eventID: eventID, time: now})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	if won {
		return "", time.Time{}, nil
	}
	var orig string
	var at time.Time
	if err := s.pool.QueryRow(ctx, pgGetClaim, projectID, key).Scan(&orig, &at); err != nil {
		return "", time.Time{}, fmt.Errorf("read idempotency claim: %w", err)
	}
	return orig, at.UTC(), nil
}

// writeClaims inserts a batch of claims; the first of a key in the batch
// is the one that may win.
func (s *pgStore) writeClaims(ctx context.Context, batch []pgClaim) ([]bool, error) {
	type claimKey struct{ project, key string }
	first := make(map[claimKey]int, len(batch))
	var projects, keys, events []string
	var times []time.Time
	for i, c := range batch {
		k := claimKey{c.projectID, c.key}
		if _, seen := first[k]; seen {
			continue
		}
		first[k] = i
		projects, keys, events, times = append(projects, c.projectID), append(keys, c.key), append(events, c.eventID), append(times, c.time)
	}
	rows, err := s.pool.Query(ctx, pgInsertClaims, projects, keys, events, times)
	if err != nil {
		return nil, err
	}
	wonBy, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	won := make(map[string]bool, len(wonBy))
	for _, id := range wonBy {
		won[id] = true
	}
	out := make([]bool, len(batch))
	for i, c := range batch {
		out[i] = first[claimKey{c.projectID, c.key}] == i && won[c.eventID]
	}
	return out, nil
}

// orders is true: insertEvents numbers the keyed events in the
// transaction that stores them.
func (s *pgStore) orders() bool { return true }

func (s *pgStore) insert(ctx context.Context, doc *eventDoc) error {
	outcome, err := s.events.Do(ctx, doc)
	if err == nil {
		err = outcome
	}
	if err != nil && !errors.Is(err, errDuplicate) {
		return fmt.Errorf("store event: %w", err)
	}
	return err
}

// pgChunkBytes bounds the payloads of one insert statement: a batch of
// large events is written as several statements.
const pgChunkBytes = 8 << 20

// writeEvents inserts a batch of events and returns each one's outcome:
// nil when it was stored, errDuplicate when its id exists (of the same id
// twice in the batch, the first is the one that may be stored).
func (s *pgStore) writeEvents(ctx context.Context, batch []*eventDoc) ([]error, error) {
	out := make([]error, len(batch))
	first := make(map[string]int, len(batch))
	var chunk []int
	size := 0
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		stored, err := s.insertEvents(ctx, batch, chunk)
		for _, i := range chunk {
			switch {
			case err != nil:
				out[i] = err
			case !stored[batch[i].ID]:
				out[i] = errDuplicate
			}
		}
		chunk, size = chunk[:0], 0
	}
	for i, d := range batch {
		if _, seen := first[d.ID]; seen {
			out[i] = errDuplicate
			continue
		}
		first[d.ID] = i
		if size+len(d.Data) > pgChunkBytes {
			flush()
		}
		chunk = append(chunk, i)
		size += len(d.Data)
	}
	flush()
	return out, nil
}

// insertEvents inserts the events of batch at indexes and returns the ids
// it stored. Without an ordering key among them it is one statement; with
// one, a transaction that also numbers the keyed originals it stored (see
// numberEvents).
func (s *pgStore) insertEvents(ctx context.Context, batch []*eventDoc, indexes []int) (map[string]bool, error) {
	args, keyed, err := insertArgs(batch, indexes)
	if err != nil {
		return nil, err
	}
	if !keyed {
		rows, err := s.pool.Query(ctx, pgInsertEvents, args...)
		if err != nil {
			return nil, err
		}
		return collectStored(rows)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, pgInsertEvents, args...)
	if err != nil {
		return nil, err
	}
	stored, err := collectStored(rows)
	if err != nil {
		return nil, err
	}
	seqs, err := numberEvents(ctx, tx, batch, indexes, stored)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	for i, seq := range seqs {
		batch[i].OrderingSeq = seq
	}
	return stored, nil
}

// insertArgs are the parameters of pgInsertEvents for the events of batch
// at indexes; keyed says whether one of them has an ordering key.
func insertArgs(batch []*eventDoc, indexes []int) ([]any, bool, error) {
	var (
		idCol, projects, types, keys, endpoints, owners, dupOf, orderingKeys []string
		data, headers                                                        [][]byte
		broadcast, dup                                                       []bool
		times                                                                []time.Time
	)
	keyed := false
	for _, i := range indexes {
		d := batch[i]
		var h []byte
		if len(d.CustomHeaders) > 0 {
			var err error
			if h, err = json.Marshal(d.CustomHeaders); err != nil {
				return nil, false, err
			}
		}
		idCol, projects, types = append(idCol, d.ID), append(projects, d.ProjectID), append(types, d.EventType)
		data, headers = append(data, d.Data), append(headers, h)
		keys, endpoints, owners = append(keys, d.IdempotencyKey), append(endpoints, d.EndpointID), append(owners, d.OwnerID)
		broadcast, dup, dupOf = append(broadcast, d.Broadcast), append(dup, d.IsDuplicate), append(dupOf, d.DuplicateOf)
		times, orderingKeys = append(times, d.CreateTime), append(orderingKeys, d.OrderingKey)
		keyed = keyed || d.OrderingKey != ""
	}
	return []any{idCol, projects, types, data, headers, keys, endpoints, owners, broadcast, dup, dupOf, times, orderingKeys}, keyed, nil
}

// collectStored reads the ids pgInsertEvents returns.
func collectStored(rows pgx.Rows) (map[string]bool, error) {
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	stored := make(map[string]bool, len(ids))
	for _, id := range ids {
		stored[id] = true
	}
	return stored, nil
}

// orderingLine is an ordering key of a project.
type orderingLine struct{ project, key string }

// numberEvents gives the next numbers of their keys, in batch order, to the
// originals with an ordering key that tx stored (an id that existed
// already takes no number: a gap would hold the key's line forever), and
// writes them to the events. It returns the numbers by index in batch.
func numberEvents(ctx context.Context, tx pgx.Tx, batch []*eventDoc, indexes []int, stored map[string]bool) (map[int]uint64, error) {
	var numbered []int
	counts := map[orderingLine]int64{}
	for _, i := range indexes {
		d := batch[i]
		if d.OrderingKey != "" && !d.IsDuplicate && stored[d.ID] {
			numbered = append(numbered, i)
			counts[orderingLine{d.ProjectID, d.OrderingKey}]++
		}
	}
	if len(numbered) == 0 {
		return nil, nil
	}
	next, err := bumpOrderingKeys(ctx, tx, counts)
	if err != nil {
		return nil, err
	}
	seqs := make(map[int]uint64, len(numbered))
	ids, values := make([]string, 0, len(numbered)), make([]int64, 0, len(numbered))
	for _, i := range numbered {
		line := orderingLine{batch[i].ProjectID, batch[i].OrderingKey}
		seq := next[line]
		next[line]++
		seqs[i] = uint64(seq)
		ids, values = append(ids, batch[i].ID), append(values, seq)
	}
	if _, err := tx.Exec(ctx, pgSetOrderingSeqs, ids, values); err != nil {
		return nil, fmt.Errorf("number events: %w", err)
	}
	return seqs, nil
}

// bumpOrderingKeys adds counts to the keys' counts and returns, for each
// key, the first number of this batch's events.
func bumpOrderingKeys(ctx context.Context, tx pgx.Tx, counts map[orderingLine]int64) (map[orderingLine]int64, error) {
	lines := slices.SortedFunc(maps.Keys(counts), func(a, b orderingLine) int {
		return cmp.Or(strings.Compare(a.project, b.project), strings.Compare(a.key, b.key))
	})
	projects, keys, adds := make([]string, len(lines)), make([]string, len(lines)), make([]int64, len(lines))
	for i, l := range lines {
		projects[i], keys[i], adds[i] = l.project, l.key, counts[l]
	}
	rows, err := tx.Query(ctx, pgBumpOrderingKeys, projects, keys, adds)
	if err != nil {
		return nil, fmt.Errorf("number events: %w", err)
	}
	next := make(map[orderingLine]int64, len(lines))
	var l orderingLine
	var last int64
	_, err = pgx.ForEachRow(rows, []any{&l.project, &l.key, &last}, func() error {
		next[l] = last - counts[l] + 1
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("number events: %w", err)
	}
	if len(next) != len(lines) {
		return nil, fmt.Errorf("number events: %d of %d ordering keys counted", len(next), len(lines))
	}
	return next, nil
}

func (s *pgStore) get(ctx context.Context, projectID, id string) (*eventDoc, error) {
	rows, err := s.pool.Query(ctx, pgGetEvent, id, projectID)
	if err != nil {
		return nil, fmt.Errorf("load event %s: %w", id, err)
	}
	docs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("load event %s: %w", id, err)
	}
	if len(docs) == 0 {
		return nil, nil
	}
	return &docs[0], nil
}

// listStatement picks the statement whose index serves f: that of its most
// selective equality filter.
func listStatement(f listFilter) string {
	switch {
	case f.idempotencyKey != "":
		return pgListByKey
	case f.endpointID != "":
		return pgListByEndpoint
	case f.ownerID != "":
		return pgListByOwner
	case f.eventType != "":
		return pgListByType
	case f.duplicate != nil:
		return pgListByDuplicate
	default:
		return pgListAll
	}
}

// listArgs are the parameters of the list statements.
func listArgs(f listFilter) []any {
	start := pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	if !f.start.IsZero() {
		start = pgtype.Timestamptz{Time: f.start, Valid: true}
	}
	end := pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	if !f.end.IsZero() {
		end = pgtype.Timestamptz{Time: f.end, Valid: true}
	}
	// The create_time of the previous page's last event is read in the
	// statement; this stands in only when that event cannot be found (a
	// token from elsewhere), from the time in its id.
	after := pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	if f.before != "" {
		if t, ok := ids.Time(f.before); ok {
			after = pgtype.Timestamptz{Time: t, Valid: true}
		}
	}
	return []any{f.projectID, f.eventType, f.endpointID, f.ownerID, f.idempotencyKey, f.duplicate, start, end, f.before, after, f.limit}
}

func (s *pgStore) list(ctx context.Context, f listFilter) ([]eventDoc, error) {
	// One round trip: the batch is one implicit transaction, which the
	// setting lasts for.
	b := &pgx.Batch{}
	b.Queue(pgPageSettings)
	b.Queue(listStatement(f), listArgs(f)...)
	res := s.pool.SendBatch(ctx, b)
	defer func() { _ = res.Close() }()
	if _, err := res.Exec(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	rows, err := res.Query()
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	docs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	if err := res.Close(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return docs, nil
}

func (s *pgStore) markPublished(ctx context.Context, eventID string) error {
	if _, err := s.markers.Do(ctx, eventID); err != nil {
		return fmt.Errorf("mark event %s published: %w", eventID, err)
	}
	return nil
}

func (s *pgStore) writeMarks(ctx context.Context, batch []string) ([]struct{}, error) {
	if _, err := s.pool.Exec(ctx, pgMarkPublished, batch); err != nil {
		return nil, err
	}
	return make([]struct{}, len(batch)), nil
}

func (s *pgStore) published(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, pgPublished, ids)
	if err != nil {
		return nil, fmt.Errorf("read publish markers: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read publish markers: %w", err)
	}
	for _, id := range done {
		out[id] = true
	}
	return out, nil
}

func (s *pgStore) unpublishedSince(ctx context.Context, from, to time.Time) ([]eventDoc, error) {
	rows, err := s.pool.Query(ctx, pgUnpublished, from, to)
	if err != nil {
		return nil, fmt.Errorf("find events to sweep: %w", err)
	}
	docs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("find events to sweep: %w", err)
	}
	return docs, nil
}

// scanEvent reads a row of pgEventColumns.
func scanEvent(row pgx.CollectableRow) (eventDoc, error) {
	var d eventDoc
	var headers []byte
	var seq int64
	err := row.Scan(&d.ID, &d.ProjectID, &d.EventType, &d.Data, &headers, &d.IdempotencyKey, &d.EndpointID, &d.OwnerID,
		&d.Broadcast, &d.IsDuplicate, &d.DuplicateOf, &d.CreateTime, &d.OrderingKey, &seq)
	if err != nil {
		return d, err
	}
	d.OrderingSeq = uint64(seq)
	if len(headers) > 0 {
		if err := json.Unmarshal(headers, &d.CustomHeaders); err != nil {
			return d, fmt.Errorf("event %s: custom headers: %w", d.ID, err)
		}
	}
	d.CreateTime = d.CreateTime.UTC()
	return d, nil
}

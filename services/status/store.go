package status

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/types/known/timestamppb"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/retention"
	"github.com/hookmesh/hookmesh/internal/store"
)

// Collection names in the status database.
const (
	deliveriesCollection = "deliveries"
	attemptsCollection   = "attempts"
)

// deliveryDoc is a delivery as stored. seq orders the changes applied to it
// (see seqOf); create_time never changes once the document exists.
type deliveryDoc struct {
	ID              string     `bson:"_id"`
	ProjectID       string     `bson:"project_id"`
	EventID         string     `bson:"event_id"`
	EndpointID      string     `bson:"endpoint_id"`
	EventType       string     `bson:"event_type"`
	Status          int32      `bson:"status"`
	Seq             int64      `bson:"seq"`
	Attempts        int64      `bson:"attempts"`
	CreateTime      time.Time  `bson:"create_time"`
	UpdateTime      time.Time  `bson:"update_time"`
	NextAttemptTime *time.Time `bson:"next_attempt_time,omitempty"`
	LastStatusCode  int32      `bson:"last_status_code,omitempty"`
	LastError       string     `bson:"last_error,omitempty"`
	OrderingKey     string     `bson:"ordering_key,omitempty"`
}

// attemptDoc is one HTTP request of a delivery as stored. Its _id is
// attemptID(delivery, attempt), so inserting it twice is a no-op.
type attemptDoc struct {
	ID              string      `bson:"_id"`
	DeliveryID      string      `bson:"delivery_id"`
	ProjectID       string      `bson:"project_id"`
	Attempt         int64       `bson:"attempt"`
	StatusCode      int32       `bson:"status_code"`
	LatencyMS       int64       `bson:"latency_ms"`
	RequestHeaders  []headerDoc `bson:"request_headers,omitempty"`
	ResponseHeaders []headerDoc `bson:"response_headers,omitempty"`
	ResponseBody    string      `bson:"response_body,omitempty"`
	Error           string      `bson:"error,omitempty"`
	RemoteIP        string      `bson:"remote_ip,omitempty"`
	StartTime       *time.Time  `bson:"start_time,omitempty"`
	URL             string      `bson:"url,omitempty"`
	// EndpointID is the delivery's endpoint, for the statistics.
	EndpointID string `bson:"endpoint_id,omitempty"`
	// changeTime is when the change that carried the attempt happened: the
	// attempt is counted then when it has no start time.
	changeTime time.Time
}

// statTime is the time an attempt is counted at in the statistics.
func (a *attemptDoc) statTime() time.Time {
	if a.StartTime != nil {
		return *a.StartTime
	}
	return a.changeTime
}

// headerDoc is one header. Headers are stored as a list of name/value pairs,
// not as a sub-document keyed by name: HTTP allows '.' and a leading '$' in
// header names, which MongoDB and FerretDB refuse as field names, and one
// such response header would otherwise make the attempt impossible to store
// (and its state change impossible to ever acknowledge).
type headerDoc struct {
	Name  string `bson:"name"`
	Value string `bson:"value"`
}

// attemptID is the deterministic _id of an attempt. The number is padded so
// that ids sort in attempt order.
func attemptID(deliveryID string, attempt uint32) string {
	return fmt.Sprintf("%s:%010d", deliveryID, attempt)
}

// storeTime converts a time to what BSON keeps (UTC milliseconds), so that a
// value read back compares equal to the one written: page tokens rely on it.
func storeTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Millisecond)
}

func headersToDocs(h map[string]string) []headerDoc {
	if len(h) == 0 {
		return nil
	}
	out := make([]headerDoc, 0, len(h))
	for k, v := range h {
		out = append(out, headerDoc{Name: storable(k), Value: storable(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func headersFromDocs(hs []headerDoc) map[string]string {
	if len(hs) == 0 {
		return nil
	}
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		out[h.Name] = h.Value
	}
	return out
}

func clampUint32(n int64) uint32 {
	switch {
	case n < 0:
		return 0
	case n > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(n)
}

func (d *deliveryDoc) proto() *statusv1.Delivery {
	out := &statusv1.Delivery{
		Id:             d.ID,
		ProjectId:      d.ProjectID,
		EventId:        d.EventID,
		EndpointId:     d.EndpointID,
		EventType:      d.EventType,
		Status:         statusv1.DeliveryStatus(d.Status),
		Attempts:       clampUint32(d.Attempts),
		CreateTime:     timestamppb.New(d.CreateTime),
		UpdateTime:     timestamppb.New(d.UpdateTime),
		LastStatusCode: d.LastStatusCode,
		LastError:      d.LastError,
		OrderingKey:    d.OrderingKey,
	}
	if d.NextAttemptTime != nil {
		out.NextAttemptTime = timestamppb.New(*d.NextAttemptTime)
	}
	return out
}

func (a *attemptDoc) proto() *statusv1.Attempt {
	out := &statusv1.Attempt{
		DeliveryId:      a.DeliveryID,
		Attempt:         clampUint32(a.Attempt),
		StatusCode:      a.StatusCode,
		LatencyMs:       clampUint32(a.LatencyMS),
		RequestHeaders:  headersFromDocs(a.RequestHeaders),
		ResponseHeaders: headersFromDocs(a.ResponseHeaders),
		ResponseBody:    a.ResponseBody,
		Error:           a.Error,
		RemoteIp:        a.RemoteIP,
		Url:             a.URL,
	}
	if a.StartTime != nil {
		out.StartTime = timestamppb.New(*a.StartTime)
	}
	return out
}

// historyStore keeps the delivery history: deliveries, their attempts and
// what counts them. deliveryStore keeps it in MongoDB (or FerretDB),
// pgStore in PostgreSQL tables. Both apply a delivery's change only when its
// seq is above the stored one, so replayed and reordered changes are
// harmless. Only the pruner (prune.go) deletes deliveries: finished ones
// older than their project's retention.
type historyStore interface {
	// init creates the indexes (or tables); safe on every start.
	init(ctx context.Context) error
	// write stores attempts (one already stored is left as it is), then
	// stores the new deliveries of ws and moves the existing ones forward.
	// A delivery never shows an outcome whose attempt is missing.
	write(ctx context.Context, ws []*deliveryWrite, attempts []attemptDoc) error
	// getDelivery returns the delivery, or nil when it is not in the project.
	getDelivery(ctx context.Context, projectID, id string) (*deliveryDoc, error)
	// listAttempts returns a delivery's attempts, first attempt first.
	listAttempts(ctx context.Context, projectID, deliveryID string) ([]attemptDoc, error)
	// listDeliveries returns up to q.limit deliveries, newest first.
	listDeliveries(ctx context.Context, q *deliveryQuery) ([]deliveryDoc, error)
	// countDeliveries counts the deliveries that q selects, per status.
	countDeliveries(ctx context.Context, q *deliveryQuery) (map[statusv1.DeliveryStatus]uint64, error)
	// countByEvent counts the deliveries of each event per status.
	countByEvent(ctx context.Context, projectID string, eventIDs []string) (map[string]map[statusv1.DeliveryStatus]uint64, error)
	// stats reads the statistics (stats.go) that q selects, per bucket.
	stats(ctx context.Context, q *statsQuery) (*statsRows, error)
	// refused reports whether err, from write, is the store refusing what
	// was written, which trying again cannot fix, rather than the store
	// being away: only while the store answers a probe.
	refused(ctx context.Context, err error) bool
	// prune deletes up to limit of a project's finished deliveries created
	// before cutoff with their attempts, and up to limit of its statistics
	// rows of the minutes before cutoff; more says there may be more.
	prune(ctx context.Context, projectID string, cutoff time.Time, limit int) (deleted retention.Counts, more bool, err error)
}

var (
	_ historyStore = (*deliveryStore)(nil)
	_ historyStore = (*pgStore)(nil)
)

// deliveryStore reads and writes the status database in MongoDB.
type deliveryStore struct {
	deliveries    *mongo.Collection
	attempts      *mongo.Collection
	deliveryStats *mongo.Collection
	attemptStats  *mongo.Collection
	marks         *mongo.Collection

	// stored remembers deliveries this process has written, so that their
	// later changes go straight to an update instead of first failing an
	// insert (FerretDB then retries the batch one document at a time). The
	// pruner forgets the deliveries it deletes, and split trusts this only
	// for deliveries too recent to be pruned at all (another process's
	// pruner may have deleted an older one).
	mu     sync.Mutex
	stored map[string]struct{}
}

// maxRemembered bounds deliveryStore.stored; past it, it starts over.
const maxRemembered = 200_000

func newDeliveryStore(db *mongo.Database) *deliveryStore {
	return &deliveryStore{
		deliveries:    db.Collection(deliveriesCollection),
		attempts:      db.Collection(attemptsCollection),
		deliveryStats: db.Collection(deliveryStatsCollection),
		attemptStats:  db.Collection(attemptStatsCollection),
		marks:         db.Collection(statMarksCollection),
		stored:        map[string]struct{}{},
	}
}

func (s *deliveryStore) remember(ws []*deliveryWrite) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stored)+len(ws) > maxRemembered {
		s.stored = map[string]struct{}{}
	}
	for _, w := range ws {
		s.stored[w.doc.ID] = struct{}{}
	}
}

// prunableAfter is the shortest retention: a delivery created more
// recently cannot have been pruned, by this process or another.
const prunableAfter = 24 * time.Hour

// split separates the writes of deliveries known to exist from the others.
// A delivery old enough to have been pruned is never taken as known: the
// pruner of another process may have deleted it, and only an insert
// stores it again.
func (s *deliveryStore) split(ws []*deliveryWrite) (known, unknown []*deliveryWrite) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recent := time.Now().Add(-prunableAfter)
	for _, w := range ws {
		if _, ok := s.stored[w.doc.ID]; ok && w.doc.CreateTime.After(recent) {
			known = append(known, w)
		} else {
			unknown = append(unknown, w)
		}
	}
	return known, unknown
}

// indexes serve ListDeliveries (newest first, optionally by event, endpoint
// or status), CountDeliveries and ListAttempts.
func indexes() []store.Index {
	desc := func(keys ...string) bson.D {
		d := bson.D{}
		for _, k := range keys {
			dir := 1
			if k[0] == '-' {
				k, dir = k[1:], -1
			}
			d = append(d, bson.E{Key: k, Value: dir})
		}
		return d
	}
	return []store.Index{
		{Collection: deliveriesCollection, Model: mongo.IndexModel{Keys: desc("project_id", "-create_time", "-_id")}},
		{Collection: deliveriesCollection, Model: mongo.IndexModel{Keys: desc("project_id", "event_id")}},
		{Collection: deliveriesCollection, Model: mongo.IndexModel{Keys: desc("project_id", "endpoint_id", "-create_time")}},
		{Collection: deliveriesCollection, Model: mongo.IndexModel{Keys: desc("project_id", "status", "-create_time")}},
		{Collection: attemptsCollection, Model: mongo.IndexModel{Keys: desc("delivery_id", "attempt")}},
	}
}

func (s *deliveryStore) init(ctx context.Context) error {
	return store.EnsureIndexes(ctx, s.deliveries.Database(), append(indexes(), statsIndexes()...))
}

// write inserts the attempts first, then writes the deliveries; after
// each, it adds the statistics of what it stored. (Without a transaction,
// a crash between the two leaves a change uncounted, never counted twice.)
func (s *deliveryStore) write(ctx context.Context, ws []*deliveryWrite, attempts []attemptDoc) error {
	stats := newStatDeltas()
	if err := s.insertAttempts(ctx, attempts, stats); err != nil {
		return err
	}
	if err := s.addStats(ctx, stats); err != nil {
		return err
	}
	restored, err := s.writeDeliveries(ctx, ws)
	if err != nil {
		return err
	}
	if err := s.restoreAttempts(ctx, attempts, restored); err != nil {
		return err
	}
	stats = newStatDeltas()
	if err := s.markOutcomes(ctx, ws, stats); err != nil {
		return err
	}
	return s.addStats(ctx, stats)
}

// insertAttempts stores attempts; those already stored (a replay) are left
// as they are. The new ones are counted in stats.
func (s *deliveryStore) insertAttempts(ctx context.Context, docs []attemptDoc, stats *statDeltas) error {
	if len(docs) == 0 {
		return nil
	}
	batch := make([]any, len(docs))
	for i := range docs {
		batch[i] = &docs[i]
	}
	_, err := s.attempts.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
	fresh, err := insertedOf(len(docs), err)
	if err != nil {
		return fmt.Errorf("insert %d attempts: %w", len(docs), err)
	}
	for i := range docs {
		if fresh[i] {
			stats.attempt(&docs[i])
		}
	}
	return nil
}

// deliveryWrite is the coalesced change to one delivery: the full document
// for a delivery not stored yet, and the fields to set on one that is, which
// apply only when seq moves it forward.
type deliveryWrite struct {
	doc   deliveryDoc
	set   bson.D
	unset bson.D
	// hasRecord says that doc's last_status_code and last_error describe a
	// result; without one, an update keeps the stored ones.
	hasRecord bool
	// outcomes are the attempt outcomes among the coalesced changes, in seq
	// order: the statistics count those above the stored seq, even when a
	// later change of the batch wins.
	outcomes []outcomeMark
}

// outcomeMark is an attempt's outcome: the status a delivery reached with
// seq, at time.
type outcomeMark struct {
	seq    int64
	status int32
	time   time.Time
}

// writeDeliveries applies one write per delivery in two round trips.
//
// First every delivery is inserted whole (ordered=false): a new delivery is
// then done, and create_time is set by whichever change stored it first.
// The inserts that fail with a duplicate key are deliveries that already
// exist; those get conditional updates (filter seq < new seq, grouped by
// groupUpdates) in one unordered bulk write, so a change that does not move
// a delivery forward matches nothing and changes nothing.
//
// This is deliberately not an upsert with a seq filter whose duplicate-key
// error means "not forward": FerretDB 1.24 ignores ordered=false on update
// (FerretDB#2612), so the first such error silently drops every later update
// of the bulk write, and it reports the error at index 0 whatever the
// position. Both steps here are single-document atomic writes, correct on
// MongoDB even with concurrent writers, and fresh deliveries (the common
// case) cost one fast insert instead of an update that FerretDB runs slowly.
func (s *deliveryStore) writeDeliveries(ctx context.Context, all []*deliveryWrite) (restored map[string]bool, err error) {
	if len(all) == 0 {
		return nil, nil
	}
	existing, ws := s.split(all)
	if len(ws) > 0 {
		batch := make([]any, len(ws))
		for i, w := range ws {
			batch[i] = &w.doc
		}
		_, err := s.deliveries.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
		var bwe mongo.BulkWriteException
		switch {
		case err == nil:
		case errors.As(err, &bwe) && store.IsDuplicateKey(err):
			for _, we := range bwe.WriteErrors {
				if we.Index < 0 || we.Index >= len(ws) {
					return nil, fmt.Errorf("insert %d deliveries: write error at unknown index %d: %w", len(ws), we.Index, err)
				}
				existing = append(existing, ws[we.Index])
			}
		default:
			return nil, fmt.Errorf("insert %d deliveries: %w", len(ws), err)
		}
	}
	if len(existing) > 0 {
		models := groupUpdates(existing)
		if _, err := s.deliveries.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
			return nil, fmt.Errorf("update %d deliveries: %w", len(existing), err)
		}
		if restored, err = s.restorePruned(ctx, existing); err != nil {
			return nil, err
		}
	}
	s.remember(all)
	return restored, nil
}

// restorePruned inserts again, whole, the deliveries among ws old enough to
// be pruned: one that the pruner deleted between the insert that found it
// and the update is then stored as this write leaves it (with the attempts
// the write inserted, which write stores again: see restoreAttempts),
// instead of the write being lost. For the others the insert finds them
// and changes nothing. Only changes of old deliveries (manual retries) pay
// for it. It returns the ids it stored again.
func (s *deliveryStore) restorePruned(ctx context.Context, ws []*deliveryWrite) (map[string]bool, error) {
	recent := time.Now().Add(-prunableAfter)
	var batch []any
	var ids []string
	for _, w := range ws {
		if !w.doc.CreateTime.After(recent) {
			batch = append(batch, &w.doc)
			ids = append(ids, w.doc.ID)
		}
	}
	if len(batch) == 0 {
		return nil, nil
	}
	_, err := s.deliveries.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
	fresh, err := insertedOf(len(batch), err)
	if err != nil {
		return nil, fmt.Errorf("insert %d pruned deliveries again: %w", len(batch), err)
	}
	restored := map[string]bool{}
	for i, id := range ids {
		if fresh[i] {
			restored[id] = true
		}
	}
	return restored, nil
}

// restoreAttempts inserts again the attempts of a write whose delivery
// restorePruned stored again: the pruner that deleted the delivery may
// have deleted them too, after they were first inserted. An attempt still
// there is left as it is.
func (s *deliveryStore) restoreAttempts(ctx context.Context, attempts []attemptDoc, restored map[string]bool) error {
	if len(restored) == 0 {
		return nil
	}
	var batch []any
	for i := range attempts {
		if restored[attempts[i].DeliveryID] {
			batch = append(batch, &attempts[i])
		}
	}
	if len(batch) == 0 {
		return nil
	}
	_, err := s.attempts.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
	if _, err := insertedOf(len(batch), err); err != nil {
		return fmt.Errorf("insert %d attempts of pruned deliveries again: %w", len(batch), err)
	}
	return nil
}

// groupUpdates turns the writes of existing deliveries into as few update
// commands as possible: deliveries that move to the same state (status,
// attempt, outcome) share one, filter {_id: {$in: ids}, seq < new seq}, one
// round trip and one match instead of one per delivery. (FerretDB 1.24
// still writes each matched document with a statement that scans the
// collection, which is why Apply avoids updates altogether where it can by
// coalescing a delivery's changes into its first insert.) Each delivery still moves
// only forward, atomically, on MongoDB as on FerretDB. The descriptive
// fields were stored with the delivery and do not change; update_time is the
// latest change time of the group.
//
// UpdateMany also matters for another reason: FerretDB 1.24 keeps the
// PostgreSQL connection of every single-document update that matched until
// the whole command ends, so an update command with more matching UpdateOnes
// than its pool has connections hangs for ever and starves every other
// client meanwhile. A multi-update reads its cursor to the end, which
// releases the connection.
func groupUpdates(ws []*deliveryWrite) []mongo.WriteModel {
	type group struct {
		ids    []string
		seq    int64
		set    bson.D
		unset  bson.D
		update time.Time
	}
	groups := map[string]*group{}
	var order []string
	for _, w := range ws {
		set := bson.D{}
		for _, e := range w.set {
			switch e.Key {
			case "project_id", "event_id", "endpoint_id", "event_type", "update_time":
				continue
			}
			set = append(set, e)
		}
		key := fmt.Sprint(w.doc.Seq, set, w.unset)
		g, ok := groups[key]
		if !ok {
			g = &group{seq: w.doc.Seq, set: set, unset: w.unset}
			groups[key] = g
			order = append(order, key)
		}
		g.ids = append(g.ids, w.doc.ID)
		if w.doc.UpdateTime.After(g.update) {
			g.update = w.doc.UpdateTime
		}
	}
	models := make([]mongo.WriteModel, 0, len(groups))
	for _, key := range order {
		g := groups[key]
		update := bson.D{{Key: "$set", Value: append(g.set, bson.E{Key: "update_time", Value: g.update})}}
		if len(g.unset) > 0 {
			update = append(update, bson.E{Key: "$unset", Value: g.unset})
		}
		var idFilter any = g.ids[0]
		if len(g.ids) > 1 {
			idFilter = bson.D{{Key: "$in", Value: g.ids}}
		}
		models = append(models, mongo.NewUpdateManyModel().
			SetFilter(bson.D{{Key: "_id", Value: idFilter}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: g.seq}}}}).
			SetUpdate(update))
	}
	return models
}

// getDelivery returns the delivery, or nil when it does not exist in the
// project.
func (s *deliveryStore) getDelivery(ctx context.Context, projectID, id string) (*deliveryDoc, error) {
	var d deliveryDoc
	err := s.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "project_id", Value: projectID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find delivery %s: %w", id, err)
	}
	return &d, nil
}

// listAttempts returns a delivery's attempts, first attempt first.
func (s *deliveryStore) listAttempts(ctx context.Context, projectID, deliveryID string) ([]attemptDoc, error) {
	cur, err := s.attempts.Find(ctx,
		bson.D{{Key: "delivery_id", Value: deliveryID}, {Key: "project_id", Value: projectID}},
		options.Find().SetSort(bson.D{{Key: "attempt", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("find attempts of %s: %w", deliveryID, err)
	}
	var out []attemptDoc
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", deliveryID, err)
	}
	return out, nil
}

// deliveryQuery selects deliveries of one project.
type deliveryQuery struct {
	projectID  string
	eventID    string
	endpointID string
	// endpointIDs, when not empty, keeps the deliveries of these endpoints
	// only (a portal token's owner's).
	endpointIDs []string
	eventType   string
	statuses    []statusv1.DeliveryStatus
	start, end  time.Time // zero: unbounded
	after       *pageCursor
	limit       int64
}

func (q *deliveryQuery) filter() bson.D {
	f := bson.D{{Key: "project_id", Value: q.projectID}}
	if q.eventID != "" {
		f = append(f, bson.E{Key: "event_id", Value: q.eventID})
	}
	if q.endpointID != "" {
		f = append(f, bson.E{Key: "endpoint_id", Value: q.endpointID})
	}
	if len(q.endpointIDs) > 0 {
		f = append(f, bson.E{Key: "endpoint_id", Value: bson.D{{Key: "$in", Value: q.endpointIDs}}})
	}
	if q.eventType != "" {
		f = append(f, bson.E{Key: "event_type", Value: q.eventType})
	}
	switch len(q.statuses) {
	case 0:
	case 1:
		// An equality, unlike $in, is pushed down to SQL by FerretDB.
		f = append(f, bson.E{Key: "status", Value: int32(q.statuses[0])})
	default:
		in := make(bson.A, len(q.statuses))
		for i, st := range q.statuses {
			in[i] = int32(st)
		}
		f = append(f, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: in}}})
	}
	var created bson.D
	if !q.start.IsZero() {
		created = append(created, bson.E{Key: "$gte", Value: storeTime(q.start)})
	}
	if !q.end.IsZero() {
		created = append(created, bson.E{Key: "$lt", Value: storeTime(q.end)})
	}
	if len(created) > 0 {
		f = append(f, bson.E{Key: "create_time", Value: created})
	}
	if q.after != nil {
		// Keyset pagination on the immutable (create_time, _id): a delivery
		// stored between two pages sorts before the cursor or after it, and
		// is never seen twice nor makes another one skipped.
		f = append(f, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "create_time", Value: bson.D{{Key: "$lt", Value: q.after.createTime}}}},
			bson.D{
				{Key: "create_time", Value: q.after.createTime},
				{Key: "_id", Value: bson.D{{Key: "$lt", Value: q.after.id}}},
			},
		}})
	}
	return f
}

// listDeliveries returns up to q.limit deliveries, newest first.
func (s *deliveryStore) listDeliveries(ctx context.Context, q *deliveryQuery) ([]deliveryDoc, error) {
	opts := options.Find().
		SetSort(bson.D{{Key: "create_time", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(q.limit)
	cur, err := s.deliveries.Find(ctx, q.filter(), opts)
	if err != nil {
		return nil, fmt.Errorf("find deliveries: %w", err)
	}
	var out []deliveryDoc
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return out, nil
}

// countDeliveries counts the deliveries that q selects, per status, with one
// $group aggregation (FerretDB 1.24 supports $match, $group and $sum).
func (s *deliveryStore) countDeliveries(ctx context.Context, q *deliveryQuery) (map[statusv1.DeliveryStatus]uint64, error) {
	pipeline := mongo.Pipeline{
		{{Key: "$match", Value: q.filter()}},
		{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: "$status"},
			{Key: "count", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
	}
	cur, err := s.deliveries.Aggregate(ctx, pipeline)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	var rows []struct {
		Status int32 `bson:"_id"`
		Count  int64 `bson:"count"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read delivery counts: %w", err)
	}
	out := make(map[statusv1.DeliveryStatus]uint64, len(rows))
	for _, r := range rows {
		out[statusv1.DeliveryStatus(r.Status)] += uint64(max(r.Count, 0))
	}
	return out, nil
}

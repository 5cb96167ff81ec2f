package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/store"
)

// The delivery statistics are counters kept per minute as the history is
// written, never computed from the deliveries: per (project, endpoint,
// minute, status), how many deliveries reached an outcome status (SUCCESS,
// RETRY, FAILED, DISCARDED) in that minute, each outcome of an attempt
// counted once; and per (project, endpoint, minute, latency bucket), how
// many attempts started in that minute and their total latency. Reading a
// window costs as many rows as it has minutes, endpoints and statuses,
// whatever the number of deliveries.

// latencyBounds are the upper bounds, in milliseconds, of the attempt
// latency histogram's buckets; the last bucket has no upper bound.
var latencyBounds = []int64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

// latencyBucket is the histogram bucket of a latency.
func latencyBucket(ms int64) int16 {
	for i, b := range latencyBounds {
		if ms < b {
			return int16(i)
		}
	}
	return int16(len(latencyBounds))
}

// isOutcome reports whether a status ends an attempt: those are what the
// statistics count.
func isOutcome(st int32) bool {
	r, ok := rank(statusv1.DeliveryStatus(st))
	return ok && r == 3
}

// statMinute is the minute a change or an attempt is counted in.
func statMinute(t time.Time) time.Time {
	return t.UTC().Truncate(time.Minute)
}

// statKey is one counter row: a status (delivery stats) or a latency
// bucket (attempt stats) of an endpoint in a minute.
type statKey struct {
	project, endpoint string
	minute            time.Time
	key               int16
}

// statValue is what a write adds to a counter row; sumMS only for
// attempts.
type statValue struct {
	n, sumMS int64
}

// statDeltas gathers the statistics a write adds.
type statDeltas struct {
	deliveries map[statKey]statValue
	attempts   map[statKey]statValue
}

func newStatDeltas() *statDeltas {
	return &statDeltas{deliveries: map[statKey]statValue{}, attempts: map[statKey]statValue{}}
}

// outcome counts a delivery reaching an outcome status at t; other
// statuses are not counted.
func (s *statDeltas) outcome(project, endpoint string, status int32, t time.Time) {
	if !isOutcome(status) {
		return
	}
	k := statKey{project, endpoint, statMinute(t), int16(status)}
	v := s.deliveries[k]
	v.n++
	s.deliveries[k] = v
}

// attempt counts a stored attempt.
func (s *statDeltas) attempt(a *attemptDoc) {
	k := statKey{a.ProjectID, a.EndpointID, statMinute(a.statTime()), latencyBucket(a.LatencyMS)}
	v := s.attempts[k]
	v.n++
	v.sumMS += max(a.LatencyMS, 0)
	s.attempts[k] = v
}

// sortedStats returns the rows of m in key order: writers lock counter rows
// in the same order, so they do not deadlock.
func sortedStats(m map[statKey]statValue) []statKey {
	ks := make([]statKey, 0, len(m))
	for k, v := range m {
		if v.n != 0 {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b statKey) int {
		return cmp.Or(cmp.Compare(a.project, b.project), cmp.Compare(a.endpoint, b.endpoint),
			a.minute.Compare(b.minute), cmp.Compare(a.key, b.key))
	})
	return ks
}

// statsQuery selects the statistics of a project, or of some of its
// endpoints, in [start, end), summed into buckets of width bucket that
// start at start.
type statsQuery struct {
	projectID  string
	endpointID string
	// endpointIDs, when not empty, keeps to these endpoints (a portal
	// token's owner's).
	endpointIDs []string
	start, end  time.Time
	bucket      time.Duration
}

// index is the bucket of a minute.
func (q *statsQuery) index(minute time.Time) int64 {
	return int64(minute.Sub(q.start) / q.bucket)
}

// statusRow is a delivery counter summed over a bucket.
type statusRow struct {
	bucket int64
	status int16
	n      int64
}

// latencyRow is an attempt counter summed over a bucket.
type latencyRow struct {
	bucket   int64
	latency  int16
	n, sumMS int64
}

// statsRows is what the store reads for a statsQuery.
type statsRows struct {
	statuses  []statusRow
	latencies []latencyRow
}

// Collections of the statistics in MongoDB: the counters, and a mark per
// counted outcome (delivery and seq) that keeps a replayed change from
// being counted twice.
const (
	deliveryStatsCollection = "delivery_stats"
	attemptStatsCollection  = "attempt_stats"
	statMarksCollection     = "delivery_stat_marks"
)

func statsIndexes() []store.Index {
	var out []store.Index
	for _, c := range []string{deliveryStatsCollection, attemptStatsCollection} {
		out = append(out,
			store.Index{Collection: c, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "minute", Value: 1}}}},
			store.Index{Collection: c, Model: mongo.IndexModel{Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "endpoint_id", Value: 1}, {Key: "minute", Value: 1}}}})
	}
	return out
}

// statDoc is a counter row in MongoDB; its _id is made of its key.
type statDoc struct {
	ProjectID  string    `bson:"project_id"`
	EndpointID string    `bson:"endpoint_id"`
	Minute     time.Time `bson:"minute"`
	Key        int16     `bson:"key"`
	N          int64     `bson:"n"`
	SumMS      int64     `bson:"sum_ms"`
}

// insertedOf returns which of n documents an unordered InsertMany stored:
// all but those that failed with a duplicate key (stored before).
func insertedOf(n int, err error) ([]bool, error) {
	ok := make([]bool, n)
	for i := range ok {
		ok[i] = true
	}
	if err == nil {
		return ok, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || !store.IsDuplicateKey(err) {
		return nil, err
	}
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= n {
			return nil, fmt.Errorf("write error at unknown index %d: %w", we.Index, err)
		}
		if we.Code != 11000 && we.Code != 11001 && we.Code != 12582 {
			return nil, err
		}
		ok[we.Index] = false
	}
	return ok, nil
}

// markOutcomes counts the attempt outcomes of ws, each (delivery, seq)
// once: a mark that was there already is a replay.
func (s *deliveryStore) markOutcomes(ctx context.Context, ws []*deliveryWrite, stats *statDeltas) error {
	type marked struct {
		w *deliveryWrite
		o outcomeMark
	}
	var list []marked
	var marks []any
	for _, w := range ws {
		for _, o := range w.outcomes {
			list = append(list, marked{w, o})
			marks = append(marks, bson.D{{Key: "_id", Value: fmt.Sprintf("%s:%d", w.doc.ID, o.seq)}})
		}
	}
	if len(marks) == 0 {
		return nil
	}
	_, err := s.marks.InsertMany(ctx, marks, options.InsertMany().SetOrdered(false))
	fresh, err := insertedOf(len(marks), err)
	if err != nil {
		return fmt.Errorf("mark %d outcomes: %w", len(marks), err)
	}
	for i, m := range list {
		if fresh[i] {
			stats.outcome(m.w.doc.ProjectID, m.w.doc.EndpointID, m.o.status, m.o.time)
		}
	}
	return nil
}

// addStats adds the statistics of a write, a counter at a time: an upsert
// by a deterministic _id (two writers that both insert the same new
// counter: the loser, refused with a duplicate key, runs again and adds).
func (s *deliveryStore) addStats(ctx context.Context, stats *statDeltas) error {
	for _, set := range []struct {
		c *mongo.Collection
		m map[statKey]statValue
	}{{s.deliveryStats, stats.deliveries}, {s.attemptStats, stats.attempts}} {
		for _, k := range sortedStats(set.m) {
			v := set.m[k]
			id := fmt.Sprintf("%s|%s|%d|%d", k.project, k.endpoint, k.minute.Unix(), k.key)
			update := bson.D{
				{Key: "$inc", Value: bson.D{{Key: "n", Value: v.n}, {Key: "sum_ms", Value: v.sumMS}}},
				{Key: "$set", Value: bson.D{{Key: "project_id", Value: k.project}, {Key: "endpoint_id", Value: k.endpoint},
					{Key: "minute", Value: k.minute}, {Key: "key", Value: k.key}}},
			}
			var err error
			for range 3 {
				_, err = set.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update, options.UpdateOne().SetUpsert(true))
				if err == nil || !store.IsDuplicateKey(err) {
					break
				}
			}
			if err != nil {
				return fmt.Errorf("add statistics %s: %w", id, err)
			}
		}
	}
	return nil
}

// stats reads the statistics of q and sums them per bucket here.
func (s *deliveryStore) stats(ctx context.Context, q *statsQuery) (*statsRows, error) {
	filter := bson.D{{Key: "project_id", Value: q.projectID}}
	switch {
	case q.endpointID != "":
		filter = append(filter, bson.E{Key: "endpoint_id", Value: q.endpointID})
	case len(q.endpointIDs) > 0:
		filter = append(filter, bson.E{Key: "endpoint_id", Value: bson.D{{Key: "$in", Value: q.endpointIDs}}})
	}
	filter = append(filter, bson.E{Key: "minute", Value: bson.D{{Key: "$gte", Value: q.start}, {Key: "$lt", Value: q.end}}})
	read := func(c *mongo.Collection, each func(d *statDoc)) error {
		cur, err := c.Find(ctx, filter)
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			var d statDoc
			if err := cur.Decode(&d); err != nil {
				return err
			}
			each(&d)
		}
		return cur.Err()
	}
	statuses := map[[2]int64]int64{}
	if err := read(s.deliveryStats, func(d *statDoc) { statuses[[2]int64{q.index(d.Minute), int64(d.Key)}] += d.N }); err != nil {
		return nil, fmt.Errorf("read delivery statistics: %w", err)
	}
	latencies := map[[2]int64]statValue{}
	if err := read(s.attemptStats, func(d *statDoc) {
		k := [2]int64{q.index(d.Minute), int64(d.Key)}
		v := latencies[k]
		v.n += d.N
		v.sumMS += d.SumMS
		latencies[k] = v
	}); err != nil {
		return nil, fmt.Errorf("read attempt statistics: %w", err)
	}
	out := &statsRows{}
	for k, n := range statuses {
		out.statuses = append(out.statuses, statusRow{bucket: k[0], status: int16(k[1]), n: n})
	}
	for k, v := range latencies {
		out.latencies = append(out.latencies, latencyRow{bucket: k[0], latency: int16(k[1]), n: v.n, sumMS: v.sumMS})
	}
	return out, nil
}

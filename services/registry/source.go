package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/store"
)

// Sources. A source's counters live in a collection of their own, changed
// only by $inc, so that ingest adding to them never races a user's
// read-modify-write of the source (which replaces the whole document).
const (
	collSources       = "sources"
	collSourceCounter = "source_counters"

	// maxQueueLen leaves room for the ".rejected" suffix within AMQP's
	// 255-byte limit on queue names.
	maxQueueLen = 200
	// RejectedSuffix ends the name of the queue a source's rejected
	// messages go to.
	RejectedSuffix = ".rejected"
)

// sourceDoc is a source.
type sourceDoc struct {
	ID         string    `bson:"_id"`
	ProjectID  string    `bson:"project_id"`
	Name       string    `bson:"name"`
	Queue      string    `bson:"queue"`
	Status     string    `bson:"status"`
	CreateTime time.Time `bson:"create_time"`
	UpdateTime time.Time `bson:"update_time"`
	Version    int64     `bson:"version"`
}

func (d *sourceDoc) version() int64     { return d.Version }
func (d *sourceDoc) setVersion(v int64) { d.Version = v }

// sourceCountersDoc holds a source's counters; its _id is the source's.
type sourceCountersDoc struct {
	ID         string `bson:"_id"`
	ProjectID  string `bson:"project_id"`
	Accepted   int64  `bson:"accepted"`
	Duplicates int64  `bson:"duplicates"`
	Rejected   int64  `bson:"rejected"`
}

func (d *sourceDoc) proto(c *sourceCountersDoc) *registryv1.Source {
	s := &registryv1.Source{
		Id:         d.ID,
		ProjectId:  d.ProjectID,
		Name:       d.Name,
		Amqp:       &registryv1.AMQPSource{Queue: d.Queue},
		Status:     registryv1.SourceStatus_SOURCE_STATUS_ACTIVE,
		CreateTime: timestamp(d.CreateTime),
		UpdateTime: timestamp(d.UpdateTime),
	}
	if d.Status == statusPaused {
		s.Status = registryv1.SourceStatus_SOURCE_STATUS_PAUSED
	}
	if c != nil {
		s.Accepted, s.Duplicates, s.Rejected = uint64(max(c.Accepted, 0)), uint64(max(c.Duplicates, 0)), uint64(max(c.Rejected, 0))
	}
	return s
}

// sourceIndexes are the indexes of the sources' collections. The unique
// queue index keeps two sources (of any projects) from consuming one queue.
func sourceIndexes() []store.Index {
	return []store.Index{
		{Collection: collSources, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "queue", Value: 1}}, Options: options.Index().SetUnique(true)}},
		{Collection: collSources, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "_id", Value: 1}}}},
	}
}

// checkQueue checks a source's queue name. Names are kept to a plain
// alphabet so that they read the same in the management console, in
// metrics labels and in shell commands; RabbitMQ's own ("amq.") and
// hookmesh's queues are refused, so that a project cannot drain them.
func (s *Service) checkQueue(field, q string) error {
	if q == "" {
		return apierr.Invalid(field, "must not be empty: name the RabbitMQ queue to consume")
	}
	if len(q) > maxQueueLen {
		return apierr.Invalid(field, "must be at most %d bytes, got %d", maxQueueLen, len(q))
	}
	for i := range len(q) {
		if !queueByte(q[i]) {
			return apierr.Invalid(field, "%q may hold only letters, digits and . _ - :", truncate(q, 80))
		}
	}
	prefix := s.cfg.QueuePrefix
	if prefix == "" {
		prefix = "hookmesh"
	}
	switch {
	case strings.HasPrefix(q, "amq."):
		return apierr.Invalid(field, "%q starts with \"amq.\", which RabbitMQ reserves", q)
	case q == prefix || strings.HasPrefix(q, prefix+"."):
		return apierr.Invalid(field, "%q is under %q, hookmesh's own queues", q, prefix+".")
	case strings.HasSuffix(q, RejectedSuffix):
		return apierr.Invalid(field, "%q ends in %q, which names the queue of a source's rejected messages", q, RejectedSuffix)
	}
	return nil
}

// Store.

// errQueueTaken is returned when another source already consumes a queue.
var errQueueTaken = errors.New("queue taken")

func (s *mongoStore) sources() *mongo.Collection {
	return s.projects.Database().Collection(collSources)
}

func (s *mongoStore) sourceCounters() *mongo.Collection {
	return s.projects.Database().Collection(collSourceCounter)
}

func (s *mongoStore) insertSource(ctx context.Context, d *sourceDoc) error {
	if _, err := s.sources().InsertOne(ctx, d); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return errQueueTaken
		}
		return fmt.Errorf("insert source: %w", err)
	}
	return nil
}

func (s *mongoStore) source(ctx context.Context, projectID, id string) (*sourceDoc, error) {
	var d sourceDoc
	if err := findOne(ctx, s.sources(), byProjectAndID(projectID, id), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (s *mongoStore) listSources(ctx context.Context, projectID, after string, size int) ([]sourceDoc, string, error) {
	return page(ctx, s.sources(), bson.D{{Key: "project_id", Value: projectID}}, after, size, func(d *sourceDoc) string { return d.ID })
}

func (s *mongoStore) allSources(ctx context.Context) ([]sourceDoc, error) {
	return findAll[sourceDoc](ctx, s.sources(), bson.D{}, bson.D{{Key: "_id", Value: 1}}, 0)
}

// queueTaken reports whether a source other than id consumes queue.
// UpdateSource asks first because FerretDB reports the unique index's
// refusal of a replace as an internal error, not as a duplicate key.
func (s *mongoStore) queueTaken(ctx context.Context, queue, id string) (bool, error) {
	var d sourceDoc
	err := findOne(ctx, s.sources(), bson.D{{Key: "queue", Value: queue}, {Key: "_id", Value: bson.D{{Key: "$ne", Value: id}}}}, &d)
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (s *mongoStore) modifySource(ctx context.Context, projectID, id string, change func(*sourceDoc) error) (*sourceDoc, error) {
	d, err := modify(ctx, s.sources(), byProjectAndID(projectID, id), change)
	if mongo.IsDuplicateKeyError(err) || errors.Is(err, errQueueTaken) {
		return nil, errQueueTaken
	}
	return d, err
}

// deleteSource removes a source and its counters.
func (s *mongoStore) deleteSource(ctx context.Context, projectID, id string) error {
	res, err := s.sources().DeleteOne(ctx, byProjectAndID(projectID, id))
	if err != nil {
		return fmt.Errorf("delete source %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return errNotFound
	}
	if _, err := s.sourceCounters().DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete counters of source %s: %w", id, err)
	}
	return nil
}

// deleteProjectSources removes the sources of a deleted project.
func (s *mongoStore) deleteProjectSources(ctx context.Context, projectID string) error {
	byProject := bson.D{{Key: "project_id", Value: projectID}}
	if _, err := s.sources().DeleteMany(ctx, byProject); err != nil {
		return fmt.Errorf("delete sources of project %s: %w", projectID, err)
	}
	if _, err := s.sourceCounters().DeleteMany(ctx, byProject); err != nil {
		return fmt.Errorf("delete source counters of project %s: %w", projectID, err)
	}
	return nil
}

// countersOf returns the counters of the given sources, by source id.
func (s *mongoStore) countersOf(ctx context.Context, ids []string) (map[string]*sourceCountersDoc, error) {
	out := make(map[string]*sourceCountersDoc, len(ids))
	for start := 0; start < len(ids); start += inChunk {
		chunk := ids[start:min(start+inChunk, len(ids))]
		docs, err := findAll[sourceCountersDoc](ctx, s.sourceCounters(),
			bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: chunk}}}}, bson.D{{Key: "_id", Value: 1}}, 0)
		if err != nil {
			return nil, err
		}
		for i := range docs {
			out[docs[i].ID] = &docs[i]
		}
	}
	return out, nil
}

// addSourceCounts adds to a source's counters, creating them on first use.
// It does nothing for a source that no longer exists, so that counts
// flushed after a delete do not leave counters behind.
func (s *mongoStore) addSourceCounts(ctx context.Context, projectID, id string, accepted, duplicates, rejected int64) error {
	if _, err := s.source(ctx, projectID, id); err != nil {
		if errors.Is(err, errNotFound) {
			return nil
		}
		return err
	}
	update := bson.D{
		{Key: "$inc", Value: bson.D{{Key: "accepted", Value: accepted}, {Key: "duplicates", Value: duplicates}, {Key: "rejected", Value: rejected}}},
		{Key: "$set", Value: bson.D{{Key: "project_id", Value: projectID}}},
	}
	if _, err := s.sourceCounters().UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update, options.UpdateOne().SetUpsert(true)); err != nil {
		return fmt.Errorf("add to counters of source %s: %w", id, err)
	}
	return nil
}

// queueByte says whether c may be in a source's queue name.
func queueByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':'
}

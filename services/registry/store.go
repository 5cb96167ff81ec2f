package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hookmesh/hookmesh/internal/store"
)

// Collections of the registry's database.
const (
	collProjects      = "projects"
	collAPIKeys       = "api_keys"
	collEndpoints     = "endpoints"
	collSubscriptions = "subscriptions"
)

// errNotFound is returned by the store for a missing document; handlers
// turn it into a NotFound naming what was asked for.
var errNotFound = errors.New("not found")

// errConflict is returned when a document kept changing under a
// read-modify-write.
var errConflict = errors.New("changed concurrently")

// modifyAttempts bounds the retries of a read-modify-write that lost a race.
const modifyAttempts = 5

// inChunk bounds the ids of one $in query.
const inChunk = 500

type projectDoc struct {
	ID                       string       `bson:"_id"`
	Name                     string       `bson:"name"`
	RetryPolicy              retryDoc     `bson:"retry_policy"`
	Signature                signatureDoc `bson:"signature"`
	DisableEndpointOnFailure bool         `bson:"disable_endpoint_on_failure"`
	DisableAfterFailures     uint32       `bson:"disable_endpoint_after_failures,omitempty"`
	// MetaEvents is nil until SetMetaEvents.
	MetaEvents *metaEventsDoc `bson:"meta_events,omitempty"`
	// Retention is the days the project's history is kept; 0 is the
	// default (DefaultRetentionDays).
	Retention  int32     `bson:"retention,omitempty"`
	CreateTime time.Time `bson:"create_time"`
	UpdateTime time.Time `bson:"update_time"`
	Version    int64     `bson:"version"`
}

type retryDoc struct {
	Strategy        string `bson:"strategy"`
	IntervalSeconds int64  `bson:"interval_seconds"`
	MaxAttempts     int64  `bson:"max_attempts"`
}

type signatureDoc struct {
	Header   string `bson:"header"`
	Advanced bool   `bson:"advanced"`
}

// apiKeyDoc is a project API key. Its _id is the SHA-256 of the key, so
// that authenticating a key is one find by _id and the key itself is never
// stored.
type apiKeyDoc struct {
	Hash       string     `bson:"_id"`
	KeyID      string     `bson:"key_id"`
	ProjectID  string     `bson:"project_id"`
	Name       string     `bson:"name"`
	Prefix     string     `bson:"prefix"`
	CreateTime time.Time  `bson:"create_time"`
	RevokeTime *time.Time `bson:"revoke_time"`
}

type endpointDoc struct {
	ID             string        `bson:"_id"`
	ProjectID      string        `bson:"project_id"`
	URL            string        `bson:"url"`
	OwnerID        string        `bson:"owner_id"`
	Name           string        `bson:"name"`
	Description    string        `bson:"description"`
	TimeoutSeconds int64         `bson:"timeout_seconds"`
	RateLimit      *rateLimitDoc `bson:"rate_limit"`
	// CustomHeaders is a list rather than a document: header names may
	// contain '.' and '$', which FerretDB refuses in keys.
	CustomHeaders []headerDoc `bson:"custom_headers"`
	Status        string      `bson:"status"`
	// DisabledReason and DisableTime say why and when hookmesh disabled
	// the endpoint, while its status is disabled.
	DisabledReason string     `bson:"disabled_reason,omitempty"`
	DisableTime    *time.Time `bson:"disable_time,omitempty"`
	// Secrets are sealed by sealSecret, the current one first.
	Secrets    []secretDoc `bson:"secrets"`
	CreateTime time.Time   `bson:"create_time"`
	UpdateTime time.Time   `bson:"update_time"`
	Version    int64       `bson:"version"`
}

type rateLimitDoc struct {
	Count           int64 `bson:"count"`
	DurationSeconds int64 `bson:"duration_seconds"`
}

type headerDoc struct {
	Name  string `bson:"name"`
	Value string `bson:"value"`
}

type secretDoc struct {
	Value      string     `bson:"value"`
	ExpireTime *time.Time `bson:"expire_time"`
	// PublicKey is set ("whpk_...") when Value is an Ed25519 private key;
	// it is public, so it is stored as it is.
	PublicKey string `bson:"public_key,omitempty"`
}

type subscriptionDoc struct {
	ID          string    `bson:"_id"`
	ProjectID   string    `bson:"project_id"`
	EndpointID  string    `bson:"endpoint_id"`
	Name        string    `bson:"name"`
	Filter      filterDoc `bson:"filter"`
	RetryPolicy *retryDoc `bson:"retry_policy"`
	CreateTime  time.Time `bson:"create_time"`
	UpdateTime  time.Time `bson:"update_time"`
	Version     int64     `bson:"version"`
}

// filterDoc holds a subscription's filter. BodyText and HeadersText are
// the JSON text the client wrote, empty when not set. Body and Headers are
// the BSON documents (keys escaped) that versions before filters were text
// stored; they are read, never written.
type filterDoc struct {
	EventTypes  []string `bson:"event_types"`
	BodyText    string   `bson:"body_text,omitempty"`
	HeadersText string   `bson:"headers_text,omitempty"`
	Body        bson.Raw `bson:"body,omitempty"`
	Headers     bson.Raw `bson:"headers,omitempty"`
}

// body returns the body filter as JSON text ("" for none).
func (f *filterDoc) body() (string, error) {
	if f.BodyText != "" {
		return f.BodyText, nil
	}
	return legacyFilterText(f.Body)
}

// headers returns the headers filter as JSON text ("" for none).
func (f *filterDoc) headers() (string, error) {
	if f.HeadersText != "" {
		return f.HeadersText, nil
	}
	return legacyFilterText(f.Headers)
}

// versioned is a document updated by read-modify-write: its version guards
// the write against a concurrent one (on MongoDB; FerretDB's conditional
// writes are not atomic, so there it only narrows the window).
type versioned interface {
	version() int64
	setVersion(v int64)
}

func (d *projectDoc) version() int64          { return d.Version }
func (d *projectDoc) setVersion(v int64)      { d.Version = v }
func (d *endpointDoc) version() int64         { return d.Version }
func (d *endpointDoc) setVersion(v int64)     { d.Version = v }
func (d *subscriptionDoc) version() int64     { return d.Version }
func (d *subscriptionDoc) setVersion(v int64) { d.Version = v }

// mongoStore holds the registry's queries.
type mongoStore struct {
	projects      *mongo.Collection
	apiKeys       *mongo.Collection
	endpoints     *mongo.Collection
	subscriptions *mongo.Collection
	portalLinks   *mongo.Collection
}

func newMongoStore(db *mongo.Database) *mongoStore {
	return &mongoStore{
		projects:      db.Collection(collProjects),
		apiKeys:       db.Collection(collAPIKeys),
		endpoints:     db.Collection(collEndpoints),
		subscriptions: db.Collection(collSubscriptions),
		portalLinks:   db.Collection(collPortalLinks),
	}
}

// indexes are the registry's indexes, created at start-up.
func indexes() []store.Index {
	return append(sourceIndexes(), []store.Index{
		{Collection: collAPIKeys, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "key_id", Value: 1}}, Options: options.Index().SetUnique(true)}},
		{Collection: collAPIKeys, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "key_id", Value: 1}}}},
		{Collection: collEndpoints, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "owner_id", Value: 1}}}},
		{Collection: collEndpoints, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "_id", Value: 1}}}},
		{Collection: collSubscriptions, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "endpoint_id", Value: 1}}}},
		// Broadcasts look subscriptions up by project and event type.
		{Collection: collSubscriptions, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "filter.event_types", Value: 1}}}},
		{Collection: collSubscriptions, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "_id", Value: 1}}}},
		{Collection: collPortalLinks, Model: mongo.IndexModel{
			Keys: bson.D{{Key: "project_id", Value: 1}, {Key: "link_id", Value: 1}}}},
	}...)
}

// findOne decodes the document matching filter into doc, or returns
// errNotFound.
func findOne(ctx context.Context, coll *mongo.Collection, filter bson.D, doc any) error {
	err := coll.FindOne(ctx, filter).Decode(doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return errNotFound
	}
	if err != nil {
		return fmt.Errorf("find in %s: %w", coll.Name(), err)
	}
	return nil
}

// findAll returns the documents matching filter, sorted by sort, at most
// limit of them (no limit when limit <= 0).
func findAll[T any](ctx context.Context, coll *mongo.Collection, filter, sort bson.D, limit int) ([]T, error) {
	opts := options.Find().SetSort(sort)
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", coll.Name(), err)
	}
	var docs []T
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read from %s: %w", coll.Name(), err)
	}
	return docs, nil
}

// page returns the documents matching filter with _id after the given one,
// in _id order, and the id to continue after when there are more.
func page[T any](ctx context.Context, coll *mongo.Collection, filter bson.D, after string, size int, id func(*T) string) ([]T, string, error) {
	if after != "" {
		filter = append(filter[:len(filter):len(filter)], bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	// One more than asked tells whether there is a next page, so the last
	// page never comes with a token that leads to an empty one.
	docs, err := findAll[T](ctx, coll, filter, bson.D{{Key: "_id", Value: 1}}, size+1)
	if err != nil {
		return nil, "", err
	}
	if len(docs) <= size {
		return docs, "", nil
	}
	docs = docs[:size]
	return docs, id(&docs[size-1]), nil
}

// modify reads the document matching filter, lets change edit it, and
// writes it back if no one else wrote it in between, retrying a few times.
// change may return an error to abort; it must not keep the document.
func modify[T any, P interface {
	*T
	versioned
}](ctx context.Context, coll *mongo.Collection, filter bson.D, change func(P) error) (P, error) {
	for range modifyAttempts {
		var doc T
		if err := findOne(ctx, coll, filter, &doc); err != nil {
			return nil, err
		}
		p := P(&doc)
		v := p.version()
		if err := change(p); err != nil {
			return nil, err
		}
		p.setVersion(v + 1)
		guard := append(filter[:len(filter):len(filter)], bson.E{Key: "version", Value: v})
		res, err := coll.ReplaceOne(ctx, guard, p)
		if err != nil {
			return nil, fmt.Errorf("replace in %s: %w", coll.Name(), err)
		}
		if res.MatchedCount == 1 {
			return p, nil
		}
	}
	return nil, errConflict
}

// Projects.

func (s *mongoStore) insertProject(ctx context.Context, d *projectDoc) error {
	if _, err := s.projects.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("insert project: %w", err)
	}
	return nil
}

func (s *mongoStore) project(ctx context.Context, id string) (*projectDoc, error) {
	var d projectDoc
	if err := findOne(ctx, s.projects, bson.D{{Key: "_id", Value: id}}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (s *mongoStore) listProjects(ctx context.Context, after string, size int) ([]projectDoc, string, error) {
	return page(ctx, s.projects, bson.D{}, after, size, func(d *projectDoc) string { return d.ID })
}

func (s *mongoStore) modifyProject(ctx context.Context, id string, change func(*projectDoc) error) (*projectDoc, error) {
	return modify(ctx, s.projects, bson.D{{Key: "_id", Value: id}}, change)
}

// deleteProject removes a project and what it owns. The project document
// goes last, so that a retry after a failure finds it and finishes the job.
func (s *mongoStore) deleteProject(ctx context.Context, id string, now time.Time) error {
	if err := s.revokeProjectKeys(ctx, id, now); err != nil {
		return err
	}
	revoke := bson.D{{Key: "$set", Value: bson.D{{Key: "revoke_time", Value: now}}}}
	if _, err := s.portalLinks.UpdateMany(ctx, bson.D{{Key: "project_id", Value: id}, {Key: "revoke_time", Value: nil}}, revoke); err != nil {
		return fmt.Errorf("revoke portal links of project %s: %w", id, err)
	}
	if err := s.deleteProjectSources(ctx, id); err != nil {
		return err
	}
	byProject := bson.D{{Key: "project_id", Value: id}}
	if _, err := s.subscriptions.DeleteMany(ctx, byProject); err != nil {
		return fmt.Errorf("delete subscriptions of project %s: %w", id, err)
	}
	if _, err := s.endpoints.DeleteMany(ctx, byProject); err != nil {
		return fmt.Errorf("delete endpoints of project %s: %w", id, err)
	}
	if _, err := s.projects.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete project %s: %w", id, err)
	}
	return nil
}

// API keys.

func (s *mongoStore) insertAPIKey(ctx context.Context, d *apiKeyDoc) error {
	if _, err := s.apiKeys.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

func (s *mongoStore) apiKeyByHash(ctx context.Context, hash string) (*apiKeyDoc, error) {
	var d apiKeyDoc
	if err := findOne(ctx, s.apiKeys, bson.D{{Key: "_id", Value: hash}}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (s *mongoStore) apiKey(ctx context.Context, projectID, keyID string) (*apiKeyDoc, error) {
	var d apiKeyDoc
	filter := bson.D{{Key: "project_id", Value: projectID}, {Key: "key_id", Value: keyID}}
	if err := findOne(ctx, s.apiKeys, filter, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (s *mongoStore) listAPIKeys(ctx context.Context, projectID string) ([]apiKeyDoc, error) {
	return findAll[apiKeyDoc](ctx, s.apiKeys, bson.D{{Key: "project_id", Value: projectID}},
		bson.D{{Key: "key_id", Value: 1}}, 0)
}

// revokeAPIKey sets the revoke time of a key that has none.
func (s *mongoStore) revokeAPIKey(ctx context.Context, hash string, now time.Time) error {
	filter := bson.D{{Key: "_id", Value: hash}, {Key: "revoke_time", Value: nil}}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "revoke_time", Value: now}}}}
	if _, err := s.apiKeys.UpdateOne(ctx, filter, update); err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return nil
}

func (s *mongoStore) revokeProjectKeys(ctx context.Context, projectID string, now time.Time) error {
	filter := bson.D{{Key: "project_id", Value: projectID}, {Key: "revoke_time", Value: nil}}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "revoke_time", Value: now}}}}
	if _, err := s.apiKeys.UpdateMany(ctx, filter, update); err != nil {
		return fmt.Errorf("revoke api keys of project %s: %w", projectID, err)
	}
	return nil
}

// Endpoints.

func byProjectAndID(projectID, id string) bson.D {
	return bson.D{{Key: "_id", Value: id}, {Key: "project_id", Value: projectID}}
}

func (s *mongoStore) insertEndpoint(ctx context.Context, d *endpointDoc) error {
	if _, err := s.endpoints.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("insert endpoint: %w", err)
	}
	return nil
}

func (s *mongoStore) endpoint(ctx context.Context, projectID, id string) (*endpointDoc, error) {
	var d endpointDoc
	if err := findOne(ctx, s.endpoints, byProjectAndID(projectID, id), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (s *mongoStore) listEndpoints(ctx context.Context, projectID, ownerID, after string, size int) ([]endpointDoc, string, error) {
	filter := bson.D{{Key: "project_id", Value: projectID}}
	if ownerID != "" {
		filter = append(filter, bson.E{Key: "owner_id", Value: ownerID})
	}
	return page(ctx, s.endpoints, filter, after, size, func(d *endpointDoc) string { return d.ID })
}

// endpointsOf returns every endpoint of a project, or of one owner in it
// when ownerID is set (through the (project_id, owner_id) index).
func (s *mongoStore) endpointsOf(ctx context.Context, projectID, ownerID string, all bool) ([]endpointDoc, error) {
	filter := bson.D{{Key: "project_id", Value: projectID}}
	if !all {
		filter = append(filter, bson.E{Key: "owner_id", Value: ownerID})
	}
	return findAll[endpointDoc](ctx, s.endpoints, filter, bson.D{{Key: "_id", Value: 1}}, 0)
}

func (s *mongoStore) modifyEndpoint(ctx context.Context, projectID, id string, change func(*endpointDoc) error) (*endpointDoc, error) {
	return modify(ctx, s.endpoints, byProjectAndID(projectID, id), change)
}

// deleteEndpoint removes an endpoint and its subscriptions, the endpoint
// last so that a retry after a failure finds it.
func (s *mongoStore) deleteEndpoint(ctx context.Context, projectID, id string) error {
	filter := bson.D{{Key: "project_id", Value: projectID}, {Key: "endpoint_id", Value: id}}
	if _, err := s.subscriptions.DeleteMany(ctx, filter); err != nil {
		return fmt.Errorf("delete subscriptions of endpoint %s: %w", id, err)
	}
	res, err := s.endpoints.DeleteOne(ctx, byProjectAndID(projectID, id))
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return errNotFound
	}
	return nil
}

// Subscriptions.

func (s *mongoStore) insertSubscription(ctx context.Context, d *subscriptionDoc) error {
	if _, err := s.subscriptions.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("insert subscription: %w", err)
	}
	return nil
}

func (s *mongoStore) subscription(ctx context.Context, projectID, id string) (*subscriptionDoc, error) {
	var d subscriptionDoc
	if err := findOne(ctx, s.subscriptions, byProjectAndID(projectID, id), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (s *mongoStore) listSubscriptions(ctx context.Context, projectID, endpointID, after string, size int) ([]subscriptionDoc, string, error) {
	filter := bson.D{{Key: "project_id", Value: projectID}}
	if endpointID != "" {
		filter = append(filter, bson.E{Key: "endpoint_id", Value: endpointID})
	}
	return page(ctx, s.subscriptions, filter, after, size, func(d *subscriptionDoc) string { return d.ID })
}

// subscriptionsOf returns the subscriptions of the given endpoints (every
// subscription of the project when all is set), grouped by endpoint id,
// each group in _id order.
func (s *mongoStore) subscriptionsOf(ctx context.Context, projectID string, endpointIDs []string, all bool) (map[string][]subscriptionDoc, error) {
	out := make(map[string][]subscriptionDoc)
	add := func(filter bson.D) error {
		docs, err := findAll[subscriptionDoc](ctx, s.subscriptions, filter, bson.D{{Key: "_id", Value: 1}}, 0)
		if err != nil {
			return err
		}
		for _, d := range docs {
			out[d.EndpointID] = append(out[d.EndpointID], d)
		}
		return nil
	}
	if all {
		return out, add(bson.D{{Key: "project_id", Value: projectID}})
	}
	for start := 0; start < len(endpointIDs); start += inChunk {
		chunk := endpointIDs[start:min(start+inChunk, len(endpointIDs))]
		var filter bson.D
		if len(chunk) == 1 {
			filter = bson.D{{Key: "project_id", Value: projectID}, {Key: "endpoint_id", Value: chunk[0]}}
		} else {
			filter = bson.D{{Key: "project_id", Value: projectID}, {Key: "endpoint_id", Value: bson.D{{Key: "$in", Value: chunk}}}}
		}
		if err := add(filter); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *mongoStore) modifySubscription(ctx context.Context, projectID, id string, change func(*subscriptionDoc) error) (*subscriptionDoc, error) {
	return modify(ctx, s.subscriptions, byProjectAndID(projectID, id), change)
}

func (s *mongoStore) deleteSubscription(ctx context.Context, projectID, id string) error {
	res, err := s.subscriptions.DeleteOne(ctx, byProjectAndID(projectID, id))
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return errNotFound
	}
	return nil
}

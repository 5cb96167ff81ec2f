package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/retention"
)

// The create and duplicate paths of the service, with the store, the
// registry and the broker replaced by fakes. The stores themselves are
// tested against PostgreSQL and MongoDB in store_test.go.

// memStore is a Store in memory that behaves as the real ones do for the
// calls create, duplicate and Sweep make; err, when set for a method
// ("claim", "insert", ...), fails it.
type memStore struct {
	mu      sync.Mutex
	events  map[string]eventDoc
	claims  map[string]memClaim
	markers map[string]bool
	err     map[string]error
}

type memClaim struct {
	eventID string
	at      time.Time
}

func newMemStore() *memStore {
	return &memStore{events: map[string]eventDoc{}, claims: map[string]memClaim{}, markers: map[string]bool{}, err: map[string]error{}}
}

func (m *memStore) init(context.Context) error { return nil }
func (m *memStore) close()                     {}

// orders is false: numbering is the PostgreSQL store's, tested on it.
func (m *memStore) orders() bool { return false }

func (m *memStore) claim(_ context.Context, projectID, key, eventID string, now time.Time) (string, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.err["claim"]; err != nil {
		return "", time.Time{}, err
	}
	id := projectID + "\x00" + key
	if c, ok := m.claims[id]; ok {
		return c.eventID, c.at, nil
	}
	m.claims[id] = memClaim{eventID, now}
	return "", time.Time{}, nil
}

func (m *memStore) insert(_ context.Context, doc *eventDoc) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.err["insert"]; err != nil {
		return err
	}
	if _, ok := m.events[doc.ID]; ok {
		return errDuplicate
	}
	m.events[doc.ID] = *doc
	return nil
}

func (m *memStore) get(_ context.Context, projectID, id string) (*eventDoc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	doc, ok := m.events[id]
	if !ok || doc.ProjectID != projectID {
		return nil, nil
	}
	return &doc, nil
}

// prune is not exercised here: the stores' own tests cover it.
func (m *memStore) prune(context.Context, string, time.Time, int) (retention.Counts, bool, error) {
	return retention.Counts{}, false, errors.New("memStore does not prune")
}

func (m *memStore) list(context.Context, listFilter) ([]eventDoc, error) {
	return nil, errors.New("list is not used by these tests")
}

func (m *memStore) markPublished(_ context.Context, eventID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.err["markPublished"]; err != nil {
		return err
	}
	m.markers[eventID] = true
	return nil
}

func (m *memStore) published(_ context.Context, ids []string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, id := range ids {
		if m.markers[id] {
			out[id] = true
		}
	}
	return out, nil
}

func (m *memStore) unpublishedSince(_ context.Context, from, to time.Time) ([]eventDoc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []eventDoc
	for _, id := range slices.Sorted(maps.Keys(m.events)) {
		doc := m.events[id]
		if !doc.IsDuplicate && !m.markers[id] && !doc.CreateTime.Before(from) && doc.CreateTime.Before(to) {
			out = append(out, doc)
		}
	}
	return out, nil
}

// backdate moves an event's create time age into the past.
func (m *memStore) backdate(id string, age time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	doc := m.events[id]
	doc.CreateTime = doc.CreateTime.Add(-age)
	m.events[id] = doc
}

// stored returns the stored events, by id, and which are marked published.
func (m *memStore) stored() ([]eventDoc, map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var docs []eventDoc
	for _, id := range slices.Sorted(maps.Keys(m.events)) {
		docs = append(docs, m.events[id])
	}
	return docs, maps.Clone(m.markers)
}

// recorder is a Publisher that keeps what the broker confirmed; err, when
// set, fails every publish.
type recorder struct {
	mu   sync.Mutex
	msgs []bus.Message
	err  error
}

func (p *recorder) Publish(_ context.Context, msgs []bus.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *recorder) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// events decodes the confirmed messages, checking they go to the router.
func (p *recorder) events(tb testing.TB) []*busv1.EventMessage {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*busv1.EventMessage
	for _, m := range p.msgs {
		ev := &busv1.EventMessage{}
		if err := proto.Unmarshal(m.Body, ev); err != nil {
			tb.Fatal(err)
		}
		if m.Type != mesh.TypeEvent || m.Exchange != testTopology.EventsExchange || m.MessageID != ev.GetEventId() {
			tb.Fatalf("event %s published as %q to %q with id %q", ev.GetEventId(), m.Type, m.Exchange, m.MessageID)
		}
		out = append(out, ev)
	}
	return out
}

// endpointSet is an Endpoints knowing the endpoints listed; err, when set,
// fails every check.
type endpointSet struct {
	ids map[string]bool
	err error
}

func (e endpointSet) EndpointExists(_ context.Context, projectID, endpointID string) (bool, error) {
	return e.ids[projectID+"/"+endpointID], e.err
}

var testTopology = mesh.NewTopology("test", 4)

// newTestService returns the service over the fakes; endpoint ep_1 exists
// in project prj_1.
func newTestService(tb testing.TB, cfg Config) (*Service, *memStore, *recorder) {
	tb.Helper()
	st, pub := newMemStore(), &recorder{}
	s, err := New(cfg, st, endpointSet{ids: map[string]bool{"prj_1/ep_1": true}}, nil, pub, testTopology, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s, st, pub
}

// asProject is a request context authenticated with prj_1's key.
func asProject() context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{ProjectID: "prj_1", KeyID: "key_1"})
}

func newTestEvent() newEvent {
	return newEvent{projectID: "prj_1", eventType: "invoice.paid", data: []byte(`{"amount": 12345678901234567890}`),
		customHeaders: map[string]string{"X-Tenant": "acme"}, endpointID: "ep_1"}
}

func TestCreateStoresPublishesAndMarks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                    string
		modify                  func(*newEvent)
		wantEndpoint, wantOwner string
		wantBroadcast           bool
	}{
		{"to an endpoint", func(*newEvent) {}, "ep_1", "", false},
		{"fan-out to an owner", func(e *newEvent) { e.endpointID, e.ownerID = "", "own_1" }, "", "own_1", false},
		{"broadcast drops the endpoint and owner", func(e *newEvent) { e.endpointID, e.ownerID, e.broadcast = "ep_gone", "own_1", true }, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, st, pub := newTestService(t, Config{})
			in := newTestEvent()
			in.idempotencyKey = "key-1"
			tc.modify(&in)
			before := time.Now().Truncate(time.Millisecond)
			ev, err := s.create(asProject(), in)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ev.GetId(), "evt_") || ev.GetIsDuplicate() || ev.GetDuplicateOf() != "" ||
				ev.GetCreateTime().AsTime().Before(before) || ev.GetCreateTime().AsTime().After(time.Now()) {
				t.Fatalf("event %v: want a new event created now", ev)
			}
			want := &ingestv1.Event{Id: ev.GetId(), ProjectId: "prj_1", EventType: "invoice.paid", Data: string(in.data),
				CustomHeaders: in.customHeaders, IdempotencyKey: "key-1", EndpointId: tc.wantEndpoint, OwnerId: tc.wantOwner,
				Broadcast: tc.wantBroadcast, CreateTime: ev.GetCreateTime()}
			if !proto.Equal(ev, want) {
				t.Fatalf("answered\n%v\nwant\n%v", ev, want)
			}

			// Stored as answered.
			docs, _ := st.stored()
			if len(docs) != 1 || !proto.Equal(toProto(&docs[0]), want) {
				t.Fatalf("stored %v, want the event answered", docs)
			}
			// Published once, with every field the router needs.
			events := pub.events(t)
			wantMsg := &busv1.EventMessage{EventId: ev.GetId(), ProjectId: "prj_1", EventType: "invoice.paid", Data: in.data,
				CustomHeaders: in.customHeaders, IdempotencyKey: "key-1", EndpointId: tc.wantEndpoint, OwnerId: tc.wantOwner,
				Broadcast: tc.wantBroadcast, CreateTime: ev.GetCreateTime()}
			if len(events) != 1 || !proto.Equal(events[0], wantMsg) {
				t.Fatalf("published %v, want [%v]", events, wantMsg)
			}
			// Marked published once the marker is written (Close waits
			// for it), and then left to nobody: the sweeper finds nothing.
			s.marks.Wait()
			if _, marked := st.stored(); !marked[ev.GetId()] {
				t.Fatal("the confirmed event has no publish marker")
			}
			if _, busy := s.publishing.Load(ev.GetId()); busy {
				t.Fatal("the event is still held from the sweeper")
			}
			if n, err := s.Sweep(context.Background(), time.Hour, -time.Second); err != nil || n != 0 {
				t.Fatalf("sweep published %d events (%v), want none", n, err)
			}
		})
	}
}

func TestCreateDuplicateAnswersTheFirst(t *testing.T) {
	t.Parallel()
	s, st, pub := newTestService(t, Config{})
	in := newTestEvent()
	in.idempotencyKey = "key-1"
	first, err := s.create(asProject(), in)
	if err != nil {
		t.Fatal(err)
	}
	// The same key again, even with other data: a duplicate of the first.
	in.data = []byte(`{"amount": 1}`)
	again, err := s.create(asProject(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !again.GetIsDuplicate() || again.GetDuplicateOf() != first.GetId() || again.GetId() == first.GetId() {
		t.Fatalf("repeat answered %v, want a duplicate of %s", again, first.GetId())
	}
	if events := pub.events(t); len(events) != 1 || events[0].GetEventId() != first.GetId() {
		t.Fatalf("published %v, want only the first event", events)
	}
	docs, _ := st.stored()
	if len(docs) != 2 {
		t.Fatalf("stored %d events, want the original and its duplicate", len(docs))
	}
	for _, d := range docs {
		if d.ID == again.GetId() && (!d.IsDuplicate || d.DuplicateOf != first.GetId()) {
			t.Fatalf("the repeat is stored as %+v, want a duplicate of %s", d, first.GetId())
		}
	}
	// A duplicate is never swept: only the original would be.
	s.marks.Wait()
	if n, err := s.Sweep(context.Background(), time.Hour, -time.Second); err != nil || n != 0 {
		t.Fatalf("sweep published %d events (%v), want none", n, err)
	}

	// The same key in another project, and another key, are new events.
	admin := auth.WithPrincipal(context.Background(), auth.Principal{Admin: true})
	other := newTestEvent()
	other.projectID, other.endpointID, other.ownerID, other.idempotencyKey = "prj_2", "", "own_1", "key-1"
	if ev, err := s.create(admin, other); err != nil || ev.GetIsDuplicate() {
		t.Fatalf("same key in another project: %v, %v; want a new event", ev, err)
	}
	in.idempotencyKey = "key-2"
	if ev, err := s.create(asProject(), in); err != nil || ev.GetIsDuplicate() {
		t.Fatalf("another key: %v, %v; want a new event", ev, err)
	}
	// Without a key, the same request twice is two events.
	in.idempotencyKey = ""
	a, errA := s.create(asProject(), in)
	b, errB := s.create(asProject(), in)
	if errA != nil || errB != nil || a.GetId() == b.GetId() || a.GetIsDuplicate() || b.GetIsDuplicate() {
		t.Fatalf("without a key: %v (%v), %v (%v); want two events", a, errA, b, errB)
	}
	if n := len(pub.events(t)); n != 5 {
		t.Fatalf("published %d events, want 5", n)
	}
}

func TestCreatePublishFailureLeavesEventForSweeper(t *testing.T) {
	t.Parallel()
	s, st, pub := newTestService(t, Config{})
	pub.setErr(errors.New("broker away"))
	ev, err := s.create(asProject(), newTestEvent())
	// The client is told the event is safe, with a code that is not an
	// invalid request, so that it does not send it again as a new event.
	if connect.CodeOf(err) != connect.CodeUnavailable || ev != nil {
		t.Fatalf("create = %v, %v; want Unavailable", ev, err)
	}
	docs, marked := st.stored()
	if len(docs) != 1 || len(marked) != 0 {
		t.Fatalf("stored %d events, %d marked; want one, unmarked", len(docs), len(marked))
	}
	id := docs[0].ID
	if msg := err.Error(); !strings.Contains(msg, "event "+id+" is stored and will be delivered") || !strings.Contains(msg, "broker away") {
		t.Fatalf("error %q does not say the event is stored and why it is not confirmed", msg)
	}
	if _, busy := s.publishing.Load(id); busy {
		t.Fatal("a failed publish still holds the event from the sweeper")
	}

	// Once the broker is back, the sweeper publishes it and marks it.
	pub.setErr(nil)
	if n, err := s.Sweep(context.Background(), time.Hour, -time.Second); err != nil || n != 1 {
		t.Fatalf("sweep published %d events (%v), want 1", n, err)
	}
	if events := pub.events(t); len(events) != 1 || events[0].GetEventId() != id {
		t.Fatalf("published %v, want the stored event", events)
	}
	s.marks.Wait()
	if _, marked := st.stored(); !marked[id] {
		t.Fatal("the swept event has no publish marker")
	}
}

func TestDuplicateOfUnconfirmedOriginal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// age is how long ago the original was stored; past the
		// sweeper's grace (30 s) a repeat publishes an original that has
		// no marker.
		age           time.Duration
		confirmed     bool
		wantPublished bool
	}{
		{"past the grace, unconfirmed: published by the repeat", time.Minute, false, true},
		{"past the grace, confirmed: not published again", time.Minute, true, false},
		{"within the grace: left to its request and the sweeper", 10 * time.Second, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, st, pub := newTestService(t, Config{SweepGrace: 30 * time.Second})
			in := newTestEvent()
			in.idempotencyKey = "key-1"
			if !tc.confirmed {
				pub.setErr(errors.New("broker away"))
			}
			first, err := s.create(asProject(), in)
			if tc.confirmed != (err == nil) {
				t.Fatalf("first create: %v", err)
			}
			docs, _ := st.stored()
			orig := docs[0].ID
			s.marks.Wait()
			st.backdate(orig, tc.age)
			pub.setErr(nil)
			before := len(pub.events(t))

			again, err := s.create(asProject(), in)
			if err != nil {
				t.Fatal(err)
			}
			if !again.GetIsDuplicate() || again.GetDuplicateOf() != orig || (first != nil && first.GetId() != orig) {
				t.Fatalf("repeat answered %v, want a duplicate of %s", again, orig)
			}
			events := pub.events(t)[before:]
			if tc.wantPublished != (len(events) == 1) || len(events) > 1 {
				t.Fatalf("the repeat published %v; want the original published: %v", events, tc.wantPublished)
			}
			if tc.wantPublished {
				if events[0].GetEventId() != orig || events[0].GetIdempotencyKey() != "key-1" {
					t.Fatalf("the repeat published %v, want the original %s", events[0], orig)
				}
				s.marks.Wait()
				if _, marked := st.stored(); !marked[orig] {
					t.Fatal("the original published by the repeat has no marker")
				}
			}
		})
	}
}

func TestCreateWithClaimWithoutEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		claimedAt time.Duration // before now
		wantTaken bool
	}{
		// Its request died between claiming the key and storing the event.
		{"abandoned claim is taken over", time.Minute, true},
		// Its request may still be storing the event.
		{"recent claim answers Unavailable", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, st, pub := newTestService(t, Config{AbandonedClaimAfter: 30 * time.Second})
			if orig, _, _ := st.claim(context.Background(), "prj_1", "key-1", "evt_claimed", time.Now().Add(-tc.claimedAt)); orig != "" {
				t.Fatal("claim not made")
			}
			in := newTestEvent()
			in.idempotencyKey = "key-1"
			ev, err := s.create(asProject(), in)
			if !tc.wantTaken {
				if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "still storing event evt_claimed") {
					t.Fatalf("create = %v, %v; want Unavailable naming the claimed event", ev, err)
				}
				if docs, _ := st.stored(); len(docs) != 0 || len(pub.events(t)) != 0 {
					t.Fatal("a repeat of a request in progress stored or published an event")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetId() != "evt_claimed" || ev.GetIsDuplicate() {
				t.Fatalf("answered %v, want the event stored under the claimed id", ev)
			}
			if events := pub.events(t); len(events) != 1 || events[0].GetEventId() != "evt_claimed" {
				t.Fatalf("published %v, want evt_claimed", events)
			}
		})
	}
}

func TestCreateRefusesBadRequests(t *testing.T) {
	t.Parallel()
	registryDown := errors.New("registry away")
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		modify    func(*newEvent)
		endpoints *endpointSet
		maxBytes  int
		code      connect.Code
		// want is in the message: the field named, or the cause.
		want string
		// cause, when set, is wrapped.
		cause error
	}{
		{name: "no key", ctx: context.Background(), code: connect.CodeUnauthenticated, want: "missing API key"},
		{name: "another project's key", ctx: auth.WithPrincipal(context.Background(), auth.Principal{ProjectID: "prj_2"}), code: connect.CodeNotFound, want: `project "prj_1" not found`},
		{name: "no project", modify: func(e *newEvent) { e.projectID = "" }, code: connect.CodeInvalidArgument, want: "project_id"},
		{name: "no event type", modify: func(e *newEvent) { e.eventType = "" }, code: connect.CodeInvalidArgument, want: "event_type: must not be empty"},
		{name: "event type with a control character", modify: func(e *newEvent) { e.eventType = "a\nb" }, code: connect.CodeInvalidArgument, want: "event_type"},
		{name: "event type too long", modify: func(e *newEvent) { e.eventType = strings.Repeat("a", 256) }, code: connect.CodeInvalidArgument, want: "event_type"},
		{name: "no data", modify: func(e *newEvent) { e.data = nil }, code: connect.CodeInvalidArgument, want: "data: must not be empty"},
		{name: "data too large", maxBytes: 16, code: connect.CodeInvalidArgument, want: "the limit is 16 bytes"},
		{name: "data not UTF-8", modify: func(e *newEvent) { e.data = []byte("\"\xff\"") }, code: connect.CodeInvalidArgument, want: "data: must be UTF-8"},
		{name: "data not JSON", modify: func(e *newEvent) { e.data = []byte(`{"a":`) }, code: connect.CodeInvalidArgument, want: "data: is not valid JSON"},
		{name: "idempotency key too long", modify: func(e *newEvent) { e.idempotencyKey = strings.Repeat("k", 256) }, code: connect.CodeInvalidArgument, want: "idempotency_key"},
		{name: "ordering key too long", modify: func(e *newEvent) { e.orderingKey = strings.Repeat("k", 257) }, code: connect.CodeInvalidArgument, want: "ordering_key: is 257 bytes; at most 256 are allowed"},
		{name: "ordering key with a newline", modify: func(e *newEvent) { e.orderingKey = "a\nb" }, code: connect.CodeInvalidArgument, want: "ordering_key: must not contain control characters (found U+000A at byte 1)"},
		{name: "ordering key with DEL", modify: func(e *newEvent) { e.orderingKey = "ab\x7f" }, code: connect.CodeInvalidArgument, want: "ordering_key: must not contain control characters (found U+007F at byte 2)"},
		{name: "ordering key not UTF-8", modify: func(e *newEvent) { e.orderingKey = "a\xffb" }, code: connect.CodeInvalidArgument, want: "ordering_key: must be valid UTF-8"},
		{name: "reserved header", modify: func(e *newEvent) { e.customHeaders = map[string]string{"Host": "evil"} }, code: connect.CodeInvalidArgument, want: `custom_headers["Host"]: is set by hookmesh`},
		{name: "hookmesh's own header", modify: func(e *newEvent) { e.customHeaders = map[string]string{"X-Hookmesh-Attempt": "9"} }, code: connect.CodeInvalidArgument, want: "is set by hookmesh"},
		{name: "signature header", modify: func(e *newEvent) { e.customHeaders = map[string]string{"webhook-signature": "v1,x"} }, code: connect.CodeInvalidArgument, want: "is set by hookmesh"},
		{name: "header value with CRLF", modify: func(e *newEvent) { e.customHeaders = map[string]string{"X-A": "a\r\nX-B: b"} }, code: connect.CodeInvalidArgument, want: `custom_headers["X-A"]: value`},
		{name: "no target", modify: func(e *newEvent) { e.endpointID = "" }, code: connect.CodeInvalidArgument, want: "endpoint_id: must not be empty"},
		{name: "unknown endpoint", modify: func(e *newEvent) { e.endpointID = "ep_2" }, code: connect.CodeNotFound, want: `endpoint "ep_2" not found in project "prj_1"`},
		{name: "registry away", endpoints: &endpointSet{err: registryDown}, code: connect.CodeUnknown, cause: registryDown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, pub := newMemStore(), &recorder{}
			endpoints := endpointSet{ids: map[string]bool{"prj_1/ep_1": true}}
			if tc.endpoints != nil {
				endpoints = *tc.endpoints
			}
			s, err := New(Config{MaxPayloadBytes: tc.maxBytes}, st, endpoints, nil, pub, testTopology, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			ctx := tc.ctx
			if ctx == nil {
				ctx = asProject()
			}
			in := newTestEvent()
			in.idempotencyKey = "key-1"
			if tc.modify != nil {
				tc.modify(&in)
			}
			ev, err := s.create(ctx, in)
			if err == nil || connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create = %v, %v; want %s with %q", ev, err, tc.code, tc.want)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Fatalf("error %v does not wrap %v", err, tc.cause)
			}
			// Refused before anything is kept: the key stays free.
			docs, _ := st.stored()
			if len(docs) != 0 || len(st.claims) != 0 || len(pub.events(t)) != 0 {
				t.Fatal("a refused event was claimed, stored or published")
			}
		})
	}
}

func TestCreateStoreFailures(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"claim", "insert"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			s, st, pub := newTestService(t, Config{})
			down := errors.New("database away")
			st.err[method] = down
			in := newTestEvent()
			in.idempotencyKey = "key-1"
			if _, err := s.create(asProject(), in); !errors.Is(err, down) {
				t.Fatalf("create = %v, want the store's error", err)
			}
			// Nothing stored is published: the client sends it again.
			if events := pub.events(t); len(events) != 0 {
				t.Fatalf("published %v for an event not stored", events)
			}
		})
	}
	// A marker that cannot be written costs a second publish by the
	// sweeper, never the answer.
	s, st, pub := newTestService(t, Config{})
	st.err["markPublished"] = errors.New("database away")
	ev, err := s.create(asProject(), newTestEvent())
	if err != nil {
		t.Fatal(err)
	}
	s.marks.Wait()
	delete(st.err, "markPublished")
	if n, err := s.Sweep(context.Background(), time.Hour, -time.Second); err != nil || n != 1 {
		t.Fatalf("sweep published %d (%v), want the unmarked event again", n, err)
	}
	if events := pub.events(t); len(events) != 2 || events[1].GetEventId() != ev.GetId() {
		t.Fatalf("published %v, want the event twice", events)
	}
}

package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// Ordered delivery per key: ingest numbers the original events of each
// (project, ordering_key) from 1, gap-free, in the order it stored them,
// and the numbers reach the router. These tests run on the real stores.

const testAdminKey = "admin-key-for-tests"

// orderingService returns the service over st (initialized here) with the
// broker replaced by a recorder; endpoint ep_1 exists in prj_1, and the
// REST API takes testAdminKey.
func orderingService(t *testing.T, st Store) (*Service, *recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.init(ctx); err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	s, err := New(Config{}, st, endpointSet{ids: map[string]bool{"prj_1/ep_1": true}}, nil, pub, testTopology,
		auth.NewKeys(testAdminKey, nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, pub
}

func keyedEvent(key string) newEvent {
	in := newTestEvent()
	in.orderingKey = key
	return in
}

// lineOf is what the answers, the store and the broker say of an event.
type lineOf struct {
	key string
	seq uint64
}

func TestOrderingSeqsConcurrent(t *testing.T) {
	t.Parallel()
	s, pub := orderingService(t, NewPostgresStore(testPool(t)))
	ctx := asProject()

	// 200 keyed events over 5 keys and 20 without a key, created by 16
	// goroutines at once. Each request's start and end are kept: a request
	// answered before another started was stored first, and must come
	// first in its line.
	type result struct {
		ev         *ingestv1.Event
		start, end time.Time
	}
	const keyed, plain, workers = 200, 20, 16
	results := make([]result, keyed+plain)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				in := newTestEvent()
				if i < keyed {
					in.orderingKey = fmt.Sprintf("customer-%d", i%5)
				}
				start := time.Now()
				ev, err := s.create(ctx, in)
				if err != nil {
					t.Errorf("create %d: %v", i, err)
				}
				results[i] = result{ev, start, time.Now()}
			}
		})
	}
	for i := range results {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	byKey := map[string][]result{}
	answered := map[string]lineOf{}
	for i, r := range results {
		if r.ev.GetIsDuplicate() {
			t.Fatalf("event %d answered as a duplicate", i)
		}
		answered[r.ev.GetId()] = lineOf{r.ev.GetOrderingKey(), r.ev.GetOrderingSeq()}
		if i >= keyed {
			if r.ev.GetOrderingKey() != "" || r.ev.GetOrderingSeq() != 0 {
				t.Errorf("event %d without a key answered key %q, seq %d", i, r.ev.GetOrderingKey(), r.ev.GetOrderingSeq())
			}
			continue
		}
		if want := fmt.Sprintf("customer-%d", i%5); r.ev.GetOrderingKey() != want {
			t.Errorf("event %d answered key %q, want %q", i, r.ev.GetOrderingKey(), want)
		}
		byKey[r.ev.GetOrderingKey()] = append(byKey[r.ev.GetOrderingKey()], r)
	}
	for key, rs := range byKey {
		var seqs []uint64
		for _, r := range rs {
			seqs = append(seqs, r.ev.GetOrderingSeq())
		}
		slices.Sort(seqs)
		for i, seq := range seqs {
			if seq != uint64(i+1) {
				t.Fatalf("key %s: seqs %v, want exactly 1..%d", key, seqs, len(rs))
			}
		}
		for _, a := range rs {
			for _, b := range rs {
				if a.end.Before(b.start) && a.ev.GetOrderingSeq() >= b.ev.GetOrderingSeq() {
					t.Errorf("key %s: event %s (seq %d) was answered before event %s (seq %d) was sent",
						key, a.ev.GetId(), a.ev.GetOrderingSeq(), b.ev.GetId(), b.ev.GetOrderingSeq())
				}
			}
		}
	}

	// Stored as answered, and published as answered, each event once.
	for id, want := range answered {
		doc, err := s.store.get(context.Background(), "prj_1", id)
		if err != nil || doc == nil {
			t.Fatalf("get %s: %v, %v", id, doc, err)
		}
		if got := (lineOf{doc.OrderingKey, doc.OrderingSeq}); got != want {
			t.Fatalf("event %s stored as %+v, answered %+v", id, got, want)
		}
	}
	published := map[string]lineOf{}
	for _, m := range pub.events(t) {
		if _, twice := published[m.GetEventId()]; twice {
			t.Fatalf("event %s published twice", m.GetEventId())
		}
		published[m.GetEventId()] = lineOf{m.GetOrderingKey(), m.GetOrderingSeq()}
	}
	if len(published) != len(answered) {
		t.Fatalf("published %d events, want %d", len(published), len(answered))
	}
	for id, want := range answered {
		if got := published[id]; got != want {
			t.Fatalf("event %s published with %+v, answered %+v", id, got, want)
		}
	}

	// Sequential creates take the next numbers, in order.
	n := uint64(len(byKey["customer-0"]))
	for i := range 5 {
		ev, err := s.create(ctx, keyedEvent("customer-0"))
		if err != nil {
			t.Fatal(err)
		}
		if want := n + uint64(i) + 1; ev.GetOrderingSeq() != want {
			t.Fatalf("sequential create %d: seq %d, want %d", i, ev.GetOrderingSeq(), want)
		}
	}

	// The same key in another project is another line.
	admin := auth.WithPrincipal(context.Background(), auth.Principal{Admin: true})
	for i := range 2 {
		in := keyedEvent("customer-0")
		in.projectID, in.endpointID, in.ownerID = "prj_2", "", "own_1"
		ev, err := s.create(admin, in)
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetOrderingSeq() != uint64(i+1) {
			t.Fatalf("prj_2's event %d: seq %d, want %d", i, ev.GetOrderingSeq(), i+1)
		}
	}
}

func TestStoreOrderingNoGaps(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	st := NewPostgresStore(pool)
	ctx := context.Background()
	if err := st.init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.close)
	now := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Minute)
	keyed := func(project, key string, at time.Time) *eventDoc {
		d := testEvent(project, at)
		d.OrderingKey = key
		return d
	}

	a := keyed("prj_a", "k", now)
	if err := st.insert(ctx, a); err != nil || a.OrderingSeq != 1 {
		t.Fatalf("first keyed event: seq %d, %v; want 1", a.OrderingSeq, err)
	}
	// An id that exists takes no number.
	again := *a
	again.OrderingSeq = 0
	if err := st.insert(ctx, &again); !errors.Is(err, errDuplicate) || again.OrderingSeq != 0 {
		t.Fatalf("insert of an existing id: seq %d, %v; want 0 and errDuplicate", again.OrderingSeq, err)
	}
	// A duplicate keeps its key, takes no number.
	dup := keyed("prj_a", "k", now.Add(time.Millisecond))
	dup.IsDuplicate, dup.DuplicateOf, dup.IdempotencyKey = true, a.ID, "idem"
	if err := st.insert(ctx, dup); err != nil || dup.OrderingSeq != 0 {
		t.Fatalf("duplicate: seq %d, %v; want 0", dup.OrderingSeq, err)
	}
	plain := testEvent("prj_a", now.Add(2*time.Millisecond))
	if err := st.insert(ctx, plain); err != nil || plain.OrderingSeq != 0 {
		t.Fatalf("event without a key: seq %d, %v; want 0", plain.OrderingSeq, err)
	}
	// The longest key allowed, in multi-byte characters.
	long := strings.Repeat("é", maxOrderingKeyLen/2)
	b := keyed("prj_a", "k", now.Add(3*time.Millisecond))
	c := keyed("prj_a", long, now.Add(4*time.Millisecond))
	for _, d := range []*eventDoc{b, c} {
		if err := st.insert(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if b.OrderingSeq != 2 || c.OrderingSeq != 1 {
		t.Fatalf("after a repeat and a duplicate: seqs %d and %d, want 2 (k) and 1 (the long key)", b.OrderingSeq, c.OrderingSeq)
	}

	// Concurrent inserts of the same ids, batched together: the stored
	// one of each pair takes a number, the other none, and the numbers
	// are 1..60.
	docs := make([]*eventDoc, 60)
	repeats := make([]*eventDoc, len(docs))
	errs, repeatErrs := make([]error, len(docs)), make([]error, len(docs))
	for i := range docs {
		docs[i] = keyed("prj_a", "k2", now.Add(time.Duration(10+i)*time.Millisecond))
		r := *docs[i]
		repeats[i] = &r
	}
	var wg sync.WaitGroup
	for i := range docs {
		wg.Go(func() { errs[i] = st.insert(ctx, docs[i]) })
		wg.Go(func() { repeatErrs[i] = st.insert(ctx, repeats[i]) })
	}
	wg.Wait()
	var seqs []uint64
	for i := range docs {
		winner, loser := docs[i], repeats[i]
		winErr, loseErr := errs[i], repeatErrs[i]
		if winErr != nil {
			winner, loser, winErr, loseErr = loser, winner, loseErr, winErr
		}
		if winErr != nil || !errors.Is(loseErr, errDuplicate) || loser.OrderingSeq != 0 {
			t.Fatalf("pair %d: %v and %v (seq %d); want one stored, one errDuplicate without a seq", i, winErr, loseErr, loser.OrderingSeq)
		}
		stored, err := st.get(ctx, "prj_a", winner.ID)
		if err != nil || stored == nil || stored.OrderingSeq != winner.OrderingSeq || stored.OrderingKey != "k2" {
			t.Fatalf("pair %d: stored %+v (%v), told seq %d", i, stored, err, winner.OrderingSeq)
		}
		seqs = append(seqs, winner.OrderingSeq)
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("seqs of k2: %v, want 1..%d", seqs, len(docs))
		}
	}
	var count int64
	if err := pool.QueryRow(ctx, "SELECT seq FROM ordering_keys WHERE project_id = 'prj_a' AND ordering_key = 'k'").Scan(&count); err != nil || count != 2 {
		t.Fatalf("ordering_keys counts %d events of k (%v), want 2", count, err)
	}

	// get, list and the outbox read the key and the number back; the
	// outbox leaves the duplicate out.
	for _, want := range []*eventDoc{a, dup, plain, b, c} {
		got, err := st.get(ctx, "prj_a", want.ID)
		if err != nil || got == nil || got.OrderingKey != want.OrderingKey || got.OrderingSeq != want.OrderingSeq {
			t.Fatalf("get %s = %+v, %v; want key %q, seq %d", want.ID, got, err, want.OrderingKey, want.OrderingSeq)
		}
	}
	listed, err := st.list(ctx, listFilter{projectID: "prj_a", limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]lineOf{}
	for _, d := range listed {
		seen[d.ID] = lineOf{d.OrderingKey, d.OrderingSeq}
	}
	if seen[b.ID] != (lineOf{"k", 2}) || seen[dup.ID] != (lineOf{"k", 0}) || seen[c.ID] != (lineOf{long, 1}) {
		t.Fatalf("list read back %+v, %+v and %+v", seen[b.ID], seen[dup.ID], seen[c.ID])
	}
	swept, err := st.unpublishedSince(ctx, now, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sweptLines := map[string]lineOf{}
	for _, d := range swept {
		sweptLines[d.ID] = lineOf{d.OrderingKey, d.OrderingSeq}
	}
	if _, ok := sweptLines[dup.ID]; ok || sweptLines[a.ID] != (lineOf{"k", 1}) || sweptLines[b.ID] != (lineOf{"k", 2}) ||
		sweptLines[plain.ID] != (lineOf{}) || len(sweptLines) != 4+len(docs) {
		t.Fatalf("unpublishedSince read %d events: %+v", len(sweptLines), sweptLines)
	}
}

// TestPostgresSchemaUpgrade opens a database made before events had
// ordering keys: init adds the columns, the old events read as without a
// key, and new ones are numbered.
func TestPostgresSchemaUpgrade(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	ctx := context.Background()
	old := testEvent("prj_a", time.Now())
	for _, stmt := range []string{`CREATE TABLE events (
	id text PRIMARY KEY, project_id text NOT NULL, event_type text NOT NULL, data bytea, custom_headers jsonb,
	idempotency_key text NOT NULL, endpoint_id text NOT NULL, owner_id text NOT NULL, broadcast boolean NOT NULL,
	is_duplicate boolean NOT NULL, duplicate_of text NOT NULL, create_time timestamptz NOT NULL)`,
		`CREATE TABLE outbox (id text PRIMARY KEY, create_time timestamptz NOT NULL)`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO events VALUES ($1, 'prj_a', 'order.paid', '{}', NULL, '', 'ep_1', '', false, false, '', $2)`,
		old.ID, old.CreateTime); err != nil {
		t.Fatal(err)
	}
	st := NewPostgresStore(pool)
	if err := st.init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.close)
	got, err := st.get(ctx, "prj_a", old.ID)
	if err != nil || got == nil || got.OrderingKey != "" || got.OrderingSeq != 0 {
		t.Fatalf("old event read as %+v, %v", got, err)
	}
	d := testEvent("prj_a", time.Now())
	d.OrderingKey = "k"
	if err := st.insert(ctx, d); err != nil || d.OrderingSeq != 1 {
		t.Fatalf("keyed event after the upgrade: seq %d, %v; want 1", d.OrderingSeq, err)
	}
}

// TestOrderingPublishedSweptAndDuplicates checks the bus message of a keyed
// event, published at once or swept after the broker was away, and that a
// duplicate keeps its key but takes no number and is not published.
func TestOrderingPublishedSweptAndDuplicates(t *testing.T) {
	t.Parallel()
	s, pub := orderingService(t, NewPostgresStore(testPool(t)))
	ctx := asProject()

	first, err := s.create(ctx, keyedEvent("invoice-7"))
	if err != nil || first.GetOrderingSeq() != 1 || first.GetOrderingKey() != "invoice-7" {
		t.Fatalf("first = %v, %v; want seq 1 of invoice-7", first, err)
	}
	if msgs := pub.events(t); len(msgs) != 1 || msgs[0].GetOrderingKey() != "invoice-7" || msgs[0].GetOrderingSeq() != 1 {
		t.Fatalf("published %v, want invoice-7 seq 1", msgs)
	}

	// The broker is away: stored with its number, swept with it later.
	pub.setErr(errors.New("broker away"))
	if _, err := s.create(ctx, keyedEvent("invoice-7")); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("create with the broker away: %v, want Unavailable", err)
	}
	pub.setErr(nil)
	s.marks.Wait()
	if n, err := s.Sweep(context.Background(), time.Hour, -time.Second); err != nil || n != 1 {
		t.Fatalf("sweep published %d (%v), want 1", n, err)
	}
	msgs := pub.events(t)
	if len(msgs) != 2 || msgs[1].GetOrderingKey() != "invoice-7" || msgs[1].GetOrderingSeq() != 2 {
		t.Fatalf("swept %v, want invoice-7 seq 2", msgs[1:])
	}

	// A repeat of an idempotency key: a duplicate, with the key sent, no
	// number, not published; the next event takes the next number.
	in := keyedEvent("invoice-7")
	in.idempotencyKey = "idem-1"
	orig, err := s.create(ctx, in)
	if err != nil || orig.GetOrderingSeq() != 3 {
		t.Fatalf("original = %v, %v; want seq 3", orig, err)
	}
	dup, err := s.create(ctx, in)
	if err != nil || !dup.GetIsDuplicate() || dup.GetOrderingKey() != "invoice-7" || dup.GetOrderingSeq() != 0 {
		t.Fatalf("repeat = %v, %v; want a duplicate keeping the key, without a seq", dup, err)
	}
	stored, err := s.store.get(context.Background(), "prj_1", dup.GetId())
	if err != nil || stored == nil || stored.OrderingKey != "invoice-7" || stored.OrderingSeq != 0 {
		t.Fatalf("duplicate stored as %+v, %v", stored, err)
	}
	if n := len(pub.events(t)); n != 3 {
		t.Fatalf("published %d events, want 3 (not the duplicate)", n)
	}
	next, err := s.create(ctx, keyedEvent("invoice-7"))
	if err != nil || next.GetOrderingSeq() != 4 {
		t.Fatalf("after the duplicate: %v, %v; want seq 4", next, err)
	}
}

// TestOrderingConnectRPCs sends ordering_key through each create RPC.
func TestOrderingConnectRPCs(t *testing.T) {
	t.Parallel()
	s, pub := orderingService(t, NewPostgresStore(testPool(t)))
	h := &handler{s: s}
	ctx := asProject()
	var answered []*ingestv1.Event
	single, err := h.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{
		ProjectId: "prj_1", EndpointId: "ep_1", EventType: "t", Data: `{}`, OrderingKey: "acct-1"}))
	if err != nil {
		t.Fatal(err)
	}
	answered = append(answered, single.Msg.GetEvent())
	fanout, err := h.CreateFanoutEvent(ctx, connect.NewRequest(&ingestv1.CreateFanoutEventRequest{
		ProjectId: "prj_1", OwnerId: "own_1", EventType: "t", Data: `{}`, OrderingKey: "acct-1"}))
	if err != nil {
		t.Fatal(err)
	}
	answered = append(answered, fanout.Msg.GetEvent())
	broadcast, err := h.CreateBroadcastEvent(ctx, connect.NewRequest(&ingestv1.CreateBroadcastEventRequest{
		ProjectId: "prj_1", EventType: "t", Data: `{}`, OrderingKey: "acct-1"}))
	if err != nil {
		t.Fatal(err)
	}
	answered = append(answered, broadcast.Msg.GetEvent())
	msgs := pub.events(t)
	if len(msgs) != 3 {
		t.Fatalf("published %d events, want 3", len(msgs))
	}
	for i, ev := range answered {
		if ev.GetOrderingKey() != "acct-1" || ev.GetOrderingSeq() != uint64(i+1) {
			t.Errorf("RPC %d answered key %q seq %d, want acct-1 seq %d", i, ev.GetOrderingKey(), ev.GetOrderingSeq(), i+1)
		}
		if msgs[i].GetEventId() != ev.GetId() || msgs[i].GetOrderingKey() != "acct-1" || msgs[i].GetOrderingSeq() != uint64(i+1) {
			t.Errorf("RPC %d published %v", i, msgs[i])
		}
	}
	got, err := h.GetEvent(ctx, connect.NewRequest(&ingestv1.GetEventRequest{ProjectId: "prj_1", EventId: answered[2].GetId()}))
	if err != nil || got.Msg.GetEvent().GetOrderingKey() != "acct-1" || got.Msg.GetEvent().GetOrderingSeq() != 3 {
		t.Fatalf("GetEvent = %v, %v; want acct-1 seq 3", got, err)
	}
}

// TestOrderingREST sends ordering_key in each REST body shape, and bad ones.
func TestOrderingREST(t *testing.T) {
	t.Parallel()
	s, pub := orderingService(t, NewPostgresStore(testPool(t)))
	mux := http.NewServeMux()
	s.Register(mux, nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	post := func(path, body string) (int, restAnswer) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/projects/prj_1/events"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out restAnswer
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&out); err != nil {
			t.Fatalf("answer %s: %v", raw, err)
		}
		return resp.StatusCode, out
	}
	for i, c := range []struct{ path, body string }{
		{"", `{"endpoint_id":"ep_1","event_type":"t","data":{},"ordering_key":"cart-9"}`},
		{"/fanout", `{"owner_id":"own_1","event_type":"t","data":{},"ordering_key":"cart-9"}`},
		{"/broadcast", `{"event_type":"t","data":{},"ordering_key":"cart-9"}`},
	} {
		status, out := post(c.path, c.body)
		if status != http.StatusCreated || out.Data == nil || out.Data.OrderingKey != "cart-9" || out.Data.OrderingSeq != uint64(i+1) {
			t.Fatalf("POST events%s: %d %+v; want 201 with cart-9 seq %d", c.path, status, out.Data, i+1)
		}
	}
	if msgs := pub.events(t); len(msgs) != 3 || msgs[2].GetOrderingKey() != "cart-9" || msgs[2].GetOrderingSeq() != 3 {
		t.Fatalf("published %v", msgs)
	}
	for _, c := range []struct{ body, want string }{
		{`{"endpoint_id":"ep_1","event_type":"t","data":{},"ordering_key":5}`, "ordering_key: must be a string, got a JSON number"},
		{`{"endpoint_id":"ep_1","event_type":"t","data":{},"ordering_key":"a\u0001b"}`, "ordering_key: must not contain control characters"},
		{`{"endpoint_id":"ep_1","event_type":"t","data":{},"orderingKey":"x"}`, "orderingKey"},
	} {
		status, out := post("", c.body)
		if status != http.StatusBadRequest || out.Code != connect.CodeInvalidArgument.String() || !strings.Contains(out.Message, c.want) {
			t.Errorf("POST %s: %d %+v; want 400 with %q", c.body, status, out, c.want)
		}
	}
}

// TestOrderingRefusedByMongo: the MongoDB store cannot number a key's
// events, so an event with a key is refused before its idempotency key is
// claimed; events without one are stored as ever.
func TestOrderingRefusedByMongo(t *testing.T) {
	t.Parallel()
	s, pub := orderingService(t, NewMongoStore(testenv.Database(t)))
	in := keyedEvent("acct-1")
	in.idempotencyKey = "idem-1"
	ev, err := s.create(asProject(), in)
	want := "ordering_key needs the PostgreSQL history store (HOOKMESH_POSTGRES_URL); this deployment keeps events in MongoDB"
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), want) {
		t.Fatalf("create with a key on MongoDB = %v, %v; want FailedPrecondition %q", ev, err, want)
	}
	// A bad key is still named as such.
	in.orderingKey = "a\x00b"
	if _, err := s.create(asProject(), in); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "ordering_key") {
		t.Fatalf("bad key on MongoDB: %v, want InvalidArgument naming ordering_key", err)
	}
	in.orderingKey = ""
	ev, err = s.create(asProject(), in)
	if err != nil || ev.GetIsDuplicate() || ev.GetOrderingSeq() != 0 {
		t.Fatalf("without a key, the same idempotency key: %v, %v; want a new event (the refused one claimed nothing)", ev, err)
	}
	if msgs := pub.events(t); len(msgs) != 1 || msgs[0].GetEventId() != ev.GetId() {
		t.Fatalf("published %v, want the event without a key", msgs)
	}
}

// lateStore hides its events from get until the first insert through it,
// as when a repeat of a request stores the event just before this one.
type lateStore struct {
	Store
	inserted atomic.Bool
}

func (s *lateStore) get(ctx context.Context, projectID, id string) (*eventDoc, error) {
	if !s.inserted.Load() {
		return nil, nil
	}
	return s.Store.get(ctx, projectID, id)
}

func (s *lateStore) insert(ctx context.Context, doc *eventDoc) error {
	s.inserted.Store(true)
	return s.Store.insert(ctx, doc)
}

// TestOrderingTakeoverRace: two repeats take over an abandoned claim and
// the other stores the event first; this one answers that event, with its
// number, and takes none.
func TestOrderingTakeoverRace(t *testing.T) {
	t.Parallel()
	pg := NewPostgresStore(testPool(t))
	st := &lateStore{Store: pg}
	s, pub := orderingService(t, st)
	s.cfg.AbandonedClaimAfter = 30 * time.Second
	ctx := context.Background()
	claimedAt := time.Now().Add(-time.Minute)
	if orig, _, err := pg.claim(ctx, "prj_1", "key-1", "evt_taken", claimedAt); err != nil || orig != "" {
		t.Fatalf("claim: %q, %v", orig, err)
	}
	other := testEvent("prj_1", time.Now())
	other.ID, other.EndpointID, other.IdempotencyKey, other.OrderingKey = "evt_taken", "ep_1", "key-1", "line-1"
	if err := pg.insert(ctx, other); err != nil || other.OrderingSeq != 1 {
		t.Fatalf("the other repeat's event: seq %d, %v", other.OrderingSeq, err)
	}
	in := keyedEvent("line-1")
	in.idempotencyKey = "key-1"
	ev, err := s.create(asProject(), in)
	if err != nil || ev.GetId() != "evt_taken" || ev.GetIsDuplicate() || ev.GetOrderingSeq() != 1 {
		t.Fatalf("create = %v, %v; want evt_taken with seq 1", ev, err)
	}
	if n := len(pub.events(t)); n != 0 {
		t.Fatalf("published %d events; the other repeat publishes it", n)
	}
	next, err := s.create(asProject(), keyedEvent("line-1"))
	if err != nil || next.GetOrderingSeq() != 2 {
		t.Fatalf("next event: %v, %v; want seq 2", next, err)
	}
}

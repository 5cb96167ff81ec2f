package ingest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// testPool opens a fresh schema in the test PostgreSQL database, dropped
// when the test ends.
func testPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := testenv.RequirePostgresURL(tb)
	schema := testenv.DatabaseName(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgdb.Open(ctx, url, schema)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgdb.DropSchema(ctx, url, schema); err != nil {
			tb.Logf("drop schema %s: %v", schema, err)
		}
	})
	return pool
}

// storeKinds makes a fresh, initialized store of each kind.
var storeKinds = []struct {
	name string
	open func(tb testing.TB) Store
}{
	{"postgres", func(tb testing.TB) Store { return NewPostgresStore(testPool(tb)) }},
	{"mongo", func(tb testing.TB) Store { return NewMongoStore(testenv.Database(tb)) }},
}

// forEachStore runs f on a fresh store of each kind.
func forEachStore(t *testing.T, f func(t *testing.T, st Store)) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			st := kind.open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := st.init(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(st.close)
			f(t, st)
		})
	}
}

func TestStoreClaimOneWinner(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		const racers = 24
		type outcome struct {
			mine, orig string
			at         time.Time
		}
		results := make([]outcome, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				id := ids.NewAt("evt", now)
				orig, at, err := st.claim(ctx, "prj_a", "key-1", id, now.Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					t.Error(err)
				}
				results[i] = outcome{id, orig, at}
			})
		}
		wg.Wait()
		var winners []outcome
		for _, r := range results {
			if r.orig == "" {
				winners = append(winners, r)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("%d requests won the claim, want 1", len(winners))
		}
		winner := winners[0]
		var winnerTime time.Time
		for i, r := range results {
			if r.mine == winner.mine {
				winnerTime = now.Add(time.Duration(i) * time.Millisecond)
			}
		}
		for _, r := range results {
			if r.orig != "" && (r.orig != winner.mine || !r.at.Equal(winnerTime)) {
				t.Errorf("a loser was told %s at %v, want %s at %v", r.orig, r.at, winner.mine, winnerTime)
			}
		}
		// The same key in another project is another claim.
		if orig, _, err := st.claim(ctx, "prj_b", "key-1", "evt_other", now); err != nil || orig != "" {
			t.Fatalf("claim in another project: %q, %v; want it won", orig, err)
		}
	})
}

func testEvent(project string, at time.Time) *eventDoc {
	return &eventDoc{ID: ids.NewAt("evt", at), ProjectID: project, EventType: "order.paid", Data: []byte(`{"n":1}`), CreateTime: at.UTC().Truncate(time.Millisecond)}
}

func TestStoreInsertAndGet(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		now := time.Now()
		full := testEvent("prj_a", now)
		full.Data = []byte(`{"amount": 12345678901234567890, "z":1,"a":"\u00e9"}`)
		full.CustomHeaders = map[string]string{"X-A": "1", "X-B": "two"}
		full.IdempotencyKey, full.EndpointID, full.OwnerID, full.Broadcast = "k", "ep_1", "alice", true
		full.IsDuplicate, full.DuplicateOf = true, "evt_first"
		if err := st.insert(ctx, full); err != nil {
			t.Fatal(err)
		}
		got, err := st.get(ctx, "prj_a", full.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || !reflect.DeepEqual(*got, *full) {
			t.Fatalf("get = %+v, want %+v", got, full)
		}
		if err := st.insert(ctx, full); !errors.Is(err, errDuplicate) {
			t.Fatalf("second insert of %s: %v, want errDuplicate", full.ID, err)
		}
		if got, err := st.get(ctx, "prj_b", full.ID); err != nil || got != nil {
			t.Fatalf("get from another project = %v, %v; want nothing", got, err)
		}
		if got, err := st.get(ctx, "prj_a", "evt_none"); err != nil || got != nil {
			t.Fatalf("get of a missing event = %v, %v; want nothing", got, err)
		}

		// Concurrent inserts, batched together: each is stored, and each
		// caller learns its own outcome (of two inserts of one id, one is
		// stored and the other told errDuplicate).
		var wg sync.WaitGroup
		docs := make([]*eventDoc, 60)
		errs := make([]error, len(docs))
		repeatErrs := make([]error, len(docs))
		for i := range docs {
			docs[i] = testEvent("prj_a", now.Add(time.Duration(i)*time.Millisecond))
		}
		for i := range docs {
			wg.Go(func() { errs[i] = st.insert(ctx, docs[i]) })
			wg.Go(func() {
				repeatErrs[i] = st.insert(ctx, &eventDoc{ID: docs[i].ID, ProjectID: "prj_a", EventType: "repeat", CreateTime: docs[i].CreateTime})
			})
		}
		wg.Wait()
		for i, d := range docs {
			got, err := st.get(ctx, "prj_a", d.ID)
			if err != nil || got == nil {
				t.Fatalf("event %d not stored: %v", i, err)
			}
			winner, loser := errs[i], repeatErrs[i]
			if got.EventType == "repeat" {
				winner, loser = loser, winner
			}
			if winner != nil || !errors.Is(loser, errDuplicate) {
				t.Fatalf("event %d: the insert stored was told %v, the other %v (want nil and errDuplicate)", i, winner, loser)
			}
		}
	})
}

// listFixture stores events of two projects with every field varied, and
// returns those of prj_a newest first.
func listFixture(t *testing.T, st Store) []eventDoc {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var want []eventDoc
	var wg sync.WaitGroup
	for i := range 40 {
		at := base.Add(time.Duration(i) * time.Minute)
		if i%10 == 3 {
			at = base.Add(time.Duration(i-1) * time.Minute) // two events in one millisecond
		}
		d := testEvent("prj_a", at)
		d.EventType = []string{"order.paid", "user.created", "order.refunded"}[i%3]
		switch i % 4 {
		case 0:
			d.EndpointID = []string{"ep_1", "ep_2"}[i%8/4]
		case 1:
			d.OwnerID = []string{"alice", "bob"}[i%8/4]
		default:
			d.Broadcast = true
		}
		if i%5 == 0 {
			d.IdempotencyKey = fmt.Sprintf("key-%d", i%15)
			if i >= 15 {
				d.IsDuplicate, d.DuplicateOf = true, "evt_x"
			}
		}
		want = append(want, *d)
		other := testEvent("prj_b", at)
		other.EventType, other.EndpointID, other.OwnerID, other.IdempotencyKey = d.EventType, d.EndpointID, d.OwnerID, d.IdempotencyKey
		for _, doc := range []*eventDoc{d, other} {
			wg.Go(func() {
				if err := st.insert(ctx, doc); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	slices.SortFunc(want, func(a, b eventDoc) int {
		if c := b.CreateTime.Compare(a.CreateTime); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return want
}

func TestStoreListFiltersAndPages(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st Store) {
		all := listFixture(t, st)
		base := all[len(all)-1].CreateTime
		yes, no := true, false
		for _, tc := range []struct {
			name  string
			f     listFilter
			match func(d eventDoc) bool
		}{
			{"all", listFilter{}, func(eventDoc) bool { return true }},
			{"event type", listFilter{eventType: "order.paid"}, func(d eventDoc) bool { return d.EventType == "order.paid" }},
			{"endpoint", listFilter{endpointID: "ep_2"}, func(d eventDoc) bool { return d.EndpointID == "ep_2" }},
			{"owner", listFilter{ownerID: "alice"}, func(d eventDoc) bool { return d.OwnerID == "alice" }},
			{"idempotency key", listFilter{idempotencyKey: "key-5"}, func(d eventDoc) bool { return d.IdempotencyKey == "key-5" }},
			{"duplicates", listFilter{duplicate: &yes}, func(d eventDoc) bool { return d.IsDuplicate }},
			{"originals", listFilter{duplicate: &no}, func(d eventDoc) bool { return !d.IsDuplicate }},
			{"from", listFilter{start: base.Add(25 * time.Minute)}, func(d eventDoc) bool { return !d.CreateTime.Before(base.Add(25 * time.Minute)) }},
			{"until", listFilter{end: base.Add(12 * time.Minute)}, func(d eventDoc) bool { return d.CreateTime.Before(base.Add(12 * time.Minute)) }},
			{"time range", listFilter{start: base.Add(10 * time.Minute), end: base.Add(30*time.Minute + time.Second)},
				func(d eventDoc) bool {
					return !d.CreateTime.Before(base.Add(10*time.Minute)) && d.CreateTime.Before(base.Add(30*time.Minute+time.Second))
				}},
			{"empty range", listFilter{end: base}, func(eventDoc) bool { return false }},
			{"type and range", listFilter{eventType: "user.created", start: base.Add(20 * time.Minute)},
				func(d eventDoc) bool {
					return d.EventType == "user.created" && !d.CreateTime.Before(base.Add(20*time.Minute))
				}},
			{"owner and originals", listFilter{ownerID: "bob", duplicate: &no}, func(d eventDoc) bool { return d.OwnerID == "bob" && !d.IsDuplicate }},
			{"key and duplicates", listFilter{idempotencyKey: "key-0", duplicate: &yes}, func(d eventDoc) bool { return d.IdempotencyKey == "key-0" && d.IsDuplicate }},
			{"endpoint and type", listFilter{endpointID: "ep_1", eventType: "order.refunded"}, func(d eventDoc) bool { return d.EndpointID == "ep_1" && d.EventType == "order.refunded" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var want []string
				for _, d := range all {
					if tc.match(d) {
						want = append(want, d.ID)
					}
				}
				for _, size := range []int{3, 50} {
					f := tc.f
					f.projectID, f.limit = "prj_a", size
					var got []string
					for pages := 0; ; pages++ {
						if pages > 50 {
							t.Fatal("pagination does not end")
						}
						docs, err := st.list(context.Background(), f)
						if err != nil {
							t.Fatal(err)
						}
						for _, d := range docs {
							got = append(got, d.ID)
						}
						if len(docs) < size {
							break
						}
						f.before = docs[len(docs)-1].ID
					}
					if !slices.Equal(got, want) {
						t.Fatalf("pages of %d: got %d events %v\nwant %d %v", size, len(got), got, len(want), want)
					}
				}
			})
		}
	})
}

func TestStoreOutbox(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
		var originals []*eventDoc
		for i := range 12 {
			d := testEvent(fmt.Sprintf("prj_%d", i%3), base.Add(time.Duration(i)*time.Minute))
			if err := st.insert(ctx, d); err != nil {
				t.Fatal(err)
			}
			originals = append(originals, d)
		}
		dup := testEvent("prj_0", base.Add(5*time.Minute+time.Second))
		dup.IsDuplicate, dup.DuplicateOf = true, originals[0].ID
		if err := st.insert(ctx, dup); err != nil {
			t.Fatal(err)
		}
		for i, d := range originals {
			if i%3 == 0 {
				if err := st.markPublished(ctx, d.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Marking twice is harmless.
		if err := st.markPublished(ctx, originals[0].ID); err != nil {
			t.Fatal(err)
		}
		from, to := base.Add(2*time.Minute), base.Add(9*time.Minute)
		var want []string
		for i, d := range originals {
			if i%3 != 0 && !d.CreateTime.Before(from) && d.CreateTime.Before(to) {
				want = append(want, d.ID)
			}
		}
		slices.Sort(want)
		docs, err := st.unpublishedSince(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range docs {
			got = append(got, d.ID)
			if d.EventType != "order.paid" || string(d.Data) != `{"n":1}` {
				t.Errorf("swept event %s read back as %+v", d.ID, d)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("unpublished in [2m, 9m) = %v, want %v", got, want)
		}
		marked, err := st.published(ctx, []string{originals[0].ID, originals[1].ID, originals[3].ID, "evt_none"})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]bool{originals[0].ID: true, originals[3].ID: true}; !reflect.DeepEqual(marked, want) {
			t.Fatalf("published = %v, want %v", marked, want)
		}
		for _, d := range docs {
			if err := st.markPublished(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
		}
		if docs, err := st.unpublishedSince(ctx, from, to); err != nil || len(docs) != 0 {
			t.Fatalf("after marking them all: %d unpublished, %v", len(docs), err)
		}
	})
}

// TestStoreLargeEvents stores events of the largest size at once: more
// than one insert statement holds (pgChunkBytes), and each is stored whole.
func TestStoreLargeEvents(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		docs := make([]*eventDoc, 12)
		var wg sync.WaitGroup
		for i := range docs {
			docs[i] = testEvent("prj_a", time.Now())
			docs[i].Data = []byte(`"` + strings.Repeat(string(rune('a'+i)), 1<<20-2) + `"`)
			wg.Go(func() {
				if err := st.insert(ctx, docs[i]); err != nil {
					t.Errorf("insert %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		for i, d := range docs {
			got, err := st.get(ctx, "prj_a", d.ID)
			if err != nil || got == nil || string(got.Data) != string(d.Data) {
				t.Fatalf("event %d read back whole: %v (%v)", i, got != nil && string(got.Data) == string(d.Data), err)
			}
		}
	})
}

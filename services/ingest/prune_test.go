package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/hookmesh/hookmesh/internal/retention"
)

// staticRetentions is a registry that answers one retention a project.
type staticRetentions map[string]int

func (s staticRetentions) ListRetentions(context.Context) (map[string]int, error) { return s, nil }

// TestPruneEvents stores events and idempotency claims 40 days old and an
// hour old in two projects, prunes the first project (30 days) in batches
// of two, and checks that its old events are gone from every query, that
// its old idempotency key can be used again by a new event, and that the
// rest is untouched.
func TestPruneEvents(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		old, recent := now.Add(-40*24*time.Hour), now.Add(-time.Hour)
		var oldA []*eventDoc
		for i := range 5 {
			e := testEvent("prj_a", old.Add(time.Duration(i)*time.Minute))
			e.IdempotencyKey = "key-old-" + string(rune('0'+i))
			if orig, _, err := st.claim(ctx, "prj_a", e.IdempotencyKey, e.ID, e.CreateTime); err != nil || orig != "" {
				t.Fatalf("claim: %q, %v", orig, err)
			}
			oldA = append(oldA, e)
		}
		newA := testEvent("prj_a", recent)
		newA.IdempotencyKey = "key-new"
		if _, _, err := st.claim(ctx, "prj_a", newA.IdempotencyKey, newA.ID, newA.CreateTime); err != nil {
			t.Fatal(err)
		}
		oldB := testEvent("prj_b", old)
		for _, e := range append(oldA, newA, oldB) {
			if err := st.insert(ctx, e); err != nil {
				t.Fatalf("insert %s: %v", e.ID, err)
			}
		}
		// One old event was confirmed by the broker, the others never were.
		if err := st.markPublished(ctx, oldA[0].ID); err != nil {
			t.Fatal(err)
		}

		p, err := retention.New(retention.Config{BatchSize: 2, Pause: time.Millisecond}, "ingest", staticRetentions{"prj_a": 30}, &Service{store: st}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.RunOnce(ctx)
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if got[retention.KindEvents] != 5 || got[retention.KindClaims] != 5 {
			t.Errorf("pruned %v, want 5 events and 5 idempotency keys", got)
		}

		for _, e := range oldA {
			if d, err := st.get(ctx, "prj_a", e.ID); err != nil || d != nil {
				t.Errorf("old event %s still there (%v, %v)", e.ID, d, err)
			}
		}
		for _, e := range []*eventDoc{newA, oldB} {
			if d, err := st.get(ctx, e.ProjectID, e.ID); err != nil || d == nil {
				t.Errorf("event %s of %s is gone (%v)", e.ID, e.ProjectID, err)
			}
		}
		list, err := st.list(ctx, listFilter{projectID: "prj_a", limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != newA.ID {
			t.Errorf("prj_a lists %d events, want only the recent one", len(list))
		}
		list, err = st.list(ctx, listFilter{projectID: "prj_a", idempotencyKey: oldA[1].IdempotencyKey, limit: 50})
		if err != nil || len(list) != 0 {
			t.Errorf("the old key still lists %d events (%v)", len(list), err)
		}
		// The old key is free again; the recent one is still claimed.
		fresh := testEvent("prj_a", now)
		if orig, _, err := st.claim(ctx, "prj_a", oldA[1].IdempotencyKey, fresh.ID, now); err != nil || orig != "" {
			t.Errorf("claiming a pruned key again: %q, %v; want it won", orig, err)
		}
		if orig, _, err := st.claim(ctx, "prj_a", newA.IdempotencyKey, fresh.ID, now); err != nil || orig != newA.ID {
			t.Errorf("claiming the recent key: %q, %v; want it held by %s", orig, err, newA.ID)
		}
		// The sweeper finds nothing of the pruned events to publish.
		unsent, err := st.unpublishedSince(ctx, old.Add(-time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range unsent {
			if e.ProjectID == "prj_a" && e.CreateTime.Before(now.Add(-30*24*time.Hour)) {
				t.Errorf("pruned event %s is still in the outbox", e.ID)
			}
		}
		// A second run has nothing left to do.
		if got, err := p.RunOnce(ctx); err != nil || got.Total() != 0 {
			t.Errorf("second run pruned %v (%v), want nothing", got, err)
		}
	})
}

package status

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/retention"
)

// staticRetentions is a registry that answers one retention a project.
type staticRetentions map[string]int

func (s staticRetentions) ListRetentions(context.Context) (map[string]int, error) { return s, nil }

// TestPrune stores finished and in-flight deliveries 40 days old and
// recent ones in two projects, prunes the first (30 days) in batches of
// one, and checks every query: the old finished deliveries, their
// attempts, counts and statistics are gone; the recent ones, the old one
// still in flight and the other project are untouched; the counters match
// what is stored. A change of a pruned delivery afterwards (a retry that
// raced the prune) stores it anew, whole.
func TestPrune(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		old, recent := now.Add(-40*24*time.Hour), now.Add(-2*time.Hour)
		mk := func(id, project, event, endpoint string, at time.Time) delivery {
			return delivery{id: id, project: project, event: event, endpoint: endpoint, eventType: "order.paid", created: at}
		}
		oldOK := mk("dlv_old_ok", "prj_a", "evt_old1", "ep_1", old)
		oldFailed := mk("dlv_old_failed", "prj_a", "evt_old1", "ep_2", old.Add(time.Minute))
		oldDiscarded := mk("dlv_old_discarded", "prj_a", "evt_old2", "ep_1", old.Add(2*time.Minute))
		oldRetrying := mk("dlv_old_retrying", "prj_a", "evt_old2", "ep_2", old.Add(3*time.Minute))
		newOK := mk("dlv_new_ok", "prj_a", "evt_new", "ep_1", recent)
		otherOld := mk("dlv_other_old", "prj_b", "evt_b", "ep_b", old)
		changes := []*busv1.StateChange{
			oldOK.change(scheduled, 1), oldOK.change(success, 1),
			oldFailed.change(scheduled, 1), oldFailed.change(retry, 1), oldFailed.change(retry, 2), oldFailed.change(failed, 3),
			oldDiscarded.change(discarded, 0),
			oldRetrying.change(scheduled, 1), oldRetrying.change(retry, 1),
			newOK.change(scheduled, 1), newOK.change(success, 1),
			otherOld.change(success, 1),
		}
		if err := s.Apply(ctx, changes); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if n := countAttempts(t, s); n != 7 {
			t.Fatalf("%d attempts stored, want 7", n)
		}

		p, err := retention.New(retention.Config{BatchSize: 1, Pause: time.Millisecond}, "status", staticRetentions{"prj_a": 30, "prj_b": 3650}, s, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.RunOnce(ctx)
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if got[retention.KindDeliveries] != 3 || got[retention.KindAttempts] != 4 || got[retention.KindStatistics] == 0 {
			t.Errorf("pruned %v, want 3 deliveries, 4 attempts and some statistics", got)
		}

		for _, d := range []delivery{oldOK, oldFailed, oldDiscarded} {
			if got, err := s.store.getDelivery(ctx, "prj_a", d.id); err != nil || got != nil {
				t.Errorf("pruned delivery %s still there (%v)", d.id, err)
			}
			if as, err := s.store.listAttempts(ctx, "prj_a", d.id); err != nil || len(as) != 0 {
				t.Errorf("pruned delivery %s still has %d attempts (%v)", d.id, len(as), err)
			}
		}
		for _, d := range []delivery{oldRetrying, newOK, otherOld} {
			if got, err := s.store.getDelivery(ctx, d.project, d.id); err != nil || got == nil {
				t.Errorf("delivery %s is gone (%v)", d.id, err)
			}
		}
		if n := countAttempts(t, s); n != 3 {
			t.Errorf("%d attempts left, want 3 (the retrying, the new and the other project's)", n)
		}
		list, err := s.store.listDeliveries(ctx, &deliveryQuery{projectID: "prj_a", limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, d := range list {
			listed = append(listed, d.ID)
		}
		if len(listed) != 2 || listed[0] != newOK.id || listed[1] != oldRetrying.id {
			t.Errorf("prj_a lists %v, want [%s %s]", listed, newOK.id, oldRetrying.id)
		}
		wantCounts := func(q *deliveryQuery, want map[statusv1.DeliveryStatus]uint64) {
			t.Helper()
			got, err := s.store.countDeliveries(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("counts of %+v: %v, want %v", q, got, want)
				return
			}
			for st, n := range want {
				if got[st] != n {
					t.Errorf("counts of %+v: %v, want %v", q, got, want)
					return
				}
			}
		}
		wantCounts(&deliveryQuery{projectID: "prj_a"}, map[statusv1.DeliveryStatus]uint64{success: 1, retry: 1})
		wantCounts(&deliveryQuery{projectID: "prj_a", endpointID: "ep_1"}, map[statusv1.DeliveryStatus]uint64{success: 1})
		wantCounts(&deliveryQuery{projectID: "prj_a", endpointID: "ep_2"}, map[statusv1.DeliveryStatus]uint64{retry: 1})
		wantCounts(&deliveryQuery{projectID: "prj_a", eventID: "evt_old1"}, map[statusv1.DeliveryStatus]uint64{})
		wantCounts(&deliveryQuery{projectID: "prj_b"}, map[statusv1.DeliveryStatus]uint64{success: 1})
		byEvent, err := s.store.countByEvent(ctx, "prj_a", []string{"evt_old1", "evt_old2", "evt_new"})
		if err != nil {
			t.Fatal(err)
		}
		if len(byEvent["evt_old1"]) != 0 || byEvent["evt_old2"][retry] != 1 || len(byEvent["evt_old2"]) != 1 || byEvent["evt_new"][success] != 1 {
			t.Errorf("counts by event: %v", byEvent)
		}
		if pg, ok := s.store.(*pgStore); ok {
			for _, table := range []string{"project_counts", "endpoint_counts", "event_counts"} {
				var n int
				if err := pg.pool.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE n <= 0").Scan(&n); err != nil || n != 0 {
					t.Errorf("%s keeps %d rows at zero (%v)", table, n, err)
				}
			}
		}
		// The statistics of the pruned days are gone, the recent ones stay.
		stats := func(start time.Time) int {
			rows, err := s.store.stats(ctx, &statsQuery{projectID: "prj_a", start: statMinute(start), end: statMinute(start.Add(24 * time.Hour)), bucket: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return len(rows.statuses) + len(rows.latencies)
		}
		if n := stats(old.Add(-time.Hour)); n != 0 {
			t.Errorf("%d statistics rows left of the pruned day", n)
		}
		if n := stats(recent.Add(-time.Hour)); n == 0 {
			t.Error("the recent statistics are gone")
		}

		// A retry of a pruned delivery that raced the prune: its SCHEDULED
		// stores it again, whole, as a new delivery in flight.
		if err := s.Apply(ctx, []*busv1.StateChange{oldFailed.change(scheduled, 4)}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		again, err := s.store.getDelivery(ctx, "prj_a", oldFailed.id)
		if err != nil || again == nil || statusv1.DeliveryStatus(again.Status) != scheduled || again.Seq != 4*8+1 {
			t.Fatalf("the retried delivery is %+v (%v), want it SCHEDULED for attempt 4", again, err)
		}
		wantCounts(&deliveryQuery{projectID: "prj_a"}, map[statusv1.DeliveryStatus]uint64{success: 1, retry: 1, scheduled: 1})

		// A second run has nothing left to delete.
		if got, err := p.RunOnce(ctx); err != nil || got[retention.KindDeliveries] != 0 {
			t.Errorf("second run pruned %v (%v), want no delivery", got, err)
		}
	})
}

// TestPruneRacesRetries prunes old FAILED deliveries while manual retries
// of them (a SCHEDULED and a SUCCESS with its attempt) are applied, in
// small batches, at the same time. Whatever the interleaving, no delivery
// is left half deleted: every stored delivery has the attempts it shows,
// the counts are those of what is stored, and (in PostgreSQL) no attempt
// is left without its delivery.
func TestPruneRacesRetries(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		old := time.Now().UTC().Truncate(time.Millisecond).Add(-40 * 24 * time.Hour)
		const n = 120
		ds := make([]delivery, n)
		var changes []*busv1.StateChange
		for i := range ds {
			ds[i] = delivery{id: fmt.Sprintf("dlv_race_%03d", i), project: "prj_a", event: fmt.Sprintf("evt_race_%03d", i),
				endpoint: "ep_1", eventType: "order.paid", created: old.Add(time.Duration(i) * time.Second)}
			changes = append(changes, ds[i].change(failed, 1))
		}
		if err := s.Apply(ctx, changes); err != nil {
			t.Fatal(err)
		}
		p, err := retention.New(retention.Config{BatchSize: 7, Pause: time.Millisecond}, "status", staticRetentions{"prj_a": 30}, s, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := p.RunOnce(ctx); err != nil {
				t.Errorf("RunOnce: %v", err)
			}
		})
		wg.Go(func() {
			for i := 0; i < n; i += 3 {
				var batch []*busv1.StateChange
				for _, d := range ds[i:min(i+3, n)] {
					batch = append(batch, d.change(scheduled, 2), d.change(success, 2))
				}
				if err := s.Apply(ctx, batch); err != nil {
					t.Errorf("Apply: %v", err)
				}
			}
		})
		wg.Wait()

		stored, err := s.store.listDeliveries(ctx, &deliveryQuery{projectID: "prj_a", limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]deliveryDoc{}
		want := map[statusv1.DeliveryStatus]uint64{}
		for _, d := range stored {
			byID[d.ID] = d
			want[statusv1.DeliveryStatus(d.Status)]++
		}
		for _, d := range ds {
			as, err := s.store.listAttempts(ctx, "prj_a", d.id)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := byID[d.id]
			for _, a := range as {
				switch {
				case !ok && kind == onPostgres:
					t.Errorf("attempt %d of %s is left without its delivery", a.Attempt, d.id)
				case !ok:
					// FerretDB deletes what matched its filter a moment
					// before, not atomically: a retry that finished in
					// that moment can leave its attempt behind, which no
					// query shows (on MongoDB the delete checks each
					// document as it deletes it).
					t.Logf("attempt %d of %s is left without its delivery", a.Attempt, d.id)
				case a.Attempt > got.Attempts:
					t.Errorf("attempt %d of %s is beyond its delivery's %d attempts", a.Attempt, d.id, got.Attempts)
				}
			}
			if ok && got.Status == int32(success) && len(as) == 0 {
				t.Errorf("delivery %s is SUCCESS without its attempt", d.id)
			}
		}
		counts, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: "prj_a"})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("counts %v, stored %v", counts, want)
		}
		t.Logf("%d of %d deliveries stored after the race", len(stored), n)
	})
}

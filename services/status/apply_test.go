package status

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/ids"
)

func TestSeqOrdersAttemptThenPhase(t *testing.T) {
	t.Parallel()
	d := delivery{id: "dlv_1", project: "prj_1"}
	// Each change moves the delivery forward from every change before it.
	ordered := []*busv1.StateChange{
		d.change(scheduled, 0), // the router's first attempt may say 0
		d.change(processing, 1),
		d.change(retry, 1),
		d.change(scheduled, 2),
		d.change(processing, 2),
		d.change(failed, 2),
		d.change(processing, 3),
	}
	for i := 1; i < len(ordered); i++ {
		prev, cur := seqOf(ordered[i-1]), seqOf(ordered[i])
		if cur <= prev {
			t.Errorf("%v attempt %d: seq %d, not above %v attempt %d: seq %d",
				ordered[i].Status, ordered[i].Attempt, cur, ordered[i-1].Status, ordered[i-1].Attempt, prev)
		}
	}
	if a, b := seqOf(d.change(scheduled, 0)), seqOf(d.change(scheduled, 1)); a != b {
		t.Errorf("SCHEDULED attempt 0 has seq %d, attempt 1 has %d: want equal", a, b)
	}
	for _, st := range []statusv1.DeliveryStatus{success, retry, failed, discarded} {
		if got := seqOf(d.change(st, 1)); got != 11 {
			t.Errorf("%v attempt 1: seq %d, want 11", st, got)
		}
	}
}

func TestCheckChange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    *busv1.StateChange
		ok   bool
	}{
		{"valid", &busv1.StateChange{DeliveryId: "d", ProjectId: "p", Status: success, Attempt: 1}, true},
		{"nil", nil, false},
		{"no delivery", &busv1.StateChange{ProjectId: "p", Status: success}, false},
		{"no project", &busv1.StateChange{DeliveryId: "d", Status: success}, false},
		{"unspecified", &busv1.StateChange{DeliveryId: "d", ProjectId: "p"}, false},
		{"unknown status", &busv1.StateChange{DeliveryId: "d", ProjectId: "p", Status: 42}, false},
		{"time after 9999", &busv1.StateChange{DeliveryId: "d", ProjectId: "p", Status: success, Time: &timestamppb.Timestamp{Seconds: 1e15}}, false},
		{"invalid next attempt time", &busv1.StateChange{DeliveryId: "d", ProjectId: "p", Status: retry, NextAttemptTime: &timestamppb.Timestamp{Nanos: -1}}, false},
		{"invalid start time", &busv1.StateChange{DeliveryId: "d", ProjectId: "p", Status: success,
			Record: &statusv1.Attempt{StartTime: &timestamppb.Timestamp{Seconds: -1e13}}}, false},
		{"valid times", &busv1.StateChange{DeliveryId: "d", ProjectId: "p", Status: success, Time: timestamppb.Now(), EventCreateTime: timestamppb.Now(),
			Record: &statusv1.Attempt{StartTime: timestamppb.Now()}}, true},
	}
	for _, tt := range tests {
		if err := CheckChange(tt.c); (err == nil) != tt.ok {
			t.Errorf("%s: CheckChange = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestPlanCoalesces(t *testing.T) {
	t.Parallel()
	s := &Service{logger: slog.New(slog.DiscardHandler)}
	a := delivery{id: "dlv_a", project: "prj_1", event: "evt_1", created: time.UnixMilli(1_700_000_000_000)}
	b := delivery{id: "dlv_b", project: "prj_1", event: "evt_1", created: a.created}
	changes := []*busv1.StateChange{
		a.change(success, 1), a.change(scheduled, 1), b.change(scheduled, 1),
		a.change(processing, 1), a.change(success, 1), // a duplicate of the first
		b.change(retry, 1), b.change(processing, 2),
		{DeliveryId: "dlv_bad", ProjectId: "prj_1"}, // no status: skipped
	}
	writes, attempts := s.plan(changes, time.Now())
	if len(writes) != 2 || writes[0].doc.ID != "dlv_a" || writes[1].doc.ID != "dlv_b" {
		t.Fatalf("writes = %+v, want dlv_a then dlv_b", writes)
	}
	if w := writes[0].doc; w.Status != int32(success) || w.Seq != 11 || w.LastStatusCode != 200 {
		t.Errorf("dlv_a: status %d seq %d code %d, want SUCCESS, 11, 200", w.Status, w.Seq, w.LastStatusCode)
	}
	// PROCESSING of attempt 2 wins; the RETRY of attempt 1 still describes
	// the latest result.
	if w := writes[1].doc; w.Status != int32(processing) || w.Attempts != 2 || w.LastStatusCode != 503 || w.NextAttemptTime != nil {
		t.Errorf("dlv_b: %+v, want PROCESSING, attempts 2, last code 503, no next attempt", w)
	}
	var got []string
	for _, at := range attempts {
		got = append(got, at.ID)
	}
	want := []string{attemptID("dlv_a", 1), attemptID("dlv_b", 1)}
	if !slices.Equal(got, want) {
		t.Errorf("attempts = %v, want %v", got, want)
	}
	if writes[0].doc.CreateTime != a.created.UTC() {
		t.Errorf("create_time = %v, want the event's %v", writes[0].doc.CreateTime, a.created)
	}
}

// want is the expected state of a delivery after its changes.
type want struct {
	status     statusv1.DeliveryStatus
	attempts   uint32
	records    []uint32 // attempt numbers of the stored attempts
	lastCode   int32
	nextRetry  bool
	updateTime *busv1.StateChange // the change whose time is the update time
}

func TestApply(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)

		tests := []struct {
			name    string
			batches func(d delivery) [][]*busv1.StateChange
			want    func(d delivery) want
		}{
			{
				name: "in order",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(scheduled, 1)}, {d.change(processing, 1)}, {d.change(success, 1)}}
				},
				want: func(d delivery) want {
					return want{status: success, attempts: 1, records: []uint32{1}, lastCode: 200, updateTime: d.change(success, 1)}
				},
			},
			{
				name: "reordered: success, processing, scheduled",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(success, 1)}, {d.change(processing, 1)}, {d.change(scheduled, 1)}}
				},
				want: func(d delivery) want {
					return want{status: success, attempts: 1, records: []uint32{1}, lastCode: 200, updateTime: d.change(success, 1)}
				},
			},
			{
				name: "scheduled after processing does not move back",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(processing, 1)}, {d.change(scheduled, 0)}}
				},
				want: func(d delivery) want {
					return want{status: processing, attempts: 1, updateTime: d.change(processing, 1)}
				},
			},
			{
				name: "scheduled attempt 0 then processing attempt 1",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(scheduled, 0)}, {d.change(processing, 1)}}
				},
				want: func(d delivery) want {
					return want{status: processing, attempts: 1, updateTime: d.change(processing, 1)}
				},
			},
			{
				name: "retry then success on attempt 2",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{
						{d.change(scheduled, 1)}, {d.change(processing, 1)}, {d.change(retry, 1)},
						{d.change(processing, 2)}, {d.change(success, 2)},
					}
				},
				want: func(d delivery) want {
					return want{status: success, attempts: 2, records: []uint32{1, 2}, lastCode: 200, updateTime: d.change(success, 2)}
				},
			},
			{
				name: "retry waits for its next attempt",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(processing, 1)}, {d.change(retry, 1)}}
				},
				want: func(d delivery) want {
					return want{status: retry, attempts: 1, records: []uint32{1}, lastCode: 503, nextRetry: true, updateTime: d.change(retry, 1)}
				},
			},
			{
				name: "processing of attempt 2 after retry of attempt 1 moves forward",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(retry, 1)}, {d.change(processing, 2)}}
				},
				want: func(d delivery) want {
					// The retry's next attempt time is over; its result is
					// still the latest one.
					return want{status: processing, attempts: 2, records: []uint32{1}, lastCode: 503, updateTime: d.change(processing, 2)}
				},
			},
			{
				name: "late retry of attempt 1 after processing of attempt 2",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(processing, 2)}, {d.change(retry, 1)}}
				},
				want: func(d delivery) want {
					return want{status: processing, attempts: 2, records: []uint32{1}, updateTime: d.change(processing, 2)}
				},
			},
			{
				name: "coalesced in one batch",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{
						d.change(scheduled, 1), d.change(processing, 1), d.change(retry, 1),
						d.change(scheduled, 2), d.change(processing, 2), d.change(failed, 2),
					}}
				},
				want: func(d delivery) want {
					return want{status: failed, attempts: 2, records: []uint32{1, 2}, lastCode: 503, updateTime: d.change(failed, 2)}
				},
			},
			{
				name: "coalesced in one batch, reversed",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{
						d.change(failed, 2), d.change(processing, 2), d.change(scheduled, 2),
						d.change(retry, 1), d.change(processing, 1), d.change(scheduled, 1),
					}}
				},
				want: func(d delivery) want {
					return want{status: failed, attempts: 2, records: []uint32{1, 2}, lastCode: 503, updateTime: d.change(failed, 2)}
				},
			},
			{
				name: "duplicates in a batch and across batches",
				batches: func(d delivery) [][]*busv1.StateChange {
					b := []*busv1.StateChange{d.change(scheduled, 1), d.change(scheduled, 1), d.change(success, 1), d.change(success, 1)}
					return [][]*busv1.StateChange{b, b, {d.change(processing, 1)}, b}
				},
				want: func(d delivery) want {
					return want{status: success, attempts: 1, records: []uint32{1}, lastCode: 200, updateTime: d.change(success, 1)}
				},
			},
			{
				name: "discarded",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(scheduled, 1)}, {d.change(discarded, 1)}, {d.change(processing, 1)}}
				},
				want: func(d delivery) want {
					return want{status: discarded, attempts: 1, updateTime: d.change(discarded, 1)}
				},
			},
			{
				name: "discarded by the router before any attempt",
				batches: func(d delivery) [][]*busv1.StateChange {
					return [][]*busv1.StateChange{{d.change(discarded, 0)}, {d.change(scheduled, 1)}}
				},
				want: func(d delivery) want {
					return want{status: discarded, attempts: 1, updateTime: d.change(discarded, 0)}
				},
			},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				d := delivery{
					id: ids.New("dlv"), project: "prj_apply", event: "evt_" + strconv.Itoa(i), endpoint: "ep_1",
					eventType: "invoice.paid", created: base.Add(time.Duration(i) * time.Second),
				}
				batches := tt.batches(d)
				for _, b := range batches {
					if err := s.Apply(ctx, b); err != nil {
						t.Fatalf("Apply: %v", err)
					}
				}
				w := tt.want(d)
				got, err := s.store.getDelivery(ctx, d.project, d.id)
				if err != nil || got == nil {
					t.Fatalf("getDelivery = %v, %v", got, err)
				}
				p := got.proto()
				if p.Status != w.status || p.Attempts != w.attempts || p.LastStatusCode != w.lastCode {
					t.Errorf("delivery = %v attempts %d last code %d, want %v attempts %d last code %d",
						p.Status, p.Attempts, p.LastStatusCode, w.status, w.attempts, w.lastCode)
				}
				if (p.NextAttemptTime != nil) != w.nextRetry {
					t.Errorf("next_attempt_time = %v, want set: %v", p.NextAttemptTime, w.nextRetry)
				}
				if !p.CreateTime.AsTime().Equal(d.created) {
					t.Errorf("create_time = %v, want the event's %v", p.CreateTime.AsTime(), d.created)
				}
				if !p.UpdateTime.AsTime().Equal(w.updateTime.Time.AsTime()) {
					t.Errorf("update_time = %v, want %v", p.UpdateTime.AsTime(), w.updateTime.Time.AsTime())
				}
				if p.ProjectId != d.project || p.EventId != d.event || p.EndpointId != d.endpoint || p.EventType != d.eventType {
					t.Errorf("descriptive fields = %v", p)
				}
				attempts, err := s.store.listAttempts(ctx, d.project, d.id)
				if err != nil {
					t.Fatal(err)
				}
				var nums []uint32
				for _, a := range attempts {
					nums = append(nums, uint32(a.Attempt))
				}
				if !slices.Equal(nums, w.records) {
					t.Errorf("attempts = %v, want %v", nums, w.records)
				}

				// A replay, in any order, changes nothing.
				before := snapshot(t, s, d.project, d.id)
				var all []*busv1.StateChange
				for _, b := range batches {
					all = append(all, b...)
					if err := s.Apply(ctx, b); err != nil {
						t.Fatalf("Apply replay: %v", err)
					}
				}
				for i := len(batches) - 1; i >= 0; i-- {
					if err := s.Apply(ctx, batches[i]); err != nil {
						t.Fatalf("Apply reversed replay: %v", err)
					}
				}
				rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
				if err := s.Apply(ctx, all); err != nil {
					t.Fatalf("Apply shuffled replay: %v", err)
				}
				if after := snapshot(t, s, d.project, d.id); after != before {
					t.Errorf("a replay changed the documents:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
	})
}

func TestApplyAttemptRecord(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		d := delivery{id: ids.New("dlv"), project: "prj_1", created: time.Now().Truncate(time.Millisecond)}
		c := d.change(success, 1)
		if err := s.Apply(ctx, []*busv1.StateChange{c}); err != nil {
			t.Fatal(err)
		}
		got, err := s.store.listAttempts(ctx, d.project, d.id)
		if err != nil || len(got) != 1 {
			t.Fatalf("listAttempts = %v, %v", got, err)
		}
		p := got[0].proto()
		want := c.Record
		// Header names with '.' and '$', legal in HTTP, survive the store.
		if p.Attempt != 1 || p.StatusCode != want.StatusCode || p.LatencyMs != want.LatencyMs ||
			p.ResponseBody != want.ResponseBody || p.RemoteIp != want.RemoteIp || p.Url != want.Url ||
			!p.StartTime.AsTime().Equal(want.StartTime.AsTime()) ||
			fmt.Sprint(p.RequestHeaders) != fmt.Sprint(want.RequestHeaders) ||
			fmt.Sprint(p.ResponseHeaders) != fmt.Sprint(want.ResponseHeaders) {
			t.Errorf("attempt = %v\nwant %v", p, want)
		}
	})
}

// TestApplyStaleChangeDoesNotBlockOthers guards the write path: a change
// that does not move its delivery forward must not keep later deliveries of
// the same batch from being written. (An upsert with a seq filter fails
// here on FerretDB 1.24, which stops an unordered bulk update at its first
// duplicate-key error.)
func TestApplyStaleChangeDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		now := time.Now().Truncate(time.Millisecond)
		var ds []delivery
		var first, second []*busv1.StateChange
		for i := range 6 {
			d := delivery{id: ids.New("dlv"), project: "prj_1", created: now}
			ds = append(ds, d)
			if i%2 == 0 {
				first = append(first, d.change(success, 1))
				second = append(second, d.change(scheduled, 1)) // stale
			} else {
				first = append(first, d.change(scheduled, 1))
				second = append(second, d.change(processing, 1)) // forward
			}
		}
		for _, b := range [][]*busv1.StateChange{first, second} {
			if err := s.Apply(ctx, b); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		}
		for i, d := range ds {
			got, err := s.store.getDelivery(ctx, d.project, d.id)
			if err != nil || got == nil {
				t.Fatalf("getDelivery: %v, %v", got, err)
			}
			want := success
			if i%2 == 1 {
				want = processing
			}
			if statusv1.DeliveryStatus(got.Status) != want {
				t.Errorf("delivery %d: %v, want %v", i, statusv1.DeliveryStatus(got.Status), want)
			}
		}
	})
}

func TestApplyManyDeliveries(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		const n = 500
		now := time.Now().Truncate(time.Millisecond)
		var first, second []*busv1.StateChange
		for i := range n {
			d := delivery{id: ids.New("dlv"), project: "prj_many", endpoint: fmt.Sprintf("ep_%d", i%5), created: now}
			first = append(first, d.change(scheduled, 1))
			second = append(second, d.change(processing, 1), d.change(success, 1), d.change(scheduled, 1))
			if i%10 == 0 {
				first = append(first, d.change(processing, 1))
			}
		}
		// A malformed change is skipped, not a reason to fail the batch.
		first = append(first, &busv1.StateChange{DeliveryId: "dlv_bad", ProjectId: "prj_many"})
		start := time.Now()
		if err := s.Apply(ctx, first); err != nil {
			t.Fatalf("Apply first batch: %v", err)
		}
		if err := s.Apply(ctx, second); err != nil {
			t.Fatalf("Apply second batch: %v", err)
		}
		t.Logf("applied %d changes to %d deliveries in %v", len(first)+len(second), n, time.Since(start))
		counts, err := s.store.countDeliveries(ctx, &deliveryQuery{projectID: "prj_many"})
		if err != nil {
			t.Fatal(err)
		}
		if counts[success] != n || len(counts) != 1 {
			t.Errorf("counts = %v, want %d SUCCESS only", counts, n)
		}
		if na := countAttempts(t, s); na != n {
			t.Errorf("attempts = %d, want %d", na, n)
		}
	})
}

func TestApplyFailsWhenStoreFails(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d := delivery{id: ids.New("dlv"), project: "prj_1", created: time.Now()}
		if err := s.Apply(ctx, []*busv1.StateChange{d.change(success, 1)}); err == nil {
			t.Fatal("Apply with a canceled context returned nil: the caller would ack unwritten changes")
		}
	})
}

func TestApplyWithoutTimes(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		c := &busv1.StateChange{DeliveryId: ids.New("dlv"), ProjectId: "prj_1", Status: scheduled}
		before := time.Now().Add(-time.Millisecond)
		if err := s.Apply(ctx, []*busv1.StateChange{c}); err != nil {
			t.Fatal(err)
		}
		got, err := s.store.getDelivery(ctx, "prj_1", c.DeliveryId)
		if err != nil || got == nil {
			t.Fatalf("getDelivery = %v, %v", got, err)
		}
		if got.CreateTime.Before(before) || got.Attempts != 0 {
			t.Errorf("delivery = %+v: want create_time now and attempts 0 (scheduled, not attempted)", got)
		}
		// A later change keeps the first create_time.
		c2 := &busv1.StateChange{DeliveryId: c.DeliveryId, ProjectId: "prj_1", Status: processing, Attempt: 1,
			Time: timestamppb.New(time.Now().Add(time.Hour)), EventCreateTime: timestamppb.New(time.Now().Add(time.Hour))}
		if err := s.Apply(ctx, []*busv1.StateChange{c2}); err != nil {
			t.Fatal(err)
		}
		got2, _ := s.store.getDelivery(ctx, "prj_1", c.DeliveryId)
		if !got2.CreateTime.Equal(got.CreateTime) || got2.Status != int32(processing) {
			t.Errorf("after a second change: %+v, want create_time %v kept and PROCESSING", got2, got.CreateTime)
		}
	})
}

// BenchmarkApply applies batches of 100 SCHEDULED changes for fresh
// deliveries, then a batch of their SUCCESS (with attempt records).
func BenchmarkApply(b *testing.B) {
	for _, kind := range storeKinds {
		b.Run(kind, func(b *testing.B) { benchmarkApply(b, kind) })
	}
}

func benchmarkApply(b *testing.B, kind string) {
	s := testService(b, kind)
	ctx := context.Background()
	const batch = 100
	now := time.Now().Truncate(time.Millisecond)
	changes := 0
	for b.Loop() {
		var sched, done []*busv1.StateChange
		for range batch {
			d := delivery{id: ids.New("dlv"), project: "prj_bench", event: "evt_1", endpoint: "ep_1", eventType: "t", created: now}
			sched = append(sched, d.change(scheduled, 1))
			done = append(done, d.change(success, 1))
		}
		if err := s.Apply(ctx, sched); err != nil {
			b.Fatal(err)
		}
		if err := s.Apply(ctx, done); err != nil {
			b.Fatal(err)
		}
		changes += 2 * batch
	}
	b.ReportMetric(float64(changes)/b.Elapsed().Seconds(), "changes/s")
}

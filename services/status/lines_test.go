package status

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

const waiting = statusv1.DeliveryStatus_DELIVERY_STATUS_WAITING

// taskRecorder keeps the tasks published, as the broker would receive them.
type taskRecorder struct {
	mu    sync.Mutex
	tasks []string
	fail  error
}

func (r *taskRecorder) Publish(_ context.Context, msgs []bus.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	for _, m := range msgs {
		r.tasks = append(r.tasks, m.MessageID)
	}
	return nil
}

// take returns the delivery ids published since the last call, sorted.
func (r *taskRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.tasks))
	for i, id := range r.tasks {
		out[i] = id[:len(id)-2] // drop ":1"
	}
	r.tasks = nil
	slices.Sort(out)
	return out
}

// lineFixture is one project's key with its events routed to endpoints.
type lineFixture struct {
	t   *testing.T
	s   *Service
	pub *taskRecorder
	key string
}

func newLineFixture(t *testing.T) *lineFixture {
	s := testService(t, onPostgres)
	pub := &taskRecorder{}
	s.pub, s.topo = pub, mesh.NewTopology("lines-test", 4)
	return &lineFixture{t: t, s: s, pub: pub, key: "order-42"}
}

func lineDelivery(seq int, endpoint string) string { return fmt.Sprintf("dlv_%d_%s", seq, endpoint) }

// route is the router's route of event seq to endpoints.
func (f *lineFixture) route(seq int, endpoints ...string) *busv1.OrderedRoute {
	r := &busv1.OrderedRoute{ProjectId: "prj_lines", EventId: fmt.Sprintf("evt_%d", seq), OrderingKey: f.key, OrderingSeq: uint64(seq)}
	for _, ep := range endpoints {
		id := lineDelivery(seq, ep)
		r.Deliveries = append(r.Deliveries, &busv1.StateChange{DeliveryId: id, ProjectId: "prj_lines", EventId: r.EventId,
			EndpointId: ep, Status: waiting, Attempt: 1, OrderingKey: f.key, OrderingSeq: uint64(seq),
			Task: &busv1.DeliveryTask{DeliveryId: id, ProjectId: "prj_lines", EventId: r.EventId, EndpointId: ep,
				Attempt: 1, OrderingKey: f.key, OrderingSeq: uint64(seq)}})
	}
	return r
}

// outcome is the deliverer's report of a delivery in the line.
func (f *lineFixture) outcome(seq int, endpoint string, st statusv1.DeliveryStatus) *busv1.StateChange {
	return &busv1.StateChange{DeliveryId: lineDelivery(seq, endpoint), ProjectId: "prj_lines", EventId: fmt.Sprintf("evt_%d", seq),
		EndpointId: endpoint, Status: st, Attempt: 1, OrderingKey: f.key, OrderingSeq: uint64(seq),
		Record: &statusv1.Attempt{StatusCode: 200}}
}

// batch applies one batch of the line's partition as the consumer does
// and returns the deliveries released.
func (f *lineFixture) batch(routes []*busv1.OrderedRoute, changes ...*busv1.StateChange) []string {
	f.t.Helper()
	ctx := context.Background()
	implied, err := f.s.advanceLines(ctx, routes, changes)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.Apply(ctx, append(changes, implied...)); err != nil {
		f.t.Fatal(err)
	}
	return f.pub.take()
}

func (f *lineFixture) status(seq int, endpoint string) statusv1.DeliveryStatus {
	f.t.Helper()
	d, err := f.s.store.getDelivery(context.Background(), "prj_lines", lineDelivery(seq, endpoint))
	if err != nil || d == nil {
		f.t.Fatalf("delivery %s: %v %v", lineDelivery(seq, endpoint), d, err)
	}
	return statusv1.DeliveryStatus(d.Status)
}

func expectReleased(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
		t.Fatalf("%s: released %v, want %v", step, got, want)
	}
}

// TestLines follows one key's lines to two endpoints through routes that
// arrive out of order, retries, replays and the end of each delivery: a
// delivery is sent only once every earlier event of the key is routed and
// the earlier deliveries to its endpoint have ended, and it shows WAITING
// until then.
func TestLines(t *testing.T) {
	t.Parallel()
	f := newLineFixture(t)
	a, b := "ep_a", "ep_b"
	expectReleased(t, "route 3 first", f.batch([]*busv1.OrderedRoute{f.route(3, a)}))
	expectReleased(t, "route 2 (only to b)", f.batch([]*busv1.OrderedRoute{f.route(2, b)}))
	if st := f.status(3, a); st != waiting {
		t.Fatalf("delivery 3 to a is %v before event 1 is routed, want WAITING", st)
	}
	if d, _ := f.s.store.getDelivery(context.Background(), "prj_lines", lineDelivery(3, a)); d.proto().GetOrderingKey() != f.key {
		t.Fatalf("waiting delivery shows ordering key %q, want %q", d.OrderingKey, f.key)
	}
	// Route 1 frees the first of each line: 1 to a, and 2 to b, whose
	// line has nothing earlier. 3 to a waits for 1 to a.
	expectReleased(t, "route 1", f.batch([]*busv1.OrderedRoute{f.route(1, a)}), lineDelivery(1, a), lineDelivery(2, b))
	if st := f.status(1, a); st != scheduled {
		t.Fatalf("released delivery is %v, want SCHEDULED", st)
	}
	// A replayed batch (the broker sends it again) releases nothing more.
	expectReleased(t, "route 1 again", f.batch([]*busv1.OrderedRoute{f.route(1, a), f.route(3, a)}))
	// A retry holds the line.
	expectReleased(t, "1 to a retries", f.batch(nil, f.outcome(1, a, retry)))
	expectReleased(t, "4 routed while 1 retries", f.batch([]*busv1.OrderedRoute{f.route(4, a, b)}))
	expectReleased(t, "1 to a fails for good", f.batch(nil, f.outcome(1, a, failed)), lineDelivery(3, a))
	expectReleased(t, "the same outcome again", f.batch(nil, f.outcome(1, a, failed)))
	expectReleased(t, "2 to b succeeds", f.batch(nil, f.outcome(2, b, success)), lineDelivery(4, b))
	if st := f.status(4, a); st != waiting {
		t.Fatalf("delivery 4 to a is %v while 3 to a is under way, want WAITING", st)
	}
	expectReleased(t, "3 to a is discarded", f.batch(nil, f.outcome(3, a, discarded)), lineDelivery(4, a))
	// Other keys are lines of their own.
	other := &lineFixture{t: t, s: f.s, pub: f.pub, key: "order-43"}
	expectReleased(t, "another key", other.batch([]*busv1.OrderedRoute{other.route(1, a)}), lineDelivery(1, a))
	// An event routed nowhere still lets the next ones go.
	expectReleased(t, "route 6 before 5", f.batch([]*busv1.OrderedRoute{f.route(6, b)}))
	expectReleased(t, "4 to b ends", f.batch(nil, f.outcome(4, b, success)))
	expectReleased(t, "route 5 to nowhere", f.batch([]*busv1.OrderedRoute{f.route(5)}), lineDelivery(6, b))
}

// TestLinesPublishFailure: a release is stored even when its task cannot
// be published; the task is sent later by sendUnsent, once, and a task
// whose publish was confirmed is not sent again.
func TestLinesPublishFailure(t *testing.T) {
	t.Parallel()
	f := newLineFixture(t)
	ctx := context.Background()
	f.pub.fail = errors.New("broker away")
	expectReleased(t, "route 1 with the broker away", f.batch([]*busv1.OrderedRoute{f.route(1, "ep_a")}))
	if st := f.status(1, "ep_a"); st != scheduled {
		t.Fatalf("released delivery is %v, want SCHEDULED", st)
	}
	f.pub.fail = nil
	expectReleased(t, "the same batch again", f.batch([]*busv1.OrderedRoute{f.route(1, "ep_a")}))
	n, err := f.s.lines.sendUnsent(ctx, time.Now().Add(time.Minute), 100, f.s.publishTasks)
	if err != nil || n != 1 {
		t.Fatalf("sendUnsent sent %d (%v), want the one task", n, err)
	}
	expectReleased(t, "sendUnsent", f.pub.take(), lineDelivery(1, "ep_a"))
	// Sent and confirmed: never again.
	expectReleased(t, "route 2 while 1 is under way", f.batch([]*busv1.OrderedRoute{f.route(2, "ep_b")}), lineDelivery(2, "ep_b"))
	if n, err := f.s.lines.sendUnsent(ctx, time.Now().Add(time.Minute), 100, f.s.publishTasks); err != nil || n != 0 {
		t.Fatalf("sendUnsent sent %d (%v) tasks already confirmed", n, err)
	}
}

// TestLinesManyEndpointsAndKeys releases, in one batch, the heads of many
// lines at once, and each line's next only when its head ends.
func TestLinesManyEndpointsAndKeys(t *testing.T) {
	t.Parallel()
	f := newLineFixture(t)
	var routes []*busv1.OrderedRoute
	var eps []string
	for i := range 20 {
		eps = append(eps, fmt.Sprintf("ep_%02d", i))
	}
	for seq := 10; seq >= 1; seq-- {
		routes = append(routes, f.route(seq, eps...))
	}
	var want []string
	for _, ep := range eps {
		want = append(want, lineDelivery(1, ep))
	}
	expectReleased(t, "ten routes in one batch", f.batch(routes), want...)
	var ends []*busv1.StateChange
	want = nil
	for i, ep := range eps {
		if i%2 == 0 {
			ends = append(ends, f.outcome(1, ep, success))
			want = append(want, lineDelivery(2, ep))
		}
	}
	expectReleased(t, "half the heads end", f.batch(nil, ends...), want...)
}

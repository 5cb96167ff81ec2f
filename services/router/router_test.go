package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// The router's expansion of an event into deliveries, with the registry
// and the broker replaced by fakes: what it asks the registry, and every
// message it publishes, decoded back.

// recorder is a Publisher that keeps every batch; failAt, when set, fails
// the batch of that index (from 0) with errPublish.
type recorder struct {
	mu      sync.Mutex
	batches [][]bus.Message
	failAt  int
}

var errPublish = errors.New("broker did not confirm")

func newRecorder() *recorder { return &recorder{failAt: -1} }

func (p *recorder) Publish(_ context.Context, msgs []bus.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.batches) == p.failAt {
		p.failAt = -1
		return errPublish
	}
	p.batches = append(p.batches, slices.Clone(msgs))
	return nil
}

// messages returns every message published, in order.
func (p *recorder) messages() []bus.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Concat(p.batches...)
}

// registry is a Targets that answers targets (or err) and keeps the
// requests.
type registry struct {
	mu      sync.Mutex
	targets []*registryv1.Target
	err     error
	reqs    []*registryv1.ResolveTargetsRequest
}

func (r *registry) ResolveTargets(_ context.Context, req *registryv1.ResolveTargetsRequest) ([]*registryv1.Target, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, proto.CloneOf(req))
	return r.targets, r.err
}

func (r *registry) requests() []*registryv1.ResolveTargetsRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

var testTopology = mesh.NewTopology("test", 4)

// newTestRouter returns a router over the fakes, logging into a buffer.
func newTestRouter(cfg Config, reg *registry) (*Router, *recorder, *bytes.Buffer) {
	pub := newRecorder()
	var logs bytes.Buffer
	return newRouter(cfg, testTopology, pub, reg, slog.New(slog.NewTextHandler(&logs, nil))), pub, &logs
}

// delivery wraps an event as the consumer hands it to the router.
func delivery(tb testing.TB, ev *busv1.EventMessage) *bus.Delivery {
	tb.Helper()
	body, err := proto.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	return &bus.Delivery{Ctx: context.Background(), Delivery: amqp.Delivery{Body: body}}
}

// decoded splits published messages into tasks and state changes,
// checking that each is addressed as the deliverers and the status
// service expect.
func decoded(tb testing.TB, msgs []bus.Message) (tasks []*busv1.DeliveryTask, states []*busv1.StateChange) {
	tb.Helper()
	for _, m := range msgs {
		switch m.Type {
		case mesh.TypeTask:
			task := &busv1.DeliveryTask{}
			if err := proto.Unmarshal(m.Body, task); err != nil {
				tb.Fatal(err)
			}
			if m.Exchange != testTopology.DeliveriesExchange || m.MessageID != task.GetDeliveryId()+":"+strconv.Itoa(int(task.GetAttempt())) {
				tb.Fatalf("task %s published to %q as %q", task.GetDeliveryId(), m.Exchange, m.MessageID)
			}
			tasks = append(tasks, task)
		case mesh.TypeState:
			sc := &busv1.StateChange{}
			if err := proto.Unmarshal(m.Body, sc); err != nil {
				tb.Fatal(err)
			}
			if m.Exchange != testTopology.StatusExchange || m.Key != strconv.Itoa(testTopology.StatusPartition(sc.GetDeliveryId())) {
				tb.Fatalf("state of %s published to %q key %q, not its partition", sc.GetDeliveryId(), m.Exchange, m.Key)
			}
			states = append(states, sc)
		default:
			tb.Fatalf("unexpected message type %q", m.Type)
		}
	}
	return tasks, states
}

func active(id string, subs ...*registryv1.Subscription) *registryv1.Target {
	return &registryv1.Target{EndpointId: id, ProjectId: "prj_1", Url: "https://example.com/" + id,
		Status: registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE, Subscriptions: subs}
}

func withStatus(t *registryv1.Target, st registryv1.EndpointStatus) *registryv1.Target {
	t.Status = st
	return t
}

func TestHandleAsksForTheEventsTargets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ev   *busv1.EventMessage
		want *registryv1.ResolveTargetsRequest
	}{
		{"endpoint", &busv1.EventMessage{EndpointId: "ep_1"},
			&registryv1.ResolveTargetsRequest{ProjectId: "prj_1", EventType: "invoice.paid", EndpointId: "ep_1"}},
		{"owner fan-out", &busv1.EventMessage{OwnerId: "own_1"},
			&registryv1.ResolveTargetsRequest{ProjectId: "prj_1", EventType: "invoice.paid", OwnerId: "own_1"}},
		{"broadcast", &busv1.EventMessage{Broadcast: true},
			&registryv1.ResolveTargetsRequest{ProjectId: "prj_1", EventType: "invoice.paid", Broadcast: true}},
		{"broadcast over an endpoint", &busv1.EventMessage{Broadcast: true, EndpointId: "ep_1", OwnerId: "own_1"},
			&registryv1.ResolveTargetsRequest{ProjectId: "prj_1", EventType: "invoice.paid", Broadcast: true}},
		{"endpoint over an owner", &busv1.EventMessage{EndpointId: "ep_1", OwnerId: "own_1"},
			&registryv1.ResolveTargetsRequest{ProjectId: "prj_1", EventType: "invoice.paid", EndpointId: "ep_1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := &registry{targets: []*registryv1.Target{active("ep_1")}}
			r, pub, _ := newTestRouter(Config{}, reg)
			ev := proto.CloneOf(tc.ev)
			ev.EventId, ev.ProjectId, ev.EventType = "evt_1", "prj_1", "invoice.paid"
			if err := r.handle(context.Background(), delivery(t, ev)); err != nil {
				t.Fatal(err)
			}
			reqs := reg.requests()
			if len(reqs) != 1 || !proto.Equal(reqs[0], tc.want) {
				t.Fatalf("registry asked %v, want [%v]", reqs, tc.want)
			}
			tasks, states := decoded(t, pub.messages())
			if len(tasks) != 1 || len(states) != 1 {
				t.Fatalf("published %d tasks and %d states, want 1 and 1", len(tasks), len(states))
			}
		})
	}
}

func TestHandleTaskCarriesTheEvent(t *testing.T) {
	t.Parallel()
	policy := &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: 7, MaxAttempts: 4}
	sub := &registryv1.Subscription{Id: "sub_1", RetryPolicy: policy}
	reg := &registry{targets: []*registryv1.Target{active("ep_1", sub)}}
	r, pub, _ := newTestRouter(Config{}, reg)
	created := timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	ev := &busv1.EventMessage{
		EventId: "evt_1", ProjectId: "prj_1", EventType: "invoice.paid", EndpointId: "ep_1",
		Data: []byte(`{"amount": 12345678901234567890}`), CustomHeaders: map[string]string{"X-Tenant": "acme"},
		IdempotencyKey: "key-1", CreateTime: created,
	}
	before := time.Now()
	if err := r.handle(context.Background(), delivery(t, ev)); err != nil {
		t.Fatal(err)
	}
	tasks, states := decoded(t, pub.messages())
	if len(tasks) != 1 || len(states) != 1 {
		t.Fatalf("published %d tasks and %d states, want 1 and 1", len(tasks), len(states))
	}
	id := DeliveryID("evt_1", "ep_1")
	wantTask := &busv1.DeliveryTask{
		DeliveryId: id, EventId: "evt_1", ProjectId: "prj_1", EndpointId: "ep_1", EventType: "invoice.paid",
		Data: ev.Data, CustomHeaders: ev.CustomHeaders, IdempotencyKey: "key-1", Attempt: 1,
		EventCreateTime: created, SubscriptionId: "sub_1", RetryPolicy: policy,
	}
	if !proto.Equal(tasks[0], wantTask) {
		t.Errorf("task\n%v\nwant\n%v", tasks[0], wantTask)
	}
	got := states[0]
	if at := got.GetTime().AsTime(); at.Before(before.Truncate(time.Microsecond)) || at.After(time.Now()) {
		t.Errorf("state time %v is not the time of routing", at)
	}
	got.Time = nil
	wantState := &busv1.StateChange{
		DeliveryId: id, ProjectId: "prj_1", EventId: "evt_1", EndpointId: "ep_1", EventType: "invoice.paid",
		Status: statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, Attempt: 1, EventCreateTime: created,
	}
	if !proto.Equal(got, wantState) {
		t.Errorf("state\n%v\nwant\n%v", got, wantState)
	}
	// The task goes out before its SCHEDULED state, in the same batch.
	if msgs := pub.messages(); msgs[0].Type != mesh.TypeTask || len(pub.batches) != 1 {
		t.Errorf("messages %v: want the task first, all in one batch", msgs)
	}
}

func TestHandleFansOutAndDiscardsInactiveEndpoints(t *testing.T) {
	t.Parallel()
	reg := &registry{targets: []*registryv1.Target{
		active("ep_a"),
		withStatus(active("ep_paused"), registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED),
		active("ep_b"),
		withStatus(active("ep_disabled"), registryv1.EndpointStatus_ENDPOINT_STATUS_DISABLED),
		active("ep_c"),
	}}
	r, pub, _ := newTestRouter(Config{}, reg)
	if err := r.handle(context.Background(), delivery(t, &busv1.EventMessage{EventId: "evt_1", ProjectId: "prj_1", EventType: "t", OwnerId: "own_1", Data: []byte(`{}`)})); err != nil {
		t.Fatal(err)
	}
	tasks, states := decoded(t, pub.messages())
	var tasked []string
	for _, task := range tasks {
		tasked = append(tasked, task.GetEndpointId())
		if task.GetDeliveryId() != DeliveryID("evt_1", task.GetEndpointId()) || task.GetAttempt() != 1 {
			t.Errorf("task %v: wrong delivery id or attempt", task)
		}
	}
	if want := []string{"ep_a", "ep_b", "ep_c"}; !slices.Equal(tasked, want) {
		t.Fatalf("tasks for %v, want %v", tasked, want)
	}
	wantStates := map[string]struct {
		status statusv1.DeliveryStatus
		error  string
	}{
		"ep_a":        {statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, ""},
		"ep_paused":   {statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, "endpoint is paused: nothing was sent"},
		"ep_b":        {statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, ""},
		"ep_disabled": {statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, "endpoint is disabled: nothing was sent"},
		"ep_c":        {statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, ""},
	}
	if len(states) != len(wantStates) {
		t.Fatalf("%d states, want %d", len(states), len(wantStates))
	}
	for _, sc := range states {
		want, ok := wantStates[sc.GetEndpointId()]
		if !ok || sc.GetStatus() != want.status {
			t.Errorf("endpoint %s: state %s, want %s", sc.GetEndpointId(), sc.GetStatus(), want.status)
			continue
		}
		if sc.GetDeliveryId() != DeliveryID("evt_1", sc.GetEndpointId()) || sc.GetAttempt() != 1 {
			t.Errorf("state %v: wrong delivery id or attempt", sc)
		}
		if want.error == "" {
			if sc.GetRecord() != nil {
				t.Errorf("endpoint %s: SCHEDULED with a record %v", sc.GetEndpointId(), sc.GetRecord())
			}
			continue
		}
		rec := sc.GetRecord()
		if rec.GetError() != want.error || rec.GetUrl() != "https://example.com/"+sc.GetEndpointId() ||
			rec.GetDeliveryId() != sc.GetDeliveryId() || rec.GetAttempt() != 1 || rec.GetStartTime() == nil {
			t.Errorf("endpoint %s: record %v, want error %q with its url, id and attempt", sc.GetEndpointId(), rec, want.error)
		}
	}
}

func TestHandleSubscriptionFiltersChooseEndpoints(t *testing.T) {
	t.Parallel()
	linear := &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: 3}
	sub := func(id, body, headers string) *registryv1.Subscription {
		return &registryv1.Subscription{Id: id, Filter: &registryv1.Filter{Body: body, Headers: headers},
			RetryPolicy: &registryv1.RetryPolicy{IntervalSeconds: uint32(len(id))}}
	}
	const data = `{"amount": 1500, "currency": "EUR"}`
	headers := map[string]string{"X-Region": "eu"}
	for _, tc := range []struct {
		name   string
		target *registryv1.Target
		// sub is the subscription the task names; "-" for no task and no
		// state at all.
		sub    string
		policy *registryv1.RetryPolicy
	}{
		{"no subscriptions takes everything", active("ep_1"), "", nil},
		{"matching body filter", active("ep_1", sub("sub_big", `{"amount": {"$gte": 1000}}`, "")), "sub_big", sub("sub_big", "", "").RetryPolicy},
		{"body filter not matching", active("ep_1", sub("sub_huge", `{"amount": {"$gte": 10000}}`, "")), "-", nil},
		{"matching header filter", active("ep_1", sub("sub_eu", "", `{"x-region": "eu"}`)), "sub_eu", sub("sub_eu", "", "").RetryPolicy},
		{"header filter not matching", active("ep_1", sub("sub_us", "", `{"X-Region": "us"}`)), "-", nil},
		{"both filters must match", active("ep_1", sub("sub_both", `{"currency": "EUR"}`, `{"X-Region": "us"}`)), "-", nil},
		{"first matching subscription wins", active("ep_1",
			sub("sub_usd", `{"currency": "USD"}`, ""),
			&registryv1.Subscription{Id: "sub_eur", Filter: &registryv1.Filter{Body: `{"currency": "EUR"}`}, RetryPolicy: linear},
			sub("sub_any", "", "")), "sub_eur", linear},
		{"a filter that does not compile selects nothing", active("ep_1", sub("sub_bad", `{"amount": {"$nope": 1}}`, "")), "-", nil},
		{"a broken filter does not hide the next", active("ep_1", sub("sub_bad", `{"amount": {"$nope": 1}}`, ""), sub("sub_ok", `{}`, "")), "sub_ok", sub("sub_ok", "", "").RetryPolicy},
		{"an inactive endpoint not chosen is not discarded", withStatus(active("ep_1", sub("sub_us", "", `{"X-Region": "us"}`)),
			registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED), "-", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, pub, _ := newTestRouter(Config{}, &registry{targets: []*registryv1.Target{tc.target}})
			ev := &busv1.EventMessage{EventId: "evt_1", ProjectId: "prj_1", EventType: "t", EndpointId: "ep_1", Data: []byte(data), CustomHeaders: headers}
			if err := r.handle(context.Background(), delivery(t, ev)); err != nil {
				t.Fatal(err)
			}
			tasks, states := decoded(t, pub.messages())
			if tc.sub == "-" {
				if len(tasks)+len(states) != 0 {
					t.Fatalf("published %d tasks and %d states for an endpoint no subscription chose", len(tasks), len(states))
				}
				return
			}
			if len(tasks) != 1 || len(states) != 1 {
				t.Fatalf("published %d tasks and %d states, want 1 and 1", len(tasks), len(states))
			}
			if tasks[0].GetSubscriptionId() != tc.sub || !proto.Equal(tasks[0].GetRetryPolicy(), tc.policy) {
				t.Fatalf("task through %q with policy %v, want %q with %v", tasks[0].GetSubscriptionId(), tasks[0].GetRetryPolicy(), tc.sub, tc.policy)
			}
		})
	}
}

func TestHandleRegistryErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		err       error
		wantErr   bool
		malformed bool
		log       string
	}{
		{"deleted endpoint or project: acked with a warning", connect.NewError(connect.CodeNotFound, errors.New(`endpoint "ep_1" not found`)), false, false, "event has no target any more"},
		{"refused fields: parked", connect.NewError(connect.CodeInvalidArgument, errors.New("bad event type")), true, true, ""},
		{"registry away: tried again", connect.NewError(connect.CodeUnavailable, errors.New("connection refused")), true, false, ""},
		{"plain error: tried again", errors.New("boom"), true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, pub, logs := newTestRouter(Config{}, &registry{targets: []*registryv1.Target{active("ep_1")}, err: tc.err})
			err := r.handle(context.Background(), delivery(t, &busv1.EventMessage{EventId: "evt_1", ProjectId: "prj_1", EventType: "t", EndpointId: "ep_1"}))
			if (err != nil) != tc.wantErr {
				t.Fatalf("handle = %v, want an error: %v", err, tc.wantErr)
			}
			if errors.Is(err, bus.ErrMalformed) != tc.malformed {
				t.Fatalf("handle = %v; malformed: %v, want %v", err, errors.Is(err, bus.ErrMalformed), tc.malformed)
			}
			if err != nil && !strings.Contains(err.Error(), "evt_1") {
				t.Errorf("error %q does not name the event", err)
			}
			if tc.wantErr && !tc.malformed && !errors.Is(err, tc.err) {
				t.Errorf("error %v does not wrap the registry's %v", err, tc.err)
			}
			if tc.log != "" && (!strings.Contains(logs.String(), tc.log) || !strings.Contains(logs.String(), "event_id=evt_1")) {
				t.Errorf("log %q lacks %q with the event id", logs.String(), tc.log)
			}
			if msgs := pub.messages(); len(msgs) != 0 {
				t.Fatalf("published %d messages", len(msgs))
			}
		})
	}
}

func TestHandleParksMalformedEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"not a protobuf", []byte{0xff, 0xff, 0xff}},
		{"no event id", mustMarshal(t, &busv1.EventMessage{ProjectId: "prj_1", EndpointId: "ep_1"})},
		{"no project", mustMarshal(t, &busv1.EventMessage{EventId: "evt_1", EndpointId: "ep_1"})},
		{"no target", mustMarshal(t, &busv1.EventMessage{EventId: "evt_1", ProjectId: "prj_1"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := &registry{targets: []*registryv1.Target{active("ep_1")}}
			r, pub, _ := newTestRouter(Config{}, reg)
			err := r.handle(context.Background(), &bus.Delivery{Ctx: context.Background(), Delivery: amqp.Delivery{Body: tc.body}})
			if !errors.Is(err, bus.ErrMalformed) {
				t.Fatalf("handle = %v, want ErrMalformed", err)
			}
			if len(reg.requests()) != 0 || len(pub.messages()) != 0 {
				t.Fatal("a malformed event was routed")
			}
		})
	}
}

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestHandlePublishesInBatches(t *testing.T) {
	t.Parallel()
	targets := []*registryv1.Target{active("ep_1"), active("ep_2"), active("ep_3"), active("ep_4")}
	ev := &busv1.EventMessage{EventId: "evt_1", ProjectId: "prj_1", EventType: "t", Broadcast: true}

	// The same messages, in the same order, whatever the batch size.
	whole, wholePub, _ := newTestRouter(Config{}, &registry{targets: targets})
	if err := whole.handle(context.Background(), delivery(t, ev)); err != nil {
		t.Fatal(err)
	}
	if len(wholePub.batches) != 1 || len(wholePub.batches[0]) != 8 {
		t.Fatalf("default batch size: batches %d, want one of 8 messages", len(wholePub.batches))
	}
	r, pub, _ := newTestRouter(Config{BatchSize: 3}, &registry{targets: targets})
	if err := r.handle(context.Background(), delivery(t, ev)); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, b := range pub.batches {
		sizes = append(sizes, len(b))
	}
	if !slices.Equal(sizes, []int{3, 3, 2}) {
		t.Fatalf("batch sizes %v, want [3 3 2]", sizes)
	}
	if !slices.EqualFunc(pub.messages(), wholePub.messages(), sameMessage) {
		t.Fatal("batching changed the messages")
	}

	// A batch the broker does not confirm fails the event (it is handled
	// again), and the batches after it are not sent.
	failing, failPub, _ := newTestRouter(Config{BatchSize: 3}, &registry{targets: targets})
	failPub.failAt = 1
	err := failing.handle(context.Background(), delivery(t, ev))
	if !errors.Is(err, errPublish) || errors.Is(err, bus.ErrMalformed) {
		t.Fatalf("handle = %v, want the publish error, not malformed", err)
	}
	if len(failPub.batches) != 1 {
		t.Fatalf("%d batches confirmed, want only the first", len(failPub.batches))
	}
}

func sameMessage(a, b bus.Message) bool {
	return a.Exchange == b.Exchange && a.Key == b.Key && a.MessageID == b.MessageID && a.Type == b.Type
}

func TestHandleDeliveryIDsAreDeterministic(t *testing.T) {
	t.Parallel()
	targets := []*registryv1.Target{active("ep_1"), active("ep_2")}
	ev := &busv1.EventMessage{EventId: "evt_1", ProjectId: "prj_1", EventType: "t", Broadcast: true}
	var runs [][]bus.Message
	for range 2 {
		// A redelivered event, possibly in another process.
		r, pub, _ := newTestRouter(Config{}, &registry{targets: targets})
		if err := r.handle(context.Background(), delivery(t, ev)); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, pub.messages())
	}
	if !slices.EqualFunc(runs[0], runs[1], sameMessage) {
		t.Fatalf("a redelivered event made other messages:\n%v\n%v", runs[0], runs[1])
	}
	ids := map[string]bool{
		DeliveryID("evt_1", "ep_1"): true, DeliveryID("evt_1", "ep_2"): true,
		DeliveryID("evt_2", "ep_1"): true, DeliveryID("evt_1ep", "_1"): true,
	}
	if len(ids) != 4 {
		t.Fatalf("delivery ids collide: %v", ids)
	}
	for id := range ids {
		if !strings.HasPrefix(id, "dlv_") {
			t.Errorf("delivery id %q lacks the dlv_ prefix", id)
		}
	}
	tasks, _ := decoded(t, runs[0])
	if tasks[0].GetDeliveryId() != DeliveryID("evt_1", "ep_1") || tasks[1].GetDeliveryId() != DeliveryID("evt_1", "ep_2") {
		t.Fatalf("task ids %s, %s are not DeliveryID's", tasks[0].GetDeliveryId(), tasks[1].GetDeliveryId())
	}
}

// TestOrderedEvent: an event with an ordering key is not sent: its
// deliveries go, WAITING with their tasks (DISCARDED for an endpoint that
// is not active), in one route to the status partition of the key's line.
// An event whose targets are gone still has its route, empty, for the
// line waits for every earlier event of the key.
func TestOrderedEvent(t *testing.T) {
	reg := &registry{targets: []*registryv1.Target{active("ep_a"), withStatus(active("ep_b"), registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED)}}
	r, pub, _ := newTestRouter(Config{}, reg)
	ev := &busv1.EventMessage{EventId: "evt_1", ProjectId: "prj_1", EventType: "order.paid", OwnerId: "own_1",
		Data: []byte(`{}`), OrderingKey: "order-7", OrderingSeq: 12}
	if err := r.handle(context.Background(), delivery(t, ev)); err != nil {
		t.Fatal(err)
	}
	reg.targets, reg.err = nil, connect.NewError(connect.CodeNotFound, errors.New("project gone"))
	gone := proto.CloneOf(ev)
	gone.EventId, gone.OrderingSeq = "evt_2", 13
	if err := r.handle(context.Background(), delivery(t, gone)); err != nil {
		t.Fatal(err)
	}
	msgs := pub.messages()
	if len(msgs) != 2 {
		t.Fatalf("published %d messages, want one route per event", len(msgs))
	}
	wantKey := strconv.Itoa(testTopology.LinePartition("prj_1", "order-7"))
	var routes []*busv1.OrderedRoute
	for _, m := range msgs {
		if m.Type != mesh.TypeRoute || m.Exchange != testTopology.StatusExchange || m.Key != wantKey {
			t.Fatalf("route published as %q to %q key %q, want %q to the line's partition %s", m.Type, m.Exchange, m.Key, mesh.TypeRoute, wantKey)
		}
		var route busv1.OrderedRoute
		if err := proto.Unmarshal(m.Body, &route); err != nil {
			t.Fatal(err)
		}
		routes = append(routes, &route)
	}
	first := routes[0]
	if first.GetOrderingKey() != "order-7" || first.GetOrderingSeq() != 12 || len(first.GetDeliveries()) != 2 {
		t.Fatalf("route = %v", first)
	}
	a, b := first.GetDeliveries()[0], first.GetDeliveries()[1]
	if a.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_WAITING || a.GetTask().GetOrderingSeq() != 12 ||
		a.GetTask().GetDeliveryId() != DeliveryID("evt_1", "ep_a") || a.GetTask().GetOrderingKey() != "order-7" {
		t.Fatalf("delivery to the active endpoint = %v", a)
	}
	if b.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED || b.GetTask() != nil || b.GetOrderingSeq() != 12 {
		t.Fatalf("delivery to the paused endpoint = %v", b)
	}
	if routes[1].GetOrderingSeq() != 13 || len(routes[1].GetDeliveries()) != 0 {
		t.Fatalf("route of an event with no target = %v", routes[1])
	}
}

// perProject is a Targets that answers by project: targets, or err for
// the projects in down.
type perProject struct {
	targets []*registryv1.Target
	down    map[string]error
}

func (p *perProject) ResolveTargets(_ context.Context, req *registryv1.ResolveTargetsRequest) ([]*registryv1.Target, error) {
	if err := p.down[req.GetProjectId()]; err != nil {
		return nil, err
	}
	return p.targets, nil
}

// TestHandleBatch routes an EventBatch: the deliveries of the events it can
// route are published, and the event whose project the registry cannot
// answer for now goes back to the router queue alone (marked so that it is
// not batched again) before the batch is acked: none is routed twice.
func TestHandleBatch(t *testing.T) {
	pub := newRecorder()
	reg := &perProject{targets: []*registryv1.Target{active("ep_1")},
		down: map[string]error{"prj_down": connect.NewError(connect.CodeUnavailable, errors.New("registry away"))}}
	r := newRouter(Config{}, testTopology, pub, reg, slog.New(slog.DiscardHandler))
	batch := &busv1.EventBatch{}
	for _, p := range []string{"prj_1", "prj_down", "prj_1"} {
		batch.Events = append(batch.Events, &busv1.EventMessage{EventId: "evt_" + strconv.Itoa(len(batch.Events)), ProjectId: p,
			EventType: "t", EndpointId: "ep_1", Data: []byte(`{}`)})
	}
	body, err := proto.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	d := &bus.Delivery{Ctx: context.Background(), Delivery: amqp.Delivery{Body: body, Type: mesh.TypeEventBatch}}
	if err := r.handle(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if len(pub.batches) != 3 {
		t.Fatalf("%d publishes, want one per event, each in its trace", len(pub.batches))
	}
	var back []bus.Message
	var rest []bus.Message
	for _, m := range pub.messages() {
		if m.Type == mesh.TypeEvent {
			back = append(back, m)
		} else {
			rest = append(rest, m)
		}
	}
	tasks, states := decoded(t, rest)
	var routed []string
	for _, task := range tasks {
		routed = append(routed, task.GetEventId())
	}
	slices.Sort(routed)
	if len(states) != 2 || !slices.Equal(routed, []string{"evt_0", "evt_2"}) {
		t.Fatalf("tasks %v, states %v: want those of evt_0 and evt_2", tasks, states)
	}
	if len(back) != 1 || back[0].MessageID != "evt_1" || back[0].Exchange != testTopology.EventsExchange ||
		!strings.Contains(fmt.Sprint(back[0].Headers[mesh.AloneHeader]), "registry away") {
		t.Fatalf("sent back %v, want evt_1 alone with the reason", back)
	}
	// Alone, it is held and retried like any event.
	if err := r.handle(context.Background(), delivery(t, batch.Events[1])); err == nil || errors.Is(err, bus.ErrMalformed) {
		t.Fatalf("handling the event alone: %v, want an error to retry", err)
	}
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

func TestMessageShape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header any
		want   restShape
		err    string
	}{
		{nil, shapeSingle, ""},
		{"", shapeSingle, ""},
		{"single", shapeSingle, ""},
		{" Fanout ", shapeFanout, ""},
		{[]byte("broadcast"), shapeBroadcast, ""},
		{"multicast", 0, `"multicast" is not a message type: use single, fanout or broadcast`},
		{int32(1), 0, "must be a string"},
	} {
		got, err := messageShape(tc.header)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("messageShape(%v) error = %v, want %q", tc.header, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("messageShape(%v) = %v, %v; want %v", tc.header, got, err, tc.want)
		}
	}
}

// outageStore is a real store whose inserts fail while down is set, as
// when its database is away.
type outageStore struct {
	Store
	down     atomic.Bool
	attempts atomic.Int32
}

func (s *outageStore) insert(ctx context.Context, doc *eventDoc) error {
	s.attempts.Add(1)
	if s.down.Load() {
		return errors.New("connect to database: connection refused")
	}
	return s.Store.insert(ctx, doc)
}

// oneSource is a registry with one source that records the counts it is
// sent.
type oneSource struct {
	src *registryv1.Source
	mu  sync.Mutex
	sum registryv1.SourceCounts
}

func (r *oneSource) ListAllSources(context.Context) ([]*registryv1.Source, error) {
	return []*registryv1.Source{r.src}, nil
}

func (r *oneSource) AddSourceCounts(_ context.Context, counts []*registryv1.SourceCounts) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range counts {
		r.sum.Accepted += c.Accepted
		r.sum.Duplicates += c.Duplicates
		r.sum.Rejected += c.Rejected
	}
	return nil
}

func (r *oneSource) accepted() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sum.Accepted
}

type allEndpoints struct{}

func (allEndpoints) EndpointExists(context.Context, string, string) (bool, error) { return true, nil }

// TestSourceOutageKeepsMessages consumes a source while the event store is
// down: the message is neither acked nor rejected; stopping the consumer
// then leaves it in the queue, and a consumer started once the store is
// back stores it as one event.
func TestSourceOutageKeepsMessages(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	topo := mesh.NewTopology(testenv.DatabaseName(t), 1)
	conn, queue := sourceBus(ctx, t, topo, logger)
	st := &outageStore{Store: NewPostgresStore(testPool(t))}
	if err := st.init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.close)
	st.down.Store(true)
	pub := conn.NewPublisher(1)
	defer pub.Close()
	svc, err := New(Config{}, st, allEndpoints{}, nil, pub, topo, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	reg := &oneSource{src: &registryv1.Source{Id: "src_1", ProjectId: "prj_1", Amqp: &registryv1.AMQPSource{Queue: queue},
		Status: registryv1.SourceStatus_SOURCE_STATUS_ACTIVE}}
	run := func() (stop func()) {
		sources, err := svc.newSources(SourcesConfig{PollInterval: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, conn, pub, reg, noop.NewMeterProvider())
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sources.Run(rctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	inspect := func() amqp.Queue {
		ch, err := conn.Channel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			return amqp.Queue{Consumers: -1}
		}
		return q
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	stop := run()
	waitUntil("the consumer", func() bool { return inspect().Consumers == 1 })
	ch, err := conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
		MessageId: "order-1", DeliveryMode: amqp.Persistent,
		Body: []byte(`{"endpoint_id":"ep_1","event_type":"order.paid","data":{"id":1}}`)}); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	// Tried again and again while the store is down ...
	waitUntil("three attempts", func() bool { return st.attempts.Load() >= 3 })
	stop()
	// ... and, once the consumer stops, back in the queue: not acked, not
	// rejected.
	// (The queue's count follows the requeue through its log: poll.)
	waitUntil("the message back in the queue", func() bool { return inspect().Messages == 1 })
	if reg.accepted() != 0 {
		t.Fatalf("accepted %d while the store was down", reg.accepted())
	}

	st.down.Store(false)
	stop = run()
	defer stop()
	waitUntil("the event counted", func() bool { return reg.accepted() == 1 })
	waitUntil("the queue drained", func() bool { return inspect().Messages == 0 })
	// A claim of the idempotency key was made by each failed attempt's
	// request; the event stored is one, under the key.
	evs, err := st.list(ctx, listFilter{projectID: "prj_1", idempotencyKey: "order-1", limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].IsDuplicate {
		t.Fatalf("events stored under order-1: %+v", evs)
	}
	ch, err = conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, ok, _ := ch.Get(queue+RejectedSuffix, true); ok {
		t.Fatal("the message was rejected")
	}
}

// TestSourceOrderingKey consumes messages with an ordering_key from a
// source: they are stored numbered in their line in queue order, as
// through REST, and a message whose key is not a string is rejected naming
// it.
func TestSourceOrderingKey(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	topo := mesh.NewTopology(testenv.DatabaseName(t), 1)
	conn, queue := sourceBus(ctx, t, topo, logger)
	st := NewPostgresStore(testPool(t))
	if err := st.init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.close)
	pub := conn.NewPublisher(1)
	defer pub.Close()
	svc, err := New(Config{}, st, allEndpoints{}, nil, pub, topo, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	reg := &oneSource{src: &registryv1.Source{Id: "src_1", ProjectId: "prj_1", Amqp: &registryv1.AMQPSource{Queue: queue},
		Status: registryv1.SourceStatus_SOURCE_STATUS_ACTIVE}}
	sources, err := svc.newSources(SourcesConfig{PollInterval: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, conn, pub, reg, noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sources.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("the consumer", func() bool {
		ch, err := conn.Channel(ctx)
		if err != nil {
			return false
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Consumers == 1
	})
	ch, err := conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for i, body := range []string{
		`{"endpoint_id":"ep_1","event_type":"order.paid","data":{"id":1},"ordering_key":"order-1"}`,
		`{"endpoint_id":"ep_1","event_type":"order.shipped","data":{"id":1},"ordering_key":"order-1"}`,
		`{"endpoint_id":"ep_1","event_type":"order.paid","data":{"id":2},"ordering_key":5}`,
	} {
		if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
			MessageId: fmt.Sprintf("msg-%d", i), DeliveryMode: amqp.Persistent, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var rejected amqp.Delivery
	waitUntil("the bad message rejected", func() bool {
		d, ok, _ := ch.Get(queue+RejectedSuffix, true)
		rejected = d
		return ok
	})
	if reason, _ := rejected.Headers[RejectedReasonHeader].(string); reason != "ordering_key: must be a string, got a JSON number" {
		t.Fatalf("message rejected for %q, want ordering_key named", reason)
	}
	waitUntil("two events counted", func() bool { return reg.accepted() == 2 })
	for i, typ := range []string{"order.paid", "order.shipped"} {
		evs, err := st.list(ctx, listFilter{projectID: "prj_1", idempotencyKey: fmt.Sprintf("msg-%d", i), limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].EventType != typ || evs[0].OrderingKey != "order-1" || evs[0].OrderingSeq != uint64(i+1) {
			t.Fatalf("message %d stored as %+v; want %s in order-1, number %d", i, evs, typ, i+1)
		}
	}
	// Many messages over a few keys, handled by several workers: each key's
	// messages are numbered in queue order, one at a time.
	const many, keys = 200, 3
	for i := range many {
		body := fmt.Sprintf(`{"endpoint_id":"ep_1","event_type":"t","data":{"i":%d},"ordering_key":"key-%d"}`, i, i%keys)
		if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
			MessageId: fmt.Sprintf("many-%d", i), DeliveryMode: amqp.Persistent, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil("every message counted", func() bool { return reg.accepted() == 2+many })
	next := map[int]uint64{}
	for i := range many {
		evs, err := st.list(ctx, listFilter{projectID: "prj_1", idempotencyKey: fmt.Sprintf("many-%d", i), limit: 10})
		if err != nil || len(evs) != 1 {
			t.Fatalf("message %d stored as %+v (%v)", i, evs, err)
		}
		next[i%keys]++
		if evs[0].OrderingSeq != next[i%keys] {
			t.Fatalf("message %d of key-%d numbered %d, want %d: not in queue order", i, i%keys, evs[0].OrderingSeq, next[i%keys])
		}
	}
}

// sourceBus connects to RabbitMQ with topo declared and names a source
// queue of the test's own; the topology, the queue and its rejected queue
// are deleted when the test ends.
func sourceBus(ctx context.Context, t *testing.T, topo mesh.Topology, logger *slog.Logger) (*bus.Conn, string) {
	t.Helper()
	conn, err := bus.Dial(ctx, topo.BusConfig(testenv.AMQPURL(t), ""),
		sdktrace.NewTracerProvider(), propagation.TraceContext{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	queue := "src-" + strings.ToLower(ids.Random(10))
	t.Cleanup(func() {
		if ch, err := conn.Channel(context.Background()); err == nil {
			_ = topo.Delete(ch)
			_, _ = ch.QueueDelete(queue, false, false, false)
			_, _ = ch.QueueDelete(queue+RejectedSuffix, false, false, false)
			_ = ch.Close()
		}
		_ = conn.Close()
	})
	return conn, queue
}

package mesh

import (
	"context"
	"encoding/binary"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/groupcommit"
)

// Types of the batch messages.
const (
	TypeEventBatch = "hookmesh.bus.v1.EventBatch"
	TypeStateBatch = "hookmesh.bus.v1.StateBatch"
)

// Publisher publishes messages and returns once the broker confirmed them
// all (a *bus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, msgs []bus.Message) error
}

// BatchPublisher is a Publisher that carries the events for the router and
// the state changes for each status partition that concurrent callers
// publish at the same moment in one message each: an EventBatch, a
// StateBatch. The event and the SCHEDULED and outcome changes are three of
// a delivery's four confirmed quorum-queue messages, and most of the
// broker's work, and of the consumers', is per message. It waits for
// nothing to fill a batch (a group commit): a lone caller's messages go at
// once, and under load those that arrive while a batch is being published
// form the next. Every caller returns once its own messages are confirmed,
// as with the Publisher it wraps; other messages (tasks, meta events,
// routes) go through that Publisher as they are, at the same time.
type BatchPublisher struct {
	pub     Publisher
	tracing Tracing
	group   *groupcommit.Group[[]bus.Message, struct{}]
}

// Tracing keeps each event of a batch in its own trace (a *bus.Conn).
type Tracing interface {
	// Traceparent returns the W3C traceparent of ctx's span.
	Traceparent(ctx context.Context) string
	// StartSpan starts a span in the trace traceparent names, linked to
	// ctx's span.
	StartSpan(ctx context.Context, traceparent, name string, kind trace.SpanKind) (context.Context, trace.Span)
}

// TraceparentsHeader carries, on an EventBatch, the traceparent of each of
// its events, in order: the router carries on each event's trace.
const TraceparentsHeader = "x-hookmesh-traceparents"

// Batches: how many are published at once, and how many callers' messages
// one gathers at most.
const (
	batchWriters  = 2
	batchMaxCalls = 256
)

// NewBatchPublisher wraps pub; tracing (nil for none) keeps each event in
// its trace; timeout bounds the publishing of one batch (a caller whose
// batch is not confirmed in time gets an error, and its own message is
// handled again).
func NewBatchPublisher(pub Publisher, tracing Tracing, timeout time.Duration) *BatchPublisher {
	b := &BatchPublisher{pub: pub, tracing: tracing}
	b.group = groupcommit.New(batchWriters, batchMaxCalls, timeout, b.write)
	return b
}

// Close publishes what is queued and stops.
func (b *BatchPublisher) Close() { b.group.Close() }

// AloneHeader marks a message that travels alone, never in a batch: an
// event of a batch that the router could not route, sent back to it with
// the reason, so that it is retried with backoff or parked by itself.
const AloneHeader = "x-hookmesh-alone"

// batchType is the type of the batch that carries m, or "" when m travels
// alone.
func batchType(m bus.Message) string {
	if _, alone := m.Headers[AloneHeader]; alone {
		return ""
	}
	switch {
	case m.Type == TypeState:
		return TypeStateBatch
	case m.Type == TypeEvent && m.Key == eventKey:
		return TypeEventBatch
	}
	return ""
}

// Publish publishes msgs and returns once the broker confirmed them all:
// the events and state changes in batches, the others as they are.
func (b *BatchPublisher) Publish(ctx context.Context, msgs []bus.Message) error {
	var batched, others []bus.Message
	for _, m := range msgs {
		if batchType(m) != "" {
			batched = append(batched, m)
		} else {
			others = append(others, m)
		}
	}
	if len(batched) == 0 {
		return b.pub.Publish(ctx, others)
	}
	if b.tracing != nil && batched[0].Type == TypeEvent {
		// The caller's publish, in its trace; the batch's own publish is
		// in a trace of its own, and the router goes on with this one.
		var span trace.Span
		ctx, span = b.tracing.StartSpan(ctx, "", batched[0].Exchange+" publish", trace.SpanKindProducer)
		defer span.End()
		tp := b.tracing.Traceparent(ctx)
		for i := range batched {
			batched[i].Headers = amqp.Table{traceparentKey: tp}
		}
	}
	if len(others) == 0 {
		_, err := b.group.Do(ctx, batched)
		return err
	}
	done := make(chan error, 1)
	go func() { done <- b.pub.Publish(ctx, others) }()
	_, err := b.group.Do(ctx, batched)
	if oerr := <-done; err == nil {
		err = oerr
	}
	return err
}

// write publishes the messages of many callers, one batch per destination
// (the router queue, or a status partition), and waits for the confirms.
func (b *BatchPublisher) write(ctx context.Context, items [][]bus.Message) ([]struct{}, error) {
	var msgs []bus.Message
	var counts []int
	var traceparents [][]any
	byKey := map[string]int{}
	for _, item := range items {
		for _, m := range item {
			typ := batchType(m)
			dest := typ + " " + m.Exchange + " " + m.Key
			i, ok := byKey[dest]
			if !ok {
				i = len(msgs)
				byKey[dest] = i
				msgs = append(msgs, bus.Message{Exchange: m.Exchange, Key: m.Key, MessageID: m.MessageID, Type: typ})
				counts, traceparents = append(counts, 0), append(traceparents, nil)
			}
			msgs[i] = appendToBatch(msgs[i], m)
			counts[i]++
			tp, _ := m.Headers[traceparentKey].(string)
			traceparents[i] = append(traceparents[i], tp)
		}
	}
	// The id names the first message and how many follow it.
	for i := range msgs {
		if msgs[i].Type == TypeEventBatch {
			msgs[i].Headers = amqp.Table{TraceparentsHeader: traceparents[i]}
		}
		if counts[i] > 1 {
			msgs[i].MessageID += "+" + strconv.Itoa(counts[i]-1)
		}
	}
	return make([]struct{}, len(items)), b.pub.Publish(ctx, msgs)
}

// traceparentKey is where Publish keeps an event's traceparent until write
// gathers them in TraceparentsHeader.
const traceparentKey = "traceparent"

// appendToBatch adds one message's body to a batch message: a batch is its
// messages one after the other, each as field 1 (the encoding of a
// repeated message field), so their bytes are copied, not decoded. A change
// about a line marks the batch the same way.
func appendToBatch(batch, m bus.Message) bus.Message {
	batch.Body = binary.AppendUvarint(append(batch.Body, 0x0a), uint64(len(m.Body)))
	batch.Body = append(batch.Body, m.Body...)
	if k, ok := m.Headers[OrderingKeyHeader]; ok && batch.Headers == nil {
		batch.Headers = amqp.Table{OrderingKeyHeader: k}
	}
	return batch
}

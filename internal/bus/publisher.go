package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Message is one message to publish.
type Message struct {
	Exchange  string
	Key       string
	Body      []byte
	MessageID string
	Type      string
	Headers   amqp.Table
}

// Publisher publishes persistent messages on a small pool of confirm-mode
// channels. Publish sends a whole batch and then waits for all of its
// confirms together.
type Publisher struct {
	conn *Conn
	next atomic.Uint32
	pool []*pooledChannel
}

type pooledChannel struct {
	mu sync.Mutex
	ch *amqp.Channel
}

// NewPublisher returns a publisher with size channels (4 when zero).
func (c *Conn) NewPublisher(size int) *Publisher {
	if size <= 0 {
		size = 4
	}
	p := &Publisher{conn: c, pool: make([]*pooledChannel, size)}
	for i := range p.pool {
		p.pool[i] = &pooledChannel{}
	}
	return p
}

// channel returns an open confirm-mode channel of the pool.
func (pc *pooledChannel) channel(ctx context.Context, conn *Conn) (*amqp.Channel, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.ch != nil && !pc.ch.IsClosed() {
		return pc.ch, nil
	}
	ch, err := conn.Channel(ctx)
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	pc.ch = ch
	return ch, nil
}

func (pc *pooledChannel) discard(ch *amqp.Channel) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.ch == ch {
		_ = ch.Close()
		pc.ch = nil
	}
}

// Publish publishes msgs and returns once the broker has confirmed every
// one of them. What was not confirmed (a nack, a lost channel or
// connection) is published again, after a reconnect if need be, until ctx
// ends. Consumers are idempotent, so a message published twice is harmless.
func (p *Publisher) Publish(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ctx, span := p.conn.tracer.Start(ctx, msgs[0].Exchange+" publish", trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	// Attributes are made only for a span that keeps them (see startSpan).
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "rabbitmq"),
			attribute.String("messaging.destination.name", msgs[0].Exchange),
			attribute.Int("messaging.batch.message_count", len(msgs)))
	}
	for i := range msgs {
		if msgs[i].Headers == nil {
			msgs[i].Headers = amqp.Table{}
		}
		p.conn.propagator.Inject(ctx, tableCarrier(msgs[i].Headers))
	}
	pending := msgs
	backoff := 50 * time.Millisecond
	for {
		failed, err := p.publishOnce(ctx, pending)
		if err == nil && len(failed) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			span.SetStatus(codes.Error, "not confirmed")
			return fmt.Errorf("publish %d of %d messages: %w", len(failed), len(msgs), errors.Join(err, ctx.Err()))
		}
		if len(failed) > 0 {
			pending = failed
		}
		p.conn.logger.WarnContext(ctx, "publish not confirmed; publishing again", "messages", len(pending), "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// publishOnce returns the messages that were not confirmed.
func (p *Publisher) publishOnce(ctx context.Context, msgs []Message) ([]Message, error) {
	pc := p.pool[int(p.next.Add(1))%len(p.pool)]
	ch, err := pc.channel(ctx, p.conn)
	if err != nil {
		return msgs, err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, m.Exchange, m.Key, false, false, amqp.Publishing{
			Headers:      m.Headers,
			ContentType:  "application/protobuf",
			DeliveryMode: amqp.Persistent,
			MessageId:    m.MessageID,
			Type:         m.Type,
			Timestamp:    now,
			Body:         m.Body,
		})
		if err != nil {
			pc.discard(ch)
			// The ones already sent may still be confirmed: wait for them, and
			// resend the rest.
			failed, _ := wait(ctx, msgs[:i], confirms)
			return append(failed, msgs[i:]...), fmt.Errorf("publish to %s: %w", m.Exchange, err)
		}
		confirms = append(confirms, dc)
	}
	failed, err := wait(ctx, msgs, confirms)
	if len(failed) > 0 && ch.IsClosed() {
		pc.discard(ch)
	}
	return failed, err
}

func wait(ctx context.Context, msgs []Message, confirms []*amqp.DeferredConfirmation) ([]Message, error) {
	var failed []Message
	var firstErr error
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil || !ok {
			failed = append(failed, msgs[i])
			if firstErr == nil {
				if err == nil {
					err = errors.New("broker did not confirm the message (nack or channel closed)")
				}
				firstErr = err
			}
		}
	}
	return failed, firstErr
}

// Close closes the publisher's channels.
func (p *Publisher) Close() {
	for _, pc := range p.pool {
		pc.mu.Lock()
		if pc.ch != nil {
			_ = pc.ch.Close()
			pc.ch = nil
		}
		pc.mu.Unlock()
	}
}

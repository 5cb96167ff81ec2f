package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/hookmesh/hookmesh/internal/ids"
)

// ErrMalformed marks a message that can never be processed: it is moved to
// the parking queue instead of being retried.
var ErrMalformed = errors.New("malformed message")

// Decode unmarshals a delivery's body into m; a body that does not decode
// is ErrMalformed, so the consumer parks it.
func Decode(d *Delivery, m proto.Message) error {
	if err := proto.Unmarshal(d.Body, m); err != nil {
		return fmt.Errorf("%w: decode %T: %w", ErrMalformed, m, err)
	}
	return nil
}

// Delivery is one received message.
type Delivery struct {
	// Ctx carries the trace context of the publisher and the consumer span.
	Ctx context.Context
	amqp.Delivery

	malformed error
}

// Park marks a delivery of a batch as unprocessable: once the batch handler
// returns nil, it goes to the parking queue while the rest are acked.
func (d *Delivery) Park(err error) { d.malformed = err }

// ConsumeOptions configures Consume.
type ConsumeOptions struct {
	// Workers is how many messages are handled at once; 1 when zero.
	Workers int
	// Prefetch is the channel's QoS; twice Workers when zero.
	Prefetch int
	// Exclusive asks to be the queue's only consumer (ignored by queues
	// with single active consumer, which choose one themselves).
	Exclusive bool
	// Lane, when set, names each message's lane: the messages of one lane
	// are handled one at a time, in the order they came, by the same
	// worker; "" is no lane (any worker).
	Lane func(*amqp.Delivery) string
}

// Handler handles one delivery; ctx carries the publisher's trace
// context and the consumer's span, as d.Ctx does. nil acks it; an error wrapping ErrMalformed
// parks it; on any other error it is handled again after a backoff (up to
// 5 s), until it succeeds or the consumer stops (then it is requeued).
type Handler func(ctx context.Context, d *Delivery) error

// BatchHandler handles up to MaxBatch deliveries at once; nil acks them all.
type BatchHandler func(ctx context.Context, ds []*Delivery) error

// BatchOptions configures ConsumeBatch.
type BatchOptions struct {
	// MaxBatch is the most deliveries per call; 200 when zero.
	MaxBatch int
	// MaxWait is how long a batch waits to fill; 5 ms when zero.
	MaxWait time.Duration
	// Urgent, when set, marks deliveries someone is waiting on: once the
	// batch has one, it waits at most UrgentWait (5 ms when zero) more.
	Urgent     func(*amqp.Delivery) bool
	UrgentWait time.Duration
}

// Consume handles the queue's messages until ctx ends, surviving channel and
// connection loss. On shutdown it stops taking messages, lets the handlers
// in flight finish (they get a context that shutdown does not cancel), and
// closes the channel, which returns unacked messages to the queue.
func (c *Conn) Consume(ctx context.Context, queue string, opts ConsumeOptions, h Handler) error {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.Prefetch <= 0 {
		opts.Prefetch = 2 * opts.Workers
	}
	return c.consumeLoop(ctx, queue, opts, func(ch *amqp.Channel, deliveries <-chan amqp.Delivery) {
		var wg sync.WaitGroup
		for _, in := range lanes(deliveries, opts) {
			wg.Go(func() {
				for d := range in {
					if ctx.Err() != nil {
						// Shutting down: what was prefetched goes back to the
						// queue for another consumer instead of being handled.
						_ = d.Nack(false, true)
						continue
					}
					c.handleOne(ctx, ch, queue, d, h)
				}
			})
		}
		wg.Wait()
	})
}

// lanes returns what each of opts.Workers workers reads: deliveries
// itself, shared, or with opts.Lane, a channel each, fed by a dispatcher
// that sends every message of a lane to the same worker (a message without
// a lane to the next worker in turn).
func lanes(deliveries <-chan amqp.Delivery, opts ConsumeOptions) []<-chan amqp.Delivery {
	out := make([]<-chan amqp.Delivery, opts.Workers)
	if opts.Lane == nil || opts.Workers == 1 {
		for i := range out {
			out[i] = deliveries
		}
		return out
	}
	ins := make([]chan amqp.Delivery, opts.Workers)
	for i := range ins {
		ins[i] = make(chan amqp.Delivery, 1)
		out[i] = ins[i]
	}
	go func() {
		defer func() {
			for _, in := range ins {
				close(in)
			}
		}()
		next := 0
		for d := range deliveries {
			i := next
			if lane := opts.Lane(&d); lane != "" {
				h := fnv.New32a()
				h.Write([]byte(lane))
				i = int(h.Sum32() % uint32(len(ins)))
			} else {
				next = (next + 1) % len(ins)
			}
			ins[i] <- d
		}
	}()
	return out
}

// ConsumeBatch is Consume for handlers that work on batches: it gathers up
// to MaxBatch deliveries (waiting at most MaxWait for more once it has one)
// and acks them together.
func (c *Conn) ConsumeBatch(ctx context.Context, queue string, opts ConsumeOptions, bopts BatchOptions, h BatchHandler) error {
	if bopts.MaxBatch <= 0 {
		bopts.MaxBatch = 200
	}
	if bopts.MaxWait <= 0 {
		bopts.MaxWait = 5 * time.Millisecond
	}
	if bopts.UrgentWait <= 0 {
		bopts.UrgentWait = 5 * time.Millisecond
	}
	if opts.Prefetch <= 0 {
		opts.Prefetch = 2 * bopts.MaxBatch
	}
	return c.consumeLoop(ctx, queue, opts, func(ch *amqp.Channel, deliveries <-chan amqp.Delivery) {
		// One buffer for every batch: handleBatch is done with a batch when
		// it returns.
		var buf []amqp.Delivery
		for {
			first, ok := <-deliveries
			if !ok {
				return
			}
			batch := fillBatch(ctx, deliveries, append(buf[:0], first), bopts)
			if ctx.Err() != nil {
				// Shutting down: the batch goes back to the queue.
				_ = batch[len(batch)-1].Nack(true, true)
				continue
			}
			c.handleBatch(ctx, ch, queue, batch, h)
			clear(batch) // the deliveries' bodies are not kept alive
			buf = batch
		}
	})
}

// fillBatch adds deliveries to batch until it has MaxBatch, MaxWait has
// passed (UrgentWait once it holds an urgent one), the channel closes or
// ctx ends.
func fillBatch(ctx context.Context, deliveries <-chan amqp.Delivery, batch []amqp.Delivery, bopts BatchOptions) []amqp.Delivery {
	wait := bopts.MaxWait
	urgent := func(d *amqp.Delivery) bool {
		return bopts.Urgent != nil && wait > bopts.UrgentWait && bopts.Urgent(d)
	}
	if urgent(&batch[0]) {
		wait = bopts.UrgentWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(batch) < bopts.MaxBatch {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return batch
			}
			batch = append(batch, d)
			if urgent(&d) {
				wait = bopts.UrgentWait
				timer.Reset(wait)
			}
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

func (c *Conn) consumeLoop(ctx context.Context, queue string, opts ConsumeOptions, run func(*amqp.Channel, <-chan amqp.Delivery)) error {
	backoff := 100 * time.Millisecond
	for {
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the caller stopped consuming
		}
		err := c.consumeOnce(ctx, queue, opts, run)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the caller stopped consuming: whatever ended the loop is expected
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		c.logger.Warn("consumer stopped; consuming again", "queue", queue, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (c *Conn) consumeOnce(ctx context.Context, queue string, opts ConsumeOptions, run func(*amqp.Channel, <-chan amqp.Delivery)) error {
	ch, err := c.Channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(opts.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	tag := fmt.Sprintf("%s-%p", queue, ch)
	deliveries, err := ch.ConsumeWithContext(context.WithoutCancel(ctx), queue, tag, false, opts.Exclusive, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", queue, err)
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// Stop the flow; deliveries already received are handled, then
			// the channel closes when run returns.
			_ = ch.Cancel(tag, false)
		case <-stopped:
		}
	}()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	run(ch, deliveries)
	close(stopped)
	select {
	case err := <-closed:
		if err != nil {
			return fmt.Errorf("channel closed: %w", err)
		}
	default:
	}
	return errors.New("delivery channel closed")
}

func (c *Conn) startSpan(ctx context.Context, queue string, d amqp.Delivery) (context.Context, trace.Span) {
	parent := c.propagator.Extract(ctx, tableCarrier(d.Headers))
	ctx, span := c.tracer.Start(parent, queue+" process", trace.WithSpanKind(trace.SpanKindConsumer))
	// Attributes are made only for a span that keeps them: without an
	// exporter, spans carry ids alone, for every message.
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "rabbitmq"),
			attribute.String("messaging.destination.name", queue),
			attribute.String("messaging.message.id", d.MessageId),
		)
	}
	return ctx, span
}

func (c *Conn) handleOne(ctx context.Context, ch *amqp.Channel, queue string, d amqp.Delivery, h Handler) {
	spanCtx, span := c.startSpan(context.WithoutCancel(ctx), queue, d)
	defer span.End()
	// A failure that is not the message's fault (the database or a peer
	// is away) is tried again here, with backoff, holding the message:
	// requeueing it would count a delivery against it each time, and
	// brokers that cap deliveries (quorum queues from RabbitMQ 4.0 on)
	// would drop it during a long outage.
	backoff := 200 * time.Millisecond
	for {
		err := h(spanCtx, &Delivery{Ctx: spanCtx, Delivery: d})
		switch {
		case err == nil:
			_ = d.Ack(false)
			return
		case errors.Is(err, ErrMalformed):
			span.SetStatus(codes.Error, err.Error())
			c.park(spanCtx, queue, []amqp.Delivery{d}, err, true)
			return
		}
		span.RecordError(err)
		if ch.IsClosed() {
			span.SetStatus(codes.Error, err.Error())
			return // the broker requeues it
		}
		if ctx.Err() != nil {
			span.SetStatus(codes.Error, err.Error())
			_ = d.Nack(false, true)
			return
		}
		c.logger.WarnContext(spanCtx, "message handling failed; trying again", "queue", queue, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			_ = d.Nack(false, true)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (c *Conn) handleBatch(ctx context.Context, ch *amqp.Channel, queue string, batch []amqp.Delivery, h BatchHandler) {
	ds := make([]*Delivery, len(batch))
	links := make([]trace.Link, 0, len(batch))
	for i, d := range batch {
		parent := c.propagator.Extract(context.WithoutCancel(ctx), tableCarrier(d.Headers))
		ds[i] = &Delivery{Ctx: parent, Delivery: d}
		if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	spanCtx, span := c.tracer.Start(context.WithoutCancel(ctx), queue+" process batch",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(batch))))
	defer span.End()
	last := batch[len(batch)-1]
	for {
		err := h(spanCtx, ds)
		if err == nil {
			// Each parked delivery carries its own reason.
			for _, d := range ds {
				if d.malformed != nil && !c.park(spanCtx, queue, []amqp.Delivery{d.Delivery}, d.malformed, false) {
					_ = last.Nack(true, true)
					return
				}
			}
			_ = last.Ack(true)
			return
		}
		span.RecordError(err)
		if errors.Is(err, ErrMalformed) {
			c.park(spanCtx, queue, batch, err, true)
			return
		}
		c.logger.WarnContext(spanCtx, "batch handling failed; trying again", "queue", queue, "messages", len(batch), "err", err)
		if ch.IsClosed() {
			return // the broker requeues the batch
		}
		if ctx.Err() != nil {
			_ = last.Nack(true, true)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// park copies deliveries to the parking queue and, when ack is true, acks
// them (or requeues them when the copy fails). It reports whether the copy
// was confirmed.
func (c *Conn) park(ctx context.Context, queue string, ds []amqp.Delivery, cause error, ack bool) bool {
	msgs := make([]Message, len(ds))
	for i, d := range ds {
		headers := amqp.Table{}
		for k, v := range d.Headers {
			headers[k] = v
		}
		headers[HeaderParkedFrom] = queue
		headers[HeaderParkedReason] = cause.Error()
		headers[HeaderParkedID] = "pk_" + ids.Random(10)
		headers[HeaderParkedAt] = time.Now().UTC().Format(time.RFC3339Nano)
		msgs[i] = Message{Exchange: c.cfg.ParkingExchange, Key: c.parkingKey(), Body: d.Body, MessageID: d.MessageId, Type: d.Type, Headers: headers}
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.parker().Publish(pctx, msgs); err != nil {
		c.logger.ErrorContext(ctx, "park messages failed; requeueing", "queue", queue, "err", err)
		if ack {
			for _, d := range ds {
				_ = d.Nack(false, true)
			}
		}
		return false
	}
	c.logger.WarnContext(ctx, "parked unprocessable messages", "queue", queue, "messages", len(ds), "reason", cause)
	if ack {
		for _, d := range ds {
			_ = d.Ack(false)
		}
	}
	return true
}

// parkingKey routes a parked message: none through a parking exchange,
// the queue's name through the default exchange.
func (c *Conn) parkingKey() string {
	if c.cfg.ParkingExchange != "" {
		return ""
	}
	return c.cfg.ParkingQueue
}

func (c *Conn) parker() *Publisher {
	c.parkOnce.Do(func() { c.parkPub = c.NewPublisher(1) })
	return c.parkPub
}

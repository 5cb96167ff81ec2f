package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
)

// Headers of messages in a source's queue and in its rejected queue.
const (
	// MessageTypeHeader says what a source message is: "single" (the
	// default, with endpoint_id), "fanout" (owner_id) or "broadcast", as in
	// Convoy.
	MessageTypeHeader = "x-convoy-message-type"
	// RejectedReasonHeader says why a message was moved to <queue>.rejected.
	RejectedReasonHeader = "x-hookmesh-rejected-reason"
	// RejectedSourceHeader names the source that rejected a message.
	RejectedSourceHeader = "x-hookmesh-source-id"
	// RejectedSuffix ends the name of a source's rejected queue.
	RejectedSuffix = ".rejected"
)

// SourceRegistry is what the source consumers ask the registry.
type SourceRegistry interface {
	ListAllSources(ctx context.Context) ([]*registryv1.Source, error)
	AddSourceCounts(ctx context.Context, counts []*registryv1.SourceCounts) error
}

// SourcesConfig configures the consumption of sources.
type SourcesConfig struct {
	// PollInterval is how often the registry's list of sources is read
	// (and counters flushed to it); a registry change notification reads it
	// at once. 5 s when zero.
	PollInterval time.Duration
	// Workers is how many messages of one source are handled at once; 8
	// when zero.
	Workers int
	// MaxBackoff caps the wait before a source whose queue could not be
	// declared or consumed is tried again; 5 s when zero.
	MaxBackoff time.Duration
}

func (c *SourcesConfig) defaults() {
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
}

// Sources consumes the RabbitMQ queues of the registry's active sources:
// each message becomes an event through the same path as a REST request,
// and is acked only once the event is stored and published.
type Sources struct {
	svc     *Service
	conn    *bus.Conn
	pub     Publisher
	reg     SourceRegistry
	cfg     SourcesConfig
	logger  *slog.Logger
	counter metric.Int64Counter
	refresh chan struct{}

	// running are the consumers, by source id; only Run touches it.
	running map[string]*sourceConsumer

	mu     sync.Mutex
	counts map[sourceKey]*registryv1.SourceCounts
}

type sourceKey struct{ projectID, sourceID string }

type sourceConsumer struct {
	queue  string
	cancel context.CancelFunc
	done   chan struct{}
}

// newSources returns the consumer of sources for ingest service s: conn
// consumes, pub publishes rejected messages, reg lists the sources and
// keeps their counters.
func (s *Service) newSources(cfg SourcesConfig, conn *bus.Conn, pub Publisher, reg SourceRegistry, mp metric.MeterProvider) (*Sources, error) {
	cfg.defaults()
	counter, err := mp.Meter("github.com/hookmesh/hookmesh/services/ingest").Int64Counter("hookmesh.source.messages",
		metric.WithDescription("Messages taken from sources' queues, by source and outcome (accepted, duplicate, rejected)."),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("create source metrics: %w", err)
	}
	return &Sources{
		svc: s, conn: conn, pub: pub, reg: reg, cfg: cfg,
		logger:  s.logger.With("component", "sources"),
		counter: counter,
		refresh: make(chan struct{}, 1),
		running: make(map[string]*sourceConsumer),
		counts:  make(map[sourceKey]*registryv1.SourceCounts),
	}, nil
}

// Refresh asks Run to read the list of sources now rather than at the next
// poll (the registry announced a change).
func (x *Sources) Refresh() {
	select {
	case x.refresh <- struct{}{}:
	default:
	}
}

// Run consumes the active sources until ctx ends, following the registry's
// list: a created or activated source is consumed, a paused, moved or
// deleted one stops being consumed, within PollInterval (at once when a
// registry change is announced). On return every consumer has stopped and
// put back what it had not acked.
func (x *Sources) Run(ctx context.Context) error {
	ticker := time.NewTicker(x.cfg.PollInterval)
	defer ticker.Stop()
	for {
		x.sync(ctx)
		x.flush(ctx)
		select {
		case <-ctx.Done():
			for id := range x.running {
				x.stop(id)
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			x.flush(fctx)
			cancel()
			return nil
		case <-ticker.C:
		case <-x.refresh:
		}
	}
}

// sync starts and stops consumers to match the registry's list.
func (x *Sources) sync(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := x.reg.ListAllSources(lctx)
	if err != nil {
		if ctx.Err() == nil {
			// Keep consuming what was active: the registry being away for a
			// while should not stop ingest.
			x.logger.WarnContext(ctx, "list of sources not read; keeping the current consumers", "err", err)
		}
		return
	}
	want := make(map[string]*registryv1.Source, len(list))
	for _, src := range list {
		if src.GetStatus() == registryv1.SourceStatus_SOURCE_STATUS_ACTIVE {
			want[src.GetId()] = src
		}
	}
	for id, c := range x.running {
		if src, ok := want[id]; !ok || src.GetAmqp().GetQueue() != c.queue {
			x.stop(id)
		}
	}
	for id, src := range want {
		if _, ok := x.running[id]; !ok {
			x.start(ctx, src)
		}
	}
}

func (x *Sources) start(ctx context.Context, src *registryv1.Source) {
	cctx, cancel := context.WithCancel(ctx)
	c := &sourceConsumer{queue: src.GetAmqp().GetQueue(), cancel: cancel, done: make(chan struct{})}
	x.running[src.GetId()] = c
	x.logger.InfoContext(ctx, "consuming source", "project_id", src.GetProjectId(), "source_id", src.GetId(), "queue", c.queue)
	go func() {
		defer close(c.done)
		x.consume(cctx, src)
	}()
}

// stop stops a consumer and waits until the messages it held are acked or
// back in the queue.
func (x *Sources) stop(id string) {
	c := x.running[id]
	c.cancel()
	<-c.done
	delete(x.running, id)
	x.logger.Info("stopped consuming source", "source_id", id, "queue", c.queue)
}

// orderingLane is a source message's lane: its ordering key, so that the
// messages of a key are stored, and numbered, in queue order, one at a
// time; the others are handled in parallel. A body that is not JSON, or
// whose key is not a string, has no lane (it is rejected anyway).
func orderingLane(d *amqp.Delivery) string {
	var m struct {
		OrderingKey any `json:"ordering_key"`
	}
	if json.Unmarshal(d.Body, &m) != nil {
		return ""
	}
	key, _ := m.OrderingKey.(string)
	return key
}

// consume consumes one source's queue until ctx ends: it declares the
// queue (again after a failure, with backoff), then consumes it through
// the bus, which takes the channel again after each loss of it.
func (x *Sources) consume(ctx context.Context, src *registryv1.Source) {
	queue := src.GetAmqp().GetQueue()
	backoff := 100 * time.Millisecond
	for {
		err := x.declare(ctx, queue)
		if err == nil {
			err = x.conn.Consume(ctx, queue, bus.ConsumeOptions{Workers: x.cfg.Workers, Lane: orderingLane},
				func(ctx context.Context, d *bus.Delivery) error { return x.handle(ctx, src, d.Delivery) })
		}
		if ctx.Err() != nil {
			return
		}
		x.logger.WarnContext(ctx, "source consumer stopped; consuming again", "source_id", src.GetId(), "queue", queue, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, x.cfg.MaxBackoff)
	}
}

// declare declares a source's queue and its rejected queue, durable quorum
// queues. A queue the operator made before, with other arguments (a
// classic queue), is consumed as it is.
func (x *Sources) declare(ctx context.Context, queue string) error {
	for _, q := range []string{queue, queue + RejectedSuffix} {
		ch, err := x.conn.Channel(ctx)
		if err != nil {
			return err
		}
		_, err = ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
			// The failed declare closed the channel: check on a new one that
			// the queue exists.
			_ = ch.Close()
			if ch, err = x.conn.Channel(ctx); err != nil {
				return err
			}
			_, err = ch.QueueDeclarePassive(q, true, false, false, false, nil)
			if err == nil {
				x.logger.WarnContext(ctx, "source queue exists with other arguments; consuming it as it is", "queue", q)
			}
		}
		_ = ch.Close()
		if err != nil {
			return fmt.Errorf("declare queue %s: %w", q, err)
		}
	}
	return nil
}

// rejection is a message that can never become an event.
type rejection struct{ reason string }

func (r *rejection) Error() string { return r.reason }

// handle turns one message into an event; or moves a message that can
// never be one to the rejected queue. Either way the consumer then acks it.
// When the event could not be stored or published for now (the database or
// the broker away), it returns the error: the consumer holds the message
// and tries again with backoff, as for every queue of hookmesh, since
// requeueing would count a delivery against it each time, and quorum
// queues that cap deliveries would drop it during a long outage. A source
// stopped meanwhile puts it back in its queue.
func (x *Sources) handle(ctx context.Context, src *registryv1.Source, d amqp.Delivery) error {
	ev, err := x.event(ctx, src, d)
	var rej *rejection
	switch {
	case err == nil:
		outcome := "accepted"
		if ev.duplicate {
			outcome = "duplicate"
		}
		x.count(ctx, src, outcome)
		return nil
	case errors.As(err, &rej):
		if perr := x.reject(ctx, src, d, rej.reason); perr != nil {
			return fmt.Errorf("move rejected message of source %s: %w", src.GetId(), perr)
		}
		x.count(ctx, src, "rejected")
		return nil
	}
	return fmt.Errorf("store message %q of source %s: %w", d.MessageId, src.GetId(), err)
}

type created struct{ duplicate bool }

// event creates the event a message holds: a *rejection when it can never
// be one, another error when it could not be stored now.
func (x *Sources) event(ctx context.Context, src *registryv1.Source, d amqp.Delivery) (created, error) {
	shape, err := messageShape(d.Headers[MessageTypeHeader])
	if err != nil {
		return created{}, &rejection{err.Error()}
	}
	if limit := x.svc.cfg.MaxPayloadBytes + restEnvelopeBytes; len(d.Body) > limit {
		return created{}, &rejection{fmt.Sprintf("body: is %d bytes; at most %d are allowed", len(d.Body), limit)}
	}
	req, err := parseRESTBody(shape, d.Body)
	if err != nil {
		return created{}, &rejection{connectMessage(err)}
	}
	// The source's project is the message's: only its owners can publish
	// to the queue, as only they hold its API key.
	ctx = auth.WithPrincipal(ctx, auth.Principal{ProjectID: src.GetProjectId()})
	in, err := bodyEvent(ctx, shape, src.GetProjectId(), req, false)
	if err != nil {
		return created{}, &rejection{connectMessage(err)}
	}
	if in.idempotencyKey == "" {
		in.idempotencyKey = d.MessageId
	}
	ev, err := x.svc.create(ctx, in)
	if err != nil {
		if permanent(err) {
			return created{}, &rejection{connectMessage(err)}
		}
		return created{}, err
	}
	return created{duplicate: ev.GetIsDuplicate()}, nil
}

// messageShape reads the x-convoy-message-type header.
func messageShape(v any) (restShape, error) {
	var s string
	switch t := v.(type) {
	case nil:
	case string:
		s = t
	case []byte:
		s = string(t)
	default:
		return 0, fmt.Errorf("header %s: must be a string (single, fanout or broadcast), got %T", MessageTypeHeader, v)
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "single":
		return shapeSingle, nil
	case "fanout":
		return shapeFanout, nil
	case "broadcast":
		return shapeBroadcast, nil
	}
	return 0, fmt.Errorf("header %s: %q is not a message type: use single, fanout or broadcast", MessageTypeHeader, truncateText(s, 80))
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// permanent reports whether creating an event failed for a reason that
// sending the same message again cannot change.
func permanent(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeResourceExhausted,
		connect.CodeFailedPrecondition, connect.CodeOutOfRange, connect.CodeAlreadyExists:
		return true
	}
	return false
}

// connectMessage is an error's text without Connect's code prefix.
func connectMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// reject copies a message, with its reason, to the source's rejected queue
// and waits for the broker's confirm.
func (x *Sources) reject(ctx context.Context, src *registryv1.Source, d amqp.Delivery, reason string) error {
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers[RejectedReasonHeader] = reason
	headers[RejectedSourceHeader] = src.GetId()
	queue := src.GetAmqp().GetQueue()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := x.pub.Publish(pctx, []bus.Message{{
		Key: queue + RejectedSuffix, Body: d.Body, MessageID: d.MessageId, Type: d.Type, Headers: headers,
	}})
	if err != nil {
		return fmt.Errorf("publish to %s: %w", queue+RejectedSuffix, err)
	}
	x.logger.WarnContext(ctx, "source message rejected", "project_id", src.GetProjectId(), "source_id", src.GetId(),
		"queue", queue, "message_id", d.MessageId, "reason", reason)
	return nil
}

// count adds one message's outcome to the metrics and to the counts the
// next flush sends to the registry.
func (x *Sources) count(ctx context.Context, src *registryv1.Source, outcome string) {
	x.counter.Add(ctx, 1, metric.WithAttributes(
		attribute.String("project_id", src.GetProjectId()),
		attribute.String("source_id", src.GetId()),
		attribute.String("outcome", outcome)))
	x.mu.Lock()
	defer x.mu.Unlock()
	k := sourceKey{src.GetProjectId(), src.GetId()}
	c := x.counts[k]
	if c == nil {
		c = &registryv1.SourceCounts{ProjectId: k.projectID, SourceId: k.sourceID}
		x.counts[k] = c
	}
	switch outcome {
	case "accepted":
		c.Accepted++
	case "duplicate":
		c.Duplicates++
	case "rejected":
		c.Rejected++
	}
}

// flush sends the counts gathered since the last flush to the registry in
// one call; when it fails they are kept for the next one.
func (x *Sources) flush(ctx context.Context) {
	x.mu.Lock()
	if len(x.counts) == 0 {
		x.mu.Unlock()
		return
	}
	batch := make([]*registryv1.SourceCounts, 0, len(x.counts))
	for _, c := range x.counts {
		batch = append(batch, c)
	}
	x.counts = make(map[sourceKey]*registryv1.SourceCounts)
	x.mu.Unlock()
	if err := x.reg.AddSourceCounts(ctx, batch); err != nil {
		x.logger.WarnContext(ctx, "source counters not sent; sending them with the next ones", "err", err)
		x.mu.Lock()
		for _, c := range batch {
			k := sourceKey{c.GetProjectId(), c.GetSourceId()}
			if cur := x.counts[k]; cur != nil {
				cur.Accepted += c.Accepted
				cur.Duplicates += c.Duplicates
				cur.Rejected += c.Rejected
			} else {
				x.counts[k] = c
			}
		}
		x.mu.Unlock()
	}
}

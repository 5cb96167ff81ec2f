package bus

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RegisterQueueMetrics reports the depth (ready messages) and consumers of
// every queue of Config.Queues when metrics are collected, as
// hookmesh.queue.messages and hookmesh.queue.consumers.
func (c *Conn) RegisterQueueMetrics(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/hookmesh/hookmesh/internal/bus")
	depth, err := m.Int64ObservableGauge("hookmesh.queue.messages", metric.WithDescription("Messages ready in a queue."))
	if err != nil {
		return fmt.Errorf("queue metrics: %w", err)
	}
	consumers, err := m.Int64ObservableGauge("hookmesh.queue.consumers", metric.WithDescription("Consumers of a queue."))
	if err != nil {
		return fmt.Errorf("queue metrics: %w", err)
	}
	var mu sync.Mutex
	var ch *amqp.Channel
	queues := c.cfg.Queues
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		mu.Lock()
		defer mu.Unlock()
		for _, q := range queues {
			if ch == nil || ch.IsClosed() {
				var err error
				if ch, err = c.Channel(ctx); err != nil {
					return nil // the broker is away: no figures this time
				}
			}
			// A passive declare only reads the queue; a queue that is
			// missing closes the channel, which is opened again above.
			info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			if err != nil {
				continue
			}
			attrs := metric.WithAttributes(attribute.String("queue", q))
			o.ObserveInt64(depth, int64(info.Messages), attrs)
			o.ObserveInt64(consumers, int64(info.Consumers), attrs)
		}
		return nil
	}, depth, consumers)
	return err
}

// Consumers returns how many consumers a queue has now: for a work queue,
// how many replicas share it.
func (c *Conn) Consumers(ctx context.Context, queue string) (int, error) {
	ch, err := c.Channel(ctx)
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("inspect queue %s: %w", queue, err)
	}
	return q.Consumers, nil
}

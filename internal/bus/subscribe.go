package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Subscribe receives every message of a fanout exchange through a queue of
// this process's own (named <exchange>.changes.<host>.<pid>.<n>, exclusive,
// deleted with the connection),
// until ctx ends. Such messages are notifications: they are not acked one by
// one and are lost while the process is disconnected, so onConnect runs each
// time the subscription starts, before any message, for the subscriber to
// drop whatever it may have missed.
func (c *Conn) Subscribe(ctx context.Context, exchange string, onConnect func(), h func(*Delivery)) error {
	backoff := 100 * time.Millisecond
	for {
		err := c.subscribeOnce(ctx, exchange, onConnect, h)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the caller stopped listening: whatever ended the loop is expected
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		c.logger.Warn("subscription stopped; subscribing again", "exchange", exchange, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (c *Conn) subscribeOnce(ctx context.Context, exchange string, onConnect func(), h func(*Delivery)) error {
	ch, err := c.Channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	q, err := ch.QueueDeclare(SubscriptionQueueName(exchange), false, true, true, false, amqp.Table{"x-queue-type": "classic"})
	if err != nil {
		return fmt.Errorf("declare subscription queue: %w", err)
	}
	if err := ch.QueueBind(q.Name, "", exchange, false, nil); err != nil {
		return fmt.Errorf("bind subscription queue to %s: %w", exchange, err)
	}
	msgs, err := ch.ConsumeWithContext(ctx, q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume subscription queue: %w", err)
	}
	onConnect()
	for m := range msgs {
		parent := c.propagator.Extract(context.WithoutCancel(ctx), tableCarrier(m.Headers))
		h(&Delivery{Ctx: parent, Delivery: m})
	}
	return errors.New("subscription channel closed")
}

var subscriptions atomic.Int64

// SubscriptionQueueName names a subscription queue after its exchange and
// the process, so that the management console shows whose it is:
// <exchange>.changes.<host>.<pid>.<n>, n telling apart the subscriptions of
// one process (each new one, a resubscription included, takes the next).
func SubscriptionQueueName(exchange string) string {
	host := hostname()
	if len(host) > 64 {
		host = host[:64] // a queue name is at most 255 bytes
	}
	return fmt.Sprintf("%s.changes.%s.%d.%d", exchange, host, os.Getpid(), subscriptions.Add(1))
}

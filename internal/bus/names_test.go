package bus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/hookmesh/hookmesh/internal/testenv"
)

// testNames are the exchanges and queues of one transport test, under a
// prefix of its own: a work queue behind a direct exchange, a parking queue
// behind a fanout, and a fanout to subscribe to. The transport is tested on
// these, not on hookmesh's topology (internal/mesh), which it does not know.
type testNames struct {
	WorkExchange, WorkQueue       string
	ParkingExchange, ParkingQueue string
	NotifyExchange                string
}

// workKey binds the work queue to the work exchange.
const workKey = "work"

func newTestNames(prefix string) testNames {
	return testNames{
		WorkExchange: prefix + ".work", WorkQueue: prefix + ".work",
		ParkingExchange: prefix + ".parking", ParkingQueue: prefix + ".parking",
		NotifyExchange: prefix + ".notify",
	}
}

// queues are the durable queues declare declares.
func (n testNames) queues() []string { return []string{n.WorkQueue, n.ParkingQueue} }

func (n testNames) declare(ch *amqp.Channel) error {
	for _, e := range []struct{ name, kind string }{
		{n.WorkExchange, amqp.ExchangeDirect}, {n.ParkingExchange, amqp.ExchangeFanout}, {n.NotifyExchange, amqp.ExchangeFanout},
	} {
		if err := ch.ExchangeDeclare(e.name, e.kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", e.name, err)
		}
	}
	for _, b := range []struct{ queue, exchange, key string }{
		{n.WorkQueue, n.WorkExchange, workKey}, {n.ParkingQueue, n.ParkingExchange, ""},
	} {
		if _, err := ch.QueueDeclare(b.queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			return fmt.Errorf("declare queue %s: %w", b.queue, err)
		}
		if err := ch.QueueBind(b.queue, b.key, b.exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %s: %w", b.queue, err)
		}
	}
	return nil
}

func (n testNames) delete(ch *amqp.Channel) error {
	for _, q := range n.queues() {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			return fmt.Errorf("delete queue %s: %w", q, err)
		}
	}
	for _, e := range []string{n.WorkExchange, n.ParkingExchange, n.NotifyExchange} {
		if err := ch.ExchangeDelete(e, false, false); err != nil {
			return fmt.Errorf("delete exchange %s: %w", e, err)
		}
	}
	return nil
}

// config is a connection to url that declares the names and parks
// through the parking exchange.
func (n testNames) config(url, name string) Config {
	return Config{URL: url, Name: name, Declare: n.declare, ParkingExchange: n.ParkingExchange, ParkingQueue: n.ParkingQueue, Queues: n.queues()}
}

// work is a message for the work queue.
func (n testNames) work(id string, body proto.Message) Message {
	b, err := proto.Marshal(body)
	if err != nil {
		panic(err)
	}
	return Message{Exchange: n.WorkExchange, Key: workKey, Body: b, MessageID: id, Type: string(proto.MessageName(body))}
}

// dialNames dials url (a list of brokers, maybe) with names of the test's
// own, tracing to tp (none when nil), and deletes them at the end of the
// test.
func dialNames(t testing.TB, url, name string, tp trace.TracerProvider) (*Conn, testNames) {
	t.Helper()
	return dialConfig(t, newTestNames(testenv.DatabaseName(t)), func(n testNames) Config { return n.config(url, name) }, tp)
}

// dialConfig dials the config that cfg makes of names, and deletes the
// names at the end of the test.
func dialConfig(t testing.TB, names testNames, cfg func(testNames) Config, tp trace.TracerProvider) (*Conn, testNames) {
	t.Helper()
	if tp == nil {
		tp = sdktrace.NewTracerProvider()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg(names), tp, propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch, err := c.Channel(context.Background())
		if err == nil {
			_ = names.delete(ch)
			_ = ch.Close()
		}
		_ = c.Close()
	})
	return c, names
}

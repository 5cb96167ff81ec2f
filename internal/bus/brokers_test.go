package bus

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// A list of brokers: the process connects to one that answers and moves to
// another when its connection goes away. One RabbitMQ runs here, so the
// "nodes" are TCP relays in front of it, which the tests cut.

// relay forwards 127.0.0.1:<port> to the real broker until cut.
type relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	go r.serve()
	t.Cleanup(r.Cut)
	return r
}

func (r *relay) serve() {
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		r.mu.Lock()
		if r.cut {
			r.mu.Unlock()
			_ = in.Close()
			_ = out.Close()
			return
		}
		r.conns = append(r.conns, in, out)
		r.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
		go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
	}
}

// Cut stops listening and drops every connection, as a node that dies.
func (r *relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = true
	_ = r.ln.Close()
	for _, c := range r.conns {
		_ = c.Close()
	}
}

func (r *relay) addr() string { return r.ln.Addr().String() }

// via returns the test broker's URL with its host replaced by addr.
func via(t *testing.T, addr string) string {
	t.Helper()
	u, err := url.Parse(testenv.AMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// deadAddr is a loopback port nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func dialList(t *testing.T, list []string, name string) (*Conn, testNames) {
	t.Helper()
	return dialNames(t, strings.Join(list, ","), name, nil)
}

// firstBroker makes Dial start at the first URL of the list for the rest
// of the test (the tests that use it are not parallel).
func firstBroker(t *testing.T) {
	saved := startAt
	startAt = func(int) int { return 0 }
	t.Cleanup(func() { startAt = saved })
}

// publishOne publishes a message and waits for its confirm.
func publishOne(t *testing.T, c *Conn, names testNames) {
	t.Helper()
	pub := c.NewPublisher(1)
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, []Message{names.work("evt_1", &busv1.EventMessage{EventId: "evt_1", Data: []byte(`{}`)})}); err != nil {
		t.Fatalf("publish after connecting to %s: %v", c.Broker(), err)
	}
}

func TestDialSkipsDeadBroker(t *testing.T) {
	firstBroker(t)
	live := testenv.AMQPURL(t)
	dead := via(t, deadAddr(t))
	c, names := dialList(t, []string{dead, live}, "hookmesh router")
	if want := brokerName(live); c.Broker() != want {
		t.Fatalf("connected to %q, want %q (the first broker of the list is dead)", c.Broker(), want)
	}
	// The console still tells the process apart: the connection is named
	// after it, whichever node it is on.
	if !strings.HasPrefix(c.Name(), "hookmesh router on ") {
		t.Fatalf("connection name %q", c.Name())
	}
	if got := c.amqpConfig().Properties["connection_name"]; got != c.Name() {
		t.Fatalf("connection_name client property %v, want %q", got, c.Name())
	}
	if strings.Contains(c.Broker(), "guest") {
		t.Fatalf("broker name %q shows the credentials", c.Broker())
	}
	publishOne(t, c, names)
}

func TestDialFailsWhenNoBrokerAnswers(t *testing.T) {
	t.Parallel()
	a, b := deadAddr(t), deadAddr(t)
	_, err := Dial(context.Background(), Config{URL: via(t, a) + "," + via(t, b), ParkingQueue: "parking"}, sdktrace.NewTracerProvider(), propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("dial succeeded with no broker listening")
	}
	for _, addr := range []string{a, b} {
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q does not name the broker %s", err, addr)
		}
	}
	if strings.Contains(err.Error(), "guest:") {
		t.Errorf("error %q shows the credentials", err)
	}
}

func TestDialRejectsBadURLInList(t *testing.T) {
	t.Parallel()
	_, err := Dial(context.Background(), Config{URL: testenv.AMQPURL(t) + ",http://user:pw@example.com/", ParkingQueue: "parking"}, sdktrace.NewTracerProvider(), propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "amqp url 2") || strings.Contains(err.Error(), "pw") {
		t.Fatalf("error %v, want one naming the second url without its password", err)
	}
}

func TestMovesToAnotherBrokerWhenConnectionLost(t *testing.T) {
	firstBroker(t)
	target := mustHost(t, testenv.AMQPURL(t))
	a, b := newRelay(t, target), newRelay(t, target)
	c, names := dialList(t, []string{via(t, a.addr()), via(t, b.addr())}, "hookmesh deliverer")
	if want := "127.0.0.1:" + port(a.addr()); !strings.HasPrefix(c.Broker(), want) {
		t.Fatalf("connected to %q, want %s", c.Broker(), want)
	}
	// Delete the exchanges and queues behind the process's back: only a
	// declaration after the move brings them back.
	ch, err := c.Channel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := names.delete(ch); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()

	a.Cut()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.HasPrefix(c.Broker(), "127.0.0.1:"+port(b.addr())) || c.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still on %q after the first broker went away", c.Broker())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ch, err = c.Channel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for _, q := range names.queues() {
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
			t.Fatalf("queue %s is not declared again on the new broker: %v", q, err)
		}
	}
	publishOne(t, c, names)
}

func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

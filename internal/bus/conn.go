// Package bus carries hookmesh's messages over RabbitMQ: it owns the AMQP
// connection and its reconnect loop, declares the topology, publishes with
// publisher confirms (waited for together, never one round trip per
// message), consumes with manual acks, and carries the trace context in AMQP
// headers.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Config configures the connection.
type Config struct {
	// URL is the broker, e.g. amqp://guest:guest@127.0.0.1:5672/.
	URL string
	// Prefix starts every exchange and queue name; "hookmesh" when empty.
	// Tests use a unique prefix each.
	Prefix string
	// StatusPartitions is how many status queues state changes are spread
	// over (by delivery id); 4 when zero. All processes must agree on it.
	StatusPartitions int
	// Name says what the process runs (e.g. "hookmesh registry,ingest");
	// the connection is named "<Name> on <host> pid <pid>" in the
	// management console, so that processes can be told apart. "hookmesh"
	// when empty.
	Name string
	// DelayTiers are the waits of the retry delay queues, shortest first;
	// DefaultDelayTiers when empty. All processes must agree on them.
	DelayTiers []time.Duration
}

// DefaultDelayTiers are the retry delay queues: a longer delay hops
// through them, largest first.
var DefaultDelayTiers = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour}

func (c *Config) defaults() {
	if c.Prefix == "" {
		c.Prefix = "hookmesh"
	}
	if c.Name == "" {
		c.Name = "hookmesh"
	}
	if c.StatusPartitions <= 0 {
		c.StatusPartitions = 4
	}
	if len(c.DelayTiers) == 0 {
		c.DelayTiers = DefaultDelayTiers
	}
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("bus: connection closed")

// Conn is a supervised AMQP connection: when the broker goes away it dials
// again with backoff, declares the topology again, and wakes the publishers
// and consumers that wait for it.
type Conn struct {
	cfg        Config
	name       string
	logger     *slog.Logger
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	topo       Topology

	mu      sync.Mutex
	conn    *amqp.Connection
	ready   chan struct{} // closed while conn is usable
	closed  bool
	closing chan struct{}
	done    chan struct{}

	parkOnce sync.Once
	parkPub  *Publisher
}

// Dial connects, declares the topology and starts the reconnect loop.
func Dial(ctx context.Context, cfg Config, tp trace.TracerProvider, prop propagation.TextMapPropagator, logger *slog.Logger) (*Conn, error) {
	cfg.defaults()
	c := &Conn{
		cfg:        cfg,
		name:       fmt.Sprintf("%s on %s pid %d", cfg.Name, hostname(), os.Getpid()),
		logger:     logger,
		tracer:     tp.Tracer("github.com/hookmesh/hookmesh/internal/bus"),
		propagator: prop,
		topo:       NewTopology(cfg.Prefix, cfg.StatusPartitions, cfg.DelayTiers...),
		ready:      make(chan struct{}),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
	}
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.setConn(conn)
	go c.supervise(conn)
	return c, nil
}

// Topology returns the names of the exchanges and queues.
func (c *Conn) Topology() Topology { return c.topo }

// Name is the connection's name in the management console ("connection_name"
// client property): what the process runs, its host and its pid.
func (c *Conn) Name() string { return c.name }

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown-host"
	}
	return h
}

// amqpConfig is how every connection is dialled, named after the process.
func (c *Conn) amqpConfig() amqp.Config {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(c.name)
	return amqp.Config{Heartbeat: 10 * time.Second, Properties: props, Dial: amqp.DefaultDial(10 * time.Second)}
}

func (c *Conn) dial() (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(c.cfg.URL, c.amqpConfig())
	if err != nil {
		return nil, fmt.Errorf("dial amqp: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("open amqp channel: %w", err)
	}
	defer ch.Close()
	if err := c.topo.Declare(ch); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

func (c *Conn) setConn(conn *amqp.Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	close(c.ready)
}

func (c *Conn) supervise(conn *amqp.Connection) {
	defer close(c.done)
	for {
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-c.closing:
			return
		case err := <-closed:
			c.mu.Lock()
			c.ready = make(chan struct{})
			c.conn = nil
			c.mu.Unlock()
			c.logger.Warn("amqp connection lost; reconnecting", "err", err)
		}
		backoff := 100 * time.Millisecond
		for {
			select {
			case <-c.closing:
				return
			case <-time.After(backoff):
			}
			next, err := c.dial()
			if err == nil {
				conn = next
				c.setConn(conn)
				c.logger.Info("amqp connection restored")
				break
			}
			c.logger.Warn("amqp reconnect failed", "err", err, "retry_in", backoff)
			backoff = min(backoff*2, 5*time.Second)
		}
	}
}

// connection waits until the connection is usable.
func (c *Conn) connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		c.mu.Lock()
		conn, ready, closed := c.conn, c.ready, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-ready:
		case <-c.closing:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for amqp connection: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// Channel opens a channel on the current connection, waiting for a
// reconnect when there is none.
func (c *Conn) Channel(ctx context.Context) (*amqp.Channel, error) {
	conn, err := c.connection(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open amqp channel: %w", err)
	}
	return ch, nil
}

// Ready reports whether the broker connection is up, for /readyz.
func (c *Conn) Ready(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.conn.IsClosed() {
		return errors.New("amqp connection is down")
	}
	return nil
}

// Close stops the reconnect loop and closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn := c.conn
	close(c.closing)
	c.mu.Unlock()
	var err error
	if conn != nil {
		err = conn.Close()
	}
	<-c.done
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return err
}

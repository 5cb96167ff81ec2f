// Package bus carries messages over RabbitMQ: it owns the AMQP connection
// and its reconnect loop over one or several brokers, declares what its
// Config asks for on every connection, publishes with publisher confirms
// (waited for together, never one round trip per message), consumes with
// manual acks, retries and parking, and carries the trace context in AMQP
// headers. It names no exchange or queue of its own: internal/mesh holds
// hookmesh's.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Config configures the connection. The transport knows no exchange or
// queue of its own: Declare, the parking names and Queues say what the
// process uses.
type Config struct {
	// URL is the broker, e.g. amqp://guest:guest@127.0.0.1:5672/, or
	// several nodes of one cluster, comma-separated, each a whole URL. The
	// connection starts at a random one (so that a fleet spreads over the
	// nodes), tries the next when one cannot be reached, and moves on to
	// the next when its connection goes away.
	URL string
	// Name says what the process runs (e.g. "hookmesh registry,ingest");
	// the connection is named "<Name> on <host> pid <pid>" in the
	// management console, so that processes can be told apart. "hookmesh"
	// when empty.
	Name string
	// Declare declares the exchanges, queues and bindings the process
	// uses. It runs on every connection, the first and each one after a
	// reconnect (a node the process moves to may not have them yet),
	// before the connection is handed out; nil declares nothing.
	Declare func(*amqp.Channel) error
	// ParkingExchange is where consumers send the messages they can never
	// process (ErrMalformed), each with headers saying where it came from
	// and why; "" publishes straight to ParkingQueue.
	ParkingExchange string
	// ParkingQueue is the queue behind ParkingExchange, which ListParked
	// and Replay read. Required: a message that cannot be processed must
	// have somewhere to go.
	ParkingQueue string
	// Queues are the queues RegisterQueueMetrics reports on.
	Queues []string
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = "hookmesh"
	}
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("bus: connection closed")

// Conn is a supervised AMQP connection: when the broker goes away it dials
// again with backoff, runs Config.Declare again, and wakes the publishers
// and consumers that wait for it.
type Conn struct {
	cfg        Config
	name       string
	logger     *slog.Logger
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	// urls are the brokers; next is the one dialled next, touched only by
	// Dial and then by the supervising goroutine.
	urls []string
	next int

	mu      sync.Mutex
	broker  string // the node connected to, without credentials
	conn    *amqp.Connection
	ready   chan struct{} // closed while conn is usable
	closed  bool
	closing chan struct{}
	done    chan struct{}

	parkOnce sync.Once
	parkPub  *Publisher
}

// Dial connects, runs cfg.Declare and starts the reconnect loop.
func Dial(ctx context.Context, cfg Config, tp trace.TracerProvider, prop propagation.TextMapPropagator, logger *slog.Logger) (*Conn, error) {
	cfg.defaults()
	urls, err := splitURLs(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.ParkingQueue == "" {
		return nil, errors.New("bus config has no parking queue: unprocessable messages would have nowhere to go")
	}
	c := &Conn{
		cfg:        cfg,
		name:       fmt.Sprintf("%s on %s pid %d", cfg.Name, hostname(), os.Getpid()),
		logger:     logger,
		tracer:     tp.Tracer("github.com/hookmesh/hookmesh/internal/bus"),
		propagator: prop,
		ready:      make(chan struct{}),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
		urls:       urls,
		next:       startAt(len(urls)),
	}
	conn, broker, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.setConn(conn, broker)
	logger.Info("amqp connected", "broker", broker, "connection", c.name)
	go c.supervise(conn)
	return c, nil
}

// Name is the connection's name in the management console ("connection_name"
// client property): what the process runs, its host and its pid.
func (c *Conn) Name() string { return c.name }

// Broker is the node the connection is on (host:port/vhost, without
// credentials), or the last one it was on while it reconnects.
func (c *Conn) Broker() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broker
}

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

// startAt picks the broker of n that a process dials first: a random one,
// so that the processes of a fleet spread over the nodes. Tests fix it.
var startAt = rand.IntN

// splitURLs splits a comma-separated list of broker URLs, checking each, so
// that a typo is reported at start-up rather than at the first failover.
func splitURLs(list string) ([]string, error) {
	var urls []string
	for i, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if _, err := amqp.ParseURI(u); err != nil {
			// The URL itself is left out: it may hold a password.
			return nil, fmt.Errorf("amqp url %d of the list: %w (want amqp://user:password@host:5672/vhost, comma-separated for several)", i+1, err)
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return nil, errors.New("no amqp url: want amqp://user:password@host:5672/vhost, comma-separated for several")
	}
	return urls, nil
}

// brokerName is a URL as logs and errors show it: host, port and vhost,
// never the credentials.
func brokerName(u string) string {
	uri, err := amqp.ParseURI(u)
	if err != nil {
		return "?"
	}
	return net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)) + "/" + strings.TrimPrefix(uri.Vhost, "/")
}

// dial connects to the next broker of the list that answers, trying each
// once, and runs Config.Declare there. After a loss the list goes on
// from the node after the one that was lost.
func (c *Conn) dial() (*amqp.Connection, string, error) {
	var errs []error
	for range c.urls {
		u := c.urls[c.next]
		c.next = (c.next + 1) % len(c.urls)
		conn, err := c.dialOne(u)
		if err == nil {
			return conn, brokerName(u), nil
		}
		if len(c.urls) == 1 {
			return nil, "", err
		}
		errs = append(errs, fmt.Errorf("%s: %w", brokerName(u), err))
	}
	return nil, "", fmt.Errorf("no broker of %d answered: %w", len(c.urls), errors.Join(errs...))
}

func (c *Conn) dialOne(url string) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(url, c.amqpConfig())
	if err != nil {
		return nil, fmt.Errorf("dial amqp: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("open amqp channel: %w", err)
	}
	defer ch.Close()
	if c.cfg.Declare != nil {
		if err := c.cfg.Declare(ch); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

func (c *Conn) setConn(conn *amqp.Connection, broker string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	c.broker = broker
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
			c.logger.Warn("amqp connection lost; reconnecting", "broker", c.Broker(), "err", err)
		}
		backoff := 100 * time.Millisecond
		for {
			select {
			case <-c.closing:
				return
			case <-time.After(backoff):
			}
			next, broker, err := c.dial()
			if err == nil {
				conn = next
				c.setConn(conn, broker)
				c.logger.Info("amqp connection restored", "broker", broker)
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

// Package mesh is the contract the hookmesh services keep on the bus: the
// exchanges and queues between router, deliverers, status partitions, retry
// delay tiers, parking, registry changes and meta events (Topology), how
// they are declared, and the messages each one carries. internal/bus carries
// them and knows none of it.
package mesh

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/hookmesh/hookmesh/internal/bus"
)

// Topology names hookmesh's exchanges and queues. Every queue is a durable
// quorum queue; declaring is idempotent, so every process declares it at
// start-up and after each reconnect. deploy/rabbitmq/definitions.json holds
// the same topology for the management console.
type Topology struct {
	Prefix string
	// Events carries accepted events from ingest to the router.
	EventsExchange, RouterQueue string
	// MetaQueue carries, through the events exchange, the meta events the
	// other services emit to ingest, which stores them and sends them on
	// to the router like any event.
	MetaQueue string
	// Deliveries carries delivery tasks from the router to deliverers.
	DeliveriesExchange, DeliverQueue string
	// Status carries state changes to the status service, spread over
	// partitions by delivery id; each partition queue has a single active
	// consumer, so one delivery's state has one writer at a time.
	StatusExchange string
	StatusQueues   []string
	// Parking keeps messages that cannot be processed at all.
	ParkingExchange, ParkingQueue string
	// Registry fans registry changes out to every process, each through a
	// queue of its own that lives as long as its connection.
	RegistryExchange string
	// Delays are the retry delay queues, shortest first: a message
	// published to one (through the default exchange) waits its TTL, then
	// dead-letters back to the deliveries exchange. Expiry order is queue
	// order, because every message of a queue has the same TTL.
	Delays []DelayQueue
}

// DefaultDelayTiers are the retry delay queues: a longer delay hops
// through them, largest first.
var DefaultDelayTiers = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour}

// DelayQueue is one retry delay tier.
type DelayQueue struct {
	Name string
	TTL  time.Duration
}

// Routing keys.
const (
	eventKey = "event"
	metaKey  = "meta"
	taskKey  = "task"
)

// NewTopology returns the names under prefix ("hookmesh" when empty; tests
// use a unique prefix each), with statusPartitions status queues (4 when
// zero or less); delays are the retry tiers (DefaultDelayTiers when none).
// Every process of a mesh must agree on all three.
func NewTopology(prefix string, statusPartitions int, delays ...time.Duration) Topology {
	if prefix == "" {
		prefix = "hookmesh"
	}
	if statusPartitions <= 0 {
		statusPartitions = 4
	}
	t := Topology{
		Prefix:             prefix,
		EventsExchange:     prefix + ".events",
		RouterQueue:        prefix + ".router",
		MetaQueue:          prefix + ".meta",
		DeliveriesExchange: prefix + ".deliveries",
		DeliverQueue:       prefix + ".deliver",
		StatusExchange:     prefix + ".status",
		ParkingExchange:    prefix + ".parking",
		ParkingQueue:       prefix + ".parking",
		RegistryExchange:   prefix + ".registry",
	}
	for i := range statusPartitions {
		t.StatusQueues = append(t.StatusQueues, fmt.Sprintf("%s.status.%d", prefix, i))
	}
	if len(delays) == 0 {
		delays = DefaultDelayTiers
	}
	delays = slices.Clone(delays)
	slices.Sort(delays)
	for _, d := range slices.Compact(delays) {
		t.Delays = append(t.Delays, DelayQueue{Name: prefix + ".delay." + TierName(d), TTL: d})
	}
	return t
}

// TierName writes a duration as the README, the settings table and the
// queue names do: 1s, 5s, 30s, 2m, 10m, 1h, 1h30m (time.Duration's String
// without its zero minutes and seconds: never 2m0s).
func TierName(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Queues returns every durable queue of the topology: the work queues, the
// status partitions, the parking queue and the delay queues.
func (t Topology) Queues() []string {
	queues := append([]string{t.RouterQueue, t.MetaQueue, t.DeliverQueue, t.ParkingQueue}, t.StatusQueues...)
	for _, d := range t.Delays {
		queues = append(queues, d.Name)
	}
	return queues
}

// delayArgs are a delay queue's arguments: dead-lettered at least once
// (which needs reject-publish on overflow) back to the work exchange.
func (t Topology) delayArgs(d DelayQueue) amqp.Table {
	return amqp.Table{
		"x-message-ttl":             d.TTL.Milliseconds(),
		"x-dead-letter-exchange":    t.DeliveriesExchange,
		"x-dead-letter-routing-key": taskKey,
		"x-dead-letter-strategy":    "at-least-once",
		"x-overflow":                "reject-publish",
	}
}

// StatusPartition returns the partition of a delivery's state changes.
func (t Topology) StatusPartition(deliveryID string) int {
	h := fnv.New32a()
	h.Write([]byte(deliveryID))
	return int(h.Sum32() % uint32(len(t.StatusQueues)))
}

// LinePartition returns the status partition of an ordering key's line:
// the route of each of the key's events and every state change of their
// deliveries go there, so one consumer at a time decides whose turn it is.
func (t Topology) LinePartition(projectID, orderingKey string) int {
	h := fnv.New32a()
	h.Write([]byte(projectID))
	h.Write([]byte{0})
	h.Write([]byte(orderingKey))
	return int(h.Sum32() % uint32(len(t.StatusQueues)))
}

func quorum(extra amqp.Table) amqp.Table {
	args := amqp.Table{"x-queue-type": "quorum"}
	for k, v := range extra {
		args[k] = v
	}
	return args
}

// Declare declares every exchange, queue and binding.
func (t Topology) Declare(ch *amqp.Channel) error {
	exchanges := []struct{ name, kind string }{
		{t.EventsExchange, amqp.ExchangeDirect},
		{t.DeliveriesExchange, amqp.ExchangeDirect},
		{t.StatusExchange, amqp.ExchangeDirect},
		{t.ParkingExchange, amqp.ExchangeFanout},
		{t.RegistryExchange, amqp.ExchangeFanout},
	}
	for _, e := range exchanges {
		if err := ch.ExchangeDeclare(e.name, e.kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", e.name, err)
		}
	}
	type binding struct {
		queue, exchange, key string
		args                 amqp.Table
	}
	bindings := []binding{
		{t.RouterQueue, t.EventsExchange, eventKey, nil},
		{t.MetaQueue, t.EventsExchange, metaKey, nil},
		{t.DeliverQueue, t.DeliveriesExchange, taskKey, nil},
		{t.ParkingQueue, t.ParkingExchange, "", nil},
	}
	for i, q := range t.StatusQueues {
		bindings = append(bindings, binding{q, t.StatusExchange, strconv.Itoa(i), amqp.Table{"x-single-active-consumer": true}})
	}
	for _, b := range bindings {
		if _, err := ch.QueueDeclare(b.queue, true, false, false, false, quorum(b.args)); err != nil {
			return fmt.Errorf("declare queue %s: %w", b.queue, err)
		}
		if err := ch.QueueBind(b.queue, b.key, b.exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %s: %w", b.queue, err)
		}
	}
	for _, d := range t.Delays {
		if _, err := ch.QueueDeclare(d.Name, true, false, false, false, quorum(t.delayArgs(d))); err != nil {
			return fmt.Errorf("declare delay queue %s: %w", d.Name, err)
		}
	}
	return nil
}

// Delete removes every exchange and queue of the topology (tests clean up
// with it).
func (t Topology) Delete(ch *amqp.Channel) error {
	for _, q := range t.Queues() {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			return fmt.Errorf("delete queue %s: %w", q, err)
		}
	}
	for _, e := range []string{t.EventsExchange, t.DeliveriesExchange, t.StatusExchange, t.ParkingExchange, t.RegistryExchange} {
		if err := ch.ExchangeDelete(e, false, false); err != nil {
			return fmt.Errorf("delete exchange %s: %w", e, err)
		}
	}
	return nil
}

// BusConfig is the connection to url for this topology: it declares the
// topology on every (re)connect, parks unprocessable messages through the
// parking exchange, and reports the metrics of every queue. name says what
// the process runs (see bus.Config.Name).
func (t Topology) BusConfig(url, name string) bus.Config {
	return bus.Config{
		URL:             url,
		Name:            name,
		Declare:         t.Declare,
		ParkingExchange: t.ParkingExchange,
		ParkingQueue:    t.ParkingQueue,
		Queues:          t.Queues(),
	}
}

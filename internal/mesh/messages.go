package mesh

import (
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"google.golang.org/protobuf/proto"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
)

// Message types, in the AMQP type property.
const (
	TypeEvent  = "hookmesh.bus.v1.EventMessage"
	TypeTask   = "hookmesh.bus.v1.DeliveryTask"
	TypeState  = "hookmesh.bus.v1.StateChange"
	TypeChange = "hookmesh.bus.v1.RegistryChange"
	TypeRoute  = "hookmesh.bus.v1.OrderedRoute"
)

func marshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		// Marshalling a valid generated message cannot fail.
		panic(fmt.Sprintf("marshal %T: %v", m, err))
	}
	return b
}

// EventMessage is an accepted event for the router.
func (t Topology) EventMessage(ev *busv1.EventMessage) bus.Message {
	return bus.Message{Exchange: t.EventsExchange, Key: eventKey, Body: marshal(ev), MessageID: ev.GetEventId(), Type: TypeEvent}
}

// MetaEventMessage is a meta event for ingest to store and send on.
func (t Topology) MetaEventMessage(ev *busv1.EventMessage) bus.Message {
	return bus.Message{Exchange: t.EventsExchange, Key: metaKey, Body: marshal(ev), MessageID: ev.GetEventId(), Type: TypeEvent}
}

// TaskMessage is a delivery task for the deliverers.
func (t Topology) TaskMessage(task *busv1.DeliveryTask) bus.Message {
	id := task.GetDeliveryId() + ":" + strconv.FormatUint(uint64(task.GetAttempt()), 10)
	return bus.Message{Exchange: t.DeliveriesExchange, Key: taskKey, Body: marshal(task), MessageID: id, Type: TypeTask}
}

// StateMessage is a state change for the status service, routed to the
// delivery's partition, or to its line's when it has an ordering key.
func (t Topology) StateMessage(sc *busv1.StateChange) bus.Message {
	m := bus.Message{
		Exchange:  t.StatusExchange,
		Key:       strconv.Itoa(t.StatusPartition(sc.GetDeliveryId())),
		Body:      marshal(sc),
		MessageID: sc.GetDeliveryId() + ":" + strconv.FormatUint(uint64(sc.GetAttempt()), 10) + ":" + sc.GetStatus().String(),
		Type:      TypeState,
	}
	if sc.GetOrderingKey() != "" {
		m.Key = strconv.Itoa(t.LinePartition(sc.GetProjectId(), sc.GetOrderingKey()))
		m.Headers = amqp.Table{OrderingKeyHeader: sc.GetOrderingKey()}
	}
	return m
}

// OrderingKeyHeader carries, on a route and on the state changes of a
// delivery in a line, the ordering key: the status service writes a batch
// holding one without waiting to fill it, since the line's next delivery
// waits on it.
const OrderingKeyHeader = "x-hookmesh-ordering-key"

// InLine reports whether a message is about a line (see
// OrderingKeyHeader).
func InLine(d *amqp.Delivery) bool {
	_, ok := d.Headers[OrderingKeyHeader]
	return ok
}

// RouteMessage is the router's expansion of an event with an ordering key,
// for the status partition of the key's line.
func (t Topology) RouteMessage(r *busv1.OrderedRoute) bus.Message {
	return bus.Message{
		Exchange:  t.StatusExchange,
		Key:       strconv.Itoa(t.LinePartition(r.GetProjectId(), r.GetOrderingKey())),
		Body:      marshal(r),
		MessageID: r.GetEventId() + ":route",
		Type:      TypeRoute,
		Headers:   amqp.Table{OrderingKeyHeader: r.GetOrderingKey()},
	}
}

// ChangeMessage is a registry change for every process.
func (t Topology) ChangeMessage(c *busv1.RegistryChange) bus.Message {
	return bus.Message{Exchange: t.RegistryExchange, Body: marshal(c), MessageID: c.GetProjectId() + ":" + c.GetProcedure(), Type: TypeChange}
}

// DueHeader carries, on a delayed task, when it is due (Unix milliseconds).
const DueHeader = "x-hookmesh-due"

// DelayedTaskMessage returns the task as a message that comes back to the
// deliveries exchange when due: it waits in the largest delay tier that
// does not overshoot (the smallest, if due is nearer than that), and carries
// due in DueHeader so that a deliverer receiving it early sends it on to the
// next tier. So any delay is a few hops, with no consumer in between.
func (t Topology) DelayedTaskMessage(task *busv1.DeliveryTask, due, now time.Time) bus.Message {
	m := t.TaskMessage(task)
	tier := t.Delays[0]
	for _, d := range t.Delays {
		if d.TTL <= due.Sub(now) {
			tier = d
		}
	}
	m.Exchange, m.Key = "", tier.Name
	m.Headers = amqp.Table{DueHeader: due.UnixMilli()}
	return m
}

// Due returns a delivery's DueHeader, and false when it has none.
func Due(d *bus.Delivery) (time.Time, bool) {
	switch v := d.Headers[DueHeader].(type) {
	case int64:
		return time.UnixMilli(v), true
	case int32:
		return time.UnixMilli(int64(v)), true
	}
	return time.Time{}, false
}

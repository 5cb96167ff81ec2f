package mesh

import (
	"encoding/json"
	"strconv"
)

// Definitions returns the topology as a RabbitMQ definitions document, which
// operators can import in the management console (deploy/rabbitmq holds the
// one for the default prefix; a test keeps it in step with Declare).
func (t Topology) Definitions(vhost string) ([]byte, error) {
	type exchange struct {
		Name       string         `json:"name"`
		Vhost      string         `json:"vhost"`
		Type       string         `json:"type"`
		Durable    bool           `json:"durable"`
		AutoDelete bool           `json:"auto_delete"`
		Internal   bool           `json:"internal"`
		Arguments  map[string]any `json:"arguments"`
	}
	type queue struct {
		Name       string         `json:"name"`
		Vhost      string         `json:"vhost"`
		Durable    bool           `json:"durable"`
		AutoDelete bool           `json:"auto_delete"`
		Arguments  map[string]any `json:"arguments"`
	}
	type binding struct {
		Source          string         `json:"source"`
		Vhost           string         `json:"vhost"`
		Destination     string         `json:"destination"`
		DestinationType string         `json:"destination_type"`
		RoutingKey      string         `json:"routing_key"`
		Arguments       map[string]any `json:"arguments"`
	}
	doc := struct {
		Exchanges []exchange `json:"exchanges"`
		Queues    []queue    `json:"queues"`
		Bindings  []binding  `json:"bindings"`
	}{}
	for _, e := range []struct{ name, kind string }{
		{t.EventsExchange, "direct"}, {t.DeliveriesExchange, "direct"}, {t.StatusExchange, "direct"}, {t.ParkingExchange, "fanout"}, {t.RegistryExchange, "fanout"},
	} {
		doc.Exchanges = append(doc.Exchanges, exchange{Name: e.name, Vhost: vhost, Type: e.kind, Durable: true, Arguments: map[string]any{}})
	}
	add := func(q, ex, key string, args map[string]any) {
		a := map[string]any{"x-queue-type": "quorum"}
		for k, v := range args {
			a[k] = v
		}
		doc.Queues = append(doc.Queues, queue{Name: q, Vhost: vhost, Durable: true, Arguments: a})
		doc.Bindings = append(doc.Bindings, binding{Source: ex, Vhost: vhost, Destination: q, DestinationType: "queue", RoutingKey: key, Arguments: map[string]any{}})
	}
	add(t.RouterQueue, t.EventsExchange, eventKey, nil)
	add(t.MetaQueue, t.EventsExchange, metaKey, nil)
	add(t.DeliverQueue, t.DeliveriesExchange, taskKey, nil)
	add(t.ParkingQueue, t.ParkingExchange, "", nil)
	for i, q := range t.StatusQueues {
		add(q, t.StatusExchange, strconv.Itoa(i), map[string]any{"x-single-active-consumer": true})
	}
	for _, d := range t.Delays {
		args := map[string]any{"x-queue-type": "quorum"}
		for k, v := range t.delayArgs(d) {
			args[k] = v
		}
		doc.Queues = append(doc.Queues, queue{Name: d.Name, Vhost: vhost, Durable: true, Arguments: args})
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

package integration

import (
	"net"
	"net/url"
	"testing"

	"github.com/hookmesh/hookmesh/app"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// Every process given a list of brokers whose first is dead (a closed
// port) still connects, and an event goes through them all. Each process
// starts at a random node of the list, so in almost every run some of the
// five skip the dead one; internal/bus tests that path in a fixed order.
func TestBrokerListWithADeadNode(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	s := startStack(t, modeSeparate, stackOptions{configure: func(c *app.Config) {
		u, err := url.Parse(c.AMQPURL)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = dead
		c.AMQPURL = u.String() + "," + c.AMQPURL
	}})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL + "/hooks", TimeoutSeconds: 5})
	c := s.clients(key)
	eventID := sendEvent(t, c, projectID, ep.GetId(), "order.created", `{"n":1}`)
	recv.waitFor(t, "the event", func(r []received) bool { return len(r) >= 1 })
	waitDelivery(t, c, projectID, eventID, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
}

package integration

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// TestDashboardOrderedDelivery holds the first event of a key at its
// endpoint and opens the Deliveries page: the next event's delivery shows
// WAITING with its key, and SUCCESS once the first has ended.
func TestDashboardOrderedDelivery(t *testing.T) {
	testenv.RequirePostgresURL(t)
	b := newBrowser(t)
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	release := recv.holdFirst(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, TimeoutSeconds: 30})
	c := s.clients(key)
	send := func() string {
		resp, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
			ProjectId: projectID, EndpointId: ep.GetId(), EventType: "order.updated", Data: `{}`, OrderingKey: "order-77"}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.GetEvent().GetId()
	}
	send()
	recv.waitFor(t, "the first event", func(r []received) bool { return len(r) == 1 })
	second := onlyDelivery(t, c, projectID, send()).GetId()

	b.signIn(s.registryURL+"/ui/", key, projectID)
	b.run("see the second delivery wait",
		click(tid("nav-deliveries")),
		waitText(tid("delivery-status-"+second), "WAITING"),
		visible(tid("delivery-key-"+second)),
	)
	if got := b.textOf(tid("delivery-key-" + second)); !strings.Contains(got, "order-77") || !strings.Contains(got, "waiting") {
		t.Fatalf("the page shows %q beside the waiting delivery", got)
	}
	b.shot("ordered-waiting")
	release()
	b.run("see it delivered once the first has ended", waitText(tid("delivery-status-"+second), "SUCCESS"))
}

package integration

import (
	"strings"
	"testing"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestDashboardMetaEvents sets a project's meta events on the dashboard's
// Meta events page, reads their secret there once, and checks that the
// next endpoint created sends an endpoint.created that verifies with it.
func TestDashboardMetaEvents(t *testing.T) {
	b := newBrowser(t)
	s := startStack(t, modeAll, stackOptions{})
	projectID, key := s.project(t, nil)
	metaRecv := newReceiver(t)

	b.signIn(s.registryURL+"/ui/", key, projectID)
	b.run("set meta events",
		click(tid("nav-meta-events")),
		typeInto(tid("meta-url"), metaRecv.URL+"/meta"),
		click(tid("meta-type-endpoint.created")),
		click(tid("meta-save")),
		visible(tid("meta-secret")),
		visible(tid("meta-current")),
	)
	secret := strings.TrimSpace(b.textOf(tid("meta-secret")))
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("the page shows the secret %q", secret)
	}
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: metaRecv.URL + "/customer"})
	waitMeta(t, metaRecv, []string{secret}, "endpoint.created", map[string]any{"endpoint_id": ep.GetId()})
}

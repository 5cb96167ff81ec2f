package integration

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// TestDashboardPortal drives the dashboard's portal mode in headless
// Chromium: a project has endpoints of two owners, each with a delivered
// event; a portal link of the first owner opens a dashboard that shows
// that owner's endpoint and delivery (reaching SUCCESS), its attempt and a
// forced retry, and nothing of the other owner's; it offers none of the
// other pages, creates endpoints as that owner and pauses them; once the
// link is revoked, a reload says so. It runs alone, one browser for the
// test.
func TestDashboardPortal(t *testing.T) {
	b := newBrowser(t)
	s := startStack(t, modeAll, stackOptions{})
	ctx := context.Background()
	projectID, key := s.project(t, singleAttempt)
	c := s.clients(key)

	recvA, recvB := newReceiver(t), newReceiver(t)
	epA := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recvA.URL + "/hooks", Name: "acme orders", OwnerId: "acme"})
	epB := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recvB.URL + "/hooks", Name: "globex orders", OwnerId: "globex"})
	eventA := sendEvent(t, c, projectID, epA.GetId(), "order.created", `{"order":1,"customer":"acme"}`)
	eventB := sendEvent(t, c, projectID, epB.GetId(), "order.created", `{"order":2,"customer":"globex"}`)
	dA := waitDelivery(t, c, projectID, eventA, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	dB := waitDelivery(t, c, projectID, eventB, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)

	created, err := c.registry.CreatePortalLink(ctx, connect.NewRequest(&registryv1.CreatePortalLinkRequest{ProjectId: projectID, OwnerId: "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	link, token := created.Msg.GetPortalLink(), created.Msg.GetToken()
	// The link names the address the request came to; open it on the
	// test stack's, whatever it says.
	u, err := url.Parse(link.GetUrl())
	if err != nil || u.Path != "/ui/portal" || u.Query().Get("token") != token {
		t.Fatalf("portal link url %q: %v", link.GetUrl(), err)
	}
	stack, err := url.Parse(s.registryURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme, u.Host = stack.Scheme, stack.Host

	b.run("open the portal link",
		chromedp.Navigate(u.String()),
		waitText(tid("portal-owner"), "Portal for acme"),
		waitText(tid("portal-expires"), "This link expires"),
	)
	// The token leaves the address bar for the tab's session storage.
	if loc := b.read("read the address", chromedp.Location()); strings.Contains(loc, "token") || strings.Contains(loc, token) {
		t.Fatalf("the address still holds the token: %s", loc)
	}
	if kept := b.read("read the kept token", chromedp.Evaluate[string](`sessionStorage.getItem("hookmesh.portal.token") || ""`)); kept != token {
		t.Fatalf("session storage holds %q, want the link's token", kept)
	}
	// Only the owner's pages are offered.
	for _, page := range []string{"projects", "subscriptions", "events", "keys", "parking"} {
		if b.read("look for nav-"+page, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q) ? "shown" : ""`, tid("nav-"+page)))) != "" {
			t.Fatalf("the portal offers the %s page", page)
		}
	}

	// The owner's endpoint, and not the other owner's: both are in the one
	// answer the table shows.
	b.run("see acme's endpoint", click(tid("nav-endpoints")), waitText(tid("endpoint-row-"+epA.GetId()), "ACTIVE"))
	if body := b.read("read the page", chromedp.Evaluate[string](`document.body.innerText`)); strings.Contains(body, epB.GetId()) || strings.Contains(body, "globex orders") {
		t.Fatalf("the portal shows globex's endpoint:\n%s", body)
	}

	// The owner's delivery reaches SUCCESS; its attempt opens; the other
	// owner's delivery is not listed.
	b.run("see acme's delivery succeed",
		click(tid("nav-deliveries")),
		visible(tid("delivery-status-"+dA.GetId())+`[data-status="SUCCESS"]`),
	)
	if body := b.read("read the page", chromedp.Evaluate[string](`document.body.innerText`)); strings.Contains(body, dB.GetId()) || strings.Contains(body, epB.GetId()) {
		t.Fatalf("the portal shows globex's delivery:\n%s", body)
	}
	b.run("open its attempt",
		click(tid("delivery-attempts-"+dA.GetId())),
		waitText(tid("attempt-status-"+dA.GetId()+"-1"), "HTTP 200"),
		waitText(tid("attempt-"+dA.GetId()+"-1"), eventA),
	)
	b.shot("portal")
	b.run("force a retry of it",
		click(tid("delivery-force-"+dA.GetId())),
		waitText(tid("attempt-status-"+dA.GetId()+"-2"), "HTTP 200"),
	)
	if got := recvA.byEvent(eventA); len(got) != 2 {
		t.Fatalf("acme's endpoint got %d requests for the event, want 2", len(got))
	}

	// An endpoint created in the portal is the owner's; pausing it there
	// pauses it.
	b.run("create an endpoint",
		click(tid("nav-endpoints")),
		click(tid("endpoint-new")),
		typeInto(tid("endpoint-url"), recvA.URL+"/second"),
		typeInto(tid("endpoint-name"), "acme invoices"),
		click(tid("endpoint-create")),
		waitText(tid("endpoint-secret"), "whsec_"),
	)
	eps, err := c.registry.ListEndpoints(ctx, connect.NewRequest(&registryv1.ListEndpointsRequest{ProjectId: projectID, OwnerId: "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	var second *registryv1.Endpoint
	for _, ep := range eps.Msg.GetEndpoints() {
		if ep.GetName() == "acme invoices" {
			second = ep
		}
	}
	if second == nil || second.GetOwnerId() != "acme" || second.GetUrl() != recvA.URL+"/second" {
		t.Fatalf("acme's endpoints after creating one in the portal: %v", eps.Msg.GetEndpoints())
	}
	b.run("pause it",
		click(tid("endpoint-link-"+second.GetId())),
		click(tid("endpoint-pause")),
		visible(tid("endpoint-status")+`[data-status="PAUSED"]`),
	)
	got, err := c.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectID, EndpointId: second.GetId()}))
	if err != nil || got.Msg.GetEndpoint().GetStatus() != registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED {
		t.Fatalf("the endpoint paused in the portal: %v %v", got, err)
	}

	// Revoked: once the API refuses the token, a reload says so.
	if _, err := c.registry.RevokePortalLink(ctx, connect.NewRequest(&registryv1.RevokePortalLinkRequest{ProjectId: projectID, PortalLinkId: link.GetId()})); err != nil {
		t.Fatal(err)
	}
	p := s.clients(token)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := p.registry.GetCurrentPortalLink(ctx, connect.NewRequest(&registryv1.GetCurrentPortalLinkRequest{}))
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked token still answers %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.run("reload and see the link revoked",
		chromedp.Reload(),
		waitText(tid("portal-expired"), "This portal link has expired or was revoked"),
	)
}

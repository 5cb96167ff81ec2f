package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// stepTimeout bounds each browser step: generous, as the machine may be
// busy; steps wait for what the page shows, never for a fixed time.
const stepTimeout = 60 * time.Second

// browser is one headless Chromium driven over the DevTools protocol.
type browser struct {
	t   *testing.T
	ctx context.Context
	// shots is where screenshots go (HOOKMESH_UI_SCREENSHOTS=1), or "".
	shots string
}

// chromiumPath finds Chromium, or skips the test when there is none
// (failing instead with HOOKMESH_REQUIRE_BROWSER=1, as make test sets when
// it could install it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("HOOKMESH_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("HOOKMESH_REQUIRE_BROWSER") == "1" {
		t.Fatal("HOOKMESH_REQUIRE_BROWSER=1 but no Chromium was found (apt-get install -y chromium)")
	}
	t.Skip("skipping the dashboard's browser tests: no Chromium found (apt-get install -y chromium, or set HOOKMESH_CHROMIUM)")
	return ""
}

func newBrowser(t *testing.T) *browser {
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// Start the browser: the first Run on the context, without a timeout
	// (a timeout there would end the browser with it).
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium (%s): %v", path, err)
		}
	case <-time.After(stepTimeout):
		cancelCtx()
		cancelAlloc()
		t.Fatalf("chromium (%s) did not start within %s", path, stepTimeout)
	}
	if os.Getenv("HOOKMESH_UI_SCREENSHOTS") == "1" {
		b.shots = filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(b.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// run runs one step's actions within stepTimeout, failing the test with
// what the page shows when they do not complete.
func (b *browser) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		dctx, dcancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer dcancel()
		url, _ := chromedp.Run(dctx, chromedp.Location())
		body, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		b.t.Fatalf("%s: %v\npage %s shows:\n%s", step, err, url, body)
	}
}

// read runs an action that returns a string within stepTimeout.
func (b *browser) read(step string, action chromedp.Action[string]) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
	return v
}

// tid is the CSS selector of a data-testid.
func tid(id string) string { return fmt.Sprintf(`[data-testid=%q]`, id) }

// visible waits until an element matching the CSS selector is visible.
func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// click clicks an element once it is visible. The click is dispatched by
// the page itself, so that a re-render or a layout change between finding
// the element and clicking it cannot make it miss.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		visible(sel),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			js := fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.click(); return true; })()`, sel)
			ok, err := chromedp.Evaluate[bool](js)(ctx, t)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("click %s: element gone", sel)
			}
			return nil
		}),
	)
}

// typeInto types text into an input once it is visible.
func typeInto(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(visible(sel), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// selectOption chooses an option of a select element as a user would,
// with the change event React listens to.
func selectOption(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(visible(sel), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		js := fmt.Sprintf(`(() => {
			const el = document.querySelector(%q);
			if (!el) return false;
			Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, "value").set.call(el, %q);
			el.dispatchEvent(new Event("change", { bubbles: true }));
			return el.value === %q;
		})()`, sel, value, value)
		ok, err := chromedp.Evaluate[bool](js)(ctx, t)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("select %q in %s: no such option", value, sel)
		}
		return nil
	}))
}

// textJS reads the text of the first element matching a CSS selector, or
// null when there is none.
func textJS(sel string) string {
	return fmt.Sprintf(`(() => { const el = document.querySelector(%q); return el ? el.innerText : null; })()`, sel)
}

// waitText waits until the element's text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var last *string
		for {
			txt, err := chromedp.Evaluate[*string](textJS(sel))(ctx, t)
			if err == nil {
				last = txt
				if txt != nil && strings.Contains(*txt, want) {
					return nil
				}
			}
			select {
			case <-ctx.Done():
				shown := "nothing: no such element"
				if last != nil {
					shown = fmt.Sprintf("%q", *last)
				}
				return fmt.Errorf("waiting for %s to show %q (it shows %s): %w", sel, want, shown, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// textOf reads an element's text once it is visible.
func (b *browser) textOf(sel string) string {
	b.t.Helper()
	b.run("wait for "+sel, visible(sel))
	return strings.TrimSpace(b.read("read "+sel, chromedp.Evaluate[string](textJS(sel))))
}

// shot saves a screenshot of the page as docs/screenshots/<name>.png when
// HOOKMESH_UI_SCREENSHOTS=1.
func (b *browser) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Sleep(500*time.Millisecond)); err != nil {
		b.t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn signs in on the sign-in page with a key (and a project ID).
func (b *browser) signIn(base, key, projectID string) {
	b.t.Helper()
	b.run("open the sign-in page", chromedp.Navigate(base), visible(tid("signin-key")))
	actions := []chromedp.Action[chromedp.Void]{typeInto(tid("signin-key"), key)}
	if projectID != "" {
		actions = append(actions, typeInto(tid("signin-project"), projectID))
	}
	actions = append(actions, click(tid("signin-submit")), visible(tid("signout")))
	b.run("sign in", actions...)
}

// onlyDelivery waits until the event has its one delivery and returns it.
func onlyDelivery(t *testing.T, c clients, projectID, eventID string) *statusv1.Delivery {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.status.ListDeliveries(context.Background(), connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectID, EventId: eventID}))
		if err != nil {
			t.Fatalf("list deliveries: %v", err)
		}
		if d := resp.Msg.GetDeliveries(); len(d) == 1 {
			return d[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("event %s has no delivery", eventID)
	return nil
}

// TestDashboard drives the dashboard in headless Chromium: sign in, create
// a project and an endpoint, watch a delivery reach SUCCESS on the page
// while it is open, read its attempt, retry a failed delivery and see it
// succeed, count a batch retry in a dry run, and find a parked message on
// the Parking page and replay it. It runs alone (not in parallel), one
// browser for the test.
func TestDashboard(t *testing.T) {
	b := newBrowser(t)
	s := startStack(t, modeAll, stackOptions{})
	base := s.registryURL + "/ui/"
	admin := s.clients(adminKey)
	ctx := context.Background()

	// The admin creates a project whose deliveries are tried once, and sees
	// its key once.
	b.signIn(base, adminKey, "")
	b.run("create a project",
		click(tid("nav-projects")),
		typeInto(tid("project-name"), "dashboard test"),
		typeInto(tid("project-max-attempts"), "1"),
		typeInto(tid("project-retention"), "7"),
		click(tid("project-create")),
		visible(tid("project-key")),
	)
	key := b.textOf(tid("project-key"))
	projects, err := admin.registry.ListProjects(ctx, connect.NewRequest(&registryv1.ListProjectsRequest{}))
	if err != nil || len(projects.Msg.GetProjects()) != 1 {
		t.Fatalf("projects after creating one in the dashboard: %v %v", projects, err)
	}
	project := projects.Msg.GetProjects()[0]
	projectID := project.GetId()
	if project.GetName() != "dashboard test" || project.GetRetryPolicy().GetMaxAttempts() != 1 || project.GetRetention() != 7 || !strings.HasPrefix(key, "hm_") {
		t.Fatalf("project created as %v with key %q", project, key)
	}
	b.run("see the project listed", visible(tid("project-row-"+projectID)))
	b.shot("projects")

	// Sign out; sign in with the project's key.
	b.run("sign out", click(tid("signout")), visible(tid("signin-key")))
	b.signIn(base, key, projectID)
	c := s.clients(key)

	// Create an endpoint; its secret is shown once.
	var release atomic.Bool
	released := make(chan struct{})
	good := newReceiver(t)
	good.respond = func(*http.Request) int {
		// The first request waits (at most 20 s) until the page has shown
		// the delivery before it ends, so that the page is seen to update.
		if release.CompareAndSwap(false, true) {
			select {
			case <-released:
			case <-time.After(20 * time.Second):
			}
		}
		return http.StatusOK
	}
	b.run("create an endpoint",
		click(tid("nav-endpoints")),
		click(tid("endpoint-new")),
		typeInto(tid("endpoint-url"), good.URL+"/hooks"),
		typeInto(tid("endpoint-name"), "orders service"),
		click(tid("endpoint-create")),
		visible(tid("endpoint-secret")),
	)
	secret := b.textOf(tid("endpoint-secret"))
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("endpoint secret shown as %q", secret)
	}
	eps, err := c.registry.ListEndpoints(ctx, connect.NewRequest(&registryv1.ListEndpointsRequest{ProjectId: projectID}))
	if err != nil || len(eps.Msg.GetEndpoints()) != 1 {
		t.Fatalf("endpoints after creating one in the dashboard: %v %v", eps, err)
	}
	ep := eps.Msg.GetEndpoints()[0]
	if ep.GetUrl() != good.URL+"/hooks" || ep.GetName() != "orders service" {
		t.Fatalf("endpoint created as %v", ep)
	}
	b.run("see the endpoint listed", waitText(tid("endpoint-row-"+ep.GetId()), "ACTIVE"))

	// An event sent through the API: its page shows the delivery, and then
	// SUCCESS once the receiver answers, without a reload.
	eventID := sendEvent(t, c, projectID, ep.GetId(), "order.created", `{"order":42,"total":"12.50"}`)
	b.run("find the event on the Events page", click(tid("nav-events")), click(tid("event-link-"+eventID)),
		visible(tid("event-title")))
	d := onlyDelivery(t, c, projectID, eventID)
	b.run("see the delivery on the event's page", visible(tid("delivery-status-"+d.GetId())))
	shown := b.read("read its status", chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).dataset.status`, tid("delivery-status-"+d.GetId()))))
	t.Logf("the delivery first showed as %s", shown)
	close(released)
	b.run("see the delivery reach SUCCESS",
		visible(tid("delivery-status-"+d.GetId())+`[data-status="SUCCESS"]`))
	b.run("open its attempt",
		click(tid("delivery-attempts-"+d.GetId())),
		waitText(tid("attempt-status-"+d.GetId()+"-1"), "HTTP 200"),
		waitText(tid("attempt-body-"+d.GetId()+"-1"), `"ok": true`),
	)
	b.run("see the request's headers", waitText(tid("attempt-"+d.GetId()+"-1"), eventID))
	b.shot("event")

	// A failing endpoint: the delivery FAILS (one attempt), the receiver is
	// fixed, Retry sends it again and it reaches SUCCESS.
	var down atomic.Bool
	down.Store(true)
	bad := newReceiver(t)
	bad.respond = func(*http.Request) int {
		if down.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	badEP := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: bad.URL, Name: "flaky billing"})
	failedEvent := sendEvent(t, c, projectID, badEP.GetId(), "invoice.paid", `{"invoice":"in_1"}`)
	fd := waitDelivery(t, c, projectID, failedEvent, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
	b.run("see the failed delivery on the endpoint's page",
		click(tid("nav-endpoints")),
		click(tid("endpoint-link-"+badEP.GetId())),
		visible(tid("delivery-status-"+fd.GetId())+`[data-status="FAILED"]`),
		waitText(tid("endpoint-failures"), "1 (FAILED or RETRY)"),
		waitText(tid("endpoint-recent"), "0 succeeded, 1 failed attempts"),
		waitText(tid("endpoint-last-failure"), "HTTP 500"),
	)
	b.shot("endpoint")

	// A dry run of a batch retry counts it, and queues nothing.
	b.run("count a batch retry in a dry run",
		click(tid("nav-deliveries")),
		typeInto(tid("deliveries-endpoint"), badEP.GetId()),
		visible(tid("delivery-status-"+fd.GetId())),
		click(tid("batch-dry-run")),
		waitText(tid("batch-count"), "1 deliveries would be retried"),
	)
	b.shot("deliveries")

	b.run("open the failed delivery's event and its attempt",
		click(tid("nav-events")),
		click(tid("event-link-"+failedEvent)),
		click(tid("delivery-attempts-"+fd.GetId())),
		waitText(tid("attempt-status-"+fd.GetId()+"-1"), "HTTP 500"),
	)
	down.Store(false)
	b.run("retry it and see it succeed",
		click(tid("delivery-retry-"+fd.GetId())),
		visible(tid("delivery-status-"+fd.GetId())+`[data-status="SUCCESS"]`),
		waitText(tid("attempt-status-"+fd.GetId()+"-2"), "HTTP 200"),
		visible(tid("delivery-force-"+fd.GetId())),
	)
	if got := bad.byEvent(failedEvent); len(got) != 2 {
		t.Fatalf("the failing endpoint got %d requests for the event, want 2", len(got))
	}
	// The Metrics page charts what happened: bars of SUCCESS and FAILED
	// for the project and for the flaky endpoint, attempt latencies, and
	// no FAILED for the good endpoint.
	bars := func(status string) string {
		return tid("chart-statuses") + fmt.Sprintf(` svg rect.bar[data-status=%q]`, status)
	}
	b.run("see the project's charts",
		click(tid("nav-metrics")),
		visible(bars("SUCCESS")),
		visible(bars("FAILED")),
		visible(tid("chart-latency")+` svg circle.point`),
	)
	b.run("see the flaky endpoint's charts",
		chromedp.WaitReady(chromedp.CSS(tid("metrics-endpoint")+fmt.Sprintf(` option[value=%q]`, badEP.GetId()))),
		selectOption(tid("metrics-endpoint"), badEP.GetId()),
		waitText(tid("chart-statuses"), "SUCCESS 1"),
		waitText(tid("chart-statuses"), "FAILED 1"),
		visible(bars("FAILED")),
	)
	b.shot("metrics")
	b.run("see the good endpoint's charts",
		selectOption(tid("metrics-endpoint"), ep.GetId()),
		waitText(tid("chart-statuses"), "FAILED 0"),
		visible(bars("SUCCESS")),
	)

	b.run("see both events listed", click(tid("nav-events")),
		visible(tid("event-row-"+eventID)),
		visible(tid("event-row-"+failedEvent)))
	b.shot("events")

	// The filter editor: the API's error names the path of what is wrong;
	// a valid filter creates a subscription that is listed.
	endpointOption := tid("subscription-endpoint") + fmt.Sprintf(` option[value=%q]`, ep.GetId())
	b.run("refuse a subscription with a bad filter",
		click(tid("nav-subscriptions")),
		chromedp.WaitReady(chromedp.CSS(endpointOption)),
		selectOption(tid("subscription-endpoint"), ep.GetId()),
		typeInto(tid("subscription-name"), "bad filter"),
		typeInto(tid("subscription-body"), `{"total": {"$foo": 1}}`),
		click(tid("subscription-create")),
		waitText(tid("subscription-error"), `filter.body.total.$foo: unknown operator "$foo"`),
	)
	b.run("create a subscription",
		click(tid("nav-endpoints")), visible(tid("endpoints-table")),
		click(tid("nav-subscriptions")),
		chromedp.WaitReady(chromedp.CSS(endpointOption)),
		selectOption(tid("subscription-endpoint"), ep.GetId()),
		typeInto(tid("subscription-name"), "orders"),
		typeInto(tid("subscription-event-types"), "order.*"),
		typeInto(tid("subscription-body"), `{"order": 42}`),
		click(tid("subscription-create")),
		waitText(tid("subscription-created"), "Created"),
		waitText(tid("subscriptions-table"), "order.*"),
	)
	b.shot("subscriptions")

	// A message parked on purpose shows on the admin's Parking page with
	// its reason, and a replay delivers it.
	parkedEvent := parkTask(t, s, projectID, ep.GetId(), "pk_dashboard_test", "parked by the dashboard test")
	b.run("sign out", click(tid("signout")), visible(tid("signin-key")))
	b.signIn(base, adminKey, projectID)
	b.run("see the parked message",
		click(tid("nav-parking")),
		waitText(tid("parked-reason-pk_dashboard_test"), "parked by the dashboard test"),
	)
	b.shot("parking")
	b.run("replay it",
		click(tid("parked-select-pk_dashboard_test")),
		click(tid("parking-replay-selected")),
		waitText(tid("parking-result"), "1 replayed"),
	)
	good.waitFor(t, "the replayed task", func([]received) bool { return len(good.byEvent(parkedEvent)) == 1 })
	b.run("see the parking queue empty", waitText(tid("parking-total"), "0 parked"))
}

// parkTask puts a delivery task straight on the parking queue, as if a
// deliverer had parked it, and returns its event id.
func parkTask(t *testing.T, s *stack, projectID, endpointID, parkedID, reason string) string {
	t.Helper()
	ctx := context.Background()
	topo := mesh.NewTopology(s.cfg.AMQPPrefix, s.cfg.StatusPartitions)
	conn, err := bus.Dial(ctx, topo.BusConfig(s.cfg.AMQPURL, ""),
		sdktrace.NewTracerProvider(), propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventID := ids.New("evt")
	msg := topo.TaskMessage(&busv1.DeliveryTask{
		DeliveryId: ids.Deterministic("dlv", eventID, endpointID), EventId: eventID, ProjectId: projectID,
		EndpointId: endpointID, EventType: "parking.test", Data: []byte(`{"parked":true}`), Attempt: 1,
		EventCreateTime: timestamppb.Now(),
	})
	msg.Exchange, msg.Key = topo.ParkingExchange, ""
	msg.Headers = amqp.Table{
		bus.HeaderParkedFrom:   topo.DeliverQueue,
		bus.HeaderParkedReason: reason,
		bus.HeaderParkedID:     parkedID,
	}
	if err := conn.NewPublisher(1).Publish(ctx, []bus.Message{msg}); err != nil {
		t.Fatal(err)
	}
	return eventID
}

package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hookmesh/hookmesh/app"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// TestSSRFAttacksAreRefused runs hookmesh as deployed, without
// HOOKMESH_ALLOW_PRIVATE_NETWORKS, and points endpoints at what a webhook
// must never reach. Each delivery fails without a request reaching the
// address, saying why. 127.0.0.2 is allowed explicitly, to play a public
// endpoint that redirects to a private one.
func TestSSRFAttacksAreRefused(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{configure: func(c *app.Config) {
		c.AllowPrivateNetworks = false
		c.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	}})
	private := newReceiver(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(private.URL, "http://"))

	// "Public" endpoint that redirects to the private one.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	redirector := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, private.URL+"/redirected", http.StatusFound)
	})}}
	redirector.Start()
	t.Cleanup(redirector.Close)

	projectID, key := s.project(t, singleAttempt)
	c := s.clients(key)
	attacks := []struct {
		name, url, wantErr string
	}{
		{"literal loopback", private.URL, "private or reserved range"},
		{"IPv6 loopback", "http://[::1]:" + port, "private or reserved range"},
		{"IPv4-mapped IPv6 loopback", "http://[::ffff:127.0.0.1]:" + port, "private or reserved range"},
		{"a name resolving to loopback", "http://localhost:" + port, "private or reserved range"},
		{"cloud metadata address", "http://169.254.169.254/latest/meta-data/", "private or reserved range"},
		{"RFC 1918", "http://10.0.0.1:" + port, "private or reserved range"},
		{"CGNAT", "http://100.64.0.1:" + port, "private or reserved range"},
		{"unspecified address", "http://0.0.0.0:" + port, "private or reserved range"},
		{"redirect to a private address", redirector.URL, "endpoint answered 302"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: a.url, TimeoutSeconds: 5})
			resp, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
				ProjectId: projectID, EndpointId: ep.GetId(), EventType: "ssrf", Data: `{}`}))
			if err != nil {
				t.Fatal(err)
			}
			d := waitDelivery(t, c, projectID, resp.Msg.GetEvent().GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
			if !strings.Contains(d.GetLastError(), a.wantErr) {
				t.Fatalf("failed with %q, want %q", d.GetLastError(), a.wantErr)
			}
		})
	}
	if n := len(private.requests()); n != 0 {
		t.Fatalf("the private receiver got %d requests", n)
	}
}

// TestTenantIsolation uses project A's key on project B's things: reads and
// writes get NotFound, never PermissionDenied, and nothing changes; a
// revoked key stops working at once on every service.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{})
			recv := newReceiver(t)
			projectA, keyA := s.project(t, nil)
			projectB, keyB := s.project(t, nil)
			epB := s.endpoint(t, keyB, &registryv1.CreateEndpointRequest{ProjectId: projectB, Url: recv.URL})
			b := s.clients(keyB)
			sent, err := b.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectB, EndpointId: epB.GetId(), EventType: "b", Data: `{}`}))
			if err != nil {
				t.Fatal(err)
			}
			d := waitDelivery(t, b, projectB, sent.Msg.GetEvent().GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)

			a := s.clients(keyA)
			ctx := context.Background()
			for name, call := range map[string]func() error{
				"read B's project": func() error {
					_, err := a.registry.GetProject(ctx, connect.NewRequest(&registryv1.GetProjectRequest{ProjectId: projectB}))
					return err
				},
				"read B's endpoint": func() error {
					_, err := a.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectB, EndpointId: epB.GetId()}))
					return err
				},
				"B's endpoint under A": func() error {
					_, err := a.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectA, EndpointId: epB.GetId()}))
					return err
				},
				"pause B's endpoint": func() error {
					_, err := a.registry.PauseEndpoint(ctx, connect.NewRequest(&registryv1.PauseEndpointRequest{ProjectId: projectB, EndpointId: epB.GetId()}))
					return err
				},
				"rotate B's secret": func() error {
					_, err := a.registry.RotateEndpointSecret(ctx, connect.NewRequest(&registryv1.RotateEndpointSecretRequest{ProjectId: projectB, EndpointId: epB.GetId()}))
					return err
				},
				"send to B's endpoint": func() error {
					_, err := a.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectA, EndpointId: epB.GetId(), EventType: "x", Data: `{}`}))
					return err
				},
				"send into B": func() error {
					_, err := a.ingest.CreateBroadcastEvent(ctx, connect.NewRequest(&ingestv1.CreateBroadcastEventRequest{ProjectId: projectB, EventType: "x", Data: `{}`}))
					return err
				},
				"read B's event": func() error {
					_, err := a.ingest.GetEvent(ctx, connect.NewRequest(&ingestv1.GetEventRequest{ProjectId: projectB, EventId: sent.Msg.GetEvent().GetId()}))
					return err
				},
				"list B's events": func() error {
					_, err := a.ingest.ListEvents(ctx, connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: projectB}))
					return err
				},
				"read B's delivery": func() error {
					_, err := a.status.GetDelivery(ctx, connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: projectB, DeliveryId: d.GetId()}))
					return err
				},
				"B's delivery under A": func() error {
					_, err := a.status.GetDelivery(ctx, connect.NewRequest(&statusv1.GetDeliveryRequest{ProjectId: projectA, DeliveryId: d.GetId()}))
					return err
				},
				"list B's deliveries": func() error {
					_, err := a.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectB}))
					return err
				},
				"read B's attempts": func() error {
					_, err := a.status.ListAttempts(ctx, connect.NewRequest(&statusv1.ListAttemptsRequest{ProjectId: projectB, DeliveryId: d.GetId()}))
					return err
				},
				"create a key for B": func() error {
					_, err := a.registry.CreateAPIKey(ctx, connect.NewRequest(&registryv1.CreateAPIKeyRequest{ProjectId: projectB, Name: "x"}))
					return err
				},
			} {
				if err := call(); connect.CodeOf(err) != connect.CodeNotFound {
					t.Errorf("%s with A's key: %v, want NotFound", name, err)
				}
			}
			// Project management needs the admin key.
			if _, err := a.registry.ListProjects(ctx, connect.NewRequest(&registryv1.ListProjectsRequest{})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("ListProjects with a project key: %v", err)
			}
			if got, err := b.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectB, EndpointId: epB.GetId()})); err != nil || got.Msg.GetEndpoint().GetStatus() != registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE {
				t.Fatalf("B's endpoint changed: %v %v", got, err)
			}

			// Revoke A's key: every service refuses it at once.
			keys, err := s.clients(adminKey).registry.ListAPIKeys(ctx, connect.NewRequest(&registryv1.ListAPIKeysRequest{ProjectId: projectA}))
			if err != nil || len(keys.Msg.GetApiKeys()) != 1 {
				t.Fatalf("keys of A: %v %v", keys, err)
			}
			if !strings.HasPrefix(keyA, keys.Msg.GetApiKeys()[0].GetPrefix()) {
				t.Fatalf("key %q does not start with its visible prefix %q", keyA, keys.Msg.GetApiKeys()[0].GetPrefix())
			}
			if _, err := s.clients(adminKey).registry.RevokeAPIKey(ctx, connect.NewRequest(&registryv1.RevokeAPIKeyRequest{ProjectId: projectA, KeyId: keys.Msg.GetApiKeys()[0].GetId()})); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // the change notification crosses the bus
			if _, err := a.ingest.ListEvents(ctx, connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: projectA})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("revoked key on ingest: %v", err)
			}
			if _, err := a.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: projectA})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("revoked key on status: %v", err)
			}
			if _, err := a.registry.GetProject(ctx, connect.NewRequest(&registryv1.GetProjectRequest{ProjectId: projectA})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("revoked key on registry: %v", err)
			}
		})
	}
}

// TestHostileResponsesAndRequests: a gzip bomb answered by an endpoint is
// kept to the cap after decompression and does not stall anything; header
// injection through an endpoint's or an event's custom headers is refused.
func TestHostileResponsesAndRequests(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zeros := make([]byte, 1<<20)
	for range 64 { // 64 MiB of NUL bytes, about 64 KiB compressed
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	bomber := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(bomb.Bytes())
	}))
	t.Cleanup(bomber.Close)
	projectID, key := s.project(t, singleAttempt)
	c := s.clients(key)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: bomber.URL})
	resp, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "bomb", Data: `{}`}))
	if err != nil {
		t.Fatal(err)
	}
	d := waitDelivery(t, c, projectID, resp.Msg.GetEvent().GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
	attempts, err := c.status.ListAttempts(context.Background(), connect.NewRequest(&statusv1.ListAttemptsRequest{ProjectId: projectID, DeliveryId: d.GetId()}))
	if err != nil || len(attempts.Msg.GetAttempts()) != 1 {
		t.Fatalf("attempts: %v %v", attempts, err)
	}
	if n := len(attempts.Msg.GetAttempts()[0].GetResponseBody()); n == 0 || n > 3*64<<10 {
		t.Fatalf("kept %d bytes of the bomb's body, want at most the 64 KiB cap (as UTF-8)", n)
	}

	for name, call := range map[string]func() error{
		"endpoint header with CRLF": func() error {
			_, err := c.registry.CreateEndpoint(context.Background(), connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: bomber.URL,
				CustomHeaders: map[string]string{"X-Ok": "a\r\nX-Injected: b"}}))
			return err
		},
		"endpoint overriding Host": func() error {
			_, err := c.registry.CreateEndpoint(context.Background(), connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: bomber.URL,
				CustomHeaders: map[string]string{"Host": "internal.example"}}))
			return err
		},
		"event header with LF": func() error {
			_, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "x", Data: `{}`,
				CustomHeaders: map[string]string{"X-Ok": "a\nb"}}))
			return err
		},
		"event forging a signature": func() error {
			_, err := c.ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "x", Data: `{}`,
				CustomHeaders: map[string]string{"Webhook-Signature": "v1,forged"}}))
			return err
		},
	} {
		if err := call(); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "custom_headers") {
			t.Errorf("%s: %v, want InvalidArgument naming custom_headers", name, err)
		}
	}
}

// TestSecretsAtRestAndRotation checks that an endpoint's secret is stored
// encrypted, shown only when created or rotated, and that during a rotation
// both secrets sign (each verifies with the Standard Webhooks library),
// after it only the new one.
func TestSecretsAtRestAndRotation(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	c := s.clients(key)
	ctx := context.Background()
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	oldSecret := ep.GetSecret()

	// At rest: the secret appears nowhere in the registry's database.
	cur, err := testenv.Client(t).Database(s.cfg.DatabasePrefix+"_registry").Collection("endpoints").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	if err := cur.All(ctx, &docs); err != nil || len(docs) != 1 {
		t.Fatalf("endpoint documents: %d %v", len(docs), err)
	}
	if bytes.Contains(docs[0], []byte(strings.TrimPrefix(oldSecret, "whsec_"))) {
		t.Fatal("the endpoint secret is stored in clear")
	}
	got, err := c.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()}))
	if err != nil || got.Msg.GetEndpoint().GetSecret() != "" {
		t.Fatalf("GetEndpoint shows the secret: %v %v", got, err)
	}

	send := func() received {
		t.Helper()
		n := len(recv.requests())
		if _, err := c.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "rot", Data: `{"r":1}`})); err != nil {
			t.Fatal(err)
		}
		return recv.waitFor(t, "the event", func(r []received) bool { return len(r) > n })[n]
	}
	verifies := func(secret string, r received) bool {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return wh.Verify(r.body, r.header) == nil
	}
	const overlap = 3 * time.Second
	rot, err := c.registry.RotateEndpointSecret(ctx, connect.NewRequest(&registryv1.RotateEndpointSecretRequest{ProjectId: projectID, EndpointId: ep.GetId(), PreviousSecretTtlSeconds: uint32(overlap / time.Second)}))
	if err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()
	newSecret := rot.Msg.GetEndpoint().GetSecret()
	if newSecret == "" || newSecret == oldSecret {
		t.Fatalf("rotation returned secret %q", newSecret)
	}
	during := send()
	if time.Since(rotated) >= overlap {
		t.Skip("the machine is too slow to deliver within the overlap")
	}
	if !verifies(oldSecret, during) || !verifies(newSecret, during) {
		t.Fatalf("during the overlap: old verifies %v, new verifies %v (signature %q)", verifies(oldSecret, during), verifies(newSecret, during), during.header.Get("Webhook-Signature"))
	}
	if n := len(strings.Fields(during.header.Get("Webhook-Signature"))); n != 2 {
		t.Fatalf("%d signatures during the overlap, want 2", n)
	}
	time.Sleep(time.Until(rotated.Add(overlap + 100*time.Millisecond)))
	// The registry's answers are cached elsewhere: the rotation's own
	// notification dropped them, and the expiry is applied when signing.
	after := send()
	if verifies(oldSecret, after) || !verifies(newSecret, after) {
		t.Fatalf("after the overlap: old verifies %v, new verifies %v", verifies(oldSecret, after), verifies(newSecret, after))
	}
}

// TestTLS serves the API over TLS from a certificate and key in files, and
// delivers an event through it: the services' calls to each other go over
// TLS too.
func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := writeTestCert(t)
	s := startStack(t, modeAll, stackOptions{configure: func(c *app.Config) {
		c.TLSCertFile, c.TLSKeyFile = certFile, keyFile
	}})
	if !strings.HasPrefix(s.registryURL, "https://") {
		t.Fatalf("URL %s", s.registryURL)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(certFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("read test certificate: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(s.registryURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("healthz over TLS: %d %v", resp.StatusCode, resp.TLS)
	}
	if plain, err := http.Get("http://" + strings.TrimPrefix(s.registryURL, "https://") + "/healthz"); err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Fatal("the TLS port served plain HTTP")
		}
	}

	recv := newReceiver(t)
	admin := registryv1connect.NewRegistryServiceClient(client, s.registryURL, connect.WithInterceptors(auth.BearerInterceptor(adminKey)))
	p, err := admin.CreateProject(context.Background(), connect.NewRequest(&registryv1.CreateProjectRequest{Name: "tls"}))
	if err != nil {
		t.Fatal(err)
	}
	projectID, key := p.Msg.GetProject().GetId(), p.Msg.GetKey()
	reg := registryv1connect.NewRegistryServiceClient(client, s.registryURL, connect.WithInterceptors(auth.BearerInterceptor(key)))
	ep, err := reg.CreateEndpoint(context.Background(), connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	ing := ingestv1connect.NewIngestServiceClient(client, s.ingestURL, connect.WithInterceptors(auth.BearerInterceptor(key)))
	if _, err := ing.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.Msg.GetEndpoint().GetId(), EventType: "tls", Data: `{}`})); err != nil {
		t.Fatal(err)
	}
	recv.waitFor(t, "the event", func(r []received) bool { return len(r) == 1 })
}

// TestRequireHTTPS refuses plain http endpoint URLs when the deployment
// asks for https only, and URLs with credentials always.
func TestRequireHTTPS(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{configure: func(c *app.Config) { c.Registry.RequireHTTPS = true }})
	projectID, key := s.project(t, nil)
	c := s.clients(key)
	for url, want := range map[string]string{
		"http://example.com/hooks":        "must be an https URL",
		"https://user:pass@example.com/h": "must not contain user information",
		"ftp://example.com/h":             "absolute http or https URL",
	} {
		_, err := c.registry.CreateEndpoint(context.Background(), connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: url}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "pass@") {
			t.Errorf("%s: %v, want InvalidArgument saying %q", url, err, want)
		}
	}
	if _, err := c.registry.CreateEndpoint(context.Background(), connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: "https://example.com/hooks"})); err != nil {
		t.Fatalf("https endpoint refused: %v", err)
	}
}

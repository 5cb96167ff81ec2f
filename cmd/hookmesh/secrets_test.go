package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookmesh/hookmesh/app"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/signature"
	"github.com/hookmesh/hookmesh/internal/testenv"
	"github.com/hookmesh/hookmesh/services/registry"
)

const (
	testAdminKey = "test-admin-key-0123456789"
	keyA         = "5rnBbP1fKGgpYuN1AzRkW5dYb0Ynbj2AQAq7eUMR5Vs="
	keyB         = "0000000000000000000000000000000000000000000000000000000000000001"
	keyC         = "0000000000000000000000000000000000000000000000000000000000000002"
)

// TestSecretKeyCommands loses the secret key of a registry with an
// endpoint: the registry refuses to start with another key; `hookmesh
// reseal` moves the secrets to a new key, keeping them; `hookmesh
// reset-secrets` gives every endpoint a new secret under a third key and
// writes it out. After each, the registry starts and signs with the
// secret it says.
func TestSecretKeyCommands(t *testing.T) {
	t.Parallel()
	prefix := testenv.DatabaseName(t)
	cfg := app.Defaults()
	cfg.Targets = []string{app.TargetRegistry}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MongoURI = testenv.MongoURI(t)
	cfg.AMQPURL = testenv.AMQPURL(t)
	cfg.DatabasePrefix, cfg.AMQPPrefix = prefix, prefix
	cfg.AdminKey = testAdminKey
	cfg.ShutdownTimeout = 5 * time.Second
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = testenv.Client(t).Database(prefix + "_registry").Drop(ctx)
		topo := mesh.NewTopology(prefix, 0)
		if c, err := bus.Dial(ctx, topo.BusConfig(cfg.AMQPURL, ""), sdktrace.NewTracerProvider(), propagation.TraceContext{}, slog.New(slog.DiscardHandler)); err == nil {
			if ch, err := c.Channel(ctx); err == nil {
				_ = topo.Delete(ch)
				_ = ch.Close()
			}
			_ = c.Close()
		}
	})
	ctx := context.Background()

	// start runs a registry with key and returns its URL and a stop func.
	start := func(key string) (string, func(), error) {
		c := cfg
		c.Registry.SecretKey = key
		a, err := app.New(ctx, c, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return "", nil, err
		}
		rctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { _ = a.Run(rctx) })
		return a.URL(), func() { cancel(); wg.Wait() }, nil
	}
	admin := connect.WithInterceptors(auth.BearerInterceptor(testAdminKey))
	// secretOf asks the registry for the endpoint's signing secrets.
	secretOf := func(url, projectID, endpointID string) []string {
		t.Helper()
		internal := registryv1connect.NewRegistryInternalServiceClient(http.DefaultClient, url, admin)
		resp, err := internal.GetTarget(ctx, connect.NewRequest(&registryv1.GetTargetRequest{ProjectId: projectID, EndpointId: endpointID}))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range resp.Msg.GetTarget().GetSecrets() {
			out = append(out, string(s.GetValue()))
		}
		return out
	}
	env := func(key string) func(string) string {
		return func(name string) string {
			return map[string]string{"HOOKMESH_MONGODB_URI": cfg.MongoURI, "HOOKMESH_DATABASE_PREFIX": prefix, "HOOKMESH_SECRET_KEY": key}[name]
		}
	}

	url, stop, err := start(keyA)
	if err != nil {
		t.Fatal(err)
	}
	reg := registryv1connect.NewRegistryServiceClient(http.DefaultClient, url, admin)
	p, err := reg.CreateProject(ctx, connect.NewRequest(&registryv1.CreateProjectRequest{Name: "keys"}))
	if err != nil {
		t.Fatal(err)
	}
	projectID := p.Msg.GetProject().GetId()
	projectKey := connect.WithInterceptors(auth.BearerInterceptor(p.Msg.GetKey()))
	e, err := registryv1connect.NewRegistryServiceClient(http.DefaultClient, url, projectKey).CreateEndpoint(ctx,
		connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: "http://127.0.0.1:9/hook"}))
	if err != nil {
		t.Fatal(err)
	}
	endpointID, secret := e.Msg.GetEndpoint().GetId(), e.Msg.GetEndpoint().GetSecret()
	// An Ed25519 endpoint: its private key is sealed like a secret.
	ed, err := registryv1connect.NewRegistryServiceClient(http.DefaultClient, url, projectKey).CreateEndpoint(ctx,
		connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: "http://127.0.0.1:9/ed",
			SignatureAlgorithm: registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_ED25519}))
	if err != nil {
		t.Fatal(err)
	}
	edID, edKey := ed.Msg.GetEndpoint().GetId(), ed.Msg.GetEndpoint().GetSecret()
	// Meta events: their secret is sealed like an endpoint's.
	me, err := registryv1connect.NewRegistryServiceClient(http.DefaultClient, url, projectKey).SetMetaEvents(ctx,
		connect.NewRequest(&registryv1.SetMetaEventsRequest{ProjectId: projectID, Url: "http://127.0.0.1:9/meta", Enabled: true}))
	if err != nil {
		t.Fatal(err)
	}
	metaID, metaSecret := me.Msg.GetMetaEvents().GetEndpointId(), me.Msg.GetMetaEvents().GetSecret()
	stop()

	// Another key: refused, saying what to do.
	if _, _, err := start(keyB); !errors.Is(err, registry.ErrSecretKeyMismatch) || !strings.Contains(err.Error(), "hookmesh reset-secrets") {
		t.Fatalf("start with another key: %v, want the key mismatch and what to do", err)
	}

	// reseal: the same secret, under key B.
	var out, errOut bytes.Buffer
	if err := reseal(ctx, []string{"-old-secret-key", keyA}, env(keyB), &out, &errOut); err != nil {
		t.Fatalf("reseal: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(out.String(), "re-sealed the secrets of 3 endpoints") {
		t.Fatalf("reseal said %q", out.String())
	}
	url, stop, err = start(keyB)
	if err != nil {
		t.Fatalf("start after reseal: %v", err)
	}
	if got := secretOf(url, projectID, endpointID); len(got) != 1 || got[0] != secret {
		t.Fatalf("after reseal the endpoint signs with %q, want its secret %q", got, secret)
	}
	if got := secretOf(url, projectID, edID); len(got) != 1 || got[0] != edKey {
		t.Fatalf("after reseal the Ed25519 endpoint signs with %q, want its private key %q", got, edKey)
	}
	if got := secretOf(url, projectID, metaID); len(got) != 1 || got[0] != metaSecret {
		t.Fatalf("after reseal the meta events are signed with %q, want their secret %q", got, metaSecret)
	}
	stop()
	// reseal without the old key says which setting is missing.
	if err := reseal(ctx, nil, env(keyB), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "HOOKMESH_OLD_SECRET_KEY") {
		t.Fatalf("reseal without the old key: %v", err)
	}

	// reset-secrets: key B is lost; a new secret under key C.
	out.Reset()
	errOut.Reset()
	if err := resetSecrets(ctx, nil, env(keyC), &out, &errOut); err != nil {
		t.Fatalf("reset-secrets: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "gave 3 endpoints") || !strings.Contains(errOut.String(), "owner") {
		t.Fatalf("reset-secrets said %q", errOut.String())
	}
	var ns, edNew, metaNew registry.NewSecret
	dec := json.NewDecoder(&out)
	for range 3 {
		var x registry.NewSecret
		if err := dec.Decode(&x); err != nil {
			t.Fatalf("reset-secrets wrote %q (%v)", out.String(), err)
		}
		switch x.EndpointID {
		case edID:
			edNew = x
		case metaID:
			metaNew = x
		default:
			ns = x
		}
	}
	if !strings.HasPrefix(metaNew.Secret, "whsec_") || metaNew.Secret == metaSecret {
		t.Fatalf("reset-secrets wrote %+v for the meta events", metaNew)
	}
	if ns.EndpointID != endpointID || ns.ProjectID != projectID || !strings.HasPrefix(ns.Secret, "whsec_") || ns.Secret == secret || ns.PublicKey != "" {
		t.Fatalf("reset-secrets wrote %+v for the HMAC endpoint", ns)
	}
	// The Ed25519 endpoint gets a new key pair, its public key written out.
	if pub, err := signature.PublicKeyOf(edNew.Secret); err != nil || edNew.Secret == edKey || pub != edNew.PublicKey {
		t.Fatalf("reset-secrets wrote %+v for the Ed25519 endpoint (%v)", edNew, err)
	}
	url, stop, err = start(keyC)
	if err != nil {
		t.Fatalf("start after reset-secrets: %v", err)
	}
	defer stop()
	if got := secretOf(url, projectID, endpointID); len(got) != 1 || got[0] != ns.Secret {
		t.Fatalf("after reset-secrets the endpoint signs with %q, want the new secret %q", got, ns.Secret)
	}
	if got := secretOf(url, projectID, edID); len(got) != 1 || got[0] != edNew.Secret {
		t.Fatalf("after reset-secrets the Ed25519 endpoint signs with %q, want the new key %q", got, edNew.Secret)
	}
	if got := secretOf(url, projectID, metaID); len(got) != 1 || got[0] != metaNew.Secret {
		t.Fatalf("after reset-secrets the meta events are signed with %q, want the new secret %q", got, metaNew.Secret)
	}
	g, err := registryv1connect.NewRegistryServiceClient(http.DefaultClient, url, admin).GetEndpoint(ctx,
		connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectID, EndpointId: edID}))
	if err != nil || g.Msg.GetEndpoint().GetPublicKey() != edNew.PublicKey {
		t.Fatalf("after reset-secrets the Ed25519 endpoint shows public key %v (%v), want %q", g, err, edNew.PublicKey)
	}
}

package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/testenv"
	"github.com/hookmesh/hookmesh/services/registry"
	"github.com/hookmesh/hookmesh/services/registry/client"
)

const adminKey = "client-test-admin-key"

// callCounter counts the calls a server handles, by procedure.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) interceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			c.mu.Lock()
			c.calls[req.Spec().Procedure]++
			c.mu.Unlock()
			return next(ctx, req)
		}
	})
}

func (c *callCounter) count(procedure string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[procedure]
}

type fixture struct {
	url    string
	calls  *callCounter
	public registryv1connect.RegistryServiceClient // with the admin key
	client *client.Client
}

// newFixture serves a registry on a fresh database and returns a caching
// client of it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := testenv.Database(t)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := registry.New(registry.Config{AdminKey: adminKey, Secrets: testenv.SecretBox(t)}, db, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	calls := &callCounter{calls: make(map[string]int)}
	mux := http.NewServeMux()
	svc.Register(mux, connect.WithInterceptors(
		calls.interceptor(),
		apierr.NewInterceptor(logger),
		auth.NewKeys(adminKey, svc).Interceptor(),
	))
	srv := testenv.Server(t, mux)
	bearer := connect.WithInterceptors(auth.BearerInterceptor(adminKey))
	return &fixture{
		url:    srv.URL,
		calls:  calls,
		public: registryv1connect.NewRegistryServiceClient(srv.Client(), srv.URL, bearer),
		client: client.New(registryv1connect.NewRegistryInternalServiceClient(srv.Client(), srv.URL, bearer), time.Minute),
	}
}

func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func (f *fixture) project(t *testing.T) (*registryv1.Project, string) {
	t.Helper()
	resp := must(f.public.CreateProject(t.Context(), connect.NewRequest(&registryv1.CreateProjectRequest{Name: "p"})))(t)
	return resp.Msg.Project, resp.Msg.Key
}

func (f *fixture) endpoint(t *testing.T, projectID, owner string) string {
	t.Helper()
	resp := must(f.public.CreateEndpoint(t.Context(), connect.NewRequest(&registryv1.CreateEndpointRequest{
		ProjectId: projectID, Url: "https://example.com/hook", OwnerId: owner,
	})))(t)
	return resp.Msg.Endpoint.Id
}

func TestAuthenticateKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	p, key := f.project(t)
	const proc = registryv1connect.RegistryInternalServiceAuthenticateKeyProcedure

	for range 3 {
		projectID, keyID, err := f.client.AuthenticateKey(ctx, key)
		if err != nil || projectID != p.Id || keyID == "" {
			t.Fatalf("AuthenticateKey = %q, %q, %v", projectID, keyID, err)
		}
	}
	if n := f.calls.count(proc); n != 1 {
		t.Fatalf("%d calls for a cached key, want 1", n)
	}

	// An unknown key is ErrUnknownKey, kept for a second only.
	for range 3 {
		if _, _, err := f.client.AuthenticateKey(ctx, "hm_abcdefgh_unknown"); !errors.Is(err, auth.ErrUnknownKey) {
			t.Fatalf("unknown key: %v, want auth.ErrUnknownKey", err)
		}
	}
	if n := f.calls.count(proc); n != 2 {
		t.Fatalf("%d calls after repeating an unknown key, want 2", n)
	}
	time.Sleep(client.NegativeTTL + 100*time.Millisecond)
	if _, _, err := f.client.AuthenticateKey(ctx, "hm_abcdefgh_unknown"); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if n := f.calls.count(proc); n != 3 {
		t.Fatalf("%d calls once the negative answer expired, want 3", n)
	}

	// A revoked key stays cached until the project is invalidated.
	keys := must(f.public.ListAPIKeys(ctx, connect.NewRequest(&registryv1.ListAPIKeysRequest{ProjectId: p.Id})))(t)
	must(f.public.RevokeAPIKey(ctx, connect.NewRequest(&registryv1.RevokeAPIKeyRequest{ProjectId: p.Id, KeyId: keys.Msg.ApiKeys[0].Id})))(t)
	if _, _, err := f.client.AuthenticateKey(ctx, key); err != nil {
		t.Fatalf("cached key: %v", err)
	}
	f.client.Invalidate(p.Id)
	if _, _, err := f.client.AuthenticateKey(ctx, key); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("revoked key after Invalidate: %v, want auth.ErrUnknownKey", err)
	}
}

func TestAuthenticateKeyErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, key := f.project(t)
	// A client without the admin key is refused (Unauthenticated): reported
	// as an unknown key.
	noAdmin := client.New(registryv1connect.NewRegistryInternalServiceClient(http.DefaultClient, f.url), time.Minute)
	if _, _, err := noAdmin.AuthenticateKey(t.Context(), key); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("refused call gave %v, want auth.ErrUnknownKey", err)
	}
	// An unreachable registry is an error of its own, so that callers
	// answer Unavailable rather than Unauthenticated.
	down := client.New(registryv1connect.NewRegistryInternalServiceClient(http.DefaultClient, "http://127.0.0.1:1"), time.Minute)
	if _, _, err := down.AuthenticateKey(t.Context(), key); err == nil || errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("unreachable registry gave %v, want a plain error", err)
	}
}

func TestGetTarget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	p, _ := f.project(t)
	ep := f.endpoint(t, p.Id, "")
	const proc = registryv1connect.RegistryInternalServiceGetTargetProcedure

	// Concurrent misses make one call.
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 20 {
		wg.Go(func() {
			tg, err := f.client.GetTarget(ctx, p.Id, ep)
			if err != nil || tg.EndpointId != ep {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d GetTarget calls failed", failures.Load())
	}
	must(f.client.GetTarget(ctx, p.Id, ep))(t)
	if n := f.calls.count(proc); n != 1 {
		t.Fatalf("%d calls for one target, want 1", n)
	}

	// A missing endpoint is the registry's NotFound, kept briefly.
	for range 2 {
		_, err := f.client.GetTarget(ctx, p.Id, "ep_missing")
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("missing endpoint: %v, want NotFound", err)
		}
	}
	if n := f.calls.count(proc); n != 2 {
		t.Fatalf("%d calls after a repeated miss, want 2", n)
	}

	// A change is seen after Invalidate.
	must(f.public.PauseEndpoint(ctx, connect.NewRequest(&registryv1.PauseEndpointRequest{ProjectId: p.Id, EndpointId: ep})))(t)
	if tg := must(f.client.GetTarget(ctx, p.Id, ep))(t); tg.Status != registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE {
		t.Fatalf("cached status = %v, want the cached ACTIVE", tg.Status)
	}
	f.client.Invalidate(p.Id)
	if tg := must(f.client.GetTarget(ctx, p.Id, ep))(t); tg.Status != registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED {
		t.Fatalf("status after Invalidate = %v, want PAUSED", tg.Status)
	}
}

func TestResolveTargets(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	p, _ := f.project(t)
	other, _ := f.project(t)
	a := f.endpoint(t, p.Id, "alice")
	f.endpoint(t, other.Id, "alice")
	const proc = registryv1connect.RegistryInternalServiceResolveTargetsProcedure
	req := func(eventType string) *registryv1.ResolveTargetsRequest {
		return &registryv1.ResolveTargetsRequest{ProjectId: p.Id, OwnerId: "alice", EventType: eventType}
	}
	ids := func(targets []*registryv1.Target) []string {
		var out []string
		for _, tg := range targets {
			out = append(out, tg.EndpointId)
		}
		return out
	}

	if got := ids(must(f.client.ResolveTargets(ctx, req("a.b")))(t)); len(got) != 1 || got[0] != a {
		t.Fatalf("targets = %v, want [%s]", got, a)
	}
	must(f.client.ResolveTargets(ctx, req("a.b")))(t)
	if n := f.calls.count(proc); n != 1 {
		t.Fatalf("%d calls for a repeated request, want 1", n)
	}
	// Every part of the request is part of the cache key.
	must(f.client.ResolveTargets(ctx, req("a.c")))(t)
	must(f.client.ResolveTargets(ctx, &registryv1.ResolveTargetsRequest{ProjectId: p.Id, Broadcast: true, EventType: "a.b"}))(t)
	must(f.client.ResolveTargets(ctx, &registryv1.ResolveTargetsRequest{ProjectId: other.Id, OwnerId: "alice", EventType: "a.b"}))(t)
	if n := f.calls.count(proc); n != 4 {
		t.Fatalf("%d calls for four different requests, want 4", n)
	}

	// A new endpoint shows only once the project is invalidated, and
	// invalidating one project keeps the other's answers.
	b := f.endpoint(t, p.Id, "alice")
	if got := ids(must(f.client.ResolveTargets(ctx, req("a.b")))(t)); len(got) != 1 {
		t.Fatalf("targets before Invalidate = %v, want the cached one", got)
	}
	f.client.Invalidate(p.Id)
	if got := ids(must(f.client.ResolveTargets(ctx, req("a.b")))(t)); len(got) != 2 || got[1] != b {
		t.Fatalf("targets after Invalidate = %v, want [%s %s]", got, a, b)
	}
	must(f.client.ResolveTargets(ctx, &registryv1.ResolveTargetsRequest{ProjectId: other.Id, OwnerId: "alice", EventType: "a.b"}))(t)
	if n := f.calls.count(proc); n != 5 {
		t.Fatalf("%d calls, want 5 (one after Invalidate)", n)
	}

	// Errors other than NotFound are not kept.
	bad := &registryv1.ResolveTargetsRequest{ProjectId: p.Id, EventType: "a.b"}
	for range 2 {
		if _, err := f.client.ResolveTargets(ctx, bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("request without a shape: %v", err)
		}
	}
	if n := f.calls.count(proc); n != 7 {
		t.Fatalf("%d calls, want 7 (errors are not cached)", n)
	}
}

// TestResolveTargetsAnswersGetTarget checks that the targets of a
// resolution answer GetTarget without a call, until the project changes.
func TestResolveTargetsAnswersGetTarget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	p, _ := f.project(t)
	var eps []string
	for range 5 {
		eps = append(eps, f.endpoint(t, p.Id, "bob"))
	}
	must(f.client.ResolveTargets(ctx, &registryv1.ResolveTargetsRequest{ProjectId: p.Id, Broadcast: true, EventType: "x"}))(t)
	for _, ep := range eps {
		if got := must(f.client.GetTarget(ctx, p.Id, ep))(t); got.GetEndpointId() != ep {
			t.Fatalf("GetTarget(%s) = %v", ep, got)
		}
	}
	const proc = registryv1connect.RegistryInternalServiceGetTargetProcedure
	if n := f.calls.count(proc); n != 0 {
		t.Fatalf("%d GetTarget calls after a resolution, want 0", n)
	}
	f.client.Invalidate(p.Id)
	must(f.client.GetTarget(ctx, p.Id, eps[0]))(t)
	if n := f.calls.count(proc); n != 1 {
		t.Fatalf("%d GetTarget calls after Invalidate, want 1", n)
	}
}

package registry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

const testAdminKey = "test-admin-key-0123456789"

// testEnv is a registry service on its own database, served over HTTP/1.1
// and h2c, with a client per protocol.
type testEnv struct {
	svc     *Service
	clients []*apiClient
}

// newTestEnv starts a registry service on a fresh database.
func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	db := testenv.Database(tb)
	logger := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := New(Config{AdminKey: testAdminKey, Secrets: testenv.SecretBox(tb)}, db, logger)
	if err != nil {
		tb.Fatal(err)
	}
	if err := svc.Init(tb.Context()); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	mux := http.NewServeMux()
	names := svc.Register(mux, connect.WithInterceptors(
		apierr.NewInterceptor(logger),
		auth.NewKeys(testAdminKey, svc).Interceptor(),
	))
	if len(names) != 2 {
		tb.Fatalf("Register returned %v", names)
	}
	srv := testenv.Server(tb, mux)

	conn, err := grpc.NewClient(strings.TrimPrefix(srv.URL, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("grpc.NewClient: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	h2c := testenv.H2CClient()
	return &testEnv{svc: svc, clients: []*apiClient{
		{
			name:            "connect",
			connect:         registryv1connect.NewRegistryServiceClient(srv.Client(), srv.URL),
			connectInternal: registryv1connect.NewRegistryInternalServiceClient(srv.Client(), srv.URL),
		},
		{
			name:            "grpcweb",
			connect:         registryv1connect.NewRegistryServiceClient(h2c, srv.URL, connect.WithGRPCWeb()),
			connectInternal: registryv1connect.NewRegistryInternalServiceClient(h2c, srv.URL, connect.WithGRPCWeb()),
		},
		{
			name:         "grpc",
			grpc:         registryv1.NewRegistryServiceClient(conn),
			grpcInternal: registryv1.NewRegistryInternalServiceClient(conn),
		},
	}}
}

// eachProtocol runs f once per client, in parallel.
func (e *testEnv) eachProtocol(t *testing.T, f func(t *testing.T, c *apiClient)) {
	t.Helper()
	for _, c := range e.clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f(t, c)
		})
	}
}

// apiClient calls both registry services through one protocol: Connect,
// gRPC-Web (both by connect-go) or gRPC (by grpc-go). Its methods take the
// bearer key to send ("" for none) and return errors as *connect.Error.
type apiClient struct {
	name            string
	connect         registryv1connect.RegistryServiceClient
	connectInternal registryv1connect.RegistryInternalServiceClient
	grpc            registryv1.RegistryServiceClient
	grpcInternal    registryv1.RegistryInternalServiceClient
}

func invoke[CC, GC, Req, Res any](
	ctx context.Context, useGRPC bool, cc CC, gc GC, key string, req *Req,
	viaConnect func(CC, context.Context, *connect.Request[Req]) (*connect.Response[Res], error),
	viaGRPC func(GC, context.Context, *Req, ...grpc.CallOption) (*Res, error),
) (*Res, error) {
	if useGRPC {
		if key != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
		}
		res, err := viaGRPC(gc, ctx, req)
		if err != nil {
			if st, ok := status.FromError(err); ok {
				return nil, connect.NewError(connect.Code(st.Code()), errors.New(st.Message()))
			}
			return nil, err
		}
		return res, nil
	}
	r := connect.NewRequest(req)
	if key != "" {
		r.Header().Set("Authorization", "Bearer "+key)
	}
	res, err := viaConnect(cc, ctx, r)
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (c *apiClient) CreateProject(ctx context.Context, key string, req *registryv1.CreateProjectRequest) (*registryv1.CreateProjectResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.CreateProject, registryv1.RegistryServiceClient.CreateProject)
}

func (c *apiClient) GetProject(ctx context.Context, key string, req *registryv1.GetProjectRequest) (*registryv1.GetProjectResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.GetProject, registryv1.RegistryServiceClient.GetProject)
}

func (c *apiClient) ListProjects(ctx context.Context, key string, req *registryv1.ListProjectsRequest) (*registryv1.ListProjectsResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.ListProjects, registryv1.RegistryServiceClient.ListProjects)
}

func (c *apiClient) UpdateProject(ctx context.Context, key string, req *registryv1.UpdateProjectRequest) (*registryv1.UpdateProjectResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.UpdateProject, registryv1.RegistryServiceClient.UpdateProject)
}

func (c *apiClient) DeleteProject(ctx context.Context, key string, req *registryv1.DeleteProjectRequest) (*registryv1.DeleteProjectResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.DeleteProject, registryv1.RegistryServiceClient.DeleteProject)
}

func (c *apiClient) CreateAPIKey(ctx context.Context, key string, req *registryv1.CreateAPIKeyRequest) (*registryv1.CreateAPIKeyResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.CreateAPIKey, registryv1.RegistryServiceClient.CreateAPIKey)
}

func (c *apiClient) ListAPIKeys(ctx context.Context, key string, req *registryv1.ListAPIKeysRequest) (*registryv1.ListAPIKeysResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.ListAPIKeys, registryv1.RegistryServiceClient.ListAPIKeys)
}

func (c *apiClient) RevokeAPIKey(ctx context.Context, key string, req *registryv1.RevokeAPIKeyRequest) (*registryv1.RevokeAPIKeyResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.RevokeAPIKey, registryv1.RegistryServiceClient.RevokeAPIKey)
}

func (c *apiClient) CreateEndpoint(ctx context.Context, key string, req *registryv1.CreateEndpointRequest) (*registryv1.CreateEndpointResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.CreateEndpoint, registryv1.RegistryServiceClient.CreateEndpoint)
}

func (c *apiClient) GetEndpoint(ctx context.Context, key string, req *registryv1.GetEndpointRequest) (*registryv1.GetEndpointResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.GetEndpoint, registryv1.RegistryServiceClient.GetEndpoint)
}

func (c *apiClient) ListEndpoints(ctx context.Context, key string, req *registryv1.ListEndpointsRequest) (*registryv1.ListEndpointsResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.ListEndpoints, registryv1.RegistryServiceClient.ListEndpoints)
}

func (c *apiClient) UpdateEndpoint(ctx context.Context, key string, req *registryv1.UpdateEndpointRequest) (*registryv1.UpdateEndpointResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.UpdateEndpoint, registryv1.RegistryServiceClient.UpdateEndpoint)
}

func (c *apiClient) DeleteEndpoint(ctx context.Context, key string, req *registryv1.DeleteEndpointRequest) (*registryv1.DeleteEndpointResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.DeleteEndpoint, registryv1.RegistryServiceClient.DeleteEndpoint)
}

func (c *apiClient) PauseEndpoint(ctx context.Context, key string, req *registryv1.PauseEndpointRequest) (*registryv1.PauseEndpointResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.PauseEndpoint, registryv1.RegistryServiceClient.PauseEndpoint)
}

func (c *apiClient) ActivateEndpoint(ctx context.Context, key string, req *registryv1.ActivateEndpointRequest) (*registryv1.ActivateEndpointResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.ActivateEndpoint, registryv1.RegistryServiceClient.ActivateEndpoint)
}

func (c *apiClient) RotateEndpointSecret(ctx context.Context, key string, req *registryv1.RotateEndpointSecretRequest) (*registryv1.RotateEndpointSecretResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.RotateEndpointSecret, registryv1.RegistryServiceClient.RotateEndpointSecret)
}

func (c *apiClient) CreateSubscription(ctx context.Context, key string, req *registryv1.CreateSubscriptionRequest) (*registryv1.CreateSubscriptionResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.CreateSubscription, registryv1.RegistryServiceClient.CreateSubscription)
}

func (c *apiClient) GetSubscription(ctx context.Context, key string, req *registryv1.GetSubscriptionRequest) (*registryv1.GetSubscriptionResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.GetSubscription, registryv1.RegistryServiceClient.GetSubscription)
}

func (c *apiClient) ListSubscriptions(ctx context.Context, key string, req *registryv1.ListSubscriptionsRequest) (*registryv1.ListSubscriptionsResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.ListSubscriptions, registryv1.RegistryServiceClient.ListSubscriptions)
}

func (c *apiClient) UpdateSubscription(ctx context.Context, key string, req *registryv1.UpdateSubscriptionRequest) (*registryv1.UpdateSubscriptionResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.UpdateSubscription, registryv1.RegistryServiceClient.UpdateSubscription)
}

func (c *apiClient) DeleteSubscription(ctx context.Context, key string, req *registryv1.DeleteSubscriptionRequest) (*registryv1.DeleteSubscriptionResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.DeleteSubscription, registryv1.RegistryServiceClient.DeleteSubscription)
}

func (c *apiClient) AuthenticateKey(ctx context.Context, key string, req *registryv1.AuthenticateKeyRequest) (*registryv1.AuthenticateKeyResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connectInternal, c.grpcInternal, key, req, registryv1connect.RegistryInternalServiceClient.AuthenticateKey, registryv1.RegistryInternalServiceClient.AuthenticateKey)
}

func (c *apiClient) ResolveTargets(ctx context.Context, key string, req *registryv1.ResolveTargetsRequest) (*registryv1.ResolveTargetsResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connectInternal, c.grpcInternal, key, req, registryv1connect.RegistryInternalServiceClient.ResolveTargets, registryv1.RegistryInternalServiceClient.ResolveTargets)
}

func (c *apiClient) GetTarget(ctx context.Context, key string, req *registryv1.GetTargetRequest) (*registryv1.GetTargetResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connectInternal, c.grpcInternal, key, req, registryv1connect.RegistryInternalServiceClient.GetTarget, registryv1.RegistryInternalServiceClient.GetTarget)
}

func (c *apiClient) CreatePortalLink(ctx context.Context, key string, req *registryv1.CreatePortalLinkRequest) (*registryv1.CreatePortalLinkResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.CreatePortalLink, registryv1.RegistryServiceClient.CreatePortalLink)
}

func (c *apiClient) ListPortalLinks(ctx context.Context, key string, req *registryv1.ListPortalLinksRequest) (*registryv1.ListPortalLinksResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.ListPortalLinks, registryv1.RegistryServiceClient.ListPortalLinks)
}

func (c *apiClient) RevokePortalLink(ctx context.Context, key string, req *registryv1.RevokePortalLinkRequest) (*registryv1.RevokePortalLinkResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.RevokePortalLink, registryv1.RegistryServiceClient.RevokePortalLink)
}

func (c *apiClient) AuthenticatePortalToken(ctx context.Context, key string, req *registryv1.AuthenticatePortalTokenRequest) (*registryv1.AuthenticatePortalTokenResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connectInternal, c.grpcInternal, key, req, registryv1connect.RegistryInternalServiceClient.AuthenticatePortalToken, registryv1.RegistryInternalServiceClient.AuthenticatePortalToken)
}

func (c *apiClient) ListOwnerEndpoints(ctx context.Context, key string, req *registryv1.ListOwnerEndpointsRequest) (*registryv1.ListOwnerEndpointsResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connectInternal, c.grpcInternal, key, req, registryv1connect.RegistryInternalServiceClient.ListOwnerEndpoints, registryv1.RegistryInternalServiceClient.ListOwnerEndpoints)
}

func (c *apiClient) GetCurrentPortalLink(ctx context.Context, key string, req *registryv1.GetCurrentPortalLinkRequest) (*registryv1.GetCurrentPortalLinkResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.GetCurrentPortalLink, registryv1.RegistryServiceClient.GetCurrentPortalLink)
}

func (c *apiClient) CreateSource(ctx context.Context, key string, req *registryv1.CreateSourceRequest) (*registryv1.CreateSourceResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.CreateSource, registryv1.RegistryServiceClient.CreateSource)
}

func (c *apiClient) GetSource(ctx context.Context, key string, req *registryv1.GetSourceRequest) (*registryv1.GetSourceResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.GetSource, registryv1.RegistryServiceClient.GetSource)
}

func (c *apiClient) ListSources(ctx context.Context, key string, req *registryv1.ListSourcesRequest) (*registryv1.ListSourcesResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.ListSources, registryv1.RegistryServiceClient.ListSources)
}

func (c *apiClient) UpdateSource(ctx context.Context, key string, req *registryv1.UpdateSourceRequest) (*registryv1.UpdateSourceResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.UpdateSource, registryv1.RegistryServiceClient.UpdateSource)
}

func (c *apiClient) DeleteSource(ctx context.Context, key string, req *registryv1.DeleteSourceRequest) (*registryv1.DeleteSourceResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.DeleteSource, registryv1.RegistryServiceClient.DeleteSource)
}

func (c *apiClient) PauseSource(ctx context.Context, key string, req *registryv1.PauseSourceRequest) (*registryv1.PauseSourceResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.PauseSource, registryv1.RegistryServiceClient.PauseSource)
}

func (c *apiClient) ActivateSource(ctx context.Context, key string, req *registryv1.ActivateSourceRequest) (*registryv1.ActivateSourceResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connect, c.grpc, key, req, registryv1connect.RegistryServiceClient.ActivateSource, registryv1.RegistryServiceClient.ActivateSource)
}

func (c *apiClient) ListAllSources(ctx context.Context, key string, req *registryv1.ListAllSourcesRequest) (*registryv1.ListAllSourcesResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connectInternal, c.grpcInternal, key, req, registryv1connect.RegistryInternalServiceClient.ListAllSources, registryv1.RegistryInternalServiceClient.ListAllSources)
}

func (c *apiClient) AddSourceCounts(ctx context.Context, key string, req *registryv1.AddSourceCountsRequest) (*registryv1.AddSourceCountsResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connectInternal, c.grpcInternal, key, req, registryv1connect.RegistryInternalServiceClient.AddSourceCounts, registryv1.RegistryInternalServiceClient.AddSourceCounts)
}

func (c *apiClient) ListRetentions(ctx context.Context, key string, req *registryv1.ListRetentionsRequest) (*registryv1.ListRetentionsResponse, error) {
	return invoke(ctx, c.grpc != nil, c.connectInternal, c.grpcInternal, key, req, registryv1connect.RegistryInternalServiceClient.ListRetentions, registryv1.RegistryInternalServiceClient.ListRetentions)
}

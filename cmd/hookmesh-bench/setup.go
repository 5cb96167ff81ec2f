package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// benchOwner is the owner_id of every endpoint, so that a fan-out event
// reaches all of them.
const benchOwner = "bench-owner"

// project is what the benchmark created to send to.
type project struct {
	id  string
	key string
	// endpointIDs[i] receives at the receiver's /hooks/<i>.
	endpointIDs []string
}

// setUp creates a project with the admin key and, with the project's key,
// cfg.endpoints endpoints that point at the receiver.
func setUp(ctx context.Context, cfg *config, recv *receiver) (*project, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	admin := registryv1connect.NewRegistryServiceClient(hc, cfg.registryURL, connect.WithInterceptors(auth.BearerInterceptor(cfg.adminKey)))
	resp, err := admin.CreateProject(ctx, connect.NewRequest(&registryv1.CreateProjectRequest{
		Name: "bench " + time.Now().UTC().Format(time.RFC3339),
	}))
	if err != nil {
		return nil, fmt.Errorf("create project at %s: %w", cfg.registryURL, err)
	}
	p := &project{id: resp.Msg.GetProject().GetId(), key: resp.Msg.GetKey(), endpointIDs: make([]string, cfg.endpoints)}

	reg := registryv1connect.NewRegistryServiceClient(hc, cfg.registryURL, connect.WithInterceptors(auth.BearerInterceptor(p.key)))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range cfg.endpoints {
		g.Go(func() error {
			resp, err := reg.CreateEndpoint(gctx, connect.NewRequest(&registryv1.CreateEndpointRequest{
				ProjectId:      p.id,
				Url:            recv.endpointURL(i),
				OwnerId:        benchOwner,
				Name:           fmt.Sprintf("bench %d", i),
				TimeoutSeconds: 30,
			}))
			if err != nil {
				return fmt.Errorf("create endpoint %d of project %s: %w", i, p.id, err)
			}
			p.endpointIDs[i] = resp.Msg.GetEndpoint().GetId()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return p, nil
}

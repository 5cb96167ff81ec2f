//go:build faults

package faults

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
)

const (
	adminKey  = "faults-admin-key-0123456789"
	secretKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
)

// stack is one run's hookmesh: the registry, router and status service in
// one process, ingest in another, and two deliverers, as separate
// processes on the suite's RabbitMQ node and FerretDB.
type stack struct {
	prefix     string
	core       *hookmesh
	ingest     *hookmesh
	deliverers []*hookmesh
}

func (s *stack) all() []*hookmesh {
	return append([]*hookmesh{s.core, s.ingest}, s.deliverers...)
}

// startStack starts a run's processes, logging to dir.
func startStack(ctx context.Context, name, dir string) (*stack, error) {
	s := &stack{prefix: runPrefix(name)}
	mk := func(name, targets string, extra ...string) (*hookmesh, error) {
		return newHookmesh(dir, name, targets, append(commonEnv(s.prefix, suite.rabbit.url()), extra...)...)
	}
	var err error
	if s.core, err = mk("core", "registry,router,status"); err != nil {
		return nil, err
	}
	if s.ingest, err = mk("ingest", "ingest", "HOOKMESH_REGISTRY_URL="+s.core.url(), "HOOKMESH_STATUS_URL="+s.core.url()); err != nil {
		return nil, err
	}
	s.core.env = append(s.core.env, "HOOKMESH_INGEST_URL="+s.ingest.url())
	for i := range 2 {
		d, err := mk("deliverer-"+strconv.Itoa(i+1), "deliverer", "HOOKMESH_REGISTRY_URL="+s.core.url(), "HOOKMESH_DELIVERY_CONCURRENCY=32")
		if err != nil {
			return nil, err
		}
		s.deliverers = append(s.deliverers, d)
	}
	for _, p := range s.all() {
		if err := p.start(); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

// runPrefix is a run's database and queue prefix, also the PostgreSQL
// schemas' prefix: letters, digits and _ only.
func runPrefix(name string) string {
	return fmt.Sprintf("f%s%d", strings.ReplaceAll(name, "-", "_"), time.Now().UnixNano()%1e6)
}

// commonEnv is what every process of a run is given: the suite's
// databases, the broker URL(s), keys, and outbox timings short enough for a
// run.
func commonEnv(prefix, amqpURL string) []string {
	return []string{
		"HOOKMESH_MONGODB_URI=" + suite.ferret.uri(),
		"HOOKMESH_POSTGRES_URL=" + suite.history.url,
		"HOOKMESH_DATABASE_PREFIX=" + prefix,
		"HOOKMESH_AMQP_URL=" + amqpURL,
		"HOOKMESH_AMQP_PREFIX=" + prefix,
		"HOOKMESH_ADMIN_KEY=" + adminKey,
		"HOOKMESH_SECRET_KEY=" + secretKey,
		"HOOKMESH_ALLOW_PRIVATE_NETWORKS=true",
		// Unconfirmed events are published again after 5 s, not 30.
		"HOOKMESH_OUTBOX_SWEEP_INTERVAL=2s",
		"HOOKMESH_OUTBOX_GRACE=5s",
		"HOOKMESH_SHUTDOWN_TIMEOUT=10s",
		"HOOKMESH_LOG_LEVEL=info",
	}
}

// newHookmesh prepares (does not start) a hookmesh process of the given
// targets on a free address, logging to dir/name.log.
func newHookmesh(dir, name, targets string, env ...string) (*hookmesh, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &hookmesh{addr: addr, process: &process{name: name, path: suite.hookmesh, args: []string{targets},
		env: cleanEnv(append(env, "HOOKMESH_HTTP_ADDR="+addr)...), log: filepath.Join(dir, name+".log")}}, nil
}

// stop stops every process gracefully.
func (s *stack) stop() {
	var wg sync.WaitGroup
	for _, p := range s.all() {
		if p == nil {
			continue
		}
		wg.Go(func() { p.signal(syscall.SIGTERM, 30*time.Second) })
	}
	wg.Wait()
}

// project is a run's project and endpoints.
type project struct {
	id, key   string
	endpoints []string // endpoint n is at <receiver>/ep/<n>
	registry  registryv1connect.RegistryServiceClient
	// ingests are the ingest processes' clients; the load sends event i
	// to ingest i modulo their number, and a retried call to the next.
	ingests []ingestv1connect.IngestServiceClient
	status  statusv1connect.StatusServiceClient
}

// newProject creates a project that retries every second, 30 attempts in
// all (a 40 % failure rate never uses them up), and n endpoints with a 1 s
// timeout at the receiver.
func (s *stack) newProject(ctx context.Context, recv *receiver, n int) (*project, error) {
	return newProject(ctx, recv, n, s.core.url(), s.ingest.url())
}

// newProject is stack.newProject for a registry and status service at
// coreURL and ingest processes at ingestURLs.
func newProject(ctx context.Context, recv *receiver, n int, coreURL string, ingestURLs ...string) (*project, error) {
	admin := registryv1connect.NewRegistryServiceClient(http.DefaultClient, coreURL, connect.WithInterceptors(auth.BearerInterceptor(adminKey)))
	resp, err := admin.CreateProject(ctx, connect.NewRequest(&registryv1.CreateProjectRequest{Name: "faults",
		RetryPolicy: &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: 1, MaxAttempts: 30}}))
	if err != nil {
		return nil, fmt.Errorf("create project: %w", err)
	}
	p := &project{id: resp.Msg.GetProject().GetId(), key: resp.Msg.GetKey()}
	opt := connect.WithInterceptors(auth.BearerInterceptor(p.key))
	p.registry = registryv1connect.NewRegistryServiceClient(http.DefaultClient, coreURL, opt)
	for _, u := range ingestURLs {
		p.ingests = append(p.ingests, ingestv1connect.NewIngestServiceClient(http.DefaultClient, u, opt))
	}
	p.status = statusv1connect.NewStatusServiceClient(http.DefaultClient, coreURL, opt)
	var secrets []string
	for i := range n {
		ep, err := p.registry.CreateEndpoint(ctx, connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: p.id,
			Url: fmt.Sprintf("%s/ep/%d", recv.url, i), TimeoutSeconds: 1}))
		if err != nil {
			return nil, fmt.Errorf("create endpoint: %w", err)
		}
		p.endpoints = append(p.endpoints, ep.Msg.GetEndpoint().GetId())
		secrets = append(secrets, ep.Msg.GetEndpoint().GetSecret())
	}
	recv.setSecrets(secrets)
	return p, nil
}

// accepted is an event ingest accepted: the id of the original event (a
// repeat of its idempotency key names it too) and its endpoint.
type accepted struct {
	eventID  string
	endpoint int
}

// loadResult is what the load generator saw.
type loadResult struct {
	accepted []accepted
	// retried counts ingest calls that failed and were made again with the
	// same idempotency key; refused counts events never accepted.
	retried, refused int
}

// load sends n events at rate a second, alternating between endpoints.
// An event whose call fails is sent again with the same idempotency key
// until ingest accepts it, as a careful client does.
func load(ctx context.Context, p *project, run string, n int, rate float64) loadResult {
	return loadWhile(ctx, p, run, rate, 64, func(i int) bool { return i < n })
}

// loadWhile is load for as long as more(i) says event i is to be sent,
// with at most inFlight events waiting for ingest at once (the sending
// slows down when they are all waiting).
func loadWhile(ctx context.Context, p *project, run string, rate float64, inFlight int, more func(i int) bool) loadResult {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	sem := make(chan struct{}, inFlight)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := 0; more(i); i++ {
		<-tick.C
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ep := i % len(p.endpoints)
			req := &ingestv1.CreateEventRequest{ProjectId: p.id, EndpointId: p.endpoints[ep], EventType: "fault.test",
				Data: fmt.Sprintf(`{"run":%q,"n":%d}`, run, i), IdempotencyKey: fmt.Sprintf("%s-%d", run, i)}
			deadline := time.Now().Add(3 * time.Minute)
			for tries := 0; ; tries++ {
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				// A retried call goes to the next ingest process, as a
				// load balancer would send it.
				resp, err := p.ingests[(i+tries)%len(p.ingests)].CreateEvent(cctx, connect.NewRequest(req))
				cancel()
				if err == nil {
					ev := resp.Msg.GetEvent()
					id := ev.GetId()
					if ev.GetIsDuplicate() {
						id = ev.GetDuplicateOf()
					}
					mu.Lock()
					res.accepted = append(res.accepted, accepted{eventID: id, endpoint: ep})
					if tries > 0 {
						res.retried++
					}
					mu.Unlock()
					return
				}
				// A refusal for the request itself would repeat forever.
				if c := connect.CodeOf(err); c == connect.CodeInvalidArgument || c == connect.CodeNotFound || c == connect.CodePermissionDenied {
					mu.Lock()
					res.refused++
					mu.Unlock()
					return
				}
				if time.Now().After(deadline) || !pollCtx(ctx, 500*time.Millisecond) {
					mu.Lock()
					res.refused++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return res
}

// deliveries lists every delivery of the project.
func (p *project) deliveries(ctx context.Context) ([]*statusv1.Delivery, error) {
	var out []*statusv1.Delivery
	token := ""
	for {
		resp, err := p.status.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{ProjectId: p.id, PageSize: 500, PageToken: token}))
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Msg.GetDeliveries()...)
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// unpublished counts the events stored but not (yet) confirmed as
// published: those a crash leaves to the outbox (ingest's outbox table holds
// exactly those).
func (s *stack) unpublished(ctx context.Context) (int, error) {
	return unpublished(ctx, s.prefix)
}

// unpublished is stack.unpublished for the run of the given prefix.
func unpublished(ctx context.Context, prefix string) (int, error) {
	return suite.history.count(ctx, prefix+"_ingest", "outbox")
}
